"""The lecture's backprop chain for the plain autoencoder against autograd, in float64."""

import pytest
import torch

from coursekit.models import backprop
from coursekit.models.autoencoders import dense_ae


def _params(n=7, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(k, n, generator=g, dtype=torch.float64)
    b = torch.randn(k, generator=g, dtype=torch.float64)
    W_star = torch.randn(n, k, generator=g, dtype=torch.float64)
    b_star = torch.randn(n, generator=g, dtype=torch.float64)
    x = torch.rand(5, n, generator=g, dtype=torch.float64)
    return x, W, b, W_star, b_star


@pytest.mark.parametrize("kind", ["squared", "cross_entropy"])
def test_gradients_match_autograd(kind):
    x, *params = _params()
    params = [p.requires_grad_() for p in params]
    act = backprop.forward(x, *params)
    backprop.loss(act.h2, x, kind).backward()
    ours = backprop.gradients(x, *[p.detach() for p in params], kind=kind)
    for name, p in zip(["W", "b", "W_star", "b_star"], params):
        assert ours[name].shape == p.shape
        torch.testing.assert_close(ours[name], p.grad, rtol=1e-12, atol=1e-12)


def test_forward_matches_dense_autoencoder_and_its_layers():
    torch.manual_seed(0)
    model = dense_ae(in_features=10, code_size=4).double()
    x = torch.rand(6, 10, dtype=torch.float64)
    W, b = model.encoder[0].weight, model.encoder[0].bias
    W_star, b_star = model.decoder[0].weight, model.decoder[0].bias
    act = backprop.forward(x, W, b, W_star, b_star)
    torch.testing.assert_close(act.h1, model.encode(x))
    torch.testing.assert_close(act.h2, model(x))
    # one gradient of the model's own summed squared error, through torch's layers
    ((model(x) - x) ** 2).sum().backward()
    ours = backprop.gradients(x, W.detach(), b.detach(), W_star.detach(), b_star.detach())
    torch.testing.assert_close(ours["W"], W.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours["W_star"], W_star.grad, rtol=1e-12, atol=1e-12)


def test_losses_match_closed_forms():
    x = torch.tensor([[0.0, 1.0, 0.25]], dtype=torch.float64)
    x_hat = torch.tensor([[0.5, 0.5, 0.5]], dtype=torch.float64)
    assert float(backprop.loss(x_hat, x, "squared")) == pytest.approx(0.25 + 0.25 + 0.0625)
    # each pixel costs −[x log 0.5 + (1 − x) log 0.5] = log 2
    assert float(backprop.loss(x_hat, x, "cross_entropy")) == pytest.approx(3 * torch.log(torch.tensor(2.0)).item())
    with pytest.raises(ValueError, match="unknown loss"):
        backprop.loss(x_hat, x, "hinge")
    with pytest.raises(ValueError, match="unknown loss"):
        backprop.gradients(x, *_params(n=3, k=2)[1:], kind="hinge")


def test_cross_entropy_delta_is_the_residual():
    """With a sigmoid output, ∂L/∂a₂ = x̂ − x for cross-entropy (s' cancels), checked on the bias b*."""
    x, W, b, W_star, b_star = _params()
    act = backprop.forward(x, W, b, W_star, b_star)
    grads = backprop.gradients(x, W, b, W_star, b_star, kind="cross_entropy")
    torch.testing.assert_close(grads["b_star"], (act.h2 - x).sum(0))


def test_gradient_step_with_hand_gradients_lowers_the_loss():
    x, W, b, W_star, b_star = _params(n=16, k=4)
    before = backprop.loss(backprop.forward(x, W, b, W_star, b_star).h2, x)
    g = backprop.gradients(x, W, b, W_star, b_star)
    lr = 0.05
    after = backprop.loss(backprop.forward(x, W - lr * g["W"], b - lr * g["b"], W_star - lr * g["W_star"],
                                           b_star - lr * g["b_star"]).h2, x)
    assert after < before
