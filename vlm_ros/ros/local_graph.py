"""The vlm_ros node, the nodes that feed it and a command client, in one process.

The demos and the simulator evaluation run the whole graph in-process.  Each piece spins on its
own thread: the grounding node on the executor it picks for itself (``make_executor``), each
feeder (a camera, the simulator) on a single-threaded executor of its own - the simulator must
render on one thread (GL contexts are per thread) - and the client on an executor the caller
drives (``spin_until``), so waiting for an answer never starves the graph.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import rclpy
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from vlm_ros.ros.node import VlmRosNode, make_executor
from vlm_ros.ros.run import end_signal_handling, shutdown_rclpy
from vlm_ros.ros.teleop import CommandClient

SHUTDOWN_TIMEOUT_S = 30.0  # a grasp in progress in the simulator finishes first


class LocalGraph:
    """``parameters`` are the grounding node's; ``make_feeders`` builds the nodes that feed it
    (called once rclpy is initialised)."""

    def __init__(self, parameters: dict[str, Any], make_feeders: Callable[[], list[Node]],
                 client_name: str = "vlm_ros_local",
                 remappings: dict[str, str] | None = None) -> None:
        self._owns_rclpy = not rclpy.ok()
        if self._owns_rclpy:
            rclpy.init()
        remap = [arg for name, to in (remappings or {}).items() for arg in ("-r", f"{name}:={to}")]
        self.node = VlmRosNode(
            parameter_overrides=[Parameter(name, value=value)
                                 for name, value in parameters.items()],
            cli_args=["--ros-args", *remap] if remap else None)
        self.feeders = make_feeders()
        feeders = self.feeders
        self.client = CommandClient("/vlm_ros", name=client_name)
        self.client_executor = SingleThreadedExecutor()
        self.client_executor.add_node(self.client)
        self._executors: list[Executor] = [make_executor(self.node)]
        self._executors[0].add_node(self.node)
        for feeder in feeders:
            executor = SingleThreadedExecutor()
            executor.add_node(feeder)
            self._executors.append(executor)
        self._spinners = [threading.Thread(target=e.spin, daemon=True) for e in self._executors]
        for spinner in self._spinners:
            spinner.start()

    def wait_for_node(self, timeout_s: float) -> bool:
        return self.client.wait_for_node(self.client_executor, timeout_s)

    def send(self, text: str, timeout_s: float) -> dict[str, Any] | None:
        """Publish a command; the first result that answers it, or None on timeout."""
        return self.client.send(text, self.client_executor, timeout_s=timeout_s)

    def spin_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Deliver the client's messages until ``done()`` or the timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done():
                return True
            self.client_executor.spin_once(timeout_sec=0.05)
        return bool(done())

    def close(self) -> None:
        if self._owns_rclpy:
            end_signal_handling()
        for executor in (*self._executors, self.client_executor):
            executor.shutdown()
        for spinner in self._spinners:
            spinner.join(timeout=SHUTDOWN_TIMEOUT_S)
        for node in (self.client, *reversed(self.feeders), self.node):
            node.destroy_node()
        if self._owns_rclpy:
            shutdown_rclpy()
