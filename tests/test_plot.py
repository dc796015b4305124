"""Figures render from real runs and sweeps (matplotlib's Agg backend)."""
import pytest

import gibbs_sgd as gs

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def test_histogram_with_residuals_1d_and_2d(tmp_path):
    from gibbs_sgd import plot

    land = gs.landscapes.DoubleWell(tilt=0.2)
    x = gs.Gibbs(land, 0.3).rvs(20_000, random_state=0)
    run = gs.SimulationResult.from_samples(land, x)
    fig, (ax, axr) = plot.histogram(run)
    fig.savefig(tmp_path / "h1.png")
    assert len(ax.lines) >= 1 and axr.get_ylabel() == "residual / s.e."
    land2 = gs.landscapes.MuellerBrown(scale=0.05)
    run2 = gs.SimulationResult.from_samples(land2, gs.Gibbs(land2, 0.5).rvs(20_000, random_state=1), bins=30)
    fig2, _ = plot.histogram(run2, coordinate=1)
    fig2.savefig(tmp_path / "h2.png")
    assert (tmp_path / "h2.png").stat().st_size > 10_000


def test_temperature_map_and_curve(tmp_path):
    from gibbs_sgd import plot

    table = gs.sweep(gs.landscapes.Quadratic(1.0, box=[[-1, 1]]), gs.optimizers.SGD(lr=1.0),
                     grid={"lr": [0.01, 0.02, 0.04], "batch_size": [1, 4]}, n_chains=2000, n_steps=400, burn_in=150,
                     progress=False)
    fig, ax = plot.temperature_map(table, "lr", "batch_size")
    fig.savefig(tmp_path / "map.png")
    assert len(ax.texts) == 6
    # names, not raw column names; cell text contrasts with its colour (both shades appear on
    # viridis from dark to light); nothing smaller than 10 pt
    assert "learning rate" in ax.get_xlabel() and "batch size" in ax.get_ylabel()
    colours = {t.get_color() for t in ax.texts}
    assert colours == {"k", "w"}
    assert min(t.get_fontsize() for t in ax.texts) >= 10
    fig, ax = plot.temperature_curve(table, "lr", group="batch_size",
                                     theory=lambda r: r["lr"] / (r["batch_size"] * (2 - r["lr"])))
    fig.savefig(tmp_path / "curve.png")
    assert len(ax.lines) >= 2
