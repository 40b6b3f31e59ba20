"""Sparse, denoising and contractive autoencoders: every equation against an independent computation."""

import copy
import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, kl_divergence

from coursekit.data import load_digits_split
from coursekit.device import seed_everything, seeded
from coursekit.engine import train_autoencoder
from coursekit.metrics.classification import linear_probe_accuracy
from coursekit.models.autoencoders import dense_ae
from coursekit.ops.corruption import CORRUPTIONS, Corruption, corrupt
from coursekit.ops.penalties import (code_sensitivity, contractive_penalty, contractive_penalty_sigmoid,
                                     dataset_rho_hat, jacobian_frobenius, kl_sparsity, rho_hat, sparse_penalty)
from coursekit.recipes import RECIPES


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(seed=0, limit=200)


# ---------------------------------------------------------------------------------------------- sparse

def test_rho_hat_is_the_mean_activation_per_unit():
    code = torch.tensor([[0.1, 0.9], [0.3, 0.5], [0.2, 0.1]])
    torch.testing.assert_close(rho_hat(code), torch.tensor([0.2, 0.5]))
    with pytest.raises(ValueError, match="batch of codes"):
        rho_hat(torch.rand(3))


def test_dataset_rho_hat_is_the_mean_over_the_whole_set_in_any_batch_size():
    torch.manual_seed(0)
    model = dense_ae(64, 8)
    x = torch.rand(37, 64)
    with torch.no_grad():
        expected = model.encode(x).double().mean(0)
    torch.testing.assert_close(dataset_rho_hat(model, x, batch_size=5), expected)
    torch.testing.assert_close(dataset_rho_hat(model, x), expected)


def test_kl_is_zero_exactly_at_rho():
    for rho in (0.01, 0.05, 0.5, 0.9):
        for dtype in (torch.float32, torch.float64):
            assert float(kl_sparsity(rho, torch.full((7,), rho, dtype=dtype))) == 0.0


def test_kl_matches_bernoulli_kl_and_a_hand_value():
    rho = 0.05
    rho_hat_ = torch.tensor([0.01, 0.05, 0.2, 0.5, 0.93], dtype=torch.float64)
    expected = kl_divergence(Bernoulli(probs=torch.full_like(rho_hat_, rho)), Bernoulli(probs=rho_hat_)).sum()
    torch.testing.assert_close(kl_sparsity(rho, rho_hat_), expected, rtol=1e-12, atol=1e-12)
    by_hand = 0.05 * math.log(0.05 / 0.5) + 0.95 * math.log(0.95 / 0.5)
    assert float(kl_sparsity(rho, torch.tensor([0.5], dtype=torch.float64))) == pytest.approx(by_hand, rel=1e-12)


def test_kl_gradient_matches_its_derivative():
    """∂KL/∂ρ̂_j = −ρ/ρ̂_j + (1 − ρ)/(1 − ρ̂_j): negative below ρ, zero at ρ, positive above."""
    rho = 0.1
    r = torch.tensor([0.02, 0.1, 0.3, 0.8], dtype=torch.float64, requires_grad=True)
    kl_sparsity(rho, r).backward()
    expected = -rho / r.detach() + (1 - rho) / (1 - r.detach())
    torch.testing.assert_close(r.grad, expected, rtol=1e-12, atol=1e-12)
    assert r.grad[0] < 0 and abs(float(r.grad[1])) < 1e-12 and r.grad[2] > 0


def test_kl_is_monotone_away_from_rho_and_finite_at_the_ends():
    rho = 0.05
    below = kl_sparsity(rho, torch.tensor([0.04])), kl_sparsity(rho, torch.tensor([0.01]))
    above = kl_sparsity(rho, torch.tensor([0.1])), kl_sparsity(rho, torch.tensor([0.5]))
    assert below[0] < below[1] and above[0] < above[1]
    ends = kl_sparsity(rho, torch.tensor([0.0, 1.0]))
    assert torch.isfinite(ends) and ends > 0
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="rho must be in"):
            kl_sparsity(bad, torch.tensor([0.5]))


def test_sparse_penalty_is_beta_times_kl_of_the_batch_mean():
    code = torch.rand(16, 5, dtype=torch.float64)
    value = sparse_penalty(0.05, 3.0)(None, None, code)
    torch.testing.assert_close(value, 3.0 * kl_sparsity(0.05, code.mean(0)))


def test_a_full_batch_penalty_uses_the_training_set_rho_hat():
    """The lecture's ρ̂ is over the training set: one batch of all of it gives exactly that, a part does not."""
    torch.manual_seed(0)
    model = dense_ae(64, 8)
    x = torch.rand(40, 64)
    full = sparse_penalty(0.05, 2.0)(model, x, model.encode(x))
    torch.testing.assert_close(full.double(), 2.0 * kl_sparsity(0.05, dataset_rho_hat(model, x, batch_size=7)),
                               rtol=1e-5, atol=1e-7)
    half = sparse_penalty(0.05, 2.0)(model, x[:20], model.encode(x[:20])).detach()
    assert abs(float(half) - float(full.detach())) > 1e-4, "a batch's ρ̂ is only an estimate of the training set's"


def test_sparse_training_moves_mean_activations_to_rho(digits):
    rho = 0.05
    means = {}
    for beta in (0.0, 0.1):
        seed_everything(0)
        model = dense_ae(64, 16)
        train_autoencoder(model, digits, epochs=15, lr=1e-2, penalty=sparse_penalty(rho, beta) if beta else None)
        means[beta] = dataset_rho_hat(model, digits.x_train)
    assert (means[0.1] - rho).abs().mean() < 0.5 * (means[0.0] - rho).abs().mean()
    assert float(means[0.1].mean()) < 0.2


# ---------------------------------------------------------------------------------------------- denoising

@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_level_zero_is_the_identity(kind):
    x = torch.rand(4, 64)
    assert corrupt(x, kind, 0.0) is x


def test_masking_zeroes_a_fraction_p_and_leaves_the_rest():
    x = torch.rand(200, 64) * 0.9 + 0.05  # no zero pixels to begin with
    x_tilde = corrupt(x, "masking", 0.3, torch.Generator().manual_seed(0))
    hit = x_tilde != x
    assert torch.all(x_tilde[hit] == 0)
    assert float(hit.float().mean()) == pytest.approx(0.3, abs=0.02)


def test_salt_and_pepper_sets_a_fraction_p_to_0_or_1_evenly():
    x = torch.full((200, 64), 0.5)
    x_tilde = corrupt(x, "salt_and_pepper", 0.2, torch.Generator().manual_seed(0))
    hit = x_tilde != x
    assert set(x_tilde[hit].unique().tolist()) == {0.0, 1.0}
    assert float(hit.float().mean()) == pytest.approx(0.2, abs=0.02)
    assert float(x_tilde[hit].mean()) == pytest.approx(0.5, abs=0.05)


def test_gaussian_noise_has_std_sigma_and_stays_in_range():
    x = torch.full((400, 64), 0.5)
    x_tilde = corrupt(x, "gaussian", 0.1, torch.Generator().manual_seed(0))
    assert float((x_tilde - x).std()) == pytest.approx(0.1, rel=0.05)
    x_tilde = corrupt(x, "gaussian", 2.0, torch.Generator().manual_seed(0))
    assert float(x_tilde.min()) >= 0 and float(x_tilde.max()) <= 1


def test_corruption_is_fresh_each_call_and_repeatable_from_a_seed():
    x = torch.rand(8, 64)
    c = Corruption("masking", 0.5, torch.Generator().manual_seed(3))
    first, second = c(x), c(x)
    assert not torch.equal(first, second)
    again = Corruption("masking", 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(again(x), first)
    with pytest.raises(ValueError, match="unknown corruption"):
        Corruption("blur", 0.1)
    with pytest.raises(ValueError, match="level"):
        Corruption("masking", 1.5)
    with pytest.raises(ValueError, match="level"):
        corrupt(x, "salt_and_pepper", -0.1)
    # building one leaves the global random stream alone (a model built after it gets the same weights)
    torch.manual_seed(0)
    Corruption("gaussian", 0.3)
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(3)), "Corruption(...) drew from the global RNG"


def test_noise_level_zero_trains_exactly_the_plain_autoencoder(digits):
    states = []
    for corruption in (None, Corruption("masking", 0.0)):
        seed_everything(0)
        model = dense_ae(64, 8)
        train_autoencoder(model, digits, epochs=3, lr=1e-2, corrupt=corruption)
        states.append(model.state_dict())
    for name in states[0]:
        assert torch.equal(states[0][name], states[1][name]), name


def test_the_loss_targets_the_clean_input(digits):
    """An input corrupted to all zeros: the best output is the mean clean image (target x), not zeros (target x̃)."""
    seed_everything(0)
    model = dense_ae(64, 4)
    train_autoencoder(model, digits, epochs=40, lr=3e-2, corrupt=lambda x: torch.zeros_like(x))
    with torch.no_grad():
        out = model(torch.zeros(1, 64))[0]
    mean_image = digits.x_train.mean(0)
    assert float((out - mean_image).abs().max()) < 0.05
    assert float(out.mean()) > 0.5 * float(mean_image.mean())


# ---------------------------------------------------------------------------------------------- contractive

def _sigmoid_layer(n=9, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(k, n, generator=g, dtype=torch.float64)
    b = torch.randn(k, generator=g, dtype=torch.float64)
    x = torch.rand(5, n, generator=g, dtype=torch.float64)
    return W, b, x


def test_closed_form_matches_the_autograd_jacobian_in_float64():
    W, b, x = _sigmoid_layer()
    for xi in x:
        J = torch.autograd.functional.jacobian(lambda v: torch.sigmoid(W @ v + b), xi)
        assert J.shape == (4, 9)
        h = torch.sigmoid(W @ xi + b)
        torch.testing.assert_close(contractive_penalty_sigmoid(W, h), (J ** 2).sum(), rtol=1e-12, atol=1e-14)
        # and the lecture's matrix form ∂h/∂x = diag[h(1 − h)] W
        torch.testing.assert_close(J, torch.diag(h * (1 - h)) @ W, rtol=1e-12, atol=1e-14)
    h = torch.sigmoid(x @ W.T + b)
    assert contractive_penalty_sigmoid(W, h).shape == (5,)
    with pytest.raises(ValueError, match="rows"):
        contractive_penalty_sigmoid(W, h[:, :3])


def test_jacobian_frobenius_matches_autograd_for_any_encoder():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(9, 6), nn.Tanh(), nn.Linear(6, 3), nn.ReLU()).double()
    x = torch.randn(4, 9, dtype=torch.float64)
    expected = torch.stack([(torch.autograd.functional.jacobian(lambda v: encoder(v[None])[0], xi) ** 2).sum()
                            for xi in x])
    torch.testing.assert_close(jacobian_frobenius(encoder, x), expected, rtol=1e-12, atol=1e-14)


def test_contractive_penalty_closed_form_and_autograd_agree_in_value_and_gradient():
    torch.manual_seed(0)
    model = dense_ae(10, 4).double()
    x = torch.rand(6, 10, dtype=torch.float64)
    grads = []
    for closed in (True, False):
        model.zero_grad()
        value = contractive_penalty(0.5, closed_form=closed)(model, x, model.encode(x))
        value.backward()
        grads.append((value.detach(), model.encoder[0].weight.grad.clone(), model.encoder[0].bias.grad.clone()))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    W, b = model.encoder[0].weight.detach(), model.encoder[0].bias.detach()
    expected = 0.5 * contractive_penalty_sigmoid(W, torch.sigmoid(x @ W.T + b)).mean()
    torch.testing.assert_close(grads[0][0], expected)
    deep = dense_ae(10, 4, hidden=(8,)).double()
    with pytest.raises(ValueError, match="closed form"):
        contractive_penalty(0.5, closed_form=True)(deep, x, deep.encode(x))
    assert torch.isfinite(contractive_penalty(0.5)(deep, x, deep.encode(x)))  # falls back to autograd


def test_contractive_training_shrinks_the_jacobian(digits):
    norms = {}
    for lam in (0.0, 1e-2):
        seed_everything(0)
        model = dense_ae(64, 16)
        train_autoencoder(model, digits, epochs=10, lr=1e-2, penalty=contractive_penalty(lam) if lam else None)
        norms[lam] = float(jacobian_frobenius(model.encode, digits.x_test).mean())
    assert norms[1e-2] < 0.5 * norms[0.0]


def test_code_sensitivity_of_a_scaled_identity_is_the_scale():
    x = torch.rand(10, 6, dtype=torch.float64)
    assert code_sensitivity(lambda v: 3.0 * v, x, eps=0.01) == pytest.approx(3.0, rel=1e-9)
    # a map that ignores its input does not move at all
    assert code_sensitivity(lambda v: torch.zeros_like(v), x) == 0.0


def test_linear_probe_separates_separable_classes():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3
    features = torch.nn.functional.one_hot(y, 3).float() * 5 + 0.1 * torch.randn(60, 3, generator=g)
    assert linear_probe_accuracy(features[:40], y[:40], features[40:], y[40:]) == 1.0


# ---------------------------------------------------------------------------------------------- command line

REGULARISED = ["sparse-ae", "denoising-ae", "contractive-ae"]
# On the quick data (600 digits) the recipes' 2 epochs show nothing; 100 (about a second each) beat the
# mean-image baseline and show each regulariser's effect.
RECIPE_EPOCHS = 100


@pytest.fixture(scope="module")
def recipe_split():
    return load_digits_split(seed=0, limit=RECIPES["sparse-ae"].configure(quick=True)["limit"])


def _code(model, x):
    """The dense AE's code by hand: h = sigmoid(W x + b)."""
    return torch.sigmoid(x.double() @ model.encoder[0].weight.double().T + model.encoder[0].bias.double())


def _psnr(x_hat, x):
    return 10 * math.log10(1 / float(((x_hat.double() - x.double()) ** 2).mean()))


def _test_mse(model, split):
    return float(((model(split.x_test).double() - split.x_test.double()) ** 2).mean())


def _mean_rho_hat(model, split):
    return float(_code(model, split.x_train).mean())


def _kl_train(model, split):
    rho, r = RECIPES["sparse-ae"].configure(quick=True)["rho"], _code(model, split.x_train).mean(0)
    return float((rho * torch.log(rho / r) + (1 - rho) * torch.log((1 - rho) / (1 - r))).sum())


def _noisy_test(split):
    # the recipe's draw (seed 0): its noise and level, from a generator seeded with seed + 1
    config = RECIPES["denoising-ae"].configure(quick=True)
    return corrupt(split.x_test, config["noise"], config["level"], torch.Generator().manual_seed(1))


def _psnr_corrupted(model, split):
    return _psnr(_noisy_test(split), split.x_test)


def _psnr_denoised(model, split):
    return _psnr(model(_noisy_test(split)), split.x_test)


def _jacobian_frobenius_sq(model, split):
    # ∂h/∂x = diag[h(1 − h)] W, so ‖J‖²_F = Σ_j (h_j(1 − h_j))² Σ_i W_ji²
    h, W = _code(model, split.x_test), model.encoder[0].weight.double()
    return float(((h * (1 - h)) ** 2 @ (W ** 2).sum(1)).mean())


@pytest.mark.parametrize("name, key, recompute", [
    ("sparse-ae", "test_mse", _test_mse), ("sparse-ae", "mean_rho_hat", _mean_rho_hat),
    ("sparse-ae", "kl_train", _kl_train),
    ("denoising-ae", "test_mse", _test_mse), ("denoising-ae", "psnr_corrupted", _psnr_corrupted),
    ("denoising-ae", "psnr_denoised", _psnr_denoised),
    ("contractive-ae", "test_mse", _test_mse), ("contractive-ae", "jacobian_frobenius_sq", _jacobian_frobenius_sq),
])
def test_recipe_metric_agrees_with_a_recomputation(name, key, recompute, quick_recipe, recipe_split):
    result = quick_recipe(name, epochs=RECIPE_EPOCHS)
    with torch.no_grad():
        expected = recompute(result.model.eval(), recipe_split)
    assert result.metrics[key] == pytest.approx(expected, rel=1e-5), key


@pytest.mark.parametrize("name", REGULARISED)
def test_recipe_reconstructs_better_than_the_mean_image(name, quick_recipe, recipe_split):
    mean_image = float(((recipe_split.x_train.mean(0) - recipe_split.x_test) ** 2).mean())
    assert quick_recipe(name, epochs=RECIPE_EPOCHS).metrics["test_mse"] < 0.6 * mean_image


def test_sparse_recipe_brings_mean_activations_near_rho(quick_recipe):
    metrics = quick_recipe("sparse-ae", epochs=RECIPE_EPOCHS).metrics
    assert abs(metrics["mean_rho_hat"] - metrics["rho"]) < 0.03, metrics  # sigmoid codes start near 0.5


def test_denoising_recipe_denoises_better_than_without_noise(quick_recipe, recipe_split):
    """The same recipe with its noise level set to 0 (the plain autoencoder) cleans the same noisy test
    images less well: the gain comes from training on corrupted inputs."""
    recipe = RECIPES["denoising-ae"]
    config = recipe.configure(quick=True, epochs=RECIPE_EPOCHS, device=torch.device("cpu"))
    with seeded(0):
        plain = recipe.run(dataclasses.replace(config, settings={**config.settings, "level": 0.0})).model
    with torch.no_grad():
        plain_psnr = _psnr(plain(_noisy_test(recipe_split)), recipe_split.x_test)
    metrics = quick_recipe("denoising-ae", epochs=RECIPE_EPOCHS).metrics
    assert metrics["psnr_denoised"] > plain_psnr + 0.3, (plain_psnr, metrics)


@pytest.mark.parametrize("name", REGULARISED)
def test_recipe_config_rebuilds_the_same_model(name, quick_recipe, recipe_split):
    result = quick_recipe(name, epochs=RECIPE_EPOCHS)
    rebuilt = RECIPES[name].build(**json.loads(json.dumps(result.config)))  # as a sidecar stores it
    rebuilt.load_state_dict(result.model.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(recipe_split.x_test), result.model.eval()(recipe_split.x_test))


@pytest.mark.parametrize("name", REGULARISED)
def test_cli_json_reports_what_the_recipe_computes(name, quick_recipe):
    out = subprocess.run([sys.executable, "-m", "coursekit.cli", "train", name, "--quick", "--json", "--no-progress",
                          "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert metrics.pop("model") == name
    assert metrics == pytest.approx(quick_recipe(name).metrics, rel=1e-6)


# ---------------------------------------------------------------------------------------------- GPU

# The regularisers of the CUDA tests, made afresh for each run (a corruption's generator is consumed by it). The
# noise comes from a CPU generator, so the CPU and the CUDA run see the same corruptions.
REGULARISERS = {
    "sparse": lambda: dict(penalty=sparse_penalty(0.05, 0.1)),
    "denoising": lambda: dict(corrupt=Corruption("salt_and_pepper", 0.2, torch.Generator().manual_seed(0))),
    "contractive": lambda: dict(penalty=contractive_penalty(1e-2)),
    "contractive-autograd": lambda: dict(penalty=contractive_penalty(1e-2, closed_form=False)),
}


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(REGULARISERS))
def test_regularised_training_on_cuda_follows_the_cpu_run(name, digits):
    seed_everything(0)
    model = dense_ae(64, 16)
    copies = {"cpu": model, "cuda": copy.deepcopy(model)}
    val_mse = {device: train_autoencoder(m, digits, epochs=2, device=device, **REGULARISERS[name]())["val_mse"]
               for device, m in copies.items()}
    assert next(copies["cuda"].parameters()).is_cuda
    # float32 on both (no autocast here): only the summation order differs
    np.testing.assert_allclose(val_mse["cuda"], val_mse["cpu"], rtol=1e-3)


@pytest.mark.gpu
def test_jacobian_on_cuda_matches_the_closed_form_on_cpu(digits):
    torch.manual_seed(0)
    model = dense_ae(64, 16)
    x = digits.x_test
    closed = contractive_penalty_sigmoid(model.encoder[0].weight.detach(), model.encode(x).detach())
    on_cuda = jacobian_frobenius(model.cuda().encode, x.cuda()).cpu()
    torch.testing.assert_close(on_cuda, closed, rtol=1e-4, atol=1e-6)  # float32 on both
