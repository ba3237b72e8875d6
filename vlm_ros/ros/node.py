"""The vlm_ros node: camera frames + a command in, a grounding result and goals out.

A thin shell around vlm_ros.core.pipeline.  Callbacks only store messages; one worker thread
converts, grounds and publishes, so the executor never blocks on the model.  Every failure becomes
a result with status "error"/"rejected" on ~/result and a log line; nothing here may crash the
node or publish a goal the core did not produce.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import math
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.executors import (
    Executor,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Empty, Header, String
from visualization_msgs.msg import MarkerArray

from vlm_ros.backends import BackendError, create_backend
from vlm_ros.core import safety
from vlm_ros.core.annotate import annotate, overlay_heatmap
from vlm_ros.core.geometry import StaticFrameResolver, depth_to_meters
from vlm_ros.core.instruction import is_confirmation, parse_instruction
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.tracking import TargetTracker, TrackerConfig
from vlm_ros.core.types import Candidate, Frame, GroundingResult, Instruction
from vlm_ros.ros import messages
from vlm_ros.ros.convert import (
    ConversionError,
    array_to_image,
    camera_info_to_intrinsics,
    compressed_to_array,
    image_to_array,
    pose_to_msg,
    stamp_to_seconds,
)
from vlm_ros.ros.frames import Tf2FrameResolver, tf2_available
from vlm_ros.ros.params import PARAMETERS, NodeSettings
from vlm_ros.ros.run import run_node

_COMMAND_QUEUE_SIZE = 8
_COMMAND_HISTORY = 100  # DDS history depth of ~/command and ~/result
_FRAME_BUFFER = 6  # messages kept per camera stream for stamp matching
_DEPTH_WAIT_S = 0.5  # how long a colour frame waits for its depth before going alone
_TRACK_FRAME_WAIT_S = 0.05  # a tracking worker polls its command queue at least this often
# Per-stage timings kept for /diagnostics (and `vlm-ros bench`): the last N samples per stage.
STAGES = ("receive", "convert", "sync", "model", "reasoning", "geometry", "track", "publish",
          # Waiting, not work: command arrival -> a newer colour frame, and that frame -> its depth.
          "frame_wait", "depth_wait")
_STAGE_SAMPLES = 300

T = TypeVar("T")
# Actions whose target is tracked for track_target_s after the grounding (follow: until stop).
_TRACKED_ACTIONS = frozenset({"pick", "look", "navigate", "find"})


class ModelUnavailable(Exception):
    """The backend did not answer in time, is still stuck, or ran out of memory."""


@dataclass
class _Stamped:
    msg: Any
    received: float  # time.monotonic() at arrival: "newer than the command" is about arrival
    stamp: float


@dataclass
class _Command:
    text: str
    received: float
    stop_epoch: int
    kind: str = "command"  # command | ask | describe


@dataclass
class _Track:
    """A grounded target followed frame to frame between model passes (vlm_ros.core.tracking).

    ``until`` is a time.monotonic() deadline, None for `follow` (tracked until stop or a new
    command).  ``regrounding`` is the model pass in flight and the frame it looks at.
    """

    instruction: Instruction
    tracker: TargetTracker
    stop_epoch: int
    until: float | None
    last_received: float  # arrival time of the last frame tracked
    last_goal_point: tuple[float, float, float] | None = None
    regrounding: tuple[concurrent.futures.Future[GroundingResult], Frame, float] | None = None


@dataclass
class _Awaiting:
    """A grounded command held back until the operator confirms it (confirm_before_motion)."""

    instruction: Instruction
    summary: str
    target_point: tuple[float, float, float] | None  # base frame, as stated to the operator
    deadline: float  # time.monotonic()
    stop_epoch: int


class VlmRosNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("vlm_ros", **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        self.settings = NodeSettings(
            {name: self.get_parameter(name).value for name in PARAMETERS})
        log = self.get_logger()

        self.backend = create_backend(self.settings.backend, **self.settings.backend_options())
        if self.settings.warmup:
            self.backend.warmup()
        self.pipeline = Pipeline(self.backend, self.settings.pipeline_config(),
                                 self._make_frame_resolver())
        self.safety = self.settings.safety_config()

        # ---- inputs: callbacks only store
        self._lock = threading.Condition()
        self._rgb: collections.deque[_Stamped] = collections.deque(maxlen=_FRAME_BUFFER)
        self._depth: collections.deque[_Stamped] = collections.deque(maxlen=_FRAME_BUFFER)
        self._infos: collections.deque[_Stamped] = collections.deque(maxlen=_FRAME_BUFFER)
        camera_qos = self._camera_qos(self.settings.image_reliability)
        # Separate callback groups: commands (and stop) never wait behind 30 Hz image traffic.
        cameras = MutuallyExclusiveCallbackGroup()
        commands = MutuallyExclusiveCallbackGroup()
        if self.settings.use_compressed:
            self.create_subscription(CompressedImage, "camera/image/compressed",
                                     self._on_rgb, camera_qos, callback_group=cameras)
        else:
            self.create_subscription(Image, "camera/image", self._on_rgb, camera_qos,
                                     callback_group=cameras)
        if self.settings.use_depth:
            self.create_subscription(Image, "camera/depth", self._on_depth, camera_qos,
                                     callback_group=cameras)
        self.create_subscription(CameraInfo, "camera/camera_info", self._on_info, camera_qos,
                                 callback_group=cameras)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        # Deep histories on the command/result path: a burst must queue in DDS, not be
        # overwritten, so every command gets an answer (the node answers overflow "busy").
        commands_qos = QoSProfile(depth=_COMMAND_HISTORY, reliability=ReliabilityPolicy.RELIABLE)
        # Keep-all on the command reader: a keep-last reader overwrites commands the executor
        # has not taken yet, and a lost command gets no answer at all; keep-all pushes back on
        # the sender instead (DDS flow control) and every command is answered, "busy" or not.
        every_command = QoSProfile(depth=_COMMAND_HISTORY, reliability=ReliabilityPolicy.RELIABLE,
                                   history=HistoryPolicy.KEEP_ALL)
        self.create_subscription(String, "~/command", self._on_command, every_command,
                                 callback_group=commands)
        self.create_subscription(String, "~/ask", self._on_ask, reliable, callback_group=commands)
        self.create_subscription(Empty, "~/describe", self._on_describe, reliable,
                                 callback_group=commands)

        # ---- outputs
        self.result_pub = self._output(String, "~/result", commands_qos)
        self.goal_pubs = {
            "navigate": self._output(PoseStamped, "goal_pose", reliable),
            "grasp": self._output(PoseStamped, "~/grasp_pose", reliable),
            "pregrasp": self._output(PoseStamped, "~/pregrasp_pose", reliable),
            "place": self._output(PoseStamped, "~/place_pose", reliable),
            "look": self._output(PoseStamped, "~/target_pose", reliable),
        }
        self.stop_pub = self._output(Empty, "~/stop", reliable)
        self.answer_pub = self._output(String, "~/answer", reliable)
        self.relevance_pub = self._output(Image, "~/relevance_image", reliable)
        self.marker_pub = self._output(MarkerArray, "~/markers", reliable)
        # Reliable: one debug image per result, not a stream, so losing it loses the answer's
        # picture (best-effort viewers can still subscribe to a reliable publisher).
        self.debug_pub = self._output(Image, "~/debug_image",
                                               QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))
        self._vision_msgs = messages.optional_module("vision_msgs.msg")
        self._interfaces = messages.optional_module("vlm_ros.msg")
        self.detections_pub = None
        if self._vision_msgs is not None:
            self.detections_pub = self._output(
                self._vision_msgs.Detection2DArray, "~/detections", reliable)
        self.interface_pub = None
        if self._interfaces is not None:
            self.interface_pub = self._output(
                self._interfaces.GroundingResult, "~/grounding", reliable)
        services = messages.optional_module("vlm_ros.srv")
        if services is not None:
            # Its own callback group: the service waits for a camera frame, which other
            # executor threads deliver meanwhile (make_executor then uses several threads).
            self.create_service(services.Ground, "~/ground", self._on_ground_service,
                                callback_group=MutuallyExclusiveCallbackGroup())
        # The service blocks its callback until a camera frame arrives, which only another
        # executor thread can deliver; without it one thread runs every (store-only) callback.
        self.needs_parallel_callbacks = services is not None

        # ---- the worker: grounding happens here, never on the executor thread
        self._pipeline_lock = threading.Lock()  # the worker and the ~/ground service share it
        self._commands: queue.Queue[_Command] = queue.Queue(maxsize=_COMMAND_QUEUE_SIZE)
        self._stop_epoch = 0
        self._track: _Track | None = None  # owned by the worker; stop only clears it
        self._stages = {name: collections.deque(maxlen=_STAGE_SAMPLES) for name in STAGES}
        self._awaiting: _Awaiting | None = None  # owned by the worker; stop only clears it
        # Model calls run on their own thread so a hung backend costs one error, not the node:
        # the worker waits at most model_timeout_s, and while the stuck call is still running
        # every further request is answered "backend unavailable" instead of queueing behind it.
        self._model = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="vlm_ros_model")
        self._stuck_call: concurrent.futures.Future[Any] | None = None
        self._stuck_since = 0.0
        self._running = True
        self._worker = threading.Thread(target=self._work, name="vlm_ros_worker", daemon=True)
        self._worker.start()
        # /diagnostics: what the node receives and how it is doing, once a second.
        self._counts = collections.Counter()
        self.diagnostics_pub = self._output(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0, self._publish_diagnostics)

        log.info(
            f"vlm_ros ready: backend={self.backend.name}, base_frame={self.settings.base_frame}, "
            f"frames={'tf2' if self._uses_tf2 else 'static camera_pose_in_base'}, "
            f"vision_msgs={'yes' if self._vision_msgs else 'no'}, "
            f"vlm_ros interfaces={'yes' if self._interfaces else 'no (bindings not built)'}")

    # ------------------------------------------------------------------ set-up helpers
    def _output(self, msg_type: Any, topic: str, qos: QoSProfile | int) -> Any:
        """A publisher without rclpy's default QoS-event handlers.

        The Python executor walks every event handler on every wake-up; with ~14 outputs they
        were most of the node's executor time under a 30 Hz RGB-D stream (py-spy, soak run).
        An incompatible-QoS mismatch is still reported: by our subscriptions for the inputs and
        by the consumer's subscription for the outputs.
        """
        return self.create_publisher(msg_type, topic, qos,
                                     event_callbacks=PublisherEventCallbacks(
                                         use_default_callbacks=False))

    @staticmethod
    def _camera_qos(reliability: str) -> QoSProfile:
        if reliability == "best_effort":
            return qos_profile_sensor_data
        if reliability == "reliable":
            return QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        raise ValueError(f"image_reliability must be best_effort or reliable, got {reliability!r}")

    def _make_frame_resolver(self) -> Any:
        self._uses_tf2 = bool(self.settings.use_tf) and tf2_available()
        if self._uses_tf2:
            return Tf2FrameResolver(self, float(self.settings.tf_timeout_s))
        if self.settings.use_tf:
            self.get_logger().warning(
                "use_tf is true but tf2_ros is not importable: using the static "
                "camera_pose_in_base extrinsics for the image frame only")
        # The static resolver knows exactly one camera frame; it is bound lazily to whatever
        # frame the images carry (or camera_frame), so other frames are refused, never guessed.
        return _LazyStaticResolver(self.settings)

    # ------------------------------------------------------------------ callbacks (store only)
    def _on_rgb(self, msg: Image | CompressedImage) -> None:
        started = time.perf_counter()
        self._counts["rgb_frames"] += 1
        with self._lock:
            self._rgb.append(_Stamped(msg, time.monotonic(), stamp_to_seconds(msg.header.stamp)))
            self._lock.notify_all()
        self._record("receive", started)

    def _on_depth(self, msg: Image) -> None:
        started = time.perf_counter()
        self._counts["depth_frames"] += 1
        with self._lock:
            self._depth.append(_Stamped(msg, time.monotonic(), stamp_to_seconds(msg.header.stamp)))
            self._lock.notify_all()
        self._record("receive", started)

    def _on_info(self, msg: CameraInfo) -> None:
        self._counts["camera_infos"] += 1
        with self._lock:
            self._infos.append(_Stamped(msg, time.monotonic(), stamp_to_seconds(msg.header.stamp)))

    def _publish_diagnostics(self) -> None:
        status = DiagnosticStatus(name="vlm_ros: grounding", hardware_id=self.backend.name)
        counts = dict(self._counts)
        if self._stuck_call is not None and not self._stuck_call.done():
            status.level = DiagnosticStatus.ERROR
            status.message = (f"backend stuck in a call for "
                              f"{time.monotonic() - self._stuck_since:.0f} s")
        elif not counts.get("rgb_frames"):
            status.level, status.message = DiagnosticStatus.WARN, "no camera frames received"
        else:
            status.level, status.message = DiagnosticStatus.OK, "receiving camera frames"
        keys = ("rgb_frames", "depth_frames", "camera_infos", "commands", "results")
        status.values = [KeyValue(key=k, value=str(counts.get(k, 0))) for k in keys]
        status.values.append(KeyValue(key="queued_commands", value=str(self._commands.qsize())))
        track = self._track
        status.values.append(KeyValue(key="following", value=str(
            track is not None and track.instruction.action == "follow")))
        status.values.append(KeyValue(key="tracking", value=str(track is not None)))
        status.values.append(KeyValue(key="tracked_goal_updates",
                                      value=str(counts.get("tracked_goal_updates", 0))))
        for stage, samples in self._stages.items():
            values = np.asarray(tuple(samples), dtype=float)  # one C-level copy: other threads append
            for key, value in (("p50", 50), ("p95", 95)):
                text = f"{np.percentile(values, value):.3f}" if values.size else "nan"
                status.values.append(KeyValue(key=f"{stage}_ms_{key}", value=text))
            status.values.append(KeyValue(key=f"{stage}_count", value=str(values.size)))
        status.values.append(KeyValue(key="awaiting_confirmation",
                                      value=str(self._awaiting is not None)))
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)

    def _on_command(self, msg: String) -> None:
        self._counts["commands"] += 1
        text = msg.data
        limit = int(self.settings.max_command_length)
        if len(text) > limit:
            self._publish_rejection(text[:80], f"command longer than {limit} characters")
            return
        if parse_instruction(text).action == "stop":
            self._stop(text)
            return
        try:
            self._commands.put_nowait(_Command(text, time.monotonic(), self._stop_epoch))
        except queue.Full:
            self._publish_rejection(text, "busy: too many commands waiting; try again",
                                    busy=True)

    def _on_ask(self, msg: String) -> None:
        self._enqueue(_Command(msg.data[:int(self.settings.max_command_length)], time.monotonic(),
                               self._stop_epoch, kind="ask"))

    def _on_describe(self, _msg: Empty) -> None:
        self._enqueue(_Command("", time.monotonic(), self._stop_epoch, kind="describe"))

    def _enqueue(self, command: _Command) -> None:
        try:
            self._commands.put_nowait(command)
        except queue.Full:
            self._publish_answer(command, status="rejected",
                                 message="busy: too many requests waiting; try again")

    def _record_pipeline(self, result: GroundingResult) -> None:
        """The pipeline's own stage timings of one model pass."""
        for stage in ("model", "reasoning", "geometry"):
            if stage in result.timing_ms:
                self._stages[stage].append(result.timing_ms[stage])

    def _record(self, stage: str, started: float) -> None:
        """Add one sample (ms since ``started``, a perf_counter value) to a stage's timings."""
        self._stages[stage].append((time.perf_counter() - started) * 1000.0)

    # ------------------------------------------------------------------ stop preempts
    def _stop(self, text: str) -> None:
        # Follow first, then the epoch: a follow tick queued in between carries the old epoch
        # (its goals are suppressed) and one queued after finds nothing to follow.
        self._track = None
        self._stop_epoch += 1
        self.pipeline.pending = None
        self._awaiting = None
        while True:  # drop every queued command: nothing issued before a stop may move the robot
            try:
                self._commands.get_nowait()
            except queue.Empty:
                break
        self.stop_pub.publish(Empty())
        result = GroundingResult(status="ok", instruction=parse_instruction(text),
                                 message="stopping: pending commands, confirmations, tracking "
                                         "and follow cancelled, no further goals",
                                 backend=self.backend.name)
        self.result_pub.publish(String(data=messages.result_to_json(result)))
        self.get_logger().info(
            "stop: cancelled pending commands, confirmations, tracking and follow")

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while self._running:
            self._expire_confirmation()
            command = self._next_command()
            if command is None:
                continue
            try:
                if command.kind in ("ask", "describe"):
                    self._answer(command)
                else:
                    self._handle(command)
            except Exception as exc:  # the node keeps serving whatever goes wrong
                self.get_logger().error(f"command failed: {exc!r}")
                try:
                    self._publish(GroundingResult(
                        status="error", message=f"internal error: {exc}",
                        instruction=Instruction(text=command.text[:200]),
                        backend=self.backend.name), None, command)
                except Exception as publish_exc:  # pragma: no cover - last line of defence
                    self.get_logger().error(f"could not report the failure: {publish_exc!r}")

    def _next_command(self) -> _Command | None:
        """The next queued command; while a target is tracked, track it in between."""
        if self._track is None:
            try:
                return self._commands.get(timeout=0.2)
            except queue.Empty:
                return None
        try:
            return self._commands.get_nowait()
        except queue.Empty:
            pass
        try:
            self._track_step()
        except Exception as exc:  # a tracking failure ends the track, never the worker
            self.get_logger().error(f"tracking failed: {exc!r}")
            self._end_track("error", f"tracking failed: {exc}")
        return None

    def _handle(self, command: _Command) -> None:
        answer = is_confirmation(command.text)
        if answer is not None:
            self._answer_confirmation(command, answer)
            return
        if self._awaiting is not None:
            self._drop_confirmation("superseded by a new command; nothing will move")
        self._track = None  # a new command replaces whatever was tracked or followed
        try:
            self._raise_if_stuck()  # parsing needs the pipeline, which the stuck call holds
        except ModelUnavailable as exc:
            return self._publish_unavailable(exc, Instruction(text=command.text[:200]), None,
                                             command)
        with self._pipeline_lock:
            instruction = self.pipeline.parse(command.text)
        if instruction.error:
            return self._reply("rejected", instruction, instruction.error, command)
        frame, problem = self._frame_after(command)
        if frame is None:
            return self._reply("error", instruction, problem, command)
        try:
            result = self._ground(instruction, frame)
        except ModelUnavailable as exc:
            return self._publish_unavailable(exc, instruction, frame, command)
        if self._needs_confirmation(result) and command.stop_epoch == self._stop_epoch:
            self._ask_confirmation(result, frame, command)
            return
        self._start_following(result, frame, command)
        self._publish(result, frame, command)

    def _frame_after(self, command: _Command) -> tuple[Frame | None, str]:
        """The first camera frame newer than ``command``, or None and why not."""
        snapshot = self._wait_for_frame(command.received)
        if snapshot is None:
            return None, (f"no camera frame newer than the command within "
                          f"{self.settings.command_frame_timeout_s} s (is camera/image "
                          f"publishing?)")
        try:
            return self._to_frame(*snapshot), ""
        except ConversionError as exc:
            self.get_logger().error(f"bad camera input: {exc}")
            return None, f"bad camera input: {exc}"

    def _reply(self, status: str, instruction: Instruction, message: str, command: _Command,
               frame: Frame | None = None) -> None:
        """A result that only says something (no target, no goal)."""
        self._publish(GroundingResult(status=status, instruction=instruction, message=message,
                                      backend=self.backend.name), frame, command)

    def _ground(self, instruction: Instruction, frame: Frame) -> GroundingResult:
        """The model pass for one instruction (ModelUnavailable when the backend cannot)."""
        started = time.perf_counter()
        result = self._run_model(lambda: self.pipeline.ground(instruction, frame))
        result.timing_ms["total"] = (time.perf_counter() - started) * 1000.0
        self._record_pipeline(result)
        self._stamp_result(result, frame)
        return result

    def _publish_unavailable(self, exc: ModelUnavailable, instruction: Instruction,
                             frame: Frame | None, command: _Command) -> None:
        self.get_logger().error(str(exc))
        self._reply("error", instruction, str(exc), command, frame)

    def _start_following(self, result: GroundingResult, frame: Frame, command: _Command) -> None:
        """Track the grounded target: `follow` until stop, other actions for track_target_s."""
        instruction = result.instruction
        self._track = None
        if (result.status != "ok" or not result.targets or instruction is None
                or command.stop_epoch != self._stop_epoch):  # a stop arrived meanwhile
            return
        action = instruction.action
        window = float(self.settings.track_target_s)
        if action != "follow" and (action not in _TRACKED_ACTIONS or window <= 0):
            return
        tracker = TargetTracker(self._tracker_config())
        target = result.targets[0]
        if not tracker.start(frame, target.bbox, target.label):
            return
        received = self._latest_received()
        self._track = _Track(instruction, tracker, command.stop_epoch,
                             None if action == "follow" else time.monotonic() + window,
                             received, target.point_base)

    def _tracker_config(self) -> TrackerConfig:
        rate = float(self.settings.follow_rate_hz)
        return TrackerConfig(reground_interval_s=1.0 / rate if rate > 0 else math.inf)

    # ------------------------------------------------------------------ tracking
    def _track_step(self) -> None:
        """One camera frame of tracking: cheap update, goals if the target moved, and a model
        re-grounding in the background when the tracker asks for one."""
        track = self._track
        assert track is not None
        if track.until is not None and time.monotonic() > track.until:
            self._track = None
            return
        self._collect_reground(track)
        snapshot = self._wait_for_frame(track.last_received, timeout_s=_TRACK_FRAME_WAIT_S,
                                        wait_for_depth=False)
        if snapshot is None or self._track is not track:
            return
        track.last_received = self._latest_received()
        started = time.perf_counter()
        frame = self._to_frame(*snapshot)
        update = track.tracker.update(frame)
        if update.lost:
            if track.regrounding is None:  # the model pass in flight may still find it
                self._end_track("not_found", f"lost the {track.tracker.label}: {update.reason}")
            return
        candidate = Candidate(0, track.tracker.label, update.confidence, update.bbox)
        result = self.pipeline.result_for_box(track.instruction, candidate, frame)
        self._record("track", started)
        if update.needs_reground and track.regrounding is None:
            self._start_reground(track, frame)
        if result.status != "ok" or not result.goals:
            return
        self._stamp_result(result, frame)
        point = result.targets[0].point_base
        moved = (point is None or track.last_goal_point is None
                 or math.dist(point, track.last_goal_point)
                 > float(self.settings.track_goal_shift_m))
        # Outside follow, a target that moves may be moving because the robot acts on it (a
        # lifted cup): its goals are re-sent only when asked for; ~/target_pose always follows.
        resend = track.instruction.action == "follow" or bool(self.settings.track_resend_goals)
        self._publish_tracked(result, frame, track, goals=moved and resend)

    def _start_reground(self, track: _Track, frame: Frame) -> None:
        instruction = track.instruction

        def reground() -> GroundingResult:
            # Only the candidates matter here: the conversation state stays as it was.
            saved = self.pipeline.pending, self.pipeline.last_target
            try:
                return self.pipeline.ground(instruction, frame)
            finally:
                self.pipeline.pending, self.pipeline.last_target = saved

        try:
            track.regrounding = (self._submit_model(reground), frame, time.monotonic())
        except ModelUnavailable as exc:
            self._end_track("error", str(exc))

    def _collect_reground(self, track: _Track) -> None:
        """Use a finished model pass: re-associate the track with its candidates."""
        if track.regrounding is None:
            return
        future, frame, submitted = track.regrounding
        if not future.done():
            limit = float(self.settings.model_timeout_s)
            if limit > 0 and time.monotonic() - submitted > limit:
                self._stuck_call, self._stuck_since = future, submitted
                self._end_track("error", f"backend {self.backend.name} did not answer within "
                                         f"{limit:g} s while tracking")
            return
        track.regrounding = None
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - reported, the node keeps serving
            self._end_track("error", f"backend {self.backend.name} failed while tracking: {exc}")
            return
        self._record_pipeline(result)
        # The tracked object among the model's candidates - not simply its top choice, which
        # may be a look-alike that scores higher on this frame.
        chosen = track.tracker.reassociate(frame, result.candidates)
        if chosen is None:
            if not track.tracker.active:
                self._end_track("not_found", f"lost the {track.tracker.label}: the model no "
                                             f"longer finds it where it was tracked")
            return  # a single missed detection: the appearance track carries on
        if self._track is track and track.instruction.action == "follow":
            # A model-confirmed goal is always re-sent (even for a still target): the robot
            # following it keeps a fresh goal.
            confirmed = self.pipeline.result_for_box(track.instruction, chosen, frame)
            self._stamp_result(confirmed, frame)
            if confirmed.status == "ok" and confirmed.goals:
                self._publish_tracked(confirmed, frame, track, goals=True)

    def _end_track(self, status: str, message: str) -> None:
        track, self._track = self._track, None
        if track is None:
            return
        result = GroundingResult(status=status, instruction=track.instruction, message=message,
                                 backend=self.backend.name)
        self.get_logger().warning(message)
        self.result_pub.publish(String(data=messages.result_to_json(result)))

    def _publish_tracked(self, result: GroundingResult, frame: Frame, track: _Track,
                         goals: bool) -> None:
        """Goals and markers for a tracked update: no ~/result per frame (results answer
        commands); goals only when the target moved or the model confirmed it."""
        if track.stop_epoch != self._stop_epoch or self._track is not track:
            return  # a stop or a new command arrived while this update was computed
        started = time.perf_counter()
        header = _header(result.frame_id, frame.stamp)
        sent = self._send_goals(result, header, goals_too=goals)
        if sent and goals:
            track.last_goal_point = result.targets[0].point_base if result.targets else None
            self._counts["tracked_goal_updates"] += 1
        if self.settings.publish_markers and result.status == "ok":
            self.marker_pub.publish(messages.result_to_markers(
                result, header, self.settings.base_frame))
        self._record("publish", started)

    # ------------------------------------------------------------------ the model, guarded
    def _raise_if_stuck(self) -> None:
        """ModelUnavailable while a call that timed out still runs (it holds the pipeline)."""
        stuck = self._stuck_call
        if stuck is None:
            return
        if not stuck.done():
            raise ModelUnavailable(
                f"backend {self.backend.name} unavailable: still inside a call that timed "
                f"out {time.monotonic() - self._stuck_since:.0f} s ago")
        self._stuck_call = None
        self.get_logger().info(f"backend {self.backend.name} answers again")

    def _submit_model(self, call: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Start ``call()`` on the model thread (ModelUnavailable while a call is stuck)."""
        self._raise_if_stuck()

        def guarded() -> T:
            with self._pipeline_lock:
                return call()

        return self._model.submit(guarded)

    def _run_model(self, call: Callable[[], T]) -> T:
        """``call()`` (a backend/pipeline call) on the model thread, with a deadline.

        Raises ModelUnavailable when the call times out, when an earlier timed-out call is
        still running, or when the model ran out of memory; BackendErrors pass through.
        """
        future = self._submit_model(call)
        limit = float(self.settings.model_timeout_s)
        try:
            return future.result(timeout=limit if limit > 0 else None)
        except concurrent.futures.TimeoutError:
            self._stuck_call, self._stuck_since = future, time.monotonic()
            raise ModelUnavailable(
                f"backend {self.backend.name} did not answer within {limit:g} s "
                f"(model_timeout_s); no goal from this command") from None
        except MemoryError as exc:
            raise ModelUnavailable(_out_of_memory(self.backend.name, exc)) from exc
        except RuntimeError as exc:  # torch reports CUDA OOM as a RuntimeError subclass
            if "out of memory" not in str(exc).lower():
                raise
            raise ModelUnavailable(_out_of_memory(self.backend.name, exc)) from exc

    # ------------------------------------------------------------------ confirm-before-motion
    def _needs_confirmation(self, result: GroundingResult) -> bool:
        if not (self.settings.confirm_before_motion and result.goals and result.instruction):
            return False
        if result.instruction.action not in set(self.settings.confirm_actions):
            return False
        # Only a plan the gate would let through is worth asking about; a refusal is final.
        now = self.get_clock().now().nanoseconds * 1e-9
        return safety.check(result, self.safety, now=now).allowed

    def _ask_confirmation(self, result: GroundingResult, frame: Frame,
                          command: _Command) -> None:
        instruction = result.instruction
        assert instruction is not None  # _needs_confirmation checked it
        stated = _stated_object(result)
        point = stated.point_base if stated is not None else None
        where = ("" if point is None else
                 f" at ({point[0]:.2f}, {point[1]:.2f}, {point[2]:.2f}) m in "
                 f"{self.settings.base_frame}")
        if instruction.action == "place":
            held = result.targets[0].label if result.targets else "what the gripper holds"
            summary = f"place the {held} on the {stated.label if stated else 'target'}{where}"
        else:
            summary = f"{instruction.action} the {stated.label if stated else 'target'}{where}"
        timeout = float(self.settings.confirm_timeout_s)
        self._awaiting = _Awaiting(instruction, summary, point, time.monotonic() + timeout,
                                   command.stop_epoch)
        result.goals = []  # nothing in this result may be taken for a goal
        result.status = "awaiting_confirmation"
        result.message = (f"I will {summary}. Say yes (confirm / 确认) to go ahead or no to "
                          f"cancel, within {timeout:g} s.")
        self._publish(result, frame, command)

    def _answer_confirmation(self, command: _Command, yes: bool) -> None:
        self._expire_confirmation()  # a yes that arrives after the deadline confirms nothing
        awaiting, self._awaiting = self._awaiting, None
        said = Instruction(text=command.text[:200])
        if awaiting is None or awaiting.stop_epoch != self._stop_epoch:
            return self._reply("rejected", said, "nothing to confirm", command)
        if not yes:
            return self._reply("ok", said, f"cancelled: will not {awaiting.summary}", command)
        # The plan was made on an older frame: ground it again on one newer than the "yes"
        # and move only if it is still the same target where the operator was told it is.
        # (The result echoes "<command> -> <answer>", as clarification answers do.)
        confirmed = dataclasses.replace(
            awaiting.instruction, text=f"{awaiting.instruction.text} -> {command.text.strip()}")
        frame, problem = self._frame_after(command)
        if frame is None:
            return self._reply("error", confirmed, f"confirmed, but {problem}; nothing will move",
                               command)
        try:
            result = self._ground(confirmed, frame)
        except ModelUnavailable as exc:
            return self._publish_unavailable(exc, confirmed, frame, command)
        why_not = _changed_since_stated(result, awaiting, float(self.settings.confirm_max_shift_m))
        if why_not:
            result.goals = []
            result.status, result.message = "rejected", f"confirmed, but {why_not}; nothing moved"
        else:
            result.message = f"confirmed: {result.message}"
            self._start_following(result, frame, command)
        self._publish(result, frame, command)

    def _drop_confirmation(self, why: str) -> None:
        awaiting, self._awaiting = self._awaiting, None
        if awaiting is None:
            return
        result = GroundingResult(status="rejected", instruction=awaiting.instruction,
                                 message=f"not confirmed ({why}): will not {awaiting.summary}",
                                 backend=self.backend.name)
        self.get_logger().warning(result.message)
        self.result_pub.publish(String(data=messages.result_to_json(result)))

    def _expire_confirmation(self) -> None:
        awaiting = self._awaiting
        if awaiting is not None and time.monotonic() > awaiting.deadline:
            self._drop_confirmation(
                f"no answer within {float(self.settings.confirm_timeout_s):g} s")

    def _answer(self, command: _Command) -> None:
        """~/ask and ~/describe: one answer about the next camera frame, on ~/answer."""
        if command.kind == "ask" and not command.text.strip():
            self._publish_answer(command, status="rejected", message="empty question")
            return
        snapshot = self._wait_for_frame(command.received)
        if snapshot is None:
            self._publish_answer(command, status="error", message="no camera frame")
            return
        try:
            frame = self._to_frame(*snapshot)
            started = time.perf_counter()
            answer = self._run_model(
                lambda: self.backend.describe(frame.rgb) if command.kind == "describe"
                else self.backend.ask(frame.rgb, command.text))
        except (ConversionError, BackendError, ModelUnavailable) as exc:
            self._publish_answer(command, status="error", message=str(exc))
            return
        self._publish_answer(command, status="ok", answer=answer,
                             latency_ms=(time.perf_counter() - started) * 1000.0)

    def _publish_answer(self, command: _Command, status: str, message: str = "",
                        answer: str = "", latency_ms: float | None = None) -> None:
        payload = {"status": status, "kind": command.kind, "question": command.text or None,
                   "answer": answer, "message": message, "backend": self.backend.name,
                   "latency_ms": None if latency_ms is None else round(latency_ms, 1)}
        self.answer_pub.publish(String(data=json.dumps(payload, ensure_ascii=False)))

    def _publish_relevance(self, result: GroundingResult, frame: Frame, header: Header) -> None:
        """The chosen target's relevance map over the image, for explainability."""
        target = result.targets[0]
        phrase = (result.instruction.target.text if result.instruction
                  and result.instruction.target else "") or target.label
        try:
            relevance = self._run_model(lambda: self.backend.relevance_map(frame.rgb, phrase))
        except (BackendError, ModelUnavailable) as exc:
            self.get_logger().warning(f"no relevance map: {exc}")
            return
        self.relevance_pub.publish(array_to_image(overlay_heatmap(frame.rgb, relevance),
                                                  "rgb8", header))

    def _stamp_result(self, result: GroundingResult, frame: Frame) -> None:
        result.backend = self.backend.name
        result.frame_id = frame.frame_id
        result.stamp = frame.stamp
        result.image_size = (frame.width, frame.height)

    def _on_ground_service(self, request: Any, response: Any) -> Any:
        """~/ground: the same grounding as ~/command, answered in the response (and published)."""
        command = _Command(request.command, time.monotonic(), self._stop_epoch)
        frame: Frame | None = None
        try:
            if request.use_latest_frame:
                snapshot = self._wait_for_frame(command.received)
                if snapshot is None:
                    raise ConversionError("no camera frame newer than the request")
                frame = self._to_frame(*snapshot)
            else:
                with self._lock:
                    info = self._infos[-1].msg if self._infos else None
                frame = self._to_frame(request.image, None, info)
            result = self._run_model(lambda: self.pipeline.handle(request.command, frame))
        except (ConversionError, ModelUnavailable) as exc:
            why = f"bad camera input: {exc}" if isinstance(exc, ConversionError) else str(exc)
            result = GroundingResult(status="error", message=why,
                                     instruction=Instruction(text=request.command[:200]),
                                     backend=self.backend.name)
        header = self._publish(result, frame, command)
        response.result = messages.result_to_interface(
            self._interfaces, result, header, [pose_to_msg(g, header.stamp) for g in result.goals])
        return response

    # ------------------------------------------------------------------ frames
    def _match(self, buffer: collections.deque[_Stamped], rgb: _Stamped) -> Any:
        """The message in ``buffer`` whose stamp is nearest the colour frame's, within slop."""
        best, best_dt = None, float(self.settings.sync_slop_s)
        for item in buffer:
            dt = abs(item.stamp - rgb.stamp)
            if dt <= best_dt:
                best, best_dt = item.msg, dt
        return best

    def _latest_received(self) -> float:
        with self._lock:
            return self._rgb[-1].received if self._rgb else 0.0

    def _wait_for_frame(self, after: float, timeout_s: float | None = None,
                        wait_for_depth: bool = True) -> tuple[Any, Any, CameraInfo | None] | None:
        """The newest frame that arrived after ``after``, with its depth when depth is flowing.

        Depth often lags colour (it is a separate, large message), so a colour frame without a
        matching depth waits up to ``_DEPTH_WAIT_S`` for one before it is used alone (tracking
        does not wait: the next frame comes soon and the tracker copes without depth).
        """
        now = time.monotonic()
        limit = float(self.settings.command_frame_timeout_s) if timeout_s is None else timeout_s
        deadline = now + limit
        depth_deadline: float | None = None
        with self._lock:
            while self._running:
                now = time.monotonic()
                if self._rgb and self._rgb[-1].received > after:
                    rgb = self._rgb[-1]
                    started = time.perf_counter()
                    depth = self._match(self._depth, rgb)
                    if (depth is not None or not wait_for_depth or not self.settings.use_depth
                            or not self._depth):
                        info = self._match(self._infos, rgb)
                        self._record("sync", started)
                        if timeout_s is None:  # a command's wait (tracking polls)
                            self._stages["frame_wait"].append((rgb.received - after) * 1000.0)
                            self._stages["depth_wait"].append((now - rgb.received) * 1000.0)
                        return rgb.msg, depth, info
                    if depth_deadline is None:
                        depth_deadline = now + _DEPTH_WAIT_S
                    if now >= depth_deadline:
                        return rgb.msg, None, self._match(self._infos, rgb)
                elif now >= deadline:
                    return None
                self._lock.wait(max(0.001, min(deadline, depth_deadline or deadline) - now))
        return None

    def _to_frame(self, rgb_msg: Any, depth_msg: Any, info: CameraInfo | None) -> Frame:
        started = time.perf_counter()
        frame = self._convert(rgb_msg, depth_msg, info)
        self._record("convert", started)
        return frame

    def _convert(self, rgb_msg: Any, depth_msg: Any, info: CameraInfo | None) -> Frame:
        if isinstance(rgb_msg, CompressedImage):
            rgb = compressed_to_array(rgb_msg)
        else:
            rgb, _encoding = image_to_array(rgb_msg)
        if rgb.ndim != 3:
            raise ConversionError(f"camera/image must be a colour image, got shape {rgb.shape}")
        depth_m = None
        if depth_msg is not None:
            raw, encoding = image_to_array(depth_msg)
            if raw.ndim != 2:
                raise ConversionError(f"camera/depth must be single-channel, got {encoding}")
            if abs(raw.shape[1] / raw.shape[0] - rgb.shape[1] / rgb.shape[0]) > 0.02:
                # Half-resolution depth is fine (it is scaled); another aspect ratio means the
                # depth is not registered to this colour image.
                raise ConversionError(
                    f"camera/depth is {raw.shape[1]}x{raw.shape[0]}, not registered to the "
                    f"{rgb.shape[1]}x{rgb.shape[0]} colour image (aspect ratios differ)")
            try:
                depth_m = depth_to_meters(raw, encoding, float(self.settings.depth_scale))
            except ValueError as exc:  # e.g. a colour encoding on the depth topic
                raise ConversionError(f"camera/depth: {exc}") from exc
        intrinsics = None
        if info is not None:
            intrinsics = camera_info_to_intrinsics(info)
            if (intrinsics.width, intrinsics.height) != (rgb.shape[1], rgb.shape[0]):
                intrinsics = intrinsics.scaled_to(rgb.shape[1], rgb.shape[0])
        frame_id = self.settings.camera_frame or rgb_msg.header.frame_id
        return Frame(rgb=rgb, depth_m=depth_m, intrinsics=intrinsics,
                     stamp=stamp_to_seconds(rgb_msg.header.stamp), frame_id=frame_id)

    # ------------------------------------------------------------------ publishing
    def _publish_rejection(self, text: str, reason: str, busy: bool = False) -> None:
        result = GroundingResult(status="rejected", instruction=Instruction(text=text),
                                 message=reason, backend=self.backend.name)
        if busy:
            # A flood produces one "busy" per extra command: log the overload, not each one
            # (every command still gets its own result below).
            self.get_logger().warning(f"rejected command: {reason}", throttle_duration_sec=1.0)
        else:
            self.get_logger().warning(f"rejected command: {reason}")
        self.result_pub.publish(String(data=messages.result_to_json(result)))

    def _publish(self, result: GroundingResult, frame: Frame | None,
                 command: _Command) -> Header:
        if command.stop_epoch != self._stop_epoch:
            # A stop arrived while this command was being grounded: no goal may leave.
            result.goals = []
            result.status = "rejected"
            result.message = "superseded by stop"
        started = time.perf_counter()
        header = _header(result.frame_id, frame.stamp if frame is not None else None)
        goal_msgs = self._send_goals(result, header)
        self.result_pub.publish(String(data=messages.result_to_json(result)))
        self._counts["results"] += 1
        if self.settings.publish_markers and result.status == "ok":
            self.marker_pub.publish(messages.result_to_markers(
                result, header, self.settings.base_frame))
        if self.detections_pub is not None:
            self.detections_pub.publish(messages.result_to_detection2d_array(
                self._vision_msgs, result, header))
        if self.interface_pub is not None:
            self.interface_pub.publish(messages.result_to_interface(
                self._interfaces, result, header, goal_msgs))
        if self.settings.publish_debug_image and frame is not None:
            self.debug_pub.publish(array_to_image(annotate(frame.rgb, result), "rgb8", header))
        if (self.settings.publish_relevance and frame is not None and result.targets
                and "relevance" in self.backend.capabilities and command.kind == "command"):
            self._publish_relevance(result, frame, header)
        said = result.instruction.text if result.instruction else ""
        line = f"[{result.status}] {said[:80]!r}: {result.message}"
        # rclpy refuses one call site logging at two severities, hence two calls.
        if result.status == "ok":
            self.get_logger().info(line)
        else:
            self.get_logger().warning(line)
        self._record("publish", started)
        return header

    def _send_goals(self, result: GroundingResult, header: Header,
                    goals_too: bool = True) -> list[PoseStamped]:
        """The only code that touches the goal publishers: every goal passes the safety gate.

        A refusal empties ``result.goals`` and says why (status "rejected"); tests check that no
        other method publishes on a goal publisher.  ``goals_too=False`` (a tracked target that
        has not moved) passes the same gate but sends only ~/target_pose.
        """
        if not result.goals:
            return []
        now = self.get_clock().now().nanoseconds * 1e-9
        decision = safety.check(result, self.safety, now=now)
        if not decision.allowed:
            self.get_logger().warning(f"safety gate refused goals: {decision.reason}")
            safety.apply(result, decision)
            return []
        goal_msgs = [pose_to_msg(goal, header.stamp) for goal in result.goals]
        for goal, msg in zip(result.goals, goal_msgs):
            publisher = self.goal_pubs.get(goal.kind)
            if publisher is not None and goals_too:
                publisher.publish(msg)
        target = result.targets[0] if result.targets else None
        if (target is not None and target.point_base is not None
                and "look" not in {g.kind for g in result.goals}):
            self.goal_pubs["look"].publish(_target_pose(goal_msgs[0], target.point_base))
        return goal_msgs

    def destroy_node(self) -> None:
        # Also called by rclpy's shutdown for a node whose __init__ failed half-way (a backend
        # that cannot load): only stop what was started.
        self._running = False
        lock = getattr(self, "_lock", None)
        if lock is not None:
            with lock:
                lock.notify_all()
        worker = getattr(self, "_worker", None)
        if worker is not None:
            worker.join(timeout=2.0)
        model = getattr(self, "_model", None)
        if model is not None:  # a stuck call must not block exit
            model.shutdown(wait=False, cancel_futures=True)
        super().destroy_node()


def _header(frame_id: str, stamp: float | None) -> Header:
    header = Header()
    header.frame_id = frame_id
    if stamp is not None:
        sec = int(stamp)
        header.stamp.sec, header.stamp.nanosec = sec, int((stamp - sec) * 1e9)
    return header


def _out_of_memory(backend: str, exc: BaseException) -> str:
    return (f"backend {backend} ran out of memory ({exc}); no goal from this command (a smaller "
            f"model, dtype or image size, or device:=cpu, avoids it)")


def _stated_object(result: GroundingResult) -> Candidate | None:
    """The object whose position a confirmation states: the destination of a place, else the
    target."""
    action = result.instruction.action if result.instruction else None
    if action == "place" and result.destination is not None:
        return result.destination
    return result.targets[0] if result.targets else result.destination


def _changed_since_stated(result: GroundingResult, awaiting: _Awaiting, max_shift_m: float) -> str:
    """Why a confirmed plan no longer holds on the fresh frame ('' when it still does)."""
    if result.status != "ok" or not result.goals:
        return f"the target is no longer found as stated ({result.status}: {result.message})"
    stated = _stated_object(result)
    point = stated.point_base if stated is not None else None
    if awaiting.target_point is None or point is None:
        return ""
    shift = math.dist(point, awaiting.target_point)
    if shift > max_shift_m:
        return (f"the target moved {shift:.2f} m since I asked (more than "
                f"confirm_max_shift_m = {max_shift_m:g} m); say the command again")
    return ""


def _target_pose(goal_msg: PoseStamped, point_base: tuple[float, float, float]) -> PoseStamped:
    """~/target_pose: the target's own position (grasp/navigate goals are offset from it)."""
    msg = PoseStamped()
    msg.header = goal_msg.header
    x, y, z = point_base
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = x, y, z
    msg.pose.orientation.w = 1.0
    return msg


class _LazyStaticResolver:
    """StaticFrameResolver bound to the first camera frame it is asked about."""

    def __init__(self, settings: NodeSettings) -> None:
        self._settings = settings
        self._extrinsics = settings.camera_extrinsics()
        self._resolver: StaticFrameResolver | None = None

    def lookup(self, target_frame: str, source_frame: str, stamp: float) -> Any:
        camera_frame = self._settings.camera_frame or source_frame
        if not camera_frame:
            return None
        if self._resolver is None:
            self._resolver = StaticFrameResolver(self._settings.base_frame, camera_frame,
                                                 self._extrinsics)
        return self._resolver.lookup(target_frame, source_frame, stamp)


def make_executor(node: VlmRosNode) -> Executor:
    """One thread for the store-only callbacks; more only when a callback blocks (~/ground).

    The Python MultiThreadedExecutor costs far more per callback (futures, a thread pool, more
    wait-set rebuilds) and its threads fight the worker for the GIL: on a 2-core CPU under a
    30 Hz RGB-D stream it could not take 50 commands/s off DDS (vlm-ros soak).
    """
    if node.needs_parallel_callbacks:
        return MultiThreadedExecutor(num_threads=3)
    return SingleThreadedExecutor()


def main(args: list[str] | None = None) -> None:
    run_node(VlmRosNode, make_executor, (BackendError,), "vlm_ros: backend failed to load", args)


if __name__ == "__main__":
    main()
