"""The training engine: one generic loop, ``fit``, and the loops of each part of the course built on it.

* ``fit``: device, progress bar, history, mixed precision on CUDA, gradient clipping, scheduler.
* autoencoders: ``train_autoencoder`` (plain, sparse, denoising, contractive: a penalty or a
  corruption), ``refine_lbfgs``, and the stacked AE's ``greedy_pretrain`` / ``pretrain_layer`` /
  ``fine_tune``.
* segmentation: ``train_segmentation``, ``predict``, ``evaluate``, ``train_and_test``, ``checkpoint_results``.
* detection (``coursekit.engine.detection``, its own import): ``train_detector``, ``predict``,
  ``evaluate_detector``.

Each loop takes the device and a seed from its caller; none resets the caller's random state.
"""

from coursekit.engine.autoencoder import (fine_tune, greedy_pretrain, layer_inputs, pretrain_layer, refine_lbfgs,
                                          train_autoencoder)
from coursekit.engine.fit import History, fit, to_device
from coursekit.engine.segmentation import evaluate, predict, checkpoint_results, train_and_test, train_segmentation

__all__ = ["History", "evaluate", "fine_tune", "fit", "greedy_pretrain", "layer_inputs", "predict",
           "pretrain_layer", "checkpoint_results", "refine_lbfgs", "to_device", "train_and_test", "train_autoencoder",
           "train_segmentation"]
