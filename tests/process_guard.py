"""A pytest plugin that finds the processes a test run leaves behind, ends them and fails.

Every process this test session starts inherits ``VLM_ROS_TEST_RUN=<token>`` (set when the plugin
loads, a token of this session alone), so its processes can be found in /proc whoever started
them, even once their parent has died.  Two checks:

* after each test (also a failed one): a process the test started directly (a child of this
  pytest process that did not exist before the test) and that is still running was not ended by
  the test: it is killed, with its process group, and the test errors, naming it.  Processes that
  module- or session-scoped fixtures hold were there before the test and are left alone.
* at the end of the session: any process still carrying the token, wherever it was re-parented,
  is killed and the session fails, listing them.

Linux only (/proc); elsewhere both checks do nothing.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

MARK = "VLM_ROS_TEST_RUN"
TOKEN = os.environ.setdefault(MARK, uuid.uuid4().hex)
PROC = Path("/proc")


@dataclass(frozen=True)
class Found:
    pid: int
    ppid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid}: {self.command[:160]}"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # gone, a zombie, or not ours
        return b""


def _children() -> list[str] | None:
    """The pids of this process's children (every thread's), or None where Linux does not say
    (/proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN)."""
    tasks = PROC / str(os.getpid()) / "task"
    try:
        files = [task / "children" for task in tasks.iterdir()]
    except OSError:
        return None
    if not files or not files[0].exists():
        return None
    return [pid for f in files for pid in _read(f).decode().split()]


def _stat_fields(entry: Path) -> list[str]:
    """/proc/<pid>/stat after the command name: [state, ppid, ...] (empty when it is gone)."""
    return _read(entry / "stat").decode(errors="replace").rsplit(")", 1)[-1].split()


def _parent(pid: int) -> int:
    fields = _stat_fields(PROC / str(pid))
    return int(fields[1]) if len(fields) >= 2 else 0


def _self_and_ancestors() -> set[int]:
    """This process and the ones it runs under: a wrapper that started the run with the token
    in its environment (scripts/test.sh's `timeout`) is not something the run left behind."""
    found: set[int] = set()
    pid = os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        pid = _parent(pid)
    return found


def marked_processes(token: str = TOKEN, children_only: bool = False) -> list[Found]:
    """Running processes (not this one, nor its ancestors) whose environment carries
    ``MARK=token``; ``children_only``: among this process's children (a cheap look, after
    every test)."""
    needle = f"{MARK}={token}".encode()
    found: list[Found] = []
    if not PROC.is_dir():
        return found
    names = _children() if children_only else None
    candidates = ([PROC / name for name in names] if names is not None else PROC.iterdir())
    excluded = _self_and_ancestors()
    for entry in candidates:
        if not entry.name.isdigit() or int(entry.name) in excluded:
            continue
        if needle not in _read(entry / "environ").split(b"\0"):
            continue
        fields = _stat_fields(entry)
        if len(fields) < 2 or fields[0] == "Z":
            continue
        command = _read(entry / "cmdline").replace(b"\0", b" ").decode(errors="replace").strip()
        found.append(Found(int(entry.name), int(fields[1]), command))
    return found


def end(processes: list[Found], grace_s: float = 3.0) -> None:
    """SIGTERM each process (its group too when it leads one, unless that is this process's own
    group), SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for process in processes:
            try:
                if os.getpgid(process.pid) == process.pid != os.getpgrp():
                    os.killpg(process.pid, sig)
                else:
                    os.kill(process.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _alive(processes):
            time.sleep(0.05)
        if not _alive(processes):
            return


def _alive(processes: list[Found]) -> list[Found]:
    _reap(processes)
    alive = {p.pid for p in marked_processes()}
    return [p for p in processes if p.pid in alive]


def _reap(processes: list[Found]) -> None:
    """Collect those of ``processes`` that are our exited children (no zombies left).  Only
    these: reaping any other child would take its exit code from the Popen that waits for it."""
    for process in processes:
        if process.ppid != os.getpid():
            continue
        try:
            os.waitpid(process.pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _own_children() -> list[Found]:
    return [p for p in marked_processes(children_only=True) if p.ppid == os.getpid()]


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    before = {p.pid for p in _own_children()}
    yield
    leaked = [p for p in _own_children() if p.pid not in before]
    if leaked:
        end(leaked)
        pytest.fail(f"{request.node.nodeid} left {len(leaked)} process(es) running (now "
                    f"killed): " + "; ".join(map(str, leaked)), pytrace=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = marked_processes()
    if not left:
        return
    end(left)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = (f"process_guard: the test session left {len(left)} process(es) running (now "
               f"killed):\n" + "\n".join(f"  {p}" for p in left))
    if reporter is not None:
        reporter.write_line(message, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


if __name__ == "__main__":
    # `python tests/process_guard.py`, after a test run that ended without its session finish
    # (killed, or ended by faulthandler_timeout): ends whatever still carries the run's token.
    left = marked_processes()
    end(left)
    for process in left:
        print(f"process_guard: ended a process the test run left: {process}")
