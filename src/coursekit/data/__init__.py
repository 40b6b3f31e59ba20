"""Datasets: scikit-learn's bundled digits, our synthetic ``shapes`` scenes, and real-dataset loaders.

Nothing here downloads anything unless a user passes ``download=True`` to a real-dataset loader.
"""

from coursekit.data.digits import Split, load_digits_split
from coursekit.data.real import load_mnist
from coursekit.data.shapes import (
    CLASSES,
    Scene,
    ShapesDetection,
    ShapesSegmentation,
    detection_collate,
    make_scene,
)

__all__ = ["CLASSES", "Split", "load_mnist", "Scene", "ShapesDetection", "ShapesSegmentation",
           "detection_collate", "load_digits_split", "make_scene"]
