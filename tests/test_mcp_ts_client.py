"""`vlm-ros mcp` driven by a second, independent MCP client: the official TypeScript SDK
(@modelcontextprotocol/sdk, pinned in tests/mcp_ts_client/package-lock.json) run by Node.js.

tests/test_mcp_server.py proves the server with the Python SDK, which shares its types with the
server; a client written from the spec by other people is what catches a server that only
works with its own SDK (field names, content shapes, protocol version negotiation).

The client's packages are installed with `npm ci` into .cache/mcp_ts_client (ignored by git),
and re-used while the lock file stays the same.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

# Skipped before anything starts: without Node.js there is no second client to run.
if shutil.which("node") is None or shutil.which("npm") is None:
    pytest.skip("node and npm are needed for the TypeScript MCP client (not on PATH)",
                allow_module_level=True)

# The same node, scene, policy and environment as the Python SDK's tests (that module skips
# this one too where the mcp extra, which the server needs, is missing).
from test_mcp_server import POLICY, TOOLS, VLM_ROS, _env, sign_graph  # noqa: E402

pytestmark = pytest.mark.ros
CLIENT_SOURCE = Path(__file__).resolve().parent / "mcp_ts_client"
REPO_ROOT = CLIENT_SOURCE.parent.parent
CLIENT_DIR = REPO_ROOT / ".cache" / "mcp_ts_client"
INSTALL_FILES = ("package.json", "package-lock.json")
STAMP = ".installed-from"  # the package.json + lock an install succeeded with
CLIENT_TIMEOUT_S = 120.0


def _install_client() -> Path:
    """CLIENT_DIR with the client and its locked packages; `npm ci` only when the lock (or
    package.json) changed since the last install that succeeded.  Returns client.mjs."""
    CLIENT_DIR.mkdir(parents=True, exist_ok=True)
    wanted = b"".join((CLIENT_SOURCE / name).read_bytes() for name in INSTALL_FILES)
    # Two test runs at once would otherwise delete each other's node_modules mid-install.
    with open(CLIENT_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = CLIENT_DIR / STAMP
        installed = stamp.read_bytes() if stamp.exists() else b""
        sdk = CLIENT_DIR / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json"
        if installed != wanted or not sdk.exists():
            stamp.unlink(missing_ok=True)  # a failed install below is never re-used
            for name in INSTALL_FILES:
                shutil.copyfile(CLIENT_SOURCE / name, CLIENT_DIR / name)
            npm = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(CLIENT_DIR)],
                cwd=CLIENT_DIR, capture_output=True, text=True, timeout=300)
            if npm.returncode != 0:
                # The registry is reachable in CI: a failed install is a broken test, not a skip.
                pytest.fail(f"npm ci failed (exit {npm.returncode}):\n{npm.stdout}\n{npm.stderr}")
            stamp.write_bytes(wanted)
        # The script itself needs no install: always the checkout's own.
        shutil.copyfile(CLIENT_SOURCE / "client.mjs", CLIENT_DIR / "client.mjs")
    return CLIENT_DIR / "client.mjs"


def _run_client(script: Path, policy: Path) -> dict[str, Any]:
    """The TypeScript client's one JSON line; its stderr (and the server's) on failure."""
    command = ["node", str(script), "--", VLM_ROS, "mcp", "--node", "/vlm_ros",
               "--camera-topic", "/camera/image", "--policy", str(policy)]
    # A session of its own: on a timeout both node and the server it spawned are ended, not
    # just node (whose death would leave the server orphaned, waiting on a dead pipe).
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=_env(), start_new_session=True) as process:
        try:
            out, err = process.communicate(timeout=CLIENT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            pytest.fail(f"the TypeScript client ran past {CLIENT_TIMEOUT_S:g} s:\n"
                        f"{out}\n{err[-4000:]}")
    assert process.returncode == 0, f"TypeScript client exit {process.returncode}:\n{err[-4000:]}"
    lines = out.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got:\n{out}\n{err[-4000:]}"
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def graph() -> Iterator[Any]:
    # Its own node, like test_mcp_server's fixture: module-scoped, so it has ended before (or
    # starts after) that module's, and two /vlm_ros nodes never share the domain.
    with sign_graph() as started:
        yield started


def test_typescript_sdk_client(graph: Any, tmp_path: Path) -> None:
    script = _install_client()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    grasps = graph.listener.count("grasp_pose")

    seen = _run_client(script, policy)

    assert set(seen["tools"]) == TOOLS and len(seen["tools"]) == len(TOOLS), seen["tools"]
    ground = seen["ground"]
    assert ground["status"] == "preview" and not seen["groundIsError"], ground
    assert ground["targets"][0]["color"] == "red" and ground["goals"] == [], ground
    # The TS SDK reads structuredContent as the same answer the text carries.
    assert seen["groundStructuredMatches"], ground
    bad = seen["bad"]
    assert bad["isError"] and "'speed'" in bad["text"], bad
    snapshot = seen["snapshot"]
    assert "image" in snapshot["types"] and not snapshot["isError"], snapshot
    assert snapshot["mimeType"] == "image/jpeg" and snapshot["bytes"] > 1000, snapshot
    status = seen["status"]
    assert status["node_seen"] is True, status
    assert status["policy"]["source"] == policy.name, status["policy"]
    # Closing the client closed the server (stdin EOF, else the SDK's SIGTERM / SIGKILL).
    assert seen["server"]["exited"], seen["server"]
    time.sleep(0.5)  # a goal published by mistake would have arrived by now
    assert graph.listener.count("grasp_pose") == grasps  # ground and a bad call move nothing
