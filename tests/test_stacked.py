"""Stacked autoencoder: greedy layer-wise pretraining keeps earlier layers fixed; fine-tuning moves them all."""

import copy
import json
import subprocess
import sys

import pytest
import torch

from coursekit.data import load_digits_split
from coursekit.device import seed_everything, seeded
from coursekit.engine import fine_tune, greedy_pretrain, layer_inputs, pretrain_layer
from coursekit.metrics.classification import accuracy
from coursekit.metrics.reconstruction import evaluate_mse
from coursekit.models.stacked import StackedAutoencoder, stacked_ae, stacked_classifier
from coursekit.recipes import RECIPES


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(seed=0, limit=200)


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_shapes_and_depths():
    torch.manual_seed(0)
    stack = stacked_ae(64, (32, 16, 8))
    x = torch.rand(5, 64)
    assert stack.depth == 3
    assert stack.encode(x).shape == (5, 8) and stack.encode(x, depth=1).shape == (5, 32)
    assert stack.decode(stack.encode(x)).shape == (5, 64) and stack(x).shape == x.shape
    # encode(x, k) is f_k(… f_1(x)), and layer k's autoencoder shares the stack's parameters
    manual = stack.encoders[1](stack.encoders[0](x))
    torch.testing.assert_close(stack.encode(x, depth=2), manual)
    layer = stack.layer(1)
    assert layer.encoder is stack.encoders[1] and layer.decoder is stack.decoders[1]
    torch.testing.assert_close(layer(stack.encode(x, 1)),
                               stack.decoders[1](stack.encoders[1](stack.encode(x, 1))))
    with pytest.raises(IndexError):
        stack.layer(3)
    with pytest.raises(ValueError):
        StackedAutoencoder(64, ())


def test_layer_inputs_are_the_codes_of_the_layers_below(digits):
    torch.manual_seed(0)
    stack = stacked_ae(64, (32, 16))
    inputs = layer_inputs(stack, digits, 1)
    with torch.no_grad():
        torch.testing.assert_close(inputs.x_train, stack.encoders[0](digits.x_train))
        torch.testing.assert_close(inputs.x_test, stack.encoders[0](digits.x_test))
    assert torch.equal(inputs.y_train, digits.y_train)
    assert torch.equal(layer_inputs(stack, digits, 0).x_val, digits.x_val)


def test_earlier_layers_do_not_change_while_layer_k_trains(digits):
    torch.manual_seed(0)
    stack = stacked_ae(64, (32, 16, 8))
    before = [(_snapshot(e), _snapshot(d)) for e, d in zip(stack.encoders, stack.decoders)]
    pretrain_layer(stack, 1, digits, epochs=3, lr=1e-2)
    after = [(_snapshot(e), _snapshot(d)) for e, d in zip(stack.encoders, stack.decoders)]
    assert _same(before[0][0], after[0][0]), "layer 1 changed while layer 2 trained"
    assert _same(before[0][1], after[0][1]), "decoder 1 changed while layer 2 trained"
    assert not _same(before[1][0], after[1][0]) and not _same(before[1][1], after[1][1]), "layer 2 did not train"
    assert _same(before[2][0], after[2][0]), "a later layer changed"
    for p in stack.parameters():
        assert p.requires_grad  # nothing left frozen behind


def test_greedy_pretraining_lowers_each_layers_reconstruction_error(digits):
    torch.manual_seed(0)
    stack = stacked_ae(64, (32, 16))
    errors_before = [evaluate_mse(stack.layer(k), layer_inputs(stack, digits, k).x_val) for k in range(2)]
    histories = greedy_pretrain(stack, digits, epochs=20, lr=1e-2)
    assert len(histories) == 2
    # layer 2's inputs moved when layer 1 trained, so compare it on its final inputs
    assert evaluate_mse(stack.layer(0), digits.x_val) < 0.5 * errors_before[0]
    assert histories[1]["val_mse"][-1] < histories[1]["val_mse"][0]


def test_fine_tuning_updates_every_layer_and_learns(digits):
    seed_everything(0)
    model = stacked_classifier(64, (32, 16))
    greedy_pretrain(model.stack, digits, epochs=10, lr=1e-2)
    encoders_before, head_before = _snapshot(model.stack.encoders), _snapshot(model.head)
    chance = accuracy(model, digits.x_test, digits.y_test)
    history = fine_tune(model, digits, epochs=80, lr=1e-2)
    assert not any(torch.equal(encoders_before[k], v) for k, v in _snapshot(model.stack.encoders).items())
    assert not _same(head_before, _snapshot(model.head))
    acc = accuracy(model, digits.x_test, digits.y_test)
    assert acc > 0.8 and acc > chance, (chance, acc)
    assert "val_accuracy" in history.keys()


def test_accuracy_counts_argmax_hits():
    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return x

    logits = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert accuracy(Fixed(), logits, torch.tensor([0, 1, 1, 1])) == 0.75


def test_pretraining_helps_with_few_labels(digits):
    """Pretrained on all 200 images, fine-tuned on 40 labels: better than the same net from random init."""
    seed_everything(0)
    pretrained = stacked_classifier(64, (32, 16))
    greedy_pretrain(pretrained.stack, digits, epochs=30, lr=1e-2)
    seed_everything(1)
    scratch = stacked_classifier(64, (32, 16))
    accs = {}
    for name, model in {"pretrained": pretrained, "scratch": scratch}.items():
        fine_tune(model, digits, epochs=40, lr=3e-3, limit=40, seed=1)
        accs[name] = accuracy(model, digits.x_test, digits.y_test)
    assert accs["pretrained"] > accs["scratch"], accs


# --- the stacked-ae recipe ------------------------------------------------------------------------------

RECIPE_EPOCHS = 20  # on the quick data (600 digits): 2 epochs leave the classifier at chance, 20 reach ~0.8


@pytest.fixture(scope="module")
def recipe(quick_recipe):
    return quick_recipe("stacked-ae", epochs=RECIPE_EPOCHS)


@pytest.fixture(scope="module")
def recipe_split():
    return load_digits_split(seed=0, limit=RECIPES["stacked-ae"].configure(quick=True)["limit"])


def test_recipe_reports_its_classifiers_accuracy(recipe, recipe_split):
    x, y = recipe_split.x_test, recipe_split.y_test
    with torch.no_grad():
        logits = recipe.model.eval()(x)
    assert recipe.metrics["test_accuracy"] == int((logits.argmax(1) == y).sum()) / len(y)


def test_recipe_classifier_beats_its_untrained_self(recipe, recipe_split):
    with seeded(0):
        untrained = RECIPES["stacked-ae"].build(**recipe.config)
    chance = accuracy(untrained, recipe_split.x_test, recipe_split.y_test)
    assert recipe.metrics["test_accuracy"] > max(0.5, chance + 0.3), (chance, recipe.metrics)


def test_recipe_pretrained_stack_reconstructs_better_than_the_mean_image(recipe, recipe_split):
    # test_mse is measured after pretraining, before fine-tuning moves the encoders
    mean_image = float(((recipe_split.x_train.mean(0) - recipe_split.x_test) ** 2).mean())
    assert recipe.metrics["test_mse"] < mean_image, (mean_image, recipe.metrics)


def test_recipe_config_rebuilds_the_same_model(recipe, recipe_split):
    rebuilt = RECIPES["stacked-ae"].build(**json.loads(json.dumps(recipe.config)))  # as a sidecar stores it
    rebuilt.load_state_dict(recipe.model.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(recipe_split.x_test), recipe.model.eval()(recipe_split.x_test))


def test_cli_reports_what_the_recipe_computes(quick_recipe):
    out = subprocess.run([sys.executable, "-m", "coursekit.cli", "train", "stacked-ae", "--quick", "--json",
                          "--no-progress", "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert metrics.pop("model") == "stacked-ae"
    assert metrics == pytest.approx(quick_recipe("stacked-ae").metrics, rel=1e-6)


@pytest.mark.gpu
def test_stacked_training_on_cuda_follows_the_cpu_run(digits):
    seed_everything(0)
    models = {"cpu": stacked_classifier(64, (32, 16))}
    models["cuda"] = copy.deepcopy(models["cpu"])
    for device, model in models.items():  # the same batches on both: they come from a CPU generator
        greedy_pretrain(model.stack, digits, epochs=2, device=device)
        fine_tune(model, digits, epochs=2, device=device)
    assert next(models["cuda"].parameters()).is_cuda
    with torch.no_grad():
        on_cuda = models["cuda"](digits.x_test.cuda()).cpu()
        on_cpu = models["cpu"](digits.x_test)
    # float32 on both (no autocast here); only the summation order differs, which ~30 Adam steps amplify a little
    torch.testing.assert_close(on_cuda, on_cpu, rtol=0, atol=1e-2)
