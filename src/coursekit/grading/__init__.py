"""Exercises and grading: ``release`` writes student notebooks from the solutions, ``grade`` scores
submissions safely.

* ``notebook``: nbgrader's cell metadata (schema 3), markers, validation, safe I/O.
* ``release``: ``release(solutions, exercises)``, behind ``coursekit release``.
* ``key``: reading the instructor's key; ``submissions``: finding the submitted notebooks;
  ``assembly``: the notebook that runs, built from the key; ``supervise``: running it in a subprocess
  under outer walls; ``scoring``: outcomes to points; ``results``: rows; ``grade``: ``grade_folder``,
  behind ``coursekit grade``; ``report``: ``grades.csv``, ``grades.json`` and the feedback files.
* ``runner``: the subprocess that runs one notebook in a fresh, limited kernel; ``sandbox``: the
  bubblewrap sandbox around that kernel; ``protocol``: the contract between runner and grader.
* ``zygote``: the warm process, one per worker in its own sandbox, that forks each kernel into namespaces
  of its own; ``warm``: the grader's pool of zygotes and the runner's client of them.
* ``credit``: ``partial_credit`` and ``borrowed``, the only part of the grader a student kernel loads.

Test cells in ``solutions/`` may award part of their points with ``partial_credit``, and check with
``borrowed`` that an answer is computed, not imported from the library that has it.
"""

from coursekit.grading.credit import borrowed, partial_credit

__all__ = ["borrowed", "partial_credit"]
