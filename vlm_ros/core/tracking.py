"""Follow a grounded target from frame to frame without the model: cheap appearance + depth tracking.

Why: a grounding costs a model pass (~50 ms for the default SSD on a 2-core CPU, seconds for a VLM),
but ``follow`` and a moving pick target need goals at camera rate.  After a grounding picks the
target, :class:`TargetTracker` follows its box with a few milliseconds of OpenCV per frame and says
when the model must look again; the model's new candidates are then matched back to the track
(:meth:`TargetTracker.reassociate`) so the re-grounding corrects drift without switching objects.

Per frame (:meth:`TargetTracker.update`):

1. **Predict** the box with constant velocity (pixels per second, from ``Frame.stamp``).
2. **Match** a small colour template of the target (normalised cross-correlation,
   ``cv2.TM_CCOEFF_NORMED`` over the three RGB channels, so a red and a blue mug of the same shape
   differ) in a window around the prediction, at three scales.  The window and the template are
   resized so the template's longer side is ``template_side_px``: the cost does not grow with the
   box.  A penalty on the distance from the prediction picks the object that moved as predicted
   over a look-alike standing next to it.
3. **Check** the match: its colour histogram against the target's colour identity (taken by the
   grounding that started the track, only nudged by later model confirmations, so it does not
   drift with the template), and, with a depth image, the target's robust depth against the last
   accepted depth (a jump means the match slid onto something in front or behind).  The
   confidence is sqrt(NCC x colour similarity), zero after a depth jump.
4. **Accept** (box, velocity and a slow template blend are updated) when the confidence is at least
   ``min_confidence``; otherwise **coast** on the prediction for at most ``max_coast_frames``
   frames, then the track is lost.  A lost track never jumps to another object by itself: only a
   model re-grounding (``reassociate``) or a new ``start`` revives it.

``needs_reground`` asks the caller to run the model again: on a fixed interval of stamp time
(drift control), after too many frames without the model, when the confidence is low, and while
the track is lost.  Nothing here imports ROS; the node wires it to its camera callback.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vlm_ros.core.attributes import box_problem, clip_box, iou
from vlm_ros.core.geometry import robust_depth
from vlm_ros.core.types import BBox, Candidate, Frame


@dataclass
class TrackerConfig:
    """Tuning of :class:`TargetTracker`.  Pixel values are in input-image pixels."""

    # Search window: the predicted box grown by this many box widths/heights on each side.  Must
    # cover one frame of motion plus prediction error: 0.6 follows ~0.6 box widths per frame.
    search_margin: float = 0.6
    # The template's longer side after resizing (the matching resolution); bounds the cost.
    template_side_px: int = 32
    # The template's shorter side is never resized below this (tiny boxes are upsampled).
    min_template_side_px: int = 12
    # Scales tried per frame: 1 / (1 + step), 1 and 1 + step.
    scale_step: float = 0.04
    # NCC is reduced by this much at the window edge (quadratically from the prediction), so an
    # equally good match next to the prediction loses to the one where the target should be.
    motion_penalty: float = 0.5
    # Share of the newly matched patch blended into the template per confident frame.  Slow, so
    # the template adapts to pose and light changes but a few bad frames cannot rewrite it.
    template_update_rate: float = 0.08
    # The template is only updated from matches at least this confident.
    update_min_confidence: float = 0.75
    # A frame's match below this confidence is rejected: the box coasts on its prediction.
    min_confidence: float = 0.5
    # Confidence below this asks for a model re-grounding (the track is still used).
    reground_confidence: float = 0.65
    # Consecutive rejected frames after which the track is lost.
    max_coast_frames: int = 8
    # Re-ground at least this often (seconds of Frame.stamp time) to correct drift.
    reground_interval_s: float = 0.5
    # ... and at least every this many frames (covers streams whose stamps do not advance).
    max_frames_without_model: int = 45
    # The target's robust depth may change at most this much between accepted frames (m).
    max_depth_jump_m: float = 0.2
    # A box with less than this share of its area inside the image is lost (left the view).
    min_visible_fraction: float = 0.3
    # Exponential smoothing of the velocity (weight of the newest measurement).
    velocity_smoothing: float = 0.5
    # Velocity decays by this factor per coasting frame (an occluded target is not assumed to
    # keep its speed forever).
    coast_velocity_decay: float = 0.8
    # Frame interval assumed when stamps do not advance (photo sequences, replayed stills).
    nominal_frame_interval_s: float = 1.0 / 30.0
    # reassociate: least appearance agreement (0..1) for a candidate to be the tracked object.
    reassociate_min_appearance: float = 0.6
    # reassociate: a candidate whose centre is further than this many track-box diagonals from
    # the track (and does not overlap it) is another object, however similar it looks.
    reassociate_max_distance: float = 1.0
    # reassociate: a candidate box with more than this many times the area of the track's box
    # (or less than its inverse) is not the tracked object.
    reassociate_max_area_ratio: float = 1.5
    # Share of a re-seed's colour histogram blended into the target's colour identity.
    identity_update_rate: float = 0.2
    # A model pass that misses the target loses the track only when the model has not confirmed
    # it for this long (stamp time, or frames x nominal_frame_interval_s where stamps do not
    # advance): detectors miss objects for a few frames (flicker, two touching objects boxed as
    # one) while the appearance track is fine.  A failing appearance track is lost on its own
    # (max_coast_frames).
    max_unconfirmed_s: float = 2.0
    # Seconds of box history kept to compare a late model result with the track at its stamp.
    history_s: float = 2.0
    # Boxes narrower or lower than this (after clipping to the image) cannot be tracked.
    min_box_side_px: float = 2.0


@dataclass
class TrackUpdate:
    """One frame's tracking outcome.

    ``bbox`` is the target's visible box in this frame (clipped to the image), its last known
    box once lost, and None only when nothing is tracked.  ``measured`` is False when the box is
    a coasted prediction (the match was rejected).  ``confidence`` is 0..1 (appearance, colour
    and depth agreement of the match; 0 once lost).  ``needs_reground`` asks for a model pass
    now; ``reason`` says why, or why the track is lost.  ``depth_m`` is the target's last robust
    depth (None without depth).  ``frames_since_model`` counts updates since the model last
    confirmed the target.
    """

    bbox: BBox | None
    confidence: float
    lost: bool
    needs_reground: bool
    measured: bool = False
    reason: str = ""
    depth_m: float | None = None
    stamp: float = 0.0
    frames_since_model: int = 0


# HSV histogram used for the colour check: hue x saturation x value bins.  Value bins keep white,
# grey and black objects (no meaningful hue) distinguishable.
_HIST_BINS = [12, 3, 3]
_HIST_RANGES = [0, 180, 0, 256, 0, 256]
# Share of the box (per axis, centred) whose colours count: box corners hold background.
_HIST_CENTER_SHARE = 0.7
# The robust depth is measured on a depth image subsampled so the box is at most this many
# pixels on its longer side: the depth mode does not need every pixel.
_DEPTH_BOX_SIDE_PX = 64


@dataclass
class _Match:
    box: np.ndarray  # x1, y1, x2, y2 float64, unclipped
    appearance: float  # NCC peak, clipped to 0..1


class TargetTracker:
    """Single-target tracker seeded by a grounding; see the module docstring for the method.

    Not thread-safe: call ``start``, ``update`` and ``reassociate`` from one thread (or under one
    lock), in stamp order per method.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.reset()

    # ------------------------------------------------------------------ public API
    @property
    def active(self) -> bool:
        """True while a target is tracked (started and not lost)."""
        return self._template is not None and not self._lost

    @property
    def label(self) -> str:
        """The label the target was seeded with (the detector's class name)."""
        return self._label

    @property
    def bbox(self) -> BBox | None:
        """The target's last box (visible part), or None when nothing was started."""
        if self._box is None or self._image_size is None:
            return None
        return clip_box(self._box, *self._image_size)

    def reset(self) -> None:
        """Forget the target (a new command, a stop)."""
        self._template: np.ndarray | None = None  # th x tw x 3 float32 RGB
        self._histogram: np.ndarray | None = None  # colour identity (see _seed)
        self._box: np.ndarray | None = None  # x1, y1, x2, y2 float64, may extend off the image
        self._velocity = np.zeros(2)  # box centre, pixels per second
        self._depth: float | None = None
        self._label = ""
        self._image_size: tuple[int, int] | None = None  # (width, height)
        self._last_stamp = 0.0
        self._model_stamp = 0.0
        self._frames_since_model = 0
        self._coasting = 0
        self._confidence = 0.0
        self._lost = False
        self._lost_reason = ""
        self._history: deque[tuple[float, np.ndarray]] = deque()

    def start(self, frame: Frame, bbox: BBox, label: str = "") -> bool:
        """Seed the track from a grounding's target box on ``frame``.

        Returns False (and tracks nothing) when the box cannot be tracked: non-finite, outside
        the image, or smaller than ``min_box_side_px`` once clipped to the image.
        """
        self.reset()
        box = self._trackable_box(frame, bbox)
        if box is None:
            return False
        self._seed(frame, box)
        self._label = label
        self._velocity = np.zeros(2)
        self._last_stamp = frame.stamp
        self._remember(frame.stamp)
        return True

    def update(self, frame: Frame) -> TrackUpdate:
        """Follow the target into ``frame`` (cheap: no model).  Never raises for bad frames."""
        if self._template is None or self._box is None:
            return TrackUpdate(None, 0.0, lost=True, needs_reground=True,
                               reason="no target is being tracked", stamp=frame.stamp)
        problem = _frame_problem(frame, self._image_size)
        if problem:
            self._lose(problem)
        if self._lost:
            return self._report(frame, measured=False, reason=f"track lost: {self._lost_reason}")

        cfg = self.config
        dt = frame.stamp - self._last_stamp
        if not math.isfinite(dt) or dt <= 0.0:
            dt = cfg.nominal_frame_interval_s
        predicted = _shift(self._box, self._velocity * dt)
        self._frames_since_model += 1
        self._last_stamp = frame.stamp

        match = self._match(frame, predicted)
        confidence, why, depth = self._judge(frame, match)
        if match is not None and confidence >= cfg.min_confidence:
            old_center = _center(self._box)
            self._box = match.box
            measured_velocity = (_center(match.box) - old_center) / dt
            a = cfg.velocity_smoothing
            self._velocity = a * measured_velocity + (1.0 - a) * self._velocity
            if depth is not None:
                self._depth = depth
            if confidence >= cfg.update_min_confidence:
                self._blend_template(frame, match.box)
            self._coasting = 0
            measured = True
        else:
            self._box = predicted
            self._velocity *= cfg.coast_velocity_decay
            self._coasting += 1
            measured = False
            if self._coasting > cfg.max_coast_frames:
                self._lose(f"no confident match for {self._coasting} frames ({why})")
        self._confidence = confidence
        self._remember(frame.stamp)
        return self._report(frame, measured, why)

    def reassociate(self, frame: Frame, candidates: Sequence[Candidate]) -> Candidate | None:
        """After a model pass on ``frame``, pick the candidate that is the tracked object.

        The choice ignores the model's own ranking (``score``/``match``).  A candidate qualifies
        when it overlaps (or lies within ``reassociate_max_distance`` box diagonals of) the
        track's box at ``frame.stamp``, has a similar area (``reassociate_max_area_ratio``) and
        looks like the target (template NCC x colour identity >= ``reassociate_min_appearance``);
        the best of ``0.5 * IoU + 0.5 * appearance`` wins.  The track is re-seeded from it (new
        template and depth reference, drift reset, colour identity nudged) and the re-ground
        timer restarts.  Returns None when no candidate qualifies; the track is then lost if the
        model has not confirmed it for ``max_unconfirmed_s`` (detectors miss objects now and
        then, e.g. two touching objects boxed as one).  A lost track (after an occlusion) can be
        revived here: the reach is then three times larger, as the object moved while unseen.
        """
        if self._template is None or self._box is None:
            return None
        problem = _frame_problem(frame, self._image_size)
        if problem:
            self._lose(f"re-grounding frame unusable: {problem}")
            return None
        cfg = self.config
        reference = self._box_at(frame.stamp)
        diagonal = max(1.0, float(np.hypot(*(reference[2:] - reference[:2]))))
        best: tuple[float, Candidate] | None = None
        for candidate in candidates:
            if box_problem(candidate.bbox, candidate.score, frame.width, frame.height):
                continue
            box = np.asarray(candidate.bbox, dtype=np.float64)
            overlap = iou(tuple(reference), candidate.bbox)
            distance = float(np.hypot(*(_center(box) - _center(reference)))) / diagonal
            # Revival after a loss tolerates more distance: the object moved while unseen.
            reach = cfg.reassociate_max_distance * (3.0 if self._lost else 1.0)
            if overlap <= 0.0 and distance > reach:
                continue
            # A box much larger or smaller than the track is another object or a merged pair
            # (detectors box two touching look-alikes as one), not a better box of this one.
            # (The track follows scale changes itself, so the two sizes are from the same time.)
            area_ratio = _area(box) / max(_area(reference), 1.0)
            if not 1.0 / cfg.reassociate_max_area_ratio <= area_ratio <= \
                    cfg.reassociate_max_area_ratio:
                continue
            appearance = self._appearance(frame, box)
            if appearance < cfg.reassociate_min_appearance:
                continue
            # Between look-alikes the overlap decides, between neighbours the appearance.
            score = 0.5 * overlap + 0.5 * appearance
            if best is None or score > best[0]:
                best = (score, candidate)
        if best is None:
            unconfirmed = max(frame.stamp - self._model_stamp,
                              self._frames_since_model * cfg.nominal_frame_interval_s)
            if unconfirmed > cfg.max_unconfirmed_s:
                self._lose(f"the model's candidates do not include the tracked object "
                           f"(unconfirmed for {unconfirmed:.1f} s)")
            return None
        chosen = best[1]
        self._reseed(frame, np.asarray(chosen.bbox, dtype=np.float64))
        return chosen

    # ------------------------------------------------------------------ seeding
    def _trackable_box(self, frame: Frame, bbox: BBox) -> np.ndarray | None:
        if _frame_problem(frame, None):
            return None
        try:
            values = [float(v) for v in bbox]
        except (TypeError, ValueError):
            return None
        if box_problem(values, 1.0, frame.width, frame.height):
            return None
        box = np.asarray(clip_box(np.asarray(values), frame.width, frame.height))
        if min(box[2] - box[0], box[3] - box[1]) < self.config.min_box_side_px:
            return None
        return box

    def _seed(self, frame: Frame, box: np.ndarray) -> None:
        """Template, colour and depth references from ``box`` on ``frame``; timers restart."""
        cfg = self.config
        w, h = box[2] - box[0], box[3] - box[1]
        scale = min(1.0, cfg.template_side_px / max(w, h))
        tw = max(cfg.min_template_side_px, int(round(w * scale)))
        th = max(cfg.min_template_side_px, int(round(h * scale)))
        self._template = _resample(frame.rgb, box, tw, th).astype(np.float32)
        # The colour reference is the target's identity: set by the grounding that started the
        # track and only nudged by re-seeds, so one poor model box (two objects merged) cannot
        # turn the track into a tracker of the neighbour.
        histogram = _histogram(self._template.astype(np.uint8))
        if self._histogram is None:
            self._histogram = histogram
        else:
            a = cfg.identity_update_rate
            self._histogram = cv2.normalize((1.0 - a) * self._histogram + a * histogram, None,
                                            1.0, 0.0, cv2.NORM_L1)
        self._box = box.copy()
        self._depth = _box_depth(frame, box)
        self._image_size = (frame.width, frame.height)
        self._model_stamp = frame.stamp
        self._frames_since_model = 0
        self._coasting = 0
        self._confidence = 1.0
        self._lost = False
        self._lost_reason = ""

    def _reseed(self, frame: Frame, box: np.ndarray) -> None:
        """Re-seed from a model box on ``frame``, which may be older than the last update.

        The template comes from ``frame`` (where the box is), the position is carried forward by
        the track's own motion since ``frame.stamp``.
        """
        latest_box, latest_stamp = self._box, self._last_stamp
        shift = np.zeros(2)
        if latest_box is not None and frame.stamp < latest_stamp and not self._lost:
            shift = _center(latest_box) - _center(self._box_at(frame.stamp))
        frames_since = self._frames_since_model
        velocity = self._velocity.copy()
        self._seed(frame, box)
        self._box = _shift(box, shift)
        self._velocity = velocity
        # Updates that already ran on frames newer than the model's frame still count.
        history_after = sum(1 for stamp, _ in self._history if stamp > frame.stamp)
        self._frames_since_model = min(frames_since, history_after)
        self._last_stamp = max(latest_stamp, frame.stamp)
        self._remember(self._last_stamp)

    # ------------------------------------------------------------------ matching
    def _match(self, frame: Frame, predicted: np.ndarray) -> _Match | None:
        """Best template match in the search window around ``predicted`` (None: no window)."""
        cfg = self.config
        template = self._template
        th, tw = template.shape[:2]
        w, h = predicted[2] - predicted[0], predicted[3] - predicted[1]
        if not (np.all(np.isfinite(predicted)) and w > 0 and h > 0):
            return None
        sx, sy = tw / w, th / h  # image -> template pixels
        margin_x, margin_y = cfg.search_margin * w, cfg.search_margin * h
        window = _pixel_box(np.array([predicted[0] - margin_x, predicted[1] - margin_y,
                                      predicted[2] + margin_x, predicted[3] + margin_y]))
        win_w = int(round((window[2] - window[0]) * sx))
        win_h = int(round((window[3] - window[1]) * sy))
        region = _resample(frame.rgb, np.asarray(window), win_w, win_h).astype(np.float32)
        # The exact image -> window-pixel scale after rounding to whole pixels.
        sx, sy = win_w / (window[2] - window[0]), win_h / (window[3] - window[1])
        # The predicted centre in window pixels.
        center_x = (0.5 * (predicted[0] + predicted[2]) - window[0]) * sx
        center_y = (0.5 * (predicted[1] + predicted[3]) - window[1]) * sy

        best: tuple[float, float, float, float, float] | None = None  # score, ncc, x, y, scale
        for scale in (1.0 / (1.0 + cfg.scale_step), 1.0, 1.0 + cfg.scale_step):
            sw, sh = int(round(tw * scale)), int(round(th * scale))
            if sw < 4 or sh < 4 or sw > win_w or sh > win_h:
                continue
            scaled = template if (sw, sh) == (tw, th) else cv2.resize(
                template, (sw, sh), interpolation=cv2.INTER_LINEAR)
            ncc = cv2.matchTemplate(region, scaled, cv2.TM_CCOEFF_NORMED)
            ncc[~np.isfinite(ncc)] = -1.0  # flat regions give NaN
            ys = np.arange(ncc.shape[0], dtype=np.float32)[:, None]
            xs = np.arange(ncc.shape[1], dtype=np.float32)[None, :]
            # Offset of each placement's centre from the predicted centre, as a share of the
            # margin: 0 at the prediction, 1 at the window edge.
            off_x = (xs + 0.5 * sw - center_x) / max(1.0, margin_x * sx)
            off_y = (ys + 0.5 * sh - center_y) / max(1.0, margin_y * sy)
            scored = ncc - cfg.motion_penalty * np.minimum(1.0, off_x ** 2 + off_y ** 2)
            y, x = np.unravel_index(int(np.argmax(scored)), scored.shape)
            if best is None or scored[y, x] > best[0]:
                dx, dy = _subpixel(ncc, x, y)
                best = (float(scored[y, x]), float(ncc[y, x]), x + dx, y + dy, scale)
        if best is None:
            return None
        _, peak, x, y, scale = best
        x1 = window[0] + x / sx
        y1 = window[1] + y / sy
        box = np.array([x1, y1, x1 + w * scale, y1 + h * scale])
        return _Match(box=box, appearance=float(np.clip(peak, 0.0, 1.0)))

    def _judge(self, frame: Frame, match: _Match | None) -> tuple[float, str, float | None]:
        """(confidence, reason when low, robust depth) of a match."""
        if match is None:
            return 0.0, "no search window", None
        cfg = self.config
        width, height = frame.width, frame.height
        visible = _visible_fraction(match.box, width, height)
        if visible < cfg.min_visible_fraction:
            return 0.0, f"target left the image ({visible:.0%} visible)", None
        clipped = np.asarray(clip_box(match.box, width, height))
        colour = self._colour_similarity(frame, clipped)
        confidence = math.sqrt(match.appearance * colour)
        reason = f"appearance {match.appearance:.2f}, colour {colour:.2f}"
        depth = _box_depth(frame, clipped)
        if depth is not None and self._depth is not None:
            jump = abs(depth - self._depth)
            if jump > cfg.max_depth_jump_m:
                confidence = 0.0
                reason += f", depth jumped {jump:.2f} m"
        return confidence, reason, depth

    def _colour_similarity(self, frame: Frame, box: np.ndarray) -> float:
        th, tw = self._template.shape[:2]
        patch = _resample(frame.rgb, box, tw, th)
        distance = cv2.compareHist(self._histogram, _histogram(patch), cv2.HISTCMP_BHATTACHARYYA)
        return float(np.clip(1.0 - distance, 0.0, 1.0))

    def _appearance(self, frame: Frame, box: np.ndarray) -> float:
        """0..1 agreement of the object in ``box`` with the target: NCC x colour, geometric mean."""
        th, tw = self._template.shape[:2]
        patch = _resample(frame.rgb, box, tw, th).astype(np.float32)
        ncc = float(np.nan_to_num(
            cv2.matchTemplate(patch, self._template, cv2.TM_CCOEFF_NORMED)[0, 0], nan=0.0))
        colour = self._colour_similarity(frame, box)
        return math.sqrt(max(0.0, ncc) * colour)

    def _blend_template(self, frame: Frame, box: np.ndarray) -> None:
        th, tw = self._template.shape[:2]
        patch = _resample(frame.rgb, box, tw, th).astype(np.float32)
        a = self.config.template_update_rate
        self._template = (1.0 - a) * self._template + a * patch

    # ------------------------------------------------------------------ bookkeeping
    def _lose(self, reason: str) -> None:
        if not self._lost:
            self._lost = True
            self._lost_reason = reason
            self._velocity = np.zeros(2)

    def _remember(self, stamp: float) -> None:
        self._history.append((stamp, self._box.copy()))
        while len(self._history) > 1 and self._history[0][0] < stamp - self.config.history_s:
            self._history.popleft()
        while len(self._history) > 256:  # stamps that never advance
            self._history.popleft()

    def _box_at(self, stamp: float) -> np.ndarray:
        """The track's box at the update whose stamp is nearest ``stamp`` (the latest on ties)."""
        if not self._history:
            return self._box
        best = min(reversed(self._history), key=lambda item: abs(item[0] - stamp))
        return best[1]

    def _report(self, frame: Frame, measured: bool, reason: str) -> TrackUpdate:
        cfg = self.config
        reground: list[str] = []
        if self._lost:
            reground.append(reason)
        else:
            if self._confidence < cfg.reground_confidence:
                reground.append(f"low confidence {self._confidence:.2f} ({reason})")
            if frame.stamp - self._model_stamp >= cfg.reground_interval_s:
                reground.append(f"{frame.stamp - self._model_stamp:.2f} s since the model looked")
            if self._frames_since_model >= cfg.max_frames_without_model:
                reground.append(f"{self._frames_since_model} frames since the model looked")
        bbox = None
        if self._image_size is not None and self._box is not None:
            bbox = clip_box(self._box, *self._image_size)
        return TrackUpdate(
            bbox=bbox,
            confidence=0.0 if self._lost else float(self._confidence),
            lost=self._lost,
            needs_reground=bool(reground),
            measured=measured and not self._lost,
            reason="; ".join(reground),
            depth_m=self._depth,
            stamp=frame.stamp,
            frames_since_model=self._frames_since_model,
        )


# --------------------------------------------------------------------------------------------
# Image helpers
# --------------------------------------------------------------------------------------------


def _frame_problem(frame: Frame, expected_size: tuple[int, int] | None) -> str | None:
    rgb = frame.rgb
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 \
            or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        return "the image is not HxWx3 uint8 RGB"
    if expected_size is not None and (frame.width, frame.height) != expected_size:
        return (f"image size changed from {expected_size[0]}x{expected_size[1]} to "
                f"{frame.width}x{frame.height}")
    return None


def _resample(rgb: np.ndarray, box: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """The pixels of ``box`` (edge coordinates, may be fractional) resampled to out_w x out_h.

    Parts of the box outside the image repeat the border pixels, so a target leaving the image
    is still compared at its full size (and matches worse the less of it is visible).
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if out_w < x2 - x1 and out_h < y2 - y1:
        # Shrinking: area averaging (no aliasing) of the whole-pixel crop; rounding the box out
        # by under a pixel is negligible at this size.
        ix1, iy1, ix2, iy2 = _pixel_box(box)
        crop = _crop_padded(rgb, ix1, iy1, ix2, iy2)
        factor = int(min(crop.shape[1] / out_w, crop.shape[0] / out_h))
        if factor >= 2:
            # OpenCV averages whole k x k blocks much faster than fractional areas: shrink by
            # the integer factor first, then the remaining (< 2x) step.
            h, w = (crop.shape[0] // factor) * factor, (crop.shape[1] // factor) * factor
            crop = cv2.resize(crop[:h, :w], (w // factor, h // factor),
                              interpolation=cv2.INTER_AREA)
        return cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA)
    # Enlarging (small boxes): exact bilinear sampling of the fractional box.  Output pixel i's
    # centre maps to input u = x1 + (i + 0.5) * (x2 - x1) / out_w - 0.5 (pixel-centre coords).
    sx, sy = (x2 - x1) / out_w, (y2 - y1) / out_h
    to_input = np.array([[sx, 0.0, x1 + 0.5 * sx - 0.5], [0.0, sy, y1 + 0.5 * sy - 0.5]])
    return cv2.warpAffine(rgb, to_input, (out_w, out_h),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _pixel_box(box: np.ndarray) -> tuple[int, int, int, int]:
    """Whole-pixel box covering ``box`` (at least one pixel each way)."""
    x1, y1 = int(math.floor(box[0])), int(math.floor(box[1]))
    return x1, y1, max(x1 + 1, int(math.ceil(box[2]))), max(y1 + 1, int(math.ceil(box[3])))


def _crop_padded(rgb: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    """rgb[y1:y2, x1:x2], with the border replicated where the range leaves the image."""
    height, width = rgb.shape[:2]
    cx1, cy1 = min(max(x1, 0), width - 1), min(max(y1, 0), height - 1)
    cx2, cy2 = max(min(x2, width), cx1 + 1), max(min(y2, height), cy1 + 1)
    crop = rgb[cy1:cy2, cx1:cx2]
    pad = (max(0, cy1 - y1), max(0, y2 - cy2), max(0, cx1 - x1), max(0, x2 - cx2))
    if any(pad):
        crop = cv2.copyMakeBorder(crop, *pad, cv2.BORDER_REPLICATE)
    return crop


def _histogram(patch: np.ndarray) -> np.ndarray:
    """Normalised HSV histogram of the central part of an RGB uint8 patch."""
    h, w = patch.shape[:2]
    cut_y = int(h * (1.0 - _HIST_CENTER_SHARE) / 2)
    cut_x = int(w * (1.0 - _HIST_CENTER_SHARE) / 2)
    centre = np.ascontiguousarray(patch[cut_y:h - cut_y or h, cut_x:w - cut_x or w])
    hsv = cv2.cvtColor(centre, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, _HIST_BINS, _HIST_RANGES)
    return cv2.normalize(hist, hist, 1.0, 0.0, cv2.NORM_L1)


def _box_depth(frame: Frame, box: np.ndarray) -> float | None:
    """Robust depth of the box (``geometry.robust_depth``), on a subsampled depth image."""
    depth = frame.depth_m
    if depth is None or depth.ndim != 2 or depth.size == 0:
        return None
    sx, sy = depth.shape[1] / frame.width, depth.shape[0] / frame.height
    longer = max((box[2] - box[0]) * sx, (box[3] - box[1]) * sy)
    step = max(1, int(longer // _DEPTH_BOX_SIDE_PX))
    sub = depth[::step, ::step]
    scaled = (box[0] * sx / step, box[1] * sy / step, box[2] * sx / step, box[3] * sy / step)
    return robust_depth(sub, scaled)


def _subpixel(scores: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """Parabola-fit offset of a correlation peak (each axis in -0.5..0.5)."""
    def offset(left: float, mid: float, right: float) -> float:
        denominator = left - 2.0 * mid + right
        if denominator >= 0.0:  # not a maximum
            return 0.0
        return float(np.clip(0.5 * (left - right) / denominator, -0.5, 0.5))

    h, w = scores.shape
    dx = offset(scores[y, x - 1], scores[y, x], scores[y, x + 1]) if 0 < x < w - 1 else 0.0
    dy = offset(scores[y - 1, x], scores[y, x], scores[y + 1, x]) if 0 < y < h - 1 else 0.0
    return dx, dy


# --------------------------------------------------------------------------------------------
# Box helpers (numpy x1, y1, x2, y2)
# --------------------------------------------------------------------------------------------


def _center(box: np.ndarray) -> np.ndarray:
    return np.array([0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])])


def _shift(box: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return box + np.array([delta[0], delta[1], delta[0], delta[1]])


def _area(box: np.ndarray) -> float:
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def _visible_fraction(box: np.ndarray, width: int, height: int) -> float:
    area = (box[2] - box[0]) * (box[3] - box[1])
    if area <= 0:
        return 0.0
    x1, y1, x2, y2 = clip_box(box, width, height)
    return max(0.0, x2 - x1) * max(0.0, y2 - y1) / area


__all__ = ["TargetTracker", "TrackUpdate", "TrackerConfig"]
