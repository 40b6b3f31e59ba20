"""Classification accuracy: of a model's arg-max, and of a linear probe on frozen features."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048) -> float:
    """Fraction of rows of x whose arg-max logit is the label y (eval mode, on the model's device)."""
    model.eval()
    device = next(model.parameters()).device
    correct = sum(int((model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum())
                  for i in range(0, len(x), batch_size))
    return correct / len(x)


def linear_probe_accuracy(features_train: torch.Tensor, y_train: torch.Tensor, features_test: torch.Tensor,
                          y_test: torch.Tensor, C: float = 1.0) -> float:
    """Test accuracy of a logistic regression (scikit-learn, standardised features) trained on frozen features.

    The usual way to ask how useful a representation (codes, raw pixels) is for classification.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def as_numpy(t: torch.Tensor) -> np.ndarray:
        return t.detach().double().cpu().flatten(1).numpy() if t.dim() > 1 else t.detach().cpu().numpy()

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    probe.fit(as_numpy(features_train), as_numpy(y_train))
    return float(probe.score(as_numpy(features_test), as_numpy(y_test)))
