"""Figures: histograms against the fitted Gibbs law, temperature maps and curves.

matplotlib is an optional extra (``pip install gibbs_sgd[plot]``); it is imported only here.
Every function takes an optional ``ax`` (or axes) and returns the matplotlib objects it drew.
"""
from __future__ import annotations


import numpy as np

__all__ = ["histogram", "temperature_map", "temperature_curve"]


def _plt():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError("plotting needs matplotlib: pip install 'gibbs_sgd[plot]'") from err
    return plt


def _bin_stats(run, coordinate):
    """Density per bin and its standard error from the scatter of per-block histograms."""
    edges = run.hist_edges[coordinate]
    widths = np.diff(edges)
    blocks = run.block_hist[:, coordinate, :].astype(np.float64)
    n_b = run.moments[:, 0]
    ok = n_b > 0
    blocks, n_b = blocks[ok], n_b[ok]
    n = n_b.sum()
    p = blocks.sum(axis=0) / n
    nb = blocks.shape[0]
    resid = blocks - n_b[:, None] * p[None, :]
    se = np.sqrt(np.sum(resid**2, axis=0) * nb / max(nb - 1, 1)) / n
    return edges, p / widths, se / widths


def _gibbs_marginal(fit, run, coordinate):
    """``(bin probabilities, scale)`` of the fitted law on one coordinate's bins.

    The law is conditioned on the histogram range and scaled to the fraction of samples that
    fell inside it, as the goodness-of-fit test compares them: probabilities = raw * scale.
    """
    g = fit.gibbs
    if run.dim == 1:
        raw = g.bin_probabilities(run.hist_edges[0])
    elif run.dim == 2:
        raw = g.bin_probabilities(run.hist_edges).sum(axis=1 - coordinate)
    else:
        return None, None
    inside = run.hist[coordinate].sum() / max(run.n_samples, 1)
    scale = inside / raw.sum()
    return raw * scale, scale


def histogram(run, fit=None, coordinate: int = 0, axes=None, label: str | None = None):
    """The stationary histogram of one coordinate, the fitted Gibbs density, and residuals.

    Parameters
    ----------
    run : SimulationResult
    fit : TemperatureFit, optional (default: ``fit_temperature(run)``)
    coordinate : int
    axes : pair of matplotlib Axes (density, residuals), optional

    Returns
    -------
    (figure, (ax_density, ax_residual))

    The error bars are one standard error from the scatter over independent blocks of chains;
    the residual panel shows (observed - Gibbs) / standard error per bin.
    """
    plt = _plt()
    from .fit import fit_temperature

    fit = fit_temperature(run) if fit is None else fit
    if axes is None:
        fig, axes = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    else:
        fig = axes[0].figure
    ax, axr = axes
    edges, dens, se = _bin_stats(run, coordinate)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.errorbar(centres, dens, yerr=se, fmt=".", ms=3, lw=0.8, color="C0", label=label or "stationary histogram")
    probs, scale = _gibbs_marginal(fit, run, coordinate)
    if probs is not None:
        model = probs / np.diff(edges)
        ax.stairs(model, edges, color="C3", lw=1.2, label=f"Gibbs, T = {fit.temperature:.4g} (bin-integrated)")
        if run.dim == 1:
            fine = np.linspace(edges[0], edges[-1], 801)
            ax.plot(fine, fit.gibbs.pdf(fine) * scale, color="C3", lw=0.6, alpha=0.6, label="$e^{-L/T}/Z$")
        z = np.where(se > 0, (dens - model) / np.where(se > 0, se, 1.0), 0.0)
        axr.stairs(z, edges, color="C0", fill=True, alpha=0.6)
        axr.axhline(0, color="k", lw=0.6)
        for s in (-2, 2):
            axr.axhline(s, color="0.6", lw=0.5, ls="--")
    axr.set_ylabel("residual / s.e.")
    axr.set_xlabel(f"$\\Phi_{coordinate}$" if run.dim > 1 else "$\\Phi$")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.set_title(fit.verdict if len(fit.verdict) < 90 else fit.verdict[:87] + "...", fontsize=8)
    return fig, (ax, axr)


# How sweep columns read on an axis: the lecture's name and symbol (units: these are all
# dimensionless in the loss's own units, except where a unit is given).
_AXIS_NAMES = {
    "lr": r"learning rate $\eta$", "eta0": r"$\eta_0$ (learning rate per example)", "batch_size": "batch size $B$",
    "momentum": r"momentum $\mu$", "beta": r"EMA coefficient $\beta$", "sigma": r"noise scale $\sigma$",
    "eps": r"$\epsilon$", "eps0": r"$\epsilon_0$", "temperature": "temperature $T$", "n_steps": "steps",
}


def axis_label(column: str) -> str:
    """A readable axis label for a sweep column (its lecture name and symbol; the column name
    itself when there is none)."""
    return _AXIS_NAMES.get(column, column.replace("_", " "))


def temperature_map(table, x: str, y: str, ax=None, log: bool = True, x_label: str | None = None,
                    y_label: str | None = None):
    """T over a 2-D grid of two sweep columns (heat map), each cell annotated with T and its CI.

    Axes are labelled with the quantities' names (:func:`axis_label`, or ``x_label`` /
    ``y_label``); each cell's text is black or white, whichever contrasts with its colour."""
    plt = _plt()
    from matplotlib.colors import LogNorm, Normalize

    xs = sorted(set(table[x].tolist()))
    ys = sorted(set(table[y].tolist()))
    grid = np.full((len(ys), len(xs)), np.nan)
    half = np.full_like(grid, np.nan)
    for r in table.rows:
        i, j = ys.index(r[y]), xs.index(r[x])
        grid[i, j] = r["temperature"]
        half[i, j] = 0.5 * (r["ci_hi"] - r["ci_lo"])
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.4 * len(xs) + 3.0, 1.0 * len(ys) + 2.2))
    else:
        fig = ax.figure
    finite = grid[np.isfinite(grid) & (grid > 0)]
    norm = (LogNorm(vmin=finite.min(), vmax=finite.max()) if log and finite.size else
            Normalize(vmin=np.nanmin(grid), vmax=np.nanmax(grid)) if np.isfinite(grid).any() else None)
    cmap = plt.get_cmap("viridis")
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap=cmap, norm=norm)
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(grid[i, j]):
                r, g, b, _ = cmap(norm(grid[i, j])) if norm is not None else (0, 0, 0, 1)
                light = 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.5  # relative luminance of the cell
                ax.text(j, i, f"{grid[i, j]:.3g}\n±{half[i, j]:.1g}", ha="center", va="center", fontsize=10,
                        color="k" if light else "w")
            else:
                ax.text(j, i, "no fit", ha="center", va="center", fontsize=10, color="0.4")
    ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
    ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
    ax.set_xlabel(x_label or axis_label(x))
    ax.set_ylabel(y_label or axis_label(y))
    fig.colorbar(im, ax=ax, label="fitted temperature T (95% CI half-width in the cells)")
    return fig, ax


def temperature_curve(table, x: str, group: str | None = None, theory=None, ax=None, log: bool = True):
    """T against one sweep column with its CIs, optionally one curve per value of ``group``.

    ``theory`` : callable(row-like dict with ``x`` and ``group``) -> T, drawn as lines.
    """
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
    else:
        fig = ax.figure
    groups = [None] if group is None else sorted(set(table[group].tolist()))
    for k, gv in enumerate(groups):
        rows = [r for r in table.rows if group is None or r[group] == gv]
        rows.sort(key=lambda r: r[x])
        xv = np.array([r[x] for r in rows], dtype=float)
        t = np.array([r["temperature"] for r in rows])
        lo = t - np.array([r["ci_lo"] for r in rows])
        hi = np.array([r["ci_hi"] for r in rows]) - t
        lab = None if group is None else f"{axis_label(group)} = {gv:g}"
        ax.errorbar(xv, t, yerr=[lo, hi], fmt="o", ms=4, color=f"C{k}", label=lab, capsize=2)
        if theory is not None:
            fine = np.geomspace(xv.min(), xv.max(), 200) if log else np.linspace(xv.min(), xv.max(), 200)
            base = dict(rows[0])
            ax.plot(fine, [theory({**base, x: v}) for v in fine], color=f"C{k}", lw=1, alpha=0.8)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel("fitted temperature T (95% CI)")
    if group is not None or theory is not None:
        # outside the axes: a legend never covers the points
        ax.legend(fontsize=10, title=None if theory is None else "points: fit; lines: theory",
                  loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return fig, ax
