"""Turn what generative VLMs *say* into boxes in the pixels of the image the robot saw.

Generative models (Qwen-VL, Florence-2, GPT-4o / Gemini behind an OpenAI-compatible API) answer
with text, not tensors, and the text is messy in practice: JSON wrapped in a markdown fence or a
chat template, a dict where a list was asked for, ``bbox_2d`` from one model and ``box_2d`` (y
first!) from another, single quotes, trailing commas, and answers cut off by ``max_new_tokens``.
Worse, each family speaks another coordinate system: Qwen2.5-VL absolute pixels of its *resized*
input, Qwen3-VL and Gemini a 0-1000 grid, some APIs 0-1 floats, Florence-2 ``<loc_N>`` tokens.
These parsers accept all of that, never raise on bad text (a malformed answer is "nothing found",
not a crash in the robot's command loop), and return boxes in ORIGINAL image pixels, x1 < x2 and
y1 < y2, clipped to the image.  Pure Python: no torch, so the API adapter can use them too.

Image sizes are ``(width, height)``, as in ``GroundingResult.image_size`` and PIL.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

# What the four numbers of a box mean (``parse_json_boxes``' ``coords``):
#   pixels       absolute pixels of the image the model saw, [x1, y1, x2, y2]
#   norm1000     [x1, y1, x2, y2] on a 0-1000 grid of the image (Qwen2-VL, Qwen3-VL)
#   norm1        [x1, y1, x2, y2] as fractions 0-1 of the image's width and height
#   norm1000_yx  [ymin, xmin, ymax, xmax] on a 0-1000 grid (Gemini's box_2d)
#   auto         a guess from the answer itself (see parse_json_boxes): it cannot tell pixels
#                from a 0-1000 grid, so callers that know the model should not use it.
COORD_SYSTEMS: tuple[str, ...] = ("auto", "pixels", "norm1000", "norm1", "norm1000_yx")
# Earlier names, still accepted.
COORD_ALIASES: dict[str, str] = {"grid1000": "norm1000", "normalized": "norm1"}

# Keys models use for a box, in order of preference.  "box_2d" is Gemini's [ymin, xmin, ymax, xmax].
BOX_KEYS: tuple[str, ...] = ("bbox_2d", "bbox", "box", "box_2d", "bounding_box", "coordinates")
YX_BOX_KEYS: frozenset[str] = frozenset({"box_2d"})
# Corner fields some models emit flat in the object instead of a list.
CORNER_KEYS: tuple[tuple[str, str, str, str], ...] = (
    ("x1", "y1", "x2", "y2"), ("xmin", "ymin", "xmax", "ymax"),
    ("x_min", "y_min", "x_max", "y_max"), ("left", "top", "right", "bottom"),
)
LABEL_KEYS: tuple[str, ...] = ("label", "name", "object", "text", "class", "category", "phrase")
SCORE_KEYS: tuple[str, ...] = ("score", "confidence", "conf", "probability")
# Containers a dict answer wraps its list in.
LIST_KEYS: tuple[str, ...] = ("objects", "boxes", "detections", "results", "items", "bboxes")

GRID = 1000.0  # Qwen3-VL / Qwen2-VL / Gemini grid, and Florence-2's 1000 location bins
# ast.literal_eval (the single-quote fallback) is recursive and slow on huge inputs; JSON is not.
LITERAL_EVAL_MAX_CHARS = 100_000

# Wrappers around an answer: reasoning blocks, chat-template markers, seq2seq specials.
_THINK_RE = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)
_SPECIAL_TOKEN_RE = re.compile(
    r"<\|im_start\|>(?:assistant|user|system)?\n?|<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>"
    r"|</?s>|<pad>|<\|vision_(?:start|end)\|>|<\|image_pad\|>"
)
_FENCE_RE = re.compile(r"```[A-Za-z0-9_-]*\s*\n?(.*?)(?:```|$)", re.DOTALL)
_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)
_TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")
_FLORENCE_TOKEN_RE = re.compile(r"<loc_(\d+)>|(<poly>|</poly>|<sep>)|(<[^<>]*>)|([^<]+)")


@dataclass
class ParsedBox:
    """One box a model named: ``bbox`` in original image pixels, ``score`` if the model gave one."""

    label: str
    bbox: tuple[float, float, float, float]
    score: float | None = None


# ---------------------------------------------------------------------------------- JSON answers


def _strip_wrappers(text: str) -> str:
    text = _THINK_RE.sub("", text)
    if "</think>" in text:  # Qwen3 thinking templates open <think> in the prompt, not the answer
        text = text.rsplit("</think>", 1)[1]
    return _SPECIAL_TOKEN_RE.sub("", text)


def _loads(chunk: str) -> Any | None:
    """JSON, else JSON without trailing commas, else a Python literal (single quotes); or None."""
    chunk = chunk.strip()
    if not chunk:
        return None
    for candidate in (chunk, _TRAILING_COMMA_RE.sub(r"\1", chunk)):
        try:
            return json.loads(candidate)
        except (ValueError, RecursionError):
            pass
    if len(chunk) <= LITERAL_EVAL_MAX_CHARS:
        try:
            return ast.literal_eval(_TRAILING_COMMA_RE.sub(r"\1", chunk))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    return None


def _outer_json(chunk: str) -> str:
    """From the first opening bracket to the last closing one: drops prose around the JSON."""
    starts = [i for i in (chunk.find("["), chunk.find("{")) if i >= 0]
    end = max(chunk.rfind("]"), chunk.rfind("}"))
    return chunk[min(starts):end + 1] if starts and end > min(starts) else ""


def _complete_objects(chunk: str) -> list[tuple[int, int]]:
    """Every balanced ``{...}`` in ``chunk``, outermost first, without nested duplicates.

    This recovers the complete objects of an answer cut off mid-way (max_new_tokens) or buried
    in prose.  Quotes are tracked so braces inside strings do not count; a single quote only
    delimits strings when the chunk has no double quotes (Python-literal style), so an
    apostrophe in prose ("Here's the JSON") cannot swallow the rest of the answer.
    """
    quotes = "\"'" if '"' not in chunk else '"'
    spans: list[tuple[int, int]] = []
    stack: list[int] = []
    in_string: str | None = None
    escaped = False
    for i, ch in enumerate(chunk):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == in_string:
                in_string = None
        elif ch in quotes:
            in_string = ch
        elif ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            spans.append((stack.pop(), i + 1))
    spans.sort(key=lambda span: (span[0], -span[1]))
    return spans


def _json_values(text: str) -> Iterator[Any]:
    """The JSON values an answer holds: fenced blocks first, else the whole text."""
    text = _strip_wrappers(text)
    chunks = [m.group(1) for m in _FENCE_RE.finditer(text)] if "```" in text else []
    for chunk in chunks or [text]:
        value = _loads(chunk)
        if value is None:
            outer = _outer_json(chunk)
            value = _loads(outer) if outer else None
        if value is not None and not isinstance(value, str | int | float):
            yield value
            continue
        # Truncated or embedded in prose: take the complete objects, skipping any inside one
        # already taken (a nested {"x1": ...} box dict is part of its entry, not a new entry).
        taken_until = -1
        for start, end in _complete_objects(chunk):
            if start < taken_until:
                continue
            parsed = _loads(chunk[start:end])
            if isinstance(parsed, dict) and _entry_box(parsed) is not None:
                taken_until = end
                yield parsed


def _entries(value: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """Box entries inside a parsed answer: a list, a dict with a list, one entry, bare boxes."""
    if depth > 4:
        return
    if isinstance(value, dict):
        if _entry_box(value) is not None:
            yield value
            return
        for key in LIST_KEYS:
            if key in value:
                yield from _entries(value[key], depth + 1)
                return
        for inner in value.values():  # {"cup": [...], "bowl": [...]} and other shapes
            if isinstance(inner, list | dict):
                yield from _entries(inner, depth + 1)
    elif isinstance(value, list):
        if _as_box(value) is not None:  # a bare [x1, y1, x2, y2]
            yield {"bbox": value}
            return
        for item in value:
            yield from _entries(item, depth + 1)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _as_box(value: Any) -> tuple[float, float, float, float] | None:
    if isinstance(value, dict):
        for keys in CORNER_KEYS:
            if all(k in value for k in keys):
                return _as_box([value[k] for k in keys])
        return None
    if not isinstance(value, list | tuple) or len(value) != 4:
        return None
    numbers = [_number(v) for v in value]
    if any(n is None for n in numbers):
        return None
    return tuple(numbers)  # type: ignore[return-value]


def _entry_box(entry: dict[str, Any]) -> tuple[tuple[float, float, float, float], str] | None:
    """(raw box, its order) of one entry, or None.

    The order is "yx" for a ``box_2d`` list (Gemini's documented [ymin, xmin, ymax, xmax]),
    "xy" for named corners ({"xmin": ...}: the names say it), and "" for a bare list under any
    other key, whose order the coordinate convention decides.
    """
    for key in BOX_KEYS:
        if key in entry:
            value = entry[key]
            box = _as_box(value)
            if box is not None:
                if isinstance(value, dict):
                    return box, "xy"
                return box, "yx" if key in YX_BOX_KEYS else ""
    box = _as_box(entry)
    return (box, "xy") if box is not None else None


def _entry_label(entry: dict[str, Any]) -> str:
    for key in LABEL_KEYS:
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _entry_score(entry: dict[str, Any]) -> float | None:
    for key in SCORE_KEYS:
        score = _number(entry.get(key))
        if score is not None:
            return score / 100.0 if 1.0 < score <= 100.0 else min(max(score, 0.0), 1.0)
    return None


def clip_box(
    box: tuple[float, float, float, float], image_size: tuple[int, int]
) -> tuple[float, float, float, float] | None:
    """``box`` sorted (x1 < x2, y1 < y2) and clipped to the image; None when nothing is left."""
    width, height = image_size
    x1, x2 = sorted((box[0], box[2]))
    y1, y2 = sorted((box[1], box[3]))
    x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
    y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    if x2 - x1 <= 0.0 or y2 - y1 <= 0.0:
        return None
    return (x1, y1, x2, y2)


def canonical_coords(coords: str) -> str:
    """The ``COORD_SYSTEMS`` name of ``coords`` (earlier names mapped); ValueError if unknown."""
    name = COORD_ALIASES.get(coords, coords) if isinstance(coords, str) else coords
    if name not in COORD_SYSTEMS:
        raise ValueError(f"coords must be one of {COORD_SYSTEMS}, got {coords!r}")
    return name


def parse_json_boxes(
    text: str,
    image_size: tuple[int, int],
    coords: str = "auto",
    model_input_size: tuple[int, int] | None = None,
) -> list[ParsedBox]:
    """Boxes a VLM wrote as JSON, in pixels of the original ``image_size`` (width, height).

    ``coords`` says what the numbers mean (``COORD_SYSTEMS``): "pixels" of the image the model
    saw (``model_input_size`` when it was resized, e.g. Qwen2.5-VL's smart resize, else the
    original), "norm1000" (x, y on a 0-1000 grid of the image: Qwen3-VL, Qwen2-VL), "norm1"
    (0-1 fractions) or "norm1000_yx" (y, x on a 0-1000 grid: Gemini); "grid1000" and
    "normalized" are the earlier names of norm1000 and norm1.  A ``box_2d`` list is always read
    as [ymin, xmin, ymax, xmax] and named corners ({"xmin": ...}) by their names; under
    "norm1000_yx" every other list is y-first too.

    "auto" guesses from the answer: every number <= 1 -> norm1; a ``box_2d`` key -> norm1000;
    else pixels.  That last guess reads a 0-1000 answer as pixels, so a caller that knows the
    model should pass its convention instead.  Unparseable entries are skipped.
    """
    system = canonical_coords(coords)
    if not isinstance(text, str) or not text.strip():
        return []
    raw: list[tuple[str, tuple[float, float, float, float], str, float | None]] = []
    for value in _json_values(text):
        for entry in _entries(value):
            found = _entry_box(entry)
            if found is not None:
                raw.append((_entry_label(entry), found[0], found[1], _entry_score(entry)))
    if not raw:
        return []
    if system == "auto":
        if all(abs(v) <= 1.0 for _, box, _, _ in raw for v in box):
            system = "norm1"
        elif any(order == "yx" for _, _, order, _ in raw):
            system = "norm1000"
        else:
            system = "pixels"
    width, height = image_size
    if system == "pixels":
        in_w, in_h = model_input_size or image_size
        sx, sy = width / max(in_w, 1), height / max(in_h, 1)
    elif system in ("norm1000", "norm1000_yx"):
        sx, sy = width / GRID, height / GRID
    else:
        sx, sy = float(width), float(height)
    y_first = system == "norm1000_yx"
    boxes: list[ParsedBox] = []
    for label, box, order, score in raw:
        yx = order == "yx" or (order == "" and y_first)
        x1, y1, x2, y2 = (box[1], box[0], box[3], box[2]) if yx else box
        clipped = clip_box((x1 * sx, y1 * sy, x2 * sx, y2 * sy), image_size)
        if clipped is not None:
            boxes.append(ParsedBox(label, clipped, score))
    return boxes


# ---------------------------------------------------------------------------- Florence-2 answers


def _florence_shapes(
    runs: list[list[tuple[int, float | None]]], polygons: bool
) -> Iterator[tuple[list[int], float | None]]:
    """Runs of (bin, score) -> ([x1, y1, x2, y2] bins, mean score): 4 bins per box, or the
    extent of a polygon's x, y pairs."""
    for run in runs:
        groups = [run] if polygons else [run[i:i + 4] for i in range(0, len(run) - 3, 4)]
        for group in groups:
            bins = [b for b, _ in group]
            xs, ys = bins[0:len(bins) - len(bins) % 2:2], bins[1::2]
            if len(xs) < 2 or len(ys) < 2:
                continue
            box = [min(xs), min(ys), max(xs), max(ys)] if polygons else bins
            scores = [s for _, s in group if s is not None]
            yield box, (sum(scores) / len(scores) if scores else None)


def parse_florence_locations(
    text: str,
    image_size: tuple[int, int],
    shape: str = "auto",
    location_scores: Sequence[float] | None = None,
) -> list[ParsedBox]:
    """Florence-2 ``phrase<loc_x1><loc_y1><loc_x2><loc_y2>...`` -> boxes in image pixels.

    Each ``<loc_N>`` is bin N of 1000 across the image; like transformers' Florence2 post-processor
    we take the bin centre ((N + 0.5) * size / 1000).  A phrase followed by 8 locations has two
    boxes; phrases with no locations yield nothing.  ``shape``: "boxes" (groups of 4), "polygons"
    (x, y pairs -> their bounding box; runs split at ``<sep>``), or "auto" (polygons when the text
    has ``<poly>``/``<sep>`` markers, else boxes).  ``location_scores``, one per ``<loc_N>`` in
    text order (e.g. the generation's token probabilities), gives each box the mean of its own.
    """
    if not isinstance(text, str) or "<loc_" not in text:
        return []
    polygons = shape == "polygons" or (shape == "auto" and ("<poly>" in text or "<sep>" in text))
    width, height = image_size
    results: list[ParsedBox] = []
    phrase = ""
    runs: list[list[tuple[int, float | None]]] = []  # finished location runs of this phrase
    current: list[tuple[int, float | None]] = []
    n_locations = 0

    def flush() -> None:
        if current:
            runs.append(list(current))
            current.clear()
        for (bx1, by1, bx2, by2), score in _florence_shapes(runs, polygons):
            box = ((bx1 + 0.5) * width / GRID, (by1 + 0.5) * height / GRID,
                   (bx2 + 0.5) * width / GRID, (by2 + 0.5) * height / GRID)
            clipped = clip_box(box, image_size)
            if clipped is not None:
                results.append(ParsedBox(phrase, clipped, score))
        runs.clear()

    for loc, separator, _other_tag, words in _FLORENCE_TOKEN_RE.findall(text):
        if loc:
            score = None
            if location_scores is not None and n_locations < len(location_scores):
                score = float(location_scores[n_locations])
            current.append((min(int(loc), int(GRID) - 1), score))
            n_locations += 1
        elif separator:
            if current:
                runs.append(list(current))
                current.clear()
        elif words and words.strip():
            if runs or current:
                flush()
            phrase = words.strip()
    flush()
    return results


# ------------------------------------------------------------------------------- free-text answers


def extract_answer_text(text: str) -> str:
    """The answer itself from a caption/VQA generation: no reasoning, template markers or fences.

    Keeps the model's words; only removes ``<think>`` blocks, chat/seq2seq special tokens, an
    ``<answer>`` wrapper and a markdown fence around the whole answer, and collapses whitespace.
    """
    if not isinstance(text, str):
        return ""
    text = _strip_wrappers(text)
    answer = _ANSWER_TAG_RE.search(text)
    if answer:
        text = answer.group(1)
    stripped = text.strip()
    if stripped.startswith("```"):
        fence = _FENCE_RE.match(stripped)
        if fence:
            stripped = fence.group(1)
    return re.sub(r"\s+", " ", stripped).strip()
