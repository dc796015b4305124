"""Batch size and temperature: T ~ 1/B at fixed lr, T flat under lr = B eta0 -- until B eta0 h is not small.

The lecture: "For PyTorch vanilla SGD both the batch size and the learning rate influence
temperature (not good)", and with batch updates Phi <- Phi - B eta0 g_hat "the temperature is
essentially determined by eta0 independent of B" (Goyal et al. 2017: eta = B eta0). Its
derivation replaces B steps of batch 1 by one step of batch B, which is exact only while
B eta0 h << 1. Measured with gs.sweep on the 1-D quadratic h Phi^2/2 (Gaussian per-example
noise sigma): T(B) at a fixed lr, and T(B) under the tie lr = B eta0 for two eta0, against the
exact finite-lr law T = lr sigma^2 / (B (2 - lr h)) (gs.theory), i.e. eta0 sigma^2 / (2 - B eta0 h)
under the rule, which leaves the small-lr value eta0 sigma^2 / 2 as B eta0 h grows and has no
stationary law at B eta0 h >= 2.

    python validation/batch_size.py [--quick]
"""
import math

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.sweep import SweepTable
from gibbs_sgd.validation import Row, finish, fmt, options

H, SIGMA = 1.0, 1.0
LR_FIXED = 0.01
ETA0 = [2.5e-4, 1e-3]
ACADEMIC = 0.05  # B eta0 h up to which the lecture's rule is expected to hold to ~ B eta0 h / 2 = 2.5%
SIZES = {"full": dict(n_chains=1_000_000, fixed=[2**k for k in range(11)],
                      scaled=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792]),
         "quick": dict(n_chains=20_000, fixed=[1, 4, 16, 64, 256, 1024], scaled=[1, 4, 16, 64, 256, 512, 1024, 1536]),
         "tiny": dict(n_chains=500, fixed=[1, 16, 256], scaled=[4, 64, 1024])}
LAND = gs.landscapes.Quadratic(H, box=[[-5.0, 5.0]])


def _t_exact(lr, batch):
    return H * gs.theory.stationary_covariance(gs.optimizers.SGD(lr=lr), H, gs.noise.Gaussian(SIGMA), batch)[0, 0]


def _ties(first):
    """Per-point run length (10 relaxation times of the mean, half burn-in) and histogram bins (+-6 sd)."""
    def steps(p):
        lr = p["lr"] if "lr" in p else LR_FIXED
        return int(max(400, -10.0 / math.log(abs(1.0 - lr * H))))

    def bins(p):
        lr = p["lr"] if "lr" in p else LR_FIXED
        sd = math.sqrt(_t_exact(lr, p["batch_size"]) / H)
        return np.linspace(-6 * sd, 6 * sd, 61)

    return {**first, "n_steps": steps, "burn_in": lambda p: p["n_steps"] // 2, "bins": bins}


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    common = dict(noise=gs.noise.Gaussian(SIGMA), n_chains=size["n_chains"], progress=False, dtype=np.float64)
    fixed = gs.sweep(LAND, gs.optimizers.SGD(lr=LR_FIXED), grid={"batch_size": size["fixed"]}, tie=_ties({}),
                     **common)
    scaled = gs.sweep(LAND, gs.optimizers.SGD(lr=1.0), grid={"eta0": ETA0, "batch_size": size["scaled"]},
                      tie=_ties({"lr": lambda p: p["batch_size"] * p["eta0"]}), **common)
    for table in (fixed, scaled):
        for r in table.rows:
            r["t_exact"] = _t_exact(r["lr"], r["batch_size"])
            r["z_exact"] = (r["temperature"] - r["t_exact"]) / (0.5 * (r["ci_hi"] - r["ci_lo"]) / 1.96)
            r["x"] = r["lr"] * H  # B eta0 h under the rule
            r.pop("bins", None)

    law_fixed = fixed.scaling_law({"B": "batch_size"})
    academic = SweepTable([r for r in scaled.rows if r["x"] <= ACADEMIC])
    law_academic = academic.scaling_law({"B": "batch_size", "eta0": "eta0"}) if len(academic) > 3 else None
    law_all = scaled.scaling_law({"B": "batch_size", "eta0": "eta0"})

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    series = [("fixed lr = %g" % LR_FIXED, fixed.rows)] + [
        (f"lr = B eta0, eta0 = {e:g}", [r for r in scaled.rows if r["eta0"] == e]) for e in ETA0]
    for k, (label, rows) in enumerate(series):
        b = np.array([r["batch_size"] for r in rows], float)
        t = np.array([r["temperature"] for r in rows])
        err = [t - [r["ci_lo"] for r in rows], [r["ci_hi"] for r in rows] - t]
        ax.errorbar(b, t, yerr=err, fmt="o", ms=4, capsize=2, color=f"C{k}", label=label)
        bb = np.geomspace(b.min(), b.max(), 200)
        lr_of = (lambda x: LR_FIXED + 0 * x) if k == 0 else (lambda x, e=rows[0]["eta0"]: x * e)
        ax.plot(bb, [_t_exact(lr_of(x), x) for x in bb], color=f"C{k}", lw=0.8)
        if k:
            x = np.array([r["x"] for r in rows])
            ax2.errorbar(x, t / (rows[0]["eta0"] * SIGMA**2 / 2), yerr=np.array(err) / (rows[0]["eta0"] * SIGMA**2 / 2),
                         fmt="o", ms=4, capsize=2, color=f"C{k}", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("fitted T (95% CI); lines: exact finite-lr law")
    ax.set_title("T against B on $h\\Phi^2/2$: fixed lr ($T\\propto 1/B$) and lr = B$\\eta_0$ (flat)", fontsize=9)
    ax.legend(fontsize=8)
    xx = np.linspace(1e-3, max(r["x"] for r in scaled.rows) * 1.03, 200)
    ax2.plot(xx, 2 / (2 - xx), "k--", lw=0.8, label="exact: $2/(2 - B\\eta_0 h)$")
    ax2.axhline(1.0, color="0.5", lw=0.6)
    ax2.axvspan(0, ACADEMIC, color="0.92", zorder=-1, label=f"'academic' B eta0 h <= {ACADEMIC}")
    ax2.set_xscale("log")
    ax2.set_xlabel("B $\\eta_0$ h")
    ax2.set_ylabel("T / ($\\eta_0\\sigma^2/2$)")
    ax2.set_title("lr = B$\\eta_0$: the rule holds while B$\\eta_0$h $\\ll$ 1", fontsize=9)
    ax2.legend(fontsize=8)
    fig.tight_layout()

    def cell(r):
        return (f"B = {r['batch_size']}: {fmt(r['temperature'], 0.5 * (r['ci_hi'] - r['ci_lo']))} "
                f"(exact {r['t_exact']:.4g})")

    parts = [f"fixed lr = {LR_FIXED}: " + "; ".join(cell(r) for r in fixed.rows)
             + f"; fitted T ~ B^{law_fixed.exponents['B']:.4f} ± {law_fixed.stderr['B']:.2g}"]
    for e in ETA0:
        parts.append(f"lr = B eta0, eta0 = {e:g}: " + "; ".join(cell(r) for r in scaled.rows if r["eta0"] == e))
    zmax = max(abs(r["z_exact"]) for r in fixed.rows + scaled.rows)
    # where lr = B eta0 stops keeping T flat: the first B whose T is 4 s.e. above T at the smallest B of its eta0
    breaks = []
    for e in ETA0:
        rows = sorted((r for r in scaled.rows if r["eta0"] == e), key=lambda r: r["batch_size"])
        ref = rows[0]
        se_ref = 0.5 * (ref["ci_hi"] - ref["ci_lo"]) / 1.96
        bad = [r for r in rows if (r["temperature"] - ref["temperature"])
               / math.hypot(se_ref, 0.5 * (r["ci_hi"] - r["ci_lo"]) / 1.96) > 4]
        last = rows[-1]
        breaks.append(f"eta0 = {e:g}: T rises significantly from B = {bad[0]['batch_size']} (B eta0 h = "
                      f"{bad[0]['x']:.3g}, +{bad[0]['temperature'] / ref['temperature'] - 1:.1%})" if bad else
                      f"eta0 = {e:g}: flat within 4 s.e. up to B = {last['batch_size']} (B eta0 h = {last['x']:.3g})")
    a, sa = law_fixed.exponents["B"], law_fixed.stderr["B"]
    verdict = f"fixed lr: T ~ B^{a:.3f} ± {sa:.2g} (" + (
        "T ∝ 1/B: the batch size sets the temperature" if abs(a + 1) < 4 * sa else "not T ∝ 1/B") + "); "
    if law_academic:
        a, sa = law_academic.exponents["B"], law_academic.stderr["B"]
        verdict += (f"lr = B eta0 with B eta0 h <= {ACADEMIC}: T ~ B^{a:.4f} ± {sa:.2g} ("
                    + ("flat: T set by eta0 alone" if abs(a) < max(4 * sa, 0.01) else "NOT flat") + "); ")
    verdict += (f"over all B: T ~ B^{law_all.exponents['B']:.3f} (chi2/dof = {law_all.chi2_per_dof:.3g}): "
                + "; ".join(breaks)
                + f"; every point agrees with the exact eta0 sigma^2/(2 - B eta0 h) within |z| <= {zmax:.1f}")
    row = Row(
        name="batch_size",
        claim="\"For PyTorch vanilla SGD both the batch size and the learning rate influence temperature\"; with "
              "eta = B eta0 \"the temperature is essentially determined by eta0 independent of B\"",
        setup=f"SGD on the quadratic h = {H}, Gaussian per-example noise sigma = {SIGMA}; gs.sweep over B at lr = "
              f"{LR_FIXED} and under tie lr = B eta0 (eta0 = {ETA0}); {size['n_chains']:,} chains per point from the "
              f"minimum, 10 relaxation times each (half burn-in)",
        result="; ".join(parts),
        verdict=verdict,
        details={"fixed": fixed.rows, "scaled": scaled.rows, "law_fixed": str(law_fixed), "law_all": str(law_all),
                 "law_academic": str(law_academic)},
    )
    finish(args, row, fig)


if __name__ == "__main__":
    main()
