"""Run one notebook in a fresh kernel, cell by cell, and log each cell's outcome as a line of JSON.

The grader starts this module as a subprocess for every submission (``import coursekit`` is light: no
torch is loaded into the runner)::

    python -m coursekit.grading.runner NOTEBOOK EVENTS --workdir DIR --cell-timeout 60 --memory-mb 4096 --sandbox

so nothing a submission does (an endless loop, a crash, ``os._exit``, a huge allocation) can reach the
grader itself: the grader reads EVENTS, a JSON-lines log (``coursekit.grading.protocol``), and kills this
process and its kernel when the notebook's own time limit is reached. With ``--sandbox`` the kernel runs
in bubblewrap (``coursekit.grading.isolation.sandbox``): it cannot see EVENTS, the notebook file, this process or
anything else of the grader, so every outcome logged is what this process observed over the Jupyter
protocol. With ``--zygote`` the kernel is not started but forked, in namespaces of its own, from the
worker's warm zygote (``coursekit.grading.isolation.zygote``), whose pipes the grader passes down. Without a sandbox
(``coursekit grade --no-sandbox``) the kernel runs as the grader's user, as nbgrader's
does, and a student who has read this source can forge EVENTS.

* Limits: the kernel inherits ``RLIMIT_DATA`` (allocations beyond it raise ``MemoryError``), no core
  files and a maximum file size; a watchdog also kills the kernel when the resident memory of it and its
  children passes the limit (memory that ``RLIMIT_DATA`` does not count, e.g. shared mappings). In the
  sandbox, ``/tmp`` (the work folder) and ``/dev/shm`` are tmpfs of ``--disk-mb`` each, and the watchdog
  kills the sandbox when it holds more than ``--max-processes`` processes or ``--max-files`` files.
* A cell that runs longer than ``--cell-timeout`` is interrupted (SIGINT); a kernel that does not answer
  within a grace period after that, or that dies, is killed and restarted and the cells before the
  current one are run again (all but the ones that killed it), so the remaining tests still run. After
  ``--max-restarts`` restarts the run stops.
* The time limit does not rely on the kernel or on nbclient's event loop: a watchdog *thread* kills the
  kernel's process group with SIGKILL when a cell has run for the limit plus the grace period plus a
  margin, whatever state the kernel (or the event loop, flooded with messages) is in. Processes the
  kernel started, even ones that left its process group, are killed with it: the runner is their
  "subreaper" (Linux), so orphans come back to it rather than to init. The grader adds the outermost wall:
  the notebook's time limit kills this process's whole group and every kernel it started.
* Outputs are kept small: streams up to 64 kB a cell, rich outputs dropped, except the partial-credit
  record (``PARTIAL_CREDIT_MIME``) that ``coursekit.grading.partial_credit`` displays.

The events are listed in ``coursekit.grading.protocol``. The grader also reads the log's age: a runner that
writes nothing for longer than a cell can take is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

# First: nbclient imports nbformat too, and coursekit.grading.notebook imports it without a costly grammar.
from coursekit.grading.notebook import InvalidNotebook, LinkRefused, nbformat, read_submission  # isort: skip

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager  # noqa: E402
from jupyter_client.manager import AsyncKernelManager  # noqa: E402
from jupyter_client.provisioning import LocalProvisioner  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellTimeoutError, DeadKernelError  # noqa: E402

from coursekit.grading.isolation import cgroups, limits, sandbox, trees  # noqa: E402
from coursekit.grading.isolation.warm import ZygoteClient, ZygoteError  # noqa: E402
from coursekit.grading.protocol import KERNEL_START, PARTIAL_CREDIT_MIME, grace, hard_limit, kill_tree  # noqa: E402

STREAM_LIMIT = 64 * 1024
KEEP_TEXT = 4000
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_LINE = re.compile(r"Cell In\[(\d+)\], line (\d+)")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class _KernelSpecs(KernelSpecManager):
    """Always the Python running the grader, whatever other kernels named python3 are installed, with the
    kernel's heap limit (``memory_mb``, 0: none)."""

    memory_mb = 0

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        from ipykernel.kernelspec import get_kernel_dict

        spec = {**get_kernel_dict(), "argv": sandbox.launch_argv(nproc=0, memory_mb=self.memory_mb)}
        return KernelSpec(resource_dir="", **spec)


class _SandboxSpecs(KernelSpecManager):
    """A kernel started by bubblewrap: ``argv`` from ``sandbox.kernel_argv``; interrupted by a message
    (a signal to ``bwrap`` would not reach the kernel in its own session)."""

    argv: list[str] = []

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(resource_dir="", argv=list(self.argv), display_name="Python 3 (sandboxed)",
                          language="python", interrupt_mode="message", metadata={"debugger": False})


class _ForkedKernel:
    """What jupyter_client's provisioner calls on a kernel process (as on a ``Popen``), for a kernel forked
    by a zygote: ``pid`` is the kernel namespace's init as this process sees it; its exit code comes from the
    zygote, which reaps it (``128 + n``: killed by signal n, as with ``bwrap``)."""

    stdin = stdout = stderr = None

    def __init__(self, zygote: ZygoteClient, nspid: int, pid: int):
        self.zygote, self.nspid, self.pid, self.returncode = zygote, nspid, pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.poll(self.nspid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)  # the init: SIGKILL ends its whole namespace
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    terminate = kill


class _SandboxProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, handing the connection file it writes to the sandbox's host user
    (``sandbox.hand_over``: ``nobody`` when the grader is root) before the kernel starts."""

    user: str | None = None  # the sandbox's host user (``sandbox.user_of``)

    async def pre_launch(self, **kwargs) -> dict:
        kwargs = await super().pre_launch(**kwargs)
        sandbox.hand_over(self.parent.connection_file, self.user)
        return kwargs


class _ZygoteProvisioner(_SandboxProvisioner):
    """Starts the kernel by asking the worker's zygote to fork one (``coursekit.grading.isolation.zygote``), not by
    running the kernelspec's command: its arguments after the first are ipykernel's."""

    zygote: ZygoteClient
    limits: dict

    async def launch_kernel(self, cmd: list[str], **kwargs) -> dict:
        sockets = os.path.dirname(self.parent.connection_file)
        nspid, pid = self.zygote.fork(cmd[1:], sockets, **self.limits)
        self.process = _ForkedKernel(self.zygote, nspid, pid)
        self.pid, self.pgid = pid, None
        self.cwd = sandbox.WORKDIR
        return self.connection_info


class _Client(NotebookClient):
    """nbclient, keeping only what grading needs of the outputs so a flood of prints stays cheap."""

    def output(self, outs, msg, display_id, cell_index):
        content = msg["content"]
        if msg["msg_type"] == "stream":
            # Keep at most STREAM_LIMIT characters a cell. (Streams are not coalesced by nbclient: its
            # carriage-return regex takes quadratic time on a long line, and a student's print('x' * 10**6)
            # would then hang this process, where no time limit can reach it.)
            size = sum(len(o.get("text", "")) for o in outs if o.get("output_type") == "stream")
            if size >= STREAM_LIMIT:
                return None
            text = content.get("text", "")
            if size + len(text) > STREAM_LIMIT:
                msg = {**msg, "content": {**content, "text": text[: STREAM_LIMIT - size] + "\n[output cut]\n"}}
        elif msg["msg_type"] in ("display_data", "execute_result", "update_display_data"):
            data = content.get("data", {})
            if PARTIAL_CREDIT_MIME not in data:
                return None
            msg = {**msg, "content": {**content, "data": {PARTIAL_CREDIT_MIME: data[PARTIAL_CREDIT_MIME]}}}
        return super().output(outs, msg, display_id, cell_index)


class _Events:
    def __init__(self, path: str):
        self._file = open(path, "a", encoding="utf-8")

    def write(self, **event) -> None:
        self._file.write(json.dumps(event) + "\n")
        self._file.flush()


def summarise(cell) -> dict:
    """What the grader needs from an executed cell: error, error line, streams, partial credit."""
    out = {"stdout": "", "stderr": "", "partial": None, "error": None}
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            out[o.name] = (out.get(o.name, "") + o.text)
        elif o.output_type == "error":
            traceback = strip_ansi("\n".join(o.get("traceback", [])))
            match = _CELL_LINE.search(traceback)
            out["error"] = {"ename": o.ename, "evalue": strip_ansi(o.evalue)[:KEEP_TEXT],
                            "traceback": traceback[-KEEP_TEXT:],
                            "line": int(match.group(2)) if match else None}
        elif PARTIAL_CREDIT_MIME in o.get("data", {}):
            fraction = o.data[PARTIAL_CREDIT_MIME].get("fraction")
            if isinstance(fraction, (int, float)) and 0 <= fraction <= 1:
                out["partial"] = float(fraction)
    for name in ("stdout", "stderr"):
        text = out[name]
        out[name] = text if len(text) <= KEEP_TEXT else "...\n" + text[-KEEP_TEXT:]
    return out


class Runner:
    """One kernel (restarted as needed) executing the code cells of one notebook."""

    def __init__(self, nb, events: _Events, *, workdir: str, cell_timeout: float, memory_mb: int,
                 max_restarts: int, sandboxed: bool = False, env: dict[str, str] | None = None,
                 disk_mb: int = 512, max_processes: int = 128, max_files: int = 10000, file_mb: int = 512,
                 zygote: ZygoteClient | None = None, sandbox_user: str | None = None):
        self.nb, self.events, self.workdir = nb, events, workdir
        self.cell_timeout, self.memory_mb, self.max_restarts = cell_timeout, memory_mb, max_restarts
        self.sandboxed, self.env = sandboxed or zygote is not None, dict(os.environ if env is None else env)
        self.disk_mb, self.max_processes, self.max_files = disk_mb, max_processes, max_files
        self.file_mb, self.zygote = file_mb, zygote
        self.sandbox_user = sandbox_user  # who the sandbox runs as on the host (``sandbox.user_of``); None: ask
        self.grace = grace(cell_timeout)  # how long an interrupted kernel has to answer
        # Past this, the watchdog thread kills the kernel whatever nbclient is doing.
        self.hard_limit = hard_limit(cell_timeout)
        self.watchdog = limits.Watchdog()
        self.client = _Client(nb, timeout=max(1, math.ceil(cell_timeout)), allow_errors=True,
                              interrupt_on_timeout=False, record_timing=False, startup_timeout=KERNEL_START,
                              iopub_timeout=4, coalesce_streams=False,
                              shutdown_kernel="immediate")
        self.limit_killed: str | None = None
        self.restarts = 0
        self.starts = 0
        self._memory_task: asyncio.Task | None = None
        self.group: cgroups.KernelGroup | None = None  # the kernel's control group, where one can be made
        self.judge = None  # the judge of a judged notebook (coursekit.grading.judge), made when first needed
        self.deadline = 0.0  # when the judged test now running runs out of time (all its calls together)

    # -- kernel lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self.starts += 1
        if self.zygote is not None:
            # A subfolder of the zygote's sockets folder, the only part of it the kernel may write to.
            sockets = Path(tempfile.mkdtemp(prefix="k", dir=self.zygote.sockets))
            sandbox.hand_over(sockets, self.sandbox_user)
            specs = _SandboxSpecs()
            specs.argv = ["coursekit-zygote", "-f", "{connection_file}"]
            km = AsyncKernelManager(kernel_name="coursekit-zygote", kernel_spec_manager=specs, transport="ipc",
                                    ip=str(sockets / "k"), connection_file=str(sockets / "kernel.json"))
            km.kernel_id = f"zygote-{self.starts}"
            km.provisioner = _ZygoteProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
            km.provisioner.zygote = self.zygote
            km.provisioner.user = self.sandbox_user
            km.provisioner.limits = {"disk_mb": self.disk_mb, "memory_mb": self.memory_mb, "file_mb": self.file_mb,
                                     "nproc": self.tasks()}
            cwd = str(sockets)
        elif self.sandboxed:
            # The sockets and the connection file live in a folder of their own, the only folder of the
            # grader's that the sandbox binds (at the same path: the kernel binds the sockets it names).
            sockets = Path(self.workdir) / "sockets"
            sockets.mkdir(mode=0o700, exist_ok=True)
            for folder in (Path(self.workdir).parent, Path(self.workdir)):
                sandbox.reachable(folder, self.sandbox_user)  # the sandbox's host user binds sockets/ below them
            sandbox.hand_over(sockets, self.sandbox_user)
            specs = _SandboxSpecs()
            specs.argv = sandbox.kernel_argv(str(sockets), self.env, disk_mb=self.disk_mb, nproc=self.tasks(),
                                             memory_mb=self.memory_mb, user=self.sandbox_user)
            km = AsyncKernelManager(kernel_name="coursekit-sandbox", kernel_spec_manager=specs, transport="ipc",
                                    ip=str(sockets / f"k{self.starts}"),
                                    connection_file=str(sockets / f"kernel-{self.starts}.json"))
            km.kernel_id = f"sandbox-{self.starts}"
            km.provisioner = _SandboxProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
            km.provisioner.user = self.sandbox_user
            cwd = str(sockets)
        else:
            specs = _KernelSpecs()
            specs.memory_mb = self.memory_mb
            km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=specs)
            cwd = self.workdir
        try:
            await km.start_kernel(cwd=cwd, env=self.env, extra_arguments=["--HistoryManager.hist_file=:memory:"])
        except ZygoteError as err:  # this kernel, and any restart, from nothing: as safe, only slower
            print(f"runner: {err}; starting kernels from nothing", file=sys.stderr, flush=True)
            self.zygote = None
            return await self.start()
        self.client.km = km
        await self.client.async_start_new_kernel_client()
        self.limit_killed = None
        pid = self.kernel_pid()
        self.events.write(event="kernel", pid=pid)
        if pid and self.sandboxed:  # before any cell: the group's limits hold from the first one
            import psutil

            self.group = cgroups.KernelGroup.make(memory_mb=self.memory_mb, tasks=self.tasks())
            if self.group is not None:
                try:
                    self.group.add([pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))])
                except psutil.Error:
                    pass
        if pid:
            sockets = os.path.dirname(self.client.km.connection_file) if self.sandboxed else None
            self._memory_task = asyncio.ensure_future(limits.watch(
                pid, self.limits(),
                sockets=sockets, forked=self.zygote is not None, on_limit=self._limit_reached, group=self.group))

    def kernel_pid(self) -> int | None:
        provisioner = getattr(self.client.km, "provisioner", None)
        process = getattr(provisioner, "process", None)
        return getattr(process, "pid", None)

    async def stop(self) -> None:
        if self._memory_task is not None:
            self._memory_task.cancel()
            self._memory_task = None
        km = self.client.km
        pid = self.kernel_pid() if km is not None else None
        kill_tree(pid)  # the kernel, its process group and whatever it started: no polite shutdown
        if self.group is not None:
            self.group.remove()
            self.group = None
        if km is not None:
            try:
                await asyncio.wait_for(self.client._async_cleanup_kernel(), timeout=10)
            except Exception:  # noqa: BLE001 - a dead kernel may fail to clean up; it is gone anyway
                self.client.km = self.client.kc = None
            if self.zygote is not None:
                trees.remove(os.path.dirname(km.connection_file))

    async def death_reason(self) -> str:
        if self.watchdog.fired:
            return (f"cell time limit ({self.cell_timeout:g} s) exceeded and the kernel did not stop: "
                    f"it was killed")
        if self.limit_killed:
            return self.limit_killed
        if self.group is not None and self.group.hit():
            return limits.group_reason(self.group.hit(), self.limits())
        provisioner = getattr(self.client.km, "provisioner", None)
        code = None
        for _ in range(20):
            code = await provisioner.poll() if provisioner is not None else None
            if code is not None:
                break
            await asyncio.sleep(0.1)
        if code is None:
            return "kernel stopped responding"
        if self.sandboxed and 128 < code < 160:  # bwrap exits 128 + n when its kernel dies of signal n
            code = 128 - code
        if code < 0:
            try:
                return f"kernel killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"kernel killed by signal {-code}"
        return f"kernel exited (code {code})"

    def tasks(self) -> int:
        """The processes and threads a sandbox may hold (its control group's ``pids.max``, ``RLIMIT_NPROC``)."""
        return max(64, 8 * self.max_processes)

    def limits(self) -> limits.Limits:
        return limits.Limits(memory_mb=self.memory_mb, disk_mb=self.disk_mb, max_processes=self.max_processes,
                             max_files=self.max_files, tasks=self.tasks())

    def _limit_reached(self, why: str) -> None:
        self.limit_killed = why

    async def responsive(self) -> bool:
        """After an interrupt: does the kernel answer a trivial request within the grace period?"""
        kc = self.client.kc
        msg_id = kc.execute("pass", store_history=False, silent=True)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline:
            try:
                msg = await kc.shell_channel.get_msg(timeout=max(0.1, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - queue.Empty: no reply yet, or a closed channel
                await asyncio.sleep(0.05)
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return True
        return False

    # -- execution --------------------------------------------------------------------------------
    async def execute(self, index: int, cell=None) -> dict:
        """Run cell ``index`` (or ``cell`` in its place); return its outcome: status, error, streams, partial
        credit, seconds."""
        cell = self.nb.cells[index] if cell is None else cell
        began = time.monotonic()
        status, reason = "ok", None
        self.watchdog.arm(self.kernel_pid(), self.hard_limit)
        try:
            await self.client.async_execute_cell(cell, index)
        except CellTimeoutError:
            status, reason = "timeout", f"cell time limit ({self.cell_timeout:g} s) exceeded"
            try:
                await self.client.km.interrupt_kernel()
                alive = await self.responsive()
            except Exception:  # noqa: BLE001 - a kernel that cannot even be interrupted is dead to us
                alive = False
            if not alive:
                status, reason = "died", reason + " and the kernel ignored the interrupt"
        except DeadKernelError:
            status, reason = "died", await self.death_reason()
        finally:
            self.watchdog.disarm()
        if self.watchdog.fired and status != "died":
            status, reason = "died", await self.death_reason()
        outcome = {"status": status, "reason": reason, **summarise(cell),
                   "seconds": round(time.monotonic() - began, 3)}
        if status == "ok" and outcome["error"]:
            outcome["status"] = "error"
        return outcome

    # -- the judge ----------------------------------------------------------------------------------
    def role(self, index: int) -> str:
        return self.nb.cells[index].metadata.get("coursekit", {}).get("role", "")

    def channel(self) -> str:
        """The folder the kernel writes its answers to: its sockets folder (the only one it shares with
        this process) in the sandbox, its working folder without one."""
        return os.path.dirname(self.client.km.connection_file) if self.sandboxed else self.workdir

    async def answer(self, index: int, data: bytes) -> bytes:
        """Ask the kernel one question of the judge (``coursekit.grading.serve``), as a cell with the cell
        limits; its answer's bytes, read from a file of the channel folder that is not followed through a
        link and is checked for size before it is read."""
        from coursekit.grading import judge, wire

        left = self.deadline - time.monotonic()
        if left <= 0:
            raise judge.KernelGone("timeout", f"cell time limit ({self.cell_timeout:g} s) exceeded")
        name = f"reply-{judge.nonce()}"
        path = os.path.join(self.channel(), name)
        code = f"__coursekit_serve__({base64.b64encode(data).decode()!r}, {path!r})"
        self.client.timeout = max(1, math.ceil(left))  # the test's calls share one cell's time
        try:
            outcome = await self.execute(index, nbformat.v4.new_code_cell(code))
        finally:
            self.client.timeout = max(1, math.ceil(self.cell_timeout))
        if outcome["status"] in ("died", "timeout"):
            raise judge.KernelGone(outcome["status"], outcome["reason"] or outcome["status"])
        if outcome["error"]:
            e = outcome["error"]
            raise judge.AnswerError(f"the kernel did not answer ({e['ename']}: {e['evalue'][:200]})")
        try:
            return read_submission(self.channel(), name, limit=wire.MAX_BYTES)
        except (InvalidNotebook, LinkRefused) as err:
            raise judge.AnswerError(f"the kernel's answer was refused: {err}") from None
        except OSError as err:
            raise judge.AnswerError(f"the kernel gave no answer ({err.strerror or err})") from None
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass

    def the_judge(self):
        """This notebook's judge (``coursekit.grading.judge``), made when first needed; a judged test sets its
        way to the kernel (``ask``) before it runs."""
        if self.judge is None:
            from coursekit.grading.judge import Judge

            info = self.nb.metadata["coursekit_judge"]
            self.judge = Judge(lambda data: b"", student_names=set(info["student_names"]), submitted=info["submitted"])
        return self.judge

    async def judged(self, index: int) -> dict:
        """Run test cell ``index`` in the judge (``coursekit.grading.judge``); its outcome."""
        loop = asyncio.get_running_loop()
        began = time.monotonic()
        self.deadline = began + self.cell_timeout

        def ask(data: bytes) -> bytes:
            return asyncio.run_coroutine_threadsafe(self.answer(index, data), loop).result()

        self.the_judge().ask = ask
        outcome = await loop.run_in_executor(None, self.judge.run_test, self.nb.cells[index].source)
        return {**outcome, "stdout": "", "stderr": "", "seconds": round(time.monotonic() - began, 3)}

    async def given_in_judge(self, index: int, outcome: dict) -> dict:
        """A given cell the judge needs runs there too, after the kernel ran it; its error, if any, is the cell's."""
        error = await asyncio.get_running_loop().run_in_executor(None, self.the_judge().run_given,
                                                                 self.nb.cells[index].source)
        if error and outcome["status"] == "ok":
            outcome = {**outcome, "status": "error", "error": error}
        return outcome

    async def run_cell(self, index: int) -> dict:
        """Run cell ``index`` where it belongs: a judged test in the judge, every other cell in the kernel."""
        judged = "coursekit_judge" in self.nb.metadata
        if judged and self.role(index) == "test":
            return await self.judged(index)
        outcome = await self.execute(index)
        if judged and self.nb.cells[index].metadata.get("coursekit", {}).get("judged"):
            outcome = await self.given_in_judge(index, outcome)
        return outcome

    async def restart(self, before: list[int], killers: set[int]) -> bool:
        """Restart the kernel and replay the cells in ``before`` except the ``killers``; False if out of restarts."""
        while True:
            self.restarts += 1
            if self.restarts > self.max_restarts:
                return False
            await self.stop()
            self.events.write(event="restart", count=self.restarts)
            await self.start()
            for index in before:
                if index in killers or ("coursekit_judge" in self.nb.metadata and self.role(index) == "test"):
                    continue  # a judged test does not run in the kernel
                self.events.write(event="replay", cell=index)
                if (await self.execute(index))["status"] in ("died", "timeout"):
                    killers.add(index)
                    break
            else:
                return True

    async def run(self) -> None:
        code = [i for i, c in enumerate(self.nb.cells) if c.cell_type == "code" and c.source.strip()]
        killers: set[int] = set()
        await self.start()
        try:
            for position, index in enumerate(code):
                self.events.write(event="start", cell=index)
                outcome = await self.run_cell(index)
                self.events.write(event="end", cell=index, **outcome)
                if outcome["status"] in ("died", "timeout"):  # not worth running again after a restart
                    killers.add(index)
                if outcome["status"] == "died":
                    if not await self.restart(code[:position], killers):
                        self.events.write(event="abort", reason=f"the kernel died {self.restarts} times")
                        return
            self.events.write(event="done")
        finally:
            self.watchdog.close()
            await self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursekit.grading.runner", description=__doc__.split("\n")[0])
    parser.add_argument("--sandbox", action="store_true", help="run the kernel in bubblewrap")
    parser.add_argument("--disk-mb", type=int, default=512)
    parser.add_argument("--max-processes", type=int, default=128)
    parser.add_argument("--max-files", type=int, default=10000)
    parser.add_argument("notebook")
    parser.add_argument("events")
    parser.add_argument("--unprivileged", choices=("0", "1"),
                        help="whether the sandbox runs as an unprivileged host user (the grader decided)")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--cell-timeout", type=float, default=60)
    parser.add_argument("--memory-mb", type=int, default=4096)
    parser.add_argument("--file-mb", type=int, default=512)
    parser.add_argument("--max-restarts", type=int, default=3)
    parser.add_argument("--zygote", metavar="TO,FROM,PID,SOCKETS",
                        help="fork kernels from this zygote (grading.isolation.warm): pipes, pid, sockets folder")
    args = parser.parse_args(argv)
    zygote = None
    if args.zygote:
        to_zygote, from_zygote, pid, sockets = args.zygote.split(",", 3)
        zygote = ZygoteClient(int(to_zygote), int(from_zygote), int(pid), sockets)
    limits.set_limits(args.file_mb)
    limits.become_subreaper()
    events = _Events(args.events)
    nb = nbformat.read(args.notebook, as_version=4)
    runner = Runner(nb, events, workdir=str(Path(args.workdir).resolve()), cell_timeout=args.cell_timeout,
                    memory_mb=args.memory_mb, max_restarts=args.max_restarts, sandboxed=args.sandbox,
                    disk_mb=args.disk_mb, max_processes=args.max_processes, max_files=args.max_files,
                    file_mb=args.file_mb, zygote=zygote,
                    sandbox_user=None if args.unprivileged is None else sandbox.user_of(args.unprivileged == "1"))
    try:
        asyncio.run(runner.run())
    except Exception as err:  # noqa: BLE001 - reported to the grader, which keeps going
        import traceback

        events.write(event="crash", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc()[-KEEP_TEXT:])
        return 1
    finally:
        kill_tree(os.getpid(), include_self=False)  # orphans re-parented to us (see limits.become_subreaper)
    return 0


if __name__ == "__main__":
    sys.exit(main())
