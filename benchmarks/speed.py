"""Training speed of the course's models: images per second and peak memory, in four precisions, one table.

    python benchmarks/speed.py --device cuda             # realistic sizes (U-Net, FCN-8s: 256×256, batch 32)
    python benchmarks/speed.py --device cpu --quick      # small sizes, a few steps: seconds
    python benchmarks/speed.py --device cuda --models unet fcn8s --variants fp32 bf16

Each row times full training steps (forward, the package's loss, backward, AdamW step) of one model from
``coursekit.models.get_model`` on one fixed synthetic batch of the right shapes (random pixels for the
autoencoders, shapes scenes for segmentation and Mask R-CNN), after warm-up steps, with the GPU
synchronised before the clock starts and before it stops. The variants:

* ``fp32``     plain float32
* ``bf16``     bfloat16 autocast (what ``fit(amp=True)`` does on CUDA)
* ``bf16+cl``  bfloat16 autocast with the model and the images in channels-last memory format
               (n/a for the dense autoencoder, whose inputs are vectors)
* ``bf16+compile``  bfloat16 autocast on ``torch.compile(model)`` (its compilation happens in the warm-up);
               for Mask R-CNN only its backbone + FPN is compiled: the detector's data-dependent steps
               (proposal sampling, NMS) break the graph and change shapes at every step

Peak memory is ``torch.cuda.max_memory_allocated`` during the row (n/a on the CPU). A row that fails
(say, a compiler missing on the CPU) shows its error and the others go on. This is a benchmark, not a
test: it asserts nothing and is never part of the test run. Progress goes to standard error, the
Markdown table to standard output.
"""

from __future__ import annotations

import argparse
import platform
import signal
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

VARIANTS = ("fp32", "bf16", "bf16+cl", "bf16+compile")


@dataclass
class Case:
    """One model at one size: ``build()`` the model, ``batch`` the inputs, ``loss(model, batch)`` its loss."""

    name: str
    size: str
    batch_size: int
    build: Callable[[], nn.Module]
    batch: Callable[[torch.device], object]
    loss: Callable[[nn.Module, object], torch.Tensor]
    images_4d: bool = True  # channels-last applies
    compile: Callable[[nn.Module], nn.Module] = torch.compile  # what the bf16+compile row compiles


def _sizes(device: torch.device, quick: bool) -> dict[str, tuple[int, int]]:
    """(image side, batch size) per model."""
    if device.type == "cuda" and not quick:
        return {"dense-ae": (28, 256), "conv-ae": (28, 256), "unet": (256, 32), "fcn8s": (256, 32),
                "maskrcnn": (256, 8)}
    if quick:
        return {"dense-ae": (28, 64), "conv-ae": (28, 32), "unet": (64, 8), "fcn8s": (64, 8), "maskrcnn": (64, 4)}
    return {"dense-ae": (28, 256), "conv-ae": (28, 64), "unet": (128, 8), "fcn8s": (128, 8), "maskrcnn": (128, 4)}


def cases(device: torch.device, quick: bool) -> dict[str, Case]:
    from coursekit.data import ShapesDetection, ShapesSegmentation, detection_collate
    from coursekit.models import get_model
    from coursekit.ops.losses import SegmentationLoss, reconstruction_loss
    from coursekit.recipes import RECIPES

    sizes = _sizes(device, quick)
    segmentation_loss = SegmentationLoss("ce")

    def pixels(shape):
        def make(dev):
            return torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(dev)
        return make

    def scenes(side, n):
        def make(dev):
            ds = ShapesSegmentation(n, size=side, seed=0)
            pairs = [ds[i] for i in range(n)]
            return torch.stack([p[0] for p in pairs]).to(dev), torch.stack([p[1] for p in pairs]).to(dev)
        return make

    def detection_scenes(side, n):
        def make(dev):
            images, targets = detection_collate([ShapesDetection(n, side, seed=0)[i] for i in range(n)])
            return [im.to(dev) for im in images], [{k: v.to(dev) for k, v in t.items()} for t in targets]
        return make

    def reconstruction(model, x):
        return reconstruction_loss(model(x).view_as(x), x, "mse")

    def segmentation(model, batch):
        x, y = batch
        return segmentation_loss(model(x), y)

    def detection(model, batch):
        images, targets = batch
        return sum(model(images, targets).values())

    out = {}
    side, n = sizes["dense-ae"]
    out["dense-ae"] = Case("dense AE", f"{side * side}", n,
                           lambda side=side: get_model("dense_ae", in_features=side * side, code_size=32),
                           pixels((n, side * side)), reconstruction, images_4d=False)
    side, n = sizes["conv-ae"]
    out["conv-ae"] = Case("conv AE", f"1×{side}×{side}", n,
                          lambda: get_model("conv_ae", in_channels=1, code_channels=4, channels=[16, 32],
                                            upsample="transposed"),
                          pixels((n, 1, side, side)), reconstruction)
    for key, label in (("unet", "U-Net"), ("fcn8s", "FCN-8s")):
        side, n = sizes[key]
        arch = RECIPES[key].defaults["shapes"]["arch"]
        out[key] = Case(label, f"3×{side}×{side}", n,
                        lambda key=key, arch=arch: get_model(RECIPES[key].builder, num_classes=4, **arch),
                        scenes(side, n), segmentation)
    def compile_backbone(model):
        # The whole detector breaks dynamo's graph at every data-dependent step (proposal sampling, NMS)
        # and its shapes change from step to step: compile the convolutional backbone + FPN, where the
        # work is, and leave the heads eager.
        model.backbone = torch.compile(model.backbone)
        return model

    side, n = sizes["maskrcnn"]
    out["maskrcnn"] = Case("Mask R-CNN", f"3×{side}×{side}", n,
                           lambda side=side: get_model("maskrcnn", num_classes=ShapesDetection.num_classes,
                                                       image_size=side),
                           detection_scenes(side, n), detection, compile=compile_backbone)
    return out


def _channels_last(batch):
    if isinstance(batch, torch.Tensor):
        return batch.contiguous(memory_format=torch.channels_last) if batch.dim() == 4 else batch
    if isinstance(batch, tuple):
        return tuple(_channels_last(b) for b in batch)
    if isinstance(batch, list):  # detection: a list of (3, H, W) images, and targets
        return [_channels_last(b) for b in batch]
    return batch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_row(case: Case, variant: str, device: torch.device, warmup: int, steps: int) -> dict:
    """Time ``steps`` training steps after ``warmup``; images/s and peak memory (bytes, CUDA only)."""
    if variant == "bf16+cl" and not case.images_4d:
        return {"skip": "n/a (vector inputs)"}
    torch.manual_seed(0)
    model = case.build().to(device).train()
    batch = case.batch(device)
    if variant == "bf16+cl":
        model = model.to(memory_format=torch.channels_last)
        batch = _channels_last(batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    forward_model = case.compile(model) if variant == "bf16+compile" else model
    amp = variant != "fp32"

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = case.loss(forward_model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(device)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"images_per_s": steps * case.batch_size / seconds, "ms_per_step": 1000 * seconds / steps,
            "peak": peak, "warmup_s": warm}


def _memory(peak) -> str:
    return "n/a" if peak is None else f"{peak / 2**20:,.0f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes and few steps (a smoke run)")
    parser.add_argument("--models", nargs="+", choices=["dense-ae", "conv-ae", "unet", "fcn8s", "maskrcnn"],
                        help="models to time (default: all)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS,
                        help="variants to time (default: all; with --quick on the CPU all but bf16+compile, "
                             "whose compilation takes minutes there)")
    parser.add_argument("--warmup", type=int, help="warm-up steps per row (default 10; 2 with --quick)")
    parser.add_argument("--steps", type=int, help="timed steps per row (default 30; 5 with --quick)")
    parser.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads); on a busy machine 1 "
                                                    "gives steadier numbers than threads fighting for cores")
    args = parser.parse_args()

    from coursekit.device import get_device

    device = get_device(args.device)
    warmup = args.warmup if args.warmup is not None else (2 if args.quick else 10)
    steps = args.steps if args.steps is not None else (5 if args.quick else 30)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    all_cases = cases(device, args.quick)
    names = args.models or list(all_cases)
    variants = args.variants or list(VARIANTS)
    skipped = set() if args.variants or not (args.quick and device.type == "cpu") else {"bf16+compile"}

    # Stopped early (Ctrl-C, or `timeout` sending SIGTERM), it still prints the rows it has.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    rows = []
    try:
        for name in names:
            case = all_cases[name]
            base = None
            for variant in variants:
                start = time.perf_counter()
                try:
                    if variant in skipped:
                        result = {"skip": "skipped (--quick on cpu: compiling takes minutes; ask with --variants)"}
                    else:
                        result = run_row(case, variant, device, warmup, steps)
                except Exception as err:  # noqa: BLE001 - a benchmark reports a failing row and goes on
                    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
                    result = {"skip": f"failed: {type(err).__name__}: {first[:80]}"}
                if variant == "fp32" and "images_per_s" in result:
                    base = result["images_per_s"]
                rows.append((case, variant, result, base))
                shown = (f"{result['images_per_s']:.0f} img/s, {result['ms_per_step']:.1f} ms/step, "
                         f"peak {_memory(result['peak'])}" if "images_per_s" in result else result["skip"])
                print(f"{case.name} {variant}: {shown} (row took {time.perf_counter() - start:.1f} s)",
                      file=sys.stderr, flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    except KeyboardInterrupt:
        print("interrupted: the table has the rows done so far", file=sys.stderr)

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"Training throughput on {where}, torch {torch.__version__}; {warmup} warm-up + {steps} timed steps "
          f"a row{' (--quick)' if args.quick else ''}.\n")
    print("| model | input | batch | variant | images/s | vs fp32 | ms/step | peak memory |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for case, variant, result, base in rows:
        if "images_per_s" in result:
            speedup = f"{result['images_per_s'] / base:.2f}×" if base else "–"
            print(f"| {case.name} | {case.size} | {case.batch_size} | {variant} | {result['images_per_s']:,.0f} | "
                  f"{speedup} | {result['ms_per_step']:.1f} | {_memory(result['peak'])} |")
        else:
            print(f"| {case.name} | {case.size} | {case.batch_size} | {variant} | {result['skip']} | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
