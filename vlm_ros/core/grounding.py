"""ObjectQuery + Frame + Backend -> one grounded candidate, or an honest "not found" / "which one?".

Why this is its own stage: a detector only says "here are boxes labelled cup".  Choosing *the* cup a
person meant, refusing a blue cup for "the red cup", and asking back when two cups fit equally is
the part that makes a robot safe to command, and it must behave the same for every backend.

How a query is grounded (each step appends its reason to ``Candidate.reasons``):

1. Candidates: detections whose label the noun maps to (``vocabulary.labels_for_noun``).  A noun
   the model cannot see at all is ``not_found`` straight away; broken boxes and NaN scores are
   dropped with a reason, never raised on.
2. Confidence: ``match`` starts as the detector score relative to the best candidate's, flat at 1
   for any box at least half as confident as the best (``CONFIDENCE_PLATEAU``).  Two real cups at
   0.9 and 0.6 are both cups; a 0.3 box next to a 0.95 one is probably not.
3. Colour (filter): ``attributes.judge_color`` on the object's own pixels; a failing candidate is
   out, and if none is left the message says what colour the object actually is.
4. Relation (rank): the anchor is grounded by the same function on the same detections, then each
   candidate is scored by ``attributes.relation_score`` relative to the best.
5. Selectors (pick one): size, location and ordinal words pick one candidate by construction
   (ties within a few pixels stay ties).
6. Decision: ``ok`` when the best match beats every other by ``ambiguity_margin``; otherwise
   ``ambiguous`` with a question built from what tells the contenders apart (position, colour),
   worded so the parser's follow-ups ("the left one", "the red one") answer it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from vlm_ros.core.attributes import (
    LOCATION_ORDERS,
    ORDERS,
    ORDINAL_ORDERS,
    RELATIONS,
    SIZE_ORDERS,
    Scene,
    box_problem,
    clip_box,
    fill_depths,
    iou,
    judge_color,
    position_phrases,
    rank,
    relation_score,
    select_nth,
)
from vlm_ros.core.backend import Backend
from vlm_ros.core.color import ColorProfile, color_profile, exposure_gain, normalize_color
from vlm_ros.core.graspable import WHY_NOT_GRASPED, category_of
from vlm_ros.core.types import Candidate, Detection, Frame, ObjectQuery, Status
from vlm_ros.core.vocabulary import labels_for_noun, query_phrases

# A detection at least this share of the best candidate's score counts as fully confident: the
# detector's score says "is this a cup", not "is this the cup you mean".
CONFIDENCE_PLATEAU = 0.5
# A target candidate overlapping its anchor this much is the anchor under another label.
SAME_OBJECT_IOU = 0.85
# Clarification questions list at most this many options; beyond it they give examples.
MAX_LISTED_OPTIONS = 5
# Colours are described in a question only for this many contenders (GrabCut per box).
MAX_COLOURED_OPTIONS = 4

IRREGULAR_PLURALS: dict[str, str] = {
    "person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice",
    "knife": "knives", "sheep": "sheep", "skis": "skis", "scissors": "scissors",
    "glass": "glasses", "bus": "buses", "dining table": "dining tables",
}


# The candidate floor for a backend that states no score threshold of its own.
DEFAULT_MIN_SCORE = 0.3


@dataclass
class GroundingConfig:
    # Detector score floor for candidates; None = the backend's own (its ``score_threshold`` in
    # force, which is its ``default_score_threshold`` unless the user set one).
    min_score: float | None = None
    min_match: float = 0.5  # attribute agreement needed to count as a match
    ambiguity_margin: float = 0.15  # if the best two matches are closer than this -> ambiguous
    color_min_fraction: float = 0.25
    max_candidates: int = 10  # how many candidates to report
    # What is never picked up (vlm_ros/core/graspable.py): the safety parameters never_grasp /
    # may_grasp, so that "grab something" never chooses a person.
    never_grasp: frozenset[str] = frozenset()
    may_grasp: frozenset[str] = frozenset()


@dataclass
class GroundingOutcome:
    status: Status  # one of "ok" | "not_found" | "ambiguous"
    target: Candidate | None
    candidates: list[Candidate]  # everything considered, best first, with match + reasons
    clarification: str | None  # question for "ambiguous"
    message: str  # one human sentence: what was chosen / why nothing / why ambiguous
    anchor: Candidate | None = None  # the grounded reference object for relational queries
    # For "ambiguous": the answers the question offers ("the one on the left"), in its order.
    choices: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------------------------


def plural(noun: str, count: int = 2) -> str:
    """"cup" -> "cups", "person" -> "people"; the noun itself for a count of one."""
    if count == 1:
        return noun
    if noun in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def counted(noun: str, count: int) -> str:
    """"a cup", "an apple", "2 cups"."""
    if count == 1:
        return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"
    return f"{count} {plural(noun, count)}"


def _join_or(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} or {parts[-1]}"


def _query_name(query: ObjectQuery) -> str:
    return (query.noun or "").strip() or "object"


def _describe_query(query: ObjectQuery) -> str:
    """Short words for a query in messages: "red cup", "bowl"."""
    words = [w for w in (query.color, query.size) if w]
    return " ".join([*words, _query_name(query)])


# A single object "on the left" must sit left of this fraction of the image width (and likewise
# for right / top / bottom): a little past the middle still counts, the far side does not.
_SIDE_TOLERANCE = 0.4
_IMAGE_SIDES = frozenset({"left", "right", "top", "bottom"})


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------


def ground_query(
    query: ObjectQuery,
    frame: Frame,
    backend: Backend,
    config: GroundingConfig,
    detections: list[Detection] | None = None,
    to_pick: bool = False,
) -> GroundingOutcome:
    """Ground ``query`` in ``frame`` using ``detections`` (or one ``backend.detect`` call).

    ``detections`` lets the caller share one model pass between the target, the destination and
    their anchors.  ``to_pick``: the object will be picked up, so only objects that may be are
    candidates ("grab something" never chooses a person).  Never raises for bad detections;
    statuses are "ok", "not_found", "ambiguous".
    """
    context = _Context(frame, Scene.from_frame(frame), backend, config)
    if detections is None:
        unknown = _first_unknown_noun(query, backend)
        if unknown is not None:
            return _unknown_noun(unknown, backend)
        detections = backend.detect(frame.rgb, detection_queries(query, backend))
    context.detections = list(detections)
    return _Grounder(query, context, to_pick).run().outcome


def ground_all(
    query: ObjectQuery,
    frame: Frame,
    backend: Backend,
    config: GroundingConfig,
    detections: list[Detection],
) -> tuple[list[Candidate], GroundingOutcome | None]:
    """Every object ``query`` describes, without choosing one (for "is there a …?" / "how many
    …?"): (the matches, best first; the not-found outcome that says why there are none)."""
    context = _Context(frame, Scene.from_frame(frame), backend, config, list(detections))
    return _Grounder(query, context).matches()


def _first_unknown_noun(query: ObjectQuery | None, backend: Backend) -> str | None:
    """The first noun in the query tree that the backend cannot see (skip the model call)."""
    if backend.resolves_referring_expressions:
        return None
    while query is not None:
        labels = labels_for_noun(query.noun, backend.vocabulary)
        if labels is not None and not labels:
            return query.noun
        query = query.anchor
    return None


def score_floor(config: GroundingConfig, backend: Backend) -> float:
    """The candidate score floor: ``config.min_score`` when set, else the backend's threshold
    in force (``score_threshold``), its ``default_score_threshold``, or DEFAULT_MIN_SCORE."""
    if config.min_score is not None:
        return float(config.min_score)
    for name in ("score_threshold", "default_score_threshold"):
        value = getattr(backend, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return DEFAULT_MIN_SCORE


def detection_queries(query: ObjectQuery, backend: Backend) -> list[str]:
    """Queries for one detect() call covering the target and all its anchors ([] = all)."""
    if backend.resolves_referring_expressions:
        # The whole expression, exclusions included: the model resolves it ("the cup, not the
        # red one"); nothing the user said is left out of what it is asked.
        phrase = query.text or _query_name(query)
        return [", ".join([phrase, *(f"not {_describe_query(e)}" for e in query.exclusions)])]
    phrases: list[str] = []
    node: ObjectQuery | None = query
    while node is not None:
        if labels_for_noun(node.noun, backend.vocabulary) is None:
            return []  # a generic noun ("the red thing"): ask for everything
        for phrase in query_phrases(node.noun, backend.vocabulary):
            if phrase not in phrases:
                phrases.append(phrase)
        node = node.anchor
    return phrases


def _unknown_noun(noun: str, backend: Backend) -> GroundingOutcome:
    return GroundingOutcome(
        status="not_found", target=None, candidates=[], clarification=None,
        message=f"'{noun}' is not something the {backend.name} detector knows",
    )


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


@dataclass
class _Context:
    """What every (recursive) grounding of one command shares: frame, model output, caches."""

    frame: Frame
    scene: Scene
    backend: Backend
    config: GroundingConfig
    detections: list[Detection] = field(default_factory=list)
    profiles: dict[tuple[int, str | None], ColorProfile] = field(default_factory=dict)
    gain: float | None = None

    def profile(self, cand: Candidate, part: str | None) -> ColorProfile:
        key = (cand.id, part)
        if key not in self.profiles:
            if self.gain is None:  # one exposure gain for every object of the frame
                self.gain = exposure_gain(self.frame.rgb)
            self.profiles[key] = color_profile(self.frame.rgb, cand.bbox, part, cand.mask,
                                               label=cand.label, depth_m=self.frame.depth_m,
                                               gain=self.gain, object_depth_m=cand.depth_m)
        return self.profiles[key]


@dataclass
class _Result:
    """An outcome plus the contenders behind an "ambiguous" (needed to relate to an anchor)."""

    outcome: GroundingOutcome
    contenders: list[Candidate] = field(default_factory=list)


class _Stop(Exception):
    """Ends a grounding early with a finished result; caught in _Grounder.run, never escapes."""

    def __init__(self, result: _Result) -> None:
        super().__init__(result.outcome.message)
        self.result = result


class _Grounder:
    """One query's grounding; stages narrow ``viable`` and annotate every candidate."""

    def __init__(self, query: ObjectQuery, context: _Context, to_pick: bool = False) -> None:
        self.query = query
        self.ctx = context
        self.to_pick = to_pick  # only objects that may be picked up are candidates
        self.not_graspable: list[Candidate] = []
        self.cfg = context.config
        self.min_score = score_floor(self.cfg, context.backend)
        self.name = _query_name(query)
        self.candidates: list[Candidate] = []
        self.dropped: list[Candidate] = []
        self.viable: list[Candidate] = []
        self.anchor: Candidate | None = None

    # ------------------------------------------------------------------ driver
    def run(self) -> _Result:
        try:
            if self.ctx.backend.resolves_referring_expressions:
                return self._trust_model()
            self._collect()
            self._graspable()
            self._confidence()
            self._exclude()
            self._color()
            self._relation()
            self._selectors()
            return self._decide()
        except _Stop as stop:
            return stop.result

    def matches(self) -> tuple[list[Candidate], GroundingOutcome | None]:
        """The stages that judge each candidate, without the choice of one (see ground_all)."""
        try:
            if self.ctx.backend.resolves_referring_expressions:
                result = self._trust_model()
                found = result.outcome.target
                return ([found] if found is not None else [],
                        None if found is not None else result.outcome)
            self._collect()
            self._confidence()
            self._exclude()
            self._color()
            self._relation()
            self._selectors()
        except _Stop as stop:
            if stop.result.outcome.status == "ambiguous":  # several match: all of them
                return sorted(stop.result.contenders or self.viable, key=lambda c: -c.match), None
            return [], stop.result.outcome
        return sorted(self.viable, key=lambda c: -c.match), None

    def _stop(self, status: Status, message: str,
              clarification: tuple[str, list[str]] | None = None,
              contenders: list[Candidate] | None = None) -> _Stop:
        question, choices = clarification if clarification is not None else (None, [])
        outcome = GroundingOutcome(
            status=status, target=None, candidates=self._report(), clarification=question,
            message=message, anchor=self.anchor, choices=choices,
        )
        return _Stop(_Result(outcome, contenders or []))

    def _not_found(self, message: str) -> _Stop:
        return self._stop("not_found", message)

    def _report(self) -> list[Candidate]:
        viable_ids = {c.id for c in self.viable}
        ranked = sorted(self.candidates, key=lambda c: (c.id not in viable_ids, -c.match))
        return (ranked + self.dropped)[: max(0, self.cfg.max_candidates)]

    # ------------------------------------------------------------------ stages
    def _collect(self) -> None:
        backend, query = self.ctx.backend, self.query
        labels = labels_for_noun(query.noun, backend.vocabulary)
        if labels is not None and not labels:
            raise _Stop(_Result(_unknown_noun(query.noun or "", backend)))
        phrases = set(query_phrases(query.noun, backend.vocabulary)) | {self.name}
        seen: set[str] = set()
        width, height = self.ctx.scene.width, self.ctx.scene.height
        for index, det in enumerate(self.ctx.detections):
            problem = box_problem(det.bbox, det.score, width, height)
            if problem is None and det.score >= self.min_score:
                seen.add(det.label)
            wanted = labels is None or det.label in labels or (
                backend.vocabulary is None and det.phrase in phrases
            )
            if not wanted:
                continue
            if problem is not None:
                self.dropped.append(_dropped_candidate(index, det, f"dropped: {problem}"))
            elif det.score < self.min_score:
                self.dropped.append(_dropped_candidate(
                    index, det, f"dropped: score {det.score:.2f} < {self.min_score:.2f}"))
            else:
                mask = det.mask if det.mask is not None and det.mask.shape[:2] == (
                    height, width) else None
                self.candidates.append(Candidate(
                    id=index, label=det.label, score=float(det.score),
                    bbox=clip_box(det.bbox, width, height), mask=mask,
                    reasons=[f"{det.label} {det.score:.2f}"],
                ))
        if not self.candidates:
            visible = f" (I see: {_join_and(sorted(seen))})" if seen else ""
            raise self._not_found(f"I don't see any {plural(self.name)}{visible}")
        fill_depths(self.candidates, self.ctx.frame)

    def _graspable(self) -> None:
        """For a pick: objects that are never picked up (people, animals, large things) are no
        candidates, whatever the noun let in ("something", "anything but the cup")."""
        if not self.to_pick:
            return
        kept, refused = [], []
        for cand in self.candidates:
            category = category_of(cand.label, self.cfg.never_grasp, self.cfg.may_grasp)
            if category is None:
                kept.append(cand)
            else:
                cand.reasons.append(f"not picked up: {WHY_NOT_GRASPED[category]}")
                refused.append(cand)
        self.candidates = kept
        self.dropped = refused + self.dropped
        self.not_graspable = refused
        if not kept:
            seen = _join_and(sorted({c.label for c in refused}))
            raise self._not_found(f"I see {seen}, but nothing I may pick up (people, animals "
                                  f"and large things are never picked up)")

    def _confidence(self) -> None:
        best = max(c.score for c in self.candidates)
        for cand in self.candidates:
            # With a zero score floor and only zero scores there is no confidence to compare.
            cand.match = min(1.0, cand.score / (CONFIDENCE_PLATEAU * best)) if best > 0 else 1.0
            if cand.match < self.cfg.min_match:
                cand.reasons.append(f"weak next to the best ({best:.2f})")
        self.viable = [c for c in self.candidates if c.match >= self.cfg.min_match]

    def _exclude(self) -> None:
        """Drop the candidates the command rules out ("not the red one", "except the truck")."""
        for excluded in self.query.exclusions:
            ids = self._matching_ids(excluded)
            said = excluded.text or _describe_query(excluded)
            for cand in self.viable:
                cand.reasons.append(f"{'is' if cand.id in ids else 'not'} {said} (excluded)")
            kept = [c for c in self.viable if c.id not in ids]
            if not kept:
                count = len(self.viable)
                self.viable = []
                besides = ""
                if self.not_graspable:  # "grab something that isn't the cup" by a table
                    labels = _join_and(sorted({c.label for c in self.not_graspable}))
                    besides = f"; the {labels} I may not pick up"
                raise self._not_found(
                    f"I see {counted(self.name, count)}, but you excluded "
                    f"{'it' if count == 1 else 'all of them'} ({said}){besides}")
            self.viable = kept

    def _matching_ids(self, excluded: ObjectQuery) -> set[int]:
        """Ids of the viable candidates that ``excluded`` describes."""
        backend = self.ctx.backend
        labels = labels_for_noun(excluded.noun, backend.vocabulary) if excluded.noun else None
        matching = [c for c in self.viable if labels is None or c.label in labels]
        color = normalize_color(excluded.color) if excluded.color else None
        if excluded.color and color is None:
            raise self._not_found(f"I don't know the colour '{excluded.color}'")
        if color is not None:
            matching = [c for c in matching if judge_color(
                self.ctx.profile(c, excluded.color_part), color, self.cfg.color_min_fraction,
                self.cfg.min_match).passes]
        if any(v is not None for v in (excluded.size, excluded.location, excluded.ordinal,
                                        excluded.relation)):
            # "not the left one": which one that is, among the objects the command is about.
            among = ObjectQuery(noun=excluded.noun or self.query.noun, text=excluded.text,
                                color=excluded.color, color_part=excluded.color_part,
                                size=excluded.size, location=excluded.location,
                                ordinal=excluded.ordinal, ordinal_from=excluded.ordinal_from,
                                relation=excluded.relation, anchor=excluded.anchor)
            result = _Grounder(among, self.ctx).run()
            chosen = ({c.id for c in result.contenders} if result.outcome.status == "ambiguous"
                      else {result.outcome.target.id} if result.outcome.target else set())
            matching = [c for c in matching if c.id in chosen]
        return {c.id for c in matching}

    def _color(self) -> None:
        color = self.query.color
        if not color:
            return
        name = normalize_color(color)
        if name is None:
            raise self._not_found(f"I don't know the colour '{color}'")
        part = self.query.color_part
        passing: list[Candidate] = []
        for cand in self.viable:
            profile = self.ctx.profile(cand, part)
            verdict = judge_color(profile, name, self.cfg.color_min_fraction, self.cfg.min_match)
            cand.color, cand.color_fraction = profile.dominant, verdict.fraction
            cand.reasons.append(verdict.reason)
            cand.match *= verdict.agreement
            if verdict.passes:
                passing.append(cand)
        if not passing:
            looks = sorted({c.color for c in self.viable if c.color})
            if len(self.viable) == 1:
                actual = looks[0] if looks else "of no clear colour"
                subject = f"its {part} part is" if part else "it is"
                message = f"I see {counted(self.name, 1)}, but {subject} {actual}, not {name}"
            else:
                message = (f"I see {counted(self.name, len(self.viable))}, but none is {name}"
                           f" (they are {_join_and(looks) or 'of no clear colour'})")
            self.viable = []
            raise self._not_found(message)
        self.viable = passing

    def _relation(self) -> None:
        query = self.query
        if not query.relation:
            return
        relation = RELATIONS.get(query.relation)
        if relation is None:
            raise self._not_found(f"I don't know how to check '{query.relation}'")
        if query.anchor is None:
            raise self._not_found(f"{relation.phrase} what? The command names no reference object")
        anchor_name = _describe_query(query.anchor)
        anchor_result = _Grounder(query.anchor, self.ctx).run()
        anchor_outcome = anchor_result.outcome
        if anchor_outcome.status == "not_found":
            raise self._not_found(
                f"I can't find the {anchor_name} the {self.name} should be {relation.phrase}: "
                f"{anchor_outcome.message}")
        if anchor_outcome.status == "ok" and anchor_outcome.target is not None:
            anchors = [anchor_outcome.target]
        else:
            anchors = anchor_result.contenders
        anchor = self._pick_anchor(anchors, anchor_outcome, query.relation, anchor_name)
        self.anchor = anchor
        scores: dict[int, float] = {}
        for cand in self.viable:
            if cand.id == anchor.id or iou(cand.bbox, anchor.bbox) >= SAME_OBJECT_IOU:
                cand.reasons.append(f"is the {anchor_name} itself")
                continue
            verdict = relation_score(cand, anchor, query.relation, self.ctx.scene,
                                     f"{anchor.label} #{anchor.id}")
            cand.reasons.append(verdict.reason)
            if verdict.score is not None and verdict.score > 0:
                scores[cand.id] = verdict.score
        best = max(scores.values(), default=0.0)
        has_selectors = self._selector_steps() != []
        kept: list[Candidate] = []
        for cand in self.viable:
            if cand.id not in scores:
                cand.match = 0.0
                continue
            factor = scores[cand.id] / best
            if has_selectors:
                # Selectors choose among those that clearly satisfy the relation.
                if factor >= 0.5:
                    kept.append(cand)
                else:
                    cand.match *= factor
                continue
            cand.match *= factor
            kept.append(cand)
        if not kept:
            n = len(self.viable)
            subject = "it is not" if n == 1 else "none is"
            self.viable = []
            raise self._not_found(
                f"I see {counted(self.name, n)}, but {subject} {relation.phrase} the "
                f"{anchor_name}")
        self.viable = kept

    def _pick_anchor(self, anchors: list[Candidate], anchor_outcome: GroundingOutcome,
                     relation: str, anchor_name: str) -> Candidate:
        """The anchor to relate to: the only one, or the one whose best partner clearly wins."""
        if len(anchors) == 1:
            return anchors[0]
        best_pair: dict[int, float] = {}
        for anchor in anchors:
            scores = [
                relation_score(c, anchor, relation, self.ctx.scene).score
                for c in self.viable
                if c.id != anchor.id and iou(c.bbox, anchor.bbox) < SAME_OBJECT_IOU
            ]
            best_pair[anchor.id] = max((s for s in scores if s is not None), default=0.0)
        ordered = sorted(anchors, key=lambda a: -best_pair[a.id])
        top, second = best_pair[ordered[0].id], best_pair[ordered[1].id]
        if top > 0 and (top - second) / top >= self.cfg.ambiguity_margin:
            ordered[0].reasons.append(
                f"the {anchor_name} with the best {RELATIONS[relation].phrase} partner")
            return ordered[0]
        phrase = RELATIONS[relation].phrase
        question = self._question(anchors, _query_name(self.query.anchor or ObjectQuery()),
                                  lead=f"{phrase[:1].upper()}{phrase[1:]} which")
        raise self._stop(
            "ambiguous",
            f"I see {counted(_query_name(self.query.anchor or ObjectQuery()), len(anchors))} "
            f"and cannot tell which one the {self.name} should be {phrase}",
            clarification=question, contenders=anchors,
        ) from None

    def _selector_steps(self) -> list[tuple[str, int]]:
        """(ORDERS key, ordinal) for each selector the query has, in the order they apply."""
        query, steps = self.query, []
        if query.size:
            steps.append((self._order_key(SIZE_ORDERS, query.size, "size"), 1))
        ordinal_order = None
        if query.ordinal is not None:
            ordinal_order = self._order_key(ORDINAL_ORDERS, query.ordinal_from, "ordinal start")
        if query.location:
            location_order = self._order_key(LOCATION_ORDERS, query.location, "location")
            if location_order != ordinal_order:  # "the 2nd cup on the left" counts from the left
                steps.append((location_order, 1))
        if query.ordinal is not None and ordinal_order is not None:
            steps.append((ordinal_order, int(query.ordinal)))
        return steps

    def _order_key(self, table: dict, word: str | None, kind: str) -> str:
        key = table.get(word.lower() if isinstance(word, str) else word)
        if key is None:
            raise self._not_found(f"I don't know the {kind} '{word}'")
        return key

    def _selectors(self) -> None:
        steps = self._selector_steps()
        for number, (order_name, ordinal) in enumerate(steps, start=1):
            if number < len(steps):
                self._narrow(order_name)
                continue
            if len(self.viable) == 1 and order_name in _IMAGE_SIDES and (
                    self.query.location is not None and ordinal == 1):
                self._check_side(self.viable[0], order_name)
            selection = select_nth(self.viable, order_name, self.ctx.scene, ordinal)
            if selection is None:
                n = len(self.viable)
                verb = "is" if n == 1 else "are"
                raise self._not_found(
                    f"there {verb} only {n} {plural(self.name, n)}"
                    + (f" that {'fits' if n == 1 else 'fit'}" if self.query.color
                       or self.query.relation else ""))
            chosen_ids = {c.id for c in selection.chosen}
            for cand in self.viable:
                cand.reasons.append(selection.reasons[cand.id])
                if cand.id not in chosen_ids:
                    cand.match = 0.0
            self.viable = [c for c in self.viable if c.id in chosen_ids]

    def _check_side(self, cand: Candidate, side: str) -> None:
        """One object left: "on the left" must then hold in the image, not merely among one
        ("the blue cup on the left" is not the blue cup on the right)."""
        x, y = cand.center
        axis, size = (x, self.ctx.scene.width) if side in ("left", "right") else (
            y, self.ctx.scene.height)
        fraction = axis / max(size, 1)
        lower_half = side in ("left", "top")
        if (fraction < 1.0 - _SIDE_TOLERANCE) if lower_half else (fraction > _SIDE_TOLERANCE):
            return
        where = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}[side]
        cand.reasons.append(f"on the {where} of the image")
        self.viable = []
        raise self._not_found(f"I see {counted(self.name, 1)}, but it is on the {where}, "
                              f"not the {side}")

    def _narrow(self, order_name: str) -> None:
        """A selector that is not the last keeps the better half ("the big cup on the left")."""
        ordered, values, measured = rank(self.viable, order_name, self.ctx.scene)
        keep = max(1, math.ceil(len(ordered) / 2))
        cutoff = values[keep - 1] + measured.tolerance
        kept = [c for c, v in zip(ordered, values, strict=True) if v <= cutoff]
        word = ORDERS[order_name].superlative
        for cand in self.viable:
            inside = cand in kept
            cand.reasons.append(f"{'among' if inside else 'not among'} the {word} half")
            if not inside:
                cand.match = 0.0
        self.viable = kept

    def _decide(self) -> _Result:
        if not self.viable:  # every stage raises before this; kept so no path can IndexError
            raise self._not_found(f"no {self.name} fits")
        ranked = sorted(self.viable, key=lambda c: -c.match)
        best = ranked[0]
        contenders = [c for c in ranked
                      if best.match - c.match < self.cfg.ambiguity_margin]
        if len(contenders) == 1:
            outcome = GroundingOutcome(
                status="ok", target=best, candidates=self._report(), clarification=None,
                message=f"chose {best.label} #{best.id}: {', '.join(best.reasons)}",
                anchor=self.anchor,
            )
            return _Result(outcome, [best])
        why = "match equally well" if self.query.has_constraints() else "are visible"
        raise self._stop(
            "ambiguous",
            f"{counted(self.name, len(contenders))} {why}; I need to know which one",
            clarification=self._question(contenders, self.name), contenders=contenders,
        )

    # ------------------------------------------------------------------ questions
    def _question(self, contenders: list[Candidate], noun: str,
                  lead: str = "Which") -> tuple[str, list[str]]:
        """"Which cup: the one on the left (red) or the one on the right (blue)?", and the answers
        it offers without their colour notes ("the one on the left", ...)."""
        placed = position_phrases(contenders)
        labels_differ = len({c.label for c in contenders}) > 1
        colours: dict[int, str] = {}
        if not self.query.color and len(contenders) <= MAX_COLOURED_OPTIONS:
            for cand in contenders:
                colour = cand.color or self.ctx.profile(cand, None).dominant
                if colour:
                    colours[cand.id] = colour
            if len(set(colours.values())) < 2 or len(colours) < len(contenders):
                colours = {}
        options, choices = [], []
        for cand, template in placed:
            choice = template.format(cand.label if labels_differ else "one")
            choices.append(choice)
            options.append(f"{choice} ({colours[cand.id]})" if cand.id in colours else choice)
        if len(options) <= MAX_LISTED_OPTIONS:
            return f"{lead} {noun}: {_join_or(options)}?", choices
        examples = [options[0], options[1], options[-1]]
        return (f"I see {len(options)} {plural(noun)}. {lead} one do you mean, for example "
                f"{_join_or(examples)}?", choices)

    # ------------------------------------------------------------------ trusted models
    def _trust_model(self) -> _Result:
        """Backends that resolve the whole expression: take their single top box."""
        width, height = self.ctx.scene.width, self.ctx.scene.height
        wanted = {p.lower() for p in (self.query.text, self.query.noun) if p}
        wanted |= {p.lower() for p in query_phrases(self.query.noun, None)}
        wanted |= {p.lower() for p in detection_queries(self.query, self.ctx.backend)}
        for index, det in enumerate(self.ctx.detections):
            if det.phrase is not None and wanted and det.phrase.lower() not in wanted:
                continue
            problem = box_problem(det.bbox, det.score, width, height)
            if problem is not None:
                self.dropped.append(_dropped_candidate(index, det, f"dropped: {problem}"))
                continue
            self.candidates.append(Candidate(
                id=index, label=det.label, score=float(det.score),
                bbox=clip_box(det.bbox, width, height), reasons=[f"{det.label} {det.score:.2f}"],
            ))
        if not self.candidates:
            raise self._not_found(
                f"the {self.ctx.backend.name} model found no "
                f"{self.query.text or self.name}")
        best = max(self.candidates, key=lambda c: c.score)
        for cand in self.candidates:
            cand.match = 1.0 if cand is best else 0.0
        best.reasons.append(f"resolved by {self.ctx.backend.name}")
        self.viable = [best]
        outcome = GroundingOutcome(
            status="ok", target=best, candidates=self._report(), clarification=None,
            message=f"chose {best.label} #{best.id}: {', '.join(best.reasons)}",
        )
        return _Result(outcome, [best])


def _join_and(words: Sequence[str]) -> str:
    words = list(words)
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def _dropped_candidate(index: int, det: Detection, reason: str) -> Candidate:
    """A detection that could not be considered, kept (sanitised) so the result says why."""
    bbox = tuple(float(v) if math.isfinite(float(v)) else 0.0 for v in det.bbox)
    if len(bbox) != 4:
        bbox = (0.0, 0.0, 0.0, 0.0)
    score = float(det.score) if math.isfinite(float(det.score)) else 0.0
    return Candidate(id=index, label=det.label, score=score, bbox=bbox,  # type: ignore[arg-type]
                     match=0.0, reasons=[reason])


__all__ = [
    "DEFAULT_MIN_SCORE",
    "GroundingConfig",
    "score_floor",
    "GroundingOutcome",
    "ground_query",
    "plural",
    "counted",
    "CONFIDENCE_PLATEAU",
]
