"""~/instruct: one command as an action goal (vlm_ros/action/Instruct), for executives.

The goal's command goes through the same worker and session as ~/command and ~/ground.  Every
result the worker delivers from then on belongs to the goal's conversation:

* a clarification, a "did you mean" or a confirmation keeps the goal active and is sent as
  feedback with its question and choices; the client answers on ~/command, as a person would;
* one step of several, sent and awaiting the robot's report on robot_status, is feedback too;
* anything else ends the goal: ``done`` (goals published), ``refused`` (not found, not
  understood, failed the safety gate, declined), ``failed`` (backend, camera, plan step) or
  ``cancelled`` (a stop, from this goal's cancel or from anyone).

A cancel request is a stop: it overtakes the worker's queue and voids everything issued before
it.  One goal is active at a time; a newer goal, a command of its own on ~/command (the session
says it was not an answer) or a stop ends it, and another command's result never becomes its.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from std_msgs.msg import Header

from vlm_ros.core.types import Frame, GroundingResult, Instruction
from vlm_ros.ros import messages
from vlm_ros.ros.convert import ConversionError
from vlm_ros.ros.frame_buffer import FrameBuffer, to_frame
from vlm_ros.ros.outputs import Outputs
from vlm_ros.ros.params import NodeSettings
from vlm_ros.ros.worker import Delivered, Progress, Request, Worker

Outcome = Literal["done", "refused", "failed", "cancelled"]
_POLL_S = 0.05  # how often an executing goal looks at its cancel flag


def outcome_of(result: GroundingResult) -> Outcome | None:
    """The goal's end for a delivered result, or None when the conversation goes on.

    ``awaiting_answer`` / ``running_plan`` results are decided by the caller (they depend on
    the session's state at delivery); this is the rest.
    """
    action = result.instruction.action if result.instruction is not None else None
    if action == "stop" or result.message == "superseded by stop":
        return "cancelled"
    if result.status == "ok":
        return "done" if result.goals else "refused"  # ok without goals: declined, nothing sent
    if result.status == "error":
        return "failed"
    return "refused"  # not_found, rejected, an ambiguity nobody can answer any more


@dataclass
class _ActiveGoal:
    first_command_id: int
    notes: queue.Queue = field(default_factory=queue.Queue)
    superseded: threading.Event = field(default_factory=threading.Event)
    ended_why: str = "superseded by a new goal"
    waiting: bool = False  # a question or a plan step of this goal is open

    def end(self, why: str) -> None:
        if not self.superseded.is_set():  # the first reason stands (deactivate, then its stop)
            self.ended_why = why
        self.superseded.set()


class InstructServer:
    """The ~/instruct action server of a vlm_ros node."""

    def __init__(self, node: Node, action_type: Any, interfaces: Any, worker: Worker,
                 frames: FrameBuffer, outputs: Outputs, settings: Callable[[], NodeSettings],
                 backend_name: str, accepting: Callable[[], bool] = lambda: True,
                 name: str = "~/instruct") -> None:
        self._node = node
        self._action_type = action_type
        self._interfaces = interfaces
        self._worker = worker
        self._frames = frames
        self._outputs = outputs
        self._settings = settings
        self._backend_name = backend_name
        self._accepting = accepting  # the node is active
        self._lock = threading.Lock()
        self._active: _ActiveGoal | None = None
        worker.observer = self._observe
        # Reentrant: a cancel request must be taken while the goal's execute callback waits.
        self._server = ActionServer(
            node, action_type, name, execute_callback=self._execute,
            goal_callback=self._on_goal, cancel_callback=lambda _handle: CancelResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup())

    def end_active(self, why: str) -> None:
        """End the running goal, if any (aborted, outcome cancelled, ``why`` in its result)."""
        with self._lock:
            if self._active is not None:
                self._active.end(why)

    def destroy(self) -> None:
        self._worker.observer = None
        self.end_active("the node is shutting down")
        # Let the running goal answer its client before the server goes (it polls every 50 ms).
        deadline = time.monotonic() + 1.0
        while self._active is not None and time.monotonic() < deadline:
            time.sleep(_POLL_S)
        self._server.destroy()

    # ------------------------------------------------------------------ callbacks
    def _on_goal(self, goal: Any) -> GoalResponse:
        if not self._accepting():
            return GoalResponse.REJECT  # an inactive node takes no goal (lifecycle)
        if len(goal.command) > self._settings().max_command_length * 4:
            return GoalResponse.REJECT  # absurd sizes never reach the worker's queue
        return GoalResponse.ACCEPT

    def _observe(self, note: Progress | Delivered) -> None:
        """Worker thread: route a note to the active goal (only queues)."""
        with self._lock:
            goal = self._active
            if goal is None:
                return
            if isinstance(note, Delivered) and not self._belongs(goal, note):
                return
            goal.notes.put(note)

    @staticmethod
    def _belongs(goal: _ActiveGoal, note: Delivered) -> bool:
        """Is ``note`` part of this goal's conversation?  Another command ends the goal."""
        if note.command is None:  # the session's own: a confirmation expired, a track lost
            return goal.waiting
        if note.command.id == goal.first_command_id:
            return True
        if note.command.id < goal.first_command_id or note.relation == "untouched":
            return False  # sent before this goal, or never reached the session (busy)
        if note.relation == "continues":
            return True  # an answer to its question, the robot's report on its plan
        action = note.result.instruction.action if note.result.instruction else None
        goal.end("stopped" if action == "stop" else
                 f"superseded by another command: {note.command.text[:80]!r}")
        return False

    def _execute(self, handle: Any) -> Any:
        request = handle.request
        image: Frame | None = None
        if not request.use_latest_frame:
            try:
                settings = self._settings()
                image = to_frame(request.image, None, self._frames.latest_info(),
                                 settings.depth_scale, settings.camera_frame)
            except ConversionError as exc:
                failed = GroundingResult(status="error", message=f"bad camera input: {exc}",
                                         instruction=Instruction(text=request.command[:200]),
                                         backend=self._backend_name)
                header, goal_msgs = self._outputs.publish_result(failed, None)
                handle.abort()
                return self._result("failed", failed, header, goal_msgs)

        command = self._worker.command(request.command, image,
                                       hold=bool(request.hold_for_confirmation))
        goal = _ActiveGoal(command.id)
        with self._lock:
            previous, self._active = self._active, goal
        if previous is not None:
            previous.end("superseded by a new goal")
        self._feedback(handle, "queued", message="waiting for the node's worker")
        self._worker.submit(Request("command", command))
        try:
            return self._follow(handle, goal)
        finally:
            with self._lock:
                if self._active is goal:
                    self._active = None

    # ------------------------------------------------------------------ the conversation
    def _follow(self, handle: Any, goal: _ActiveGoal) -> Any:
        last: Delivered | None = None
        while True:
            if handle.is_cancel_requested:
                # A stop: signalled on ~/stop at once, cancels the queue, voids what was issued.
                self._worker.submit(Request("command", self._worker.command("stop")))
                handle.canceled()
                return self._ended("cancelled", last, "cancelled: stopped")
            if goal.superseded.is_set():
                handle.abort()
                return self._ended("cancelled", last, goal.ended_why)
            if not handle.is_active:
                return self._ended("cancelled", last, "the goal is no longer active")
            try:
                note = goal.notes.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if goal.superseded.is_set():  # ended meanwhile: its reason, not the stop it causes
                continue
            if isinstance(note, Progress):
                self._feedback(handle, note.stage, result=last.result if last else None)
                continue
            last = note
            result = note.result
            if note.awaiting_answer and result.status in ("ambiguous", "awaiting_confirmation"):
                stage = ("awaiting_confirmation" if result.status == "awaiting_confirmation"
                         else "awaiting_clarification")
                goal.waiting = True
                self._feedback(handle, stage, result=result,
                               question=result.clarification or result.message)
                continue
            if note.searching and result.status == "searching":
                goal.waiting = True
                self._feedback(handle, "searching", result=result, message=result.message)
                continue
            if note.running_plan and result.status == "ok" and result.step < len(result.steps):
                goal.waiting = True
                self._feedback(handle, "step_done", result=result,
                               message=f"step {result.step} of {len(result.steps)} sent; "
                                       f"waiting for robot_status")
                continue
            if note.awaiting_answer and result.status != "ok":
                # An answer that was not understood: the question is still open.
                self._feedback(handle, "awaiting_clarification", result=result,
                               question=result.clarification or "", message=result.message)
                continue
            outcome = outcome_of(result)
            assert outcome is not None
            if outcome == "done":
                handle.succeed()
            else:
                handle.abort()
            return self._result(outcome, result, note.header, note.goal_msgs)

    def _ended(self, outcome: Outcome, last: Delivered | None, message: str) -> Any:
        if last is not None:
            ended = GroundingResult(status="rejected", message=message,
                                    instruction=last.result.instruction,
                                    backend=self._backend_name)
            return self._result(outcome, ended, last.header, [])
        return self._result(outcome, GroundingResult(status="rejected", message=message,
                                                     backend=self._backend_name), None, [])

    def _result(self, outcome: Outcome, result: GroundingResult, header: Any,
                goal_msgs: list[Any]) -> Any:
        response = self._action_type.Result()
        response.outcome = outcome
        if header is None:
            header = Header(frame_id=result.frame_id)
        response.result = messages.result_to_interface(self._interfaces, result, header,
                                                       goal_msgs)
        return response

    def _feedback(self, handle: Any, stage: str, result: GroundingResult | None = None,
                  question: str = "", message: str = "") -> None:
        feedback = self._action_type.Feedback()
        feedback.stage = stage
        feedback.question = question
        if result is not None:
            feedback.choices = list(result.choices) if question else []
            feedback.step = result.step
            feedback.step_count = len(result.steps) if result.steps else 0
            feedback.message = message or result.message
        else:
            feedback.message = message
        handle.publish_feedback(feedback)
