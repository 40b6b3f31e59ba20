"""Exercises and grading: ``release`` writes student notebooks from the solutions, ``grade`` scores
submissions safely.

* ``notebook``: nbgrader's cell metadata (schema 3), markers, validation, safe I/O.
* ``release``: ``release(solutions, exercises)``, behind ``coursekit release``.
* ``key``: reading the instructor's key; ``submissions``: finding the submitted notebooks;
  ``assembly``: the notebook that runs, built from the key; ``scoring``: outcomes to points; ``results``:
  rows; ``grade``: ``grade_folder``, behind ``coursekit grade``; ``report``: ``grades.csv``,
  ``grades.json`` and the feedback files.
* ``runner``: the subprocess that runs one notebook in a fresh, limited kernel; ``protocol``: the contract
  between runner and grader.
* ``isolation``: the walls: ``sandbox`` (bubblewrap around each kernel), ``zygote`` and ``warm`` (warm
  kernels forked from a zygote per worker), ``limits`` (rlimits, watchdog, the limit watch) and
  ``supervise`` (the runner subprocess under outer walls).
* ``credit``: ``partial_credit`` and ``borrowed``, the only part of the grader a student kernel loads.

Test cells in ``solutions/`` may award part of their points with ``partial_credit``, and check with
``borrowed`` that an answer is computed, not imported from the library that has it.
"""

from coursekit.grading.credit import borrowed, partial_credit

__all__ = ["borrowed", "partial_credit"]
