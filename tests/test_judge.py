"""The judge (``coursekit.grading.judge``): verdicts that the student's own code cannot decide.

Every attack a student who has read our source might put in a notebook is graded through ``grade_folder``
on the real sandbox, for two exercises (01, the plain autoencoder, and 12, object detection), twice: with the
exercise left blank (the attack alone must earn nothing) and with the full solution (the attack must not cost
an answer it leaves intact). One grading run for every case, then a second one that must give the same rows.
The wire's own checks (``coursekit.grading.wire``) are unit-tested at the end.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import grading_builders as gb
from coursekit.grading import wire
from coursekit.grading.grade import Settings, grade_folder, load_key
from coursekit.grading.judge import raised
from coursekit.grading.report import grades_csv

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = {"01_plain_autoencoder": {"task1": 2, "task2": 3, "task3": 3, "task4": 2},
             "12_object_detection": {"task1": 2, "task2": 2, "task3": 4, "task4": 2}}
FIRST_ANSWER = {"01_plain_autoencoder": "task1_forward", "12_object_detection": "task1_iou"}
LAST_ANSWER = {"01_plain_autoencoder": "task4_code_size", "12_object_detection": "task4_predict_iou"}
SETTINGS = Settings(cell_timeout=5, timeout=300, memory_mb=3000, sandbox=True)
MIME = "application/vnd.coursekit.partial-credit+json"

pytestmark = pytest.mark.skipif(gb.sandbox_problem() is not None, reason=f"no sandbox: {gb.sandbox_problem()}")


@dataclass
class Attack:
    """Code a student adds: ``top`` before every answer, ``after_first``/``after_last`` after the first or the
    last answer cell (there it replaces what the answers defined). ``breaks``: the tasks of each exercise
    whose full solution the attack breaks (it stops the kernel from answering, say): 0 there too."""

    top: str = ""
    after_first: dict[str, str] = field(default_factory=dict)
    after_last: dict[str, str] = field(default_factory=dict)
    breaks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    exercises: tuple[str, ...] = tuple(EXERCISES)


ALL = ("task1", "task2", "task3", "task4")
LIAR = '''
import numpy, torch
class Liar:
    """Equal to everything, true, iterable, an array and a tensor: whatever a check asks."""
    shape = (4, 3)
    dtype = torch.int64
    def __eq__(self, other): return True
    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __eq__
    def __bool__(self): return True
    def __hash__(self): return 0
    def __len__(self): return 2
    def __iter__(self): return iter([Liar(), Liar()])
    def __array__(self, *args, **kwargs): return numpy.zeros((4, 3))
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None): return torch.tensor(True)
    def __getattr__(self, name): return Liar()
    def __call__(self, *args, **kwargs): return Liar()
    def __and__(self, other): return Liar()
    def tolist(self): return [3, 0, 2]
'''
TENSOR_LIAR = '''
import torch
class Agreeable(torch.Tensor):
    """A tensor whose every operation says yes."""
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return torch.tensor(True)
    def __eq__(self, other): return True
    def __bool__(self): return True
'''
REAL_SERVE = "_real_serve = __coursekit_serve__\n"

ATTACKS: dict[str, Attack] = {
    # IPython's machinery, rewired before the first answer
    "custom_exc": Attack(top="get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)"),
    "input_transformer_cleanup": Attack(top=(
        "get_ipython().input_transformers_cleanup.append(\n"
        "    lambda lines: [l for l in lines if not l.lstrip().startswith(('assert', 'torch.testing'))])")),
    "input_transformer_post": Attack(top="get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])",
                                     breaks={e: ALL for e in EXERCISES}),  # every later cell is empty
    "ast_transformer": Attack(top=(
        "import ast\n"
        "class _NoAsserts(ast.NodeTransformer):\n"
        "    def visit_Assert(self, node):\n        return ast.Pass()\n"
        "get_ipython().ast_transformers.append(_NoAsserts())")),
    "showtraceback": Attack(top="get_ipython().showtraceback = lambda *a, **k: None\n"
                                "get_ipython().showsyntaxerror = lambda *a, **k: None"),
    "run_cell": Attack(top=(
        "_ip = get_ipython()\n_real_run_cell = _ip.run_cell\n"
        "def _run_cell(raw_cell, *args, **kwargs):\n"
        "    result = _real_run_cell(raw_cell, *args, **kwargs)\n"
        "    result.error_in_exec = result.error_before_exec = None\n    return result\n"
        "_ip.run_cell = _run_cell")),
    "do_execute": Attack(top=(
        "_kernel = get_ipython().kernel\n"
        "async def _do_execute(*args, **kwargs):\n"
        "    return {'status': 'ok', 'execution_count': 1, 'payload': [], 'user_expressions': {}}\n"
        "_kernel.do_execute = _do_execute"), breaks={e: ALL for e in EXERCISES}),  # no cell runs any more
    "settrace": Attack(top=(
        "import sys, threading\n"
        "import linecache\n"
        "def _skip_raises(frame, event, arg):  # in the student's own cells, jump over every raise\n"
        "    if not frame.f_code.co_filename.startswith(('/tmp/ipykernel', '<ipython')):\n"
        "        return None\n"
        "    if event == 'line' and 'raise' in linecache.getline(frame.f_code.co_filename, frame.f_lineno):\n"
        "        try:\n            frame.f_lineno += 1\n        except ValueError:\n            pass\n"
        "    return _skip_raises\n"
        "sys.settrace(_skip_raises)\nthreading.settrace(_skip_raises)")),
    "excepthook_atexit": Attack(top=(
        "import atexit, os, sys\nsys.excepthook = lambda *a: None\n"
        "atexit.register(os._exit, 0)")),
    # objects that lie, in place of the first answer (and of the values of the last task)
    "lying_object": Attack(
        after_first={"01_plain_autoencoder": LIAR + "def forward(x, W, b, W_star, b_star):\n    return Liar(), Liar()",
                     "12_object_detection": LIAR + "class Shaped(Liar):\n    shape = (1, 3)\n"
                                                   "def iou_matrix(boxes1, boxes2):\n    return Shaped()"},
        after_last={"01_plain_autoencoder": LIAR + "test_errors = {2: Liar(), 16: Liar(), 128: Liar()}\n"
                                                   "answer = Liar()",
                    "12_object_detection": LIAR + "iou_half_shift = Liar()\nanswer = Liar()"},
        breaks={"01_plain_autoencoder": ("task1", "task2", "task3", "task4"),  # 2, 3 call the lying forward
                "12_object_detection": ("task1", "task3", "task4")}),          # NMS calls the lying IoU
    "tensor_subclass": Attack(
        after_first={"01_plain_autoencoder": TENSOR_LIAR + (
            "def forward(x, W, b, W_star, b_star):\n"
            "    return torch.zeros(4, 3).as_subclass(Agreeable), torch.zeros(4, 6).as_subclass(Agreeable)"),
            "12_object_detection": TENSOR_LIAR + (
            "def iou_matrix(boxes1, boxes2):\n    return torch.zeros(len(boxes1), len(boxes2)).as_subclass(Agreeable)")},
        breaks={"01_plain_autoencoder": ("task1", "task2", "task3", "task4"), "12_object_detection": ("task1", "task3")}),
    "nan": Attack(
        after_first={"01_plain_autoencoder": (
            "import torch\ndef forward(x, W, b, W_star, b_star):\n"
            "    return torch.full((len(x), len(W)), float('nan'), dtype=x.dtype), torch.full_like(x, float('nan'))"),
            "12_object_detection": (
            "import torch\ndef iou_matrix(boxes1, boxes2):\n"
            "    return torch.full((len(boxes1), len(boxes2)), float('nan'))")},
        after_last={"01_plain_autoencoder": "test_errors = {2: float('nan'), 16: float('nan'), 128: float('nan')}",
                    "12_object_detection": "iou_half_shift = float('nan')"},
        breaks={"01_plain_autoencoder": ("task1", "task2", "task3", "task4"),
                "12_object_detection": ("task1", "task3", "task4")}),
    # a decoder that remembers what the encoder saw: x_hat is the input itself, a perfect "reconstruction"
    "remembering_decoder": Attack(
        after_first={"01_plain_autoencoder": (
            "import torch\ndef forward(x, W, b, W_star, b_star):\n"
            "    return torch.sigmoid(x @ W.T + b), x.clone()")},
        breaks={"01_plain_autoencoder": ("task1", "task2", "task3", "task4")},
        exercises=("01_plain_autoencoder",)),
    # forged partial credit: the kernel's partial_credit called, replaced, and its output forged
    "partial_credit": Attack(top=(
        "import coursekit.grading, coursekit.grading.credit as _credit\n"
        "from IPython.display import display\n"
        f"_forge = lambda *a, **k: display({{{MIME!r}: {{'fraction': 1.0}}, 'text/plain': 'partial credit: 100%'}}, raw=True)\n"
        "_credit.partial_credit(1.0)\n_credit.partial_credit = coursekit.grading.partial_credit = _forge\n"
        "get_ipython().events.register('post_run_cell', _forge)")),
    # the libraries the tests use, patched in the kernel: the tests use the judge's own
    "patched_libraries": Attack(top=(
        "import math, torch, torch.testing\n"
        "torch.allclose = torch.equal = lambda *a, **k: True\n"
        "torch.testing.assert_close = lambda *a, **k: None\n"
        "math.isclose = lambda *a, **k: True")),
    # the kernel's side of the judge replaced
    "reply_garbage": Attack(
        top="def __coursekit_serve__(request, reply):\n    open(reply, 'wb').write(b'{\"ok\": true}' * 1000)",
        breaks={e: ALL for e in EXERCISES}),
    "reply_forged_pass": Attack(
        top=("from coursekit.grading import wire as _wire\n"
             "def __coursekit_serve__(request, reply):\n"
             "    open(reply, 'wb').write(_wire.encode(('ok', {n: ('value', True) for n in\n"
             "        ('forward', 'decoder_gradient', 'encoder_gradient', 'test_errors', 'answer',\n"
             "         'iou_matrix', 'encode', 'greedy_nms', 'iou_half_shift')})))"),
        breaks={e: ALL for e in EXERCISES}),
    # (a 1 GB answer stops at the kernel's file-size limit, 512 MB, before the judge sees it)
    "reply_200mb": Attack(
        top="def __coursekit_serve__(request, reply):\n    with open(reply, 'wb') as f:\n        f.truncate(200 * 2**20)",
        breaks={e: ALL for e in EXERCISES}),
    "reply_link": Attack(
        top="import os\ndef __coursekit_serve__(request, reply):\n    os.symlink('/etc/passwd', reply)",
        breaks={e: ALL for e in EXERCISES}),
    "reply_twice": Attack(
        top=REAL_SERVE + "def __coursekit_serve__(request, reply):\n"
                         "    _real_serve(request, reply)\n    _real_serve(request, reply)"),
    "never_replies": Attack(
        top="import time\ndef __coursekit_serve__(request, reply):\n    time.sleep(10**6)",
        breaks={"12_object_detection": ALL}, exercises=("12_object_detection",)),
    # fine answers, slowly; and one too slow for the cell limit (its tests time out, the others pass)
    "slow_but_fine": Attack(
        after_first={"12_object_detection": (
            "import time\n_iou = iou_matrix\n"
            "def iou_matrix(boxes1, boxes2):\n    time.sleep(0.05)\n    return _iou(boxes1, boxes2)")},
        exercises=("12_object_detection",)),
    "too_slow": Attack(
        after_first={"12_object_detection": (
            "import time\n_iou = iou_matrix\n"
            "def iou_matrix(boxes1, boxes2):\n    time.sleep(60)\n    return _iou(boxes1, boxes2)")},
        breaks={"12_object_detection": ("task1", "task3")}, exercises=("12_object_detection",)),
}


def _with_attack(source: Path, attack: Attack, exercise: str):
    """The notebook at ``source`` with the attack's cells added where a student would add them."""
    nb = nbformat.read(source, as_version=4)
    cells = []
    if attack.top:
        cells.append(nbformat.v4.new_code_cell(attack.top))
    for cell in nb.cells:
        cells.append(cell)
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        for where, code in (("after_first", attack.after_first), ("after_last", attack.after_last)):
            wanted = FIRST_ANSWER if where == "after_first" else LAST_ANSWER
            if gid == wanted[exercise] and exercise in code:
                cells.append(nbformat.v4.new_code_cell(code[exercise]))
    nb.cells = cells
    return nb


def _expected(name: str, kind: str, exercise: str) -> dict[str, float]:
    if kind == "blank":
        return {task: 0.0 for task in EXERCISES[exercise]}
    broken = ATTACKS[name].breaks.get(exercise, ())
    return {task: 0.0 if task in broken else float(p) for task, p in EXERCISES[exercise].items()}


def _build(folder: Path) -> None:
    for name, attack in ATTACKS.items():
        for exercise in attack.exercises:
            for kind, source in (("full", ROOT / "solutions"), ("blank", ROOT / "exercises")):
                nb = _with_attack(source / f"{exercise}.ipynb", attack, exercise)
                (folder / f"{name}-{kind}").mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, folder / f"{name}-{kind}" / f"{exercise}.ipynb")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every case graded in one run (2 workers), and the same folder graded again."""
    subs = tmp_path_factory.mktemp("judge") / "subs"
    _build(subs)
    key = load_key(ROOT / "solutions")
    first = grade_folder(subs, key, settings=SETTINGS, workers=2, progress=False)
    second = grade_folder(subs, key, settings=SETTINGS, workers=2, progress=False)
    return first, second, key


CASES = [(name, kind, exercise) for name, attack in ATTACKS.items() for exercise in attack.exercises
         for kind in ("blank", "full")]


@pytest.mark.parametrize("name, kind, exercise", CASES, ids=["-".join(c) for c in CASES])
def test_an_attack_earns_nothing_and_costs_no_intact_answer(graded, name, kind, exercise):
    rows = {(r.student, r.exercise): r for r in graded[0]}
    row = rows[(f"{name}-{kind}", exercise)]
    assert row.tasks == _expected(name, kind, exercise), (row.tasks, row.status, row.notes)


def test_a_second_run_gives_the_same_grades(graded):
    first, second, key = graded
    assert grades_csv(first, key) == grades_csv(second, key)


def test_a_failed_test_says_why_and_a_slow_one_names_the_limit(graded):
    rows = {(r.student, r.exercise): r for r in graded[0]}
    def message(student, exercise, task):
        (test,) = [t for t in rows[(student, exercise)].tests if t.task == task]
        return test.message

    # a visible check that meets the student's object names its type
    assert "must be Tensor, not Shaped (in the student's kernel)" in message("lying_object-full",
                                                                           "12_object_detection", "task1")
    assert "time limit (5 s)" in message("too_slow-full", "12_object_detection", "task1")
    assert "not data" in message("reply_garbage-full", "12_object_detection", "task1")
    assert "larger than 64 MB" in message("reply_200mb-full", "12_object_detection", "task2")
    assert "link" in message("reply_link-full", "12_object_detection", "task2")
    assert "no answer" in message("do_execute-full", "01_plain_autoencoder", "task1")


def test_every_name_a_test_takes_from_the_student_is_an_answer():
    """The names a judged test fetches from the kernel are what the answers define (functions, values), never
    a module the key's given cells import: those stay the judge's own, whatever the student rebinds."""
    import ast

    from coursekit.grading.judge import names_read, plan
    from coursekit.grading.notebook import is_solution, is_test

    for name, exercise in load_key(ROOT / "solutions").items():
        cells = [("test" if is_test(c) else "answer" if is_solution(c) else "given", c.source)
                 for c in exercise.key.cells if c.cell_type == "code"]
        _, remote = plan(cells)
        read = set().union(*(names_read(source) for role, source in cells if role == "test"))
        imported = {(a.asname or a.name).split(".")[0] for role, source in cells if role != "test"
                    for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.Import, ast.ImportFrom))
                    for a in node.names}
        assert not read & remote & imported, (name, read & remote & imported)
        if exercise.judged:
            assert "torch" not in remote and read & remote, name


# -- the wire ---------------------------------------------------------------------------------------------

def test_plain_values_cross_unchanged():
    value = {"a": [1, 2.5, None, True, "x", b"\x00\xff", 1 + 2j, float("inf")], 3: (torch.arange(6).reshape(2, 3),
             np.eye(2, dtype=np.float32)), ("k", 1): {"nested": [[[]]]}, "f16": torch.ones(2, dtype=torch.float16)}
    back = wire.decode(wire.encode(value))
    assert back.keys() == value.keys() and back["a"][:6] == value["a"][:6] and back["a"][6] == 1 + 2j
    assert math.isinf(back["a"][7])
    assert torch.equal(back[3][0], value[3][0]) and type(back[3][0]) is torch.Tensor
    assert type(back[3][1]) is np.ndarray and back[3][1].dtype == np.float32 and (back[3][1] == np.eye(2)).all()
    assert back[("k", 1)] == {"nested": [[[]]]} and back["f16"].dtype == torch.float16
    assert math.isnan(wire.decode(wire.encode(float("nan"))))


def test_subclasses_cross_as_their_plain_base():
    class Agreeable(torch.Tensor):
        def __eq__(self, other):
            return True

    from collections import OrderedDict

    value = [torch.zeros(3).as_subclass(Agreeable), torch.nn.Parameter(torch.ones(2)), torch.Size([2, 3]),
             OrderedDict(w=torch.ones(1)), True]
    back = wire.decode(wire.encode(value))
    assert [type(v) for v in back] == [torch.Tensor, torch.Tensor, tuple, dict, bool]
    assert not back[1].requires_grad and back[2] == (2, 3)


def test_objects_are_not_data_without_a_handle():
    class Liar:
        def __eq__(self, other):
            return True

    with pytest.raises(wire.WireError, match="type Liar is not data"):
        wire.encode([Liar()])
    with pytest.raises(wire.WireError, match="dtype complex64"):
        wire.encode(np.zeros(2, dtype=np.complex64))
    handles = wire.decode(wire.encode([Liar()], handle=lambda v: {"handle": 7, "kind": "object", "type": "Liar"}),
                          make_handle=lambda spec: ("handle", spec["id"], spec["type"]))
    assert handles == [("handle", 7, "Liar")]


def _message(structure, arrays=None) -> bytes:
    from safetensors.numpy import save

    return save(arrays or {}, metadata={"value": json.dumps(structure)})


@pytest.mark.parametrize("data, problem", [
    (b"", "cut short"),
    (b"\xff" * 100, "header"),
    (b"garbage that is long enough", "header"),
    (_message({"pickle": "gANdcQAu"}), "unknown form"),
    (_message({"handle": 1, "kind": "object", "type": "X"}), "unknown form"),  # no handles where none may come
    (_message({"tensor": "missing"}), "unknown form"),
    (_message({"dict": [[[1, 2], 3]]}), "not a plain value"),            # a list as a dict key
    (_message({"complex": ["a", 1.0]}), "not floats"),
    (_message(json.loads("[" * 40 + "]" * 40)), "nested"),
    (_message([0] * (wire.MAX_ITEMS + 1)), "more than"),
], ids=["empty", "binary", "text", "pickle", "handle", "no-array", "list-key", "complex", "deep", "many"])
def test_malformed_messages_are_refused_with_the_reason(data, problem):
    with pytest.raises(wire.WireError, match=problem):
        wire.decode(data)


def test_oversized_and_wrong_dtype_messages_are_refused_before_they_are_read():
    with pytest.raises(wire.WireError, match="larger than 64 MB"):
        wire.decode(b"\0" * (wire.MAX_BYTES + 1))
    header = json.dumps({"a0": {"dtype": "O", "shape": [1], "data_offsets": [0, 8]},
                         "__metadata__": {"value": '{"array": "a0"}'}}).encode()
    with pytest.raises(wire.WireError, match="dtype that does not cross"):
        wire.decode(len(header).to_bytes(8, "little") + header + b"\0" * 8)


def test_a_students_exception_keeps_its_builtin_class():
    for name, kind in (("ValueError", ValueError), ("KeyError", KeyError), ("ZeroDivisionError", ArithmeticError)):
        err = raised(name, "no", "f")
        assert isinstance(err, kind) and "raised in f" in str(err)
    assert type(raised("SystemExit", "", "f")).__name__ == "StudentError"  # not an Exception: never re-raised as one
    assert type(raised("StudentsOwnError", "", "f")).__name__ == "StudentError"
