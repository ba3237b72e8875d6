"""Text teleoperation: publish one command to a running vlm_ros node and wait for its result."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from vlm_ros.ros.run import end_signal_handling, shutdown_rclpy


def _wait(executor: Any) -> None:
    """Spin ``executor`` a little, or just wait when another thread spins this node."""
    if executor is None:
        time.sleep(0.02)
    else:
        executor.spin_once(timeout_sec=0.05)


def _answers(result: dict[str, Any], text: str) -> bool:
    """Does this ~/result answer ``text``?  (Clarification answers come back merged.)"""
    said = ((result.get("instruction") or {}).get("text") or "").strip()
    text = text.strip()
    return said == text or said.endswith(f"-> {text}") or said == text[:80]


_NAME_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def qualified_node_name(node: str) -> str:
    """``vlm_ros``, ``/vlm_ros``, ``robot1/vlm_ros`` or ``/robot1/vlm_ros/`` -> the fully
    qualified ``/vlm_ros`` or ``/robot1/vlm_ros``: a node name is always taken from the root
    namespace, however it is written.  ValueError (one line) for a name ROS would refuse."""
    tokens = node.strip().strip("/").split("/")
    if not all(_NAME_TOKEN.fullmatch(token) for token in tokens):
        raise ValueError(f"invalid node name {node!r}: expected e.g. vlm_ros or /robot1/vlm_ros "
                         "(letters, digits and _, not starting with a digit)")
    return "/" + "/".join(tokens)


def camera_reader_qos(node: Node, topic: str) -> QoSProfile | None:
    """The QoS to read a camera stream with, once its publishers are seen (None before).

    Depth 1: never a queue of old frames.  Reliable where the driver is: large best-effort
    images lose fragments under load (a 600x400 stream at 20 Hz arrived at ~1 Hz best effort
    while the machine was busy); best effort where it is not (a reliable reader would not
    match a best-effort writer and get nothing)."""
    publishers = node.get_publishers_info_by_topic(topic)
    if not publishers:
        return None
    reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
    return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE if reliable
                      else ReliabilityPolicy.BEST_EFFORT)


class CommandClient(Node):
    """Publishes on <node>/command and collects <node>/result; usable from tests and tools.

    ``node`` is the vlm_ros node's name with or without the leading slash, namespaced or not
    (see :func:`qualified_node_name`)."""

    def __init__(self, node: str = "/vlm_ros", name: str = "vlm_ros_teleop") -> None:
        node = qualified_node_name(node)
        super().__init__(name)
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)  # bursts
        self.publisher = self.create_publisher(String, f"{node}/command", reliable)
        self.results: list[dict[str, Any]] = []
        self.create_subscription(String, f"{node}/result",
                                 lambda msg: self.results.append(json.loads(msg.data)), reliable)

    def wait_for_node(self, executor: Any = None, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (self.publisher.get_subscription_count() > 0
                    and self.count_publishers(self.results_topic) > 0):
                return True
            _wait(executor)
        return False

    @property
    def results_topic(self) -> str:
        return self.publisher.topic_name.rsplit("/", 1)[0] + "/result"

    def send(self, text: str, executor: Any = None, timeout_s: float = 10.0) -> dict[str, Any] | None:
        """Publish ``text``; return the first result that answers it, or None on timeout."""
        start = len(self.results)
        self.publisher.publish(String(data=text))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            _wait(executor)
            for result in self.results[start:]:
                if _answers(result, text):
                    return result
        return None


    def rest_of_plan(self, text: str, first: dict[str, Any], executor: Any = None,
                     timeout_s: float = 120.0) -> list[dict[str, Any]]:
        """The results after ``first`` of a several-step command, until its last step's
        answer (the plan done, failed or cancelled) or the timeout."""
        if len(first.get("steps") or []) < 2 or first["status"] != "ok":
            return []
        start = self.results.index(first) + 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            later = [r for r in self.results[start:] if _answers(r, text)]
            if later and (later[-1]["status"] != "ok"
                          or later[-1]["message"].startswith("done:")
                          or later[-1]["step"] == len(later[-1]["steps"])
                          and later[-1]["steps"][-1]["action"] in ("stop", "follow")):
                return later
            _wait(executor)
        return [r for r in self.results[start:] if _answers(r, text)]


    def rest_of_search(self, text: str, first: dict[str, Any], executor: Any = None,
                       timeout_s: float = 120.0) -> list[dict[str, Any]]:
        """The results after ``first`` of a command that started an active search (status
        searching), until the search's answer (found, not found, stopped) or the timeout."""
        if first["status"] != "searching":
            return []
        start = self.results.index(first) + 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            later = [r for r in self.results[start:] if _answers(r, text)]
            if later and later[-1]["status"] != "searching":
                return later
            _wait(executor)
        return [r for r in self.results[start:] if _answers(r, text)]


def memory(node: str = "/vlm_ros", action: str = "show",
           wait_s: float = 10.0) -> dict[str, Any] | None:
    """The node's object memory (``show``: its ~/memory, as JSON), or the answer of its
    ~/save_memory / ~/clear_memory service (``save`` / ``clear``: {"success", "message"});
    None when the node did not answer within ``wait_s``."""
    from rclpy.qos import DurabilityPolicy
    from std_srvs.srv import Trigger

    node = qualified_node_name(node)
    rclpy.init()
    client = Node("vlm_ros_memory_cli")
    executor = SingleThreadedExecutor()
    executor.add_node(client)
    try:
        deadline = time.monotonic() + wait_s
        if action in ("save", "clear"):
            service = client.create_client(Trigger, f"{node}/{action}_memory")
            if not service.wait_for_service(timeout_sec=wait_s):
                return None
            future = service.call_async(Trigger.Request())
            executor.spin_until_future_complete(future, max(0.1, deadline - time.monotonic()))
            if not future.done() or future.result() is None:
                return None
            return {"success": future.result().success, "message": future.result().message}
        got: list[dict[str, Any]] = []
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        client.create_subscription(String, f"{node}/memory",
                                   lambda msg: got.append(json.loads(msg.data)), latched)
        while not got and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        return got[-1] if got else None
    finally:
        end_signal_handling()
        executor.shutdown()
        client.destroy_node()
        shutdown_rclpy()


def print_answer(result: dict[str, Any], indent: str = "    ") -> None:
    """One ~/result as the demos print it: status, message, question, goals."""
    print(f"{indent}vlm_ros: {result['status']} - {result['message']}")
    if result.get("clarification"):
        print(f"{indent}question: {result['clarification']}")
    for goal in result["goals"]:
        print(f"{indent}goal {goal['kind']:9s} {goal['pose']['position']} in {goal['frame_id']}")


def say(text: str, node: str = "/vlm_ros", wait_s: float = 10.0) -> dict[str, Any] | None:
    """Publish ``text`` to ``node`` (with or without its leading slash) and return the result
    that answers it, or None when none came within ``wait_s`` seconds."""
    node = qualified_node_name(node)
    rclpy.init()
    client = CommandClient(node)
    executor = SingleThreadedExecutor()
    executor.add_node(client)
    try:
        deadline = time.monotonic() + wait_s
        if not client.wait_for_node(executor, wait_s):
            return None
        return client.send(text, executor, max(0.1, deadline - time.monotonic()))
    finally:
        end_signal_handling()
        executor.shutdown()
        client.destroy_node()
        shutdown_rclpy()
