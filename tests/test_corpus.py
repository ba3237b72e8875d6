"""The command corpus (tests/corpus/commands.yaml) run end to end: parser, session, SSD-COCO
on real photos, 3D, goals and the safety gate.

Every entry says what its command must mean (status ok: the action, the target's label, which
object, the plan's steps) or how it must be refused (the status and a word the answer must
name).  Each outcome falls in one class:

* ``understood``: exactly as expected;
* ``refused_named``: a refusal (rejected / not_found / ambiguous, no goal) that names the word
  the entry expects - a refusal of another status than the one expected still counts;
* ``refused_instead``: a refusal, no goal, where a meaning was expected (or the word is not
  named) - safe, but not understood;
* ``wrong_goal``: a goal for something other than what was meant - never allowed;
* ``wrong_no_goal``: status ok / error with another meaning, and no goal (e.g. read as "stop").

Entries marked ``known_gap`` (the code is wrong, recorded rather than fixed here) are reported in
their own column unless understood; a known gap can never excuse a wrong goal.  Entries of the
``non_graspable`` group are checked by their own test: the rule that refuses grasping people,
animals and vehicles lives in the safety gate.

Run ``pytest -s tests/test_corpus.py`` for the per-group table; ``scripts/corpus_table.py``
prints it as markdown.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from photos import load_photo

from vlm_ros import scenes
from vlm_ros.backends.ssd_coco import SsdCocoBackend
from vlm_ros.core import safety
from vlm_ros.core.geometry import CameraPoseHistory, StaticFrameResolver, camera_extrinsics
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.plan import parse_plan
from vlm_ros.core.recall import SearchConfig
from vlm_ros.core.session import Command, CommandSession, Ground, Reply, SessionConfig
from vlm_ros.core.types import Detection, Frame, GroundingResult

CORPUS = Path(__file__).resolve().parent / "corpus" / "commands.yaml"
CAMERA = "camera_color_optical_frame"
STAMP_NOW = 100.0
REFUSALS = ("rejected", "not_found", "ambiguous")
CLASSES = ("understood", "refused_named", "refused_instead", "wrong_goal", "wrong_no_goal",
           "crash")
# Issue #20's groups: questions, statements, harmful acts, keeping away, what may be picked up.
NOT_COMMAND_GROUPS = ("questions", "statements", "harmful", "keep_away", "affordance")
# Issue #21's group: what the robot saw before ("where did you see ...", "go back to ...").
MEMORY_GROUPS = ("memory",)
# Issue #22's group: how to grasp ("from above", "by the handle"), several objects at once.
GRASP_GROUPS = ("grasp",)
# Groups whose every entry must be understood or refused with the word named.
STRICT_GROUPS = ("negation", "multi_step", "unknown_words", "non_graspable", *NOT_COMMAND_GROUPS,
                 *MEMORY_GROUPS, *GRASP_GROUPS)
# The understood-as-expected rate over all groups but non_graspable, measured on the code this
# corpus was written against (ba566f4) as 425 / 461 = 92.2 %; the floor leaves a 2.2-point
# margin (about 10 entries).
MIN_UNDERSTOOD_RATE = 0.90


# ------------------------------------------------------------------------------ the corpus
@dataclass
class Entry:
    group: str
    text: str
    scene: str
    status: str
    action: str | None = None
    label: str | None = None
    where: str | None = None
    color: str | None = None
    steps: list[list[str]] | None = None
    says: list[str] = field(default_factory=list)
    known_gap: str | None = None
    non_graspable: bool = False
    # Issue #21: "<scene>:<noun>" the robot saw before the command, with its camera turned
    # 60 degrees away from where it looks now ("find the <noun>" there first).
    seen: str | None = None
    goal: bool = True  # an ok answer with no goal (a "where ...?" answered from memory)

    @property
    def shown(self) -> str:
        text = self.text if len(self.text) <= 70 else f"{self.text[:60]}... ({len(self.text)} chars)"
        return ascii(text)[1:-1] if not text.isprintable() else text


def load_corpus(path: Path = CORPUS) -> list[Entry]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries = []
    for group, items in data.items():
        for item in items:
            item = dict(item)
            text = item.pop("text") * int(item.pop("repeat", 1))
            says = item.pop("says", [])
            entries.append(Entry(group=group, text=text,
                                 says=[str(says)] if isinstance(says, (str, int)) else says,
                                 **item))
    return entries


# ------------------------------------------------------------------------------ the scenes
class CachingSsd(SsdCocoBackend):
    """SSD-COCO whose detections are remembered per image and query list: the corpus asks the
    same few images the same few questions hundreds of times (the net is deterministic)."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[tuple[int, tuple[str, ...]], list[Detection]] = {}

    def detect(self, rgb: np.ndarray, queries: Sequence[str]) -> list[Detection]:
        key = (id(rgb), tuple(queries))
        if key not in self._seen:
            self._seen[key] = super().detect(rgb, queries)
        return copy.deepcopy(self._seen[key])


@lru_cache(maxsize=1)
def corpus_pipeline() -> Pipeline:
    resolver = StaticFrameResolver("base_link", CAMERA, camera_extrinsics(0, 0, 0.6, 0, 0.6, 0))
    return Pipeline(CachingSsd(), None, resolver)


@lru_cache(maxsize=None)
def scene_frame(name: str) -> Frame:
    """The scene's frame: the synthetic tabletop scenes, or a photo given the same tabletop
    depth and intrinsics (so every grounded command can get a goal, and a wrong goal shows)."""
    if name in ("coffee", "two_cups"):
        rgb, depth, k = getattr(scenes, name)()
    else:
        rgb = load_photo(name)
        h, w = rgb.shape[:2]
        depth, k = scenes.tabletop_depth(w, h), scenes.intrinsics_for(w, h)
    rgb.setflags(write=False)
    return Frame(rgb=rgb, depth_m=depth, intrinsics=k, stamp=STAMP_NOW, frame_id=CAMERA)


# ------------------------------------------------------------------------------- one entry
@dataclass
class Outcome:
    entry: Entry
    verdict: str
    status: str
    goals: list[str]
    got: str


def run_entry(entry: Entry) -> Outcome:
    """A fresh session per command (no dialogue state leaks between entries).  No active
    search: the corpus has no robot to turn the camera (tests/test_session_memory.py and
    `vlm-ros eval sim --memory` test it)."""
    config = SessionConfig(track_target_s=0.0, search=SearchConfig(enabled=False))
    if entry.seen is not None:
        return run_memory_entry(entry, config)
    session = CommandSession(corpus_pipeline(), config, stamp_clock=lambda: STAMP_NOW)
    frame = scene_frame(entry.scene)
    try:
        replies = drive(session, entry.text, frame)
    except Exception as exc:  # the node's worker would die: a failure, whatever was expected
        return Outcome(entry, "crash", "crash", [], f"raised {exc!r:.200}")
    verdict, problem = judge(entry, replies, frame)
    answer = replies[-1]
    shown = " | ".join(describe(r, frame) for r in replies)
    return Outcome(entry, verdict, answer.status, [g.kind for r in replies for g in r.goals],
                   shown + (f" [{problem}]" if problem else ""))


def run_memory_entry(entry: Entry, config: SessionConfig) -> Outcome:
    """The robot saw ``entry.seen`` with its camera turned 60 degrees left, then looks ahead at
    ``entry.scene`` when the command comes."""
    poses = CameraPoseHistory("base_link", CAMERA)
    pipeline = Pipeline(corpus_pipeline().backend, None, poses)
    session = CommandSession(pipeline, config, stamp_clock=lambda: STAMP_NOW)
    seen_scene, noun = entry.seen.split(":")
    for stamp, yaw, scene in ((STAMP_NOW - 5.0, 60.0, seen_scene), (STAMP_NOW, 0.0, entry.scene)):
        poses.add(stamp, camera_extrinsics(0, 0, 0.6, 0, 0.6, math.radians(yaw)))
        frame = dataclasses.replace(scene_frame(scene), stamp=stamp)
        if scene is seen_scene and stamp < STAMP_NOW:
            drive(session, f"find {noun}" if noun == "something" else f"find the {noun}", frame)
    try:
        replies = drive(session, entry.text, frame)
    except Exception as exc:  # noqa: BLE001 - a crash, reported as one
        return Outcome(entry, "crash", "crash", [], f"raised {exc!r:.200}")
    verdict, problem = judge(entry, replies, frame)
    shown = " | ".join(describe(r, frame) for r in replies)
    return Outcome(entry, verdict, replies[-1].status,
                   [g.kind for r in replies for g in r.goals],
                   shown + (f" [{problem}]" if problem else ""))


def drive(session: CommandSession, text: str, frame: Frame) -> list[GroundingResult]:
    """Every reply the command gets on ``frame`` - as ``CommandSession.run`` drives it, but
    keeping each reply (a plan whose first step is a find or look goes on to its next step at
    once, and each step's goals leave) - with the goals the safety gate lets out, as the node
    publishes them."""
    now = 0.0
    effects = session.command(Command(text, received=now, frame=frame), now)
    replies: list[GroundingResult] = []
    while effects:
        effect = effects.pop(0)
        if isinstance(effect, Ground) and not effect.request.background:
            request = effect.request
            grounding = session.pipeline.ground(request.instruction, frame,
                                                last_target=request.last_target)
            effects[:0] = session.grounded(request, grounding, frame, now)
        elif isinstance(effect, Reply) and effect.command is not None:
            result = effect.result
            if result.goals:
                decision = safety.check(result, session.safety, now=STAMP_NOW)
                if not decision.allowed:
                    safety.apply(result, decision)
            replies.append(result)
    assert replies, "every command gets a reply"
    return replies


def judge(entry: Entry, replies: list[GroundingResult], frame: Frame) -> tuple[str, str]:
    problem, goal_wrong = meaning_problem(entry, replies, frame)
    if problem is None:
        return "understood", ""
    if goal_wrong:
        return "wrong_goal", problem
    answer = replies[-1]
    if answer.status in REFUSALS and not answer.goals:
        said = f"{answer.message} {answer.clarification or ''}".lower()
        named = entry.status != "ok" and all(w.lower() in said for w in entry.says)
        return ("refused_named" if named else "refused_instead"), problem
    return "wrong_no_goal", problem


def meaning_problem(entry: Entry, replies: list[GroundingResult],
                    frame: Frame) -> tuple[str | None, bool]:
    """(what differs from the entry's expectation, or None; whether a goal was sent for it)."""
    sent = any(r.goals for r in replies)
    answer = replies[-1]
    if entry.status != "ok":
        if sent:
            return "a goal where a refusal was expected", True
        if entry.status == "refused":
            if answer.status not in REFUSALS:
                return "not refused", False
        elif answer.status != entry.status:
            return f"status {answer.status}, expected {entry.status}", False
        said = f"{answer.message} {answer.clarification or ''}".lower()
        missing = [w for w in entry.says if w.lower() not in said]
        return (f"does not name {missing}" if missing else None), False
    if entry.steps is not None:
        got = plan_steps(entry.text)
        want = [[str(x) for x in s[:2]] for s in entry.steps]
        if got != want:
            return f"plan {got}, expected {want}", sent
    first = replies[0]
    if first.step not in (None, 0, 1):
        return f"the first reply is for step {first.step}", sent
    problem = reply_problem(entry, first, frame, entry.action or (
        entry.steps[0][0] if entry.steps else None), entry.label)
    if problem:
        return problem, bool(first.goals)
    for reply in replies[1:]:  # later steps of a plan: each goal for its own step's object
        if not reply.step or entry.steps is None or not reply.goals:
            continue
        # "all the cups" is one parsed step that becomes one pick per cup when grounded.
        step = entry.steps[min(reply.step, len(entry.steps)) - 1]
        problem = reply_problem(Entry(entry.group, entry.text, entry.scene, "ok"), reply,
                                frame, step[0], step[2] if len(step) > 2 else step[1])
        if problem:
            return f"step {reply.step}: {problem}", True
    if answer is not first and answer.status not in ("ok",):
        return f"step {answer.step}: {answer.status}", False
    return None, False


def reply_problem(entry: Entry, result: GroundingResult, frame: Frame, action: str | None,
                  label: str | None) -> str | None:
    if result.status != "ok":
        return f"status {result.status}, expected ok"
    got = result.instruction.action if result.instruction else None
    if got != action:
        return f"action {got}, expected {action}"
    if action in ("stop", "ask") or not entry.goal:  # answered, never a goal
        if result.goals:
            return f"a goal for {action}"
        said = (result.message or "").lower()
        missing = [w for w in entry.says if w.lower() not in said]
        if missing:
            return f"the answer does not say {missing}"
        if action in ("stop", "ask"):
            return None
    elif not result.goals:
        return "no goal"
    target = result.destination if action == "place" else (
        result.targets[0] if result.targets else None)
    if target is None or target.label != label:
        return f"target {target.label if target else None}, expected {label}"
    middle = (target.bbox[0] + target.bbox[2]) / 2.0
    if entry.where == "left" and middle >= frame.width / 2.0:
        return "target on the right, expected left"
    if entry.where == "right" and middle <= frame.width / 2.0:
        return "target on the left, expected right"
    if entry.color is not None and target.color != entry.color:
        return f"target colour {target.color}, expected {entry.color}"
    return None


def plan_steps(text: str) -> list[list[str]]:
    """[action, noun] per step of the parsed plan (the destination's noun for a place step that
    has one)."""
    steps = []
    for step in parse_plan(text).steps:
        query = step.destination if step.action == "place" and step.destination else step.target
        noun = query.noun if query is not None else None
        steps.append([str(step.action)] + ([noun] if noun else []))
    return steps


def describe(result: GroundingResult, frame: Frame) -> str:
    action = result.instruction.action if result.instruction else None
    target = ""
    if result.targets:
        t = result.targets[0]
        side = "left" if (t.bbox[0] + t.bbox[2]) / 2.0 < frame.width / 2.0 else "right"
        target = f" {t.label} ({side}{', ' + t.color if t.color else ''})"
    goals = f" goals={[g.kind for g in result.goals]}" if result.goals else ""
    message = " ".join((result.message or "").split())[:140]
    return f"{result.status} {action}{target}{goals}: {message}"


# ---------------------------------------------------------------------------------- tables
@dataclass
class Report:
    outcomes: list[Outcome]

    def groups(self) -> list[str]:
        return list(dict.fromkeys(o.entry.group for o in self.outcomes))

    def counts(self, group: str | None = None) -> Counter:
        counts: Counter = Counter()
        for o in self.outcomes:
            if group is not None and o.entry.group != group:
                continue
            counts["total"] += 1
            gap = o.entry.known_gap is not None and o.verdict not in ("understood", "wrong_goal",
                                                                      "crash")
            counts["known_gap" if gap else o.verdict] += 1
        return counts

    def rows(self) -> list[list[Any]]:
        columns = ("total", *CLASSES, "known_gap")
        rows = [[g, *(self.counts(g)[c] for c in columns)] for g in self.groups()]
        rows.append(["all", *(self.counts()[c] for c in columns)])
        return rows

    def header(self) -> list[str]:
        return ["group", "total", "understood", "refused, word named", "refused instead",
                "wrong goal", "wrong, no goal", "crash", "known gap"]

    def text_table(self) -> str:
        rows = [self.header(), *self.rows()]
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                                   for i, (c, w) in enumerate(zip(r, widths))) for r in rows)

    def markdown(self) -> str:
        rows = [self.header(), *self.rows()]
        lines = ["| " + " | ".join(map(str, r)) + " |" for r in rows]
        lines.insert(1, "|" + "---|" * len(rows[0]))
        return "\n".join(lines)

    def failures(self, verdicts: tuple[str, ...]) -> list[Outcome]:
        return [o for o in self.outcomes if o.verdict in verdicts]

    def listing(self, outcomes: list[Outcome]) -> str:
        lines = []
        for o in outcomes:
            e = o.entry
            want = e.status if e.status != "ok" else f"ok {e.action or e.steps} {e.label}"
            extra = f" ({e.where})" if e.where else ""
            says = f" naming {e.says}" if e.says else ""
            gap = f"\n      known gap: {e.known_gap}" if e.known_gap else ""
            lines.append(f"  [{e.group}/{e.scene}] {e.shown!r}\n      expected {want}{extra}"
                         f"{says}\n      got {o.got}{gap}")
        return "\n".join(lines)


@lru_cache(maxsize=1)
def corpus_report() -> Report:
    return Report([run_entry(entry) for entry in load_corpus()])


# ----------------------------------------------------------------------------------- tests
def test_the_corpus_is_large_bilingual_and_well_formed() -> None:
    entries = load_corpus()
    assert len(entries) >= 300
    groups = Counter(e.group for e in entries)
    assert set(groups) == {"plain", "attributes", "relations", "ordinals", "negation",
                           "multi_step", "corrections", "typos", "polite", "unknown_words",
                           "non_graspable", "hostile", *NOT_COMMAND_GROUPS, *MEMORY_GROUPS,
                           *GRASP_GROUPS}
    zh = [e for e in entries if any("\u4e00" <= ch <= "\u9fff" for ch in e.text)]
    assert len(zh) >= 60
    for e in entries:
        assert e.status in ("ok", "refused", *REFUSALS), e
        if e.status == "ok":
            assert e.label is not None or (e.action or (e.steps or [[None]])[0][0]) in (
                "stop", "ask"), e
        assert e.non_graspable == (e.group == "non_graspable"), e
        assert not (e.known_gap and e.non_graspable), e


def test_the_corpus_never_gives_a_wrong_goal_and_meets_its_rates() -> None:
    report = corpus_report()
    print("\n" + report.text_table())
    graspable = Report([o for o in report.outcomes if not o.entry.non_graspable])
    wrong = graspable.failures(("wrong_goal",))
    gaps = [o for o in graspable.outcomes
            if o.entry.known_gap and o.verdict not in ("understood", "wrong_goal")]
    if gaps:
        print(f"\nknown gaps ({len(gaps)}):\n{graspable.listing(gaps)}")
    fixed = [o for o in graspable.outcomes if o.entry.known_gap and o.verdict == "understood"]
    if fixed:
        print(f"\nknown gaps now understood - drop their mark ({len(fixed)}):\n"
              f"{graspable.listing(fixed)}")
    assert not wrong, f"wrong goals:\n{graspable.listing(wrong)}"
    crashed = graspable.failures(("crash",))
    assert not crashed, f"the session raised:\n{graspable.listing(crashed)}"
    # Any outcome but a refusal is a failure unless the entry records it as a known gap.
    bad = [o for o in graspable.failures(("wrong_no_goal",)) if not o.entry.known_gap]
    assert not bad, f"wrong meaning (no goal):\n{graspable.listing(bad)}"
    strict = [o for o in graspable.failures(("refused_instead",))
              if o.entry.group in STRICT_GROUPS and not o.entry.known_gap]
    assert not strict, f"strict groups, not understood nor refused naming the word:\n" \
                       f"{graspable.listing(strict)}"
    counts = graspable.counts()
    rate = counts["understood"] / counts["total"]
    print(f"\nunderstood as expected: {counts['understood']} / {counts['total']} = {rate:.1%} "
          f"(floor {MIN_UNDERSTOOD_RATE:.0%})")
    assert rate >= MIN_UNDERSTOOD_RATE


def test_non_graspable_targets_never_get_a_goal() -> None:
    """"pick up the person": the session's safety gate refuses grasping people, animals and
    vehicles, with the command.  Reported apart from the rest of the corpus: the rule belongs to
    the gate, not the parser."""
    report = Report([o for o in corpus_report().outcomes if o.entry.non_graspable])
    print("\n" + report.text_table())
    bad = [o for o in report.outcomes if o.verdict not in ("understood", "refused_named")]
    assert not bad, f"non-graspable targets not refused:\n{report.listing(bad)}"


def test_questions_statements_harm_keep_away_and_affordances_never_give_a_goal() -> None:
    """Issue #20's groups, EN + ZH, on real photos with depth and a calibration (the CLI's
    grounding): every entry understood or refused naming its word, and never a goal.
    tests/test_node_one_path.py sends the same entries to the node over DDS."""
    report = Report([o for o in corpus_report().outcomes
                     if o.entry.group in NOT_COMMAND_GROUPS])
    print("\n" + report.text_table())
    zh = [o for o in report.outcomes if any("\u4e00" <= ch <= "\u9fff" for ch in o.entry.text)]
    assert len(zh) >= 25 and len(report.outcomes) >= 90
    bad = [o for o in report.outcomes if o.verdict not in ("understood", "refused_named")]
    assert not bad, f"not understood nor refused naming the word:\n{report.listing(bad)}"


def test_the_memory_group_never_gives_a_wrong_goal() -> None:
    """Issue #21: commands about what the robot saw before, EN + ZH: each understood (a goal
    from memory where one is meant, an answer from memory for "where") or refused naming why."""
    report = Report([o for o in corpus_report().outcomes if o.entry.group in MEMORY_GROUPS])
    print("\n" + report.text_table())
    assert len(report.outcomes) >= 15
    bad = [o for o in report.outcomes if o.verdict not in ("understood", "refused_named")]
    assert not bad, f"not understood nor refused naming the word:\n{report.listing(bad)}"


def test_the_grasp_group_never_gives_a_wrong_goal() -> None:
    """Issue #22: grasp wishes ("from above" taken; "by the handle", "from the side", "with the
    suction cup" named), and several objects in one command (not supported: named), EN + ZH."""
    report = Report([o for o in corpus_report().outcomes if o.entry.group in GRASP_GROUPS])
    print("\n" + report.text_table())
    assert len(report.outcomes) >= 20
    bad = [o for o in report.outcomes if o.verdict not in ("understood", "refused_named")]
    assert not bad, f"not understood nor refused naming the word:\n{report.listing(bad)}"


@pytest.mark.parametrize("text", ["grab the red cup", "抓取红色杯子"])
def test_the_runner_sees_a_right_goal_and_would_catch_a_wrong_one(text: str) -> None:
    """The runner itself: the left red cup is understood; the same result judged against an
    entry that meant the blue cup is a wrong goal."""
    right = Entry("attributes", text, "two_cups", "ok", action="pick", label="cup",
                  where="left", color="red")
    assert run_entry(right).verdict == "understood"
    wrong = Entry("attributes", text, "two_cups", "ok", action="pick", label="cup",
                  where="right", color="blue")
    assert run_entry(wrong).verdict == "wrong_goal"
    refusal = Entry("negation", text, "two_cups", "rejected", says=["not to"])
    assert run_entry(refusal).verdict == "wrong_goal"
