"""coursekit: the package behind the Encoder–Decoder Models course.

Every model, dataset, trainer, metric, plot and the grader used by the book lives here; the chapters
import it instead of copying code between notebooks.
"""

from coursekit.device import budget, get_device, quick_mode, seed_everything

__version__ = "0.1.0"
__all__ = ["budget", "get_device", "quick_mode", "seed_everything", "__version__"]
