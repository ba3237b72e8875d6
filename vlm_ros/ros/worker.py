"""The worker: the one thread that talks to the command session, and carries out its effects.

Callbacks (executor threads) only :meth:`Worker.submit`: commands and questions wait in a small
queue, a stop overtakes them (it cancels the queue, is signalled on ~/stop at once, and reaches
the session before anything else).  The worker hands the session one event at a time and does
what it answers: publish (through :mod:`outputs`), run the model on a frame newer than the
command (:mod:`model_guard`, interruptible by a stop), hand it tracked frames.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Literal

from vlm_ros.backends import BackendError
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.session import (
    Command,
    CommandSession,
    Effect,
    Ground,
    GroundRequest,
    Reply,
    SignalStop,
    TrackedUpdate,
)
from vlm_ros.core.types import Frame, GroundingResult, Instruction
from vlm_ros.ros import messages
from vlm_ros.ros.convert import ConversionError
from vlm_ros.ros.diagnostics import StageTimings
from vlm_ros.ros.frame_buffer import FrameBuffer, Snapshot, to_frame
from vlm_ros.ros.model_guard import ModelGuard, ModelUnavailable
from vlm_ros.ros.outputs import Outputs, RelevanceMap
from vlm_ros.ros.params import NodeSettings

_QUEUE_SIZE = 8
_TRACK_FRAME_WAIT_S = 0.05  # a tracking worker polls its queue at least this often
_IDLE_WAIT_S = 0.2


@dataclass
class Request:
    """What the worker takes from its queue: a command (topic or service), or a question."""

    kind: Literal["command", "ask", "describe", "robot_status", "wake"]
    command: Command
    # ~/ground waits for the reply to its command here: (result, header, goal messages).
    reply: concurrent.futures.Future | None = None


@dataclass(frozen=True)
class Progress:
    """What the worker is doing for a command now (the ~/instruct action's feedback)."""

    stage: Literal["waiting_for_frame", "grounding"]


@dataclass(frozen=True)
class Delivered:
    """A result the worker published for a command, and the session's state right after it."""

    command: Command | None  # None: the session's own (a confirmation expired, a track lost)
    result: GroundingResult
    header: Any
    goal_msgs: list[Any]
    awaiting_answer: bool  # a clarification, a typo's "did you mean" or a confirmation is open
    running_plan: bool  # a command of several steps goes on
    searching: bool = False  # an active search goes on (the next view is being turned to)
    # How the command relates to the conversation: "continues" (the session took it as an
    # answer to its open question; a robot report during a plan), "new" (a command of its own),
    # "untouched" (answered without reaching the session: busy, or dropped by a stop).
    relation: Literal["continues", "new", "untouched"] = "new"


class Worker:
    def __init__(self, session: CommandSession, frames: FrameBuffer, outputs: Outputs,
                 model: ModelGuard, timings: StageTimings, counts: Counter[str],
                 settings: NodeSettings, logger: Any) -> None:
        self.session = session
        self._pipeline: Pipeline = session.pipeline
        self._backend = session.pipeline.backend
        # A backend that states no default_score_threshold: the threshold it was built with when
        # the user set none is its default (restored when score_threshold goes back to -1).
        start = getattr(self._backend, "score_threshold", None)
        self._backend_start_threshold: float | None = (
            start if isinstance(start, float) and settings.user_score_threshold is None else None)
        self._frames = frames
        self._outputs = outputs
        self._model = model
        self._timings = timings
        self._counts = counts
        self._settings = settings
        self._log = logger
        self._inbox: queue.Queue[Request] = queue.Queue(maxsize=_QUEUE_SIZE)
        self._stops: collections.deque[Request] = collections.deque()
        self._ids = itertools.count(1)
        self._replies: dict[int, concurrent.futures.Future] = {}  # ~/ground, by command id
        self._background: dict[int, tuple[GroundRequest, concurrent.futures.Future, float]] = {}
        self._tracked_until = 0.0  # arrival time of the last frame handed to tracking
        # Told of every delivered result and of waits for a frame or the model (the action
        # server's feedback); called on the worker thread, so it must only queue.
        self.observer: Callable[[Progress | Delivered], None] | None = None
        self._memory_version = -1  # the memory's version last published (-1: never)
        self._continuing: set[int] = set()  # commands that arrived while a question/plan was open
        # What /diagnostics reports of the session (read from the timer's thread).
        self.state = {"queued_commands": 0, "following": False, "tracking": False,
                      "awaiting_confirmation": False}
        # New settings from the parameter callback, applied by the worker between two commands.
        self._settings_lock = threading.Lock()
        self._pending_settings: NodeSettings | None = None
        self._running = True
        self._thread = threading.Thread(target=self._run, name="vlm_ros_worker", daemon=True)
        self._thread.start()

    def command(self, text: str, frame: Frame | None = None, hold: bool = False) -> Command:
        """A new command (ids match ~/ground calls with their replies); ``hold``: its goals
        wait for a yes (see Command.hold)."""
        return Command(text, time.monotonic(), next(self._ids), frame, hold)

    def answer_later(self, request: Request) -> concurrent.futures.Future:
        """Submit a ~/ground command; the future gets (result, header, goal messages)."""
        request.reply = concurrent.futures.Future()
        self._replies[request.command.id] = request.reply
        self.submit(request)
        return request.reply

    def forget(self, request: Request) -> None:
        self._replies.pop(request.command.id, None)

    def reconfigure(self, settings: NodeSettings) -> None:
        """Hand over new settings; the worker applies them at its next safe point (between two
        requests), so a change never lands half-way through a command."""
        with self._settings_lock:
            self._pending_settings = settings
        try:  # an idle worker waits on its queue: wake it
            self._inbox.put_nowait(Request("wake", self.command("")))
        except queue.Full:
            pass

    def stop_all(self, text: str = "stop") -> None:
        """Cancel everything as a stop command does (lifecycle deactivate)."""
        self.submit(Request("command", self.command(text)))

    def close(self) -> None:
        self._running = False
        self._frames.close()
        self._thread.join(timeout=2.0)

    def submit(self, request: Request) -> None:
        """Queue a request for the worker; a stop overtakes and cancels whatever is queued."""
        if request.kind == "command" and self.session.is_stop(request.command.text):
            # Signal the stop now, not when the worker gets to it.  is_stop is a pure query.
            self._outputs.publish_stop()
            while True:  # nothing issued before a stop may move the robot
                try:
                    dropped = self._inbox.get_nowait()
                except queue.Empty:
                    break
                self._superseded(dropped)
            self._stops.append(request)
            self._frames.wake()
            try:  # an idle worker waits on its queue: wake it for the stop
                self._inbox.put_nowait(Request("wake", request.command))
            except queue.Full:
                pass
            return
        try:
            self._inbox.put_nowait(request)
        except queue.Full:
            self._busy(request)

    def _busy(self, request: Request) -> None:
        if request.kind == "robot_status":
            self._log.error("robot status dropped: the worker's queue is full")
            return
        if request.kind != "command":
            self._outputs.publish_answer(request.kind, request.command.text, self._backend.name,
                                        "rejected",
                                        message="busy: too many requests waiting; try again")
            return
        result = GroundingResult(status="rejected", backend=self._backend.name,
                                 message="busy: too many commands waiting; try again",
                                 instruction=Instruction(text=request.command.text[:200]))
        self._deliver(request.command, result, None, untouched=True)

    def _superseded(self, request: Request) -> None:
        if request.reply is not None:
            result = GroundingResult(status="rejected", message="superseded by stop",
                                     instruction=Instruction(text=request.command.text[:200]),
                                     backend=self._backend.name)
            self._deliver(request.command, result, None, untouched=True)

    # ------------------------------------------------------------------ the worker
    def _run(self) -> None:
        while self._running:
            try:
                self._step()
            except Exception as exc:  # the node keeps serving whatever goes wrong
                self._log.error(f"worker step failed: {exc!r}")

    def _apply_settings(self) -> None:
        """Push pending settings to the session, pipeline, safety gate, outputs and model."""
        with self._settings_lock:
            settings, self._pending_settings = self._pending_settings, None
        if settings is None:
            return
        safety_config = settings.safety_config()
        # A new Pipeline, not a mutated one: a re-grounding running on the model thread keeps
        # the configuration it started with.
        pipeline = Pipeline(self._backend, settings.pipeline_config(), self._pipeline.frames)
        self.session.pipeline = self._pipeline = pipeline
        self.session.config = settings.session_config()
        self.session.safety = safety_config
        self.session.memory.config = settings.memory_config()
        self._outputs.reconfigure(settings, safety_config)
        self._model.timeout_s = settings.model_timeout_s
        self._push_score_threshold(settings)
        self._settings = settings

    def _push_score_threshold(self, settings: NodeSettings) -> None:
        """The detector's own floor follows the parameter: the user's value, or (-1, unset) the
        backend's default - the one it started with when it states none."""
        if not isinstance(getattr(self._backend, "score_threshold", None), float):
            return
        wanted = settings.user_score_threshold
        if wanted is None:
            wanted = getattr(self._backend, "default_score_threshold", None)
        if wanted is None:
            wanted = self._backend_start_threshold
        if wanted is not None:
            self._backend.score_threshold = wanted

    def _step(self) -> None:
        self._apply_settings()
        self._apply_stops()
        self._collect_background()
        self._execute(self.session.tick(time.monotonic()))
        try:
            request = self._next_request()
            if request is None or request.kind == "wake":
                return
            self._apply_settings()  # settings that arrived while it waited apply to it
            try:
                if request.kind == "command":
                    effects = self.session.command(request.command, time.monotonic())
                    if self.session.last_command_continues:  # an answer, not a new command
                        self._continuing.add(request.command.id)
                    self._execute(effects)
                elif request.kind == "robot_status":
                    self._continuing.add(request.command.id)
                    self._robot_status(request.command.text)
                else:
                    self._answer(request)
            except Exception as exc:  # reported as this command's result
                self._log.error(f"command failed: {exc!r}")
                failed = GroundingResult(status="error", message=f"internal error: {exc}",
                                         instruction=Instruction(text=request.command.text[:200]),
                                         backend=self._backend.name)
                self._deliver(request.command, failed, None)
        finally:
            self._publish_memory()
            self.state.update(queued_commands=self._inbox.qsize(),
                               following=self.session.following,
                               tracking=self.session.tracking,
                               awaiting_confirmation=self.session.awaiting_confirmation)

    def _publish_memory(self) -> None:
        """~/memory and its markers, when the memory changed since they were last sent."""
        memory = self.session.memory
        if memory.version != self._memory_version:
            self._memory_version = memory.version
            self._outputs.publish_memory(memory, self._stamp_now())

    def _stamp_now(self) -> float:
        return self.session.stamp_clock()

    def _next_request(self) -> Request | None:
        """The next queued request; while a target is tracked, track it in between."""
        if not self.session.tracking:
            try:
                return self._inbox.get(timeout=_IDLE_WAIT_S)
            except queue.Empty:
                return None
        try:
            return self._inbox.get_nowait()
        except queue.Empty:
            pass
        try:
            self._track_frame()
        except Exception as exc:  # a tracking failure ends the track, never the worker
            self._log.error(f"tracking failed: {exc!r}")
            self._execute(self.session.tracking_failed(f"tracking failed: {exc}"))
        return None

    def _apply_stops(self) -> None:
        while self._stops:
            request = self._stops.popleft()
            self._execute(self.session.stop(request.command, time.monotonic()))
            self._log.info(
                "stop: cancelled pending commands, confirmations, tracking and follow")

    def _execute(self, effects: list[Effect]) -> None:
        """Carry out the session's effects in order; a stop that arrived meanwhile voids them."""
        for effect in effects:
            self._apply_stops()
            current = self.session.current(effect)
            if isinstance(current, Reply):
                self._deliver(current.command, current.result, current.frame)
            elif isinstance(current, TrackedUpdate):
                if self._outputs.publish_tracked(current.result, current.frame,
                                                current.send_goals):
                    self._counts["tracked_goal_updates"] += 1
            elif isinstance(current, Ground):
                self._ground(current.request)
            elif isinstance(current, SignalStop):
                self._outputs.publish_stop()

    def _deliver(self, command: Command | None, result: GroundingResult,
                 frame: Frame | None, untouched: bool = False) -> None:
        """Publish a result (goals through the gate) and answer a ~/ground call waiting on it."""
        header, goal_msgs = self._outputs.publish_result(result, frame, self._relevance(frame))
        relation: Literal["continues", "new", "untouched"] = "continues"
        if command is not None:
            self._counts["results"] += 1
            reply = self._replies.pop(command.id, None)
            if reply is not None:
                reply.set_result((result, header, goal_msgs))
            relation = ("untouched" if untouched else
                        "continues" if command.id in self._continuing else "new")
            self._continuing.discard(command.id)
        self._notify(Delivered(
            command, result, header, goal_msgs,
            awaiting_answer=self.session.awaiting_answer,
            running_plan=self.session.running_plan, searching=self.session.searching,
            relation=relation))

    def _notify(self, note: Progress | Delivered) -> None:
        observer = self.observer
        if observer is not None:
            try:
                observer(note)
            except Exception as exc:  # an observer's fault never stops the worker
                self._log.error(f"result observer failed: {exc!r}")

    def _robot_status(self, text: str) -> None:
        status = messages.parse_robot_status(text)
        if status is None:
            self._log.warning(f"ignored a robot status I cannot read: {text[:120]!r}")
            return
        succeeded, detail = status
        self._execute(self.session.robot_status(succeeded, detail, time.monotonic()))

    # ------------------------------------------------------------------ model passes
    def _ground(self, request: GroundRequest) -> None:
        """Run the model for ``request`` and hand the outcome back to the session."""
        if request.background:
            self._start_background(request)
            return
        frame, problem = request.frame, ""
        if frame is None:
            self._notify(Progress("waiting_for_frame"))
            frame, problem = self._frame_after(request.after)
        result = None
        if frame is not None:
            self._notify(Progress("grounding"))
            started = time.perf_counter()
            try:
                result = self._model.run(
                    lambda: self._pipeline.ground(request.instruction, frame,
                                                 last_target=request.last_target),
                    while_waiting=self._apply_stops)
                result.timing_ms["total"] = (time.perf_counter() - started) * 1000.0
                self._timings.add_pipeline(result.timing_ms)
            except ModelUnavailable as exc:
                problem = str(exc)
                self._log.error(problem)
        self._execute(self.session.grounded(request, result, frame, time.monotonic(), problem))

    def _frame_after(self, after: float) -> tuple[Frame | None, str]:
        """The first camera frame that arrived after ``after``, or None and why not."""
        timeout = self._settings.command_frame_timeout_s
        snapshot = self._frames.wait_after(after, timeout, give_up=lambda: bool(self._stops))
        if snapshot is None and self._stops:
            return None, "a stop arrived while waiting for a camera frame"
        if snapshot is None:
            return None, (f"no camera frame newer than the command within {timeout} s (is "
                          f"camera/image publishing?)")
        # Tracking goes on from the frame a command was grounded on, never from an older one.
        self._tracked_until = max(self._tracked_until, snapshot.received)
        try:
            return self._to_frame(snapshot), ""
        except ConversionError as exc:
            self._log.error(f"bad camera input: {exc}")
            return None, f"bad camera input: {exc}"

    def _to_frame(self, snapshot: Snapshot) -> Frame:
        started = time.perf_counter()
        frame = to_frame(snapshot.rgb, snapshot.depth, snapshot.info, self._settings.depth_scale,
                         self._settings.camera_frame, self._settings.image_rectified)
        self._timings.record("convert", started)
        return frame

    def _start_background(self, request: GroundRequest) -> None:
        frame = request.frame
        assert frame is not None  # re-groundings look at the frame the tracker saw
        try:
            future = self._model.submit(lambda: self._pipeline.ground(request.instruction, frame))
        except ModelUnavailable as exc:
            self._execute(self.session.grounded(request, None, frame, time.monotonic(),
                                                str(exc)))
            return
        self._background[request.id] = (request, future, time.monotonic())

    def _collect_background(self) -> None:
        """Hand finished (or overdue) tracking re-groundings back to the session."""
        for request_id, (request, future, submitted) in list(self._background.items()):
            result, problem = None, ""
            if future.done():
                try:
                    result = self._model.result(future)
                    self._timings.add_pipeline(result.timing_ms)
                except Exception as exc:  # noqa: BLE001 - reported, the node keeps serving
                    problem = f"backend {self._backend.name} failed while tracking: {exc}"
            elif self._model.overdue(submitted):
                self._model.mark_stuck(future, submitted)
                problem = (f"backend {self._backend.name} did not answer within "
                           f"{self._settings.model_timeout_s:g} s while tracking")
            else:
                continue
            del self._background[request_id]
            self._execute(self.session.grounded(request, result, request.frame,
                                                time.monotonic(), problem))

    def _track_frame(self) -> None:
        """Hand the tracker the next camera frame (without waiting for its depth)."""
        snapshot = self._frames.wait_after(self._tracked_until, _TRACK_FRAME_WAIT_S,
                                          wait_for_depth=False,
                                          give_up=lambda: bool(self._stops))
        if snapshot is None:
            return
        self._tracked_until = snapshot.received
        started = time.perf_counter()
        effects = self.session.frame(self._to_frame(snapshot), time.monotonic())
        self._timings.record("track", started)
        self._execute(effects)

    def _relevance(self, frame: Frame | None) -> RelevanceMap | None:
        """The backend's relevance map for the published result's phrase, when it has one."""
        if (frame is None or not self._settings.publish_relevance
                or "relevance" not in self._backend.capabilities):
            return None

        def relevance(phrase: str) -> Any:
            try:
                return self._model.run(lambda: self._backend.relevance_map(frame.rgb, phrase))
            except (BackendError, ModelUnavailable) as exc:
                self._log.warning(f"no relevance map: {exc}")
                return None

        return relevance

    def _answer(self, request: Request) -> None:
        """~/ask and ~/describe: one answer about the next camera frame, on ~/answer."""
        kind, question = request.kind, request.command.text

        def answer(status: str, **fields: Any) -> None:
            self._outputs.publish_answer(kind, question, self._backend.name, status, **fields)

        if kind == "ask" and not question.strip():
            return answer("rejected", message="empty question")
        frame, problem = self._frame_after(request.command.received)
        if frame is None:
            return answer("error", message=problem or "no camera frame")
        started = time.perf_counter()
        try:
            text = self._model.run(
                lambda: self._backend.describe(frame.rgb) if kind == "describe"
                else self._backend.ask(frame.rgb, question))
        except (BackendError, ModelUnavailable) as exc:
            return answer("error", message=str(exc))
        answer("ok", answer=text, latency_ms=(time.perf_counter() - started) * 1000.0)

