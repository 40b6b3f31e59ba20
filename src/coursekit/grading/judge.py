"""The judge: the key's test cells run here, in the grader's runner, outside every sandbox; never in the kernel.

The student's kernel runs the given cells and the student's cells, nothing else. A test cell runs in the
judge's own namespace, where

* a name that a given cell defines is the judge's own value: the judge runs that given cell itself (those
  that read no name of the student's and that a later test needs; ``plan``);
* a name that the student's cells define (or a given cell that reads one of them) is fetched from the kernel
  when the test reads it, as data (``coursekit.grading.wire``): a number, a string, a tensor, lists and
  dicts of those. A function, a class or any other object arrives as a ``Remote`` handle: calling it sends
  the arguments to the kernel as data, calls the student's function there and brings the result back as
  data (or as another handle).

So every ``assert``, ``torch.testing`` check, ``partial_credit`` and ``borrowed`` runs here, on plain values
the judge built itself; the hidden tests never enter the sandbox, and nothing the student's code does to
its own process (IPython's hooks, lying objects, a forged partial-credit record) reaches a verdict. What
a student can still do is what answers do: compute values.
"""

from __future__ import annotations

import ast
import secrets
import traceback
from typing import Any, Callable

from coursekit.grading import credit, wire

TEST_FILE = "<test cell>"
KEEP_TEXT = 4000


class KernelGone(Exception):
    """The kernel died or timed out while answering a request: the test ends with that status."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class StudentError(Exception):
    """The student's code raised (in the kernel) while answering: its type name and message, as text
    (``raised`` makes one)."""

    ename = message = ""


class AnswerError(Exception):
    """The kernel's answer is not data the judge accepts (``wire.WireError``), or it gave none."""


class Remote:
    """A function, class or object in the student's kernel; the judge may call it and read its attributes."""

    __slots__ = ("_judge", "_id", "_kind", "_type", "_name")

    def __init__(self, judge: Judge, ident: int, kind: str, type_name: str, name: str | None = None):
        self._judge, self._id, self._kind, self._type, self._name = judge, ident, kind, type_name, name

    def __call__(self, *args, **kwargs):
        return self._judge.request(("call", self, list(args), kwargs), f"{self._label()}")

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return self._judge.request(("attr", self, attribute), f"{self._label()}.{attribute}")

    def _label(self) -> str:
        return self._name or f"a {self._type}"

    def __repr__(self) -> str:
        return f"<{self._kind} {self._label()} in the student's kernel>"

    def __bool__(self) -> bool:
        raise TypeError(f"{self._label()} is a {self._kind} of the student's kernel (type {self._type}), not a "
                        "value: it has no truth value here")

    @staticmethod
    def make(judge: Judge, spec: dict) -> Remote:
        """A handle whose class is named after the student's type, so that an error names it: "must be Tensor,
        not Liar (in the student's kernel)"."""
        name = f"{spec['type']} (in the student's kernel)"
        kind = _HANDLES.get(name)
        if kind is None:
            kind = _HANDLES[name] = type(name, (Remote,), {"__slots__": ()})
        return kind(judge, spec["id"], spec["kind"], spec["type"])

    def __coursekit_borrowed__(self, packages: tuple[str, ...]) -> list[str]:
        """``credit.borrowed`` of a student's function: read from the submitted source, not the kernel."""
        return self._judge.borrowed(self._name, packages) if self._name else [f"{self._type} (not a function)"]


_HANDLES: dict[str, type] = {}


def names_read(source: str) -> set[str]:
    """Every name ``source`` reads (at any depth): the values a cell needs."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def names_bound(source: str) -> set[str]:
    """The names ``source`` binds at its top level (assignments, definitions, imports, loops, ``with``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    bound: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            return
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return  # a scope of its own
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    for statement in tree.body:
        visit(statement)
    return bound


def plan(cells: list[tuple[str, str]]) -> tuple[list[bool], set[str]]:
    """Which given cells the judge runs too, and which names are the student's.

    ``cells`` are (role, source) in the notebook's order, role ``"given"``, ``"answer"`` or ``"test"``. An
    answer binds student names. A given cell that reads one it does not bind itself runs in the kernel only,
    and its names are the student's too (a student's ``import torch`` above the key's ``import torch`` does
    not count). Any other given cell also runs in the judge when a later test (or a later given cell the
    judge runs) reads a name it binds, and the names it binds are never the student's. Returns, per cell,
    whether the judge runs it, and the student names."""
    remote: set[str] = set()
    local_ok = []
    for role, source in cells:
        if role == "answer" or (role == "given" and (names_read(source) - names_bound(source)) & remote):
            remote |= names_bound(source)
            local_ok.append(False)
        else:
            local_ok.append(role == "given")
    # A name the key's own given cells bind stays the key's, whatever a student's cell rebinds it to: a
    # student's ``import torch`` (or ``torch = ...``) must not hand the tests the kernel's torch.
    remote -= {name for (role, source), ok in zip(cells, local_ok) if ok for name in names_bound(source)}
    needed: set[str] = set()
    runs = [False] * len(cells)
    for i in range(len(cells) - 1, -1, -1):
        role, source = cells[i]
        if role == "test":
            needed |= names_read(source)
        elif local_ok[i] and names_bound(source) & needed:
            runs[i] = True
            needed |= names_read(source)
    return runs, remote


class Judge:
    """The judge of one submission: its namespace, and the way to the kernel (``ask``: a message in, the
    kernel's answer out, or ``KernelGone``/``AnswerError``)."""

    def __init__(self, ask: Callable[[bytes], bytes], *, student_names: set[str], submitted: str):
        import torch

        torch.set_num_threads(1)  # the judge's checks repeat exactly
        self.ask, self.student_names, self.submitted = ask, set(student_names), submitted
        self.namespace: dict[str, Any] = {"__name__": "__main__"}

    # -- the wire ---------------------------------------------------------------------------------
    def request(self, message: tuple, what: str) -> Any:
        def reference(value):
            if isinstance(value, Remote) and value._judge is self:
                return {"ref": value._id}
            raise wire.WireError(f"a {type(value).__name__} cannot be sent to the student's code")

        try:
            data = wire.encode(message, handle=reference)
        except wire.WireError as err:
            raise AnswerError(f"calling {what}: {err}") from None
        reply = self.ask(data)
        try:
            answer = wire.decode(reply, make_handle=lambda spec: Remote.make(self, spec))
        except wire.WireError as err:
            raise AnswerError(f"the answer of {what} is not data: {err}") from None
        if type(answer) is tuple and len(answer) == 3 and answer[0] == "raised" and \
                all(type(x) is str for x in answer[1:]):
            raise raised(answer[1][:100], answer[2][:KEEP_TEXT], what)
        if type(answer) is not tuple or len(answer) != 2 or answer[0] != "ok":
            raise AnswerError(f"the answer of {what} is not in the judge's format")
        return answer[1]

    def look(self, names: list[str]) -> dict[str, Any]:
        """The student's values of ``names`` (those that exist), as data or handles."""
        found = self.request(("look", names), "the student's names") if names else {}
        if type(found) is not dict:
            raise AnswerError("the answer to a look-up is not a dict")
        values = {}
        for name in names:
            entry = found.get(name)
            if type(entry) is tuple and len(entry) == 2 and entry[0] == "value":
                value = entry[1]
                if isinstance(value, Remote):
                    value._name = name
                values[name] = value
        return values

    # -- cells ------------------------------------------------------------------------------------
    def run_given(self, source: str) -> dict | None:
        """Run a given cell of the key here too; its error (a broken key), or None."""
        try:
            exec(compile(source, "<given cell>", "exec"), self.namespace)  # noqa: S102 - the key's own code
        except Exception as err:  # noqa: BLE001 - reported as the cell's error
            return _error(err)
        return None

    def run_test(self, source: str) -> dict:
        """Run one test cell here: ``{"status": ..., "error": ..., "partial": ...}`` as the runner reports."""
        fraction: list[float] = []
        try:
            # the student's names this test reads (one the test binds itself, as ``forward = _key_forward``,
            # is the test's own: every key binds such a name before it reads it)
            wanted = sorted((names_read(source) - names_bound(source)) & self.student_names)
            for name in wanted:
                self.namespace.pop(name, None)
            try:
                self.namespace.update(self.look(wanted))
            except AnswerError as err:  # before the test's first line: nothing of the test in it
                return {"status": "error", "reason": None, "error": {**_error(err), "before_test": True},
                        "partial": None}
            with credit.recording(fraction.append):
                exec(compile(source, TEST_FILE, "exec"), self.namespace)  # noqa: S102 - the key's own test
        except KernelGone as gone:
            return {"status": gone.status, "reason": gone.reason, "error": None,
                    "partial": fraction[-1] if fraction else None}
        except Exception as err:  # noqa: BLE001 - a failed test
            return {"status": "error", "reason": None, "error": _error(err),
                    "partial": fraction[-1] if fraction else None}
        return {"status": "ok", "reason": None, "error": None, "partial": fraction[-1] if fraction else None}

    # -- borrowed, from the submitted source --------------------------------------------------------
    def borrowed(self, name: str, packages: tuple[str, ...]) -> list[str]:
        """What the student's ``name`` takes from ``packages``, read from the submitted cells' source."""
        try:
            tree = ast.parse(self.submitted)
        except SyntaxError:
            return []
        imports: dict[str, str] = {}
        bindings: dict[str, list[ast.AST]] = {}
        for node in tree.body:
            if isinstance(node, ast.Import):
                imports.update({(a.asname or a.name).split(".")[0]: (a.name if a.asname else a.name.split(".")[0])
                                for a in node.names})
            elif isinstance(node, ast.ImportFrom):
                imports.update({a.asname or a.name: f"{node.module or ''}.{a.name}" for a in node.names})
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bindings.setdefault(node.name, []).append(node)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for n in ast.walk(target):
                        if isinstance(n, ast.Name):
                            bindings.setdefault(n.id, []).append(node.value)

        def theirs(module: str) -> bool:
            return module.split(".")[0] in packages

        found: list[str] = []
        seen: set[str] = set()

        def visit(n: str) -> None:
            if n in seen:
                return
            seen.add(n)
            if n in imports and theirs(imports[n]):
                found.append(n)
                return
            for node in bindings.get(n, []):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        modules = [a.name for a in sub.names] if isinstance(sub, ast.Import) else [sub.module or ""]
                        found.extend(m for m in modules if theirs(m))
                    elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and sub.id != n:
                        visit(sub.id)

        visit(name)
        return list(dict.fromkeys(found))


def raised(ename: str, message: str, what: str) -> StudentError:
    """The judge's exception for one the student's code raised: of the same builtin class where it is one
    (a test's ``except ValueError`` still catches it), a plain ``StudentError`` otherwise."""
    import builtins

    text = f"{message} (raised in {what})" if message else f"raised in {what}"
    base = getattr(builtins, ename, None)
    kind = StudentError
    if isinstance(base, type) and issubclass(base, Exception) and not issubclass(base, StudentError):
        if ename not in _RAISED:
            try:
                _RAISED[ename] = type(ename, (StudentError, base), {"__module__": "builtins"})
            except TypeError:  # a builtin whose layout does not mix with StudentError's
                _RAISED[ename] = StudentError
        kind = _RAISED[ename]
    try:
        err = kind(text)
    except TypeError:  # a builtin that takes other arguments (an exception group)
        err = StudentError(text)
    err.ename, err.message = ename, message
    return err


_RAISED: dict[str, type] = {}


def _error(err: BaseException) -> dict:
    """The runner's error record for an exception in a judged cell: its name, message, traceback and the
    test's line it was raised from."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == TEST_FILE]
    ename = err.ename if isinstance(err, StudentError) else type(err).__name__
    evalue = str(err)
    text = "".join(traceback.format_exception_only(type(err), err))
    return {"ename": ename, "evalue": evalue[:KEEP_TEXT], "traceback": text[-KEEP_TEXT:],
            "line": frames[-1].lineno if frames else None}


def nonce() -> str:
    """A name for one answer's file that the kernel cannot guess before it is asked."""
    return secrets.token_hex(8)
