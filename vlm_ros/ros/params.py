"""The node's parameters: one typed, frozen table (name, type, default, description).

The node declares :data:`PARAMETERS`, the README documents them and config/vlm_ros.yaml
mirrors them (a test keeps the three in step).  :meth:`NodeSettings.from_parameters` turns the
declared values into typed fields once, at start-up; the core's configurations are built from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from vlm_ros.core.geometry import Transform, camera_extrinsics
from vlm_ros.core.goals import GoalConfig
from vlm_ros.core.grounding import GroundingConfig
from vlm_ros.core.pipeline import PipelineConfig
from vlm_ros.core.safety import SafetyConfig
from vlm_ros.core.session import SessionConfig
from vlm_ros.core.types import ACTIONS


def _p(default: Any, description: str) -> Any:
    """A parameter: its default and the description the node declares."""
    if isinstance(default, (list, tuple)):
        return field(default=tuple(default), metadata={"description": description})
    return field(default=default, metadata={"description": description})


@dataclass(frozen=True)
class NodeSettings:
    """Typed view of the parameters, built once at start-up."""

    backend: str = _p("ssd_coco", "grounding backend name (see `vlm-ros backends`)")
    model: str = _p("", "model id or local path for the backend; empty = the backend's default")
    device: str = _p("auto", "auto | cpu | cuda")
    dtype: str = _p("auto", "auto | float16 | bfloat16 | float32 (VLM backends)")
    backend_options: str = _p("", "adapter-specific options as a YAML/JSON mapping, e.g. "
                                  "'{base_url: http://gpu-box:8000/v1, timeout_s: 10}'")
    parser: str = _p("grammar", "command parser: grammar (the lexicon parser) | llm (a language "
                                "model on an OpenAI-compatible server, see parser_options); "
                                "stops and yes/no answers always use the grammar")
    parser_options: str = _p("", "parser llm options as a YAML/JSON mapping, e.g. '{base_url: "
                                 "http://gpu-box:8000/v1, model: qwen2.5, timeout_s: 10}'")
    score_threshold: float = _p(0.3, "detector score floor")
    min_match: float = _p(0.5, "attribute agreement needed for a candidate to match")
    ambiguity_margin: float = _p(0.15, "best two matches closer than this -> ambiguous")
    propose_from_depth: bool = _p(False, "RGB-D tabletops: zoom the detector into depth clusters "
                                         "(objects on a support) that the full-image pass missed")
    base_frame: str = _p("base_link", "frame goals are made and safety-checked in (and "
                                      "published in, unless goal_frame names another)")
    camera_frame: str = _p("", "override the image header frame_id; empty = use the header")
    use_tf: bool = _p(True, "resolve camera->base with tf2 when tf2_ros is importable")
    tf_timeout_s: float = _p(0.2, "how long to wait for a transform at the image stamp")
    camera_pose_in_base: tuple[float, ...] = _p(
        [0.0],
        "x y z roll pitch yaw of the camera body frame in base_frame; used when tf2 is "
        "unavailable or use_tf is false; [0.0] = not set: without it and without tf2 no goals "
        "are sent (the result still says where the target is in the image)")
    goal_frame: str = _p("", "frame goals are published in; empty = base_frame.  Another frame "
                             "(e.g. map) is looked up with tf2 at the image stamp after the "
                             "safety gate checked the goals in base_frame; no transform, no "
                             "goals")
    image_rectified: bool = _p(True, "camera/image is rectified (image_proc's image_rect, or a "
                                     "driver that rectifies on board): use CameraInfo P; false "
                                     "= a raw image (image_raw): use K")
    depth_scale: float = _p(0.001, "metres per unit of 16UC1 depth")
    min_depth_m: float = _p(0.1, "depth below this is invalid")
    max_depth_m: float = _p(10.0, "depth above this is invalid")
    sync_slop_s: float = _p(0.05, "max stamp difference between RGB and depth of one frame")
    use_compressed: bool = _p(False, "subscribe camera/image/compressed instead of camera/image")
    use_depth: bool = _p(True, "subscribe camera/depth")
    image_reliability: str = _p(
        "best_effort", "camera subscription reliability: best_effort (sensor-data QoS) or "
                       "reliable (large images over Fast DDS UDP lose most best-effort samples; "
                       "use reliable when the driver publishes reliable)")
    pregrasp_offset: float = _p(0.10, "pre-grasp pose this far above the grasp (m)")
    place_height: float = _p(0.05, "place pose this far above the destination (m)")
    standoff_distance: float = _p(0.8, "navigation goal this far short of the target (m)")
    follow_rate_hz: float = _p(2.0, "model re-grounding rate while a target is tracked (the "
                                    "tracker updates goals at camera rate in between); 0 = only "
                                    "when the tracker's confidence drops or every 45 frames")
    track_target_s: float = _p(3.0, "after pick/look/navigate/find, track the target this long "
                                    "(~/target_pose follows it); follow tracks until stop; 0 = off")
    track_resend_goals: bool = _p(False, "also re-send pick/look/navigate/find goals when the "
                                         "tracked target moves (off: a lifted cup moves because "
                                         "of the robot)")
    track_goal_shift_m: float = _p(0.02, "a tracked target must move this far before its goals "
                                         "are re-sent (~/target_pose follows every frame)")
    step_timeout_s: float = _p(60.0, "a step of a several-step command must be reported done on "
                                     "robot_status within this, or the rest is cancelled")
    command_frame_timeout_s: float = _p(3.0, "how long a command waits for a frame newer than "
                                             "itself")
    max_command_length: int = _p(1000, "longer commands are rejected")
    # --- the safety gate every goal passes (vlm_ros/core/safety.py)
    workspace_min: tuple[float, ...] = _p([-0.2, -1.0, -0.2], "manipulation goals must lie in "
                                          "this base-frame box (x y z min, m)")
    workspace_max: tuple[float, ...] = _p([1.2, 1.0, 1.8], "... and below this corner (x y z "
                                                           "max, m)")
    max_nav_distance: float = _p(10.0, "navigation goals farther than this from the robot are "
                                       "refused")
    keepout_zones: tuple[float, ...] = _p([0.0], "x_min y_min x_max y_max rectangles (base "
                                                 "frame, flattened) that navigation goals may "
                                                 "not enter; [0.0] = none")
    min_confidence: float = _p(0.3, "refuse goals from a target scored below this")
    max_frame_age_s: float = _p(2.0, "refuse goals from a frame older than this when they are "
                                     "published (node clock vs stamp); covers the model's own "
                                     "time")
    allowed_actions: tuple[str, ...] = _p(list(ACTIONS), "actions that may produce goals")
    max_grasp_width_m: float = _p(0.15, "refuse a pick whose object is wider than this (its box "
                                        "back-projected at its depth; a typical parallel "
                                        "gripper opens 0.08-0.14 m)")
    confirm_before_motion: bool = _p(False, "state what will move on ~/result and wait for yes/"
                                            "confirm/确认 (or no) on ~/command before any goal")
    confirm_actions: tuple[str, ...] = _p(["pick", "place", "navigate", "follow"],
                                          "actions that need a confirmation when "
                                          "confirm_before_motion is on")
    confirm_timeout_s: float = _p(15.0, "an unanswered confirmation expires after this; nothing "
                                        "moves")
    confirm_max_shift_m: float = _p(0.10, "on yes the target is grounded again on a fresh frame; "
                                          "if it moved farther than this from what was stated, "
                                          "nothing moves")
    model_timeout_s: float = _p(30.0, "a backend call that takes longer is answered with an "
                                      "error (the node keeps serving); 0 = wait forever")
    publish_debug_image: bool = _p(True, "publish ~/debug_image")
    publish_markers: bool = _p(True, "publish ~/markers")
    publish_relevance: bool = _p(True, "publish ~/relevance_image for backends with relevance "
                                       "maps")
    warmup: bool = _p(True, "run the model once at start-up")

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> NodeSettings:
        """Typed settings from declared parameter values (ValueError names a bad one)."""
        typed: dict[str, Any] = {}
        for spec in fields(cls):
            value = values.get(spec.name, spec.default)
            kind = type(spec.default)
            try:
                if kind is tuple:
                    typed[spec.name] = tuple(value)
                elif kind is float:
                    typed[spec.name] = float(value)  # an integer literal is a fine float
                else:
                    typed[spec.name] = kind(value)
            except (TypeError, ValueError):
                raise ValueError(f"parameter {spec.name} must be a {kind.__name__}, "
                                 f"got {value!r}") from None
        return cls(**typed)

    # ---------------------------------------------------------------- the core's configurations
    def backend_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the backend's constructor."""
        options: dict[str, Any] = {"score_threshold": self.score_threshold}
        for name in ("model", "device", "dtype"):
            value = getattr(self, name)
            if value and value != "auto":
                options[name] = value
        extra = yaml.safe_load(self.backend_options or "{}") or {}
        if not isinstance(extra, dict):
            raise ValueError("backend_options must be a YAML/JSON mapping, e.g. '{timeout_s: 10}'")
        options.update(extra)
        return options

    def parser_kwargs(self) -> dict[str, Any]:
        """The ``parser_options`` mapping (for vlm_ros.backends.llm_parser.make_parser)."""
        options = yaml.safe_load(self.parser_options or "{}") or {}
        if not isinstance(options, dict):
            raise ValueError("parser_options must be a YAML/JSON mapping, e.g. "
                             "'{model: qwen2.5, base_url: http://gpu-box:8000/v1}'")
        return options

    def pipeline_config(self) -> PipelineConfig:
        return PipelineConfig(
            grounding=GroundingConfig(min_score=self.score_threshold, min_match=self.min_match,
                                      ambiguity_margin=self.ambiguity_margin),
            goals=GoalConfig(base_frame=self.base_frame, pregrasp_offset=self.pregrasp_offset,
                             place_height=self.place_height,
                             standoff_distance=self.standoff_distance,
                             robot_frame=self.base_frame),
            min_depth_m=self.min_depth_m,
            max_depth_m=self.max_depth_m,
            propose_from_depth=self.propose_from_depth,
        )

    def safety_config(self) -> SafetyConfig:
        zones = [] if list(self.keepout_zones) == [0.0] else [float(x) for x in self.keepout_zones]
        if len(zones) % 4:
            raise ValueError("keepout_zones needs 4 numbers per zone: x_min y_min x_max y_max")
        rects = [(zones[i], zones[i + 1], zones[i + 2], zones[i + 3])
                 for i in range(0, len(zones), 4)]
        return SafetyConfig(
            workspace_min=_vec3(self.workspace_min, "workspace_min"),
            workspace_max=_vec3(self.workspace_max, "workspace_max"),
            max_nav_distance=self.max_nav_distance,
            keepout_zones=rects,
            min_confidence=self.min_confidence,
            max_frame_age_s=self.max_frame_age_s,
            allowed_actions=frozenset(self.allowed_actions),
            max_grasp_width_m=_positive(self.max_grasp_width_m, "max_grasp_width_m"),
        )

    def session_config(self) -> SessionConfig:
        rate = self.follow_rate_hz
        return SessionConfig(
            max_command_length=self.max_command_length,
            confirm_before_motion=self.confirm_before_motion,
            confirm_actions=frozenset(self.confirm_actions),  # type: ignore[arg-type]
            confirm_timeout_s=self.confirm_timeout_s,
            confirm_max_shift_m=self.confirm_max_shift_m,
            track_target_s=self.track_target_s,
            track_resend_goals=self.track_resend_goals,
            track_goal_shift_m=self.track_goal_shift_m,
            reground_interval_s=1.0 / rate if rate > 0 else math.inf,
            base_frame=self.base_frame,
            step_timeout_s=self.step_timeout_s,
        )

    def camera_extrinsics(self) -> Transform | None:
        """camera optical -> base_frame from camera_pose_in_base; None when it is not set
        ([0.0]): the extrinsics are then unknown, never assumed."""
        pose = [float(x) for x in self.camera_pose_in_base]
        if pose == [0.0]:
            return None
        if len(pose) != 6:
            raise ValueError("camera_pose_in_base needs 6 numbers: x y z roll pitch yaw "
                             "([0.0] = not set)")
        return camera_extrinsics(*pose)

    def goal_frame_name(self) -> str:
        """The frame goals are published in (goal_frame, or base_frame when it is empty)."""
        return self.goal_frame or self.base_frame


def _positive(value: float, name: str) -> float:
    if not value > 0.0:  # NaN too
        raise ValueError(f"{name} must be a positive number of metres, got {value}")
    return value


def _vec3(values: tuple[float, ...], name: str) -> tuple[float, float, float]:
    if len(values) != 3:
        raise ValueError(f"{name} needs 3 numbers: x y z")
    return (float(values[0]), float(values[1]), float(values[2]))


# name -> (default, description): what the node declares (lists, as ROS parameters are).
PARAMETERS: dict[str, tuple[Any, str]] = {
    spec.name: (list(spec.default) if isinstance(spec.default, tuple) else spec.default,
                spec.metadata["description"])
    for spec in fields(NodeSettings)
}
