"""The errors coursekit raises on purpose, so the command line can tell a user's mistake from a failure.

* ``UsageError``: the request itself is wrong (an option a recipe does not take, an unknown dataset,
  a missing folder). ``coursekit`` prints one line and exits 2, like argparse.
* ``CheckpointError``: a checkpoint is missing, corrupt or does not fit its model. Exit 1.
* Any other ``CoursekitError`` is a runtime failure: one line, exit 1.

This module imports nothing, so the command line can use it before deciding whether torch is needed.
"""


class CoursekitError(Exception):
    """Base class of the errors coursekit raises on purpose."""


class UsageError(CoursekitError, ValueError):
    """The request is wrong: a bad option, an unknown name, a missing input folder (exit code 2)."""


class CheckpointError(CoursekitError, RuntimeError):
    """A checkpoint file is missing, corrupt, or does not fit the model it is loaded into (exit code 1)."""
