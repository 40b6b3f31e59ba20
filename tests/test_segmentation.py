"""Segmentation: FCN/SegNet/U-Net shapes, unpooling, losses, metrics, recipes and the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from coursekit.checkpoint import load_trained
from coursekit.data import CLASSES, load_shapes_split
from coursekit.device import seeded
from coursekit.engine import evaluate, predict, train_and_test, train_segmentation
from coursekit.metrics.segmentation import (
    ConfusionMatrix, confusion_matrix, dice_per_class, iou_per_class, mean_iou, pixel_accuracy,
    segmentation_summary,
)
from coursekit.models.fcn import FCN, bilinear_kernel, bilinear_upsampler, fcn8s, fcn16s, fcn32s
from coursekit.models import count_parameters
from coursekit.models.segblocks import center_crop
from coursekit.models.segnet import segnet
from coursekit.models.unet import UNet, match_skip, unet, unet_valid, valid_input_size, valid_output_size
from coursekit.ops.losses import SegmentationLoss, cross_entropy, soft_dice_loss
from coursekit.plot import format_results, mosaic, scene_drawer, show_predictions
from coursekit.recipes import RECIPES

BUILDERS = {"fcn32s": fcn32s, "fcn16s": fcn16s, "fcn8s": fcn8s, "segnet": segnet, "unet": unet}


# ---------------------------------------------------------------------------------------------- models
@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("size", [(64, 64), (67, 91), (33, 17)])
def test_models_keep_height_and_width(name, size):
    torch.manual_seed(0)
    model = BUILDERS[name](num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, 5, *size)


def test_bilinear_kernel_matches_interpolate():
    # A ×f transposed convolution with the bilinear kernel = bilinear interpolation (align_corners=False)
    # away from the borders (where the transposed convolution sees zeros).
    x = torch.rand(1, 2, 6, 7)
    for factor in (2, 4, 8):
        up = bilinear_upsampler(2, factor)
        ours = up(x)
        assert ours.shape[-2:] == (6 * factor, 7 * factor)
        ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        inner = (slice(None), slice(None), slice(factor, -factor), slice(factor, -factor))
        torch.testing.assert_close(ours[inner], ref[inner], atol=1e-5, rtol=1e-5)
    w = bilinear_kernel(4)
    torch.testing.assert_close(w[0], torch.tensor([0.0625, 0.1875, 0.1875, 0.0625]))
    torch.testing.assert_close(bilinear_kernel(3)[1], torch.tensor([0.5, 1.0, 0.5]))


def test_fcn_skips_start_at_zero():
    # Zero-initialised skip scorers: FCN-16s/8s start as FCN-32s (the paper's training trick).
    torch.manual_seed(0)
    b = fcn8s().eval()
    x = torch.rand(1, 3, 64, 64)
    coarse = b.score(b.fc(_pool5(b, x)))
    up = b.up_final(_crop(b.up_pool3(_crop(b.up_pool4(coarse), 4)), 8))[..., :64, :64]
    torch.testing.assert_close(b(x), up)
    with pytest.raises(ValueError):
        FCN(variant="4s")


def _pool5(model, x):
    for stage in model.stages:
        x = model.pool(stage(x))
    return x


def _crop(x, size):
    return x[..., :size, :size]


def test_segnet_unpools_at_the_saved_indices():
    model = segnet(widths=(4, 8)).eval()
    x = torch.rand(1, 3, 13, 10)
    with torch.no_grad():
        features = model.encoder[0](x)
        pooled, idx = model.pool(features)
        restored = model.unpool(pooled, idx, output_size=features.shape[-2:])
    assert restored.shape == features.shape
    nonzero = restored != 0
    # every kept value sits where the encoder's maximum was, and equals it; the rest is zero
    torch.testing.assert_close(restored[nonzero], features[nonzero])
    flat = restored.flatten(2)
    torch.testing.assert_close(flat.gather(2, idx.flatten(2)), pooled.flatten(2))
    assert int(nonzero.sum()) <= pooled.numel()
    # hand case: the maximum of each 2×2 window goes back to its place
    a = torch.tensor([[[[1., 5., 2., 0.], [3., 4., 9., 1.]]]])
    p, i = torch.nn.MaxPool2d(2, 2, return_indices=True)(a)
    u = torch.nn.MaxUnpool2d(2, 2)(p, i, output_size=a.shape[-2:])
    assert u.tolist() == [[[[0., 5., 0., 0.], [0., 0., 9., 0.]]]]


def test_unet_valid_variant_crops_as_the_paper():
    assert valid_output_size(572, depth=4) == 388
    assert valid_output_size(573, depth=4) is None
    assert valid_input_size(388, depth=4) == 572
    model = unet_valid(num_classes=2, base_width=2).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 572, 572)).shape == (1, 2, 388, 388)
        small = UNet(4, base_width=4, depth=2, padding="valid").eval()
        n = valid_input_size(64, depth=2)
        out = small(torch.rand(1, 3, n, n))
    assert out.shape[-1] == valid_output_size(n, depth=2) >= 64
    skip, up = torch.arange(36.).reshape(1, 1, 6, 6), torch.zeros(1, 1, 2, 2)
    cropped, _ = match_skip(skip, up, "valid")
    assert cropped.flatten().tolist() == [14., 15., 20., 21.]
    padded_skip, padded_up = match_skip(torch.zeros(1, 1, 5, 7), torch.ones(1, 1, 4, 6), "same")
    assert padded_up.shape == (1, 1, 5, 7) and padded_up[..., :4, :6].all() and padded_up[..., 4, :].sum() == 0
    with pytest.raises(ValueError):
        center_crop(torch.zeros(1, 2, 2), 3, 3)
    with pytest.raises(ValueError):
        UNet(padding="reflect")


# ---------------------------------------------------------------------------------------------- metrics
def test_confusion_matrix_matches_sklearn_and_ignores_255():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, size=(3, 17, 11))
    target[0, :3] = 255
    pred = rng.integers(0, 4, size=target.shape)
    cm = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), 4)
    keep = target != 255
    ref = sk_confusion_matrix(target[keep], pred[keep], labels=range(4))
    np.testing.assert_array_equal(cm.numpy(), ref)
    # accumulated over batches = computed at once (dataset level)
    acc = ConfusionMatrix(4)
    for p, t in zip(pred, target):
        acc.update(torch.from_numpy(p), torch.from_numpy(t))
    np.testing.assert_array_equal(acc.matrix.numpy(), ref)
    # logits are argmaxed
    logits = F.one_hot(torch.from_numpy(pred), 4).permute(0, 3, 1, 2).float()
    np.testing.assert_array_equal(ConfusionMatrix(4).update(logits, torch.from_numpy(target)).matrix.numpy(), ref)
    with pytest.raises(ValueError):
        confusion_matrix(torch.tensor([4]), torch.tensor([0]), 4)


def test_metrics_hand_case():
    # 2 classes; truth 0 0 1 1 255, prediction 0 1 1 1 0 -> cm [[1, 1], [0, 2]]
    target = torch.tensor([0, 0, 1, 1, 255])
    pred = torch.tensor([0, 1, 1, 1, 0])
    cm = confusion_matrix(pred, target, 2)
    assert cm.tolist() == [[1, 1], [0, 2]]
    assert pixel_accuracy(cm) == pytest.approx(3 / 4)
    torch.testing.assert_close(iou_per_class(cm), torch.tensor([1 / 2, 2 / 3], dtype=torch.float64))
    torch.testing.assert_close(dice_per_class(cm), torch.tensor([2 / 3, 4 / 5], dtype=torch.float64))
    assert mean_iou(cm) == pytest.approx((1 / 2 + 2 / 3) / 2)
    # a class absent from truth and prediction is left out of the mean, not counted as 0 or 1
    cm3 = confusion_matrix(pred, target, 3)
    assert torch.isnan(iou_per_class(cm3)[2]) and mean_iou(cm3) == pytest.approx(mean_iou(cm))
    summary = segmentation_summary(cm, ["bg", "fg"])
    assert set(summary) == {"pixel_accuracy", "miou", "dice", "iou_bg", "iou_fg"}


def test_dataset_level_miou_differs_from_mean_of_images():
    # image 1: 1 pixel of class 1, missed; image 2: 99 pixels of class 1, all right
    t1, p1 = torch.tensor([1] + [0] * 99), torch.zeros(100, dtype=torch.long)
    t2, p2 = torch.tensor([1] * 99 + [0]), torch.tensor([1] * 99 + [0])
    cm = confusion_matrix(torch.stack([p1, p2]), torch.stack([t1, t2]), 2)
    assert iou_per_class(cm)[1] == pytest.approx(99 / 100)
    per_image = (iou_per_class(confusion_matrix(p1, t1, 2))[1] + iou_per_class(confusion_matrix(p2, t2, 2))[1]) / 2
    assert per_image == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------- losses
def test_cross_entropy_ignores_255():
    logits = torch.randn(2, 4, 5, 6)
    target = torch.randint(0, 4, (2, 5, 6))
    target[0, 0] = 255
    keep = target != 255
    ref = -logits.log_softmax(1).gather(1, target.clamp(max=3)[:, None])[:, 0][keep].mean()
    torch.testing.assert_close(cross_entropy(logits, target), ref)


def test_soft_dice_loss_value_and_gradient():
    # hand case: 1 image, 2 classes, 2 pixels; probabilities p1 = (0.8, 0.3), truth (1, 0)
    p1 = torch.tensor([0.8, 0.3], dtype=torch.float64)
    logits = torch.stack([torch.zeros(2, dtype=torch.float64), torch.log(p1 / (1 - p1))]).reshape(1, 2, 1, 2)
    logits.requires_grad_(True)
    target = torch.tensor([[[1, 0]]])
    d1 = (2 * 0.8 + 1) / (1.1 + 1 + 1)
    d0 = (2 * 0.7 + 1) / (0.9 + 1 + 1)
    loss = soft_dice_loss(logits, target)
    assert loss.item() == pytest.approx(1 - (d0 + d1) / 2, rel=1e-9)
    # gradient: compare with finite differences of the same function in float64
    (grad,) = torch.autograd.grad(loss, logits)
    eps = 1e-6
    for idx in [(0, 1, 0, 0), (0, 0, 0, 1)]:
        bumped = logits.detach().clone()
        bumped[idx] += eps
        numeric = (soft_dice_loss(bumped, target).double() - loss.detach().double()) / eps
        assert float(grad[idx]) == pytest.approx(float(numeric), rel=1e-3, abs=1e-6)
    # perfect prediction -> 0; ignored pixels change nothing
    perfect = torch.full((1, 2, 1, 3), -30.0)
    perfect[0, 1, 0, :2] = perfect[0, 0, 0, 2] = 30.0
    assert float(soft_dice_loss(perfect, torch.tensor([[[1, 1, 0]]]))) < 1e-6
    assert float(soft_dice_loss(perfect, torch.tensor([[[1, 1, 255]]]))) < 0.5
    logits, target = torch.randn(2, 3, 4, 5), torch.randint(0, 3, (2, 4, 5))
    target[0, 1:3] = 255
    scrambled = logits.clone()
    scrambled[0, :, 1:3] = torch.randn(3, 2, 5) * 10  # what the model says at ignored pixels
    torch.testing.assert_close(soft_dice_loss(scrambled, target), soft_dice_loss(logits, target))


def test_combined_loss():
    logits, target = torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 8, 8))
    both = SegmentationLoss("ce+dice")(logits, target)
    torch.testing.assert_close(both, cross_entropy(logits, target) + soft_dice_loss(logits, target))
    with pytest.raises(ValueError):
        SegmentationLoss("focal")


# ---------------------------------------------------------------------------------------------- data, recipes
def test_split_and_loader():
    split = load_shapes_split(6, 2, 3, size=32, seed=1)
    assert split.x_train.shape == (6, 3, 32, 32) and split.y_test.shape == (3, 32, 32)
    assert not torch.equal(split.x_train[:3], split.x_test)
    again = load_shapes_split(2, 2, 3, size=32, seed=1)
    assert torch.equal(again.x_test, split.x_test), "the test scenes do not depend on n_train"
    batches = list(split.loader("train", 4, augment=True))
    assert [len(x) for x, _ in batches] == [4, 2]
    for x, y in batches:  # augmentation moves image and mask together (see test_data.py)
        assert x.shape[-2:] == y.shape[-2:]


def test_perfect_model_scores_one():
    split = load_shapes_split(1, 1, 4, size=32)

    class Oracle(torch.nn.Module):
        def forward(self, x):
            # look the mask up by the image itself
            ids = [int((split.x_test - xi).abs().flatten(1).sum(1).argmin()) for xi in x]
            return F.one_hot(split.y_test[ids], 4).permute(0, 3, 1, 2).float()

    summary = evaluate(Oracle(), split.x_test, split.y_test, device="cpu").summary()
    assert summary["miou"] == 1.0 and summary["pixel_accuracy"] == 1.0 and summary["dice"] == 1.0


def test_figures():
    split = load_shapes_split(1, 1, 3, size=32)
    grid = mosaic(split.x_test[0], [split.y_test[0]] * 4, ncols=3, gap=2)
    assert grid.shape == (2 * 32 + 2, 3 * 32 + 4, 3) and grid.min() >= 0 and grid.max() <= 1
    np.testing.assert_allclose(grid[:32, :32], split.x_test[0].permute(1, 2, 0).numpy())
    fig = show_predictions(split.x_test, {"truth": split.y_test, "again": split.y_test})
    assert len(fig.axes) == 3 * 3


def test_train_and_test_table():
    split = load_shapes_split(8, 4, 4, size=32)
    models, results = train_and_test({"FCN-8s": fcn8s}, split, epochs=1, batch_size=4, device="cpu")
    r = results["FCN-8s"]
    assert r["params"] == sum(p.numel() for p in models["FCN-8s"].parameters()) and r["seconds"] > 0
    assert r["miou"] == evaluate(models["FCN-8s"], split.x_test, split.y_test, device="cpu").summary()["miou"]
    table = str(format_results(results)).splitlines()
    assert len(table) == 3 and table[2].startswith("FCN-8s") and f"{r['miou']:.3f}" in table[2]


def test_results_table_marks_the_best_value_of_each_column_in_html():
    rows = {name: {"params": p, "seconds": 1.0, "pixel_accuracy": a, "miou": m, "dice": m,
                   **{f"iou_{c}": m for c in CLASSES}} for name, p, a, m in (("a", 10, 0.9, 0.2), ("b", 20, 0.8, 0.4))}
    page = format_results(rows)._repr_html_()
    assert "<strong>0.900</strong>" in page and "<strong>0.400</strong>" in page and "<strong>10</strong>" in page
    assert "<strong>0.800</strong>" not in page and "<strong>0.200</strong>" not in page
    assert page.startswith('<div style="overflow-x:auto">')  # a wide table scrolls on a narrow screen


def test_predict_gives_the_arg_max_class_of_every_pixel():
    split = load_shapes_split(1, 1, 5, size=32)
    torch.manual_seed(0)
    model = fcn8s().eval()
    with torch.no_grad():
        expected = model(split.x_test).argmax(1)
    assert torch.equal(predict(model, split.x_test, batch_size=2, device="cpu"), expected)


def test_scene_drawer_shows_image_truth_and_each_prediction():
    split = load_shapes_split(1, 1, 3, size=32)
    torch.manual_seed(0)
    predicted = predict(fcn8s(), split.x_test, device="cpu")
    draw = scene_drawer(split.x_test, split.y_test, {"FCN-8s": predicted}, ncols=2)
    fig, ax = plt.subplots()
    draw(1, ax)
    # image, truth and one prediction in two columns: a 2×2 mosaic of 32×32 panels with 2-pixel gaps
    expected = mosaic(split.x_test[1], [split.y_test[1], predicted[1]], ncols=2)
    assert expected.shape == (66, 66, 3) and "FCN-8s" in ax.get_title()
    np.testing.assert_array_equal(ax.images[0].get_array(), expected)
    plt.close(fig)


# The quick recipes train 1 epoch on 64 scenes: two steps of a one-cycle schedule leave FCN-8s where it
# started. 6 epochs (seconds) get every model, SegNet the slowest, at least to the all-background answer
# (mIoU 0.21), far above its initialisation (about 0.01).
QUICK_EPOCHS = 6


def _quick_test_split(name):
    """The test scenes a quick run of recipe ``name`` (seed 0) is measured on."""
    config = RECIPES[name].configure(quick=True)
    return load_shapes_split(1, 1, config["n_test"], config["size"], seed=0)


def _independent_summary(logits, masks):
    """Pixel accuracy, mIoU and mean Dice from scikit-learn's confusion matrix (classes absent from
    truth and prediction left out of the means)."""
    cm = sk_confusion_matrix(masks.flatten(), logits.argmax(1).flatten(), labels=range(4)).astype(float)
    tp, truth, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    present = truth + predicted > 0
    iou = tp[present] / (truth + predicted - tp)[present]
    dice = 2 * tp[present] / (truth + predicted)[present]
    return {"pixel_accuracy": tp.sum() / cm.sum(), "miou": iou.mean(), "dice": dice.mean()}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_recipe_metrics_are_those_of_its_model(name, quick_recipe):
    result = quick_recipe(name, epochs=QUICK_EPOCHS)
    split = _quick_test_split(name)
    with torch.no_grad():
        logits = result.model.eval()(split.x_test)
    for key, value in _independent_summary(logits, split.y_test).items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-6), key
    assert result.metrics["parameters"] == sum(p.numel() for p in result.model.parameters())


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_recipe_trains_its_model(name, quick_recipe):
    result = quick_recipe(name, epochs=QUICK_EPOCHS)
    losses = result.history["train_loss"]
    # (BatchNorm's running statistics alone, with weights that never moved, already lift U-Net's test mIoU)
    assert losses[-1] < 0.85 * losses[0], losses
    split = _quick_test_split(name)
    with seeded(0):
        untrained = RECIPES[name].build(**result.config)
    before = evaluate(untrained, split.x_test, split.y_test, device="cpu").summary()["miou"]
    assert result.metrics["miou"] > before + 0.1, (before, result.metrics["miou"])


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_recipe_config_rebuilds_the_same_model(name, quick_recipe):
    result = quick_recipe(name, epochs=QUICK_EPOCHS)
    rebuilt = RECIPES[name].build(**json.loads(json.dumps(result.config)))  # as a sidecar stores it
    rebuilt.load_state_dict(result.model.state_dict())
    x = _quick_test_split(name).x_test[:4]
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), result.model.eval()(x))
    assert count_parameters(rebuilt) * 4 < 1_000_000, "checkpoints must stay under 1 MB"


def test_cli_checkpoint_reproduces_the_reported_metrics(tmp_path):
    out = tmp_path / "fcn8s.pt"
    proc = subprocess.run([sys.executable, "-m", "coursekit.cli", "train", "fcn8s", "--quick", "--json",
                           "--epochs", str(QUICK_EPOCHS), "--device", "cpu", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    model, record = load_trained(out)
    assert record["builder"] == "fcn8s" and record["metrics"] == {k: v for k, v in metrics.items() if k != "model"}
    split = _quick_test_split("fcn8s")
    summary = evaluate(model, split.x_test, split.y_test, device="cpu").summary()
    for key in ("miou", "pixel_accuracy", "dice"):
        assert summary[key] == pytest.approx(metrics[key], abs=1e-6), key


# ---------------------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_amp_on_cuda_computes_what_float32_on_cpu_does(name):
    split = load_shapes_split(64, 16, 16, size=64)
    torch.manual_seed(0)
    model = BUILDERS[name]()
    history = train_segmentation(model, split, epochs=2, device="cuda", amp=True, progress=False)
    assert next(model.parameters()).is_cuda and np.isfinite(history["train_loss"]).all()
    x = torch.rand(2, 3, 67, 91)
    with torch.no_grad():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            on_cuda = model.eval()(x.cuda()).float().cpu()
        on_cpu = model.cpu()(x)
    # bfloat16 keeps 8 bits of mantissa: logits within 5% of their range, the same class at ~all pixels
    torch.testing.assert_close(on_cuda, on_cpu, rtol=0, atol=0.05 * float(on_cpu.abs().max()))
    assert float((on_cuda.argmax(1) == on_cpu.argmax(1)).float().mean()) > 0.98
    cuda_miou = evaluate(model, split.x_test, split.y_test, device="cuda").summary()["miou"]
    cpu_miou = evaluate(model, split.x_test, split.y_test, device="cpu").summary()["miou"]
    assert cuda_miou == pytest.approx(cpu_miou, abs=0.02)


# ---------------------------------------------------------------------------------------------- checkpoints
CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


@pytest.fixture(scope="module")
def recipe_test_split():
    """The recipes' full test scenes (seed 0; they do not depend on n_train, so train on 1 scene)."""
    shapes = RECIPES["unet"].defaults["shapes"]
    return load_shapes_split(1, 1, shapes["n_test"], size=shapes["size"], seed=0)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_checkpoint_reproduces_its_metrics(name, recipe_test_split):
    path = CHECKPOINTS / f"{name}.pt"
    assert path.exists(), f"{path} is missing: coursekit train {name} --out {path}"
    assert path.stat().st_size < 1_000_000, "segmentation checkpoints stay under 1 MB"
    model, meta = load_trained(name)
    assert meta["name"] == name and meta["command"].startswith(f"coursekit train {name}")
    assert meta["seed"] == 0 and "--quick" not in meta["command"], "made on the recipe's full split, seed 0"
    split = recipe_test_split
    summary = evaluate(model, split.x_test, split.y_test, device="cpu").summary()
    for key in ("miou", "pixel_accuracy", "dice"):
        assert summary[key] == pytest.approx(meta["metrics"][key], abs=1e-4), key
    if name == "unet":  # issue 4: U-Net reaches mIoU >= 0.90 on the test split
        assert summary["miou"] >= 0.90, summary


def test_checkpoints_are_seed_0_of_the_recorded_comparison():
    """The shipped checkpoints and results/segmentation.json come from the same commands: each checkpoint's
    recorded mIoU is its model's seed-0 run in the record (orderings are the record's, over five seeds)."""
    from coursekit.bench import load_record

    record = load_record("segmentation")
    for arm in record.data["arms"]:
        sidecar = json.loads((CHECKPOINTS / f"{arm['recipe']}.json").read_text())
        seed_0 = next(run for run in arm["runs"] if run["seed"] == 0)
        assert sidecar["command"].split(" --out")[0] == seed_0["command"].split(" --seed")[0]
        assert sidecar["seed"] == 0 and sidecar["metrics"]["miou"] == pytest.approx(seed_0["metrics"]["miou"], abs=1e-3)


def test_unet_weight_map_is_the_papers_equation_2():
    """w = w_c + w0·exp(−(d1 + d2)²/2σ²) on background, w_c on objects; d1, d2 checked by hand."""
    import math

    from coursekit.ops.losses import unet_weight_map

    masks = torch.zeros(3, 6, 14)
    masks[0, :, 0:4] = masks[1, :, 6:10] = 1  # two bars two pixels apart; the third object is absent
    class_weight = torch.full((6, 14), 2.0)
    w = unet_weight_map(masks, w0=10, sigma=5, class_weight=class_weight)
    row = w[3]
    assert torch.equal(row[:4], torch.full((4,), 2.0)) and torch.equal(row[6:10], torch.full((4,), 2.0))
    for col, d1, d2 in [(4, 1, 2), (5, 1, 2), (10, 1, 7), (13, 4, 10)]:
        assert float(row[col]) == pytest.approx(2 + 10 * math.exp(-((d1 + d2) ** 2) / 50), rel=1e-6), col
    with pytest.raises(ValueError, match="K >= 2"):
        unet_weight_map(masks[:1])


def test_checkpoint_results_are_the_rows_of_the_shipped_checkpoints(recipe_test_split):
    from coursekit.engine import checkpoint_results

    models, rows = checkpoint_results({"FCN-8s": "fcn8s", "U-Net": "unet"}, recipe_test_split, device="cpu")
    assert list(models) == list(rows) == ["FCN-8s", "U-Net"]
    for label, name in (("FCN-8s", "fcn8s"), ("U-Net", "unet")):
        meta = json.loads((CHECKPOINTS / f"{name}.json").read_text())
        assert rows[label]["miou"] == pytest.approx(meta["metrics"]["miou"], abs=1e-4)  # the recipe's test scenes
        assert rows[label]["recorded_miou"] == meta["metrics"]["miou"]
        assert rows[label]["seconds"] == meta["metrics"]["train_seconds"]
        assert rows[label]["params"] == sum(p.numel() for p in models[label].parameters())
        assert not models[label].training
