"""Training recipes behind ``coursekit train NAME``: one ``Recipe`` per model of the course.

A recipe says, as data, everything a run needs: the model's builder (a name in
``coursekit.models.BUILDERS``), its trainer (a function in this package), its settings at full
fidelity for each dataset it accepts, what quick mode changes, and which settings the command line
may change (``options``). ``Recipe.configure`` resolves all of that once, with ``budget`` (full or
quick), into a ``TrainConfig``; the trainer reads its settings from there and nowhere else.

``train_recipe(name, seed=..., device=..., **options)`` is the one way to run a recipe, for the
command line, the chapters, the benchmarks and the tests alike. The table below is read by
``coursekit --help`` without importing torch: the trainers and builders load only when a run starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Mapping

from coursekit.errors import UsageError

# The settings the command line can change, as its options spell them.
OPTIONS = {"epochs": "--epochs", "lr": "--lr", "batch_size": "--batch-size", "code_size": "--code-size",
           "loss": "--loss", "labels": "--labels", "noise": "--noise", "level": "--level", "upsample": "--upsample"}


@dataclass(frozen=True)
class TrainConfig:
    """A resolved run: ``config["epochs"]`` reads a setting; ``device`` is a ``torch.device``."""

    recipe: str
    settings: Mapping[str, Any]
    data: str
    data_root: str | None = None
    seed: int = 0
    device: Any = None
    quick: bool = False
    progress: bool = False

    def __getitem__(self, key: str) -> Any:
        return self.settings[key]


@dataclass
class TrainResult:
    """A trained ``model``, the builder arguments that rebuild it (``config``), metrics and history."""

    model: Any
    config: dict[str, Any]
    metrics: dict[str, float]
    history: Any = None


@dataclass(frozen=True)
class Recipe:
    """How ``coursekit train NAME`` builds, trains and measures one model.

    ``defaults[data]`` are the full-fidelity settings on each dataset it accepts (the first is the
    default), ``quick[data]`` what quick mode changes, ``options`` the settings the command line may
    set; ``trainer`` names the function of ``coursekit.recipes`` that runs it.
    """

    name: str
    help: str
    builder: str
    trainer: str
    defaults: Mapping[str, Mapping[str, Any]]
    quick: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    options: tuple[str, ...] = ("epochs", "lr", "batch_size")
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # the values a text option may take

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(self.defaults)

    def configure(self, *, data: str | None = None, data_root: str | None = None, seed: int = 0,
                  device: Any = None, quick: bool | None = None, progress: bool = False,
                  **overrides: Any) -> TrainConfig:
        """Resolve the settings once: the dataset's defaults, quick mode's changes, then ``overrides``.

        ``quick=None`` follows ``$COURSEKIT_QUICK`` (``budget``). An override the recipe does not take,
        or a dataset it does not accept, is a ``UsageError`` naming what it does take.
        """
        from coursekit.device import budget

        data = self.datasets[0] if data in (None, "default") else data
        if data not in self.defaults:
            raise UsageError(f"{self.name} trains on {' or '.join(self.datasets)}, not {data!r}")
        given = {k: v for k, v in overrides.items() if v is not None}
        refused = [k for k in given if k not in self.options]
        if refused:
            takes = ", ".join(OPTIONS[k] for k in self.options) or "no setting"
            raise UsageError(f"{self.name} does not take {', '.join(OPTIONS.get(k, k) for k in refused)} "
                             f"(it takes {takes})")
        for key, allowed in self.choices.items():
            if key in given and given[key] not in allowed:
                raise UsageError(f"{self.name} takes {OPTIONS[key]} {' or '.join(allowed)}, not {given[key]!r}")
        full = dict(self.defaults[data])
        quick = budget(False, True) if quick is None else quick
        settings = {**full, **self.quick.get(data, {})} if quick else full
        return TrainConfig(self.name, {**settings, **given}, data, data_root, seed, device, quick, progress)

    def run(self, config: TrainConfig) -> TrainResult:
        """Train with a resolved ``config`` (``train_recipe`` seeds and picks the device first)."""
        module, function = self.trainer.rsplit(":", 1)
        return getattr(import_module(f"coursekit.recipes.{module}"), function)(config)

    def build(self, **config: Any):
        """The untrained model, from the builder arguments a ``TrainResult`` or a sidecar records."""
        from coursekit.models import get_model

        return get_model(self.builder, **config)


def _ae(code_size, epochs, lr, batch_size, mnist, **extra) -> dict[str, dict]:
    """Settings of a Part I recipe on the digits, and on MNIST / Fashion-MNIST (``mnist`` overrides)."""
    digits = dict(code_size=code_size, epochs=epochs, lr=lr, batch_size=batch_size, limit=None, **extra)
    mnist = {**digits, **mnist}
    return {"digits": digits, "mnist": mnist, "fashion": mnist}


def _ae_quick(digits_epochs: int, mnist_epochs: int, **extra) -> dict[str, dict]:
    """Quick mode: the first 600 training images and a few epochs."""
    mnist = dict(epochs=mnist_epochs, limit=600, **extra)
    return {"digits": dict(epochs=digits_epochs, limit=600, **extra), "mnist": mnist, "fashion": mnist}


_AE_OPTIONS = ("epochs", "lr", "batch_size", "code_size")
SPARSE = dict(rho=0.05, beta=0.03)             # target mean activation ρ, weight β of the KL term
DENOISING = dict(noise="masking", level=0.3)     # the corruption q(x̃ | x) and its level
# Each corruption at the level chapter 6 trains its denoiser at; every autoencoder recipe reports the PSNR
# of its reconstructions of test images corrupted so (psnr_gaussian, psnr_masked, psnr_salt_and_pepper).
NOISE_LEVELS = {"gaussian": 0.3, "masking": 0.3, "salt_and_pepper": 0.2}
CONTRACTIVE = dict(lam=1e-3)                     # weight λ of ‖J_f(x)‖²_F


def _regularised(**extra) -> dict[str, dict]:
    return _ae(32, 100, 1e-2, 64, dict(code_size=64, epochs=10, lr=3e-3, batch_size=128), **extra)


def _stacked(pretrain: bool) -> dict[str, dict]:
    """The stacked AE's settings: in → 2·code → code; ``labels=None`` fine-tunes on every labelled digit."""
    return {k: {**v, "code_size": v["code_size"] // 2, "labels": None, "pretrain": pretrain}
            for k, v in _regularised().items()}

# One budget for the five segmentation models, so their metrics compare; ``arch``: the builder's arguments.
_SEGMENTATION = {"shapes": dict(epochs=8, lr=5e-3, batch_size=32, n_train=2000, n_val=200, n_test=500, size=64,
                                loss="ce", arch={})}
_UNET = {"shapes": {**_SEGMENTATION["shapes"], "arch": {"base_width": 10}}}  # < 250k parameters, as the others
_SEGMENTATION_QUICK = {"shapes": dict(epochs=1, n_train=64, n_val=16, n_test=32)}
_SEGMENTATION_OPTIONS = dict(options=("epochs", "lr", "batch_size", "loss"), choices={"loss": ("ce", "ce+dice")})
_DETECTION_QUICK = {"shapes": dict(n_train=16, n_test=8, epochs=1, lr=2e-3, batch_size=8)}


def _recipes(*recipes: Recipe) -> dict[str, Recipe]:
    return {r.name: r for r in recipes}


# In the lecture's order, as ``coursekit train --help`` lists them. ``batch_size=None``: full batch.
RECIPES: dict[str, Recipe] = _recipes(
    Recipe("linear-ae", "linear autoencoder (no activations) vs PCA with as many components",
           "linear_ae", "autoencoders:train_linear_ae",
           _ae(16, 1000, 1e-2, None, dict(code_size=32, epochs=20, lr=3e-3, batch_size=256), lbfgs_iter=1000),
           _ae_quick(50, 5, lbfgs_iter=300), _AE_OPTIONS),
    Recipe("dense-ae", "the lecture's plain autoencoder: sigmoid code, sigmoid output (--loss mse or bce)",
           "dense_ae", "autoencoders:train_dense_ae",
           _ae(16, 300, 1e-2, 64, dict(code_size=32, epochs=20, lr=3e-3, batch_size=128), loss="mse"),
           _ae_quick(60, 5), (*_AE_OPTIONS, "loss"), {"loss": ("mse", "bce")}),
    Recipe("deep-ae", "non-linear autoencoder: 128 tanh units on each side of a tanh code, sigmoid output",
           "dense_ae", "autoencoders:train_dense_ae",
           _ae(16, 150, 3e-3, 64, dict(code_size=32, epochs=10, lr=3e-3, batch_size=128), hidden=(128,),
               activation="tanh"), _ae_quick(10, 3), _AE_OPTIONS),
    Recipe("conv-ae", "convolutional autoencoder: normalised input, ReLU, sigmoid on the last convolution",
           "conv_ae", "autoencoders:train_conv_ae",
           _ae(16, 100, 1e-2, 64, dict(code_size=196, epochs=10, lr=3e-3, batch_size=128), upsample="transposed"),
           _ae_quick(20, 3), (*_AE_OPTIONS, "upsample"), {"upsample": ("transposed", "resize")}),
    Recipe("sparse-ae", f"sparse autoencoder: β Σ KL(ρ‖ρ̂_j), ρ = {SPARSE['rho']}, β = {SPARSE['beta']}, ρ̂ per batch",
           "dense_ae", "regularized:train_sparse_ae", _regularised(**SPARSE), _ae_quick(2, 2), _AE_OPTIONS),
    Recipe("denoising-ae", f"denoising autoencoder: {DENOISING['noise']} noise at {DENOISING['level']}, loss "
           "against the clean x (--noise gaussian|masking|salt_and_pepper, --level)", "dense_ae",
           "regularized:train_denoising_ae", _regularised(**DENOISING), _ae_quick(2, 2),
           (*_AE_OPTIONS, "noise", "level"), {"noise": tuple(NOISE_LEVELS)}),
    Recipe("contractive-ae", f"contractive autoencoder: λ ‖J_f(x)‖²_F, λ = {CONTRACTIVE['lam']} (closed form for "
           "its sigmoid encoder)", "dense_ae", "regularized:train_contractive_ae", _regularised(**CONTRACTIVE),
           _ae_quick(2, 2), _AE_OPTIONS),
    Recipe("stacked-ae", "stacked autoencoder in → 2·code → code, greedy layer-wise, then a fine-tuned classifier "
           "(--labels N: fine-tune on N labelled digits)", "stacked_classifier", "regularized:train_stacked_ae",
           _stacked(pretrain=True), _ae_quick(2, 2), (*_AE_OPTIONS, "labels")),
    Recipe("scratch-classifier", "the stacked AE's classifier trained from random weights, no pretraining: "
           "the baseline of stacked-ae", "stacked_classifier", "regularized:train_stacked_ae",
           _stacked(pretrain=False), _ae_quick(2, 2), (*_AE_OPTIONS, "labels")),
    Recipe("fcn32s", "FCN-32s on shapes: 1×1 class scores at stride 32, one learned ×32 upsampling",
           "fcn32s", "segmentation:train_segmenter", _SEGMENTATION, _SEGMENTATION_QUICK,
           **_SEGMENTATION_OPTIONS),
    Recipe("fcn16s", "FCN-16s on shapes: FCN-32s plus the pool4 skip (stride 16)",
           "fcn16s", "segmentation:train_segmenter", _SEGMENTATION, _SEGMENTATION_QUICK,
           **_SEGMENTATION_OPTIONS),
    Recipe("fcn8s", "FCN-8s on shapes: FCN-16s plus the pool3 skip (stride 8)",
           "fcn8s", "segmentation:train_segmenter", _SEGMENTATION, _SEGMENTATION_QUICK,
           **_SEGMENTATION_OPTIONS),
    Recipe("segnet", "SegNet on shapes: decoder unpools with the encoder's max-pooling indices",
           "segnet", "segmentation:train_segmenter", _SEGMENTATION, _SEGMENTATION_QUICK,
           **_SEGMENTATION_OPTIONS),
    Recipe("unet", "U-Net on shapes (padded convolutions, concatenated skips)",
           "unet", "segmentation:train_segmenter", _UNET, _SEGMENTATION_QUICK,
           **_SEGMENTATION_OPTIONS),
    Recipe("detector", "Faster R-CNN with a small FPN backbone, from scratch, on 64×64 shapes scenes",
           "detector", "detection:train_detection_recipe",
           {"shapes": dict(n_train=1000, n_test=200, epochs=12, lr=2e-3, batch_size=8)}, _DETECTION_QUICK),
    Recipe("maskrcnn", "Mask R-CNN with a small FPN backbone, from scratch, on 64×64 shapes scenes",
           "maskrcnn", "detection:train_detection_recipe",
           {"shapes": dict(n_train=1000, n_test=200, epochs=16, lr=2e-3, batch_size=8)}, _DETECTION_QUICK),
)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; a ``UsageError`` listing the names otherwise."""
    if name not in RECIPES:
        raise UsageError(f"unknown model {name!r}: use one of {', '.join(RECIPES)}")
    return RECIPES[name]


def train_recipe(name: str, *, seed: int = 0, device: Any = None, quick: bool | None = None,
                 progress: bool = False, data: str | None = None, data_root: str | None = None,
                 **options: Any) -> TrainResult:
    """Train recipe ``name`` and return its ``TrainResult``: the one entry to every recipe.

    ``options`` are the recipe's settings (``epochs``, ``lr``, ...); ``None`` keeps its default. The
    device is resolved here once (``get_device``) and the run is seeded with ``seed`` inside
    ``seeded``, so the caller's random state is left as it was.
    """
    from coursekit.device import get_device, seeded

    recipe = get_recipe(name)
    config = recipe.configure(data=data, data_root=data_root, seed=seed, device=get_device(device),
                              quick=quick, progress=progress, **options)
    with seeded(seed):
        return recipe.run(config)


__all__ = ["OPTIONS", "RECIPES", "Recipe", "TrainConfig", "TrainResult", "get_recipe", "train_recipe"]
