"""What the key's test cells import inside the student's kernel: ``partial_credit`` and ``borrowed``.

Light on purpose (stdlib only, and IPython, already loaded in a kernel): a student kernel loads nothing
else of the grader.
"""

import contextlib
import types

from coursekit.grading.protocol import PARTIAL_CREDIT_MIME

_recorders: list = []  # where partial_credit reports while the judge runs a test (``recording``)


@contextlib.contextmanager
def recording(record):
    """While a test runs in the judge (``coursekit.grading.judge``): ``partial_credit`` calls ``record``."""
    _recorders.append(record)
    try:
        yield
    finally:
        _recorders.remove(record)


def partial_credit(fraction: float) -> None:
    """Award this fraction (0 to 1) of the points of the test cell that calls it.

    The last call in a cell decides, and it holds even when an ``assert`` after it fails, so a test can
    give credit for what works and still tell the student what does not::

        checks = [shape_ok, range_ok, values_ok]
        partial_credit(sum(checks) / len(checks))
        assert all(checks), "..."

    Without a call, a test cell scores all its points when it runs without an error and none otherwise.
    (nbgrader itself ignores this record and scores the cell all or nothing.)
    """
    fraction = float(fraction)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"partial credit must be a fraction between 0 and 1, not {fraction}")
    if _recorders:
        _recorders[-1](fraction)
        return
    text = f"partial credit: {fraction:.0%}"
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display({PARTIAL_CREDIT_MIME: {"fraction": fraction}, "text/plain": text}, raw=True)
    else:
        print(text)


def borrowed(function, packages: tuple[str, ...] = ("coursekit", "torchvision")) -> list[str]:
    """The names ``function`` uses that come from ``packages``: ``[]`` when it computes its answer itself.

    A name counts when the function (or a function nested in it) imports from one of the packages, or
    refers to a global module, function or class defined in one of them, under any alias. A hidden test
    asserts ``not borrowed(student_function)`` where the exercise asks for something the course's own
    package (or torchvision) already provides. The function itself counts too when it is one of theirs
    (``from coursekit.ops.boxes import box_iou as my_iou``) or is not Python code at all (a builtin,
    a C function, a ``functools.partial``). It catches plain reuse, not a determined cheat.

    In the judge, a student's function is a handle (``coursekit.grading.judge.Remote``) that answers for itself
    from the submitted source.
    """
    if hasattr(type(function), "__coursekit_borrowed__"):
        return function.__coursekit_borrowed__(packages)
    own = getattr(function, "__module__", None) or ""
    if own.split(".")[0] in packages or not hasattr(function, "__code__"):
        return [f"{own}.{getattr(function, '__qualname__', type(function).__name__)}".lstrip(".")]

    def names(code: types.CodeType):
        yield from code.co_names
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                yield from names(const)

    found = []
    for name in dict.fromkeys(names(function.__code__)):
        value = function.__globals__.get(name)
        if hasattr(type(value), "__coursekit_borrowed__"):
            found += value.__coursekit_borrowed__(packages)
            continue
        origin = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if any(str(x).split(".")[0] in packages for x in (name, origin) if x):
            found.append(name)
    return found
