"""Record an agent-style MCP session with the simulated robot into docs/mcp_transcript.md.

The MCP SDK's client starts `vlm-ros demo --mcp` over stdio (as an MCP host does) and makes
the calls an LLM agent would make - look, ground, pick, place, ask where, try what the policy
forbids, ask for a drive a person must approve (this script plays the person, over the
/vlm_ros_mcp/approve service), try to approve itself - and writes every call, its progress
messages and its result (long fields shortened) as Markdown.

    python scripts/mcp_transcript.py [--out docs/mcp_transcript.md]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

REPO = Path(__file__).resolve().parent.parent
VLM_ROS = str(Path(sys.executable).parent / "vlm-ros")
# (tool, arguments, why an agent makes this call)
SESSION: list[tuple[str, dict[str, Any], str]] = [
    ("snapshot", {}, "look at the scene first"),
    ("ground", {"command": "grab the red mug"}, "check what a command would do, without moving"),
    ("instruct", {"command": "grab the red mug"}, "the operator asked for the red mug"),
    ("instruct", {"command": "put it in the blue bowl"}, "and then to put it in the bowl"),
    ("where", {"object": "green mug"}, "where is the other mug, relative to the robot?"),
    ("instruct", {"command": "follow the green mug"}, "the policy forbids following"),
    ("instruct", {"command": "yes"}, "an agent trying to approve on its own"),
    ("instruct", {"command": "go to the green mug"}, "a drive: the policy asks a person"),
    ("instruct", {"command": "grab the banana"}, "something that is not there"),
    ("stop", {}, "always available"),
]


def _short(value: Any) -> Any:
    """The result with long lists and numbers kept readable."""
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items() if k not in ("bbox", "score")}
    if isinstance(value, list):
        return [_short(v) for v in value[:3]] + (["..."] if len(value) > 3 else [])
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, str) and len(value) > 400:
        return value[:400] + "..."
    return value


def approve_when_asked(client: Client, approve: Any) -> Any:
    async def watch() -> None:
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            status = json.loads((await client.read_resource("vlm-ros://status")).contents[0].text)
            if status["awaiting_approval"]:
                await anyio.sleep(1.0)  # a person reads the request
                await anyio.to_thread.run_sync(approve)
                return
            await anyio.sleep(0.2)
    return watch


def person_approves() -> None:
    """`ros2 service call /vlm_ros_mcp/approve std_srvs/srv/SetBool "{data: true}"`."""
    import rclpy
    from std_srvs.srv import SetBool

    rclpy.init()
    node = rclpy.create_node("operator")
    try:
        client = node.create_client(SetBool, "/vlm_ros_mcp/approve")
        client.wait_for_service(timeout_sec=10.0)
        time.sleep(0.5)  # the server must discover this client's reply reader too
        future = client.call_async(SetBool.Request(data=True))
        rclpy.spin_until_future_complete(node, future, timeout_sec=10.0)
    finally:
        node.destroy_node()
        rclpy.shutdown()


async def record() -> list[str]:
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "osmesa")}
    server = StdioServerParameters(command=VLM_ROS, args=["demo", "--mcp"], env=env)
    lines: list[str] = []
    async with Client(server, read_timeout_seconds=180) as client:
        tools = (await client.list_tools()).tools
        lines += ["## tools/list", "", "| tool | arguments (strict: nothing else is accepted) |",
                  "|---|---|"]
        for tool in tools:
            arguments = ", ".join(f"`{k}`" + (" (required)" if k in tool.input_schema.get(
                "required", []) else "") for k in tool.input_schema["properties"])
            lines.append(f"| `{tool.name}` | {arguments or '-'} |")
        status = json.loads((await client.read_resource("vlm-ros://status")).contents[0].text)
        lines += ["", "## resources/read vlm-ros://status", "", "```json",
                  json.dumps(_short({k: status[k] for k in ("node", "node_seen", "policy",
                                                            "base_frame")}), indent=1,
                             ensure_ascii=False), "```"]
        for step, (tool, arguments, why) in enumerate(SESSION, start=1):
            progress: list[str] = []

            async def on_progress(_done: float, _total: float | None, message: str | None,
                                  progress: list[str] = progress) -> None:
                progress.append(message or "")

            started = time.monotonic()
            async with anyio.create_task_group() as tasks:
                if arguments.get("command", "").startswith("go to"):
                    tasks.start_soon(approve_when_asked(client, person_approves))
                result = await client.call_tool(tool, arguments, progress_callback=on_progress)
                tasks.cancel_scope.cancel()  # nothing left to approve
            took = time.monotonic() - started
            lines += ["", f"## {step}. `{tool}` {json.dumps(arguments, ensure_ascii=False)}",
                      "", f"*{why}* ({took:.1f} s)", ""]
            if progress:
                lines += ["progress:", ""] + [f"- {p}" for p in progress] + [""]
            for content in result.content:
                if content.type == "image":
                    lines.append(f"(an image: {content.mime_type}, "
                                 f"{len(content.data) * 3 // 4 // 1024} KiB)")
                elif content.text.startswith("{"):
                    lines += ["```json", json.dumps(_short(json.loads(content.text)), indent=1,
                                                    ensure_ascii=False), "```"]
                else:
                    lines.append(content.text)
            if any("needs approval" in p for p in progress):
                lines += ["", "(the person's side: `ros2 service call /vlm_ros_mcp/approve "
                          "std_srvs/srv/SetBool \"{data: true}\"`, made by this script a "
                          "second after the request appeared in the status resource)"]
        status = json.loads((await client.read_resource("vlm-ros://status")).contents[0].text)
        lines += ["", "## the robot's reports (physics), from vlm-ros://status", ""]
        lines += [f"- {json.dumps(r['report'], ensure_ascii=False)}"
                  for r in status["robot_reports"]]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "mcp_transcript.md"))
    args = parser.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", "58")
    lines = anyio.run(record)
    header = ["# An agent's session with the simulated robot, over MCP", "",
              "Recorded by `python scripts/mcp_transcript.py` on "
              f"{time.strftime('%Y-%m-%d')}: the MCP SDK's client started `vlm-ros demo --mcp` "
              "(stdio) with the demo's policy (config/agent_policy.yaml) and made the calls "
              "below, as an LLM agent would.  Long lists are cut to 3 items, boxes and scores "
              "left out.  See docs/mcp.md.", ""]
    Path(args.out).write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
