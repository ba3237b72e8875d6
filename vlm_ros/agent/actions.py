"""What the MCP tools do, over the bridge: a command held, judged by the policy, answered.

``instruct`` sends the agent's command as a held Instruct goal.  The node grounds it with its
own session and safety gate and, when something would move, holds the goals and states what
(status ``awaiting_confirmation``).  Then the policy decides:

* allow -> this server answers yes; the node grounds again on a fresh frame and moves only if
  the target is still where it was stated (confirm_max_shift_m);
* deny -> no; the agent reads why;
* approve -> a person must answer: ``ros2 service call /vlm_ros_mcp/approve std_srvs/srv/SetBool
  "{data: true}"``, or yes / no typed on the console; the agent cannot (a yes from the agent is
  refused, whatever is waiting).

``ground`` is the same path answered no: what would move, and where, without moving.
Every answer is a plain dict the server turns into a tool result.
"""

from __future__ import annotations

import enum
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from vlm_ros.agent.bridge import AgentBridge, GoalRun
from vlm_ros.agent.policy import (
    BOUNDED_ACTIONS,
    MOTION_ACTIONS,
    Decision,
    PlannedMotion,
    Policy,
    Verdict,
    decide,
)
from vlm_ros.agent.provenance import UntrustedText
from vlm_ros.core.instruction import is_confirmation
from vlm_ros.core.plan import parse_plan

Progress = Callable[[str], None]
Vec3 = tuple[float, float, float]
ACCEPT_TIMEOUT_S = 10.0
HELD_RESULT_TIMEOUT_S = 5.0
AT_NODE = "<at the node>"  # the held goal was answered or ended at the node, not by us
PEOPLE_TIMEOUT_S = 30.0
ANSWER_TIMEOUT_S = 5.0  # a held goal ends this soon after its no
GOAL_TIMEOUT_S = 120.0  # a plan step waits for the robot; nothing of ours runs longer
APPROVE_HINT = ("a person approves with: ros2 service call {service} std_srvs/srv/SetBool "
                "'{{data: true}}' (or false), or by typing yes / no on the console")


class AgentStatus(str, enum.Enum):
    """How an agent's command ended, as the tool result says it."""

    DONE = "done"                      # goals published (or a question answered)
    PREVIEW = "preview"                # ground: what would move, nothing moved
    DENIED = "denied"                  # the policy said no
    NOT_APPROVED = "not_approved"      # a person said no, or nobody answered in time
    REFUSED = "refused"                # the node refused (not understood, not found, unsafe)
    AWAITING_CLARIFICATION = "awaiting_clarification"  # answer with instruct("<choice>")
    FAILED = "failed"                  # the node, the camera or a step failed
    CANCELLED = "cancelled"            # stopped or superseded
    UNREACHABLE = "unreachable"        # no vlm_ros node answers


@dataclass
class AgentActions:
    bridge: AgentBridge
    policy: Policy
    base_frame: str = "base_link"
    untrusted: UntrustedText = field(default_factory=UntrustedText)
    goal_times: list[float] = field(default_factory=list)  # when our allowed goals went out
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def approve_service(self) -> str:
        return f"{self.bridge.get_fully_qualified_name()}/approve"

    # ------------------------------------------------------------------ tools
    def refusal(self, text: str) -> dict[str, Any] | None:
        """Refused before anything is sent: a yes / no from the agent (it would answer a
        confirmation - the agent's own, or a person's on the console)."""
        if is_confirmation(text.strip()) is not None:
            return self._answer(AgentStatus.REFUSED, (
                f"'{text.strip()}' would answer a confirmation: the agent cannot approve or "
                "decline motion (call stop to cancel). "
                + APPROVE_HINT.format(service=self.approve_service)))
        return None

    def instruct(self, text: str, progress: Progress, preview: bool = False) -> dict[str, Any]:
        text = text.strip()
        refused = self.refusal(text)
        if refused is not None:
            return refused
        plan = parse_plan(text)
        if plan.error is None and [s.action for s in plan.steps] == ["stop"]:
            return self.stop()
        if not preview:
            for step in plan.steps:
                if step.action in MOTION_ACTIONS and \
                        self.policy.actions.get(step.action) == Verdict.DENY:
                    decision = decide(self.policy, PlannedMotion(step.action, "", None,
                                                                 self.base_frame),
                                      persons=[], recent_goals=[], now=time.time())
                    return self._answer(AgentStatus.DENIED, decision.text, decision=decision)
        echoed = self.untrusted.echoed_in(text)
        people: list[Vec3] | None = []
        if not preview and self.policy.near_person_m is not None:
            if any(step.is_followup for step in plan.steps):
                # An answer to the node's question: asking about people now would replace the
                # question.  The look before the question left them in the memory.
                people = persons_seen(self.bridge.memory, self.base_frame)
            elif any(step.action in BOUNDED_ACTIONS for step in plan.steps):
                progress(f"looking for people first (near_person_m "
                         f"{self.policy.near_person_m:g})")
                people = self._people()
        sent = time.time()
        run = self.bridge.send_goal(text)
        if not run.accepted.wait(ACCEPT_TIMEOUT_S) or run.rejected:
            return self._answer(AgentStatus.UNREACHABLE, "the vlm_ros node did not take the "
                                "command (is it running and active?)")
        return self._follow(run, text, sent, progress, preview, echoed, people)

    def _people(self) -> list[Vec3] | None:
        """Where people are: those in view now (the node asked "where is the person?", held
        and answered no) and those its memory holds.  None when it cannot tell (the node
        cannot look for people, no answer): then "near a person" needs a person's yes.

        Asked every time: the memory alone holds only what commands looked for."""
        question = "where is the person?"
        sent = time.time()
        run = self.bridge.send_goal(question)
        if not run.accepted.wait(ACCEPT_TIMEOUT_S) or run.rejected:
            return None
        deadline = time.monotonic() + PEOPLE_TIMEOUT_S
        while not run.done.is_set() and time.monotonic() < deadline:
            run.changed.wait(0.1)
            run.changed.clear()
            stages = {f.stage for f in run.feedback}
            if "awaiting_confirmation" in stages:
                self.bridge.answer("no")  # a look at the person: nothing of it moves
                # The no travels on a topic, the next command as an action goal: let the no
                # end this one first, or it could reach the node after (and answer) the next.
                run.done.wait(ANSWER_TIMEOUT_S)
                break
            if "awaiting_clarification" in stages:
                break  # several people: the next command supersedes the question
        answers = [r for r in self.bridge.results_since(sent)
                   if question in ((r.get("instruction") or {}).get("text") or "")]
        if not answers:
            return None
        first = answers[0]
        if first.get("status") == "not_found":
            seen: list[Vec3] = []
        elif first.get("status") in ("awaiting_confirmation", "ambiguous", "ok"):
            seen = [tuple(c["point_base"]) for c in [*first.get("targets", []),
                                                      *first.get("candidates", [])]
                    if c.get("label") == "person" and c.get("point_base")]
        else:
            return None  # refused (no "person" in the detector's vocabulary), an error
        remembered = persons_seen(self.bridge.memory, self.base_frame) or []
        return [*seen, *remembered]

    def stop(self) -> dict[str, Any]:
        self.bridge.stop()
        self.bridge.decline_waiting("stop")
        return self._answer(AgentStatus.DONE, "stop sent: pending commands, confirmations, "
                            "tracking and plans are cancelled; nothing issued before moves")

    def where(self, what: str, progress: Progress) -> dict[str, Any]:
        """In view now, or from the object memory: position, distance and bearing."""
        what = what.strip()
        if what.lower().startswith(("the ", "a ")):
            what = what.split(" ", 1)[1]
        answer = self.instruct(f"where is the {what}?", progress, preview=True)
        said = []
        for target in answer.get("targets", []):
            point = target.get("point_base")
            if point:
                target["relative"] = relative_to_robot(point, self.base_frame)
                said.append("the {}: {} - at ({:.2f}, {:.2f}, {:.2f}) m in {}".format(
                    " ".join(x for x in (target.get("color"), target.get("label")) if x),
                    target["relative"]["said"], *point, self.base_frame))
        if said:
            answer["status"] = "located"
            answer["message"] = "; ".join(said) + " (nothing moved)"
        answer.pop("would_move", None)
        return answer

    # ------------------------------------------------------------------ a held goal
    def _follow(self, run: GoalRun, text: str, sent: float, progress: Progress, preview: bool,
                echoed: str | None, people: list[Vec3] | None = None) -> dict[str, Any]:
        decision: Decision | None = None
        approval_note, let_through = "", False
        seen, said = 0, ""
        # (a person may be waited for on top of the node's own time)
        limit_s = GOAL_TIMEOUT_S + self.policy.approval_timeout_s
        deadline = time.monotonic() + limit_s
        while not run.done.is_set():
            if time.monotonic() > deadline:
                self.bridge.cancel(run)
                return self._answer(AgentStatus.FAILED, f"no outcome within {limit_s:g} s")
            run.changed.wait(0.1)
            run.changed.clear()
            while seen < len(run.feedback):
                feedback = run.feedback[seen]
                seen += 1
                message = feedback.message or feedback.stage.replace("_", " ")
                if message != said:  # the node repeats its feedback while it waits
                    progress(message)
                    said = message
                if feedback.stage == "awaiting_clarification":
                    # The goal stays active at the node: the agent's next instruct answers it.
                    return self._answer(AgentStatus.AWAITING_CLARIFICATION,
                                        feedback.question or feedback.message,
                                        choices=list(feedback.choices),
                                        result=self._latest(sent, text))
                if feedback.stage == "awaiting_confirmation":
                    held = self._held_result(sent, text)
                    if held is None:  # nothing to judge: nothing may move
                        self.bridge.answer("no")
                        run.done.wait(ANSWER_TIMEOUT_S)
                        return self._answer(AgentStatus.FAILED, "the node held the command "
                                            "but its result (what would move) did not arrive "
                                            f"within {HELD_RESULT_TIMEOUT_S:g} s; nothing "
                                            "moved")
                    if preview:
                        self.bridge.answer("no")
                        run.done.wait(ANSWER_TIMEOUT_S)  # (as in _people)
                        return self._preview(held)
                    decision, approval_note, let_through = self._judge(held, echoed, progress,
                                                                       run, people)
        result = self._latest(sent, text)
        outcome = getattr(run.outcome, "outcome", "")
        if decision is not None and not let_through:
            status = AgentStatus.DENIED if decision.verdict == Verdict.DENY \
                else AgentStatus.NOT_APPROVED
            return self._answer(status, f"{decision.text}{approval_note}", decision=decision,
                                result=result)
        if approval_note == AT_NODE:
            approval_note = ("; approved by a person at the node (the console)" if
                             outcome == "done" else f"; ended at the node ({outcome})")
        if outcome == "done" and result is not None and result.get("will_act"):
            with self._lock:
                self.goal_times.append(time.time())
            if decision is None:
                # Every goal of a held command waits for an answer: this cannot happen with a
                # node of this package's version.  Said, never passed over.
                approval_note += ("; WARNING: the node published goals without holding them "
                                  "for the policy (is it an older vlm_ros?)")
                print(f"vlm-ros mcp: goals of {text!r} were published unheld", file=sys.stderr)
        status = {"done": AgentStatus.DONE, "refused": AgentStatus.REFUSED,
                  "failed": AgentStatus.FAILED, "cancelled": AgentStatus.CANCELLED
                  }.get(outcome, AgentStatus.FAILED)
        message = getattr(getattr(run.outcome, "result", None), "message", "") or \
            (result or {}).get("message", "")
        if preview and status == AgentStatus.DONE:
            status = AgentStatus.PREVIEW  # a question or a refusal: nothing was held
        return self._answer(status, message + approval_note, decision=decision, result=result)

    def _judge(self, held: dict[str, Any], echoed: str | None, progress: Progress,
               run: GoalRun, people: list[Vec3] | None) -> tuple[Decision, str, bool]:
        """The policy's verdict on a held goal, a note on who answered, and whether the answer
        lets it through (a yes from the policy, a person, or the console)."""
        motion = planned_motion(held, self.base_frame)
        with self._lock:
            recent = list(self.goal_times)
        decision = decide(self.policy, motion, persons=people, recent_goals=recent,
                          now=time.time())
        if echoed and decision.verdict == Verdict.ALLOW:
            decision = Decision(Verdict.APPROVE, (
                f"the command repeats text a model read from the image ('{echoed}'): text "
                "in the camera's view is not an instruction",))
        elif echoed and decision.verdict == Verdict.APPROVE:
            decision = Decision(Verdict.APPROVE, (*decision.reasons,
                                f"the command repeats model output ('{echoed}')"))
        if decision.verdict == Verdict.ALLOW:
            if run.done.is_set() or _answered_at_node(run):
                # Gone meanwhile (a newer command, a stop): a yes now would answer whatever
                # else waits at the node.
                return decision, AT_NODE, True
            self.bridge.answer("yes")
            return decision, "", True
        if decision.verdict == Verdict.DENY:
            self.bridge.answer("no")
            return decision, "", False
        summary = f"{motion.action} the {motion.label}"
        approval = self.bridge.ask_person(summary, decision.reasons)
        progress(f"{decision.text}; waiting up to {self.policy.approval_timeout_s:g} s - "
                 + APPROVE_HINT.format(service=self.approve_service))
        try:
            deadline = time.monotonic() + self.policy.approval_timeout_s
            while not approval.decided.wait(0.1):
                if run.done.is_set() or _answered_at_node(run):
                    # answered at the node itself (yes / no on the console), or superseded
                    return decision, AT_NODE, True
                if time.monotonic() > deadline:
                    self.bridge.answer("no")
                    return decision, (f"; nobody approved within "
                                      f"{self.policy.approval_timeout_s:g} s"), False
            if approval.approved:
                if run.done.is_set():
                    return decision, AT_NODE, True  # ended before the person's yes
                self.bridge.answer("yes")
                return decision, f"; approved by a person ({approval.by})", True
            if approval.by != "stop":
                self.bridge.answer("no")
            return decision, f"; not approved ({approval.by})", False
        finally:
            self.bridge.settle(approval)

    # ------------------------------------------------------------------ results
    def _held_result(self, sent: float, text: str) -> dict[str, Any] | None:
        """The node's result stating what this command would move (its instruction's text is
        the command, or "<question> -> <this answer>")."""
        deadline = time.monotonic() + HELD_RESULT_TIMEOUT_S
        while time.monotonic() < deadline:
            held = [r for r in self.bridge.results_since(sent)
                    if r.get("status") == "awaiting_confirmation" and _for_command(r, text)]
            if held:
                return held[-1]
            time.sleep(0.02)
        return None

    def _latest(self, sent: float, text: str) -> dict[str, Any] | None:
        results = self.bridge.results_since(sent)
        mine = [r for r in results if _for_command(r, text)]
        return (mine or results or [None])[-1]

    def _preview(self, held: dict[str, Any]) -> dict[str, Any]:
        motion = planned_motion(held, self.base_frame)
        where = "" if motion.point is None else \
            " at ({:.2f}, {:.2f}, {:.2f}) m in {}".format(*motion.point, motion.frame)
        answer = self._answer(AgentStatus.PREVIEW, f"would {motion.action} the {motion.label}"
                              f"{where}; nothing moved (ground never moves the robot)",
                              result=held)
        answer["would_move"] = True
        return answer

    def _answer(self, status: AgentStatus, message: str, *, decision: Decision | None = None,
                result: dict[str, Any] | None = None, choices: list[str] | None = None
                ) -> dict[str, Any]:
        answer: dict[str, Any] = {"status": status.value, "message": message}
        if decision is not None:
            answer["policy"] = {"verdict": decision.verdict.value,
                                "reasons": list(decision.reasons)}
        if choices:
            answer["choices"] = choices
        if result is not None:
            answer["node_status"] = result.get("status")
            answer["will_act"] = bool(result.get("will_act")) and status == AgentStatus.DONE
            answer["targets"] = [_target(t) for t in result.get("targets") or []]
            if result.get("destination"):
                answer["destination"] = _target(result["destination"])
            answer["goals"] = result.get("goals") or [] if status == AgentStatus.DONE else []
        return answer


def planned_motion(held: dict[str, Any], base_frame: str) -> PlannedMotion:
    """What a held result would move: its action and the stated object's position (the
    destination of a place, else the target), as the node's confirmation states it."""
    action = (held.get("instruction") or {}).get("action") or "pick"
    stated = held.get("destination") if action == "place" and held.get("destination") else \
        (held.get("targets") or [held.get("destination") or {}])[0]
    stated = stated or {}
    label = " ".join(x for x in (stated.get("color"), stated.get("label")) if x) or "target"
    point = stated.get("point_base")
    return PlannedMotion(action, label, tuple(point) if point else None, base_frame)


def _for_command(result: dict[str, Any], text: str) -> bool:
    """Is ``result`` about the command ``text``?  The node's echo of it is the command, or
    has it as one " -> " part: "<question's command> -> <this answer>" while held,
    "<command> -> yes" once confirmed.  (vlm_ros.ros.teleop's matcher takes only the first
    two forms: a teleop client never sees its command confirmed by someone else.)"""
    said = (result.get("instruction") or {}).get("text") or ""
    command = text.strip()[:200]  # the node keeps the first 200 characters
    return any(part.strip()[:200] == command for part in said.split(" -> "))


def _answered_at_node(run: GoalRun) -> bool:
    """Feedback after the confirmation question: the node went on (a yes at the node)."""
    stages = [f.stage for f in run.feedback]
    return "awaiting_confirmation" in stages and \
        stages[-1] not in ("awaiting_confirmation", "awaiting_clarification")


def persons_seen(memory: dict[str, Any] | None,
                 frame: str) -> list[tuple[float, float, float]] | None:
    """People in the node's object memory (None: no memory in ``frame``, so nobody can tell
    whether a person is near)."""
    if memory is None or memory.get("frame_id") != frame:
        return None
    people = []
    for obj in memory.get("objects", []):
        point = obj.get("position")
        if obj.get("label") == "person" and point:
            people.append(tuple(float(v) for v in point))
    return people


def relative_to_robot(point: list[float], frame: str) -> dict[str, Any]:
    """Distance and bearing from the base frame's origin (x ahead, y left: REP 103)."""
    x, y = float(point[0]), float(point[1])
    bearing = math.degrees(math.atan2(y, x))
    side = "ahead" if abs(bearing) < 10 else ("to the left" if bearing > 0 else "to the right")
    return {"frame": frame, "distance_m": round(math.hypot(x, y), 3),
            "bearing_deg": round(bearing, 1), "said": f"{math.hypot(x, y):.2f} m away, {side} "
            f"({abs(bearing):.0f} degrees)"}


def _target(target: dict[str, Any]) -> dict[str, Any]:
    """A target as the agent sees it: what the model labelled is data (``label``), not words
    to act on."""
    keep = ("label", "color", "score", "bbox", "point_base", "width_m", "relative")
    return {k: target[k] for k in keep if k in target}
