"""The data that crosses the wall between the judge and the student's kernel: plain values, never objects.

A message is one safetensors file (``safetensors.numpy``): its arrays are the message's tensors and arrays,
and its ``__metadata__["value"]`` is the structure, in JSON, that refers to them by name::

    None, True, 3, 2.5, "text"       -> themselves (non-finite floats as {"float": "nan"})
    1+2j                             -> {"complex": [1.0, 2.0]}
    b"..."                           -> {"bytes": BASE64}
    (a, b)  /  [a, b]  /  {k: v}     -> {"tuple": [...]}  /  [...]  /  {"dict": [[k, v], ...]}
    a torch tensor / a numpy array   -> {"tensor": NAME}  /  {"array": NAME}   (dtype from ``DTYPES``)
    a torch.Generator (CPU)          -> {"generator": NAME}  (its state: the other side gets a copy)
    an object of the kernel          -> {"handle": ID, "kind": "function" | "class" | "object", "type": NAME}
    a handle the judge sends back    -> {"ref": ID}

A subclass of one of these (``torch.Size``, an ``OrderedDict``, a tensor subclass, ``nn.Parameter``) is sent
as its plain base.

``decode`` is the judge's side of the wall: it checks the file's size before anything else
(``MAX_BYTES``), the structure's depth (``MAX_DEPTH``) and size (``MAX_ITEMS``), every dtype and shape
(safetensors checks that the offsets and the sizes agree), and builds nothing but ``None``, ``bool``,
``int``, ``float``, ``complex``, ``str``, ``bytes``, ``tuple``, ``list``, ``dict``, plain ``torch.Tensor`` and
``numpy.ndarray`` (and the judge's own handle objects, through ``make_handle``): no pickle, no class of the
student's, so a tensor subclass arrives as a plain tensor and an object with a lying ``__eq__`` or
``__bool__`` cannot arrive at all. Anything else is a ``WireError`` naming the problem.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any, Callable

import numpy as np

MAX_BYTES = 64 * 2**20   # a message, all of it
MAX_DEPTH = 32           # nesting of lists, tuples and dicts
MAX_ITEMS = 200_000      # values in one message
DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64")


class WireError(ValueError):
    """A message that is not data in this format: what is wrong with it."""


# -- encoding (both sides) -----------------------------------------------------------------------------

def encode(value: Any, *, handle: Callable[[Any], dict] | None = None) -> bytes:
    """``value`` as a message. ``handle(obj)`` turns what is not data into a handle (the kernel's side) or a
    reference (the judge's); without it such a value is a ``WireError``."""
    arrays: dict[str, np.ndarray] = {}

    def array(a: np.ndarray) -> str:
        if a.dtype.name not in DTYPES:
            raise WireError(f"arrays of dtype {a.dtype.name} do not cross (only {', '.join(DTYPES)})")
        name = f"a{len(arrays)}"
        arrays[name] = np.array(a, order="C", copy=True)  # (ascontiguousarray would make a 0-d array 1-d)
        return name

    def walk(v: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise WireError(f"nested more than {MAX_DEPTH} levels deep")
        kind = type(v)
        if v is None or kind in (bool, int, str):
            return v
        if kind is float:
            return v if math.isfinite(v) else {"float": repr(v)}
        if kind is complex:
            return {"complex": [walk(v.real, depth + 1), walk(v.imag, depth + 1)]}
        if kind is bytes:
            return {"bytes": base64.b64encode(v).decode()}
        if kind in (list, tuple):
            items = [walk(x, depth + 1) for x in v]
            return items if kind is list else {"tuple": items}
        if kind is dict:
            return {"dict": [[walk(k, depth + 1), walk(x, depth + 1)] for k, x in v.items()]}
        for base in (int, float, complex, str, bytes, list, tuple, dict):  # a subclass (torch.Size, an
            if isinstance(v, base) and kind is not bool:                # OrderedDict) crosses as its base
                plain = base(v)
                if type(plain) is not base:
                    raise WireError(f"a {kind.__name__} that does not convert to a {base.__name__}")
                return walk(plain, depth)
        if isinstance(v, np.ndarray):
            return {"array": array(np.asarray(v))}
        if isinstance(v, np.generic) and v.dtype.name in DTYPES:
            return v.item()
        tensor = _as_tensor(v)
        if tensor is not None:
            return {"tensor": array(tensor)}
        state = _generator_state(v)
        if state is not None:
            return {"generator": array(state)}
        if handle is not None:
            return handle(v)
        raise WireError(f"a value of type {kind.__name__} is not data")

    structure = walk(value, 0)
    from safetensors.numpy import save

    return save(arrays, metadata={"value": json.dumps(structure)})


def _as_tensor(v: Any) -> np.ndarray | None:
    """A torch tensor's values as a numpy array (subclasses lose their class), or None."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not isinstance(v, torch.Tensor):
        return None
    plain = torch.Tensor.detach(v)
    if plain.dtype == torch.bfloat16:
        plain = plain.float()
    return torch.Tensor.numpy(torch.Tensor.contiguous(torch.Tensor.cpu(plain))).copy()


def _generator_state(v: Any) -> np.ndarray | None:
    """A ``torch.Generator``'s state (its bytes: the generator crosses as a copy), or None."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or type(v) is not torch.Generator or v.device.type != "cpu":
        return None
    return v.get_state().numpy().copy()


# -- decoding (the judge's side; the kernel uses it too) -----------------------------------------------

def decode(data: bytes, *, make_handle: Callable[[dict], Any] | None = None,
           resolve: Callable[[int], Any] | None = None) -> Any:
    """The value in message ``data`` (see the module docstring); ``WireError`` for anything else.

    ``make_handle(spec)`` builds the judge's object for a handle; ``resolve(id)`` the kernel's object for a
    reference. Without them, handles and references are errors."""
    if not isinstance(data, bytes):
        raise WireError("a message is bytes")
    if len(data) > MAX_BYTES:
        raise WireError(f"the message is larger than {MAX_BYTES // 2**20} MB")
    if len(data) < 8:
        raise WireError("the message is cut short")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8 or size > 1_000_000:
        raise WireError("the message's header is cut short or too large")
    try:
        header = json.loads(data[8:8 + size])
        text = header["__metadata__"]["value"]
        if not isinstance(text, str) or len(text) > MAX_BYTES:
            raise WireError("no structure in the message")
        structure = json.loads(text)
    except (ValueError, KeyError, TypeError, RecursionError) as err:
        raise WireError(f"the message's structure is not valid JSON: {type(err).__name__}") from None
    if len(header) - 1 > MAX_ITEMS:
        raise WireError("too many arrays in the message")
    for name, spec in header.items():
        if name != "__metadata__" and (not isinstance(spec, dict) or spec.get("dtype") not in _SAFE_DTYPES):
            raise WireError(f"array {str(name)[:40]!r} has a dtype that does not cross")
    from safetensors.numpy import load

    try:
        arrays = load(data)
    except Exception as err:  # noqa: BLE001 - safetensors says why a file is malformed
        raise WireError(f"the message's arrays are malformed: {err}") from None
    count = 0

    def walk(v: Any, depth: int) -> Any:
        nonlocal count
        count += 1
        if count > MAX_ITEMS:
            raise WireError(f"more than {MAX_ITEMS} values in the message")
        if depth > MAX_DEPTH:
            raise WireError(f"nested more than {MAX_DEPTH} levels deep")
        if v is None or type(v) in (bool, int, float, str):
            return v
        if type(v) is list:
            return [walk(x, depth + 1) for x in v]
        if type(v) is not dict or len(v) not in (1, 3):
            raise WireError("a value of an unknown form")
        (key, item), = list(v.items())[:1]
        if key == "float" and item in ("nan", "inf", "-inf"):
            return float(item)
        if key == "complex" and type(item) is list and len(item) == 2:
            real, imag = (walk(x, depth + 1) for x in item)
            if type(real) is not float or type(imag) is not float:
                raise WireError("a complex number whose parts are not floats")
            return complex(real, imag)
        if key == "bytes" and type(item) is str:
            try:
                return base64.b64decode(item, validate=True)
            except ValueError:
                raise WireError("bytes that are not base64") from None
        if key == "tuple" and type(item) is list:
            return tuple(walk(x, depth + 1) for x in item)
        if key == "dict" and type(item) is list:
            out = {}
            for pair in item:
                if type(pair) is not list or len(pair) != 2:
                    raise WireError("a dict entry that is not a pair")
                k = walk(pair[0], depth + 1)
                if type(k) not in (bool, int, float, str, bytes, tuple) or (type(k) is tuple and not _hashable(k)):
                    raise WireError("a dict key that is not a plain value")
                out[k] = walk(pair[1], depth + 1)
            return out
        if key in ("tensor", "array") and type(item) is str and item in arrays:
            a = np.array(arrays[item], copy=True)
            if key == "array":
                return a
            import torch

            return torch.from_numpy(a)
        if key == "generator" and type(item) is str and item in arrays and arrays[item].dtype == np.uint8:
            import torch

            generator = torch.Generator()
            try:
                generator.set_state(torch.from_numpy(np.array(arrays[item], copy=True)))
            except RuntimeError:
                raise WireError("a generator state that is not one") from None
            return generator
        if key == "handle" and make_handle is not None and type(item) is int and set(v) == {"handle", "kind", "type"} \
                and v["kind"] in ("function", "class", "object") and type(v["type"]) is str:
            return make_handle({"id": item, "kind": v["kind"], "type": v["type"][:100]})
        if key == "ref" and resolve is not None and type(item) is int:
            return resolve(item)
        raise WireError(f"a value of an unknown form ({str(key)[:20]!r})")

    return walk(structure, 0)


_SAFE_DTYPES = {"BOOL", "U8", "I8", "I16", "I32", "I64", "F16", "F32", "F64"}


def _hashable(value: tuple) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
