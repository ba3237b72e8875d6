"""The node's parameters: one table (name, default, description) that the node declares, the
README documents and config/vlm_ros.yaml mirrors (a test keeps the three in step)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from vlm_ros.core.geometry import camera_extrinsics
from vlm_ros.core.goals import GoalConfig
from vlm_ros.core.grounding import GroundingConfig
from vlm_ros.core.pipeline import PipelineConfig
from vlm_ros.core.safety import SafetyConfig

PARAMETERS: dict[str, tuple[Any, str]] = {
    "backend": ("ssd_coco", "grounding backend name (see `vlm-ros backends`)"),
    "model": ("", "model id or local path for the backend; empty = the backend's default"),
    "device": ("auto", "auto | cpu | cuda"),
    "dtype": ("auto", "auto | float16 | bfloat16 | float32 (VLM backends)"),
    "backend_options": ("", "adapter-specific options as a YAML/JSON mapping, e.g. "
                            "'{base_url: http://gpu-box:8000/v1, timeout_s: 10}'"),
    "score_threshold": (0.3, "detector score floor"),
    "min_match": (0.5, "attribute agreement needed for a candidate to match"),
    "ambiguity_margin": (0.15, "best two matches closer than this -> ambiguous"),
    "propose_from_depth": (False, "RGB-D tabletops: zoom the detector into depth clusters "
                                  "(objects on a support) that the full-image pass missed"),
    "base_frame": ("base_link", "frame every goal is published in"),
    "camera_frame": ("", "override the image header frame_id; empty = use the header"),
    "use_tf": (True, "resolve camera->base with tf2 when tf2_ros is importable"),
    "tf_timeout_s": (0.2, "how long to wait for a transform at the image stamp"),
    "camera_pose_in_base": ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                            "x y z roll pitch yaw of the camera body frame in base_frame; "
                            "used when tf2 is unavailable or use_tf is false"),
    "depth_scale": (0.001, "metres per unit of 16UC1 depth"),
    "min_depth_m": (0.1, "depth below this is invalid"),
    "max_depth_m": (10.0, "depth above this is invalid"),
    "sync_slop_s": (0.05, "max stamp difference between RGB and depth of one frame"),
    "use_compressed": (False, "subscribe camera/image/compressed instead of camera/image"),
    "use_depth": (True, "subscribe camera/depth"),
    "image_reliability": ("best_effort",
                          "camera subscription reliability: best_effort (sensor-data QoS) or "
                          "reliable (large images over Fast DDS UDP lose most best-effort "
                          "samples; use reliable when the driver publishes reliable)"),
    "pregrasp_offset": (0.10, "pre-grasp pose this far above the grasp (m)"),
    "place_height": (0.05, "place pose this far above the destination (m)"),
    "standoff_distance": (0.8, "navigation goal this far short of the target (m)"),
    "follow_rate_hz": (2.0, "model re-grounding rate while a target is tracked (the tracker "
                            "updates goals at camera rate in between); 0 = only when the "
                            "tracker's confidence drops or every 45 frames"),
    "track_target_s": (3.0, "after pick/look/navigate/find, track the target this long "
                            "(~/target_pose follows it); follow tracks until stop; 0 = off"),
    "track_resend_goals": (False, "also re-send pick/look/navigate/find goals when the tracked "
                                  "target moves (off: a lifted cup moves because of the robot)"),
    "track_goal_shift_m": (0.02, "a tracked target must move this far before its goals are "
                                 "re-sent (~/target_pose follows every frame)"),
    "command_frame_timeout_s": (3.0, "how long a command waits for a frame newer than itself"),
    "max_command_length": (1000, "longer commands are rejected"),
    # --- the safety gate every goal passes (vlm_ros/core/safety.py)
    "workspace_min": ([-0.2, -1.0, -0.2], "manipulation goals must lie in this base-frame box "
                                         "(x y z min, m)"),
    "workspace_max": ([1.2, 1.0, 1.8], "... and below this corner (x y z max, m)"),
    "max_nav_distance": (10.0, "navigation goals farther than this from the robot are refused"),
    "keepout_zones": ([0.0], "x_min y_min x_max y_max rectangles (base frame, flattened) that "
                             "navigation goals may not enter; [0.0] = none"),
    "min_confidence": (0.3, "refuse goals from a target scored below this"),
    "max_frame_age_s": (2.0, "refuse goals from a frame older than this when they are "
                             "published (node clock vs stamp); covers the model's own time"),
    "allowed_actions": (["pick", "place", "navigate", "look", "find", "follow", "stop"],
                        "actions that may produce goals"),
    "confirm_before_motion": (False, "state what will move on ~/result and wait for yes/"
                                     "confirm/确认 (or no) on ~/command before any goal"),
    "confirm_actions": (["pick", "place", "navigate", "follow"],
                        "actions that need a confirmation when confirm_before_motion is on"),
    "confirm_timeout_s": (15.0, "an unanswered confirmation expires after this; nothing moves"),
    "confirm_max_shift_m": (0.10, "on yes the target is grounded again on a fresh frame; if it "
                                  "moved farther than this from what was stated, nothing moves"),
    "model_timeout_s": (30.0, "a backend call that takes longer is answered with an error (the "
                              "node keeps serving); 0 = wait forever"),
    "publish_debug_image": (True, "publish ~/debug_image"),
    "publish_markers": (True, "publish ~/markers"),
    "publish_relevance": (True, "publish ~/relevance_image for backends with relevance maps"),
    "warmup": (True, "run the model once at start-up"),
}


@dataclass
class NodeSettings:
    """Typed view of the parameters, built once at start-up."""

    values: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def backend_options(self) -> dict[str, Any]:
        """Keyword arguments for the backend's constructor."""
        options: dict[str, Any] = {"score_threshold": float(self.values["score_threshold"])}
        for name in ("model", "device", "dtype"):
            if self.values[name] and self.values[name] != "auto":
                options[name] = self.values[name]
        extra = yaml.safe_load(self.values["backend_options"] or "{}") or {}
        if not isinstance(extra, dict):
            raise ValueError("backend_options must be a YAML/JSON mapping, e.g. '{timeout_s: 10}'")
        options.update(extra)
        return options

    def pipeline_config(self) -> PipelineConfig:
        v = self.values
        return PipelineConfig(
            grounding=GroundingConfig(
                min_score=float(v["score_threshold"]),
                min_match=float(v["min_match"]),
                ambiguity_margin=float(v["ambiguity_margin"]),
            ),
            goals=GoalConfig(
                base_frame=v["base_frame"],
                pregrasp_offset=float(v["pregrasp_offset"]),
                place_height=float(v["place_height"]),
                standoff_distance=float(v["standoff_distance"]),
                robot_frame=v["base_frame"],
            ),
            min_depth_m=float(v["min_depth_m"]),
            max_depth_m=float(v["max_depth_m"]),
            propose_from_depth=bool(v["propose_from_depth"]),
        )

    def safety_config(self) -> SafetyConfig:
        v = self.values
        zones = [] if list(v["keepout_zones"]) == [0.0] else [float(x) for x in v["keepout_zones"]]
        if len(zones) % 4:
            raise ValueError("keepout_zones needs 4 numbers per zone: x_min y_min x_max y_max")
        rects = [tuple(zones[i:i + 4]) for i in range(0, len(zones), 4)]
        return SafetyConfig(
            workspace_min=tuple(float(x) for x in v["workspace_min"]),
            workspace_max=tuple(float(x) for x in v["workspace_max"]),
            max_nav_distance=float(v["max_nav_distance"]),
            keepout_zones=rects,
            min_confidence=float(v["min_confidence"]),
            max_frame_age_s=float(v["max_frame_age_s"]),
            allowed_actions=frozenset(v["allowed_actions"]),
        )

    def camera_extrinsics(self):  # -> Transform
        pose = [float(x) for x in self.values["camera_pose_in_base"]]
        if len(pose) != 6:
            raise ValueError("camera_pose_in_base needs 6 numbers: x y z roll pitch yaw")
        return camera_extrinsics(*pose)
