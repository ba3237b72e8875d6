"""Run a `vlm-ros` load tool (soak, bench) as its own process, as a user does, under a kill timer.

These tools start rclpy, the node as a child process and DDS traffic.  Inside the pytest process
they would share its rclpy state with every test before them, and a hang in DDS or rclpy cannot
be interrupted from Python (a CI run once stopped there until its 90 minutes ran out).  As their
own process under `timeout -s KILL`, which signals the tool's whole process group (the node it
started goes too), a hang fails the one test with the tool's stderr in the message.
"""

from __future__ import annotations

import json
import subprocess
import sys
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
