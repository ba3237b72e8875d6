"""Camera input: the latest colour, depth and CameraInfo messages, matched into one Frame.

Camera callbacks only store (:meth:`FrameBuffer.add`); the worker asks for the first colour
frame that *arrived* after a command, with the depth and CameraInfo nearest its stamp, and
converts it (:func:`to_frame`).  Arrival, not stamp, decides "newer than the command": a camera
whose clock differs from ours must not make a stale frame look fresh.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sensor_msgs.msg import CameraInfo, CompressedImage

from vlm_ros.core.calibration import CameraInputError, check_camera_input
from vlm_ros.core.geometry import depth_to_meters
from vlm_ros.core.types import Frame
from vlm_ros.ros.convert import (
    ConversionError,
    camera_info_to_calibration,
    compressed_to_array,
    image_to_array,
    stamp_to_seconds,
)
from vlm_ros.ros.diagnostics import StageTimings

_FRAME_BUFFER = 6  # messages kept per camera stream for stamp matching
_DEPTH_WAIT_S = 0.5  # how long a colour frame waits for its depth / CameraInfo

Stream = Literal["rgb", "depth", "info"]


@dataclass
class _Stamped:
    msg: Any
    received: float  # time.monotonic() at arrival
    stamp: float


@dataclass
class Snapshot:
    """One colour message with the depth and CameraInfo matched to it (None when missing)."""

    rgb: Any
    depth: Any
    info: CameraInfo | None
    received: float


class FrameBuffer:
    def __init__(self, sync_slop_s: float, depth_expected: bool, timings: StageTimings) -> None:
        self.sync_slop_s = sync_slop_s
        self.depth_expected = depth_expected
        self._timings = timings
        self._cond = threading.Condition()
        self._streams: dict[Stream, collections.deque[_Stamped]] = {
            name: collections.deque(maxlen=_FRAME_BUFFER) for name in ("rgb", "depth", "info")}
        self._closed = False

    def add(self, stream: Stream, msg: Any) -> None:
        item = _Stamped(msg, time.monotonic(), stamp_to_seconds(msg.header.stamp))
        with self._cond:
            self._streams[stream].append(item)
            self._cond.notify_all()

    def latest_info(self) -> CameraInfo | None:
        with self._cond:
            infos = self._streams["info"]
            return infos[-1].msg if infos else None

    def wake(self) -> None:
        """Let every waiter look again now (a stop, shutdown)."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        self._closed = True
        self.wake()

    def wait_after(self, after: float, timeout_s: float, wait_for_depth: bool = True,
                   give_up: Callable[[], bool] = lambda: False) -> Snapshot | None:
        """The newest frame that arrived after ``after``, with its depth when depth is flowing;
        None after ``timeout_s``, on close, or as soon as ``give_up()`` says so.

        Depth and CameraInfo often lag colour (separate messages, published after it), so a
        colour frame without its matching depth or CameraInfo - while those streams flow - waits
        up to ``_DEPTH_WAIT_S`` for them before it is used without (tracking does not wait: the
        next frame comes soon and the tracker copes without depth).
        """
        deadline = time.monotonic() + timeout_s
        companion_deadline: float | None = None
        rgbs = self._streams["rgb"]
        with self._cond:
            while not self._closed and not give_up():
                now = time.monotonic()
                if rgbs and rgbs[-1].received > after:
                    rgb = rgbs[-1]
                    started = time.perf_counter()
                    depth, info = self._match("depth", rgb), self._match("info", rgb)
                    if companion_deadline is None:
                        companion_deadline = now + _DEPTH_WAIT_S
                    if (not wait_for_depth or now >= companion_deadline
                            or not self._missing(depth, info)):
                        self._timings.record("sync", started)
                        if wait_for_depth:  # a command's wait (tracking polls)
                            self._timings.add("frame_wait", (rgb.received - after) * 1000.0)
                            self._timings.add("depth_wait", (now - rgb.received) * 1000.0)
                        return Snapshot(rgb.msg, depth, info, rgb.received)
                elif now >= deadline:
                    return None
                self._cond.wait(max(0.001, min(deadline, companion_deadline or deadline) - now))
        return None

    def _missing(self, depth: Any, info: Any) -> bool:
        """Is a message that is flowing still missing for this colour frame?  (Each stream is a
        separate message, published one after the other: depth and CameraInfo often arrive
        just after their colour image.)"""
        return ((depth is None and self.depth_expected and bool(self._streams["depth"]))
                or (info is None and bool(self._streams["info"])))

    def _match(self, stream: Stream, rgb: _Stamped) -> Any:
        """The message of ``stream`` whose stamp is nearest the colour frame's, within slop."""
        best, best_dt = None, self.sync_slop_s
        for item in self._streams[stream]:
            dt = abs(item.stamp - rgb.stamp)
            if dt <= best_dt:
                best, best_dt = item.msg, dt
        return best


def rectification_doubt(image_topic: str, image_rectified: bool) -> str:
    """A warning when the image topic's name contradicts ``image_rectified`` (image_proc's
    names: ``image_raw`` is raw, ``image_rect``/``image_rect_color`` rectified); '' otherwise.
    Only a warning: drivers that rectify on board often still call their topic image_raw."""
    name = image_topic.rstrip("/").removesuffix("/compressed").rsplit("/", 1)[-1]
    if image_rectified and name.startswith("image_raw"):
        return (f"image_rectified is true (CameraInfo P is used) but camera/image is "
                f"{image_topic}: if that image is not rectified, set image_rectified:=false "
                f"(K) or subscribe image_rect")
    if not image_rectified and name.startswith("image_rect"):
        return (f"image_rectified is false (CameraInfo K is used) but camera/image is "
                f"{image_topic}, a rectified image: set image_rectified:=true (P)")
    return ""


def to_frame(rgb_msg: Any, depth_msg: Any, info: CameraInfo | None, depth_scale: float,
             camera_frame: str = "", image_rectified: bool = True) -> Frame:
    """Messages -> a Frame (ConversionError says what is wrong with them).

    Depth and CameraInfo are checked against the colour image by the same rules as the CLI
    (:func:`vlm_ros.core.calibration.check_camera_input`): depth registered to it, and a
    CameraInfo (P for a rectified image, K for a raw one) that describes exactly this image or
    an exact integer binning of it - never a silent rescale.
    """
    if isinstance(rgb_msg, CompressedImage):
        rgb = compressed_to_array(rgb_msg)
    else:
        rgb, _encoding = image_to_array(rgb_msg)
    if rgb.ndim != 3:
        raise ConversionError(f"camera/image must be a colour image, got shape {rgb.shape}")
    raw, encoding = (None, "")
    if depth_msg is not None:
        raw, encoding = image_to_array(depth_msg)
        if raw.ndim != 2:
            raise ConversionError(f"camera/depth must be single-channel, got {encoding}")
    try:
        intrinsics = check_camera_input(
            rgb.shape[1], rgb.shape[0], None if raw is None else raw.shape,
            None if info is None else camera_info_to_calibration(info), image_rectified,
            depth_name="camera/depth")
    except CameraInputError as exc:
        raise ConversionError(str(exc)) from None
    depth_m = None
    if raw is not None:
        try:
            depth_m = depth_to_meters(raw, encoding, depth_scale)
        except ValueError as exc:  # e.g. a colour encoding on the depth topic
            raise ConversionError(f"camera/depth: {exc}") from exc
    return Frame(rgb=rgb, depth_m=depth_m, intrinsics=intrinsics,
                 stamp=stamp_to_seconds(rgb_msg.header.stamp),
                 frame_id=camera_frame or rgb_msg.header.frame_id)
