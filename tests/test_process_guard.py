"""tests/process_guard.py: a test that leaves a process running errors, the session fails, and
nothing of it is left afterwards.  Each case runs an inner pytest session with the plugin."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import process_guard

TESTS = Path(__file__).resolve().parent


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _inner_session(folder: Path, body: str, wrapper: tuple[str, ...] = (),
                   token: str | None = None) -> subprocess.CompletedProcess[str]:
    """An inner pytest session with the plugin, its own token (``token``: set by its caller,
    who then carries it too), started under ``wrapper`` (e.g. `timeout`)."""
    (folder / "test_inner.py").write_text(textwrap.dedent(body))
    env = {k: v for k, v in os.environ.items() if k != process_guard.MARK}
    if token is not None:
        env[process_guard.MARK] = token
    env["PYTHONPATH"] = str(TESTS)
    return subprocess.run([*wrapper, sys.executable, "-m", "pytest", "-q", "-p", "process_guard",
                           "-p", "no:cacheprovider", "test_inner.py"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_a_failed_test_that_left_its_process_running_errors_and_the_process_is_ended(
        tmp_path: Path) -> None:
    run = _inner_session(tmp_path, """
        import subprocess, sys
        from pathlib import Path

        def test_fails_before_ending_its_process():
            proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
            Path("pid").write_text(str(proc.pid))
            assert False, "the test fails before it ends its process"

        def test_ends_its_process():
            proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
            proc.kill()
            proc.wait()
    """)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "1 failed, 1 passed, 1 error" in out, out
    assert "test_fails_before_ending_its_process left 1 process(es) running (now killed)" in out
    assert "time.sleep(300)" in out  # names the process
    assert not _running(int((tmp_path / "pid").read_text()))


def test_a_process_left_behind_by_a_passing_test_fails_the_session(tmp_path: Path) -> None:
    # The sleeper is a grandchild, re-parented once its parent exits: only the session-end
    # sweep, by the mark in its environment, can find it.
    run = _inner_session(tmp_path, """
        import subprocess, sys
        from pathlib import Path

        # (its output goes nowhere: a pipe it held open would keep the sessions waiting)
        SPAWN = ("import subprocess, sys; print(subprocess.Popen([sys.executable, '-c', "
                 "'import time; time.sleep(300)'], stdout=subprocess.DEVNULL, "
                 "stderr=subprocess.DEVNULL).pid)")

        def test_passes_but_leaves_a_grandchild():
            out = subprocess.run([sys.executable, "-c", SPAWN], capture_output=True, text=True)
            Path("pid").write_text(out.stdout.strip())
    """)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "1 passed" in out, out
    assert "the test session left 1 process(es) running (now killed)" in out, out
    pid = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + 10.0  # init reaps it once it is killed
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid)


def test_the_suite_marks_its_processes() -> None:
    probe = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert probe.pid in {p.pid for p in process_guard.marked_processes()}
    finally:
        probe.kill()
        probe.wait()
    assert probe.pid not in {p.pid for p in process_guard.marked_processes()}


def test_the_wrapper_that_started_the_run_is_not_ended(tmp_path: Path) -> None:
    # scripts/test.sh: `timeout` (its own process group) carries the token and runs pytest.  The
    # session-end sweep once took it for a leftover and signalled its group: pytest itself.
    run = _inner_session(tmp_path, """
        def test_passes():
            pass
    """, wrapper=("timeout", "-s", "KILL", "100"), token="wrapper-test-" + str(os.getpid()))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "1 passed" in out and "left" not in out, out
