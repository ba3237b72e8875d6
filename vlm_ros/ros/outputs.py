"""Everything the node publishes, and the one gated path every goal leaves through.

:meth:`Outputs.send_goals` is the only code that touches the goal publishers, and it asks the
safety gate first (tests/test_safety.py proves both statically).  A refusal empties the
result's goals and says why (status "rejected").
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Empty, Header, String
from visualization_msgs.msg import MarkerArray

from vlm_ros.core import safety
from vlm_ros.core.annotate import annotate, overlay_heatmap
from vlm_ros.core.geometry import FrameResolver, Transform, unresolved_reason
from vlm_ros.core.goals import goals_in_frame
from vlm_ros.core.memory import ObjectMemory
from vlm_ros.core.safety import SafetyConfig
from vlm_ros.core.types import Frame, GroundingResult
from vlm_ros.ros import messages
from vlm_ros.ros.compat import PublisherEventCallbacks
from vlm_ros.ros.convert import array_to_image, pose_to_msg
from vlm_ros.ros.diagnostics import StageTimings
from vlm_ros.ros.params import NodeSettings

COMMAND_HISTORY = 100  # DDS history depth of ~/command and ~/result

_SAME_FRAME = Transform.identity()  # goal_frame is base_frame: goals leave as they were made

# A map of "how much each pixel answers the phrase" for the chosen target, or None.
RelevanceMap = Callable[[str], np.ndarray | None]


class Outputs:
    def __init__(self, node: Node, settings: NodeSettings, safety_config: SafetyConfig,
                 timings: StageTimings, frames: FrameResolver | None = None) -> None:
        self._node = node
        self._frames = frames  # goal_frame <- base_frame, when goal_frame is another frame
        self._settings = settings
        self._safety = safety_config
        self._timings = timings
        self._log = node.get_logger()
        self._publishers: list[Any] = []
        # Goals go out only while the (lifecycle) node is active: the node sets this on
        # activate and clears it on deactivate, before it cancels what runs.
        self.active = True
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        # A deep history on the result path: a burst of answers must queue, not be overwritten.
        results_qos = QoSProfile(depth=COMMAND_HISTORY, reliability=ReliabilityPolicy.RELIABLE)
        self.result_pub = self._publisher(String, "~/result", results_qos)
        self.goal_pubs = {
            "navigate": self._publisher(PoseStamped, "goal_pose", reliable),
            "grasp": self._publisher(PoseStamped, "~/grasp_pose", reliable),
            "pregrasp": self._publisher(PoseStamped, "~/pregrasp_pose", reliable),
            "place": self._publisher(PoseStamped, "~/place_pose", reliable),
            "look": self._publisher(PoseStamped, "~/target_pose", reliable),
            # An active search's next view: a pan-tilt unit (or the base) turns to look at it
            # and says so on robot_status.
            "view": self._publisher(PoseStamped, "~/look_at", reliable),
        }
        # The object memory: the whole of it, as JSON, kept for late joiners (`vlm-ros memory`,
        # the console), and as markers for RViz.
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.memory_pub = self._publisher(String, "~/memory", latched)
        self.memory_marker_pub = self._publisher(MarkerArray, "~/memory_markers", latched)
        self.stop_pub = self._publisher(Empty, "~/stop", reliable)
        self.answer_pub = self._publisher(String, "~/answer", reliable)
        self.relevance_pub = self._publisher(Image, "~/relevance_image", reliable)
        self.marker_pub = self._publisher(MarkerArray, "~/markers", reliable)
        # A pick's grasp candidates, best first (the best one is ~/grasp_pose).
        self.grasp_candidates_pub = self._publisher(PoseArray, "~/grasp_candidates", reliable)
        # Reliable: one debug image per result, not a stream, so losing it loses the answer's
        # picture (best-effort viewers can still subscribe to a reliable publisher).
        self.debug_pub = self._publisher(
            Image, "~/debug_image", QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))
        self.diagnostics_pub = self._publisher(DiagnosticArray, "/diagnostics", 10)
        self.vision_msgs = messages.optional_module("vision_msgs.msg")
        self.interfaces = messages.optional_module("vlm_ros.msg")
        self.detections_pub = None
        if self.vision_msgs is not None:
            self.detections_pub = self._publisher(
                self.vision_msgs.Detection2DArray, "~/detections", reliable)
        self.interface_pub = None
        if self.interfaces is not None:
            self.interface_pub = self._publisher(
                self.interfaces.GroundingResult, "~/grounding", reliable)

    def _publisher(self, msg_type: Any, topic: str, qos: QoSProfile | int) -> Any:
        """A publisher without rclpy's default QoS-event handlers.

        The Python executor walks every event handler on every wake-up; with ~14 outputs they
        were most of the node's executor time under a 30 Hz RGB-D stream (py-spy, soak run).
        An incompatible-QoS mismatch is still reported: by our subscriptions for the inputs and
        by the consumer's subscription for the outputs.
        """
        publisher = self._node.create_publisher(
            msg_type, topic, qos,
            event_callbacks=PublisherEventCallbacks(use_default_callbacks=False))
        self._publishers.append(publisher)
        return publisher

    def reconfigure(self, settings: NodeSettings, safety_config: SafetyConfig) -> None:
        """New settings (the worker calls this between two commands)."""
        self._settings, self._safety = settings, safety_config

    def close(self) -> None:
        """Destroy every publisher (lifecycle cleanup); nothing may publish afterwards."""
        self.active = False
        for publisher in self._publishers:
            self._node.destroy_publisher(publisher)
        self._publishers.clear()

    # ------------------------------------------------------------------------- results
    def publish_result(self, result: GroundingResult, frame: Frame | None,
                       relevance: RelevanceMap | None = None) -> tuple[Header, list[PoseStamped]]:
        """~/result and everything that illustrates it; the goals through the gate."""
        started = time.perf_counter()
        header = _header(result.frame_id, frame.stamp if frame is not None else None)
        goal_msgs = self.send_goals(result, header)
        self.result_pub.publish(String(data=messages.result_to_json(result)))
        settings = self._settings
        if settings.publish_markers and result.status == "ok":
            self.marker_pub.publish(messages.result_to_markers(result, header,
                                                               settings.base_frame))
        if result.grasps and goal_msgs:
            self.grasp_candidates_pub.publish(messages.grasps_to_pose_array(
                result, header, settings.base_frame))
        if self.detections_pub is not None:
            self.detections_pub.publish(messages.result_to_detection2d_array(
                self.vision_msgs, result, header))
        if self.interface_pub is not None:
            self.interface_pub.publish(messages.result_to_interface(
                self.interfaces, result, header, goal_msgs))
        if settings.publish_debug_image and frame is not None:
            self.debug_pub.publish(array_to_image(annotate(frame.rgb, result), "rgb8", header))
        if relevance is not None and frame is not None and result.targets:
            self._publish_relevance(result, frame, header, relevance)
        said = result.instruction.text if result.instruction else ""
        line = f"[{result.status}] {said[:80]!r}: {result.message}"
        # rclpy refuses one call site logging at two severities, hence two calls.
        if result.status == "ok":
            self._log.info(line)
        elif result.status == "rejected" and result.message.startswith("busy"):
            # A flood produces one "busy" per extra command: log the overload, not each one
            # (every command still gets its own result).
            self._log.warning(line, throttle_duration_sec=1.0)
        else:
            self._log.warning(line)
        self._timings.record("publish", started)
        return header, goal_msgs

    def publish_tracked(self, result: GroundingResult, frame: Frame, send_goals: bool) -> bool:
        """A tracked target's update: ~/target_pose and markers, goals only if ``send_goals``.
        No ~/result per frame (results answer commands).  True when goals went out."""
        started = time.perf_counter()
        header = _header(result.frame_id, frame.stamp)
        sent = bool(self.send_goals(result, header, goals_too=send_goals)) and send_goals
        if self._settings.publish_markers and result.status == "ok":
            self.marker_pub.publish(messages.result_to_markers(result, header,
                                                               self._settings.base_frame))
        self._timings.record("publish", started)
        return sent

    def send_goals(self, result: GroundingResult, header: Header,
                   goals_too: bool = True) -> list[PoseStamped]:
        """The only code that touches the goal publishers: every goal passes the safety gate.

        ``goals_too=False`` (a tracked target that has not moved) passes the same gate but
        sends only ~/target_pose.
        """
        if not result.goals:
            return []
        if not self.active:
            self._log.warning("inactive: no goal published")
            result.status, result.goals = "rejected", []
            result.message = "inactive: the node is not active (lifecycle); no goal published"
            return []
        now = self._node.get_clock().now().nanoseconds * 1e-9
        decision = safety.check(result, self._safety, now=now)
        if not decision.allowed:
            self._log.warning(f"safety gate refused goals: {decision.reason}")
            safety.apply(result, decision)
            return []
        # Checked in base_frame above; only then re-expressed in goal_frame (or refused).
        goal_from_base = self._goal_from_base(result)
        if goal_from_base is None:
            return []
        if goal_from_base is not _SAME_FRAME:
            result.goals = goals_in_frame(result.goals, self._settings.goal_frame_name(),
                                          goal_from_base)
        goal_msgs = [pose_to_msg(goal, header.stamp) for goal in result.goals]
        for goal, msg in zip(result.goals, goal_msgs):
            publisher = self.goal_pubs.get(goal.kind)
            if publisher is not None and goals_too:
                publisher.publish(msg)
        target = result.targets[0] if result.targets else None
        if (target is not None and target.point_base is not None
                and "look" not in {g.kind for g in result.goals}):
            self.goal_pubs["look"].publish(_target_pose(goal_msgs[0],
                                                        goal_from_base.apply(target.point_base)))
        return goal_msgs

    def _goal_from_base(self, result: GroundingResult) -> Transform | None:
        """goal_frame <- base_frame at the image stamp (identity when they are one frame); None
        after emptying the result's goals and saying why, when the transform is unknown."""
        goal_frame, base_frame = self._settings.goal_frame_name(), self._settings.base_frame
        if goal_frame.lstrip("/") == base_frame.lstrip("/"):
            return _SAME_FRAME
        transform = (self._frames.lookup(goal_frame, base_frame, result.stamp)
                     if self._frames is not None else None)
        if transform is None:
            why = (unresolved_reason(self._frames, goal_frame, base_frame)
                   if self._frames is not None else "no frame resolver")
            result.status = "error"
            result.message = (f"no goals: goal_frame {goal_frame} is not {base_frame} and "
                              f"the transform is unknown ({why})")
            result.goals = []
            self._log.warning(result.message)
        return transform

    def _publish_relevance(self, result: GroundingResult, frame: Frame, header: Header,
                           relevance: RelevanceMap) -> None:
        """The chosen target's relevance map over the image, for explainability."""
        query = result.instruction.target if result.instruction else None
        phrase = (query.text if query else "") or result.targets[0].label
        heat = relevance(phrase)
        if heat is not None:
            self.relevance_pub.publish(array_to_image(overlay_heatmap(frame.rgb, heat), "rgb8",
                                                      header))

    # ------------------------------------------------------------------- other outputs
    def publish_memory(self, memory: ObjectMemory, now: float) -> None:
        """~/memory (JSON: frame, objects with their age) and ~/memory_markers."""
        payload = {"frame_id": memory.frame_id, "stamp": now, "objects": memory.snapshot(now)}
        self.memory_pub.publish(String(data=json.dumps(payload, ensure_ascii=False)))
        if self._settings.publish_markers:
            stamp = _header(memory.frame_id, now).stamp
            self.memory_marker_pub.publish(messages.memory_to_markers(memory, now, stamp))

    def publish_stop(self) -> None:
        try:
            self.stop_pub.publish(Empty())
        except Exception:  # noqa: BLE001
            if self._node.context.ok():
                raise
            # Ctrl-C shut the context down first: the node is ending, no one can hear a stop.

    def publish_answer(self, kind: str, question: str, backend: str, status: str,
                       message: str = "", answer: str = "",
                       latency_ms: float | None = None) -> None:
        payload = {"status": status, "kind": kind, "question": question or None,
                   "answer": answer, "message": message, "backend": backend,
                   "latency_ms": None if latency_ms is None else round(latency_ms, 1)}
        self.answer_pub.publish(String(data=json.dumps(payload, ensure_ascii=False)))


def _header(frame_id: str, stamp: float | None) -> Header:
    header = Header()
    header.frame_id = frame_id
    if stamp is not None:
        sec = int(stamp)
        header.stamp.sec, header.stamp.nanosec = sec, int((stamp - sec) * 1e9)
    return header


def _target_pose(goal_msg: PoseStamped, point_base: tuple[float, float, float]) -> PoseStamped:
    """~/target_pose: the target's own position (grasp/navigate goals are offset from it)."""
    msg = PoseStamped()
    msg.header = goal_msg.header
    x, y, z = point_base
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = x, y, z
    msg.pose.orientation.w = 1.0
    return msg
