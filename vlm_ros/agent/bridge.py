"""The MCP server's ROS side: the ``vlm_ros_mcp`` node, a client of a running vlm_ros node.

Everything an agent does reaches the vlm_ros node through this node, and only so:

* commands go as ``<node>/instruct`` action goals with ``hold_for_confirmation``: the node's
  own session grounds them and holds every goal until somebody answers yes on
  ``<node>/command``.  This node answers only what its policy allows, or what a person
  approved (``~/approve``, a std_srvs/SetBool service, or a yes typed on the console); it
  never publishes an agent's text on ``<node>/command``;
* a stop is "stop" on ``<node>/command`` (the node takes it ahead of its queue) and the
  active goal cancelled;
* ``<node>/ask`` / ``<node>/describe`` questions, answered on ``<node>/answer``;
* it keeps the latest camera frame, results, answers, memory and health for the tools.

Callbacks only store; waiting happens in the calling thread (the MCP server's worker threads),
while an executor thread spins this node.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import GetParameters
from rclpy.action import ActionClient
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Empty, String
from std_srvs.srv import SetBool

from vlm_ros.ros.convert import ConversionError, image_to_array
from vlm_ros.ros.diagnostics import find_node_status, status_level
from vlm_ros.ros.teleop import camera_reader_qos, qualified_node_name

NODE_NAME = "vlm_ros_mcp"
RESULTS_KEPT = 20
APPROVE_SERVICE = "the ~/approve service"
REPEAT_WINDOW_S = 30.0
Progress = Callable[[str, str], None]  # (stage, message)


def _reliable(depth: int = 10, latched: bool = False) -> QoSProfile:
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                                  else DurabilityPolicy.VOLATILE))


def _loads(msg: String) -> Any:
    """The node's JSON on a String topic; None for anything else (never raises)."""
    try:
        return json.loads(msg.data)
    except ValueError:
        return None


@dataclass
class Approval:
    """A held goal waiting for a person: what it is and why it needs one."""

    summary: str
    reasons: tuple[str, ...]
    asked_at: float = field(default_factory=time.time)
    decided: threading.Event = field(default_factory=threading.Event)
    approved: bool | None = None
    by: str = ""


class GoalRun:
    """One Instruct goal as this node sees it: feedback stages, the held result, the outcome."""

    def __init__(self) -> None:
        self.accepted = threading.Event()
        self.rejected = False
        self.handle: Any = None
        self.feedback: collections.deque[Any] = collections.deque()
        self.outcome: Any = None  # the action's Result message
        self.done = threading.Event()
        self.changed = threading.Event()  # set on every feedback / the end


class AgentBridge(Node):
    """``node``: the vlm_ros node's name; ``camera_topic``: the camera it reads."""

    def __init__(self, node: str = "/vlm_ros", camera_topic: str | None = None,
                 robot_status_topic: str | None = None, name: str = NODE_NAME) -> None:
        super().__init__(name)
        from vlm_ros.action import Instruct  # the package's built interfaces

        self.target = qualified_node_name(node)
        namespace = self.target.rsplit("/", 1)[0]
        self.camera_topic = camera_topic or f"{namespace}/camera/image"
        # What the robot reports of the goals it executed (the node's robot_status input).
        self.robot_status_topic = robot_status_topic or f"{namespace}/robot_status"
        self.robot_reports: collections.deque[tuple[float, str]] = collections.deque(maxlen=10)
        self._lock = threading.Lock()
        self.results: collections.deque[tuple[float, dict[str, Any]]] = \
            collections.deque(maxlen=RESULTS_KEPT)
        self.answers: collections.deque[tuple[float, dict[str, Any]]] = \
            collections.deque(maxlen=RESULTS_KEPT)
        self.camera: tuple[float, Any] | None = None  # (arrival, numpy RGB)
        self.memory: dict[str, Any] | None = None
        self.health: dict[str, Any] | None = None
        self.approval: Approval | None = None
        # the last approval a person answered here, and when (a repeated call is acknowledged)
        self._answered: tuple[Approval, float] | None = None
        self._instruct = ActionClient(self, Instruct, f"{self.target}/instruct")
        self._goal_type = Instruct.Goal
        self.command_pub = self.create_publisher(String, f"{self.target}/command", _reliable(100))
        self.ask_pub = self.create_publisher(String, f"{self.target}/ask", _reliable())
        self.describe_pub = self.create_publisher(Empty, f"{self.target}/describe", _reliable())
        self.create_subscription(String, f"{self.target}/result", self._on_result, _reliable(100))
        self.create_subscription(String, f"{self.target}/answer", self._on_answer, _reliable())
        self.create_subscription(String, f"{self.target}/memory", self._on_memory,
                                 _reliable(1, latched=True))
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self._camera_timer = self.create_timer(0.5, self._subscribe_camera)
        self.create_subscription(String, self.robot_status_topic, self._on_robot_status,
                                 _reliable())
        self.create_service(SetBool, "~/approve", self._on_approve)
        self._parameters = self.create_client(GetParameters, f"{self.target}/get_parameters")

    def _subscribe_camera(self) -> None:
        qos = camera_reader_qos(self, self.camera_topic)
        if qos is not None:
            self._camera_timer.cancel()
            self.create_subscription(Image, self.camera_topic, self._on_camera, qos)

    # ------------------------------------------------------------------ the node
    def node_seen(self) -> bool:
        return self.command_pub.get_subscription_count() > 0 and \
            self._instruct.server_is_ready()

    def wait_for_node(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.node_seen():
                return True
            time.sleep(0.05)
        return self.node_seen()

    def _matched(self, topics: tuple[str, ...], publishers: tuple[Any, ...],
                 timeout_s: float = 5.0) -> None:
        """Wait (briefly) until the node's ``topics`` are seen and it reads ``publishers``:
        just after start an answer published before discovery would be missed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.count_publishers(t) > 0 for t in topics) and \
                    all(p.get_subscription_count() > 0 for p in publishers):
                return
            time.sleep(0.02)

    def node_parameter(self, name: str, timeout_s: float = 5.0) -> Any:
        """One of the node's parameters (None when it cannot be read)."""
        if not self._parameters.wait_for_service(timeout_sec=timeout_s):
            return None
        future = self._parameters.call_async(GetParameters.Request(names=[name]))
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout_s) or future.result() is None:
            return None
        values = future.result().values
        if not values:
            return None
        value = values[0]
        return {1: value.bool_value, 2: value.integer_value, 3: value.double_value,
                4: value.string_value}.get(value.type)

    # ------------------------------------------------------------------ out
    def answer(self, text: str) -> None:
        """Answer the node's open question ("yes" / "no"): only for the policy and a person."""
        self.command_pub.publish(String(data=text))

    def stop(self) -> None:
        self.command_pub.publish(String(data="stop"))

    def send_goal(self, command: str) -> GoalRun:
        """An Instruct goal held for confirmation; returns at once (watch the GoalRun)."""
        self._matched((f"{self.target}/result",), ())  # its held result must reach us
        run = GoalRun()
        goal = self._goal_type()
        goal.command = command
        goal.use_latest_frame = True
        goal.hold_for_confirmation = True

        def on_feedback(msg: Any) -> None:
            run.feedback.append(msg.feedback)
            run.changed.set()

        def on_result(future: Any) -> None:
            response = future.result()
            run.outcome = None if response is None else response.result
            run.done.set()
            run.changed.set()

        def on_goal(future: Any) -> None:
            handle = future.result()
            run.handle = handle
            if handle is None or not handle.accepted:
                run.rejected = True
                run.done.set()
            else:
                handle.get_result_async().add_done_callback(on_result)
            run.accepted.set()
            run.changed.set()

        self._instruct.send_goal_async(goal, feedback_callback=on_feedback) \
            .add_done_callback(on_goal)
        return run

    def cancel(self, run: GoalRun) -> None:
        if run.handle is not None and not run.done.is_set():
            run.handle.cancel_goal_async()

    def ask(self, question: str | None, timeout_s: float) -> dict[str, Any] | None:
        """~/ask (a question) or ~/describe (None): the node's answer, or None on timeout."""
        self._matched((f"{self.target}/answer",),
                      (self.describe_pub if question is None else self.ask_pub,))
        kind = "describe" if question is None else "ask"
        sent = time.time()
        if question is None:
            self.describe_pub.publish(Empty())
        else:
            self.ask_pub.publish(String(data=question))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:  # this question's answer, not another asker's
                fresh = [a for t, a in self.answers if t >= sent and a.get("kind") == kind
                         and (question is None or a.get("question") == question)]
            if fresh:
                return fresh[-1]
            time.sleep(0.05)
        return None

    # ------------------------------------------------------------------ a person's yes / no
    def ask_person(self, summary: str, reasons: tuple[str, ...]) -> Approval:
        with self._lock:
            self.approval, self._answered = Approval(summary, reasons), None
            return self.approval

    def decline_waiting(self, by: str) -> None:
        """Whatever waits for a person is declined (a stop)."""
        with self._lock:
            approval = self.approval
        if approval is not None and not approval.decided.is_set():
            approval.approved, approval.by = False, by
            approval.decided.set()

    def settle(self, approval: Approval) -> None:
        with self._lock:
            if self.approval is approval:
                self.approval = None

    def _on_approve(self, request: Any, response: Any) -> Any:
        with self._lock:
            answered = self._answered
            approval = self.approval or (answered[0] if answered and
                                         time.monotonic() - answered[1] < REPEAT_WINDOW_S
                                         else None)
        if approval is not None and approval.decided.is_set():
            # A person whose reply was lost asks again (DDS can drop a service reply while it
            # still discovers the caller): the same answer is acknowledged, nothing else is.
            repeated = approval.by == APPROVE_SERVICE and approval.approved == bool(request.data)
            response.success = repeated
            response.message = (f"{'approved' if request.data else 'denied'} (already): "
                                f"{approval.summary}" if repeated else
                                "nothing waits for approval")
            return response
        if approval is None:
            response.success, response.message = False, "nothing waits for approval"
            return response
        approval.approved, approval.by = bool(request.data), APPROVE_SERVICE
        approval.decided.set()
        with self._lock:
            self._answered = (approval, time.monotonic())
        verdict = "approved" if request.data else "denied"
        self.get_logger().info(f"{verdict} by a person: {approval.summary}")
        response.success, response.message = True, f"{verdict}: {approval.summary}"
        return response

    # ------------------------------------------------------------------ in
    def _on_result(self, msg: String) -> None:
        result = _loads(msg)
        if result is not None:
            with self._lock:
                self.results.append((time.time(), result))

    def _on_answer(self, msg: String) -> None:
        answer = _loads(msg)
        if answer is not None:
            with self._lock:
                self.answers.append((time.time(), answer))

    def _on_robot_status(self, msg: String) -> None:
        with self._lock:
            self.robot_reports.append((time.time(), msg.data[:500]))

    def _on_memory(self, msg: String) -> None:
        memory = _loads(msg)
        if memory is not None:
            with self._lock:
                self.memory = memory

    def _on_camera(self, msg: Image) -> None:
        try:
            array, _ = image_to_array(msg)
        except (ConversionError, ValueError):
            return
        if array.ndim == 3:
            with self._lock:
                self.camera = (time.time(), array)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        status = find_node_status(msg)
        if status is None:
            return
        health = {"level": ["ok", "warn", "error", "stale"][min(status_level(status), 3)],
                  "message": status.message, "backend": status.hardware_id,
                  "values": {kv.key: kv.value for kv in status.values}, "at": time.time()}
        with self._lock:
            self.health = health

    def results_since(self, since: float) -> list[dict[str, Any]]:
        with self._lock:
            return [r for t, r in self.results if t >= since]

    def snapshot_state(self) -> dict[str, Any]:
        with self._lock:
            return {"camera": self.camera, "memory": self.memory, "health": self.health,
                    "results": [r for _, r in self.results], "approval": self.approval,
                    "robot_reports": list(self.robot_reports)}
