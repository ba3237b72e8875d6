"""Any OpenAI-compatible chat-completions server that serves a VLM (vLLM, Ollama, llama.cpp, SGLang).

Why a network backend: the biggest vision-language models do not fit on the robot, but a GPU box
on the same network can serve them behind the de-facto standard ``/v1/chat/completions`` API.
The adapter speaks that protocol with the standard library only (urllib + json + base64), so it
adds no dependency and works with every server that copies OpenAI's request shape.

What the adapter owns, beyond the HTTP call:

* **Image scale.**  The frame is downscaled so its longer side is at most ``max_image_side``
  before JPEG encoding (bandwidth and the server's token budget), the prompt states the size of
  the image the model actually sees, and boxes are mapped from that size back to the original
  frame's pixels.
* **Coordinate conventions.**  Model families answer boxes in different frames (``COORDS``):
  Qwen2.5-VL in absolute pixels of its smart-resized input, Qwen2-VL / Qwen3-VL on a 0-1000
  grid, Gemini as ``box_2d`` [ymin, xmin, ymax, xmax] on 0-1000.  ``coords`` names the
  convention; left on "auto" it is read from the model id (``coords_for_model``), and an id the
  table does not know is refused at construction: a 0-1000 answer read as pixels puts the box
  hundreds of pixels off, a confident wrong goal.  For Qwen2.5-VL the image is sent with sides
  that are multiples of 28 inside the pixel budget, so the server's smart resize leaves it as
  it is and the pixels the model answers in are the pixels we sent.
* **Failure modes a robot must survive.**  Unreachable server, timeouts, overload (429/5xx) and
  wrong configuration (401/404) all become ``BackendError`` with a message that says which URL and
  model were involved and what to check.  Overload and connection errors are retried with
  exponential backoff (honouring ``Retry-After``) but the whole call never takes longer than
  ``timeout_s * (retries + 1)``: a command that hangs is worse than one that fails.
* **Servers that differ.**  ``response_format: json_object`` is sent when ``json_mode`` is on; a
  server that rejects it (HTTP 400 naming response_format) is asked again without it, once, and
  the adapter remembers.  The API key is read from ``api_key_env`` at call time and never logged;
  without it no Authorization header is sent, which local servers accept.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import logging
import math
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from vlm_ros.backends.base import Backend, BackendError, require_rgb
from vlm_ros.backends.parsing import COORD_ALIASES, extract_answer_text, parse_json_boxes
from vlm_ros.core.types import Detection

LOG = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.5
JPEG_QUALITY = 90
ERROR_BODY_CHARS = 300
# VLMs state no confidence; a box the model names is taken as asserted.
DEFAULT_SCORE = 1.0

# The box conventions ``coords`` accepts (see the README's backend section):
#   pixels       [x1, y1, x2, y2] in absolute pixels of the image as sent (its size is in the
#                prompt; the adapter maps them back to the original frame)
#   pixels_28    the same, for a model that resizes its input to sides that are multiples of 28
#                (Qwen2.5-VL's smart resize): the image is sent already resized that way, within
#                min_pixels..max_pixels, so the frame the model answers in is the one we sent
#   norm1000     [x1, y1, x2, y2] on a 0-1000 grid of the image (Qwen2-VL, Qwen3-VL)
#   norm1        [x1, y1, x2, y2] as fractions 0-1 of the image's width and height
#   norm1000_yx  [ymin, xmin, ymax, xmax] on a 0-1000 grid (Gemini's box_2d)
#   auto         from the model id (MODEL_COORDS); refused for ids the table does not know
COORDS: tuple[str, ...] = ("auto", "pixels", "pixels_28", "norm1000", "norm1", "norm1000_yx")
# Model families whose convention is known, matched case-insensitively anywhere in the model id
# (so org prefixes, sizes and quantisation suffixes do not matter).  First match wins: the
# Qwen2.5-VL pattern must come before Qwen2-VL's.
MODEL_COORDS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("Qwen2.5-VL", re.compile(r"qwen[-_ ]?2[._]?5[-_ ]?vl", re.IGNORECASE), "pixels_28"),
    ("Qwen2-VL", re.compile(r"qwen[-_ ]?2[-_ ]?vl", re.IGNORECASE), "norm1000"),
    ("Qwen3-VL", re.compile(r"qwen[-_ ]?3[-_ ]?vl", re.IGNORECASE), "norm1000"),
    ("Gemini", re.compile(r"gemini", re.IGNORECASE), "norm1000_yx"),
)
# Qwen2.5-VL's smart resize: sides multiples of patch 14 x merge 2, pixel count within a budget.
# The budget defaults are transformers' Qwen2VLImageProcessor defaults (min 56*56, max
# 28*28*1280).  Checkpoints ship a larger max_pixels (12845056 for Qwen2.5-VL-7B-Instruct), and
# an image inside the smaller budget is inside the larger one too, so it is left unresized by
# either; set max_pixels lower only when the server was started with a lower max_pixels.
SMART_RESIZE_FACTOR = 28
SMART_RESIZE_MIN_PIXELS = 56 * 56
SMART_RESIZE_MAX_PIXELS = 28 * 28 * 1280

_JSON_SHAPE = ('{{"objects": [{{"label": {label_hint}, "{key}": {layout}}}]}}')
DETECT_PROMPT = (
    "{size}{task} Answer with only a JSON object of the form "
    + _JSON_SHAPE + " {frame} Give one entry per visible object, and "
    '{{"objects": []}} if there is none.'
)
SIZE_SENTENCE = "This image is {width}x{height} pixels. "  # pixel conventions only
# How the prompt asks for each convention: (key, layout, what the numbers are).
_PROMPT_FRAMES: dict[str, tuple[str, str, str]] = {
    "pixels": ("bbox", "[x1, y1, x2, y2]",
               "where (x1, y1) is the top-left and (x2, y2) the bottom-right corner of the "
               "object, in pixel coordinates of this {width}x{height} image."),
    "norm1000": ("bbox_2d", "[x1, y1, x2, y2]",
                 "where (x1, y1) is the top-left and (x2, y2) the bottom-right corner of the "
                 "object, in coordinates normalised to 0-1000 (x: 0 at the left edge, 1000 at "
                 "the right edge; y: 0 at the top, 1000 at the bottom)."),
    "norm1": ("bbox", "[x1, y1, x2, y2]",
              "where (x1, y1) is the top-left and (x2, y2) the bottom-right corner of the "
              "object, as fractions of the image width and height from 0 to 1."),
    "norm1000_yx": ("box_2d", "[ymin, xmin, ymax, xmax]",
                    "where box_2d is the 2D bounding box of the object as [ymin, xmin, ymax, "
                    "xmax] normalised to 0-1000."),
}
DESCRIBE_PROMPT = "Describe this image in one short paragraph: the objects, where they are, colours."
ASK_PROMPT = "{question}\nAnswer briefly."


@dataclass
class _EncodedImage:
    """The JPEG data URL sent to the server and the pixel size the model sees."""

    data_url: str
    width: int
    height: int


def coords_for_model(model: str) -> str | None:
    """The box convention (``COORDS``) model id ``model`` answers in, or None when unknown.

    Case-insensitive, anywhere in the id: "Qwen/Qwen2.5-VL-7B-Instruct",
    "qwen2.5-vl-72b-instruct-awq" and Ollama's "qwen2.5vl:7b" are all Qwen2.5-VL.
    """
    for _family, pattern, coords in MODEL_COORDS:
        if pattern.search(model or ""):
            return coords
    return None


def smart_resize(width: int, height: int, factor: int = SMART_RESIZE_FACTOR,
                 min_pixels: int = SMART_RESIZE_MIN_PIXELS,
                 max_pixels: int = SMART_RESIZE_MAX_PIXELS) -> tuple[int, int]:
    """The (width, height) Qwen2-VL / Qwen2.5-VL image processors resize a width x height image to.

    The rule of transformers' ``Qwen2VLImageProcessor``: each side rounded to the nearest
    multiple of ``factor`` (Python rounding, half to even); if that exceeds ``max_pixels`` both
    sides are scaled by sqrt(area / max_pixels) and floored to multiples of ``factor`` (never
    below one factor), if it falls short of ``min_pixels`` they are scaled up by
    sqrt(min_pixels / area) and ceiled.  Sides that are already multiples of ``factor`` with an
    area inside the budget come back unchanged.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    out_w = round(width / factor) * factor
    out_h = round(height / factor) * factor
    if out_w * out_h > max_pixels:
        shrink = math.sqrt(width * height / max_pixels)
        out_w = max(factor, math.floor(width / shrink / factor) * factor)
        out_h = max(factor, math.floor(height / shrink / factor) * factor)
    elif out_w * out_h < min_pixels:
        grow = math.sqrt(min_pixels / (width * height))
        out_w = math.ceil(width * grow / factor) * factor
        out_h = math.ceil(height * grow / factor) * factor
    return out_w, out_h


def sent_size(width: int, height: int, max_side: int, coords: str = "pixels",
              min_pixels: int = SMART_RESIZE_MIN_PIXELS,
              max_pixels: int = SMART_RESIZE_MAX_PIXELS) -> tuple[int, int]:
    """The (width, height) the adapter sends a width x height frame at.

    Downscaled so the longer side is at most ``max_side``; for "pixels_28" then smart-resized
    (sides multiples of 28, area within ``min_pixels``..``max_pixels``; the longer side may end
    up to 14 px above ``max_side``), so a Qwen2.5-VL server does not resize it again.
    """
    scale = min(1.0, max_side / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if coords == "pixels_28":
        size = smart_resize(*size, min_pixels=min_pixels, max_pixels=max_pixels)
    return size


def encode_image(rgb: np.ndarray, max_side: int,
                 size: tuple[int, int] | None = None) -> _EncodedImage:
    """Resize ``rgb`` to ``size`` (width, height), by default so its longer side is at most
    ``max_side``, then JPEG + base64 it."""
    height, width = rgb.shape[:2]
    if size is None:
        size = sent_size(width, height, max_side)
    if size != (width, height):
        shrinking = size[0] * size[1] < width * height
        rgb = cv2.resize(rgb, size,
                         interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise BackendError("openai: could not JPEG-encode the image")
    data = base64.b64encode(jpeg.tobytes()).decode("ascii")
    return _EncodedImage(f"data:image/jpeg;base64,{data}", int(rgb.shape[1]), int(rgb.shape[0]))


def _normalize(text: str) -> str:
    return " ".join(text.lower().split())


def match_query(label: str, queries: Sequence[str]) -> str | None:
    """The query ``label`` answers: exact (case/space-insensitive), else the closest substring.

    Models paraphrase ("red coffee cup" for "cup", "Cup" for "cup"); a label that shares no words
    with any query is something nobody asked for and is dropped (None).
    """
    wanted = _normalize(label)
    if not wanted:
        return None
    for query in queries:
        if _normalize(query) == wanted:
            return query
    overlapping = [q for q in queries
                   if _normalize(q) and (_normalize(q) in wanted or wanted in _normalize(q))]
    if not overlapping:
        return None
    # The closest is the one whose length differs least from the label's.
    return min(overlapping, key=lambda q: abs(len(_normalize(q)) - len(wanted)))


def _retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None if absent/bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def resolve_coords(model: str, coords: str) -> tuple[str, str]:
    """(convention, where it came from: "coords option" or "model id") for ``model``.

    An explicit ``coords`` always wins; "auto" takes the model id's convention and raises
    ``BackendError`` (one line naming the option and its values) for an id nobody knows.
    """
    name = COORD_ALIASES.get(coords, coords) if isinstance(coords, str) else coords
    if name not in COORDS:
        raise BackendError(f"openai: coords must be one of {', '.join(COORDS)}; got {coords!r}")
    if name != "auto":
        return name, "coords option"
    known = coords_for_model(model)
    if known is None:
        raise BackendError(
            f"openai: cannot tell which box coordinates model {model!r} answers in; set "
            f"backend_options coords to one of {', '.join(COORDS[1:])} (pixels: of the image "
            f"as sent; norm1000: 0-1000 grid; norm1: 0-1; norm1000_yx: Gemini box_2d; "
            f"pixels_28: Qwen2.5-VL's smart-resized input)")
    return known, "model id"


def detect_prompt(coords: str, width: int, height: int, task: str, label_hint: str) -> str:
    """The detection request for a model answering in convention ``coords`` (not "auto")."""
    pixels = coords in ("pixels", "pixels_28")
    key, layout, frame = _PROMPT_FRAMES["pixels" if pixels else coords]
    # Only a model answering in pixels needs the size; a grid answer does not depend on it.
    size = SIZE_SENTENCE.format(width=width, height=height) if pixels else ""
    return DETECT_PROMPT.format(size=size, task=task, label_hint=label_hint, key=key,
                                layout=layout, frame=frame.format(width=width, height=height))


class OpenAiBackend(Backend):
    """A VLM behind an OpenAI-compatible ``/v1/chat/completions`` endpoint."""

    name = "openai"
    vocabulary = None
    resolves_referring_expressions = True
    capabilities = frozenset({"describe", "ask"})
    default_score_threshold = 0.3

    def __init__(
        self,
        model: str = "",
        device: str = "auto",  # accepted so the node's generic parameters work; the server decides
        dtype: str = "auto",  # idem
        score_threshold: float = 0.3,
        base_url: str = "http://localhost:8000/v1",
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 30.0,
        retries: int = 2,
        coords: str = "auto",
        max_image_side: int = 1024,
        temperature: float = 0.0,
        max_tokens: int = 512,
        json_mode: bool = True,
        min_pixels: int = SMART_RESIZE_MIN_PIXELS,
        max_pixels: int = SMART_RESIZE_MAX_PIXELS,
    ) -> None:
        if not model:
            raise BackendError(
                "openai backend needs model= the name the server serves (e.g. "
                "'Qwen/Qwen2.5-VL-7B-Instruct' for vLLM, 'qwen2.5vl' for Ollama); "
                f"list them with: curl {base_url.rstrip('/')}/models")
        if not 0.0 <= score_threshold <= 1.0:
            raise BackendError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if timeout_s <= 0 or retries < 0 or max_image_side < 32 or max_tokens < 1:
            raise BackendError(
                f"openai: need timeout_s > 0, retries >= 0, max_image_side >= 32 and "
                f"max_tokens >= 1; got {timeout_s}, {retries}, {max_image_side}, {max_tokens}")
        if not 0 < min_pixels <= max_pixels:
            raise BackendError(f"openai: need 0 < min_pixels <= max_pixels; got {min_pixels}, "
                               f"{max_pixels}")
        self.model = model
        self.coords, self.coords_from = resolve_coords(model, coords)
        self.min_pixels = int(min_pixels)
        self.max_pixels = int(max_pixels)
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.max_image_side = int(max_image_side)
        self.score_threshold = float(score_threshold)
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.json_mode = bool(json_mode)

    # ---------------------------------------------------------------- Backend API
    def detect(self, rgb: np.ndarray, queries: Sequence[str]) -> list[Detection]:
        """One chat request asking for a JSON list of boxes; boxes in pixels of ``rgb``."""
        require_rgb(rgb, self.name)
        if isinstance(queries, str):
            queries = [queries]
        queries = [q for q in queries if q.strip()]
        image = self._encode(rgb)
        if queries:
            names = ", ".join(json.dumps(q, ensure_ascii=False) for q in queries)
            task = f"Find every instance of: {names}."
            label_hint = '"<one of: ' + ", ".join(queries) + '>"'
        else:
            task = "Find every distinct object you can see."
            label_hint = '"<a short name>"'
        prompt = detect_prompt(self.coords, image.width, image.height, task, label_hint)
        text = self._chat(image, prompt, json_answer=True)
        height, width = rgb.shape[:2]
        system = "pixels" if self.coords == "pixels_28" else self.coords
        # pixels_28: the image was sent at a smart-resize fixed point, so this is its own size;
        # computed rather than assumed, it stays exact for a server with the same budget.
        model_input = (smart_resize(image.width, image.height, min_pixels=self.min_pixels,
                                    max_pixels=self.max_pixels)
                       if self.coords == "pixels_28" else (image.width, image.height))
        parsed = parse_json_boxes(text, (width, height), coords=system,
                                  model_input_size=model_input)
        detections = []
        for box in parsed:
            phrase = match_query(box.label, queries) if queries else None
            if queries and phrase is None:
                LOG.debug("openai: dropping box labelled %r (asked for %s)", box.label, queries)
                continue
            score = DEFAULT_SCORE if box.score is None else float(box.score)
            if score < self.score_threshold:
                continue
            # parse_json_boxes already mapped the box to the original frame and clipped it.
            detections.append(Detection(label=phrase or box.label, score=score, bbox=box.bbox,
                                        phrase=phrase))
        return detections

    def describe(self, rgb: np.ndarray) -> str:
        require_rgb(rgb, self.name)
        image = self._encode(rgb)
        return extract_answer_text(self._chat(image, DESCRIBE_PROMPT, json_answer=False))

    def ask(self, rgb: np.ndarray, question: str) -> str:
        require_rgb(rgb, self.name)
        image = self._encode(rgb)
        prompt = ASK_PROMPT.format(question=question.strip())
        return extract_answer_text(self._chat(image, prompt, json_answer=False))

    def info(self) -> dict[str, object]:
        return {**super().info(), "model": self.model, "base_url": self.base_url,
                "max_image_side": self.max_image_side, "json_mode": self.json_mode,
                "coords": self.coords, "coords_from": self.coords_from,
                "score_threshold": self.score_threshold}

    def _encode(self, rgb: np.ndarray) -> _EncodedImage:
        height, width = rgb.shape[:2]
        size = sent_size(width, height, self.max_image_side, self.coords,
                         self.min_pixels, self.max_pixels)
        return encode_image(rgb, self.max_image_side, size)

    # ---------------------------------------------------------------- protocol
    def _body(self, image: _EncodedImage, prompt: str, json_answer: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            # Image first, then the text: the order most VLM chat templates were trained on.  No
            # system message: several VLM templates (Gemma, some LLaVA) reject the system role.
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": image.data_url}},
                {"type": "text", "text": prompt},
            ]}],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stream": False,
        }
        if json_answer and self.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    @property
    def endpoint(self) -> ChatEndpoint:
        """Where and how requests go (read at call time: the attributes may be changed)."""
        return ChatEndpoint(url=self.url, base_url=self.base_url, model=self.model,
                            api_key_env=self.api_key_env, timeout_s=self.timeout_s,
                            retries=self.retries, name=self.name)

    def _chat(self, image: _EncodedImage, prompt: str, json_answer: bool) -> str:
        """POST one chat completion and return the assistant's text, retrying what may pass."""

        def without_response_format(detail: str) -> bool:
            if json_answer and self.json_mode and "response_format" in detail:
                LOG.warning("openai: %s does not support response_format; asking without it "
                            "from now on", self.url)
                self.json_mode = False
                return True
            return False

        return post_chat(self.endpoint, lambda: self._body(image, prompt, json_answer),
                         without_response_format).text


# ------------------------------------------------------------------------------------------
# The chat-completions request, shared with the language-model command parser
# (vlm_ros/backends/llm_parser.py).
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChatEndpoint:
    """One OpenAI-compatible server and model, and how long to try it.

    ``name`` prefixes log lines; ``who`` (when set) prefixes error messages so they say which
    part of the node was asking.
    """

    url: str  # .../v1/chat/completions
    base_url: str  # .../v1
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 30.0
    retries: int = 2
    name: str = "openai"
    who: str = ""

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    @property
    def where(self) -> str:
        return f"{self.who}{self.url} (model {self.model!r})"


@dataclass(frozen=True)
class ChatAnswer:
    """The assistant's text and why generation ended ("stop", "length", ... or None)."""

    text: str
    finish_reason: str | None = None


def post_chat(endpoint: ChatEndpoint, body: Callable[[], dict[str, Any]],
              bad_request: Callable[[str], bool] | None = None) -> ChatAnswer:
    """POST one chat completion and return the assistant's answer, retrying what may pass.

    ``body`` builds the request anew for every attempt.  ``bad_request(detail)`` sees the
    server's message of an HTTP 400: it returns True when it changed what ``body`` builds (a
    protocol fix-up, e.g. dropping an unsupported response_format), and the request is sent
    again without counting as a failed try.  Raises ``BackendError`` naming the server.
    """
    started = time.monotonic()
    deadline = started + endpoint.timeout_s * (endpoint.retries + 1)
    attempt = 0
    while True:
        attempt += 1
        timeout = max(0.05, min(endpoint.timeout_s, deadline - time.monotonic()))
        payload = json.dumps(body()).encode("utf-8")
        request = urllib.request.Request(endpoint.url, data=payload, headers=endpoint.headers(),
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                raw = r.read()
            return _answer(endpoint, raw)
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            if exc.code == 400 and bad_request is not None and bad_request(detail):
                attempt -= 1  # a protocol fix-up, not a failed try
                continue
            if exc.code not in RETRYABLE_STATUS:
                raise BackendError(_http_message(endpoint, exc.code, detail)) from None
            wait = _retry_after_s(exc.headers.get("Retry-After") if exc.headers else None)
            failure = f"HTTP {exc.code} ({detail or 'no detail'})"
        except (TimeoutError, socket.timeout):
            wait, failure = None, f"no answer within {endpoint.timeout_s:g} s"
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, (TimeoutError, socket.timeout)):
                wait, failure = None, f"no answer within {endpoint.timeout_s:g} s"
            else:
                wait, failure = None, f"could not connect ({reason})"
        if wait is None:
            wait = BACKOFF_BASE_S * 2 ** (attempt - 1)
        remaining = deadline - time.monotonic()
        if attempt > endpoint.retries or wait >= remaining:
            raise BackendError(_gave_up_message(endpoint, failure, attempt, wait, remaining))
        LOG.info("%s: %s from %s; retry %d/%d in %.1f s", endpoint.name, failure, endpoint.url,
                 attempt, endpoint.retries, wait)
        time.sleep(wait)


def _answer(endpoint: ChatEndpoint, raw: bytes) -> ChatAnswer:
    """choices[0].message.content of a chat-completion response, as text."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        snippet = raw[:120].decode("utf-8", "replace")
        raise BackendError(
            f"{endpoint.who}{endpoint.url} answered with something that is not JSON "
            f"({snippet!r}); is base_url an OpenAI-compatible endpoint ending in /v1?") from None
    try:
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise BackendError(
            f"{endpoint.who}{endpoint.url} answered JSON without choices[0].message.content "
            f"({json.dumps(data)[:ERROR_BODY_CHARS]}); is it a chat-completions server?"
        ) from None
    if isinstance(content, list):  # some servers return content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    finish = choice.get("finish_reason") if isinstance(choice, dict) else None
    return ChatAnswer(content or "", finish if isinstance(finish, str) else None)


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """The server's error message (OpenAI-style {"error": {"message"}} or the raw body)."""
    try:
        body = exc.read().decode("utf-8", "replace")
    except OSError:
        return ""
    try:
        error = json.loads(body).get("error", body)
        if isinstance(error, dict):
            error = error.get("message", error)
        body = str(error)
    except (json.JSONDecodeError, AttributeError):
        pass
    return " ".join(body.split())[:ERROR_BODY_CHARS]


def _http_message(endpoint: ChatEndpoint, code: int, detail: str) -> str:
    where = endpoint.where
    if code in (401, 403):
        state = "is set" if os.environ.get(endpoint.api_key_env) else "is not set"
        return (f"{where} refused the request with HTTP {code}: check the API key in the "
                f"environment variable {endpoint.api_key_env} (it {state}). {detail}").strip()
    if code == 404:
        return (f"{where} answered HTTP 404: check base_url (it should end in /v1) and that "
                f"the server serves model {endpoint.model!r} (curl {endpoint.base_url}/models). "
                f"{detail}").strip()
    return f"{where} rejected the request with HTTP {code}: {detail or 'no detail'}"


def _gave_up_message(endpoint: ChatEndpoint, failure: str, attempts: int, wait: float,
                     remaining: float) -> str:
    why = f"{failure}"
    if attempts <= endpoint.retries and wait >= remaining:
        why += (f"; the next retry (in {wait:.1f} s) would pass the "
                f"{endpoint.timeout_s * (endpoint.retries + 1):g} s budget")
    hint = "is the server running and reachable?"
    if "within" in failure:
        hint = "the model may be loading or too slow; raise timeout_s or use a smaller model"
    elif failure.startswith("HTTP"):
        hint = "the server is overloaded or failing; check its logs"
    return (f"{endpoint.where} failed after {attempts} attempt(s): {why}. "
            f"{hint}")
