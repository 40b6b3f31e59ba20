import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from coursekit.cli import main
from coursekit.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "coursekit.cli", *args], capture_output=True, text=True,
                          timeout=300)


def one_line(err):
    """The single line a failure prints on standard error (the test fails on anything else)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_help_lists_the_subcommands():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("info", "train", "bench", "release", "grade"):
        assert command in out.stdout


@pytest.mark.parametrize("args", [["frobnicate"], ["train"], ["train", "no-such-model"],
                                  ["train", "--epochs", "many"], ["release", "--frobnicate"],
                                  ["bench", "no-such-comparison"], ["bench", "segmentation", "--jobs", "0"]])
def test_bad_arguments_give_one_line_and_exit_2(capsys, args):
    # in-process: a subprocess per case would import torch each time
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2, args
    line = one_line(capsys.readouterr().err)
    assert line.startswith("coursekit") and "error" in line


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["device"] in ("cpu", "cuda", "mps") and "torch" in info


def test_unavailable_device_is_a_one_line_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from coursekit.recipes import RECIPES

    out = run_cli("train", next(iter(RECIPES)), "--quick", "--device", "cuda")
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "coursekit: error: device 'cuda' was asked for, but CUDA is not available on this machine"]


def test_python_m_coursekit_is_the_command():
    out = subprocess.run([sys.executable, "-m", "coursekit", "--help"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert all(command in out.stdout for command in ("info", "train", "release", "grade"))


# Runs ``main(ARGS)`` in a fresh interpreter and prints, last, whether torch got imported.
_IMPORTS_TORCH = """
import sys
from coursekit.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit_:
    code = exit_.code
print(code, 'torch' in sys.modules)
"""


@pytest.mark.parametrize("args", [["--help"], ["grade", "--help"], ["bench", "--help"],
                                  ["release", "--check", "--solutions", "solutions", "--out", "exercises"]])
def test_commands_that_do_not_compute_leave_torch_unimported(args):
    out = subprocess.run([sys.executable, "-c", _IMPORTS_TORCH, *args], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    code, torch_imported = out.stdout.strip().splitlines()[-1].split()
    assert out.returncode == 0 and code in ("0", "1", "None"), out.stdout + out.stderr  # 1: exercises/ out of date
    assert torch_imported == "False", f"coursekit {' '.join(args)} imported torch"


def test_a_runtime_failure_is_one_line_and_exit_1(monkeypatch, capsys):
    def out_of_memory(config):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\n(a second line of detail)")

    monkeypatch.setattr("coursekit.recipes.segmentation.train_segmenter", out_of_memory)
    assert main(["train", "fcn8s", "--quick", "--device", "cpu", "--no-progress"]) == 1
    assert one_line(capsys.readouterr().err) == \
        "coursekit: error (RuntimeError): CUDA out of memory. Tried to allocate 2.00 GiB"


# --- what each recipe takes --------------------------------------------------------------------------------

def test_a_recipe_refuses_an_option_it_does_not_take():
    from coursekit.recipes import train_recipe

    with pytest.raises(UsageError, match=r"fcn8s does not take --code-size \(it takes --epochs, --lr, --batch-size, --loss\)"):
        train_recipe("fcn8s", code_size=7)


@pytest.mark.parametrize("name, loss, message", [("dense-ae", "ce", "dense-ae takes --loss mse or bce, not 'ce'"),
                                                 ("unet", "bce", "unet takes --loss ce or ce+dice, not 'bce'")])
def test_a_recipe_refuses_a_loss_of_the_other_family(name, loss, message):
    from coursekit.recipes import RECIPES

    with pytest.raises(UsageError, match=re.escape(message)):
        RECIPES[name].configure(loss=loss)
    assert RECIPES[name].configure(loss=RECIPES[name].choices["loss"][-1])["loss"] == RECIPES[name].choices["loss"][-1]


def test_fewer_labels_fine_tune_for_as_many_steps():
    """``--labels L``: the first L labelled digits, epochs × ⌈N / batch⌉ steps whatever L is; no pretraining
    in ``scratch-classifier``."""
    from coursekit.recipes import train_recipe

    result = train_recipe("scratch-classifier", quick=True, device="cpu", labels=30, epochs=2, batch_size=64)
    assert result.metrics["labels"] == 30 and "pretrain_layer_val_mse" not in result.metrics
    assert len(result.history["val_accuracy"]) == 2 * -(-600 // 64)  # one step per epoch: 30 labels < one batch
    pretrained = train_recipe("stacked-ae", quick=True, device="cpu", labels=30, epochs=2, batch_size=64)
    assert "pretrain_layer_val_mse" in pretrained.metrics


def test_the_command_refuses_it_in_one_line_with_exit_2(capsys):
    assert main(["train", "fcn8s", "--code-size", "7", "--no-progress"]) == 2
    assert one_line(capsys.readouterr().err).startswith("coursekit: error: fcn8s does not take --code-size")


def test_configure_applies_quick_mode_then_the_options():
    from coursekit.recipes import RECIPES

    recipe = RECIPES["fcn8s"]
    full = recipe.configure(quick=False)
    assert full.settings == recipe.defaults["shapes"] and full.data == "shapes"
    quick = recipe.configure(quick=True, epochs=3)
    assert quick["n_train"] == recipe.quick["shapes"]["n_train"] < full["n_train"]
    assert quick["epochs"] == 3 and quick["lr"] == full["lr"]
