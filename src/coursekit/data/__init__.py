"""Datasets: scikit-learn's bundled digits, our synthetic ``shapes`` scenes, real-dataset loaders, one batcher.

``load_images`` and ``load_scenes`` are what the chapters call: the defaults, or the real datasets that
``$COURSEKIT_DATA`` names (``coursekit.data.course``).

Nothing here downloads anything unless a user passes ``download=True`` to a real-dataset loader.
"""

from coursekit.data.batches import Batches
from coursekit.data.course import load_images, load_scenes, on_default_data
from coursekit.data.digits import Split, load_digits_split
from coursekit.data.real import load_mnist
from coursekit.data.segmentation_real import (
    IGNORE_INDEX,
    OxfordPetSegmentation,
    PascalVOCSegmentation,
    load_segmentation,
)
from coursekit.data.shapes import (
    CLASSES,
    Scene,
    ShapesDetection,
    ShapesSegmentation,
    detection_collate,
    load_shapes_split,
    make_scene,
)

__all__ = ["Batches", "CLASSES", "IGNORE_INDEX", "OxfordPetSegmentation", "PascalVOCSegmentation", "Split",
           "load_mnist", "load_segmentation", "Scene", "ShapesDetection", "ShapesSegmentation",
           "detection_collate", "load_digits_split", "load_images", "load_scenes", "load_shapes_split", "make_scene",
           "on_default_data"]
