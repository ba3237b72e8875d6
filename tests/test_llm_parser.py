"""The language-model command parser (``parser: llm``) against a real local HTTP server.

No mock stands in for the parser or its HTTP stack: each test starts a stdlib
``ThreadingHTTPServer`` on 127.0.0.1 (port 0) that answers with RECORDED chat-completion bodies -
written out below as vLLM, Ollama and llama.cpp return them, the model's text included - and
records what it was sent.  Everything the parser does with an answer (the strict validation, the
Plan it builds, the refusals, the retries, the response_format fall-back, the errors that name
the server) is the real code path, and the session runs whole commands through it on a real
photo with the real SSD-COCO detector.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from photos import load_photo

from vlm_ros import scenes
from vlm_ros.backends.llm_parser import (
    MAX_STEPS,
    PLAN_SCHEMA,
    LlmParser,
    make_parser,
    plan_from_answer,
    system_prompt,
)
from vlm_ros.backends.ssd_coco import SsdCocoBackend
from vlm_ros.core.geometry import StaticFrameResolver, camera_extrinsics
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.plan import Plan, parse_plan
from vlm_ros.core.session import CommandSession
from vlm_ros.core.types import Frame
from vlm_ros.ros.params import NodeSettings

KEY_ENV = "VLM_ROS_TEST_LLM_KEY"

# ------------------------------------------------------------------------- recorded responses
# The envelopes, as each server family returns a non-streamed chat completion.  {content} is the
# model's text (JSON-escaped into the body), {finish} why generation ended.
VLLM = ('{{"id":"chatcmpl-4c1f0e9a7b2d4e43a3b1","object":"chat.completion","created":1718031200,'
        '"model":"Qwen/Qwen2.5-7B-Instruct","choices":[{{"index":0,"message":{{"role":"assistant",'
        '"content":{content},"tool_calls":[]}},"logprobs":null,"finish_reason":"{finish}",'
        '"stop_reason":null}}],"usage":{{"prompt_tokens":2114,"total_tokens":2297,'
        '"completion_tokens":183}},"prompt_logprobs":null}}')
OLLAMA = ('{{"id":"chatcmpl-512","object":"chat.completion","created":1718031201,'
          '"model":"qwen2.5:7b","system_fingerprint":"fp_ollama","choices":[{{"index":0,'
          '"message":{{"role":"assistant","content":{content}}},"finish_reason":"{finish}"}}],'
          '"usage":{{"prompt_tokens":2098,"completion_tokens":176,"total_tokens":2274}}}}')
LLAMA_CPP = ('{{"choices":[{{"finish_reason":"{finish}","index":0,"message":{{"role":"assistant",'
             '"content":{content}}}}}],"created":1718031202,"model":"qwen2.5-7b-instruct-q4_k_m'
             '.gguf","system_fingerprint":"b3561-4134999e","object":"chat.completion","usage":'
             '{{"completion_tokens":190,"prompt_tokens":2121,"total_tokens":2311}},"id":'
             '"chatcmpl-Xk2Jd8fQ1pWn","timings":{{"prompt_n":2121,"prompt_ms":812.4,'
             '"predicted_n":190,"predicted_ms":3120.9}}}}')

# The models' answers, as they wrote them.
TWO_STEPS = """{"steps": [
  {"text": "grab the red cup", "action": "pick",
   "target": {"noun": "cup", "text": "the red cup", "color": "red", "color_part": null,
              "size": null, "location": null, "ordinal": null, "ordinal_from": null,
              "relation": null, "anchor": null, "attributes": [], "exclusions": []},
   "destination": null, "destination_relation": null},
  {"text": "put it in the blue bowl", "action": "place",
   "target": {"noun": "it", "text": "it", "color": null, "color_part": null, "size": null,
              "location": null, "ordinal": null, "ordinal_from": null, "relation": null,
              "anchor": null, "attributes": [], "exclusions": []},
   "destination": {"noun": "bowl", "text": "the blue bowl", "color": "blue",
                   "color_part": null, "size": null, "location": null, "ordinal": null,
                   "ordinal_from": null, "relation": null, "anchor": null, "attributes": [],
                   "exclusions": []},
   "destination_relation": "in"}],
 "negated": null, "unknown_word": null, "suggestion": null, "error": null}"""

EXCLUSION = ('{"steps":[{"text":"go to the dog, not the bicycle","action":"navigate","target":'
             '{"noun":"dog","text":"the dog","color":null,"color_part":null,"size":null,'
             '"location":null,"ordinal":null,"ordinal_from":null,"relation":null,"anchor":null,'
             '"attributes":[],"exclusions":[{"noun":"bicycle","text":"the bicycle","color":null,'
             '"color_part":null,"size":null,"location":null,"ordinal":null,"ordinal_from":null,'
             '"relation":null,"anchor":null,"attributes":[],"exclusions":[]}]},"destination":'
             'null,"destination_relation":null}],"negated":null,"unknown_word":null,'
             '"suggestion":null,"error":null}')

NEGATED = ('{"steps": [], "negated": {"text": "grab the cup", "action": "pick", "target": '
           '{"noun": "cup", "text": "the cup", "color": null, "color_part": null, "size": null, '
           '"location": null, "ordinal": null, "ordinal_from": null, "relation": null, '
           '"anchor": null, "attributes": [], "exclusions": []}, "destination": null, '
           '"destination_relation": null}, "unknown_word": null, "suggestion": null, '
           '"error": null}')

UNKNOWN_WORD = ('{"steps": [], "negated": null, "unknown_word": "blorp", "suggestion": null, '
                '"error": null}')

PARAPHRASE = ('{"steps": [{"text": "could you fetch me the red mug over by the laptop", '
              '"action": "pick", "target": {"noun": "mug", "text": "the red mug", "color": "red",'
              ' "color_part": null, "size": null, "location": null, "ordinal": null, '
              '"ordinal_from": null, "relation": null, "anchor": null, "attributes": [], '
              '"exclusions": []}, "destination": null, "destination_relation": null}], '
              '"negated": null, "unknown_word": null, "suggestion": null, "error": null}')

FENCED = "```json\n" + EXCLUSION + "\n```"

EXTRA_KEY = ('{"steps": [{"text": "go to the dog", "action": "navigate", "target": {"noun": '
             '"dog", "text": "the dog", "color": null, "color_part": null, "size": null, '
             '"location": null, "ordinal": null, "ordinal_from": null, "relation": null, '
             '"anchor": null, "attributes": [], "exclusions": []}, "destination": null, '
             '"destination_relation": null}], "negated": null, "unknown_word": null, '
             '"suggestion": null, "error": null, "confidence": 0.93}')

NAVY_ISH = ('{"steps": [{"text": "grab the dark blue cup", "action": "pick", "target": {"noun": '
            '"cup", "text": "the dark blue cup", "color": "navy-ish", "color_part": null, '
            '"size": null, "location": null, "ordinal": null, "ordinal_from": null, '
            '"relation": null, "anchor": null, "attributes": ["dark"], "exclusions": []}, '
            '"destination": null, "destination_relation": null}], "negated": null, '
            '"unknown_word": null, "suggestion": null, "error": null}')

TRUNCATED = ('{"steps": [{"text": "grab the red cup", "action": "pick", "target": {"noun": '
             '"cup", "text": "the red cup", "color": "red", "color_part": null, "size": null, '
             '"location": null, "ordinal": null, "ordinal_from": null, "relation": null, "anc')

# "grab the thing": the model made up what the thing is.
INVENTED_NOUN = ('{"steps": [{"text": "grab the thing", "action": "pick", "target": {"noun": '
                 '"cup", "text": "the thing", "color": null, "color_part": null, "size": null, '
                 '"location": null, "ordinal": null, "ordinal_from": null, "relation": null, '
                 '"anchor": null, "attributes": [], "exclusions": []}, "destination": null, '
                 '"destination_relation": null}], "negated": null, "unknown_word": null, '
                 '"suggestion": null, "error": null}')

FOLLOWUP = ('{"steps": [{"text": "the left one", "action": null, "target": {"noun": null, '
            '"text": "the left one", "color": null, "color_part": null, "size": null, '
            '"location": "left", "ordinal": null, "ordinal_from": null, "relation": null, '
            '"anchor": null, "attributes": [], "exclusions": []}, "destination": null, '
            '"destination_relation": null}], "negated": null, "unknown_word": null, '
            '"suggestion": null, "error": null}')


def body(content: str, envelope: str = VLLM, finish: str = "stop") -> bytes:
    return envelope.format(content=json.dumps(content), finish=finish).encode()


def error_body(message: str, kind: str = "BadRequestError", code: int = 400) -> bytes:
    return json.dumps({"object": "error", "message": message, "type": kind, "param": None,
                       "code": code}).encode()


# --------------------------------------------------------------------------------- the server
@dataclass
class Reply:
    status: int = 200
    raw: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Seen:
    path: str
    authorization: str | None
    body: dict[str, Any]


class RecordedServer:
    """A chat-completions endpoint answering ``replies`` in order (the last one repeats)."""

    def __init__(self, *replies: Reply, api_key: str | None = None,
                 rejects: Callable[[dict[str, Any]], str | None] | None = None) -> None:
        self.replies = list(replies)
        self.api_key = api_key
        self.rejects = rejects  # body -> an HTTP 400 message, or None
        self.seen: list[Seen] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                self._send(Reply(200, b'{"object":"list","data":[{"id":"qwen2.5:7b"}]}'))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                reply = server.handle(self.path, self.headers.get("Authorization"),
                                      self.rfile.read(length))
                if reply.delay_s:
                    server.release.wait(reply.delay_s)
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply.raw)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(reply.raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    def handle(self, path: str, authorization: str | None, raw: bytes) -> Reply:
        if path != "/v1/chat/completions":
            return Reply(404, error_body(f"no route {path}", "NotFoundError", 404))
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            return Reply(401, error_body("Incorrect API key provided", "AuthenticationError",
                                         401))
        request = json.loads(raw)
        self.seen.append(Seen(path, authorization, request))
        problem = self.rejects(request) if self.rejects else None
        if problem:
            return Reply(400, error_body(problem))
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def __enter__(self) -> RecordedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def parser_for(server: RecordedServer, **options: Any) -> LlmParser:
    settings = {"model": "qwen2.5:7b", "base_url": server.url, "timeout_s": 5.0, "retries": 1,
                "api_key_env": KEY_ENV, **options}
    return LlmParser(**settings)


def answered(content: str, command: str, envelope: str = VLLM, finish: str = "stop",
             **options: Any) -> tuple[Plan, RecordedServer]:
    with RecordedServer(Reply(raw=body(content, envelope, finish))) as server:
        plan = parser_for(server, **options)(command)
    return plan, server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


# ------------------------------------------------------------------------- understood commands
def test_two_steps_in_order_with_the_pronoun_left_to_the_gripper() -> None:
    plan, server = answered(TWO_STEPS, "grab the red cup and put it in the blue bowl")
    assert plan.error is None and plan.refusal is None
    assert [s.action for s in plan.steps] == ["pick", "place"]
    first, second = plan.steps
    assert (first.target.noun, first.target.color, first.target.text) == ("cup", "red",
                                                                          "the red cup")
    assert second.target.noun == "it"  # a place's "it" is what the gripper holds
    assert (second.destination.noun, second.destination.color) == ("bowl", "blue")
    assert second.destination_relation == "in"
    assert [s.text for s in plan.steps] == ["grab the red cup", "put it in the blue bowl"]
    # The same meaning representation as the grammar's.
    grammar = parse_plan("grab the red cup and put it in the blue bowl")
    assert plan.to_dicts() == grammar.to_dicts()
    # What went over the wire: the schema as response_format, the command as the user turn.
    (seen,) = server.seen
    assert seen.path == "/v1/chat/completions" and seen.authorization is None
    assert seen.body["model"] == "qwen2.5:7b" and seen.body["temperature"] == 0.0
    assert seen.body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "vlm_ros_plan", "strict": True, "schema": PLAN_SCHEMA}}
    system, user = seen.body["messages"]
    assert system["role"] == "system" and user == {
        "role": "user", "content": "Command: grab the red cup and put it in the blue bowl"}


def test_exclusions_from_an_ollama_answer() -> None:
    plan, _ = answered(EXCLUSION, "go to the dog, not the bicycle", OLLAMA)
    assert plan.error is None
    (step,) = plan.steps
    assert step.action == "navigate" and step.target.noun == "dog"
    assert [(e.noun, e.text) for e in step.target.exclusions] == [("bicycle", "the bicycle")]
    assert step.text == "go to the dog, not the bicycle"
    assert plan.to_dicts() == parse_plan("go to the dog, not the bicycle").to_dicts()


def test_a_negative_command_is_a_refusal_with_no_steps() -> None:
    plan, _ = answered(NEGATED, "don't grab the cup", LLAMA_CPP)
    assert plan.steps == [] and plan.error is None
    assert plan.refusal == "you asked me not to pick the cup: nothing to do, no goal sent"
    assert plan.refusal == parse_plan("don't grab the cup").refusal
    assert plan.negated.action == "pick" and plan.negated.target.noun == "cup"


def test_an_unknown_word_is_named() -> None:
    plan, _ = answered(UNKNOWN_WORD, "blorp the cup")
    assert plan.steps == [] and plan.suggestion is None
    assert plan.error.startswith("I don't know the word 'blorp'")


def test_a_paraphrase_the_grammar_lacks() -> None:
    command = "could you fetch me the red mug over by the laptop"
    plan, _ = answered(PARAPHRASE, command)
    assert plan.error is None
    (step,) = plan.steps
    assert (step.action, step.target.noun, step.target.color) == ("pick", "mug", "red")
    assert step.text == command


def test_an_answer_to_a_question_is_a_followup() -> None:
    plan, _ = answered(FOLLOWUP, "the left one")
    assert plan.error is None and plan.is_followup
    assert plan.steps[0].target.location == "left"


# ------------------------------------------------------------------------- strict rejections
def assert_invalid(plan: Plan, *words: str) -> None:
    assert plan.steps == [] and plan.refusal is None and plan.suggestion is None
    assert plan.error is not None and plan.error.startswith(
        "the language model's answer was invalid:"), plan.error
    assert plan.error.endswith("command rejected (nothing guessed)")
    for word in words:
        assert word in plan.error, plan.error


def test_a_fenced_answer_is_rejected() -> None:
    plan, _ = answered(FENCED, "go to the dog, not the bicycle", OLLAMA)
    assert_invalid(plan, "Markdown code fence")


def test_an_extra_key_is_rejected() -> None:
    plan, _ = answered(EXTRA_KEY, "go to the dog")
    assert_invalid(plan, "unknown key 'confidence'")


def test_an_illegal_colour_is_rejected() -> None:
    plan, _ = answered(NAVY_ISH, "grab the dark blue cup")
    assert_invalid(plan, "steps[0].target.color", "'navy-ish'", "not a colour I know")


def test_a_truncated_answer_is_rejected() -> None:
    plan, _ = answered(TRUNCATED, "grab the red cup", LLAMA_CPP, finish="length")
    assert_invalid(plan, "incomplete", "max_tokens")


def test_an_invented_noun_is_rejected() -> None:
    plan, _ = answered(INVENTED_NOUN, "grab the thing")
    assert_invalid(plan, "noun 'cup' is not a word of the command")


def _q(noun: str | None = "cup", text: str = "", **fields: Any) -> dict[str, Any]:
    query = {"noun": noun, "text": text, "color": None, "color_part": None, "size": None,
             "location": None, "ordinal": None, "ordinal_from": None, "relation": None,
             "anchor": None, "attributes": [], "exclusions": []}
    query.update(fields)
    return query


def _s(action: str | None = "pick", target: Any = None, **fields: Any) -> dict[str, Any]:
    step = {"text": "grab the cup", "action": action, "target": target if target is not None
            else _q(), "destination": None, "destination_relation": None}
    step.update(fields)
    return step


def _p(steps: list | None = None, **fields: Any) -> str:
    plan = {"steps": [_s()] if steps is None else steps, "negated": None, "unknown_word": None,
            "suggestion": None, "error": None}
    plan.update(fields)
    return json.dumps(plan)


@pytest.mark.parametrize("answer, why", [
    ("", "empty"),
    ("Sure! Here is the plan.", "not JSON"),
    ('{"steps": []} and some prose', "text after the JSON"),
    ('[{"action": "pick"}]', "a JSON list, not an object"),
    ('{"steps": [], "steps": [], "negated": null}', "appears twice"),
    (_p().replace('"error": null', '"error": NaN'), "NaN is not a JSON number"),
    (_p()[:-1].replace(', "error": null', ""), "incomplete"),
    (json.dumps({"steps": [_s()], "negated": None, "unknown_word": None, "suggestion": None}),
     "lacks the required key 'error'"),
    (_p([_s(target=_q(extra=1))]), "steps[0].target has the unknown key 'extra'"),
    (_p([_s(action="throw")]), "steps[0].action is 'throw', not a action I know"),
    (_p([_s(action="PICK")]), "not a action I know"),
    (_p([_s(target=_q(size="medium"))]), "steps[0].target.size is 'medium'"),
    (_p([_s(target=_q(location="north"))]), "not a location I know"),
    (_p([_s(target=_q(relation="near", anchor=_q("table")))]), "not a relation I know"),
    (_p([_s(target=_q(ordinal="2"))]), "ordinal must be an integer"),
    (_p([_s(target=_q(ordinal=2.0))]), "ordinal must be an integer"),
    (_p([_s(target=_q(ordinal=True))]), "ordinal must be an integer"),
    (_p([_s(target=_q(ordinal=0))]), "ordinal is 0"),
    (_p([_s(target=_q(ordinal=99))]), "ordinal is 99"),
    (_p([_s(target=_q(noun=7))]), "noun must be a string or null, got the number 7"),
    (_p([_s(target=_q(attributes="shiny"))]), "attributes must be an array"),
    (_p([_s(target=_q(exclusions=[None]))]), "exclusions[0] must be an object, got null"),
    (_p([_s(target=_q(relation="on"))]), "relation and anchor go together"),
    (_p([_s(target=_q(color_part="upper"))]), "color_part without a color"),
    (_p([_s(target=_q(ordinal_from="left"))]), "ordinal_from without an ordinal"),
    (_p([_s()] * (MAX_STEPS + 1)), f"9 steps (at most {MAX_STEPS})"),
    (_p([_s(target=_q(text="the blue mug"))]), "'the blue mug' is not words of the command"),
    (_p([_s(target=_q(color="red"))]), "color 'red' is not a colour the command says"),
    (_p([_s(target=_q(attributes=["shiny"]))]), "'shiny' is not a word of the command"),
    (_p([_s(target=_q(relation="on", anchor=_q("table", relation="on", anchor=_q(
        "table", relation="on", anchor=_q("table", relation="on", anchor=_q("table"))))))]),
     "nests anchors deeper than 3"),
    (_p([_s(action="stop")]), "a stop with an object"),
    (_p([_s(action="navigate", target=None)]).replace(
        '"target": {"noun": "cup"', '"target": null, "x": {"noun": "cup"'), "unknown key 'x'"),
    (_p([_s(destination=_q("cup"), destination_relation="in")]),
     "has a destination but is not a place"),
    (_p([_s(action="place", destination=_q("cup"))]),
     "destination and destination_relation go together"),
    (_p([_s(action=None), _s()]), "only a lone answer may lack one"),
    (_p([], error="chit-chat", unknown_word="hello"), "exactly one of"),
    (_p([]), "exactly one of steps, negated, unknown_word or error; it gives none"),
    (_p(suggestion="grab the cup"), "suggestion is only allowed with unknown_word"),
    (_p([], unknown_word="zorp"), "unknown_word 'zorp' is not a word of the command"),
    (_p([], negated={**_s(action="stop"), "target": None}),
     "negated must be a step with an action other than stop"),
    (_p([_s(text="grab\u0000the cup")]), "control or unassigned characters"),
])
def test_strict_validation(answer: str, why: str) -> None:
    plan = plan_from_answer("grab the cup", answer)
    assert_invalid(plan, why)


def test_validation_accepts_what_was_said_in_chinese_and_english_forms() -> None:
    # 杯子 -> cup, 红色 -> red, 夹克 -> jacket: the model answers in the schema's English.
    answer = _p([_s(text="拿红色的杯子", target=_q("cup", "红色的杯子", color="red"))])
    plan = plan_from_answer("拿红色的杯子", answer)
    assert plan.error is None and plan.language == "zh" and plan.steps[0].language == "zh"
    person = _q("person", "穿蓝色夹克的人", color="blue", color_part="upper",
                attributes=["jacket"])
    plan = plan_from_answer("跟着穿蓝色夹克的人", _p([_s("follow", person, text="跟着穿蓝色夹克的人")]))
    assert plan.error is None and plan.steps[0].target.attributes == ["jacket"]
    # Plurals, synonyms and generic heads.
    plan = plan_from_answer("grab one of the cups", _p([_s(target=_q("cup", "the cups"))]))
    assert plan.error is None
    plan = plan_from_answer("follow that man", _p([_s("follow", _q("person", "that man"))]))
    assert plan.error is None
    plan = plan_from_answer("grab the red one", _p([_s(target=_q("one", "the red one",
                                                                 color="red"))]))
    assert plan.error is None and plan.steps[0].target.noun is None


def test_a_typo_becomes_a_question_not_a_correction() -> None:
    answer = _p([], unknown_word="grap", suggestion="grab the red cup")
    plan = plan_from_answer("grap the red cup", answer)
    assert plan.steps == [] and plan.suggestion == "grab the red cup"
    assert plan.error == "I don't know the word 'grap'. Did you mean 'grab the red cup'?"


def test_a_later_it_is_the_earlier_object() -> None:
    answer = _p([_s(target=_q("cup", "the red cup", color="red"), text="grab the red cup"),
                 _s("look", _q("it", "it"), text="look at it")])
    plan = plan_from_answer("grab the red cup and look at it", answer)
    assert plan.error is None
    assert plan.steps[1].target.noun == "cup" and plan.steps[1].target.color == "red"


# ------------------------------------------------------------------------- the server's side
def test_500_then_success_is_retried() -> None:
    first = Reply(500, error_body("CUDA out of memory", "InternalServerError", 500),
                  headers={"Retry-After": "0"})
    with RecordedServer(first, Reply(raw=body(EXCLUSION))) as server:
        plan = parser_for(server)("go to the dog, not the bicycle")
    assert plan.error is None and plan.steps[0].target.noun == "dog"
    assert len(server.seen) == 2


def test_a_slow_server_is_a_rejection_naming_it() -> None:
    with RecordedServer(Reply(raw=body(EXCLUSION), delay_s=3.0)) as server:
        plan = parser_for(server, timeout_s=0.3, retries=0)("go to the dog")
    assert plan.steps == [] and plan.error is not None
    assert server.url in plan.error and "no answer within 0.3 s" in plan.error
    assert "language-model parser" in plan.error


def test_a_server_that_is_down_is_a_rejection_naming_it() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    reports: list[str] = []
    parser = LlmParser(model="qwen2.5:7b", base_url=url, timeout_s=0.5, retries=1,
                       report=reports.append)
    problem = parser.check()
    assert problem is not None and url in problem
    for _ in range(3):
        plan = parser("grab the red cup")
        assert plan.steps == [] and "could not connect" in plan.error and url in plan.error
    assert len(reports) == 1 and url in reports[0]  # logged once, not per command


def test_recovery_is_reported_once() -> None:
    reports: list[str] = []
    with RecordedServer(Reply(raw=body(EXCLUSION))) as server:
        parser = parser_for(server, report=reports.append)
        assert parser.check() is None
        url, server_port = parser.endpoint.url, server.httpd.server_address[1]
    # The server is gone: the first failure is reported ...
    assert parser("go to the dog, not the bicycle").error is not None
    assert parser("go to the dog, not the bicycle").error is not None
    assert len(reports) == 1
    # ... and so is its return (a new server on the same port).
    replacement = RecordedServer(Reply(raw=body(EXCLUSION)))
    replacement.httpd.server_close()
    replacement.httpd = ThreadingHTTPServer(("127.0.0.1", server_port),
                                            replacement.httpd.RequestHandlerClass)
    replacement.thread = threading.Thread(target=replacement.httpd.serve_forever,
                                          kwargs={"poll_interval": 0.05}, daemon=True)
    with replacement:
        assert parser("go to the dog, not the bicycle").error is None
    assert len(reports) == 2 and url in reports[1] and "answers again" in reports[1]


def test_the_response_format_steps_down_once_when_rejected() -> None:
    def rejects(request: dict[str, Any]) -> str | None:
        kind = request.get("response_format", {}).get("type")
        if kind in ("json_schema", "json_object"):
            return f"response_format type {kind} is not supported"
        return None

    with RecordedServer(Reply(raw=body(EXCLUSION, LLAMA_CPP)), rejects=rejects) as server:
        parser = parser_for(server)
        assert parser("go to the dog, not the bicycle").error is None
        assert parser("go to the dog, not the bicycle").error is None
    kinds = [s.body.get("response_format", {}).get("type") for s in server.seen]
    assert kinds == ["json_schema", "json_object", None, None]  # remembered
    assert parser.json_mode == "off"
    # The schema and the legal values are in the prompt in every mode.
    prompt = server.seen[-1].body["messages"][0]["content"]
    assert json.dumps(PLAN_SCHEMA, separators=(",", ":")) in prompt


def test_the_api_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-123")
    with RecordedServer(Reply(raw=body(EXCLUSION)), api_key="sk-test-123") as server:
        plan = parser_for(server)("go to the dog, not the bicycle")
    assert plan.error is None and server.seen[0].authorization == "Bearer sk-test-123"
    monkeypatch.delenv(KEY_ENV)
    with RecordedServer(Reply(raw=body(EXCLUSION)), api_key="sk-test-123") as server:
        plan = parser_for(server)("go to the dog")
    assert "HTTP 401" in plan.error and KEY_ENV in plan.error and "sk-test" not in plan.error


def test_a_server_that_is_not_a_chat_server() -> None:
    with RecordedServer(Reply(raw=b"<html>It works!</html>")) as server:
        plan = parser_for(server)("go to the dog")
    assert plan.steps == [] and "not JSON" in plan.error and server.url in plan.error


def test_stops_and_yes_no_never_reach_the_server() -> None:
    with RecordedServer(Reply(raw=body(EXCLUSION))) as server:
        parser = parser_for(server)
        for text in ("stop", "STOP!", "别动", "don't move", "yes", "no", "取消"):
            assert parser(text).to_dicts() == parse_plan(text).to_dicts()
        assert parser("").error == "empty command"
        assert "too long" in parser("grab " * 300).error
    assert server.seen == []


def test_the_prompt_lists_the_legal_values_and_rules() -> None:
    prompt = system_prompt()
    for word in ("pick", "place", "navigate", "look", "find", "follow", "stop", "red", "gray",
                 "large", "small", "nearest", "farthest", "next_to", "in_front_of", "upper",
                 "negated", "unknown_word", "exclusions", "no code fence"):
        assert word in prompt, word
    assert "navy" not in prompt


# ------------------------------------------------------------------------- through the session
@pytest.fixture(scope="module")
def detector() -> SsdCocoBackend:
    return SsdCocoBackend()


def coffee_frame() -> Frame:
    rgb, depth, intrinsics = scenes.coffee()
    return Frame(rgb=rgb, depth_m=depth, intrinsics=intrinsics, frame_id=CAMERA)


CAMERA = "camera_color_optical_frame"


def pipeline(detector: SsdCocoBackend) -> Pipeline:
    """The detector, and a camera 0.6 m above the base pitched 0.6 rad down at the table."""
    resolver = StaticFrameResolver("base_link", CAMERA,
                                   camera_extrinsics(0.0, 0.0, 0.6, 0.0, 0.6, 0.0))
    return Pipeline(detector, None, resolver)


CUP = ('{"steps": [{"text": "could you hand me that red cup please", "action": "pick", '
       '"target": {"noun": "cup", "text": "that red cup", "color": "red", "color_part": null, '
       '"size": null, "location": null, "ordinal": null, "ordinal_from": null, '
       '"relation": null, "anchor": null, "attributes": [], "exclusions": []}, '
       '"destination": null, "destination_relation": null}], "negated": null, '
       '"unknown_word": null, "suggestion": null, "error": null}')


def test_a_command_end_to_end_through_the_session(detector: SsdCocoBackend) -> None:
    command = "could you hand me that red cup please"
    with RecordedServer(Reply(raw=body(CUP, OLLAMA))) as server:
        session = CommandSession(pipeline(detector), parse=parser_for(server))
        result = session.run(command, coffee_frame())
    assert result.status == "ok", result.message
    assert result.instruction.action == "pick" and result.instruction.text == command
    assert result.targets[0].label == "cup" and result.targets[0].color == "red"
    assert {g.kind for g in result.goals} >= {"grasp", "pregrasp"}
    assert len(server.seen) == 1


@pytest.mark.parametrize("content, command, status, words", [
    (NAVY_ISH, "grab the dark blue cup", "rejected", ("invalid", "navy-ish")),
    (FENCED, "go to the dog, not the bicycle", "rejected", ("invalid", "code fence")),
    (NEGATED, "don't grab the cup", "rejected", ("you asked me not to pick the cup",)),
    (UNKNOWN_WORD, "blorp the cup", "rejected", ("blorp",)),
])
def test_the_session_rejects_what_the_parser_refuses(detector: SsdCocoBackend, content: str,
                                                     command: str, status: str,
                                                     words: tuple[str, ...]) -> None:
    with RecordedServer(Reply(raw=body(content))) as server:
        session = CommandSession(pipeline(detector), parse=parser_for(server))
        result = session.run(command, coffee_frame())
    assert result.status == status and not result.goals and not result.targets
    for word in words:
        assert word in result.message, result.message


def test_the_session_with_the_server_down_rejects_naming_it(detector: SsdCocoBackend) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    parser = LlmParser(model="qwen2.5:7b", base_url=url, timeout_s=0.5, retries=0,
                       report=lambda _: None)
    session = CommandSession(pipeline(detector), parse=parser)
    result = session.run("grab the red cup", coffee_frame())
    assert result.status == "rejected" and not result.goals and url in result.message
    # A stop is still a stop.
    assert session.run("stop", coffee_frame()).status == "ok"


# ------------------------------------------------------------------------- parameters
def test_parser_parameters() -> None:
    assert NodeSettings().parser == "grammar" and NodeSettings().parser_options == ""
    settings = NodeSettings.from_parameters({
        "parser": "llm",
        "parser_options": "{model: qwen2.5, base_url: 'http://127.0.0.1:9/v1', timeout_s: 2}"})
    parse = make_parser(settings.parser, settings.parser_kwargs())
    assert isinstance(parse, LlmParser)
    assert parse.endpoint.url == "http://127.0.0.1:9/v1/chat/completions"
    assert parse.endpoint.timeout_s == 2.0 and parse.model == "qwen2.5"
    assert make_parser("grammar", NodeSettings().parser_kwargs()) is parse_plan
    with pytest.raises(ValueError, match="parser must be one of grammar, llm"):
        make_parser("gpt")
    with pytest.raises(ValueError, match="needs parser_options model"):
        make_parser("llm", {})
    with pytest.raises(ValueError, match="unknown parser_options temprature"):
        make_parser("llm", {"model": "m", "temprature": 0.2})
    with pytest.raises(ValueError, match="json_mode"):
        make_parser("llm", {"model": "m", "json_mode": "xml"})
    with pytest.raises(ValueError, match="mapping"):
        NodeSettings(parser_options="[1, 2]").parser_kwargs()


# ------------------------------------------------------------------------- through the node
def _node_graph(options: dict[str, Any]) -> Any:
    from ros_harness import RosGraph  # only these tests need rclpy and DDS

    # Quoted: rcl parses -p values as YAML, and this parameter is a string holding YAML.
    return RosGraph(["-p", "parser:=llm", "-p", f"parser_options:='{json.dumps(options)}'",
                     "-p", "image_reliability:=reliable",
                     "-p", "camera_pose_in_base:=[0.0, 0.0, 0.6, 0.0, 0.6, 0.0]",
                     "-p", "max_frame_age_s:=10.0"])


@pytest.mark.ros
def test_the_node_parses_with_the_llm() -> None:
    with RecordedServer(Reply(raw=body(CUP, OLLAMA))) as server:
        graph = _node_graph({"model": "qwen2.5:7b", "base_url": server.url, "timeout_s": 10})
        try:
            graph.show(*scenes.coffee())
            result = graph.say("could you hand me that red cup please", timeout_s=60.0)
            assert result["status"] == "ok", result["message"]
            assert result["targets"][0]["label"] == "cup"
            assert len(server.seen) == 1
            assert graph.say("stop")["status"] == "ok"
            assert len(server.seen) == 1  # a stop never waits on the server
            assert graph.alive()
        finally:
            graph.close()


@pytest.mark.ros
def test_the_node_starts_with_the_server_down_and_rejects_naming_it() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    graph = _node_graph({"model": "qwen2.5:7b", "base_url": url, "timeout_s": 1,
                         "retries": 0})
    try:
        graph.show(*scenes.coffee())
        for _ in range(2):
            result = graph.say("grab the red cup", timeout_s=30.0)
            assert result["status"] == "rejected" and not result["goals"]
            assert url in result["message"], result["message"]
        assert graph.alive()
        log = graph.node.tail(40)
        assert log.count("parser llm:") == 1, log  # logged once, at start-up
    finally:
        graph.close()


# --------------------------------------------------- issue #20: the grammar's refusals stand
GO_TO_THE_DOG = EXTRA_KEY.replace(', "confidence": 0.93', "")


@pytest.mark.parametrize("command, says", [
    ("kick the dog", "won't kick the dog"),
    ("stay away from the dog", "keeping away"),
    ("I already went to the dog", "statement"),
    ("踢狗", "won't"),
])
def test_a_language_model_cannot_turn_a_refusal_into_a_goal(command: str, says: str) -> None:
    """The model here answers "go to the dog" to everything: the session keeps the grammar's
    verdict on harmful acts, keeping away and statements, and never asks the model."""
    with RecordedServer(Reply(raw=body(GO_TO_THE_DOG))) as server:
        session = CommandSession(Pipeline(SsdCocoBackend()), parse=parser_for(server))
        result = session.run(command, Frame(rgb=load_photo("dog")))
        assert result.status == "rejected" and says in result.message and not result.goals
        assert server.seen == []
        # ... while a command the grammar reads as one still goes to the model.
        asked = session.run("please wander over to the dog", Frame(rgb=load_photo("dog")))
    assert len(server.seen) == 1 and asked.instruction.action == "navigate"
