"""`vlm-ros mcp` / `vlm-ros demo --mcp`: arguments, start-up checks, the transports.

No rclpy or mcp import at module level: the CLI builds its parser without them.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Any

from vlm_ros.argtypes import node_name, whole_number

DEMO_POLICY = "agent_policy.yaml"


def _port(text: str) -> int:
    return whole_number(text, 1, 65535)


def add_mcp_arguments(parser: argparse.ArgumentParser, demo: bool = False) -> None:
    """The server's options; ``demo``: without --node / --camera-topic (the demo sets them)."""
    group = parser.add_argument_group("MCP server" + (" (with --mcp)" if demo else ""))
    if not demo:
        group.add_argument("--node", default="/vlm_ros", type=node_name,
                           help="the vlm_ros node's name (default /vlm_ros)")
        group.add_argument("--camera-topic", default=None,
                           help="the camera the snapshot tool shows (default: camera/image in "
                                "the node's namespace)")
        group.add_argument("--robot-status-topic", default=None,
                           help="what the robot reports of executed goals, shown in the status "
                                "resource (default: robot_status in the node's namespace)")
    group.add_argument("--policy", default=None, metavar="FILE",
                       help="approval policy (YAML; docs/mcp.md).  Default: "
                            + ("config/agent_policy.yaml" if demo else
                               "every motion needs a person's approval"))
    group.add_argument("--transport", choices=["stdio", "http"], default="stdio",
                       help="stdio (an MCP host starts this command; default) or streamable "
                            "HTTP at http://HOST:PORT/mcp")
    group.add_argument("--mcp-host", default="127.0.0.1",
                       help="HTTP: address to bind (default 127.0.0.1; any other needs "
                            "--mcp-token)")
    group.add_argument("--mcp-port", type=_port, default=8765, help="HTTP: port (default 8765)")
    group.add_argument("--mcp-token", default=None,
                       help="HTTP: bearer token a client must send (required off loopback)")


def load_policy_arg(path: str | None, demo: bool) -> Any:
    """The policy to serve with; PolicyError (one line, naming the line) for a bad file."""
    from vlm_ros.agent.policy import STRICT_POLICY, PolicyError, load_policy

    if path is None and demo:
        found = Path(__file__).resolve().parents[2] / "config" / DEMO_POLICY
        if not found.is_file():
            raise PolicyError(f"the demo's policy {found} is missing: pass --policy FILE")
        path = str(found)
    return STRICT_POLICY if path is None else load_policy(path)


def run_mcp(args: Any, node: str | None = None, camera_topic: str | None = None,
            robot_status_topic: str | None = None, policy: Any = None) -> int:
    """Serve until the client goes (stdio) or Ctrl-C.  Exit 2 for a bad policy or options.
    ``policy``: already loaded (the demo loads its own before it starts anything)."""
    from vlm_ros.agent.policy import PolicyError

    if policy is None:
        try:
            policy = load_policy_arg(args.policy, demo=False)
        except PolicyError as exc:
            print(f"vlm-ros mcp: {exc}", file=sys.stderr)
            return 2
    from vlm_ros.console.security import is_loopback

    if args.transport == "http" and not is_loopback(args.mcp_host) and not args.mcp_token:
        print("vlm-ros mcp: --mcp-host off this machine needs --mcp-token", file=sys.stderr)
        return 2

    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    from vlm_ros.agent.actions import AgentActions
    from vlm_ros.agent.bridge import AgentBridge
    from vlm_ros.agent.server import McpServer
    from vlm_ros.ros.run import end_signal_handling, shutdown_rclpy

    owns = not rclpy.ok()
    if owns:
        rclpy.init()
    bridge = AgentBridge(node or args.node, camera_topic if node else args.camera_topic,
                         robot_status_topic if node else args.robot_status_topic)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(bridge)
    spinner = threading.Thread(target=executor.spin, name="vlm_ros_mcp", daemon=True)
    spinner.start()
    try:
        base_frame = "base_link"
        if bridge.wait_for_node(15.0):
            base_frame = bridge.node_parameter("base_frame") or base_frame
            held_s = bridge.node_parameter("confirm_timeout_s")
            if isinstance(held_s, float) and held_s < policy.approval_timeout_s:
                print(f"vlm-ros mcp: warning: the node holds a goal {held_s:g} s "
                      f"(confirm_timeout_s) but a person is waited for "
                      f"{policy.approval_timeout_s:g} s (approval timeout_s): approvals after "
                      f"{held_s:g} s come too late; raise confirm_timeout_s", file=sys.stderr)
        else:
            print(f"vlm-ros mcp: {bridge.target} not seen yet; tools answer 'unreachable' "
                  "until it is", file=sys.stderr)
        actions = AgentActions(bridge, policy, base_frame=base_frame)
        server = McpServer(actions)
        print(f"vlm-ros mcp: serving {bridge.target} over {args.transport}; policy "
              f"{policy.source}; approvals: {actions.approve_service}", file=sys.stderr)
        serve(server, args)
    except KeyboardInterrupt:
        pass
    finally:
        if owns:
            end_signal_handling()
        executor.shutdown()
        spinner.join(timeout=5.0)  # out of its wait set before the bridge's entities go
        bridge.destroy_node()
        if owns:
            shutdown_rclpy()
    return 0


def serve(server: Any, args: Any) -> None:
    import anyio

    if args.transport == "stdio":
        from mcp.server.stdio import stdio_server

        async def main() -> None:
            async with stdio_server() as (read, write):
                await server.server.run(read, write,
                                        server.server.create_initialization_options())
        anyio.run(main)
        return
    import uvicorn

    app = server.server.streamable_http_app(host=args.mcp_host)
    if args.mcp_token:
        app = _BearerToken(app, args.mcp_token)
    print(f"vlm-ros mcp: http://{args.mcp_host}:{args.mcp_port}/mcp", file=sys.stderr,
          flush=True)
    uvicorn.Server(uvicorn.Config(app, host=args.mcp_host, port=args.mcp_port,
                                  log_level=os.environ.get("VLM_ROS_MCP_LOG", "warning"))).run()


class _BearerToken:
    """ASGI: every HTTP request must carry ``Authorization: Bearer <token>`` (compared in
    constant time), else 401 - nothing reaches the MCP session."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        import hmac

        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"missing or wrong token"})
                return
        await self.app(scope, receive, send)
