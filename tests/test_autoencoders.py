"""Part I's first models: dense/linear/conv autoencoders, PCA, principal angles, the shared training loop,
and the ``linear-ae``, ``dense-ae`` and ``conv-ae`` recipes through the command line."""

import copy
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from coursekit.checkpoint import load_trained
from coursekit.data import load_digits_split
from coursekit.engine import refine_lbfgs, train_autoencoder
from coursekit.metrics.reconstruction import evaluate_mse, mse
from coursekit.models.autoencoders import ConvAutoencoder, DenseAutoencoder, conv_ae, dense_ae, linear_ae
from coursekit.models.pca import PCA, principal_angles
from coursekit.ops.losses import reconstruction_loss


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(seed=0)


# --- models -------------------------------------------------------------------------------------------

def test_dense_ae_is_the_lectures_f_and_g():
    torch.manual_seed(0)
    model = dense_ae(in_features=64, code_size=16)
    x = torch.rand(5, 64)
    W, b = model.encoder[0].weight, model.encoder[0].bias
    W_star, b_star = model.decoder[0].weight, model.decoder[0].bias
    assert W.shape == (16, 64) and W_star.shape == (64, 16)
    z = torch.sigmoid(x @ W.T + b)
    torch.testing.assert_close(model.encode(x), z)
    torch.testing.assert_close(model(x), torch.sigmoid(z @ W_star.T + b_star))
    assert model(x.view(5, 1, 8, 8)).shape == (5, 1, 8, 8)  # images are flattened and given back shaped


def test_dense_ae_hidden_layers_mirror_and_linear_has_no_activation():
    model = DenseAutoencoder(64, 8, hidden=(32,), activation="tanh", out_activation=None)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 32), (32, 8), (8, 32), (32, 64)]
    lin = linear_ae(64, 4)
    assert all(isinstance(m, (nn.Linear, nn.Identity, nn.Sequential, DenseAutoencoder)) for m in lin.modules())
    x = torch.randn(3, 64)
    W, b = lin.encoder[0].weight, lin.encoder[0].bias
    W_star, b_star = lin.decoder[0].weight, lin.decoder[0].bias
    torch.testing.assert_close(lin(x), (x @ W.T + b) @ W_star.T + b_star)
    with pytest.raises(ValueError, match="activation"):
        DenseAutoencoder(64, 8, activation="swish")
    with pytest.raises(ValueError, match="positive"):
        DenseAutoencoder(64, 0)


@pytest.mark.parametrize("upsample", ["resize", "transposed"])
@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (3, 1, 28, 28), (1, 3, 16, 12)])
def test_conv_ae_keeps_shape_and_range(upsample, shape):
    torch.manual_seed(0)
    model = conv_ae(in_channels=shape[1], code_channels=4, upsample=upsample, mean=0.5, std=0.25)
    x = torch.rand(shape)
    with torch.no_grad():
        code, out = model.encode(x), model(x)
    assert code.shape == (shape[0], 4, shape[2] // 4, shape[3] // 4)
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1


def test_conv_ae_relu_everywhere_sigmoid_last_and_normalised_input():
    model = conv_ae(in_channels=1, code_channels=4, mean=0.3, std=0.2)
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    activations = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.Sigmoid, nn.Tanh))]
    assert len(activations) == len(convs)                     # one activation per convolution
    assert all(isinstance(a, nn.ReLU) for a in activations[:-1])
    assert isinstance(activations[-1], nn.Sigmoid) and list(model.decoder)[-1] is activations[-1]
    assert isinstance(list(model.decoder)[-2], nn.Conv2d)      # the sigmoid follows the last convolution
    # the input is normalised with the buffers, which travel with the state dict
    assert {"mean", "std"} <= set(model.state_dict())
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(model.encode(x), model.encoder((x - 0.3) / 0.2))
    with pytest.raises(ValueError, match="multiples of 4"):
        model(torch.rand(1, 1, 10, 8))
    with pytest.raises(ValueError, match="upsample"):
        ConvAutoencoder(upsample="bilinear-ish")


def test_transposed_upsampling_leaves_a_checkerboard_resize_does_not():
    """A constant code map through a 3×3, stride-2 transposed convolution (all weights 1) gives a periodic
    pattern: the kernel overlaps some output pixels more often than others. Resize-then-convolve does not."""
    from coursekit.models.autoencoders import _upsample

    up = _upsample(1, 1, "transposed")
    nn.init.ones_(up.weight), nn.init.zeros_(up.bias)
    with torch.no_grad():
        out = up(torch.ones(1, 1, 4, 4))[0, 0, 1:-1, 1:-1]  # away from the edges
    assert out.shape[-1] == 6 and len(out.unique()) > 1       # 4 → 8 before cropping, uneven
    resize = _upsample(1, 1, "resize")
    nn.init.ones_(resize[1].weight), nn.init.zeros_(resize[1].bias)
    with torch.no_grad():
        flat = resize(torch.ones(1, 1, 4, 4))[0, 0, 1:-1, 1:-1]
    assert len(flat.unique()) == 1


# --- PCA and principal angles -------------------------------------------------------------------------

def test_pca_matches_sklearn_and_svd(digits):
    from sklearn.decomposition import PCA as SkPCA

    x = digits.x_train.double()
    pca = PCA.fit(x, 10)
    sk = SkPCA(n_components=10, svd_solver="full").fit(x.numpy())
    np.testing.assert_allclose(pca.explained_variance.numpy(), sk.explained_variance_, rtol=1e-8)
    np.testing.assert_allclose(pca.mean.numpy(), sk.mean_, atol=1e-12)
    # components agree up to sign
    signs = np.sign((pca.components.numpy() * sk.components_).sum(1))
    np.testing.assert_allclose(pca.components.numpy() * signs[:, None], sk.components_, atol=1e-8)
    x_test = digits.x_test.double()
    np.testing.assert_allclose(pca.reconstruct(x_test).numpy(), sk.inverse_transform(sk.transform(x_test.numpy())),
                               atol=1e-10)
    # orthonormal rows, and the residual is orthogonal to the subspace
    torch.testing.assert_close(pca.components @ pca.components.T, torch.eye(10, dtype=torch.float64))
    residual = x_test - pca.reconstruct(x_test)
    assert float((residual @ pca.components.T).abs().max()) < 1e-10


def test_pca_training_error_is_the_sum_of_dropped_eigenvalues(digits):
    x = digits.x_train.double()
    k = 12
    eigen = torch.linalg.eigvalsh(torch.cov(x.T)).flip(0)  # descending
    error = float(((PCA.fit(x, k).reconstruct(x) - x) ** 2).sum(1).mean())
    assert error == pytest.approx(float(eigen[k:].sum()) * (len(x) - 1) / len(x), rel=1e-9)
    with pytest.raises(ValueError, match="k must be"):
        PCA.fit(x, 0)


def test_principal_angles_known_cases():
    e = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(principal_angles(e[:, :2], e[:, :2]), torch.zeros(2, dtype=torch.float64))
    # a different basis of the same plane: still zero
    assert float(principal_angles(e[:, :2], e[:, :2] @ torch.tensor([[2.0, 1.0], [0.5, -3.0]]).double()).max()) < 1e-7
    # the xy-plane and the plane spanned by x and (y + z)/√2: angles 0 and 45°
    b = torch.stack([e[:, 0], (e[:, 1] + e[:, 2]) / math.sqrt(2)], 1)
    np.testing.assert_allclose(principal_angles(e[:, :2], b).numpy(), [0.0, math.pi / 4], atol=1e-7)
    # orthogonal lines: 90°
    assert float(principal_angles(e[:, :1], e[:, 2:])) == pytest.approx(math.pi / 2)
    # against scipy
    from scipy.linalg import subspace_angles

    g = torch.Generator().manual_seed(0)
    a, c = torch.randn(10, 4, generator=g, dtype=torch.float64), torch.randn(10, 3, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(principal_angles(a, c).numpy(), np.sort(subspace_angles(a.numpy(), c.numpy())),
                               atol=1e-10)
    with pytest.raises(ValueError, match="same number of rows"):
        principal_angles(a, c[:5])


# --- training --------------------------------------------------------------------------------------------

def test_linear_ae_reaches_pca_within_one_percent(digits):
    """Baldi & Hornik: a linear AE trained to convergence reconstructs held-out data as well as PCA with k
    components (within 1%), and its decoder spans the same subspace."""
    k = 8
    torch.manual_seed(0)
    model = linear_ae(64, k)
    train_autoencoder(model, digits, epochs=100, lr=1e-2, batch_size=len(digits.x_train), schedule="cosine")
    refine_lbfgs(model, digits.x_train, max_iter=400)
    pca = PCA.fit(digits.x_train, k)
    pca_test = mse(pca.reconstruct(digits.x_test), digits.x_test)
    ae_test = evaluate_mse(model, digits.x_test)
    assert abs(ae_test / pca_test - 1) < 0.01, (ae_test, pca_test)
    # the training error cannot beat PCA's (Eckart–Young), up to round-off
    assert evaluate_mse(model, digits.x_train) >= mse(pca.reconstruct(digits.x_train), digits.x_train) * (1 - 1e-6)
    angles = principal_angles(model.decoder[0].weight.detach(), pca.components.T)
    assert math.degrees(float(angles.max())) < 5.0


def test_refine_lbfgs_lowers_the_loss_and_keeps_dtype(digits):
    torch.manual_seed(0)
    model = linear_ae(64, 4)
    before = evaluate_mse(model, digits.x_train)
    after = refine_lbfgs(model, digits.x_train, max_iter=50)
    assert after < before and next(model.parameters()).dtype == torch.float32
    assert evaluate_mse(model, digits.x_train) == pytest.approx(after, rel=1e-4)


def test_train_autoencoder_history_and_hooks(digits):
    torch.manual_seed(0)
    model = dense_ae(64, 8)
    before = evaluate_mse(model, digits.x_test)
    calls = {"penalty": 0, "corrupt": 0}

    def penalty(model, x, code):
        calls["penalty"] += 1
        assert code.shape == (len(x), 8)
        return 0.0 * code.sum()

    def corrupt(x):
        calls["corrupt"] += 1
        return x

    history = train_autoencoder(model, digits, epochs=3, lr=1e-2, penalty=penalty, corrupt=corrupt, loss="bce")
    assert len(history["val_mse"]) == 3 and history["val_mse"][-1] < before
    assert calls["penalty"] == calls["corrupt"] == 3 * -(-len(digits.x_train) // 64)
    assert evaluate_mse(model, digits.x_test) < before
    with pytest.raises(ValueError, match="schedule"):
        train_autoencoder(model, digits, epochs=1, schedule="warm")


def test_reconstruction_losses_and_evaluate_mse():
    x = torch.tensor([[0.0, 1.0, 0.25, 0.5]])
    x_hat = torch.full_like(x, 0.5)
    assert float(reconstruction_loss(x_hat, x, "mse")) == pytest.approx((0.25 + 0.25 + 0.0625) / 4)
    assert float(reconstruction_loss(x_hat, x, "bce")) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="unknown loss"):
        reconstruction_loss(x_hat, x, "l1")
    identity = linear_ae(4, 4)
    with torch.no_grad():
        identity.encoder[0].weight.copy_(torch.eye(4)), identity.encoder[0].bias.zero_()
        identity.decoder[0].weight.copy_(torch.eye(4)), identity.decoder[0].bias.fill_(0.1)
    assert evaluate_mse(identity, torch.rand(50, 4), batch_size=7) == pytest.approx(0.01, rel=1e-6)


# --- command line ----------------------------------------------------------------------------------------

MEAN_IMAGE_MSE = 0.0745  # test MSE of always answering the average training digit

def _train_cli(*args):
    out = subprocess.run([sys.executable, "-m", "coursekit.cli", "train", *args, "--quick", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cli_linear_ae_reports_pca(tmp_path):
    metrics = _train_cli("linear-ae", "--code-size", "8", "--out", str(tmp_path / "linear.pt"))
    assert metrics["model"] == "linear-ae"
    assert 0 < metrics["test_mse"] < 0.05 and 0 < metrics["pca_test_mse"] < 0.05
    assert abs(metrics["test_mse"] / metrics["pca_test_mse"] - 1) < 0.05, metrics
    model, meta = load_trained(tmp_path / "linear.pt")
    assert meta["name"] == "linear-ae" and meta["config"]["code_size"] == 8
    digits = load_digits_split(seed=0)
    assert evaluate_mse(model, digits.x_test) == pytest.approx(metrics["test_mse"], rel=1e-5)


@pytest.mark.parametrize("name", ["dense-ae", "conv-ae"])
def test_cli_dense_and_conv_ae(tmp_path, name):
    path = tmp_path / f"{name}.pt"
    metrics = _train_cli(name, "--seed", "1", "--out", str(path))
    assert 0 < metrics["test_mse"] < MEAN_IMAGE_MSE, metrics
    model, meta = load_trained(path)
    assert meta["name"] == name
    shape = (1, 1, 8, 8) if name == "conv-ae" else (1, 64)
    assert model(torch.rand(shape)).shape == shape
    x_test = load_digits_split(seed=1, flat=name == "dense-ae").x_test
    assert evaluate_mse(model, x_test) == pytest.approx(metrics["test_mse"], rel=1e-5)


def test_conv_ae_recipe_rejects_a_code_size_the_map_cannot_hold():
    from coursekit.errors import UsageError
    from coursekit.recipes import train_recipe

    with pytest.raises(UsageError, match="multiple of 4"):
        train_recipe("conv-ae", quick=True, device="cpu", code_size=10)


# --- GPU: the same computation on CPU and CUDA ----------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("build, shape", [
    (lambda: dense_ae(64, 16), (8, 64)),
    (lambda: linear_ae(64, 16), (8, 64)),
    (lambda: conv_ae(1, 4, mean=0.3, std=0.3), (8, 1, 8, 8)),
    (lambda: conv_ae(1, 4, upsample="transposed"), (8, 1, 28, 28)),
])
def test_models_compute_the_same_on_cuda(build, shape):
    torch.manual_seed(0)
    model, x = build().eval(), torch.rand(shape)
    with torch.no_grad():
        cpu = model(x)
        cuda = model.cuda()(x.cuda())
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=0, atol=5e-3)  # float32; cuDNN convolutions may use TF32


def _train_copies(build, split, **kwargs):
    """The final validation MSE of one model trained on CPU and of an identical copy trained on CUDA."""
    torch.manual_seed(0)
    model = build()
    copies = {"cpu": model, "cuda": copy.deepcopy(model)}
    return {device: train_autoencoder(m, split, device=device, **kwargs)["val_mse"]
            for device, m in copies.items()}


@pytest.mark.gpu
def test_conv_ae_training_on_cuda_follows_the_cpu_run():
    split = load_digits_split(seed=0, flat=False)
    stats = dict(mean=float(split.x_train.mean()), std=float(split.x_train.std()))
    runs = _train_copies(lambda: conv_ae(1, 4, **stats), split, epochs=5, lr=3e-3)
    assert runs["cuda"][-1] < runs["cuda"][0]
    # same batches, same initialisation; TF32 convolutions on CUDA drift a little over 5 epochs
    np.testing.assert_allclose(runs["cuda"], runs["cpu"], rtol=0.05)


@pytest.mark.gpu
def test_linear_ae_on_cuda_reaches_pca_as_on_cpu(digits):
    pca_test = mse(PCA.fit(digits.x_train, 8).reconstruct(digits.x_test), digits.x_test)
    test_mse = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = linear_ae(64, 8)
        train_autoencoder(model, digits, epochs=100, lr=1e-2, batch_size=len(digits.x_train), schedule="cosine",
                          device=device)
        refine_lbfgs(model, digits.x_train, max_iter=400)  # float64 on either device
        test_mse[device] = evaluate_mse(model, digits.x_test)
    assert test_mse["cuda"] == pytest.approx(test_mse["cpu"], rel=1e-3)
    assert test_mse["cuda"] == pytest.approx(pca_test, rel=0.01)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["linear-ae", "dense-ae", "deep-ae", "conv-ae"])
def test_recipes_on_cuda_match_the_cpu_metrics(name):
    from coursekit.recipes import train_recipe

    metrics = {device: train_recipe(name, quick=True, device=device).metrics["test_mse"] for device in ("cpu", "cuda")}
    assert metrics["cuda"] < MEAN_IMAGE_MSE
    # float32 on both devices (no autocast for autoencoders); conv-ae's TF32 convolutions drift the most
    assert metrics["cuda"] == pytest.approx(metrics["cpu"], rel=0.1), metrics


def test_deep_ae_recipe_records_the_architecture_it_trained():
    """``deep-ae``'s result config rebuilds its model (hidden layer, tanh) exactly: the sidecar can reload it."""
    from coursekit.recipes import RECIPES, train_recipe

    result = train_recipe("deep-ae", quick=True, device="cpu", code_size=3, epochs=1)
    assert result.config == {"in_features": 64, "code_size": 3, "hidden": (128,), "activation": "tanh"}
    rebuilt = RECIPES["deep-ae"].build(**result.config)
    rebuilt.load_state_dict(result.model.state_dict())  # same parameter names and shapes
    x = torch.rand(5, 64)
    assert torch.equal(rebuilt.eval()(x), result.model.cpu().eval()(x))
