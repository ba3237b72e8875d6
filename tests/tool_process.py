"""Run `vlm-ros` tools as their own processes, as a user does: a load tool (soak, bench) under a
kill timer, or a long-running one in the background until it says it is ready.

These tools start rclpy, the node as a child process and DDS traffic.  Inside the pytest process
they would share its rclpy state with every test before them, and a hang in DDS or rclpy cannot
be interrupted from Python (a CI run once stopped there until its 90 minutes ran out).  As their
own process under `timeout -s KILL`, which signals the tool's whole process group (the node it
started goes too), a hang fails the one test with the tool's stderr in the message.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest


def run_tool_json(args: list[str], limit_s: float) -> dict[str, Any]:
    """`vlm-ros <args> --json` with at most ``limit_s`` seconds; returns the JSON report."""
    command = ["timeout", "-s", "KILL", str(int(limit_s)),
               sys.executable, "-m", "vlm_ros.cli", *args, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=limit_s + 30.0)
    said = f"`vlm-ros {' '.join(args)}` exited {done.returncode}; stderr:\n{done.stderr[-6000:]}"
    if done.returncode in (124, 137, -9):
        pytest.fail(f"killed after {limit_s:.0f} s: {said}")
    reports = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert reports, f"no JSON report: {said}\nstdout:\n{done.stdout[-2000:]}"
    return json.loads(reports[-1])


@contextlib.contextmanager
def running(command: list[str], ready: str, timeout_s: float = 60.0,
            env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """``command`` in the background, once a stderr line contains ``ready``; killed on the way out
    if the test has not ended it (a failed assertion, a timeout).  Yields the process and the
    stderr lines read so far."""
    proc = subprocess.Popen(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    try:
        assert proc.stderr is not None
        seen: list[str] = []
        deadline = time.monotonic() + timeout_s
        while not any(ready in line for line in seen) and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                raise AssertionError(f"ended before {ready!r}:\n{''.join(seen)}")
            seen.append(line)
        if not any(ready in line for line in seen):
            raise AssertionError(f"never saw {ready!r}:\n{''.join(seen)}")
        yield proc, seen
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
