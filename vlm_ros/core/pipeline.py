"""Instruction + frame -> GroundingResult: the grounding engine the session, CLI and simulator use.

The pipeline chains the pure stages (detect once -> ground target/destination -> 3D -> frame
transform -> goals).  It holds no conversation: which command awaits a clarification and what
"it" refers to live in :class:`vlm_ros.core.session.CommandSession`, which passes the last
target in.  It never raises for bad input: every failure becomes a result with status
"rejected" or "error".
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

from vlm_ros.core.attributes import box_problem
from vlm_ros.core.backend import Backend, BackendError
from vlm_ros.core.color import color_profile, exposure_gain
from vlm_ros.core.geometry import (
    FrameResolver,
    object_center_3d,
    object_center_on_support,
    unresolved_reason,
)
from vlm_ros.core.goals import GoalConfig, make_goals, make_view_goal
from vlm_ros.core.grasp import GraspConfig, GraspPlan, place_pose, synthesize
from vlm_ros.core.graspable import box_width_m
from vlm_ros.core.grounding import (
    GroundingConfig,
    GroundingOutcome,
    counted,
    detection_queries,
    ground_all,
    ground_query,
    plural,
)
from vlm_ros.core.object_cloud import (
    DEFAULT_CLOUD,
    CloudConfig,
    CloudProblem,
    ObjectCloud,
    object_cloud,
)
from vlm_ros.core.tabletop import recover_missed, support_and_clusters
from vlm_ros.core.types import (
    ACTIONS,
    MOTIONLESS_ACTIONS,
    Candidate,
    Detection,
    Frame,
    Goal,
    GroundingResult,
    Instruction,
    ObjectQuery,
    Vec3,
)

# Pronouns that refer to the object the robot last acted on ("put it in the bowl").
_PRONOUNS = frozenset({"it", "that", "this", "them", "它", "这个", "那个"})

_MAX_SHOWN_POINTS = 2000  # an object's measured points kept for RViz
NEAR_POINT_M = 0.10  # one of several planned picks: still within this of where it was planned

# Actions whose goals need the target in 3D: all but stop.
_SPATIAL_ACTIONS = frozenset(ACTIONS) - MOTIONLESS_ACTIONS


@dataclass
class PipelineConfig:
    grounding: GroundingConfig = field(default_factory=GroundingConfig)
    goals: GoalConfig = field(default_factory=GoalConfig)
    min_depth_m: float = 0.1
    max_depth_m: float = 10.0
    # Zoomed second detector look at objects depth finds on a support surface that the full-image
    # pass missed (vlm_ros.core.tabletop); needs depth and a camera->base transform.
    propose_from_depth: bool = False
    # Place every candidate in 3D, not only the chosen one, so the object memory learns all
    # that a grounding saw (vlm_ros/core/memory.py); those below this score are left out.
    locate_candidates: bool = True
    locate_min_score: float = 0.3
    # Grasp and place geometry from the object's masked points (vlm_ros.core.grasp).
    grasp: GraspConfig = field(default_factory=GraspConfig)
    cloud: CloudConfig = DEFAULT_CLOUD


class Pipeline:
    """The grounding stages with their configuration, the backend and the frame resolver.

    No dialogue state: ``ground`` and ``result_for_box`` depend only on their arguments, so a
    tracked box can be located while a model pass runs on another thread.
    """

    def __init__(
        self,
        backend: Backend,
        config: PipelineConfig | None = None,
        frames: FrameResolver | None = None,
    ) -> None:
        self.backend = backend
        self.config = config or PipelineConfig()
        self.frames = frames

    # ---------------------------------------------------------------- frame in
    def ground(self, instruction: Instruction, frame: Frame,
               last_target: Candidate | None = None) -> GroundingResult:
        """Ground a parsed instruction on ``frame``; ``last_target`` is what "it" refers to.

        The result is stamped with the frame and the backend, and ``timing_ms`` holds the
        stages and their ``total``.
        """
        started = time.perf_counter()
        result = self._ground(instruction, frame, last_target)
        return self._seal(result, frame, started)

    def _ground(self, instruction: Instruction, frame: Frame,
                last_target: Candidate | None) -> GroundingResult:
        timing: dict[str, float] = {}
        target_query = self._resolve_pronoun(instruction, last_target)
        queries = [q for q in (target_query, instruction.destination) if q is not None]
        if not queries:
            return GroundingResult(status="rejected", instruction=instruction,
                                   message=f"'{instruction.action}' needs an object to act on")

        t0 = time.perf_counter()
        cfg = self.config.grounding
        try:
            # One model pass for target, destination and anchors - except for backends that
            # ground whole referring expressions, which get one pass per expression.
            detections = None
            if not self.backend.resolves_referring_expressions:
                union = self._union_queries(queries)
                if self.config.propose_from_depth and self.backend.vocabulary is not None:
                    # Depth proposals are "explained" by a detection of ANY class, so ask the
                    # closed-set detector for everything (same cost: the net always runs
                    # whole); grounding filters by the command's nouns afterwards.
                    detections = self.backend.detect(frame.rgb, [])
                    detections = detections + self._recover_from_depth(frame, detections)
                else:
                    detections = self.backend.detect(frame.rgb, union)
            timing["model"] = (time.perf_counter() - t0) * 1000.0
            t0 = time.perf_counter()
            if instruction.action == "ask" and target_query is not None:
                result = self._answer(instruction, target_query, frame, detections)
                timing["reasoning"] = (time.perf_counter() - t0) * 1000.0
                result.timing_ms = timing
                return result
            if target_query is not None and (target_query.quantity is not None
                                             or target_query.near_point is not None):
                result = self._several(instruction, target_query, frame, detections or [])
                timing["reasoning"] = (time.perf_counter() - t0) * 1000.0
                result.timing_ms = timing
                return result
            target: GroundingOutcome | None = None
            if target_query is not None:
                target = ground_query(target_query, frame, self.backend, cfg, detections,
                                      to_pick=instruction.action in ("pick", "place"))
            destination: GroundingOutcome | None = None
            if instruction.destination is not None:
                destination = ground_query(instruction.destination, frame, self.backend, cfg,
                                           detections)
        except BackendError as exc:
            return GroundingResult(status="error", instruction=instruction,
                                   message=f"backend {self.backend.name} failed: {exc}")
        timing["reasoning"] = (time.perf_counter() - t0) * 1000.0

        result = self._decide(instruction, target, destination)
        t0 = time.perf_counter()
        if result.status == "ok":
            self._add_geometry_and_goals(result, instruction, frame)
        if self.config.locate_candidates:
            self._locate_candidates(result, frame)
        timing["geometry"] = (time.perf_counter() - t0) * 1000.0
        result.timing_ms = timing
        return result

    def _several(self, instruction: Instruction, query: ObjectQuery, frame: Frame,
                 detections: list[Detection]) -> GroundingResult:
        """Several objects picked one by one.  ``quantity`` ("all the cups", "both cups"): every
        match, placed in 3D, nearest to the robot first (nothing is reached over; the session
        makes one pick step of each).  ``near_point``: one such step - the match nearest the
        point it was planned at, within ``NEAR_POINT_M``, with its goals."""
        matches, none = ground_all(query, frame, self.backend, self.config.grounding, detections)
        name = query.noun or "object"
        if not matches:
            why = none.message if none is not None else f"I don't see any {plural(name)}"
            return GroundingResult(status="not_found", instruction=instruction, message=why,
                                   candidates=none.candidates if none is not None else [])
        for match in matches:
            self._locate(match, frame)
        if query.near_point is not None:
            return self._nearest_to_plan(instruction, query, matches, frame)
        if query.quantity == "both" and len(matches) != 2:
            return GroundingResult(
                status="rejected", instruction=instruction, candidates=matches,
                message=(f"'both': I see {counted(plural(name, 1), len(matches))}, not 2 - say "
                         f"which ones (e.g. 'the red {name} and the blue {name}')"))
        unplaced = [m for m in matches if m.point_base is None]
        result = GroundingResult(status="ok", instruction=instruction, candidates=list(matches))
        if unplaced:
            result.targets = list(matches)
            result.no_goal_reason = (f"no 3D goal possible (not every {name} could be placed "
                                     "in 3D: no depth or no calibration on it)")
            result.message = f"I see {counted(plural(name, 1), len(matches))}; " \
                             f"{result.no_goal_reason}"
            return result
        result.targets = sorted(matches, key=lambda m: math.hypot(m.point_base[0],
                                                                  m.point_base[1]))
        result.message = (f"{counted(plural(name, 1), len(matches))} to pick up one by one, "
                          "nearest first")
        return result

    def _nearest_to_plan(self, instruction: Instruction, query: ObjectQuery,
                         matches: list[Candidate], frame: Frame) -> GroundingResult:
        planned = query.near_point
        assert planned is not None
        placed = [m for m in matches if m.point_base is not None]
        where = f"({planned[0]:.2f}, {planned[1]:.2f}, {planned[2]:.2f})"
        nearest = min(placed, key=lambda m: math.dist(m.point_base, planned), default=None)
        if nearest is None or math.dist(nearest.point_base, planned) > NEAR_POINT_M:
            return GroundingResult(
                status="not_found", instruction=instruction, candidates=matches,
                message=(f"the {query.noun or 'object'} that was at {where} is not there any "
                         f"more" + (f" (the nearest is {math.dist(nearest.point_base, planned):.2f}"
                                    f" m away)" if nearest is not None else "")))
        result = GroundingResult(status="ok", instruction=instruction, targets=[nearest],
                                 candidates=matches,
                                 message=f"chose {nearest.label} #{nearest.id} at {where}")
        self._add_geometry_and_goals(result, instruction, frame)
        return result

    def _answer(self, instruction: Instruction, query: ObjectQuery, frame: Frame,
                detections: list[Detection] | None) -> GroundingResult:
        """A question about the image ("is there a dog?", "how many cups?", "what colour is the
        truck?"): answered in ``message``, never a goal."""
        cfg = self.config.grounding
        if detections is None:  # a backend that grounds whole expressions: one pass for it
            detections = self.backend.detect(frame.rgb, detection_queries(query, self.backend))
        name = query.noun or "object"
        if instruction.question == "color":
            outcome = ground_query(query, frame, self.backend, cfg, detections)
            result = self._decide(instruction, outcome, None)
            if result.status == "ok":
                target = result.targets[0]
                color = target.color or color_profile(
                    frame.rgb, target.bbox, mask=target.mask, label=target.label,
                    depth_m=frame.depth_m).dominant
                result.message = (f"the {target.label} is {color}" if color else
                                  f"I see the {target.label} but cannot tell its colour")
            return result
        matches, none = ground_all(query, frame, self.backend, cfg, detections)
        result = GroundingResult(status="ok", instruction=instruction, targets=matches,
                                 candidates=list(matches))
        if matches:
            seen = counted(plural(name, 1), len(matches))
            result.message = f"yes: I see {seen}" if instruction.question != "count" else \
                f"I see {seen}"
        else:
            result.status = "not_found"
            why = none.message if none is not None else f"I don't see any {plural(name)}"
            result.candidates = none.candidates if none is not None else []
            result.message = f"no: {why}" if instruction.question != "count" else \
                f"none: {why}"
        return result

    def view_goal(self, point: Vec3, camera: Vec3, stamp: float) -> Goal:
        """An active search's next view: look at ``point`` (base frame) from ``camera``."""
        return make_view_goal(point, camera, self.config.goals, stamp)

    def camera_pose(self, frame: Frame) -> tuple[Vec3, float] | None:
        """Where ``frame``'s camera was in base_frame, and its heading (rad, the optical axis'
        yaw); None when the extrinsics are unknown."""
        if self.frames is None:
            return None
        transform = self.frames.lookup(self.config.goals.base_frame, frame.frame_id, frame.stamp)
        if transform is None:
            return None
        origin = transform.apply((0.0, 0.0, 0.0))
        ahead = transform.apply((0.0, 0.0, 1.0))
        return origin, math.atan2(ahead[1] - origin[1], ahead[0] - origin[0])

    def result_from_memory(self, instruction: Instruction, remembered: Candidate,
                           stamp: float, message: str) -> GroundingResult:
        """A result for an object the robot remembers (``remembered.point_base`` in base_frame),
        with the goals its action needs - made by the same goal code as :meth:`ground`, stamped
        ``stamp`` (now: the goal is made now, from memory)."""
        result = GroundingResult(status="ok", instruction=instruction, targets=[remembered],
                                 message=message, backend=self.backend.name, stamp=stamp,
                                 frame_id=self.config.goals.base_frame)
        if instruction.action in _SPATIAL_ACTIONS and instruction.action != "find":
            try:
                result.goals = make_goals(instruction.action or "", remembered.point_base, None,
                                          self.config.goals, stamp=stamp)
            except ValueError as exc:
                result.no_goal_reason = f"no goal possible from memory ({exc})"
                result.message += f"; {result.no_goal_reason}"
        return result

    def result_for_box(self, instruction: Instruction, candidate: Candidate, frame: Frame,
                       tracking_ms: float | None = None) -> GroundingResult:
        """A result for a target the caller already located (a tracked box), without the model.

        3D and goals go through the same code as :meth:`ground` (status "ok", ``targets`` = a copy
        of ``candidate`` with its 3D fields filled); a box that is not usable gives status
        "error".  The dialogue state is left alone.  ``tracking_ms``, the caller's time to find
        the box, is reported as ``timing_ms["tracking"]`` and counted in the total.
        """
        started = time.perf_counter()
        timing = {} if tracking_ms is None else {"tracking": float(tracking_ms)}
        problem = box_problem(candidate.bbox, candidate.score, frame.width, frame.height)
        if problem:
            result = GroundingResult(status="error", instruction=instruction,
                                     message=f"tracked box unusable: {problem}")
        else:
            target = replace(candidate, reasons=list(candidate.reasons), point_camera=None,
                             point_base=None, depth_m=None, width_m=None)
            result = GroundingResult(status="ok", instruction=instruction, targets=[target],
                                     message=f"tracking the {target.label or 'target'}")
            t0 = time.perf_counter()
            self._add_geometry_and_goals(result, instruction, frame)
            timing["geometry"] = (time.perf_counter() - t0) * 1000.0
        result.timing_ms = timing
        result = self._seal(result, frame, started)
        result.timing_ms["total"] += timing.get("tracking", 0.0)
        return result

    # ---------------------------------------------------------------- internals
    def _recover_from_depth(self, frame: Frame, detections: list[Detection]) -> list[Detection]:
        """Detections a zoomed look at depth tabletop proposals adds (none without depth/tf)."""
        if frame.depth_m is None or self.frames is None:
            return []
        to_base = self.frames.lookup(self.config.goals.base_frame, frame.frame_id, frame.stamp)
        if to_base is None:
            return []
        proposals = support_and_clusters(frame, to_base)
        return recover_missed(frame.rgb, proposals, detections, self.backend, [])

    def _resolve_pronoun(self, instruction: Instruction,
                         last_target: Candidate | None) -> ObjectQuery | None:
        query = instruction.target
        if query is None or (query.noun or "").lower() not in _PRONOUNS:
            return query
        if instruction.action == "place":
            # Placing "it": the object is (or was) in the gripper; only the destination matters.
            return None
        if last_target is not None:
            return ObjectQuery(noun=last_target.label, text=query.text)
        return query

    def _union_queries(self, queries: list[ObjectQuery]) -> list[str]:
        phrases: list[str] = []
        for query in queries:
            wanted = detection_queries(query, self.backend)
            if not wanted:
                return []  # one generic noun ("the red thing") needs every detection
            phrases.extend(p for p in wanted if p not in phrases)
        return phrases

    def _decide(
        self,
        instruction: Instruction,
        target: GroundingOutcome | None,
        destination: GroundingOutcome | None,
    ) -> GroundingResult:
        result = GroundingResult(status="ok", instruction=instruction)
        if target is not None:
            result.candidates = target.candidates
        # The first part that is not "ok" decides the status: the target, then the destination.
        for part, outcome in (("target", target), ("destination", destination)):
            if outcome is None or outcome.status == "ok":
                continue
            result.status = outcome.status
            result.message = outcome.message if part == "target" else (
                f"destination: {outcome.message}")
            result.clarification = outcome.clarification
            result.choices = list(outcome.choices)
            if part == "destination":
                result.candidates = outcome.candidates
            break
        if result.status != "ok":
            return result
        messages = []
        if target is not None and target.target is not None:
            result.targets = [target.target]
            messages.append(target.message)
        if destination is not None and destination.target is not None:
            result.destination = destination.target
            messages.append(f"destination: {destination.message}")
        result.message = "; ".join(m for m in messages if m)
        return result

    def _locate(self, candidate: Candidate, frame: Frame) -> str | None:
        """Fill the candidate's 3D fields; return why it could not be placed in 3D, or None."""
        low, high = self.config.min_depth_m, self.config.max_depth_m
        point, depth = object_center_3d(frame, candidate.bbox, candidate.mask,
                                        min_depth=low, max_depth=high)
        if point is None or depth is None:
            if frame.depth_m is None:
                return "no depth image"
            if frame.intrinsics is None:
                return "no camera intrinsics"
            return f"no valid depth on the object (readings missing or outside [{low}, {high}] m)"
        candidate.point_camera, candidate.depth_m = point, depth
        candidate.width_m = box_width_m(candidate.bbox, depth, frame.intrinsics, frame.width,
                                        frame.height)
        if self.frames is None:
            return "no frame resolver configured"
        transform = self.frames.lookup(self.config.goals.base_frame, frame.frame_id, frame.stamp)
        if transform is None:
            return unresolved_reason(self.frames, self.config.goals.base_frame, frame.frame_id)
        candidate.point_base = transform.apply(point)
        on_support = object_center_on_support(frame, candidate.bbox, transform, point, low, high)
        if on_support is not None:
            # The grasp/standoff should aim at the object's middle, not its visible front rim.
            candidate.point_base = on_support[0]
            candidate.point_camera = transform.inverse().apply(on_support[0])
        return None

    def _locate_candidates(self, result: GroundingResult, frame: Frame) -> None:
        """3D and colour for the candidates the decision did not place (for the object
        memory: "the red cup you saw")."""
        if frame.depth_m is None or frame.intrinsics is None:
            return
        gain: float | None = None
        for candidate in (*result.targets, *result.candidates):
            if candidate.score < self.config.locate_min_score or \
                    any(r.startswith("dropped") for r in candidate.reasons):
                continue
            if candidate.point_base is None:
                self._locate(candidate, frame)
            if candidate.point_base is not None and candidate.color is None:
                gain = exposure_gain(frame.rgb) if gain is None else gain
                candidate.color = color_profile(frame.rgb, candidate.bbox, mask=candidate.mask,
                                                label=candidate.label, depth_m=frame.depth_m,
                                                gain=gain,
                                                object_depth_m=candidate.depth_m).dominant

    def _add_geometry_and_goals(self, result: GroundingResult, instruction: Instruction,
                                frame: Frame) -> None:
        if instruction.action not in _SPATIAL_ACTIONS:
            return
        problems: list[str] = []
        target = result.targets[0] if result.targets else None
        for name, candidate in (("target", target), ("destination", result.destination)):
            if candidate is not None:
                why = self._locate(candidate, frame)
                if why:
                    problems.append(f"{name}: {why}")
        needs = result.destination if instruction.action == "place" else target
        if needs is None or needs.point_base is None:
            result.no_goal_reason = (f"no 3D goal possible "
                                     f"({', '.join(problems) or 'no 3D point'})")
            result.message += f"; {result.no_goal_reason}"
            return
        grasp_plan: GraspPlan | None = None
        place_position = None
        if instruction.action == "pick" and target is not None:
            grasp_plan = self._grasp_plan(target, frame, instruction)
            if isinstance(grasp_plan, CloudProblem):
                if grasp_plan.refuse:
                    result.no_goal_reason = f"no grasp possible ({grasp_plan})"
                    result.message += f"; {result.no_goal_reason}"
                    return
                # The documented fallback: depth fine but flat - the box's centre, said.
                result.message += f"; grasp at the box's centre ({grasp_plan})"
                grasp_plan = None
            else:
                result.grasps = grasp_plan.candidates
            if grasp_plan is not None and not grasp_plan.candidates:
                # Measured, and nothing fits: a refusal with the reasons, never a guessed grasp.
                result.status = "rejected"
                result.no_goal_reason = f"no grasp for the {target.label}: {grasp_plan.refusal}"
                result.message = result.no_goal_reason
                return
        if instruction.action == "place" and result.destination is not None:
            place = self._place_position(result.destination, instruction, frame)
            if isinstance(place, CloudProblem) and place.refuse or isinstance(place, str):
                result.no_goal_reason = f"no place pose possible ({place})"
                result.message += f"; {result.no_goal_reason}"
                return
            if isinstance(place, CloudProblem):
                result.message += f"; placed above the destination's centre ({place})"
            else:
                place_position = place
        try:
            result.goals = make_goals(
                instruction.action or "",
                target.point_base if target is not None else None,
                result.destination.point_base if result.destination is not None else None,
                self.config.goals,
                stamp=frame.stamp,
                grasp=grasp_plan.candidates[0] if grasp_plan is not None else None,
                place_position=place_position,
            )
        except ValueError as exc:
            result.goals = []
            result.no_goal_reason = f"no 3D goal possible ({exc})"
            result.message += f"; {result.no_goal_reason}"

    def _cloud(self, candidate: Candidate, frame: Frame) -> ObjectCloud | CloudProblem:
        if self.frames is None:
            return CloudProblem("no frame resolver configured")
        transform = self.frames.lookup(self.config.goals.base_frame, frame.frame_id, frame.stamp)
        if transform is None:
            return CloudProblem(unresolved_reason(self.frames, self.config.goals.base_frame,
                                                  frame.frame_id))
        cloud = object_cloud(frame, candidate.bbox, transform, candidate.mask,
                             self.config.min_depth_m, self.config.max_depth_m,
                             self.config.cloud, label=candidate.label)
        if isinstance(cloud, ObjectCloud):
            candidate.mask = cloud.mask
            step = max(1, len(cloud.points) // _MAX_SHOWN_POINTS)
            candidate.points_base = cloud.points[::step]
        return cloud

    def _grasp_plan(self, target: Candidate, frame: Frame,
                    instruction: Instruction) -> GraspPlan | CloudProblem:
        """Ranked grasps for the target from its masked points, or why it cannot be measured."""
        cloud = self._cloud(target, frame)
        if isinstance(cloud, CloudProblem):
            return cloud
        plan = synthesize(cloud, (0.0, 0.0), self.config.grasp,
                          from_above=instruction.grasp_approach == "top")
        best = plan.candidates[0] if plan.candidates else None
        target.grasp_width_m = best.width_m if best is not None else plan.narrowest_m
        return plan

    def _place_position(self, destination: Candidate, instruction: Instruction,
                        frame: Frame) -> Vec3 | CloudProblem | str:
        """The release point in / on the destination, from its masked points."""
        cloud = self._cloud(destination, frame)
        if isinstance(cloud, CloudProblem):
            return cloud
        relation = instruction.destination_relation
        place = place_pose(cloud, relation, self.config.goals.place_height)
        return place if isinstance(place, str) else place[0]

    def stamp(self, result: GroundingResult, frame: Frame) -> GroundingResult:
        """Say which backend and which frame (id, stamp, size) ``result`` comes from."""
        result.backend = self.backend.name
        result.frame_id = frame.frame_id
        result.stamp = frame.stamp
        result.image_size = (frame.width, frame.height)
        return result

    def _seal(self, result: GroundingResult, frame: Frame, started: float) -> GroundingResult:
        self.stamp(result, frame)
        result.timing_ms["total"] = (time.perf_counter() - started) * 1000.0
        for goal in result.goals:
            if not all(math.isfinite(v) for v in (*goal.pose.position, *goal.pose.orientation)):
                # Defence in depth: a non-finite goal must never leave the core.
                result.goals = []
                result.status = "error"
                result.message = "internal error: non-finite goal suppressed"
                break
        return result
