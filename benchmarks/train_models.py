"""Train the course's models with `coursekit train` and print a table of wall time and test metrics.

    python benchmarks/train_models.py                          # every model, default (chapter) budget
    python benchmarks/train_models.py unet dense-ae --quick
    python benchmarks/train_models.py --devices cuda cpu --quick --markdown   # the same runs on both devices

Each run is its own process, exactly as a user would start it, so the times include start-up. With
several devices every model is trained on each, same seed and budget, and the table puts the rows side
by side with the largest relative difference of each metric between the devices. Runs on different
devices go in parallel (they share no hardware but the host's cores: ``--threads`` per CPU run).
This is a benchmark, not a test: it asserts nothing and is never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

KEYS = ["test_mse", "pca_test_mse", "test_accuracy", "miou", "pixel_accuracy", "dice",
        "box_ap50", "box_ap", "mask_ap50", "mask_ap"]


def run(name: str, device: str | None, args: argparse.Namespace) -> tuple[float, dict]:
    """One `coursekit train` process; returns its wall time and its final JSON (or an error)."""
    cmd = [sys.executable, "-m", "coursekit", "train", name, "--json", "--no-progress"]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--device", device] if device else []
    if args.out_dir:
        cmd += ["--out", f"{args.out_dir}/{name}{'-' + device if device else ''}.pt"]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads)) if device == "cpu" else None
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        return seconds, {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return seconds, json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    from coursekit.recipes import RECIPES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"models (default: all of {', '.join(RECIPES)})")
    parser.add_argument("--quick", action="store_true", help="pass --quick to every run")
    parser.add_argument("--devices", nargs="+", default=[None], metavar="DEVICE",
                        help="train on each of these devices (default: coursekit's choice)")
    parser.add_argument("--threads", type=int, default=4, help="OMP threads of each CPU run (default 4)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--out-dir", help="also write each model's checkpoint (and sidecar) to DIR/NAME[-DEVICE].pt")
    args = parser.parse_args()
    names = args.names or list(RECIPES)
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        parser.error(f"unknown models {unknown}")

    def per_device(device):
        results = {}
        for name in names:
            results[name] = run(name, device, args)
            print(f"{name} on {device or 'default'}: {results[name][0]:.1f} s {json.dumps(results[name][1])}",
                  file=sys.stderr, flush=True)
        return results

    with ThreadPoolExecutor(len(args.devices)) as pool:
        runs = dict(zip(args.devices, pool.map(per_device, args.devices)))

    keys = [k for k in KEYS if any(k in m for r in runs.values() for _, m in r.values())]
    compare = len(args.devices) > 1
    header = ["model", "device", "seconds", *keys] + (["max rel. diff"] if compare else [])
    table = []
    for name in names:
        rows = [runs[d][name] for d in args.devices]
        spread = ""
        if compare and all("error" not in m for _, m in rows):
            diffs = [abs(a[1][k] - b[1][k]) / max(abs(a[1][k]), 1e-12)
                     for k in keys if k in rows[0][1] for a, b in zip(rows, rows[1:])]
            spread = f"{max(diffs):.1%}" if diffs else ""
        for device, (seconds, m) in zip(args.devices, rows):
            cells = [f"{m[k]:.4f}" if k in m else "" for k in keys]
            if "error" in m:
                cells = [f"error: {m['error']}"] + [""] * (len(keys) - 1)
            table.append([name, device or "default", f"{seconds:.1f}", *cells] + ([spread] if compare else []))
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in table:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header))]
        for row in [header, *table]:
            print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
