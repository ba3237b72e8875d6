"""The command session: what the robot was asked, what it answers, and when it may move.

ROS-free and single-threaded by design.  Its owner (the node's worker thread, the CLI, a test)
hands it events - a command, a grounding that finished, a camera frame while a target is
tracked, a clock tick, a stop - and carries out the typed effects it returns:

* :class:`Reply` - publish this result.  Every result the session answers with has passed the
  safety gate (:func:`vlm_ros.core.safety.judge`): an ``ok`` is an answer the robot may act on;
  a pick of a person is refused here, with or without goals.  The node's outputs check the
  goals once more where they leave (the frame's age then, ``goal_frame``);
* :class:`Ground` - run the model for this request on a camera frame newer than the command
  (or on the frame the request carries) and hand the outcome back to :meth:`grounded`;
* :class:`TrackedUpdate` - a tracked target's new position, with goals only when it says so.

The session owns the dialogue state: the command awaiting a clarification, the last target
("put it in the bowl"), the plan awaiting a yes, the tracked target, and the stop epoch that
voids every effect issued before a stop.  It never waits, sleeps, reads a clock or touches a
thread: time comes in with the events (``now``, a monotonic clock for deadlines) and from the
injected ``stamp_clock`` (the clock of frame stamps, for the safety gate's frame-age check).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Union

from vlm_ros.core import lexicon as lx
from vlm_ros.core import safety
from vlm_ros.core.instruction import is_confirmation, merge_followup, parse_instruction
from vlm_ros.core.memory import ObjectMemory, View
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.plan import Plan, parse_plan, unjudged_words
from vlm_ros.core.recall import SearchConfig, SearchRun, goal_problem, recall
from vlm_ros.core.safety import SafetyConfig
from vlm_ros.core.tracking import TargetTracker, TrackerConfig
from vlm_ros.core.types import (
    Action,
    Candidate,
    Frame,
    GroundingResult,
    Instruction,
    ObjectQuery,
    Status,
    Vec3,
)
from vlm_ros.core.vocabulary import labels_for_noun

# Actions whose target is tracked for track_target_s after the grounding (follow: until stop).
TRACKED_ACTIONS: frozenset[Action] = frozenset({"pick", "look", "navigate", "find"})
# Steps of a plan that the robot carries out (the next step waits for its robot status); look and
# find are done when their goal is published.
ROBOT_ACTIONS: frozenset[Action] = frozenset({"pick", "place", "navigate"})
STOP_MESSAGE = ("stopping: pending commands, confirmations, tracking and follow cancelled, "
                "no further goals")

GroundPurpose = Literal["command", "confirmation", "reground", "search"]


@dataclass(frozen=True)
class SessionConfig:
    max_command_length: int = 1000
    confirm_before_motion: bool = False
    confirm_actions: frozenset[Action] = frozenset({"pick", "place", "navigate", "follow"})
    confirm_timeout_s: float = 15.0
    confirm_max_shift_m: float = 0.10
    track_target_s: float = 3.0  # 0 = no tracking after pick/look/navigate/find
    track_resend_goals: bool = False
    track_goal_shift_m: float = 0.02
    reground_interval_s: float = 0.5  # model re-grounding while tracking; inf = tracker's own
    base_frame: str = "base_link"  # named in confirmation questions
    step_timeout_s: float = 60.0  # a plan's step must be reported done within this
    # A goal from the object memory needs a sighting at most this old (s).
    memory_max_age_s: float = 120.0
    search: SearchConfig = field(default_factory=SearchConfig)  # "find X" beyond the view


# ------------------------------------------------------------------------------------ events
@dataclass(frozen=True)
class Command:
    """Text from an operator.  ``received`` is its arrival on the owner's monotonic clock (the
    grounding frame must arrive after it); ``frame`` grounds on that image instead of the next
    camera frame (a ~/ground request carrying an image); ``id`` lets the owner match replies."""

    text: str
    received: float = 0.0
    id: int = 0
    frame: Frame | None = None
    # The sender asks that nothing of this command moves the robot without a yes on ~/command
    # (an agent's command, checked against its policy before anyone answers): every goal is
    # held as by confirm_before_motion, a plan of several steps or several objects is refused
    # (one step at a time, each held), and an answer to its question is held too.
    hold: bool = False


@dataclass(frozen=True)
class GroundRequest:
    """One model pass the session needs.  ``after``: ground on a frame that arrived after this
    (monotonic) time, unless ``frame`` is given.  ``background`` requests (tracking re-groundings)
    must not hold up the owner's next event."""

    id: int
    command: Command | None
    instruction: Instruction
    purpose: GroundPurpose
    epoch: int
    frame: Frame | None = None
    last_target: Candidate | None = None  # what "it" refers to
    parse_ms: float | None = None
    step: int | None = None  # the plan step (0-based) this grounds
    stated_point: Vec3 | None = None  # confirmation: where the operator was told the target is

    @property
    def after(self) -> float:
        return self.command.received if self.command is not None else 0.0

    @property
    def background(self) -> bool:
        return self.purpose == "reground"


# ----------------------------------------------------------------------------------- effects
@dataclass(frozen=True)
class Reply:
    """Publish ``result`` (on ~/result; its goals, if any, through the safety gate).
    ``command`` is the command it answers: None for a lost track or an expired confirmation."""

    result: GroundingResult
    command: Command | None
    frame: Frame | None
    epoch: int


@dataclass(frozen=True)
class Ground:
    request: GroundRequest

    @property
    def epoch(self) -> int:
        return self.request.epoch


@dataclass(frozen=True)
class TrackedUpdate:
    """A tracked target on a new frame: ~/target_pose and markers; goals only if ``send_goals``.
    No ~/result: results answer commands."""

    result: GroundingResult
    frame: Frame
    send_goals: bool
    epoch: int


@dataclass(frozen=True)
class SignalStop:
    """Tell the robot to stop now (~/stop): a plan's stop step."""

    epoch: int


Effect = Union[Reply, Ground, TrackedUpdate, SignalStop]


# ----------------------------------------------------------------------------- state records
@dataclass
class _Track:
    """A grounded target followed frame to frame between model passes.  ``until`` is a
    monotonic deadline, None for follow (tracked until stop or a new command)."""

    instruction: Instruction
    tracker: TargetTracker
    until: float | None
    last_goal_point: Vec3 | None = None
    regrounding: int | None = None  # the id of the model pass in flight


@dataclass
class _PlanRun:
    """A command of several steps, carried out one at a time.  ``deadline``: while the robot
    carries out step ``index`` (monotonic); None while that step is being grounded or asked
    about."""

    steps: list[Instruction]
    command: Command
    index: int = 0
    deadline: float | None = None

    def label(self, index: int | None = None) -> str:
        k = self.index if index is None else index
        return f"step {k + 1} of {len(self.steps)} ({self.steps[k].text})"


@dataclass
class _Awaiting:
    """A grounded command held back until the operator confirms it."""

    instruction: Instruction
    summary: str
    target_point: Vec3 | None  # base frame, as stated to the operator
    deadline: float


@dataclass
class CommandSession:
    """One conversation with one robot.  See the module docstring for the event/effect contract.

    Not thread-safe by design: exactly one thread hands it events.
    """

    pipeline: Pipeline
    config: SessionConfig = field(default_factory=SessionConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    stamp_clock: Callable[[], float] = time.time
    # Text -> Plan: the grammar parser, or a language model's (vlm_ros.backends.llm_parser)
    # behind the same meaning representation.
    parse: Callable[[str], Plan] = parse_plan
    epoch: int = 0  # bumped by every stop: effects from an older epoch are void
    pending: Instruction | None = None  # the command awaiting a clarification answer
    last_target: Candidate | None = None
    _awaiting: _Awaiting | None = None
    _track: _Track | None = None
    _plan: _PlanRun | None = None
    _suggested: str | None = None  # a typo's correction, awaiting yes / no
    _question_held: bool = False  # the open question came from a held command: so is its answer
    # Did the last command() answer the open question (a clarification, a "did you mean", a
    # confirmation) rather than start a command of its own?  Owners that follow one
    # conversation (the ~/instruct action) read it right after command().
    last_command_continues: bool = False
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _run_clock: Callable[[], float] | None = None  # run()'s clock of stamps, while it runs
    # What the robot has seen, where (base_frame), and when (vlm_ros/core/memory.py).
    memory: ObjectMemory = field(default_factory=ObjectMemory)
    _search: SearchRun | None = None

    # ------------------------------------------------------------------------------ queries
    def is_stop(self, text: str) -> bool:
        """Does ``text`` ask to stop?  Owners check this on arrival, so a stop overtakes
        whatever is queued and can be signalled before the session sees it."""
        if not isinstance(text, str) or len(text) > self.config.max_command_length:
            return False
        plan = parse_plan(text)  # always the grammar: a stop must not wait on a server
        return plan.error is None and [s.action for s in plan.steps] == ["stop"]

    @property
    def tracking(self) -> bool:
        return self._track is not None

    @property
    def following(self) -> bool:
        return self._track is not None and self._track.instruction.action == "follow"

    @property
    def awaiting_confirmation(self) -> bool:
        return self._awaiting is not None

    @property
    def running_plan(self) -> bool:
        return self._plan is not None

    @property
    def searching(self) -> bool:
        return self._search is not None

    @property
    def awaiting_answer(self) -> bool:
        """A question is open: which one (clarification), did you mean (typo), or yes / no."""
        return self.pending is not None or self._suggested is not None or \
            self._awaiting is not None

    def current(self, effect: Effect) -> Effect | None:
        """``effect`` as it may still be carried out now: effects issued before the latest stop
        are void - a reply says it was superseded (and carries no goal), the rest is dropped."""
        if effect.epoch == self.epoch:
            return effect
        if isinstance(effect, Reply) and effect.command is not None:
            result = dataclasses.replace(effect.result, goals=[], status="rejected",
                                         message="superseded by stop")
            return dataclasses.replace(effect, result=result, epoch=self.epoch)
        if isinstance(effect, Ground) and effect.request.command is not None:
            request = effect.request  # a command that never reached the model still gets a reply
            return self._reply("rejected", request.instruction, "superseded by stop",
                               request.command)
        return None

    # ------------------------------------------------------------------------------- events
    def command(self, command: Command, now: float) -> list[Effect]:
        """A command (or an answer to a question the session asked)."""
        text = command.text
        limit = self.config.max_command_length
        if not isinstance(text, str) or len(text) > limit:
            return [self._reply("rejected", Instruction(text=str(text)[:80]),
                                f"command longer than {limit} characters", command)]
        started = time.perf_counter()
        self.last_command_continues = False
        plan = self._parse(text)
        if self._question_held and plan.is_followup and self.pending is not None:
            command = dataclasses.replace(command, hold=True)  # it answers a held question
        if plan.error is None and [s.action for s in plan.steps] == ["stop"]:
            return self.stop(command, now)
        answer = is_confirmation(text)
        if answer is not None:
            self.last_command_continues = self._awaiting is not None or \
                self._suggested is not None
            if self._awaiting is None and self._suggested is not None:
                return self._answer_suggestion(command, answer, now)
            return self._answer_confirmation(command, answer, now)
        self.last_command_continues = plan.is_followup and self.pending is not None
        effects = self._drop_confirmation("superseded by a new command; nothing will move")
        self._track = None  # a new command replaces whatever was tracked or followed
        answers_plan = plan.is_followup and self._plan is not None and self.pending is not None
        if not answers_plan:
            self._plan = None  # ... and whatever was left of a plan
        self._search = None  # ... and a search
        self._suggested = None
        parse_ms = (time.perf_counter() - started) * 1000.0
        said = Instruction(text=plan.text, language=plan.language)
        if plan.suggestion is not None:
            # One known word is one edit away: ask, and a yes runs the corrected command.
            self._suggested = plan.suggestion
            self._question_held = command.hold
            reply = self._reply("ambiguous", said, f"{plan.error} (yes / no)", command)
            reply.result.clarification = f"Did you mean '{plan.suggestion}'?"
            reply.result.choices = ["yes", "no"]
            return [*effects, reply]
        if plan.refusal is not None and self.pending is not None and plan.negated is not None \
                and plan.negated.target is not None:
            # "别拿红色的" answering "Which cup?": not the red one.
            self.last_command_continues = True
            plan = Plan(text=plan.text, language=plan.language, steps=[Instruction(
                text=plan.text, language=plan.language, is_followup=True,
                target=ObjectQuery(text=plan.text, exclusions=[plan.negated.target]))])
        why_not = (plan.error or plan.refusal or self._unjudged(plan)
                   or _plan_problem(plan) or self._affordance(plan) or self._unseeable(plan)
                   or (_held_plan_problem(plan) if command.hold else None))
        if why_not:
            reply = self._reply("rejected", plan.steps[0] if plan.steps else said, why_not,
                                command)
            reply.result.timing_ms["parse"] = parse_ms
            return [*effects, reply]
        if len(plan.steps) > 1:
            self._plan = _PlanRun(plan.steps, command)
            return [*effects, self._ground_step(command, parse_ms)]
        instruction = self._resolve_followup(plan.steps[0], text)
        if not instruction.error:  # an answer may complete a command into one never done
            instruction.error = safety.instruction_problem(instruction, self.safety)
        if instruction.error:
            reply = self._reply("rejected", instruction, instruction.error, command)
            reply.result.timing_ms["parse"] = parse_ms
            return [*effects, reply]
        request = self._request(command, instruction, "command", parse_ms=parse_ms)
        if answers_plan:  # the answer completes the plan's current step
            assert self._plan is not None
            request = dataclasses.replace(request, step=self._plan.index)
        return [*effects, Ground(request)]

    def stop(self, command: Command, now: float) -> list[Effect]:
        """Cancel everything: the question pending, the plan awaiting a yes, tracking, and every
        effect issued before now (their epoch is over)."""
        self.epoch += 1
        self._track = None
        self.pending = None
        self._awaiting = None
        self._plan = None
        self._search = None
        self._suggested = None
        instruction = parse_instruction(command.text)
        return [self._reply("ok", instruction, STOP_MESSAGE, command)]

    def grounded(self, request: GroundRequest, result: GroundingResult | None,
                 frame: Frame | None, now: float, problem: str = "") -> list[Effect]:
        """The outcome of a :class:`Ground`: a result, or why there is none (``problem``: no
        frame, bad camera input, the model unavailable)."""
        if request.purpose == "reground":
            return self._regrounded(request, result, frame, problem)
        if result is None:
            why = problem or "no result"
            if request.purpose == "confirmation":
                why = f"confirmed, but {why}; nothing will move"
            return [self._reply("error", request.instruction, why, request.command, frame,
                                epoch=request.epoch)]
        if request.parse_ms is not None:
            result.timing_ms = {"parse": request.parse_ms, **result.timing_ms}
        if request.epoch != self.epoch:  # a stop came first: nothing of this may act
            return [Reply(result, request.command, frame, request.epoch)]
        result = self._judged(result)
        self._remember(request, result, frame)
        if request.purpose == "search":
            return self._search_view(request, result, frame, now)
        if request.purpose == "confirmation":
            return self._confirmed(request, result, frame, now)
        if result.status == "not_found":
            beyond = self._beyond_view(request, result, frame, now)
            if isinstance(beyond, list):
                return beyond  # a search started
            result = beyond
        if result.status == "ok" and request.step is None and _several(result.instruction) \
                and not result.no_goal_reason:
            return self._start_several(request, result)
        self.pending = result.instruction if result.status == "ambiguous" else None
        self._question_held = self.pending is not None and _held(request)
        if result.status == "ok" and result.targets and not _held(request):
            # A held command's target becomes "it" only once confirmed (_confirmed): a look
            # answered no - the MCP server's "where is the person?" before an agent's motion,
            # its `ground` and `where` - must not change what "go to it" means.
            self.last_target = result.targets[0]
        if request.step is not None and self._plan is not None:
            return self._step_grounded(request, result, frame, now)
        if self._needs_confirmation(result, held=_held(request)):
            return [self._ask_confirmation(request, result, frame, now)]
        self._start_tracking(result, frame, now)
        return [Reply(result, request.command, frame, self.epoch)]

    def frame(self, frame: Frame, now: float) -> list[Effect]:
        """A camera frame while a target is tracked: follow it without the model, re-send goals
        when it moved (follow, or track_resend_goals), ask for a re-grounding when the tracker
        needs one."""
        track = self._track
        if track is None:
            return []
        if track.until is not None and now > track.until:
            self._track = None
            return []
        update = track.tracker.update(frame)
        if update.lost:
            if track.regrounding is None:  # the model pass in flight may still find it
                return self._end_track("not_found", f"lost the {track.tracker.label}: "
                                                    f"{update.reason}")
            return []
        effects: list[Effect] = []
        if update.needs_reground and track.regrounding is None:
            request = self._request(None, track.instruction, "reground", frame=frame)
            track.regrounding = request.id
            effects.append(Ground(request))
        candidate = Candidate(0, track.tracker.label, update.confidence, update.bbox)
        result = self.pipeline.result_for_box(track.instruction, candidate, frame)
        if result.status != "ok" or not result.goals:
            return effects
        point = result.targets[0].point_base
        moved = (point is None or track.last_goal_point is None
                 or math.dist(point, track.last_goal_point) > self.config.track_goal_shift_m)
        # Outside follow, a target that moves may be moving because the robot acts on it (a
        # lifted cup): its goals are re-sent only when asked for; ~/target_pose always follows.
        resend = track.instruction.action == "follow" or self.config.track_resend_goals
        effects.append(self._tracked(track, result, frame, goals=moved and resend))
        return effects

    def tracking_failed(self, why: str) -> list[Effect]:
        """The owner could not track (a frame it could not convert, a tracker fault)."""
        return self._end_track("error", why)

    def robot_status(self, succeeded: bool, detail: str, now: float) -> list[Effect]:
        """The robot finished (or failed) what it was last sent: a plan goes on to its next
        step, grounded on a frame newer than ``now``, or ends saying which step failed."""
        search = self._search
        if search is not None and search.deadline is not None:
            return self._search_turned(search, succeeded, detail, now)
        run = self._plan
        if run is None or run.deadline is None:
            return []  # nothing waits for the robot
        if not succeeded:
            self._plan = None
            why = detail or "the robot reported a failure"
            return [self._plan_reply(run, "error", f"{run.label()} failed ({why}); the rest of "
                                                   f"the plan is cancelled")]
        return self._next_step(run, now)

    def tick(self, now: float) -> list[Effect]:
        """Time passes: an unanswered confirmation expires, a tracking window closes, a plan's
        step that the robot never reported done ends the plan."""
        track = self._track
        if track is not None and track.until is not None and now > track.until:
            self._track = None
        search = self._search
        if search is not None and search.deadline is not None and now > search.deadline:
            self._search = None
            return [self._search_reply(search, "error", f"the robot did not report {search.label()} "
                                                        f"done within "
                                                        f"{self.config.search.view_timeout_s:g} s "
                                                        f"(robot_status); the search is stopped")]
        run = self._plan
        if run is not None and run.deadline is not None and now > run.deadline:
            self._plan = None
            return [self._plan_reply(
                run, "error", f"{run.label()} did not finish within "
                              f"{self.config.step_timeout_s:g} s (no robot status); the rest "
                              f"of the plan is cancelled")]
        awaiting = self._awaiting
        if awaiting is not None and now > awaiting.deadline:
            return self._drop_confirmation(
                f"no answer within {self.config.confirm_timeout_s:g} s")
        return []

    # --------------------------------------------------------------- a synchronous driver
    def run(self, text: str, frame: Frame | None) -> GroundingResult:
        """One command on one frame, start to finish, on the calling thread (the CLI, the
        tests): model passes run inline on ``frame``; the last reply is the answer."""
        now = time.monotonic()
        if frame is not None:
            # The image handed in is the current view: its age at each decision is the time
            # this call has taken so far (the safety gate's max_frame_age_s).
            self._run_clock = lambda: frame.stamp + (time.monotonic() - now)
        try:
            return self._run(text, frame, now)
        finally:
            self._run_clock = None

    def _run(self, text: str, frame: Frame | None, now: float) -> GroundingResult:
        effects = self.command(Command(text, received=now, frame=frame), now)
        answer: GroundingResult | None = None
        while effects:
            effect = effects.pop(0)
            if isinstance(effect, Ground) and not effect.request.background:
                request = effect.request
                image = request.frame if request.frame is not None else frame
                if image is None:
                    outcome = self.grounded(request, None, None, now,
                                            problem="no camera frame received yet")
                else:
                    grounding = self.pipeline.ground(request.instruction, image,
                                                     last_target=request.last_target)
                    outcome = self.grounded(request, grounding, image, now)
                effects[:0] = outcome
            elif isinstance(effect, Reply) and effect.command is not None:
                answer = effect.result
        assert answer is not None, "every command gets a reply"
        return answer

    # ---------------------------------------------------------------------------- internals
    def _request(self, command: Command | None, instruction: Instruction,
                 purpose: GroundPurpose, frame: Frame | None = None,
                 parse_ms: float | None = None) -> GroundRequest:
        image = frame if frame is not None else (command.frame if command else None)
        return GroundRequest(next(self._ids), command, instruction, purpose, self.epoch,
                             frame=image, last_target=self.last_target, parse_ms=parse_ms)

    def _reply(self, status: Status, instruction: Instruction, message: str,
               command: Command | None, frame: Frame | None = None,
               epoch: int | None = None) -> Reply:
        """A reply that only says something (no target, no goal)."""
        result = GroundingResult(status=status, instruction=instruction, message=message,
                                 backend=self.pipeline.backend.name)
        if frame is not None:
            self.pipeline.stamp(result, frame)
        return Reply(result, command, frame, self.epoch if epoch is None else epoch)

    def _resolve_followup(self, instruction: Instruction, text: str) -> Instruction:
        """A clarification answer ("the left one") completes the command that asked for it."""
        if instruction.error or not instruction.is_followup:
            return instruction
        if self.pending is None:
            instruction.error = "that sounds like an answer, but no question is pending"
            return instruction
        merged = merge_followup(self.pending, instruction)
        merged.text = f"{self.pending.text} -> {text.strip()}"
        return merged

    def _parse(self, text: str) -> Plan:
        """The plan ``text`` asks for.  Whatever parser is configured, the grammar's verdict on
        what is no command to move stands: a question, a statement, a harmful act, keeping
        away, "don't …" (a language model must not turn "kick the dog" into "go to the dog")."""
        if self.parse is parse_plan:
            return parse_plan(text)
        grammar = parse_plan(text)
        if grammar.refusal is not None or any(s.action == "ask" for s in grammar.steps):
            return grammar
        return self.parse(text)

    def _stamp_now(self) -> float:
        """Now on the clock of frame stamps (run() holds its still image as taken now)."""
        return self._run_clock() if self._run_clock is not None else self.stamp_clock()

    def _gate_allows(self, result: GroundingResult) -> bool:
        return safety.check(result, self.safety, now=self._stamp_now()).allowed

    def _judged(self, result: GroundingResult) -> GroundingResult:
        """``result`` as it may be answered: through the safety gate (the one judgement every
        answer passes, whatever asked: the CLI, the topic, ~/ground, ~/instruct)."""
        return safety.judge(result, self.safety, now=self._stamp_now())

    def _affordance(self, plan: Plan) -> str | None:
        """Why a step may not be done whatever the camera sees ("pick up the person")."""
        for index, step in enumerate(plan.steps):
            problem = safety.instruction_problem(step, self.safety)
            if problem:
                return problem if len(plan.steps) == 1 else \
                    f"step {index + 1} of {len(plan.steps)} ({step.text}): {problem}"
        return None

    def _unseeable(self, plan: Plan) -> str | None:
        """A later step of a plan names an object the detector can never see ("grab the cup and
        the saucer"): said before the first step moves anything, not half-way through."""
        backend = self.pipeline.backend
        if len(plan.steps) < 2 or backend.vocabulary is None \
                or backend.resolves_referring_expressions:
            return None
        for index, step in enumerate(plan.steps[1:], start=2):
            for query in (step.target, step.destination):
                noun = query.noun if query is not None else None
                if noun and noun not in (*lx.EN_PRONOUNS, *lx.ZH_PRONOUNS) \
                        and labels_for_noun(noun, backend.vocabulary) == set():
                    return (f"step {index} of {len(plan.steps)} ({step.text}): '{noun}' is not "
                            f"something the {backend.name} detector knows - nothing was done")
        return None

    def _unjudged(self, plan: Plan) -> str | None:
        """Words a closed-set detector cannot use: named, never dropped (an open-vocabulary
        model gets them in its phrase).  The strangest word is named first: an unknown one,
        then a second colour, then a second object."""
        backend = self.pipeline.backend
        if backend.vocabulary is None or backend.resolves_referring_expressions:
            return None
        kinds = lx.UNJUDGED_ATTRIBUTES
        for step in plan.steps:
            for query in (step.target, step.destination):
                words = unjudged_words(query)
                nouns = [w for w in words if w in lx.EN_KNOWN_NOUNS or w in lx.ZH_NOUNS]
                colours = [w for w in words if w in lx.COLORS]
                others = [w for w in words if w not in nouns and w not in colours]
                if others:
                    kind = kinds.get(others[0])
                    what = f" (a {kind})" if kind else ""
                    return (f"I can't judge '{others[0]}'{what}: the {backend.name} detector "
                            f"sees object classes, and I judge colour, size and position")
                if colours:
                    return (f"I judge one colour per object; '{colours[0]}' is a second one - "
                            f"say one colour")
                if nouns:
                    named = query.noun if query is not None and query.noun else "another"
                    return (f"you named more than one object ('{nouns[0]}' and '{named}'): "
                            f"say one object per step")
        return None

    def _answer_suggestion(self, command: Command, yes: bool, now: float) -> list[Effect]:
        suggested, self._suggested = self._suggested, None
        assert suggested is not None
        if not yes:
            return [self._reply("ok", Instruction(text=command.text[:200]),
                                f"cancelled: will not '{suggested}'", command)]
        return self.command(dataclasses.replace(command, text=suggested,
                                                hold=command.hold or self._question_held), now)

    # ------------------------------------------------------------------- memory and search
    def _view(self, frame: Frame | None) -> View | None:
        """What ``frame``'s camera could see, for the memory (None without extrinsics)."""
        if frame is None or frame.intrinsics is None or self.pipeline.frames is None:
            return None
        base_from_camera = self.pipeline.frames.lookup(self.pipeline.config.goals.base_frame,
                                                       frame.frame_id, frame.stamp)
        if base_from_camera is None:
            return None
        return View(frame.intrinsics, base_from_camera.inverse(), frame.depth_m, frame.width,
                    frame.height)

    def _remember(self, request: GroundRequest, result: GroundingResult,
                  frame: Frame | None) -> None:
        """What a model pass saw goes into the memory; what it looked for and did not see where
        the memory has it counts as a miss there."""
        if frame is None or result.status == "error" or request.epoch != self.epoch:
            return
        seen = {id(c): c for c in [*result.targets, *result.candidates,
                                   *([result.destination] if result.destination else [])]}
        looked_for: set[str] | None = set()
        vocabulary = self.pipeline.backend.vocabulary
        for query in (request.instruction.target, request.instruction.destination):
            if query is None:
                continue
            labels = labels_for_noun(query.noun, vocabulary) if query.noun else None
            if labels is None or looked_for is None:
                looked_for = None  # "something": every label was looked for
            else:
                looked_for |= labels
        self.memory.observe(list(seen.values()), frame.stamp, self._view(frame),
                            None if looked_for is None else frozenset(looked_for))

    def _beyond_view(self, request: GroundRequest, result: GroundingResult, frame: Frame | None,
                     now: float) -> GroundingResult | list[Effect]:
        """The object is not in view: the memory answers ("where is", "go back to", "the cup
        you saw"), or a "find" starts an active search; otherwise the answer says what memory
        knows."""
        instruction = request.instruction
        query = instruction.target
        if query is None or instruction.action not in ("find", "pick", "navigate", "look") \
                or request.purpose != "command":
            return result
        stamp_now = self._stamp_now()
        recalled = recall(self.memory, query, stamp_now)
        if not instruction.recall and instruction.action != "find":
            if recalled.kind in ("one", "ambiguous"):
                result.message += (f"; I saw it before ({recalled.message}) - say 'go back to "
                                   f"the {_what(query)}' to use that")
            return result
        if recalled.kind == "none":
            search = self.config.search
            # Only on the live camera: a command that brought its own image (~/ground with an
            # image, `vlm-ros ground`) has no camera to turn.  Not for a held command either:
            # each view turns the camera, and a held command moves nothing unasked.
            if not instruction.recall and not _asks_where(instruction.text) and \
                    search.enabled and request.step is None and request.command is not None \
                    and request.command.frame is None and not _held(request):
                started = self._start_search(request, frame, now)
                if started is not None:
                    return started
            offer = "" if instruction.recall else \
                f" - say 'find the {_what(query)}' to look around for it"
            if _held(request) and not instruction.recall:
                offer = (" - a held command (an agent's) starts no search: each view would turn "
                         "the camera unchecked")
            result.message = f"{result.message}; {recalled.message}{offer}"
            return result
        if recalled.kind == "refused":
            result.status, result.message = "rejected", recalled.message
            return result
        if recalled.kind == "ambiguous":
            result.status, result.message = "ambiguous", recalled.message
            result.clarification = f"Which {query.noun or 'one'}? {recalled.message}"
            result.choices = recalled.choices
            result.candidates = [m.as_candidate() for m in recalled.matches]
            return result
        chosen = recalled.chosen
        assert chosen is not None
        if instruction.action == "find":
            answer = self.pipeline.result_from_memory(
                instruction, chosen.as_candidate(), stamp_now,
                f"not in view now; from memory: {recalled.message}")
            return self._judged(answer)
        view = self._view(frame)
        problem = goal_problem(chosen, stamp_now, self.config.memory_max_age_s, view,
                               view is not None and self.memory.in_view(chosen, view))
        if problem:
            result.status, result.message = "rejected", problem
            result.no_goal_reason = problem
            return result
        answer = self.pipeline.result_from_memory(
            instruction, chosen.as_candidate(), stamp_now,
            f"from memory (not in view now): {recalled.message}")
        return self._judged(answer)

    def _start_search(self, request: GroundRequest, frame: Frame | None,
                      now: float) -> list[Effect] | None:
        pose = self.pipeline.camera_pose(frame) if frame is not None else None
        if pose is None or request.command is None:
            return None  # without the camera's pose there is nowhere to turn it
        camera, heading = pose
        points = self.config.search.points(camera, skip_heading=heading)
        if not points:
            return None
        run = SearchRun(request.instruction, request.command, points, camera=camera)
        self._search = run
        return [self._search_look(run, now)]

    def _search_look(self, run: SearchRun, now: float) -> Reply:
        """Turn the camera to the run's next view and wait for the robot to say it is there."""
        stamp = self._stamp_now()
        goal = self.pipeline.view_goal(run.points[run.index], run.camera, stamp)
        name = _what(run.instruction.target)
        result = GroundingResult(status="searching", instruction=run.instruction, goals=[goal],
                                 message=f"searching for the {name}: looking at {run.label()}",
                                 backend=self.pipeline.backend.name, stamp=stamp,
                                 frame_id=self.pipeline.config.goals.base_frame)
        run.deadline = now + self.config.search.view_timeout_s
        result = self._judged(result)
        if result.status != "searching":
            self._search = None
        return Reply(result, run.command, None, self.epoch)

    def _search_turned(self, run: SearchRun, succeeded: bool, detail: str,
                       now: float) -> list[Effect]:
        """The robot reports the view turned to: ground it on a frame newer than now."""
        run.deadline = None
        if not succeeded:
            self._search = None
            return [self._search_reply(run, "error", f"the robot could not look at "
                                                     f"{run.label()} ({detail or 'failed'}); "
                                                     f"the search is stopped")]
        command = dataclasses.replace(run.command, received=now)
        return [Ground(self._request(command, run.instruction, "search"))]

    def _search_view(self, request: GroundRequest, result: GroundingResult,
                     frame: Frame | None, now: float) -> list[Effect]:
        run = self._search
        if run is None:
            return []  # ended meanwhile (a stop, a new command)
        if result.status in ("ok", "ambiguous"):
            self._search = None
            result.message = f"found in {run.label()}: {result.message}"
            self.pending = result.instruction if result.status == "ambiguous" else None
            self._question_held = self.pending is not None and _held(request)
            if self._needs_confirmation(result, held=_held(request)):
                return [self._ask_confirmation(request, result, frame, now)]
            if result.status == "ok":
                self._start_tracking(result, frame, now)
            return [Reply(result, run.command, frame, self.epoch)]
        run.seen.append(result.message)
        run.index += 1
        if run.done:
            self._search = None
            name = _what(run.instruction.target)
            return [self._search_reply(run, "not_found", f"searched {len(run.points)} views "
                                                         f"and did not find the {name}")]
        return [self._search_look(run, now)]

    def _search_reply(self, run: SearchRun, status: Status, message: str) -> Reply:
        return self._reply(status, run.instruction, message, run.command)

    # ------------------------------------------------------------------------------- plans
    def _ground_step(self, command: Command, parse_ms: float | None = None) -> Effect:
        run = self._plan
        assert run is not None
        step = run.steps[run.index]
        if step.action == "stop":
            return SignalStop(self.epoch)  # answered by _next_step's caller
        request = self._request(command, step, "command", parse_ms=parse_ms)
        return Ground(dataclasses.replace(request, step=run.index))

    def _step_grounded(self, request: GroundRequest, result: GroundingResult,
                       frame: Frame | None, now: float) -> list[Effect]:
        run = self._plan
        assert run is not None and request.step == run.index
        self._as_plan_result(run, result)
        action = run.steps[run.index].action
        if result.status == "ambiguous":  # the answer completes this step, then the plan goes on
            result.message = f"{run.label()}: {result.message}"
            return [Reply(result, request.command, frame, self.epoch)]
        if result.status != "ok" or (action in ROBOT_ACTIONS and not result.goals):
            self._plan = None
            result.goals = []
            result.message = (f"{run.label()}: {result.message}; the rest of the plan is "
                              f"cancelled")
            return [Reply(result, request.command, frame, self.epoch)]
        result.message = f"{run.label()}: {result.message}"
        reply = Reply(result, request.command, frame, self.epoch)
        if action == "follow":  # followed until stop: the plan ends here (follow is last)
            self._plan = None
            self._start_tracking(result, frame, now)
            return [reply]
        if action in ROBOT_ACTIONS:
            run.deadline = now + self.config.step_timeout_s
            return [reply]
        return [reply, *self._next_step(run, now)]

    def _start_several(self, request: GroundRequest, result: GroundingResult) -> list[Effect]:
        """"all the cups" / "both cups": one pick step per object found, nearest first, each
        grounded again when its turn comes (the object nearest where it was seen) and each
        waiting for the robot's report, like any plan."""
        instruction = result.instruction
        assert instruction is not None and instruction.target is not None
        noun = instruction.target.noun or "object"
        steps = []
        for target in result.targets:
            x, y, z = target.point_base  # type: ignore[misc]  # _several placed them all
            where = f"the {noun} at ({x:.2f}, {y:.2f})"
            query = dataclasses.replace(instruction.target, quantity=None, text=where,
                                        near_point=(x, y, z))
            steps.append(dataclasses.replace(instruction, text=f"pick up {where}",
                                             target=query))
        command = request.command or Command(instruction.text, received=0.0)
        self._plan = _PlanRun(steps, command)
        return [self._ground_step(command)]

    def _next_step(self, run: _PlanRun, now: float) -> list[Effect]:
        """Step ``index`` is done: ground the next one on a frame newer than ``now``."""
        run.index += 1
        run.deadline = None
        if run.index >= len(run.steps):
            self._plan = None
            return [self._plan_reply(run, "ok", f"done: all {len(run.steps)} steps finished")]
        command = dataclasses.replace(run.command, received=now)
        effect = self._ground_step(command)
        if isinstance(effect, SignalStop):
            done = self._plan_reply(run, "ok", f"{run.label()}: stopping")
            self._plan = None  # a stop ends the plan (_plan_problem: it is the last step)
            self._track = None
            return [effect, done]
        return [effect]

    def _plan_reply(self, run: _PlanRun, status: Status, message: str) -> Reply:
        index = min(run.index, len(run.steps) - 1)
        reply = self._reply(status, run.steps[index], message, run.command)
        self._as_plan_result(run, reply.result)
        return reply

    @staticmethod
    def _as_plan_result(run: _PlanRun, result: GroundingResult) -> None:
        """A result for one step of a plan: its instruction says the whole command as received
        (what it answers) with this step's meaning; ``steps`` and ``step`` say which."""
        index = min(run.index, len(run.steps) - 1)
        if result.instruction is not None:
            result.instruction = dataclasses.replace(result.instruction,
                                                     text=run.command.text[:200].strip())
        result.steps, result.step = list(run.steps), index + 1

    # ------------------------------------------------------------ confirm-before-motion
    def _needs_confirmation(self, result: GroundingResult, held: bool = False) -> bool:
        """Goals wait for a yes when the node confirms this action (confirm_before_motion,
        confirm_actions) or the command asked to be held (every action)."""
        config = self.config
        if not (result.goals and result.instruction):
            return False
        if not held and not (config.confirm_before_motion
                             and result.instruction.action in config.confirm_actions):
            return False
        return self._gate_allows(result)  # only a plan the gate would pass is worth asking about

    def _ask_confirmation(self, request: GroundRequest, result: GroundingResult,
                          frame: Frame | None, now: float) -> Reply:
        instruction = result.instruction
        assert instruction is not None  # _needs_confirmation checked it
        stated = stated_object(result)
        point = stated.point_base if stated is not None else None
        where = ("" if point is None else
                 f" at ({point[0]:.2f}, {point[1]:.2f}, {point[2]:.2f}) m in "
                 f"{self.config.base_frame}")
        if instruction.action == "place":
            held = f"the {result.targets[0].label}" if result.targets else \
                "what the gripper holds"
            summary = f"place {held} on the {stated.label if stated else 'target'}{where}"
        else:
            summary = f"{instruction.action} the {stated.label if stated else 'target'}{where}"
        timeout = self.config.confirm_timeout_s
        self._awaiting = _Awaiting(instruction, summary, point, now + timeout)
        held_back = dataclasses.replace(
            result, goals=[], status="awaiting_confirmation",  # nothing here is a goal
            choices=["yes", "no"],
            message=f"I will {summary}. Say yes (confirm / 确认) to go ahead or no to cancel, "
                    f"within {timeout:g} s.")
        return Reply(held_back, request.command, frame, self.epoch)

    def _answer_confirmation(self, command: Command, yes: bool, now: float) -> list[Effect]:
        expired = self.tick(now)  # a yes that arrives after the deadline confirms nothing
        awaiting, self._awaiting = self._awaiting, None
        said = Instruction(text=command.text[:200])
        if awaiting is None:
            return [*expired, self._reply("rejected", said, "nothing to confirm", command)]
        if not yes:
            return [self._reply("ok", said, f"cancelled: will not {awaiting.summary}", command)]
        # The plan was made on an older frame: ground it again on one newer than the "yes" and
        # move only if it is still the same target where the operator was told it is.  (The
        # result echoes "<command> -> <answer>", as clarification answers do.)
        confirmed = dataclasses.replace(
            awaiting.instruction, text=f"{awaiting.instruction.text} -> {command.text.strip()}")
        request = self._request(command, confirmed, "confirmation")
        return [Ground(dataclasses.replace(request, stated_point=awaiting.target_point))]

    def _confirmed(self, request: GroundRequest, result: GroundingResult, frame: Frame | None,
                   now: float) -> list[Effect]:
        why_not = changed_since_stated(result, request.stated_point,
                                       self.config.confirm_max_shift_m)
        if why_not:
            result.goals = []
            result.status, result.message = "rejected", f"confirmed, but {why_not}; nothing moved"
        else:
            result.message = f"confirmed: {result.message}"
            if result.targets:
                self.last_target = result.targets[0]  # the same object, seen just now
            self._start_tracking(result, frame, now)
        return [Reply(result, request.command, frame, self.epoch)]

    def _drop_confirmation(self, why: str) -> list[Effect]:
        awaiting, self._awaiting = self._awaiting, None
        if awaiting is None:
            return []
        return [self._reply("rejected", awaiting.instruction,
                            f"not confirmed ({why}): will not {awaiting.summary}", None)]

    # ----------------------------------------------------------------------------- tracking
    def _start_tracking(self, result: GroundingResult, frame: Frame | None, now: float) -> None:
        """Track the grounded target: follow until stop, other actions for track_target_s."""
        self._track = None
        instruction = result.instruction
        if result.status != "ok" or not result.targets or instruction is None or frame is None:
            return
        action = instruction.action
        window = self.config.track_target_s
        if action != "follow" and (action not in TRACKED_ACTIONS or window <= 0):
            return
        tracker = TargetTracker(TrackerConfig(
            reground_interval_s=self.config.reground_interval_s))
        target = result.targets[0]
        if tracker.start(frame, target.bbox, target.label):
            self._track = _Track(instruction, tracker,
                                 None if action == "follow" else now + window,
                                 last_goal_point=target.point_base)

    def _tracked(self, track: _Track, result: GroundingResult, frame: Frame,
                 goals: bool) -> TrackedUpdate:
        if goals and self._gate_allows(result):
            track.last_goal_point = result.targets[0].point_base if result.targets else None
        return TrackedUpdate(result, frame, goals, self.epoch)

    def _regrounded(self, request: GroundRequest, result: GroundingResult | None,
                    frame: Frame | None, problem: str) -> list[Effect]:
        """A tracking re-grounding came back: re-associate the track with its candidates."""
        track = self._track
        if track is None or track.regrounding != request.id or request.epoch != self.epoch:
            return []  # the track it was for has ended
        track.regrounding = None
        if result is None or frame is None:
            return self._end_track("error", problem or "the model pass while tracking failed")
        if result.status == "error":
            return self._end_track("error", f"{result.message} (while tracking)")
        # The tracked object among the model's candidates - not simply its top choice, which
        # may be a look-alike that scores higher on this frame.
        chosen = track.tracker.reassociate(frame, result.candidates)
        if chosen is None:
            if not track.tracker.active:
                return self._end_track("not_found", f"lost the {track.tracker.label}: the model "
                                                    f"no longer finds it where it was tracked")
            return []  # a single missed detection: the appearance track carries on
        if track.instruction.action != "follow":
            return []
        # A model-confirmed goal is always re-sent (even for a still target): the robot following
        # it keeps a fresh goal.
        confirmed = self.pipeline.result_for_box(track.instruction, chosen, frame)
        if confirmed.status == "ok" and confirmed.goals:
            return [self._tracked(track, confirmed, frame, goals=True)]
        return []

    def _end_track(self, status: Status, message: str) -> list[Effect]:
        track, self._track = self._track, None
        if track is None:
            return []
        return [self._reply(status, track.instruction, message, None)]


def _what(query: ObjectQuery | None) -> str:
    """"yellow cup" for the yellow cup: what a reply calls the object asked about."""
    if query is None or not query.noun:
        return "object"
    return f"{query.color} {query.noun}" if query.color else query.noun


def _asks_where(text: str) -> bool:
    """"where is the cup?" / "杯子在哪里" asks where; "find the cup" asks to look for it."""
    said = text.strip().lower()
    return said.startswith("where") or any(w in said for w in ("在哪", "哪里", "哪儿"))


def _held(request: GroundRequest) -> bool:
    return request.command is not None and request.command.hold


def _held_plan_problem(plan: Plan) -> str | None:
    """A held command (an agent's) must be one step on one object: each goal is shown and
    checked before it moves, and a plan's later steps would be grounded and sent unasked."""
    if len(plan.steps) > 1:
        return (f"{len(plan.steps)} steps in one command: a held command (an agent's) is "
                "carried out one step at a time, each checked before it moves - send the "
                "first step on its own")
    if _several(plan.steps[0] if plan.steps else None):
        return ("several objects in one command: a held command (an agent's) picks one "
                "object at a time, each checked before it moves - name one")
    return None


def _several(instruction: Instruction | None) -> bool:
    return bool(instruction and instruction.action == "pick" and instruction.target
                and instruction.target.quantity)


def _plan_problem(plan: Plan) -> str | None:
    """Plans the session will not start: steps that could never run after a stop or a follow,
    and "all the cups" inside a longer plan (say it on its own)."""
    actions = [step.action for step in plan.steps]
    if len(plan.steps) > 1 and any(_several(step) for step in plan.steps):
        return ("several objects at once ('all', 'both', 'every') only as a command of its "
                "own: say the other steps after it")
    for index, action in enumerate(actions[:-1]):
        if action == "stop":
            return "'stop' ends everything: say what to do next as a new command after it"
        if action == "follow":
            return ("'follow' lasts until you say stop, so it can only be the last step "
                    f"(step {index + 1} of {len(actions)} here)")
    return None


def stated_object(result: GroundingResult) -> Candidate | None:
    """The object whose position a confirmation states: the destination of a place, else the
    target."""
    action = result.instruction.action if result.instruction else None
    if action == "place" and result.destination is not None:
        return result.destination
    return result.targets[0] if result.targets else result.destination


def changed_since_stated(result: GroundingResult, stated_point: Vec3 | None,
                         max_shift_m: float) -> str:
    """Why a confirmed plan no longer holds on the fresh frame ('' when it still does)."""
    if result.status != "ok" or not result.goals:
        return f"the target is no longer found as stated ({result.status}: {result.message})"
    stated = stated_object(result)
    point = stated.point_base if stated is not None else None
    if stated_point is None or point is None:
        return ""
    shift = math.dist(point, stated_point)
    if shift > max_shift_m:
        return (f"the target moved {shift:.2f} m since I asked (more than "
                f"confirm_max_shift_m = {max_shift_m:g} m); say the command again")
    return ""
