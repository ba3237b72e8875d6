"""`vlm-ros mcp` / `vlm-ros demo --mcp` refuse bad start-up input in one line, exit 2, before
any ROS or model is started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

VLM_ROS = str(Path(sys.executable).parent / "vlm-ros")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VLM_ROS, *args], capture_output=True, text=True, timeout=60)


def test_a_bad_policy_names_its_line(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nactions:\n  pick: allow\n  grasp: allow\n")
    for command in (["mcp"], ["demo", "--mcp"]):
        done = _run(*command, "--policy", str(policy))
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "policy.yaml line 4" in lines[0] and "'grasp'" in lines[0]


def test_a_missing_policy_file_is_named(tmp_path: Path) -> None:
    done = _run("mcp", "--policy", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2 and "nope.yaml" in done.stderr


def test_http_off_this_machine_needs_a_token() -> None:
    done = _run("mcp", "--transport", "http", "--mcp-host", "0.0.0.0")
    assert done.returncode == 2 and "--mcp-token" in done.stderr


@pytest.mark.parametrize("other", ["--console", "--photo"])
def test_demo_mcp_is_its_own_mode(other: str) -> None:
    done = _run("demo", "--mcp", other)
    assert done.returncode == 2 and "--mcp" in done.stderr
