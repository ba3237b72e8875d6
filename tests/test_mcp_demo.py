"""`vlm-ros demo --mcp`: an MCP client drives the simulated robot, and the physics says what
happened.  The SDK's client starts the demo itself over stdio, as an MCP host would (Claude
Desktop's "command"), with the demo's own policy (config/agent_policy.yaml)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp", reason="the mcp extra (pip install -e '.[mcp]')")
from mcp import Client, StdioServerParameters  # noqa: E402

pytestmark = pytest.mark.ros
VLM_ROS = str(Path(sys.executable).parent / "vlm-ros")


async def _call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    return json.loads(next(c.text for c in result.content if c.type == "text"))


async def _robot_report(client: Client, seen: int, timeout_s: float = 60.0) -> dict[str, Any]:
    """The simulated robot's next report of an executed goal (from the physics)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = json.loads((await client.read_resource("vlm-ros://status")).contents[0].text)
        if len(status["robot_reports"]) > seen:
            return status["robot_reports"][-1]["report"]
        await anyio.sleep(0.2)
    raise AssertionError("the simulated robot reported nothing")


def test_an_agent_picks_and_places_in_the_simulator() -> None:
    server = StdioServerParameters(command=VLM_ROS, args=["demo", "--mcp"],
                                   env={**os.environ, "MUJOCO_GL": os.environ.get(
                                       "MUJOCO_GL", "osmesa")})

    async def session() -> dict[str, Any]:
        async with Client(server, read_timeout_seconds=180) as client:
            tools = sorted(t.name for t in (await client.list_tools()).tools)
            status = json.loads((await client.read_resource("vlm-ros://status")).contents[0].text)
            pick = await _call(client, "instruct", {"command": "grab the red mug"})
            picked = await _robot_report(client, 0)
            place = await _call(client, "instruct", {"command": "put it in the blue bowl"})
            placed = await _robot_report(client, 1)
            follow = await _call(client, "instruct", {"command": "follow the green mug"})
            return {"tools": tools, "status": status, "pick": pick, "picked": picked,
                    "place": place, "placed": placed, "follow": follow}

    seen = anyio.run(session)
    assert seen["tools"] == ["ask", "describe", "ground", "instruct", "snapshot", "stop", "where"]
    assert seen["status"]["node_seen"] and seen["status"]["policy"]["source"] == \
        "agent_policy.yaml"
    assert seen["pick"]["status"] == "done" and seen["pick"]["policy"]["verdict"] == "allow"
    assert seen["pick"]["targets"][0]["color"] == "red", seen["pick"]
    assert seen["picked"]["success"] and "red" in seen["picked"]["detail"], seen["picked"]
    assert seen["place"]["status"] == "done", seen["place"]
    assert seen["placed"]["success"], seen["placed"]
    assert seen["follow"]["status"] == "denied" and "follow is not allowed" in \
        seen["follow"]["message"]
