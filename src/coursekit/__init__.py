"""coursekit: the package behind the Encoder–Decoder Models course.

Every model, dataset, trainer, metric, plot and the grader used by the book lives here; the chapters
import it instead of copying code between notebooks. The layers, each importing only the ones below it (CONTRIBUTING.md has the table):

    cli                  the ``coursekit`` command (imports torch only for commands that need it)
    recipes              one ``Recipe`` per model: builder, defaults, quick defaults, accepted options
    engine               ``fit`` and the autoencoder, segmentation and detection loops on top of it
    checkpoint           save, load, ``load_trained(name_or_path) -> (model, record)``
    metrics              reconstruction, classification, segmentation, detection
    models               modules and builder functions only, one family per file
    data                 digits, shapes, real datasets, one batcher
    ops                  box ops, losses, penalties, corruptions: pure functions on tensors
    device               device, seeding, quick mode

``import coursekit`` itself is light (no torch): ``budget``, ``get_device``, ``quick_mode``, ``seeded``
and ``seed_everything`` load ``coursekit.device`` on first use.
"""

__version__ = "0.1.0"
__all__ = ["budget", "get_device", "quick_mode", "seed_everything", "seeded", "__version__"]


def __getattr__(name: str):
    if name in __all__:
        from coursekit import device

        return getattr(device, name)
    raise AttributeError(f"module 'coursekit' has no attribute {name!r}")
