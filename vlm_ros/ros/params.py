"""The node's parameters: one typed, frozen table (name, type, default, description).

The node declares :data:`PARAMETERS`, the README documents them and config/vlm_ros.yaml
mirrors them (a test keeps the three in step).  :meth:`NodeSettings.from_parameters` turns the
declared values into typed fields once, at start-up; the core's configurations are built from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, NamedTuple

import yaml

from vlm_ros.core.geometry import Transform, camera_extrinsics
from vlm_ros.core.goals import GoalConfig
from vlm_ros.core.grasp import GRASP_STRATEGIES, GRIPPER_TYPES, GraspConfig
from vlm_ros.core.grounding import GroundingConfig
from vlm_ros.core.memory import MemoryConfig
from vlm_ros.core.pipeline import PipelineConfig
from vlm_ros.core.recall import SearchConfig
from vlm_ros.core.safety import SafetyConfig
from vlm_ros.core.session import SessionConfig
from vlm_ros.core.types import ACTIONS

_Range = tuple[float, float]
_AT_LEAST_0: _Range = (0.0, math.inf)
_FRACTION: _Range = (0.0, 1.0)
# score_threshold: a fraction, or UNSET_SCORE_THRESHOLD = "the backend's own default".  ROS
# parameters cannot be null and keep one type, so "unset" is a number outside [0, 1].
UNSET_SCORE_THRESHOLD = -1.0


def _p(default: Any, description: str, *, read_only: bool = False,
       range: _Range | None = None) -> Any:  # noqa: A002 - the descriptor's word
    """A parameter: its default, the description the node declares, whether it is structural
    (``read_only``: fixed at start-up, refused by rclpy afterwards) and its inclusive range."""
    metadata = {"description": description, "read_only": read_only, "range": range}
    if isinstance(default, (list, tuple)):
        return field(default=tuple(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class NodeSettings:
    """Typed view of the parameters, built once at start-up."""

    # --- structural (read_only): the backend, the parser, frames and the camera subscriptions
    # are built from these at configure / activate; rclpy refuses changing them afterwards.
    backend: str = _p("ssd_coco", "grounding backend name (see `vlm-ros backends`)",
                      read_only=True)
    model: str = _p("", "model id or local path for the backend; empty = the backend's default",
                    read_only=True)
    device: str = _p("auto", "auto | cpu | cuda", read_only=True)
    dtype: str = _p("auto", "auto | float16 | bfloat16 | float32 (VLM backends)", read_only=True)
    backend_options: str = _p("", "adapter-specific options as a YAML/JSON mapping, e.g. "
                                  "'{base_url: http://gpu-box:8000/v1, timeout_s: 10}'",
                              read_only=True)
    parser: str = _p("grammar", "command parser: grammar (the lexicon parser) | llm (a language "
                                "model on an OpenAI-compatible server, see parser_options); "
                                "stops and yes/no answers always use the grammar",
                     read_only=True)
    parser_options: str = _p("", "parser llm options as a YAML/JSON mapping, e.g. '{base_url: "
                                 "http://gpu-box:8000/v1, model: qwen2.5, timeout_s: 10}'",
                             read_only=True)
    # --- applied live (between two commands) unless marked read_only
    score_threshold: float = _p(UNSET_SCORE_THRESHOLD,
                                "detector score floor (the backend's and the core's), 0..1; -1 = "
                                "the backend's own default (owl 0.1, grounding_dino, ssd_coco "
                                "and the VLMs 0.3)", range=(UNSET_SCORE_THRESHOLD, 1.0))
    min_match: float = _p(0.5, "attribute agreement needed for a candidate to match",
                          range=_FRACTION)
    ambiguity_margin: float = _p(0.15, "best two matches closer than this -> ambiguous",
                                 range=_FRACTION)
    propose_from_depth: bool = _p(False, "RGB-D tabletops: zoom the detector into depth clusters "
                                         "(objects on a support) that the full-image pass missed")
    base_frame: str = _p("base_link", "frame goals are made and safety-checked in (and "
                                      "published in, unless goal_frame names another)",
                         read_only=True)
    camera_frame: str = _p("", "override the image header frame_id; empty = use the header",
                           read_only=True)
    use_tf: bool = _p(True, "resolve camera->base with tf2 when tf2_ros is importable",
                      read_only=True)
    tf_timeout_s: float = _p(0.2, "how long to wait for a transform at the image stamp",
                             read_only=True, range=_AT_LEAST_0)
    camera_pose_in_base: tuple[float, ...] = _p(
        [0.0],
        "x y z roll pitch yaw of the camera body frame in base_frame; used when tf2 is "
        "unavailable or use_tf is false; [0.0] = not set: without it and without tf2 no goals "
        "are sent (the result still says where the target is in the image)", read_only=True)
    goal_frame: str = _p("", "frame goals are published in; empty = base_frame.  Another frame "
                             "(e.g. map) is looked up with tf2 at the image stamp after the "
                             "safety gate checked the goals in base_frame; no transform, no "
                             "goals", read_only=True)
    image_rectified: bool = _p(True, "camera/image is rectified (image_proc's image_rect, or a "
                                     "driver that rectifies on board): use CameraInfo P; false "
                                     "= a raw image (image_raw): use K", read_only=True)
    depth_scale: float = _p(0.001, "metres per unit of 16UC1 depth (> 0)", range=_AT_LEAST_0)
    min_depth_m: float = _p(0.1, "depth below this is invalid", range=_AT_LEAST_0)
    max_depth_m: float = _p(10.0, "depth above this is invalid (> min_depth_m)",
                            range=_AT_LEAST_0)
    sync_slop_s: float = _p(0.05, "max stamp difference between RGB and depth of one frame",
                            read_only=True, range=_AT_LEAST_0)
    use_compressed: bool = _p(False, "subscribe camera/image/compressed instead of camera/image",
                              read_only=True)
    use_depth: bool = _p(True, "subscribe camera/depth", read_only=True)
    image_reliability: str = _p(
        "best_effort", "camera subscription reliability: best_effort (sensor-data QoS) or "
                       "reliable (large images over Fast DDS UDP lose most best-effort samples; "
                       "use reliable when the driver publishes reliable)", read_only=True)
    pregrasp_offset: float = _p(0.10, "pre-grasp pose this far above the grasp (m)",
                                range=_AT_LEAST_0)
    place_height: float = _p(0.05, "place pose this far above the destination (m)",
                             range=_AT_LEAST_0)
    standoff_distance: float = _p(0.8, "navigation goal this far short of the target (m)",
                                  range=_AT_LEAST_0)
    follow_rate_hz: float = _p(2.0, "model re-grounding rate while a target is tracked (the "
                                    "tracker updates goals at camera rate in between); 0 = only "
                                    "when the tracker's confidence drops or every 45 frames",
                               range=_AT_LEAST_0)
    track_target_s: float = _p(3.0, "after pick/look/navigate/find, track the target this long "
                                    "(~/target_pose follows it); follow tracks until stop; 0 = off",
                               range=_AT_LEAST_0)
    track_resend_goals: bool = _p(False, "also re-send pick/look/navigate/find goals when the "
                                         "tracked target moves (off: a lifted cup moves because "
                                         "of the robot)")
    track_goal_shift_m: float = _p(0.02, "a tracked target must move this far before its goals "
                                         "are re-sent (~/target_pose follows every frame)",
                                   range=_AT_LEAST_0)
    step_timeout_s: float = _p(60.0, "a step of a several-step command must be reported done on "
                                     "robot_status within this, or the rest is cancelled",
                               range=_AT_LEAST_0)
    command_frame_timeout_s: float = _p(3.0, "how long a command waits for a frame newer than "
                                             "itself", range=_AT_LEAST_0)
    max_command_length: int = _p(1000, "longer commands are rejected", range=(1, 1_000_000))
    # --- the safety gate every goal passes (vlm_ros/core/safety.py)
    workspace_min: tuple[float, ...] = _p([-0.2, -1.0, -0.2], "manipulation goals must lie in "
                                          "this base-frame box (x y z min, m)")
    workspace_max: tuple[float, ...] = _p([1.2, 1.0, 1.8], "... and below this corner (x y z "
                                                           "max, m; each above workspace_min)")
    max_nav_distance: float = _p(10.0, "navigation goals farther than this from the robot are "
                                       "refused", range=_AT_LEAST_0)
    keepout_zones: tuple[float, ...] = _p([0.0], "x_min y_min x_max y_max rectangles (base "
                                                 "frame, flattened) that navigation goals may "
                                                 "not enter; [0.0] = none")
    min_confidence: float = _p(0.3, "refuse goals from a target scored below this",
                               range=_FRACTION)
    max_frame_age_s: float = _p(2.0, "refuse goals from a frame older than this when they are "
                                     "published (node clock vs stamp); covers the model's own "
                                     "time", range=_AT_LEAST_0)
    allowed_actions: tuple[str, ...] = _p(list(ACTIONS), "actions that may produce goals")
    max_grasp_width_m: float = _p(0.15, "the gripper's opening: refuse a pick whose best grasp "
                                        "(or, without depth points, whose box back-projected "
                                        "at its depth) is wider than this (a typical parallel "
                                        "gripper opens 0.08-0.14 m; > 0)", range=_AT_LEAST_0)
    grasp_strategy: str = _p("auto", "how grasps are made from the object's masked depth "
                                     "points: centroid, principal_axis (across the narrow "
                                     "side), top_plane (plane-fit top, its normal as approach) "
                                     "or auto (all, ranked by score); vlm_ros/core/grasp.py")
    gripper_type: str = _p("parallel", "parallel (two fingers; max_grasp_width_m is their "
                                       "opening) or vacuum (a suction cup on a flat top)")
    gripper_finger_length_m: float = _p(0.165, "finger tip to palm (m): the palm stays above a "
                                               "tall object's top", range=_AT_LEAST_0)
    gripper_tcp_above_tips_m: float = _p(0.015, "where the grasp pose (TCP) sits above the "
                                                "finger tips (m)", range=_AT_LEAST_0)
    grasp_table_clearance_m: float = _p(0.005, "finger tips stay this far above the surface an "
                                               "object stands on (m)", range=_AT_LEAST_0)
    suction_diameter_m: float = _p(0.03, "vacuum: the cup's diameter; a top narrower than "
                                         "this is refused (m)", range=_AT_LEAST_0)
    never_grasp: tuple[str, ...] = _p([""], "labels / nouns never picked up, besides people, "
                                            "animals, vehicles, furniture and large things "
                                            "(vlm_ros/core/graspable.py); [''] = none")
    may_grasp: tuple[str, ...] = _p([""], "labels / nouns taken out of that table (e.g. chair, "
                                          "for a robot that moves chairs); [''] = none")
    min_person_standoff_m: float = _p(0.8, "a navigate / follow goal toward a person or an "
                                           "animal stops at least this far from it (m)",
                                      range=_AT_LEAST_0)
    confirm_before_motion: bool = _p(False, "state what will move on ~/result and wait for yes/"
                                            "confirm/确认 (or no) on ~/command before any goal")
    confirm_actions: tuple[str, ...] = _p(["pick", "place", "navigate", "follow"],
                                          "actions that need a confirmation when "
                                          "confirm_before_motion is on")
    confirm_timeout_s: float = _p(15.0, "an unanswered confirmation expires after this; nothing "
                                        "moves", range=_AT_LEAST_0)
    confirm_max_shift_m: float = _p(0.10, "on yes the target is grounded again on a fresh frame; "
                                          "if it moved farther than this from what was stated, "
                                          "nothing moves", range=_AT_LEAST_0)
    model_timeout_s: float = _p(30.0, "a backend call that takes longer is answered with an "
                                      "error (the node keeps serving); 0 = wait forever",
                                range=_AT_LEAST_0)
    publish_debug_image: bool = _p(True, "publish ~/debug_image")
    publish_markers: bool = _p(True, "publish ~/markers")
    publish_relevance: bool = _p(True, "publish ~/relevance_image for backends with relevance "
                                       "maps")
    # --- the object memory and active search (vlm_ros/core/memory.py, core/recall.py)
    memory_enabled: bool = _p(True, "remember grounded objects (label, colour, position in "
                                    "base_frame, when seen) for 'where did you see ...', 'go "
                                    "back to ...' and 'the cup you saw'")
    memory_max_age_s: float = _p(120.0, "a goal from memory needs a sighting at most this old "
                                        "(s); older ones are answered, never acted on",
                                 range=_AT_LEAST_0)
    memory_merge_distance_m: float = _p(0.15, "an observation of the same label and colour this "
                                              "close to a remembered object is that object (m)",
                                        range=_AT_LEAST_0)
    memory_miss_limit: int = _p(2, "a remembered object in view and not seen this many times "
                                   "in a row is forgotten (no ghost goals)", range=(1, 1000))
    memory_max_objects: int = _p(200, "at most this many remembered objects (the one seen least "
                                      "recently goes first)", range=(1, 100000))
    memory_file: str = _p("", "JSON file the memory is loaded from at start and ~/save_memory "
                              "writes; empty = not persisted", read_only=True)
    search_enabled: bool = _p(True, "'find X' when X is neither in view nor remembered turns "
                                    "the camera through search_yaws_deg (view goals on "
                                    "~/look_at, each reported done on robot_status)")
    search_yaws_deg: tuple[float, ...] = _p([0.0, 40.0, -40.0, 80.0, -80.0],
                                            "headings (deg, base_frame) an active search looks "
                                            "at, in order; the view just grounded is skipped")
    search_distance_m: float = _p(1.0, "a search view's look point: this far from the camera "
                                       "along the heading (m)", range=_AT_LEAST_0)
    search_height_m: float = _p(0.75, "... at this height in base_frame (m; a table top)")
    search_view_timeout_s: float = _p(20.0, "the robot must report each search view done "
                                            "(robot_status) within this, or the search stops",
                                      range=_AT_LEAST_0)
    camera_pose_topic: str = _p("", "without TF, a moving camera (pan-tilt) publishes its body "
                                    "pose in base_frame here (geometry_msgs/PoseStamped, stamped "
                                    "like its images); empty = camera_pose_in_base or TF",
                                read_only=True)
    warmup: bool = _p(True, "run the model once at configure (start-up)", read_only=True)
    autostart: bool = _p(True, "configure and activate the lifecycle node by itself at start-up; "
                               "false = wait for lifecycle transitions (a lifecycle manager)",
                         read_only=True)

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

    # ---------------------------------------------------------------- validation
    def problems(self) -> list[str]:
        """Every rule these settings break (ranges, vector lengths, cross-field rules); [] = ok."""
        found: list[str] = []
        for spec in fields(self):
            bounds = spec.metadata["range"]
            value = getattr(self, spec.name)
            if spec.name == "score_threshold":  # the range [-1, 1] holds one value below 0
                if not (value == UNSET_SCORE_THRESHOLD or 0.0 <= value <= 1.0):
                    found.append(f"score_threshold must be in [0, 1] or -1 (the backend's "
                                 f"default), got {value}")
            elif bounds is not None and not bounds[0] <= value <= bounds[1]:  # NaN fails too
                found.append(f"{spec.name} must be in {range_text(bounds)}, got {value}")
        for name in _POSITIVE:
            if getattr(self, name) == 0.0:
                found.append(f"{name} must be greater than 0")
        found += _vector_problems(self)
        if not self.min_depth_m < self.max_depth_m:
            found.append(f"min_depth_m ({self.min_depth_m}) must be below max_depth_m "
                         f"({self.max_depth_m})")
        for name in ("allowed_actions", "confirm_actions"):
            unknown = sorted(set(getattr(self, name)) - set(ACTIONS))
            if unknown:
                found.append(f"{name}: unknown action(s) {', '.join(unknown)} (known: "
                             f"{', '.join(ACTIONS)})")
        if self.image_reliability not in ("best_effort", "reliable"):
            found.append(f"image_reliability must be best_effort or reliable, got "
                         f"{self.image_reliability!r}")
        for check in (self.backend_kwargs, self.parser_kwargs):
            try:
                check()
            except (ValueError, yaml.YAMLError) as exc:
                found.append(str(exc).splitlines()[0])
        return found

    def check(self) -> NodeSettings:
        """These settings, or ValueError naming every rule they break."""
        found = self.problems()
        if found:
            raise ValueError("; ".join(found))
        return self

    def changed(self, changes: Mapping[str, Any], structural: bool = False) -> NodeSettings:
        """New settings with ``changes`` (name -> value as a parameter carries it) applied.

        ValueError gives the reason a change is refused: an unknown or read-only name (unless
        ``structural``), a value of the wrong type or out of its range, or a cross-field rule
        the result would break (workspace_min < workspace_max, known actions, ...).
        """
        specs = {spec.name: spec for spec in fields(self)}
        typed: dict[str, Any] = {}
        for name, value in changes.items():
            spec = specs.get(name)
            if spec is None:
                raise ValueError(f"unknown parameter {name}")
            if spec.metadata["read_only"] and not structural:
                raise ValueError(f"{name} is read-only: it is structural and set at start-up "
                                 f"(params file / launch), not while the node runs")
            typed[name] = _strict(name, spec.default, value)
        return replace(self, **typed).check()

    # ---------------------------------------------------------------- the core's configurations
    @property
    def user_score_threshold(self) -> float | None:
        """The score threshold the user set, or None: the backend's own default applies."""
        return None if self.score_threshold < 0.0 else self.score_threshold

    def backend_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the backend's constructor (a score_threshold only when set)."""
        options: dict[str, Any] = {}
        if self.user_score_threshold is not None:
            options["score_threshold"] = self.user_score_threshold
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
            grounding=GroundingConfig(min_score=self.user_score_threshold,
                                      min_match=self.min_match,
                                      ambiguity_margin=self.ambiguity_margin,
                                      never_grasp=self.safety_config().never_grasp,
                                      may_grasp=self.safety_config().may_grasp),
            goals=GoalConfig(base_frame=self.base_frame, pregrasp_offset=self.pregrasp_offset,
                             place_height=self.place_height,
                             standoff_distance=self.standoff_distance,
                             robot_frame=self.base_frame),
            min_depth_m=self.min_depth_m,
            max_depth_m=self.max_depth_m,
            propose_from_depth=self.propose_from_depth,
            grasp=self.grasp_config(),
        )

    def grasp_config(self) -> GraspConfig:
        if self.grasp_strategy not in GRASP_STRATEGIES:
            raise ValueError(f"grasp_strategy must be one of {', '.join(GRASP_STRATEGIES)}, got "
                             f"{self.grasp_strategy!r}")
        if self.gripper_type not in GRIPPER_TYPES:
            raise ValueError(f"gripper_type must be one of {', '.join(GRIPPER_TYPES)}, got "
                             f"{self.gripper_type!r}")
        return GraspConfig(strategy=self.grasp_strategy, gripper=self.gripper_type,
                           max_width_m=_positive(self.max_grasp_width_m, "max_grasp_width_m"),
                           finger_length_m=self.gripper_finger_length_m,
                           tcp_above_tips_m=self.gripper_tcp_above_tips_m,
                           table_clearance_m=self.grasp_table_clearance_m,
                           suction_diameter_m=self.suction_diameter_m,
                           pregrasp_offset_m=self.pregrasp_offset)

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
            never_grasp=frozenset(self.never_grasp),
            may_grasp=frozenset(self.may_grasp),
            min_person_standoff_m=self.min_person_standoff_m,
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
            memory_max_age_s=self.memory_max_age_s,
            search=SearchConfig(enabled=self.search_enabled,
                                yaws_deg=tuple(float(y) for y in self.search_yaws_deg),
                                distance_m=self.search_distance_m,
                                height_m=self.search_height_m,
                                view_timeout_s=self.search_view_timeout_s),
        )

    def memory_config(self) -> MemoryConfig:
        return MemoryConfig(enabled=self.memory_enabled, min_confidence=self.min_confidence,
                            merge_distance_m=self.memory_merge_distance_m,
                            miss_limit=self.memory_miss_limit,
                            max_objects=self.memory_max_objects,
                            max_age_s=self.memory_max_age_s)

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


_POSITIVE = ("depth_scale", "max_grasp_width_m")  # ranges from 0, but 0 itself is no value


def range_text(bounds: tuple[float, float]) -> str:
    """``[0, 1]`` or ``[0, inf)``: how a range reads in a refusal and in the README."""
    def number(value: float) -> str:
        return str(int(value)) if float(value).is_integer() else f"{value:g}"

    low, high = bounds
    return f"[{number(low)}, {number(high)}]" if math.isfinite(high) else f"[{number(low)}, inf)"


def _vector_problems(settings: NodeSettings) -> list[str]:
    found: list[str] = []
    lengths = {"workspace_min": 3, "workspace_max": 3, "camera_pose_in_base": 6}
    for name, length in lengths.items():
        values = getattr(settings, name)
        if name == "camera_pose_in_base" and list(values) == [0.0]:
            continue  # not set: extrinsics come from tf2, or no goals are sent
        if len(values) != length:
            unset = " ([0.0] = not set)" if name == "camera_pose_in_base" else ""
            found.append(f"{name} needs {length} numbers{unset}, got {len(values)}")
        elif not all(math.isfinite(v) for v in values):
            found.append(f"{name} must be finite numbers")
    low, high = settings.workspace_min, settings.workspace_max
    if len(low) == len(high) == 3 and not all(a < b for a, b in zip(low, high)):
        found.append(f"workspace_min {list(low)} must be below workspace_max {list(high)} on "
                     f"every axis (x y z)")
    zones = list(settings.keepout_zones)
    if zones != [0.0]:
        if len(zones) % 4 or not zones:
            found.append("keepout_zones needs 4 numbers per zone: x_min y_min x_max y_max "
                         "([0.0] = none)")
        elif not all(zones[i] < zones[i + 2] and zones[i + 1] < zones[i + 3]
                     for i in range(0, len(zones), 4)):
            found.append("keepout_zones: every zone needs x_min < x_max and y_min < y_max")
    return found


def _strict(name: str, default: Any, value: Any) -> Any:
    """``value`` typed like ``default``, or ValueError (a parameter keeps its declared type)."""
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if isinstance(default, tuple):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ValueError(f"{name} must be a list, got {value!r}")
        items = list(value)
        if default and isinstance(default[0], str):
            if not all(isinstance(v, str) for v in items):
                raise ValueError(f"{name} must be a list of strings, got {items!r}")
            return tuple(items)
        if not all(number(v) for v in items):
            raise ValueError(f"{name} must be a list of numbers, got {items!r}")
        return tuple(float(v) for v in items)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, float):
        if not number(value):
            raise ValueError(f"{name} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, int):
        if not (number(value) and float(value).is_integer()):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


class ParamSpec(NamedTuple):
    """One row of the parameter table, as the node declares it."""

    default: Any  # lists for arrays, as ROS parameters are
    description: str
    read_only: bool
    range: tuple[float, float] | None  # inclusive; None = no range


PARAMETER_SPECS: dict[str, ParamSpec] = {
    spec.name: ParamSpec(list(spec.default) if isinstance(spec.default, tuple) else spec.default,
                         spec.metadata["description"], spec.metadata["read_only"],
                         spec.metadata["range"])
    for spec in fields(NodeSettings)
}

# name -> (default, description): what the node declares (lists, as ROS parameters are).
PARAMETERS: dict[str, tuple[Any, str]] = {
    name: (spec.default, spec.description) for name, spec in PARAMETER_SPECS.items()
}
