"""Train the course's models with `coursekit train` and print a table of wall time and test metrics.

    python benchmarks/train_models.py                      # every model, default (chapter) budget
    python benchmarks/train_models.py unet dense-ae --quick
    python benchmarks/train_models.py --device cuda --markdown

Each model runs in its own process, exactly as a user would run it, so the times include start-up.
This is a benchmark, not a test: it asserts nothing and is never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def main() -> int:
    from coursekit.recipes import RECIPES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"models (default: all of {', '.join(RECIPES)})")
    parser.add_argument("--quick", action="store_true", help="pass --quick to every run")
    parser.add_argument("--device", help="pass --device to every run")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--out-dir", help="also write each model's checkpoint (and sidecar) to DIR/NAME.pt")
    args = parser.parse_args()
    names = args.names or list(RECIPES)
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        parser.error(f"unknown models {unknown}")

    rows = []
    for name in names:
        cmd = [sys.executable, "-m", "coursekit.cli", "train", name, "--json", "--no-progress"]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--device", args.device] if args.device else []
        cmd += ["--out", f"{args.out_dir}/{name}.pt"] if args.out_dir else []
        start = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if out.returncode != 0:
            rows.append((name, seconds, {"error": out.stderr.strip().splitlines()[-1:]}))
        else:
            rows.append((name, seconds, json.loads(out.stdout.strip().splitlines()[-1])))
        print(f"{name}: {seconds:.1f} s", file=sys.stderr)

    keys = ["test_mse", "pca_test_mse", "test_accuracy", "miou", "pixel_accuracy", "dice",
            "box_ap50", "box_ap", "mask_ap50", "mask_ap"]
    keys = [k for k in keys if any(k in m for _, _, m in rows)]
    header = ["model", "seconds", *keys]
    table = [[name, f"{sec:.1f}", *[(f"{m[k]:.4f}" if k in m else "") for k in keys]] for name, sec, m in rows]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in table:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header))]
        for row in [header, *table]:
            print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    for name, _, m in rows:
        if "error" in m:
            print(f"{name} failed: {m['error']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
