import json
import subprocess
import sys

import pytest

from coursekit.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "coursekit.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_help_lists_the_subcommands():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("info", "train", "release", "grade"):
        assert command in out.stdout


@pytest.mark.parametrize("args", [["frobnicate"], ["train"], ["train", "no-such-model"],
                                  ["train", "--epochs", "many"], ["release", "--frobnicate"]])
def test_bad_arguments_give_one_line_and_exit_2(capsys, args):
    # in-process: a subprocess per case would import torch each time
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2, args
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coursekit") and "error" in lines[0], err
    assert "Traceback" not in err


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
