"""What the node reports on /diagnostics: counters, per-stage timings, and its health."""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

# Per-stage timings kept for /diagnostics (and `vlm-ros bench`): the last N samples per stage.
STAGES = ("receive", "convert", "sync", "model", "reasoning", "geometry", "track", "publish",
          # Waiting, not work: command arrival -> a newer colour frame, and that frame -> its depth.
          "frame_wait", "depth_wait")
_STAGE_SAMPLES = 300
COUNTERS = ("rgb_frames", "depth_frames", "camera_infos", "commands", "results")


class StageTimings:
    """The last samples (ms) of each stage.  Appends come from several threads (a deque's
    append is atomic); a report copies each deque in one step."""

    def __init__(self) -> None:
        self._samples = {name: collections.deque(maxlen=_STAGE_SAMPLES) for name in STAGES}

    def record(self, stage: str, started: float) -> None:
        """One sample: ms since ``started`` (a time.perf_counter() value)."""
        self._samples[stage].append((time.perf_counter() - started) * 1000.0)

    def add(self, stage: str, ms: float) -> None:
        self._samples[stage].append(ms)

    def add_pipeline(self, timing_ms: Mapping[str, float]) -> None:
        """The pipeline's own stage timings of one model pass."""
        for stage in ("model", "reasoning", "geometry"):
            if stage in timing_ms:
                self._samples[stage].append(timing_ms[stage])

    def key_values(self) -> list[KeyValue]:
        values = []
        for stage, samples in self._samples.items():
            array = np.asarray(tuple(samples), dtype=float)  # one C-level copy
            for key, percentile in (("p50", 50), ("p95", 95)):
                text = f"{np.percentile(array, percentile):.3f}" if array.size else "nan"
                values.append(KeyValue(key=f"{stage}_ms_{key}", value=text))
            values.append(KeyValue(key=f"{stage}_count", value=str(array.size)))
        return values


DIAGNOSTICS_NAME = "vlm_ros: grounding"  # the node's one status on /diagnostics


def find_node_status(array: DiagnosticArray) -> DiagnosticStatus | None:
    """The node's status in one /diagnostics message (None if it is another node's)."""
    for status in array.status:
        if status.name == DIAGNOSTICS_NAME:
            return status
    return None


def status_level(status: DiagnosticStatus) -> int:
    """0 OK, 1 WARN, 2 ERROR, 3 STALE (the level is a byte in rclpy's message)."""
    level = status.level
    return int.from_bytes(level, "little") if isinstance(level, bytes) else int(level)


def diagnostic_array(backend: str, counts: Mapping[str, int], stuck_for_s: float | None,
                     state: Mapping[str, object], timings: StageTimings,
                     stamp: object) -> DiagnosticArray:
    """The node's one status: ERROR while the backend is stuck, WARN before any camera frame."""
    status = DiagnosticStatus(name=DIAGNOSTICS_NAME, hardware_id=backend)
    if stuck_for_s is not None:
        status.level = DiagnosticStatus.ERROR
        status.message = f"backend stuck in a call for {stuck_for_s:.0f} s"
    elif not counts.get("rgb_frames"):
        status.level, status.message = DiagnosticStatus.WARN, "no camera frames received"
    else:
        status.level, status.message = DiagnosticStatus.OK, "receiving camera frames"
    status.values = [KeyValue(key=k, value=str(counts.get(k, 0))) for k in COUNTERS]
    status.values += [KeyValue(key=k, value=str(v)) for k, v in state.items()]
    status.values.append(KeyValue(key="tracked_goal_updates",
                                  value=str(counts.get("tracked_goal_updates", 0))))
    status.values += timings.key_values()
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array
