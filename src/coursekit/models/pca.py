"""Principal component analysis, the baseline a linear autoencoder cannot beat, and principal angles.

PCA with k components keeps the k directions of largest variance of the centred training data,
the top right-singular vectors of X − μ:

    X − μ = U Σ Vᵀ,   code = (x − μ) V_k,   x̂ = μ + code V_kᵀ

which minimises the squared reconstruction error over all rank-k affine maps (Eckart–Young). The
principal angles θ₁ ≤ … ≤ θ_k between two k-dimensional subspaces with orthonormal bases Q_A, Q_B
are cos θ_i = σ_i(Q_Aᵀ Q_B); all zero means the subspaces coincide.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PCA:
    """A fitted PCA: ``mean`` (d,), ``components`` (k, d) with orthonormal rows, ``explained_variance`` (k,)."""

    mean: torch.Tensor
    components: torch.Tensor
    explained_variance: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor, k: int) -> "PCA":
        """Fit k components to the rows of ``x`` (N, d) by an SVD of the centred data, in float64."""
        x = x.flatten(1).double()
        if not 1 <= k <= min(x.shape):
            raise ValueError(f"k must be in 1..{min(x.shape)} for data of shape {tuple(x.shape)}, got {k}")
        mean = x.mean(0)
        _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
        return cls(mean=mean, components=vt[:k], explained_variance=s[:k] ** 2 / (len(x) - 1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """code = (x − μ) V_k, shape (N, k)."""
        return (x.flatten(1).double() - self.mean) @ self.components.T

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """x̂ = μ + code V_kᵀ, shape (N, d)."""
        return self.mean + code @ self.components

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x̂ = μ + (x − μ) V_k V_kᵀ, the orthogonal projection onto the affine PCA subspace, shaped like x."""
        return self.decode(self.encode(x)).to(x.dtype).view_as(x)


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, ascending) between the column spaces of ``a`` (d, p) and ``b`` (d, q).

    Orthonormalise both by QR, then cos θ_i are the singular values of Q_aᵀ Q_b (clipped to [0, 1]
    against round-off); ``min(p, q)`` angles come back.
    """
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must have the same number of rows, got {a.shape[0]} and {b.shape[0]}")
    qa, _ = torch.linalg.qr(a.double())
    qb, _ = torch.linalg.qr(b.double())
    cosines = torch.linalg.svdvals(qa.T @ qb).clamp(0.0, 1.0)
    return torch.arccos(cosines).sort().values
