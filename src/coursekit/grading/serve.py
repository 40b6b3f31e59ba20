"""The kernel's side of the judge (``coursekit.grading.judge``): answer one request with plain data.

The grader's first cell in a judged notebook binds ``serve`` in the student's namespace; the judge then runs
``__coursekit_serve__(REQUEST, REPLY)`` as a cell of its own for every value or call a test needs: REQUEST
is a message (``coursekit.grading.wire``) in base64, REPLY the file the answer goes to. The requests:

* ``("look", [names])``: each name's value in the student's namespace: data, a handle for a function,
  a class or another object, or ``("missing",)``;
* ``("call", target, args, kwargs)``: call a name or a handle with these values;
* ``("attr", handle, name)``: an attribute of a handle's object.

An answer is ``("ok", value)`` or ``("raised", type name, message)``. This module runs in the student's
process, so the student can replace it: nothing it says is trusted; the judge checks every answer as data
and decides every verdict itself.
"""

from __future__ import annotations

import base64
import itertools
import types

from coursekit.grading import wire

MAX_LIST = 100_000  # items of an iterator (a generator, dict values) sent as a list
_objects: dict[int, object] = {}


def _namespace() -> dict:
    from IPython import get_ipython

    return get_ipython().user_ns


def _handle(value) -> dict:
    ident = len(_objects) + 1
    _objects[ident] = value
    kind = "class" if isinstance(value, type) else "function" if callable(value) else "object"
    name = type(value).__name__ if kind != "class" else value.__name__
    return {"handle": ident, "kind": kind, "type": str(name)}


def _resolve(ident: int):
    if ident not in _objects:
        raise wire.WireError(f"no object {ident} in the kernel")
    return _objects[ident]


def _plain(value):
    """What is sent for ``value``: iterators and dict views as lists, the rest as it is."""
    if isinstance(value, (types.GeneratorType, map, filter, zip, type({}.values()), type({}.keys()),
                          type({}.items()))):
        return list(itertools.islice(value, MAX_LIST))
    return value


def answer(request):
    """The answer to one decoded request (see the module docstring)."""
    op = request[0]
    if op == "look":
        namespace = _namespace()
        return ("ok", {n: (("value", _plain(namespace[n])) if n in namespace else ("missing",)) for n in request[1]})
    if op == "call":
        target = request[1] if not isinstance(request[1], str) else _namespace()[request[1]]
        return ("ok", _plain(target(*request[2], **request[3])))
    if op == "attr":
        return ("ok", _plain(getattr(request[1], request[2])))
    raise ValueError(f"unknown request {op!r}")


def serve(request: str, reply: str) -> None:
    """Answer the base64 message ``request`` into the file ``reply``."""
    try:
        out = answer(wire.decode(base64.b64decode(request), resolve=_resolve))
    except Exception as err:  # noqa: BLE001 - the student's code raised: that is the answer
        out = ("raised", type(err).__name__, str(err)[:2000])
    try:
        data = wire.encode(out, handle=_handle)
    except Exception as err:  # noqa: BLE001 - not data (a wire error, or a lying object)
        data = wire.encode(("raised", type(err).__name__, str(err)[:2000]))
    with open(reply, "wb") as f:
        f.write(data)
