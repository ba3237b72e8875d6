"""The ``openai`` backend against a real HTTP server that speaks the chat-completions protocol.

No mock stands in for the adapter or its HTTP stack: each test starts a stdlib
``ThreadingHTTPServer`` on 127.0.0.1 (port 0) that checks what a real server would check (the
path, the Authorization header, the JSON body, the base64 JPEG inside it) and answers with
canned but realistic chat-completion JSON.  The model's answer is scripted; everything the
adapter does with it (image scaling, box mapping, label matching, retries, error messages) is
the real code path.  The server records what it saw so tests can assert on the wire format.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np
import pytest
from photos import load_photo

from vlm_ros import scenes
from vlm_ros.backends import create_backend
from vlm_ros.backends import openai as openai_backend
from vlm_ros.backends.base import BackendError
from vlm_ros.backends.openai import OpenAiBackend, match_query
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.session import CommandSession
from vlm_ros.core.types import Frame

KEY_ENV = "VLM_ROS_TEST_OPENAI_KEY"
# The red cup in skimage's coffee.png (600x400), as SSD-COCO boxes it.
COFFEE_CUP = (173.0, 13.0, 412.0, 240.0)
# The prompt states the size of the image the model sees: "This image is 256x171 pixels."
SIZE_RE = re.compile(r"(\d+)x(\d+) pixels")


@dataclass
class Seen:
    """One request as the server saw it."""

    path: str
    authorization: str | None
    body: dict[str, Any]
    prompt: str
    image_size: tuple[int, int] | None  # (width, height) of the decoded JPEG
    claimed_size: tuple[int, int] | None  # (width, height) the prompt states
    at: float


@dataclass
class Reply:
    status: int = 200
    content: str = ""  # the assistant message text, wrapped in a chat completion
    raw: bytes | None = None  # sent as-is instead (non-JSON answers)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def completion(content: str, model: str = "served-vlm") -> bytes:
    """A chat-completion response shaped like vLLM's / OpenAI's."""
    return json.dumps({
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 512, "completion_tokens": 40, "total_tokens": 552},
    }).encode()


def error_body(message: str, kind: str = "invalid_request_error") -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": None}}).encode()


def fenced_boxes(objects: list[dict[str, Any]]) -> str:
    """What a VLM typically writes even in JSON mode: prose-free, but fenced."""
    return "```json\n" + json.dumps({"objects": objects}) + "\n```"


class ChatServer:
    """A chat-completions endpoint at ``url`` whose answers come from ``respond(seen)``."""

    def __init__(self, respond: Callable[[Seen], Reply], api_key: str | None = None,
                 reject_response_format: bool = False) -> None:
        self.respond = respond
        self.api_key = api_key
        self.reject_response_format = reject_response_format
        self.seen: list[Seen] = []
        self.release = threading.Event()  # wakes delayed handlers at shutdown
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                reply = server.handle(self.path, self.headers.get("Authorization"),
                                      self.rfile.read(length))
                if reply.delay_s:
                    server.release.wait(reply.delay_s)
                payload = reply.raw if reply.raw is not None else (
                    completion(reply.content) if reply.status == 200 else reply.content.encode())
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = False  # server_close() joins handlers: a clean shutdown
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def handle(self, path: str, authorization: str | None, raw: bytes) -> Reply:
        if path != "/v1/chat/completions":
            return Reply(404, error_body(f"no route {path}").decode())
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            return Reply(401, error_body("Incorrect API key provided",
                                         "authentication_error").decode())
        body = json.loads(raw)
        seen = self._record(path, authorization, body)
        if self.reject_response_format and "response_format" in body:
            return Reply(400, error_body("response_format is not supported by this "
                                         "server").decode())
        return self.respond(seen)

    def _record(self, path: str, authorization: str | None, body: dict[str, Any]) -> Seen:
        parts = body["messages"][0]["content"]
        prompt = " ".join(p["text"] for p in parts if p["type"] == "text")
        image_size = claimed = None
        for part in parts:
            if part["type"] == "image_url":
                header, data = part["image_url"]["url"].split(",", 1)
                assert header == "data:image/jpeg;base64"
                jpeg = np.frombuffer(base64.b64decode(data), np.uint8)
                decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
                image_size = (decoded.shape[1], decoded.shape[0])
        match = SIZE_RE.search(prompt)
        if match:
            claimed = (int(match.group(1)), int(match.group(2)))
        seen = Seen(path, authorization, body, prompt, image_size, claimed, time.monotonic())
        self.seen.append(seen)
        return seen

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


def scripted(*replies: Reply) -> Callable[[Seen], Reply]:
    """Answer with ``replies`` in order, repeating the last one."""
    queue = list(replies)

    def respond(_seen: Seen) -> Reply:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return respond


def cup_in_sent_pixels(seen: Seen, label: str = "cup") -> Reply:
    """The model's answer: the coffee cup, in pixels of the image it was sent (as asked)."""
    width, height = seen.image_size
    sx, sy = width / 600.0, height / 400.0
    x1, y1, x2, y2 = COFFEE_CUP
    return Reply(content=fenced_boxes([
        {"label": label, "bbox": [round(x1 * sx), round(y1 * sy), round(x2 * sx), round(y2 * sy)]},
    ]))


@pytest.fixture
def coffee() -> np.ndarray:
    return load_photo("coffee")


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(KEY_ENV, raising=False)
    yield


def backend_for(server: ChatServer, **options: Any) -> OpenAiBackend:
    # "served-vlm" names no known family, so its box convention is stated: pixels as sent.
    options = {"model": "served-vlm", "base_url": server.url, "api_key_env": KEY_ENV,
               "timeout_s": 5.0, "coords": "pixels", **options}
    return OpenAiBackend(**options)


def closed_port() -> int:
    """A localhost port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------- detection


def test_boxes_map_back_to_original_pixels_of_a_downscaled_photo(coffee: np.ndarray,
                                                                 no_key: None) -> None:
    with ChatServer(cup_in_sent_pixels) as server:
        backend = backend_for(server, max_image_side=256)
        detections = backend.detect(coffee, ["cup"])
    seen = server.seen[0]
    # The model saw a 256x171 JPEG, and the prompt told it exactly that.
    assert seen.image_size == (256, 171)
    assert seen.claimed_size == seen.image_size
    assert seen.body["model"] == "served-vlm"
    assert seen.body["response_format"] == {"type": "json_object"}
    assert seen.authorization is None  # no key set: no header, as local servers expect
    assert '"cup"' in seen.prompt
    assert len(detections) == 1
    det = detections[0]
    assert det.label == "cup" and det.phrase == "cup" and 0.0 <= det.score <= 1.0
    # Back in the 600x400 frame: within the rounding of one sent pixel (600/256 = 2.3 px).
    assert np.allclose(det.bbox, COFFEE_CUP, atol=2.5), det.bbox


def test_a_wide_frame_is_scaled_on_its_long_side(no_key: None) -> None:
    zidane = load_photo("zidane")  # 1280x720
    person = (100.0, 40.0, 620.0, 710.0)

    def respond(seen: Seen) -> Reply:
        s = seen.image_size[0] / 1280.0
        return Reply(content=json.dumps({"objects": [
            {"label": "Person", "bbox": [round(v * s) for v in person]}]}))

    with ChatServer(respond) as server:
        detections = backend_for(server, max_image_side=640).detect(zidane, ["person"])
    assert server.seen[0].image_size == server.seen[0].claimed_size == (640, 360)
    assert [d.label for d in detections] == ["person"]
    assert np.allclose(detections[0].bbox, person, atol=2.0)


def test_labels_map_to_the_closest_query_and_strangers_are_dropped(coffee: np.ndarray,
                                                                    no_key: None) -> None:
    answer = Reply(content=fenced_boxes([
        {"label": "Red  Cup", "bbox": [70, 5, 165, 96]},
        {"label": "spoon", "bbox": [10, 10, 40, 40]},
        {"label": "saucer", "bbox": [60, 60, 200, 150]},
    ]))
    with ChatServer(scripted(answer)) as server:
        detections = backend_for(server, max_image_side=256).detect(coffee, ["cup", "saucer"])
    assert sorted(d.phrase for d in detections) == ["cup", "saucer"]
    assert all(d.label == d.phrase for d in detections)
    assert match_query("Red  Cup", ["cup", "red cup"]) == "red cup"
    assert match_query("CUP", ["bowl", " cup "]) == " cup "
    assert match_query("coffee", ["cup"]) is None


def test_empty_queries_ask_for_everything_and_keep_model_labels(coffee: np.ndarray,
                                                                no_key: None) -> None:
    answer = Reply(content='Sure! {"objects": [{"label": "cup", "bbox": [73, 5, 176, 102]}, '
                           '{"label": "table", "bbox": [0, 0, 256, 171]}]}')
    with ChatServer(scripted(answer)) as server:
        detections = backend_for(server, max_image_side=256).detect(coffee, [])
    assert "every distinct object" in server.seen[0].prompt
    assert [d.label for d in detections] == ["cup", "table"]
    assert all(d.phrase is None for d in detections)
    assert detections[1].bbox == (0.0, 0.0, 600.0, 400.0)


def test_an_answer_without_json_is_nothing_found(coffee: np.ndarray, no_key: None) -> None:
    with ChatServer(scripted(Reply(content="I cannot see any cup."))) as server:
        assert backend_for(server).detect(coffee, ["cup"]) == []


# ---------------------------------------------------------------------------- box conventions
# Each family's server answers the same known box in its own frame; the adapter must return it in
# pixels of the original 1280x720 photo within 1 px.  The box sits near the right and bottom
# edges, where a wrong frame is furthest off.
ZIDANE_BOX = (747.0, 41.0, 1141.0, 712.0)
# Qwen2.5-VL-7B-Instruct's preprocessor_config.json budget (what vLLM's HF processor uses).
QWEN25_CHECKPOINT_PIXELS = (3136, 12845056)


def reference_smart_resize(width: int, height: int, min_pixels: int,
                           max_pixels: int) -> tuple[int, int]:
    """Qwen2-VL's image processor resize (transformers' Qwen2VLImageProcessor), written out
    independently of the adapter's so the server does what a real one does."""
    w, h = round(width / 28) * 28, round(height / 28) * 28
    if w * h > max_pixels:
        beta = (width * height / max_pixels) ** 0.5
        w, h = max(28, int(width / beta // 28) * 28), max(28, int(height / beta // 28) * 28)
    elif w * h < min_pixels:
        beta = (min_pixels / (width * height)) ** 0.5
        w, h = -int(-width * beta // 28) * 28, -int(-height * beta // 28) * 28
    return w, h


def family_answer(family: str, box: tuple[float, float, float, float],
                  photo_size: tuple[int, int],
                  server_pixels: tuple[int, int] = QWEN25_CHECKPOINT_PIXELS,
                  ) -> Callable[[Seen], Reply]:
    """A server for ``family`` that answers ``box`` (pixels of the original photo) the way the
    family does: Qwen2.5-VL in pixels of the smart-resized input it actually ran on, Qwen2-VL /
    Qwen3-VL on a 0-1000 grid, Gemini as box_2d [ymin, xmin, ymax, xmax] on 0-1000, a generic
    chat model in pixels of the image it was sent, or 0-1 fractions."""
    width, height = photo_size
    x1, y1, x2, y2 = box

    def respond(seen: Seen) -> Reply:
        if family == "qwen2.5-vl":
            seen_w, seen_h = reference_smart_resize(*seen.image_size, *server_pixels)
            sx, sy = seen_w / width, seen_h / height
            entry = {"bbox_2d": [round(x1 * sx), round(y1 * sy), round(x2 * sx), round(y2 * sy)]}
        elif family == "qwen-grid":
            entry = {"bbox_2d": [round(x1 / width * 1000), round(y1 / height * 1000),
                                 round(x2 / width * 1000), round(y2 / height * 1000)]}
        elif family == "gemini":
            entry = {"box_2d": [round(y1 / height * 1000), round(x1 / width * 1000),
                                round(y2 / height * 1000), round(x2 / width * 1000)]}
        elif family == "sent-pixels":
            sx, sy = seen.image_size[0] / width, seen.image_size[1] / height
            entry = {"bbox": [round(x1 * sx), round(y1 * sy), round(x2 * sx), round(y2 * sy)]}
        elif family == "fractions":
            entry = {"bbox": [round(x1 / width, 4), round(y1 / height, 4),
                              round(x2 / width, 4), round(y2 / height, 4)]}
        else:
            raise AssertionError(family)
        # Qwen and Gemini both fence their JSON lists.
        return Reply(content="```json\n" + json.dumps([{**entry, "label": "man"}]) + "\n```")

    return respond


@pytest.fixture
def zidane() -> np.ndarray:
    return load_photo("zidane")  # 1280x720


def test_reference_sizes_of_the_smart_resize() -> None:
    # The frames the issue names: 1024x576 becomes 1036x588 on the server, 1280x720 1288x728.
    assert reference_smart_resize(1024, 576, *QWEN25_CHECKPOINT_PIXELS) == (1036, 588)
    assert reference_smart_resize(1280, 720, *QWEN25_CHECKPOINT_PIXELS) == (1288, 728)
    assert openai_backend.smart_resize(576, 1024) == (588, 1036)
    assert openai_backend.smart_resize(1280, 720, max_pixels=200704) == (588, 336)
    assert openai_backend.smart_resize(40, 30) == (84, 56)  # below min_pixels: scaled up


def test_qwen2_5_vl_gets_a_28_multiple_image_and_its_pixels_map_back(zidane: np.ndarray,
                                                                     no_key: None) -> None:
    respond = family_answer("qwen2.5-vl", ZIDANE_BOX, (1280, 720))
    with ChatServer(respond) as server:
        backend = backend_for(server, model="Qwen/Qwen2.5-VL-7B-Instruct", coords="auto")
        (det,) = backend.detect(zidane, ["man"])
    assert np.allclose(det.bbox, ZIDANE_BOX, atol=1.0), det.bbox
    seen = server.seen[0]
    # 1280x720 -> 1024x576 (max_image_side) -> smart-resized here to 1036x588, which the server
    # leaves as it is: the model answers in the frame that was sent, and the prompt says so.
    assert seen.image_size == seen.claimed_size == (1036, 588)
    assert reference_smart_resize(*seen.image_size, *QWEN25_CHECKPOINT_PIXELS) == seen.image_size
    assert backend.info()["coords"] == "pixels_28"


def test_qwen2_5_vl_with_a_lower_server_pixel_budget(zidane: np.ndarray, no_key: None) -> None:
    # vLLM started with --mm-processor-kwargs '{"max_pixels": 200704}', and max_pixels set to match.
    budget = (3136, 200704)
    with ChatServer(family_answer("qwen2.5-vl", ZIDANE_BOX, (1280, 720), budget)) as server:
        backend = backend_for(server, model="qwen2.5-vl-72b-instruct-awq", coords="auto",
                              max_pixels=budget[1])
        (det,) = backend.detect(zidane, ["man"])
    assert np.allclose(det.bbox, ZIDANE_BOX, atol=1.0), det.bbox
    assert server.seen[0].image_size == (588, 336)


@pytest.mark.parametrize("model", ["Qwen/Qwen3-VL-8B-Instruct", "Qwen/Qwen2-VL-7B-Instruct"])
def test_qwen3_and_qwen2_vl_answer_on_the_1000_grid(model: str, zidane: np.ndarray,
                                                    no_key: None) -> None:
    with ChatServer(family_answer("qwen-grid", ZIDANE_BOX, (1280, 720))) as server:
        backend = backend_for(server, model=model, coords="auto")
        (det,) = backend.detect(zidane, ["man"])
    # The answer is [584, 57, 891, 989]; read as pixels of the 1024x576 image sent (what "auto"
    # did before) it would land at (730, 71, 1114, 720), not on the man.
    assert np.allclose(det.bbox, ZIDANE_BOX, atol=1.0), det.bbox
    assert backend.info()["coords"] == "norm1000"
    assert "0-1000" in server.seen[0].prompt and '"bbox_2d"' in server.seen[0].prompt


def test_gemini_is_asked_for_box_2d_and_read_y_first(zidane: np.ndarray, no_key: None) -> None:
    with ChatServer(family_answer("gemini", ZIDANE_BOX, (1280, 720))) as server:
        backend = backend_for(server, model="gemini-2.5-flash", coords="auto")
        (det,) = backend.detect(zidane, ["man"])
    assert np.allclose(det.bbox, ZIDANE_BOX, atol=1.0), det.bbox
    # Asked the way Gemini is trained to answer (the old prompt asked it for pixel x, y boxes).
    prompt = server.seen[0].prompt
    assert '"box_2d": [ymin, xmin, ymax, xmax]' in prompt and "0-1000" in prompt
    assert "pixel" not in prompt  # a grid answer does not depend on the sent size


@pytest.mark.parametrize("model, coords, family", [
    ("gpt-4o", "pixels", "sent-pixels"),
    ("llava-hf/llava-1.5-7b-hf", "norm1", "fractions"),
    ("served-vlm", "norm1000", "qwen-grid"),
    ("served-vlm", "norm1000_yx", "gemini"),
    ("served-vlm", "pixels_28", "qwen2.5-vl"),
    # An explicit setting wins over the model id.
    ("gemini-2.5-flash", "norm1000", "qwen-grid"),
    ("Qwen/Qwen3-VL-8B-Instruct", "norm1", "fractions"),
])
def test_an_explicit_coords_option_is_the_convention(model: str, coords: str, family: str,
                                                      no_key: None) -> None:
    dog = load_photo("dog")  # 768x576
    box = (120.0, 210.0, 560.0, 570.0)
    with ChatServer(family_answer(family, box, (768, 576))) as server:
        backend = backend_for(server, model=model, coords=coords)
        (det,) = backend.detect(dog, ["man"])
    assert np.allclose(det.bbox, box, atol=1.0), det.bbox
    assert backend.info()["coords"] == coords and backend.info()["coords_from"] == "coords option"


@pytest.mark.parametrize("model", ["gpt-4o", "llava-hf/llava-1.5-7b-hf", "served-vlm",
                                   "Qwen/Qwen2.5-7B-Instruct"])
def test_an_unknown_model_without_coords_is_refused_not_guessed(model: str) -> None:
    with pytest.raises(BackendError) as info:
        OpenAiBackend(model=model)  # coords left on auto
    message = str(info.value)
    assert "\n" not in message and "coords" in message and model in message
    for value in ("pixels", "pixels_28", "norm1000", "norm1", "norm1000_yx"):
        assert value in message


def test_an_unknown_coords_value_names_the_choices() -> None:
    with pytest.raises(BackendError, match="coords must be one of auto, pixels, pixels_28"):
        OpenAiBackend(model="gpt-4o", coords="inches")


@pytest.mark.parametrize("model, coords", [
    ("Qwen/Qwen2.5-VL-7B-Instruct", "pixels_28"),
    ("qwen2.5-vl-72b-instruct-awq", "pixels_28"),
    ("Qwen/Qwen2.5-VL-3B-Instruct-AWQ", "pixels_28"),
    ("qwen2.5vl:7b", "pixels_28"),  # Ollama
    ("Qwen/Qwen2-VL-7B-Instruct", "norm1000"),
    ("Qwen/Qwen3-VL-8B-Instruct", "norm1000"),
    ("qwen3-vl-235b-a22b-thinking", "norm1000"),
    ("gemini-2.5-flash", "norm1000_yx"),
    ("models/Gemini-2.0-Flash", "norm1000_yx"),
    ("gpt-4o", None),
    ("llava-hf/llava-1.5-7b-hf", None),
    ("Qwen/Qwen2.5-7B-Instruct", None),  # a text-only Qwen
])
def test_model_ids_map_to_their_conventions(model: str, coords: str | None) -> None:
    assert openai_backend.coords_for_model(model) == coords


# ---------------------------------------------------------------------------- text answers


def test_describe_and_ask_round_trip(coffee: np.ndarray, no_key: None) -> None:
    def respond(seen: Seen) -> Reply:
        if "colour of the cup" in seen.prompt:
            return Reply(content="<think>The cup is clearly red.</think>\nRed.")
        return Reply(content="A red cup of coffee on a saucer,\n  on a wooden table.")

    with ChatServer(respond) as server:
        backend = backend_for(server)
        caption = backend.describe(coffee)
        answer = backend.ask(coffee, "What is the colour of the cup?")
    assert caption == "A red cup of coffee on a saucer, on a wooden table."
    assert answer == "Red."
    # Text answers do not force JSON mode; the full frame fits under max_image_side 1024.
    assert all("response_format" not in s.body for s in server.seen)
    assert all(s.image_size == (600, 400) for s in server.seen)
    assert backend.capabilities == frozenset({"describe", "ask"})


# ---------------------------------------------------------------------------- through the core


def test_pipeline_grounds_the_served_box(no_key: None) -> None:
    rgb, depth, intrinsics = scenes.coffee()
    frame = Frame(rgb=rgb, depth_m=depth, intrinsics=intrinsics)
    with ChatServer(cup_in_sent_pixels) as server:
        backend = backend_for(server, max_image_side=512)
        result = CommandSession(Pipeline(backend)).run("grab the red cup", frame)
    assert result.status == "ok", result.message
    # The VLM got the whole referring expression and its "cup" answers it.
    assert '"the red cup"' in server.seen[0].prompt
    target = result.targets[0]
    assert target.label == "the red cup"
    assert np.allclose(target.bbox, COFFEE_CUP, atol=2.0), target.bbox
    assert target.point_camera is not None  # the served box was placed in 3D from depth
    assert len(server.seen) == 1


def test_created_through_the_registry_with_the_nodes_generic_parameters(
        coffee: np.ndarray, no_key: None) -> None:
    with ChatServer(cup_in_sent_pixels) as server:
        backend = create_backend("openai", model="x", base_url=server.url, device="cuda",
                                 dtype="float16", score_threshold=0.3, api_key_env=KEY_ENV,
                                 coords="pixels")
        detections = backend.detect(coffee, ["cup"])
    assert isinstance(backend, OpenAiBackend) and backend.vocabulary is None
    assert backend.resolves_referring_expressions
    assert server.seen[0].body["model"] == "x"
    assert len(detections) == 1


def test_missing_model_name_says_what_to_pass() -> None:
    with pytest.raises(BackendError, match="needs model="):
        create_backend("openai")


# ---------------------------------------------------------------------------- keys and errors


def test_api_key_is_sent_as_bearer_and_a_wrong_one_names_the_env_var(
        coffee: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    with ChatServer(cup_in_sent_pixels, api_key="sk-right") as server:
        backend = backend_for(server)
        monkeypatch.delenv(KEY_ENV, raising=False)
        with pytest.raises(BackendError, match=f"{KEY_ENV}.*is not set"):
            backend.detect(coffee, ["cup"])
        monkeypatch.setenv(KEY_ENV, "sk-wrong")
        with pytest.raises(BackendError, match="HTTP 401") as wrong:
            backend.detect(coffee, ["cup"])
        monkeypatch.setenv(KEY_ENV, "sk-right")  # read at call time: no restart needed
        assert len(backend.detect(coffee, ["cup"])) == 1
    assert KEY_ENV in str(wrong.value) and "sk-wrong" not in str(wrong.value)
    assert server.seen[-1].authorization == "Bearer sk-right"
    assert len(server.seen) == 1  # the 401s were refused before the body was read, never retried


def test_404_is_not_retried_and_points_at_base_url_and_model(coffee: np.ndarray,
                                                              no_key: None) -> None:
    missing = Reply(404, error_body("The model `served-vlm` does not exist.",
                                    "NotFoundError").decode())
    with ChatServer(scripted(missing)) as server:
        with pytest.raises(BackendError) as info:
            backend_for(server, retries=3).detect(coffee, ["cup"])
    message = str(info.value)
    assert "404" in message and "/v1" in message and "served-vlm" in message
    assert "does not exist" in message  # the server's own words are kept
    assert len(server.seen) == 1


def test_retries_on_503_then_succeeds(coffee: np.ndarray, no_key: None) -> None:
    down = Reply(503, error_body("server is loading the model").decode())
    replies = [down, down]

    def respond(seen: Seen) -> Reply:
        return replies.pop(0) if replies else cup_in_sent_pixels(seen)

    with ChatServer(respond) as server:
        detections = backend_for(server, retries=2).detect(coffee, ["cup"])
    assert len(server.seen) == 3
    assert len(detections) == 1


def test_503_beyond_the_retries_is_an_error_that_says_so(coffee: np.ndarray,
                                                         no_key: None) -> None:
    down = Reply(503, error_body("overloaded").decode())
    with ChatServer(scripted(down)) as server:
        with pytest.raises(BackendError, match="2 attempt.*HTTP 503.*overloaded"):
            backend_for(server, retries=1).detect(coffee, ["cup"])
    assert len(server.seen) == 2


def test_429_honours_retry_after(coffee: np.ndarray, no_key: None) -> None:
    replies = [Reply(429, error_body("rate limited").decode(), headers={"Retry-After": "1"})]

    def respond(seen: Seen) -> Reply:
        return replies.pop(0) if replies else cup_in_sent_pixels(seen)

    with ChatServer(respond) as server:
        detections = backend_for(server, retries=2).detect(coffee, ["cup"])
    assert len(detections) == 1 and len(server.seen) == 2
    # The retry came no sooner than the server asked (the default backoff would be 0.5 s).
    assert server.seen[1].at - server.seen[0].at >= 1.0


def test_a_retry_after_beyond_the_budget_fails_at_once(coffee: np.ndarray, no_key: None) -> None:
    busy = Reply(429, error_body("rate limited").decode(), headers={"Retry-After": "120"})
    with ChatServer(scripted(busy)) as server:
        with pytest.raises(BackendError, match="HTTP 429.*budget"):
            backend_for(server, timeout_s=1.0, retries=2).detect(coffee, ["cup"])
    assert len(server.seen) == 1


def test_a_slow_server_times_out_within_the_budget(coffee: np.ndarray, no_key: None) -> None:
    server_delay = 10.0
    with ChatServer(scripted(Reply(content="{}", delay_s=server_delay))) as server:
        backend = backend_for(server, timeout_s=0.5, retries=1)
        started = time.monotonic()
        with pytest.raises(BackendError, match=r"within 0.5 s.*raise timeout_s"):
            backend.detect(coffee, ["cup"])
        waited = time.monotonic() - started
    # Bounded by timeout_s * (retries + 1) = 1 s, far from the server's 10 s.
    assert waited < server_delay / 2
    assert 1 <= len(server.seen) <= 2


def test_unreachable_server_says_is_it_running(coffee: np.ndarray, no_key: None) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    backend = OpenAiBackend(model="served-vlm", base_url=url, retries=1, timeout_s=2.0,
                            api_key_env=KEY_ENV, coords="pixels")
    with pytest.raises(BackendError, match="could not connect.*is the server running") as info:
        backend.detect(coffee, ["cup"])
    assert url in str(info.value) and "served-vlm" in str(info.value)


def test_non_json_answer_is_a_clear_error(coffee: np.ndarray, no_key: None) -> None:
    html = Reply(raw=b"<html><body>Welcome to nginx!</body></html>")
    with ChatServer(scripted(html)) as server:
        with pytest.raises(BackendError, match="not JSON.*ending in /v1"):
            backend_for(server).detect(coffee, ["cup"])


def test_response_format_unsupported_is_dropped_once_and_remembered(coffee: np.ndarray,
                                                                    no_key: None) -> None:
    with ChatServer(cup_in_sent_pixels, reject_response_format=True) as server:
        backend = backend_for(server, retries=0)
        first = backend.detect(coffee, ["cup"])
        second = backend.detect(coffee, ["cup"])
    assert len(first) == len(second) == 1
    with_format = ["response_format" in s.body for s in server.seen]
    assert with_format == [True, False, False]  # asked once, then never again
    assert backend.json_mode is False
