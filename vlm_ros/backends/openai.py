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
import os
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
from vlm_ros.backends.parsing import COORD_SYSTEMS, extract_answer_text, parse_json_boxes
from vlm_ros.core.types import Detection

LOG = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.5
JPEG_QUALITY = 90
ERROR_BODY_CHARS = 300
# VLMs state no confidence; a box the model names is taken as asserted.
DEFAULT_SCORE = 1.0

DETECT_PROMPT = (
    "This image is {width}x{height} pixels. {task} Answer with only a JSON object of the form "
    '{{"objects": [{{"label": {label_hint}, "bbox": [x1, y1, x2, y2]}}]}} where (x1, y1) is '
    "the top-left and (x2, y2) the bottom-right corner of the object, in pixel coordinates of "
    "this {width}x{height} image. Give one entry per visible object, and "
    '{{"objects": []}} if there is none.'
)
DESCRIBE_PROMPT = "Describe this image in one short paragraph: the objects, where they are, colours."
ASK_PROMPT = "{question}\nAnswer briefly."


@dataclass
class _EncodedImage:
    """The JPEG data URL sent to the server and the pixel size the model sees."""

    data_url: str
    width: int
    height: int


def encode_image(rgb: np.ndarray, max_side: int) -> _EncodedImage:
    """Downscale ``rgb`` so its longer side is at most ``max_side``, then JPEG + base64 it."""
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(width, height))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
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


class OpenAiBackend(Backend):
    """A VLM behind an OpenAI-compatible ``/v1/chat/completions`` endpoint."""

    name = "openai"
    vocabulary = None
    resolves_referring_expressions = True
    capabilities = frozenset({"describe", "ask"})

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
        if coords not in COORD_SYSTEMS:
            raise BackendError(f"coords must be one of {COORD_SYSTEMS}, got {coords!r}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.coords = coords
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
        image = encode_image(rgb, self.max_image_side)
        if queries:
            names = ", ".join(json.dumps(q, ensure_ascii=False) for q in queries)
            task = f"Find every instance of: {names}."
            label_hint = '"<one of: ' + ", ".join(queries) + '>"'
        else:
            task = "Find every distinct object you can see."
            label_hint = '"<a short name>"'
        prompt = DETECT_PROMPT.format(width=image.width, height=image.height, task=task,
                                      label_hint=label_hint)
        text = self._chat(image, prompt, json_answer=True)
        height, width = rgb.shape[:2]
        parsed = parse_json_boxes(text, (width, height), coords=self.coords,
                                  model_input_size=(image.width, image.height))
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
        image = encode_image(rgb, self.max_image_side)
        return extract_answer_text(self._chat(image, DESCRIBE_PROMPT, json_answer=False))

    def ask(self, rgb: np.ndarray, question: str) -> str:
        require_rgb(rgb, self.name)
        image = encode_image(rgb, self.max_image_side)
        prompt = ASK_PROMPT.format(question=question.strip())
        return extract_answer_text(self._chat(image, prompt, json_answer=False))

    def info(self) -> dict[str, object]:
        return {**super().info(), "model": self.model, "base_url": self.base_url,
                "max_image_side": self.max_image_side, "json_mode": self.json_mode,
                "score_threshold": self.score_threshold}

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
