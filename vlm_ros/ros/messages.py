"""GroundingResult -> ROS messages (markers, optional vision_msgs and vlm_ros interfaces).

Optional message packages (vision_msgs, the generated vlm_ros.msg) are imported when present;
``optional_interfaces()`` tells the node which of them it can publish.
"""

from __future__ import annotations

import importlib
import json
import math
from types import ModuleType
from typing import Any

from geometry_msgs.msg import Point, PoseArray
from geometry_msgs.msg import Pose as PoseMsg
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from vlm_ros.core.grasp import GraspCandidate
from vlm_ros.core.mask_rle import mask_rle
from vlm_ros.core.memory import ObjectMemory
from vlm_ros.core.types import Candidate, GroundingResult


def optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def parse_robot_status(text: str) -> tuple[bool, str] | None:
    """(succeeded, detail) from a robot status on ``robot_status``; None when it is not one.

    Accepted: JSON with a boolean ``success`` (the simulator's ActionOutcome), or with ``status``
    "succeeded" / "failed" (also "done" / "aborted" / "canceled"); or that word alone.  ``detail``
    / ``message`` is quoted back in results.
    """
    done, failed = {"succeeded", "success", "done", "ok"}, {"failed", "failure", "aborted",
                                                           "canceled", "cancelled", "error"}
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        data = text.strip().lower()
    if isinstance(data, str):
        word = data.strip().lower()
        return (True, "") if word in done else (False, "") if word in failed else None
    if not isinstance(data, dict):
        return None
    detail = str(data.get("detail") or data.get("message") or "")
    if isinstance(data.get("success"), bool):
        return data["success"], detail
    status = str(data.get("status", "")).lower()
    if status in done or status in failed:
        return status in done, detail
    return None


def result_to_json(result: GroundingResult) -> str:
    return json.dumps(result.to_dict(), ensure_ascii=False)


def _candidate_point(candidate: Candidate, base_frame: str,
                     camera_frame: str) -> tuple[str, tuple[float, float, float]] | None:
    if candidate.point_base is not None:
        return base_frame, candidate.point_base
    if candidate.point_camera is not None and camera_frame:
        return camera_frame, candidate.point_camera
    return None


def result_to_markers(result: GroundingResult, header: Header, base_frame: str,
                      namespace: str = "vlm_ros") -> MarkerArray:
    """A sphere + label per chosen target/destination; DELETEALL first so stale ones vanish."""
    markers = MarkerArray()
    clear = Marker()
    clear.header = header
    clear.action = Marker.DELETEALL
    markers.markers.append(clear)
    chosen = [(c, (0.1, 0.9, 0.1)) for c in result.targets]
    if result.destination is not None:
        chosen.append((result.destination, (0.1, 0.5, 1.0)))
    for index, (candidate, rgb) in enumerate(chosen):
        located = _candidate_point(candidate, base_frame, result.frame_id)
        if located is None:
            continue
        frame_id, (x, y, z) = located
        for kind, suffix in ((Marker.SPHERE, 0), (Marker.TEXT_VIEW_FACING, 1)):
            marker = Marker()
            marker.header.stamp = header.stamp
            marker.header.frame_id = frame_id
            marker.ns = namespace
            marker.id = 2 * index + suffix
            marker.type = kind
            marker.action = Marker.ADD
            marker.pose.position = Point(x=float(x), y=float(y),
                                         z=float(z) + (0.12 if suffix else 0.0))
            marker.pose.orientation.w = 1.0
            size = 0.08 if kind == Marker.SPHERE else 0.06
            marker.scale.x = marker.scale.y = marker.scale.z = size
            marker.color = ColorRGBA(r=rgb[0], g=rgb[1], b=rgb[2], a=0.9)
            if kind == Marker.TEXT_VIEW_FACING:
                marker.text = f"{candidate.label} {candidate.score:.2f}"
            markers.markers.append(marker)
    markers.markers.extend(grasp_markers(result, header, base_frame, namespace + "_grasps"))
    return markers


def _base_marker(header: Header, base_frame: str, ns: str, marker_id: int, kind: int
                 ) -> Marker:
    marker = Marker()
    marker.header.stamp = header.stamp
    marker.header.frame_id = base_frame
    marker.ns, marker.id, marker.type, marker.action = ns, marker_id, kind, Marker.ADD
    marker.pose.orientation.w = 1.0
    return marker


def _point(xyz: tuple[float, ...] | list[float]) -> Point:
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def grasp_markers(result: GroundingResult, header: Header, base_frame: str,
                  namespace: str) -> list[Marker]:
    """An arrow per grasp candidate (along its approach, ending at the grasp point; the best
    green, the others grey, fading with rank), the best one's width as a bar across its
    fingers' closing direction, and the measured points of the target / destination (their
    masks in 3D)."""
    found: list[Marker] = []
    measured = [*result.targets, *([result.destination] if result.destination else [])]
    for index, candidate in enumerate(c for c in measured if c.points_base is not None):
        cloud = _base_marker(header, base_frame, namespace + "_points", index, Marker.POINTS)
        cloud.scale.x = cloud.scale.y = 0.004
        cloud.color = ColorRGBA(r=0.1, g=0.9, b=0.1, a=0.8) if candidate is not \
            result.destination else ColorRGBA(r=0.2, g=0.5, b=1.0, a=0.8)
        cloud.points = [_point(p) for p in candidate.points_base]
        found.append(cloud)
    for rank, grasp in enumerate(result.grasps):
        start = [p - 0.1 * a for p, a in zip(grasp.position, grasp.approach)]
        arrow = _base_marker(header, base_frame, namespace, rank, Marker.ARROW)
        arrow.points = [_point(start), _point(grasp.position)]
        arrow.scale.x, arrow.scale.y, arrow.scale.z = 0.008, 0.016, 0.02
        best = rank == 0
        arrow.color = ColorRGBA(r=0.1 if best else 0.6, g=0.9 if best else 0.6,
                                b=0.1 if best else 0.6, a=max(0.3, 0.9 - 0.15 * rank))
        arrow.text = f"{grasp.strategy} {grasp.score:.2f}"
        found.append(arrow)
    if result.grasps:
        best = result.grasps[0]
        bar = _base_marker(header, base_frame, namespace, len(result.grasps), Marker.CUBE)
        bar.pose = _pose(best.position, best.orientation)
        # The gripper's y axis is the closing direction: the bar spans the grasp's width.
        bar.scale.x, bar.scale.y, bar.scale.z = 0.01, float(best.width_m), 0.01
        bar.color = ColorRGBA(r=0.1, g=0.9, b=0.1, a=0.6)
        found.append(bar)
    return found


def _pose(position: tuple[float, ...], orientation: tuple[float, ...]) -> PoseMsg:
    pose = PoseMsg()
    pose.position = _point(position)
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (
        float(v) for v in orientation)
    return pose


def grasps_to_pose_array(result: GroundingResult, header: Header, base_frame: str) -> PoseArray:
    """Every grasp candidate's pose, best first (~/grasp_candidates, base frame)."""
    poses = PoseArray()
    poses.header.stamp = header.stamp
    poses.header.frame_id = base_frame
    poses.poses = [_pose(g.position, g.orientation) for g in result.grasps]
    return poses


def memory_to_markers(memory: ObjectMemory, now: float, stamp: Any,
                      namespace: str = "vlm_ros_memory") -> MarkerArray:
    """A sphere (its size the position's spread) and a label with its age per remembered
    object, in the memory's frame; DELETEALL first so forgotten ones vanish."""
    markers = MarkerArray()
    clear = Marker()
    clear.header.frame_id = memory.frame_id
    clear.header.stamp = stamp
    clear.ns = namespace
    clear.action = Marker.DELETEALL
    markers.markers.append(clear)
    for obj in memory.objects.values():
        x, y, z = obj.position
        fresh = max(0.2, 1.0 - obj.age(now) / max(1.0, memory.config.max_age_s))
        for kind, suffix in ((Marker.SPHERE, 0), (Marker.TEXT_VIEW_FACING, 1)):
            marker = Marker()
            marker.header.frame_id = memory.frame_id
            marker.header.stamp = stamp
            marker.ns = namespace
            marker.id = 2 * obj.id + suffix
            marker.type = kind
            marker.action = Marker.ADD
            marker.pose.position = Point(x=float(x), y=float(y),
                                         z=float(z) + (0.1 if suffix else 0.0))
            marker.pose.orientation.w = 1.0
            size = max(0.05, 2.0 * obj.sigma_m) if kind == Marker.SPHERE else 0.05
            marker.scale.x = marker.scale.y = marker.scale.z = size
            marker.color = ColorRGBA(r=0.9, g=0.6, b=0.1, a=float(fresh))
            if kind == Marker.TEXT_VIEW_FACING:
                what = f"{obj.color} {obj.label}" if obj.color else obj.label
                marker.text = f"{what} ({obj.age(now):.0f} s ago)"
            markers.markers.append(marker)
    return markers


def result_to_detection2d_array(vision_msgs: ModuleType, result: GroundingResult,
                                header: Header) -> Any:
    """vision_msgs/Detection2DArray of every candidate (targets first)."""
    array = vision_msgs.msg.Detection2DArray()
    array.header = header
    seen: set[int] = set()
    for candidate in [*result.targets, *result.candidates]:
        if candidate.id in seen:
            continue
        seen.add(candidate.id)
        detection = vision_msgs.msg.Detection2D()
        detection.header = header
        detection.id = str(candidate.id)
        x1, y1, x2, y2 = candidate.bbox
        detection.bbox.center.position.x = 0.5 * (x1 + x2)
        detection.bbox.center.position.y = 0.5 * (y1 + y2)
        detection.bbox.size_x = float(x2 - x1)
        detection.bbox.size_y = float(y2 - y1)
        hypothesis = vision_msgs.msg.ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = candidate.label
        hypothesis.hypothesis.score = float(candidate.score)
        if candidate.point_camera is not None:
            px, py, pz = candidate.point_camera
            hypothesis.pose.pose.position = Point(x=px, y=py, z=pz)
            hypothesis.pose.pose.orientation.w = 1.0
        detection.results.append(hypothesis)
        array.detections.append(detection)
    return array


def _fill_target(msg_cls: Any, candidate: Candidate) -> Any:
    target = msg_cls()
    target.id = int(candidate.id)
    target.label = candidate.label
    target.score = float(candidate.score)
    target.bbox = [float(v) for v in candidate.bbox]
    target.color = candidate.color or ""
    target.color_fraction = (float(candidate.color_fraction)
                             if candidate.color_fraction is not None else math.nan)
    target.match = float(candidate.match)
    target.reasons = list(candidate.reasons)
    target.depth_m = float(candidate.depth_m) if candidate.depth_m is not None else math.nan
    target.width_m = float(candidate.width_m) if candidate.width_m is not None else math.nan
    target.has_point = candidate.point_camera is not None
    if candidate.point_camera is not None:
        target.point_camera = Point(x=candidate.point_camera[0], y=candidate.point_camera[1],
                                    z=candidate.point_camera[2])
    target.has_point_base = candidate.point_base is not None
    if candidate.point_base is not None:
        target.point_base = Point(x=candidate.point_base[0], y=candidate.point_base[1],
                                  z=candidate.point_base[2])
    target.grasp_width_m = (float(candidate.grasp_width_m)
                            if candidate.grasp_width_m is not None else math.nan)
    target.has_mask = candidate.mask is not None and candidate.mask.ndim == 2
    if target.has_mask:
        rle = mask_rle(candidate.mask)
        target.mask_box = [int(v) for v in rle["box"]]
        target.mask_counts = [int(v) for v in rle["counts"]]
    return target


def _fill_grasp(msg_cls: Any, grasp: GraspCandidate) -> Any:
    msg = msg_cls()
    msg.strategy = grasp.strategy
    msg.score = float(grasp.score)
    msg.width_m = float(grasp.width_m)
    msg.note = grasp.note
    msg.pose = _pose(grasp.position, grasp.orientation)
    msg.approach.x, msg.approach.y, msg.approach.z = (float(v) for v in grasp.approach)
    msg.pregrasp = _point(grasp.pregrasp_position)
    return msg


def result_to_interface(interfaces: ModuleType, result: GroundingResult, header: Header,
                        goal_msgs: list[Any]) -> Any:
    """vlm_ros/msg/GroundingResult (only when the generated bindings are importable)."""
    msg = interfaces.GroundingResult()
    msg.header = header
    msg.status = result.status
    msg.message = result.message
    instruction = result.instruction
    msg.command = instruction.text if instruction else ""
    msg.action = (instruction.action or "") if instruction else ""
    msg.language = instruction.language if instruction else ""
    msg.targets = [_fill_target(interfaces.GroundedTarget, c) for c in result.targets]
    msg.has_destination = result.destination is not None
    if result.destination is not None:
        msg.destination = _fill_target(interfaces.GroundedTarget, result.destination)
    msg.candidates = [_fill_target(interfaces.GroundedTarget, c) for c in result.candidates]
    msg.clarification = result.clarification or ""
    msg.choices = list(result.choices)
    msg.goals = goal_msgs
    msg.goal_kinds = [g.kind for g in result.goals]
    msg.backend = result.backend
    if result.image_size:
        msg.image_width, msg.image_height = (int(v) for v in result.image_size)
    msg.timing_keys = list(result.timing_ms)
    msg.timing_values = [float(v) for v in result.timing_ms.values()]
    msg.step = int(result.step)
    msg.step_count = len(result.steps)
    msg.will_act = bool(result.will_act)
    msg.no_goal_reason = result.no_goal_reason
    msg.grasps = [_fill_grasp(interfaces.GraspCandidate, g) for g in result.grasps]
    msg.json = result_to_json(result)
    return msg
