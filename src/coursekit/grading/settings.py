"""The limits each submission is graded under, and the environment its kernel sees."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Limits for each submission and the environment its kernel sees."""

    cell_timeout: float = 60.0
    timeout: float = 600.0
    memory_mb: int = 4096
    max_restarts: int = 3
    sandbox: bool = True        # run each kernel in bubblewrap (``coursekit.grading.isolation.sandbox``)
    disk_mb: int = 512          # the sandbox's /tmp and /dev/shm (tmpfs), each; also the largest file
    max_processes: int = 128    # processes in one sandbox
    max_files: int = 10000      # files in the sandbox's /tmp and /dev/shm
    warm: bool = True           # sandboxed: fork each kernel from a warm zygote per worker (``grading.isolation.warm``)

    def environment(self, workers: int = 1) -> dict[str, str]:
        import coursekit

        env = dict(os.environ, COURSEKIT_QUICK="1", NBGRADER_EXECUTION="autograde", MPLBACKEND="Agg",
                   TQDM_DISABLE="1", PYTHONHASHSEED="0", PYDEVD_DISABLE_FILE_VALIDATION="1")
        env.setdefault("COURSEKIT_DEVICE", "cpu")
        threads = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, threads)
        package_root = str(Path(coursekit.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        return env
