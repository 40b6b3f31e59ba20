"""One row of the grades: a submission's tests, points, issues (its status) and feedback notes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from coursekit.grading.key import Exercise


@dataclass
class TestResult:
    grade_id: str
    task: str
    points: float
    max: float
    passed: bool
    message: str = ""           # for the student: what failed (hidden tests: only that one failed)
    partial: float | None = None


@dataclass
class Result:
    student: str
    exercise: str
    file: str
    tests: list[TestResult] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # per-cell detail for the feedback file
    max: float = 0.0
    judged: bool | None = None  # whether the judge ran its tests (``coursekit.grading.judge``); None: none ran

    @property
    def total(self) -> float:
        return round(sum(t.points for t in self.tests), 4)

    @property
    def tasks(self) -> dict[str, float]:
        tasks: dict[str, float] = {}
        for t in self.tests:
            tasks[t.task] = round(tasks.get(t.task, 0.0) + t.points, 4)
        return tasks

    @property
    def status(self) -> str:
        return "; ".join(self.issues) if self.issues else "ok"

    def to_dict(self) -> dict:
        return {"student": self.student, "exercise": self.exercise, "file": self.file, "tasks": self.tasks,
                "total": self.total, "max": self.max, "status": self.status,
                "judged": self.judged, "tests": [asdict(t) for t in self.tests], "issues": self.issues,
                "notes": self.notes}


def _zero(exercise: Exercise | None, result: Result, why: str) -> Result:
    result.issues.append(why)
    if exercise is not None:
        result.max = exercise.max
        result.tests = [TestResult(t.grade_id, t.task, 0.0, t.points, False, why) for t in exercise.tests]
    return result
