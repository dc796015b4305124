"""Run every validation script and rebuild figures/REPORT.md.

    python validation/run_all.py [--quick | --tiny] [--out FOLDER] [--only NAME ...]

The same as ``gibbs-sgd validate``.
"""
import argparse
import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gibbs_sgd.validation import FIGURES, build_report  # noqa: E402


def scripts() -> list[Path]:
    """Every validation script in this folder (all but this one), in name order."""
    return sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--out", type=Path, default=FIGURES)
    ap.add_argument("--only", nargs="*", default=None, help="script names (without .py) to run")
    args = ap.parse_args(argv)
    flags = (["--quick"] if args.quick else []) + (["--tiny"] if args.tiny else []) + ["--out", str(args.out)]
    for path in scripts():
        if args.only and path.stem not in args.only:
            continue
        spec = importlib.util.spec_from_file_location(f"validation_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        t0 = time.perf_counter()
        module.main(flags)
        print(f"  ({path.stem}: {time.perf_counter() - t0:.0f} s)")
    mode = "--tiny" if args.tiny else ("--quick" if args.quick else "")
    report = build_report(args.out, command=f"python validation/run_all.py {mode}".strip())
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
