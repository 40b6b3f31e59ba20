"""Checkpoints: weights in ``NAME.pt`` and ``NAME.json`` beside it saying how they were made.

``save_checkpoint`` writes both; ``load_checkpoint`` loads weights into a model you built;
``load_trained(name_or_path)`` rebuilds the recipe's model from the sidecar's recorded builder
arguments and loads it, so a chapter or a test needs one line: ``model, record = load_trained("unet")``.
A missing, corrupt or mismatched file raises ``CheckpointError`` naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import nn

from coursekit.errors import CheckpointError

if TYPE_CHECKING:
    from coursekit.engine import History

# The checkpoints that ship with the course (``checkpoints/`` at the repository's root), unless
# $COURSEKIT_CHECKPOINTS names another folder.
CHECKPOINTS_ENV = "COURSEKIT_CHECKPOINTS"


def checkpoints_dir() -> Path:
    """The folder ``load_trained`` looks in for a name: ``$COURSEKIT_CHECKPOINTS``, else the repository's
    ``checkpoints/`` (beside ``src/`` in a checkout of the course)."""
    return Path(os.environ.get(CHECKPOINTS_ENV) or Path(__file__).resolve().parents[2] / "checkpoints")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def library_versions() -> dict[str, str]:
    """Versions that matter for reproducing a run."""
    import numpy
    import torchvision

    from coursekit import __version__

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": numpy.__version__,
            "coursekit": __version__}


def sidecar_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, name: str, config: Mapping[str, Any],
                    seed: int, metrics: Mapping[str, float], builder: str | None = None,
                    command: str | None = None, history: History | None = None) -> Path:
    """Save ``model``'s weights to ``path`` and a JSON sidecar (same stem, ``.json``).

    The sidecar records the model ``name`` (the recipe's), the ``builder`` (a name in
    ``coursekit.models.BUILDERS``) and ``config`` (the builder's arguments), the exact
    ``command`` that made it, the ``seed``, library versions, final ``metrics``, the training
    ``history`` and the SHA-256 of the weights, so a later load can tell a swapped or damaged file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    meta = {
        "name": name,
        "builder": builder,
        "config": dict(config),
        "command": command if command is not None else " ".join(sys.argv),
        "seed": seed,
        "versions": library_versions(),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "history": history.to_dict() if history is not None else {},
        "sha256": _sha256(path),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    sidecar_path(path).write_text(json.dumps(meta, indent=2) + "\n")
    return path


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint's JSON sidecar; raise ``CheckpointError`` naming the file when it is unusable."""
    side = sidecar_path(path)
    if not side.is_file():
        raise CheckpointError(f"{side}: sidecar missing (every checkpoint needs its .json beside it)")
    try:
        meta = json.loads(side.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{side}: sidecar is not valid JSON ({err})") from err
    for key in ("name", "config", "sha256"):
        if key not in meta:
            raise CheckpointError(f"{side}: sidecar lacks the field {key!r}")
    return meta


def load_checkpoint(path: str | os.PathLike, model: nn.Module, *, expect_name: str | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load weights saved by ``save_checkpoint`` into ``model``; return the sidecar.

    Raises ``CheckpointError`` naming the file and the problem when the file is missing, its hash
    does not match the sidecar (corrupt or replaced), it cannot be unpickled, it was saved for
    another model (``expect_name``), or its tensors do not fit ``model`` (missing, extra or
    mis-shaped parameters).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    return _load_into(path, model, read_sidecar(path), expect_name, map_location)


def _load_into(path: Path, model: nn.Module, meta: dict[str, Any], expect_name: str | None,
               map_location: str | torch.device) -> dict[str, Any]:
    if expect_name is not None and meta["name"] != expect_name:
        raise CheckpointError(f"{path}: checkpoint is for model {meta['name']!r}, not {expect_name!r}")
    if _sha256(path) != meta["sha256"]:
        raise CheckpointError(f"{path}: SHA-256 differs from its sidecar: the file is corrupt or was replaced")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for a damaged archive
        raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({err})") from err
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if extra:
            parts.append(f"unexpected {extra[:5]}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:5]))
        raise CheckpointError(f"{path}: does not fit this model: " + ", ".join(parts))
    model.load_state_dict(state)
    return meta


def load_trained(name_or_path: str | os.PathLike, *, map_location: str | torch.device = "cpu"
                 ) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model of a checkpoint and its sidecar record: ``model, record = load_trained("unet")``.

    A bare name (``"unet"``) is looked up as ``NAME.pt`` in ``checkpoints_dir()``; anything else is a
    path. The model is rebuilt by the builder the sidecar names, with its recorded arguments, loaded
    on ``map_location`` and put in eval mode. Every failure is a ``CheckpointError`` naming the file.
    """
    from coursekit.models import BUILDERS, get_model

    text = os.fspath(name_or_path)
    is_name = not text.endswith(".pt") and os.sep not in text and "/" not in text
    path = checkpoints_dir() / f"{text}.pt" if is_name else Path(text)
    if not path.is_file():
        where = f" (no {path.name} in {path.parent}; set ${CHECKPOINTS_ENV} to the folder that has it)" if is_name else ""
        raise CheckpointError(f"{path}: checkpoint file not found{where}")
    meta = read_sidecar(path)
    if meta.get("builder") not in BUILDERS:
        raise CheckpointError(f"{sidecar_path(path)}: sidecar names no known builder ({meta.get('builder')!r})")
    try:
        model = get_model(meta["builder"], **meta["config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{sidecar_path(path)}: its config does not fit {meta['builder']}: {err}") from err
    _load_into(path, model, meta, None, map_location)
    return model.to(map_location).eval(), meta
