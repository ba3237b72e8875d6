"""Text -> Plan through a language model on any OpenAI-compatible server (``parser: llm``).

The grammar parser (:func:`vlm_ros.core.plan.parse_plan`) knows the words in the lexicon; a
language model also understands paraphrases ("could you fetch me the mug by the laptop").  This
module asks one for the *same* meaning representation - a :class:`~vlm_ros.core.plan.Plan` - and
trusts nothing it answers:

* **The request.**  A system prompt lists the legal values (actions, colours, sizes, locations,
  ordinal starts, relations, clothing parts) and the rules (several steps in order, a negative
  command is a refusal, an unknown word is named and never guessed, exclusions, pronouns), with
  the JSON schema of the answer.  The schema is sent as ``response_format: json_schema`` where
  the server supports it; a server that rejects it (HTTP 400 naming response_format/json_schema)
  is asked with ``json_object``, then with no response_format (the schema is in the prompt in
  every mode), and the parser remembers.  HTTP, retries, timeouts, Retry-After and the API key
  are the openai backend's own code (:func:`vlm_ros.backends.openai.post_chat`).
* **The answer is validated strictly** (:func:`plan_from_answer`): exactly one JSON object - no
  code fence, no prose, no second object, no duplicate key, no NaN; exactly the schema's keys at
  every level, of the schema's types; every closed value (action, colour, size, location,
  ordinal start, relation, clothing part, destination relation) from the lexicon; at most
  :data:`MAX_STEPS` steps, :data:`MAX_EXCLUSIONS` exclusions per object, :data:`MAX_ANCHOR_DEPTH`
  nested anchors; and nothing the operator did not say: every ``text`` of an object must be words
  of the command, every noun and colour must be said (in English or Chinese, or as a lexicon
  synonym), an unknown word must occur in the command.  Any violation rejects the command with
  ``Plan.error`` saying that the language model's answer was invalid and why - the answer is
  never repaired or guessed at.
* **Failures are answers.**  A server that is down, slow, overloaded or misconfigured gives
  ``Plan(error=...)`` naming the server; :meth:`LlmParser.__call__` never raises.  The first
  failure after a success (or at start) is logged once, and so is the recovery.
* **What never goes to the model.**  A stop ("stop", "别动") and a confirmation answer ("yes",
  "取消") are parsed by the grammar: a stop must not wait on a server (the session and the node's
  worker also detect stops with the grammar), and a yes/no means the same whatever the model
  says.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from vlm_ros.backends.openai import ChatEndpoint, post_chat
from vlm_ros.core import lexicon as lx
from vlm_ros.core.backend import BackendError
from vlm_ros.core.instruction import is_confirmation
from vlm_ros.core.plan import Plan, parse_plan
from vlm_ros.core.types import ACTIONS, Instruction, Language, ObjectQuery

__all__ = ["LlmParser", "MAX_STEPS", "PLAN_SCHEMA", "make_parser", "plan_from_answer",
           "system_prompt"]

LOG = logging.getLogger(__name__)

# ---- bounds on what an answer may hold
MAX_STEPS = 8
MAX_EXCLUSIONS = 5
MAX_ANCHOR_DEPTH = 3  # "the cup next to the bowl on the table by the window"
MAX_ATTRIBUTES = 8
MAX_TEXT = 200  # characters of one string field
MAX_WORD = 60  # characters of a noun / attribute / unknown word
MAX_ORDINAL = 10
MAX_ANSWER_CHARS = 20_000
SNIPPET = 80  # characters of a bad answer quoted in the error

# ---- the closed values, from the lexicon (the grammar's own tables)
COLORS: tuple[str, ...] = tuple(sorted(set(lx.COLORS.values())))
SIZES: tuple[str, ...] = tuple(sorted(set(lx.SIZES.values())))
LOCATIONS: tuple[str, ...] = tuple(sorted(set(lx.EN_LOCATIONS.values())
                                          | set(lx.ZH_LOCATIONS.values())))
ORDINAL_FROM: tuple[str, ...] = tuple(sorted(set(lx.EN_ORDINAL_FROM.values())
                                             | set(lx.ZH_ORDINAL_FROM.values())))
RELATIONS: tuple[str, ...] = tuple(sorted(set(lx.EN_RELATIONS.values())
                                          | set(lx.ZH_RELATIONS.values())))
COLOR_PARTS: tuple[str, ...] = tuple(sorted({part for _, part in lx.GARMENTS.values()}))
DESTINATION_RELATIONS: tuple[str, ...] = tuple(sorted(set(lx.EN_DESTINATION_PREPS.values())))
GENERIC_NOUNS = frozenset({*lx.EN_GENERIC_HEADS, "anything", "something", "everything"})
PRONOUN = "it"  # what the model writes for "it", "them", "它"
JSON_MODES = ("json_schema", "json_object", "off")

QUERY_KEYS = ("noun", "text", "color", "color_part", "size", "location", "ordinal",
              "ordinal_from", "relation", "anchor", "attributes", "exclusions")
STEP_KEYS = ("text", "action", "target", "destination", "destination_relation")
PLAN_KEYS = ("steps", "negated", "unknown_word", "suggestion", "error")


# --------------------------------------------------------------------------------------------
# The schema and the prompt
# --------------------------------------------------------------------------------------------
def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


def _enum(values: tuple[str, ...]) -> dict[str, Any]:
    return {"type": ["string", "null"], "enum": [*values, None]}


def _schema() -> dict[str, Any]:
    query = {
        "type": "object",
        "additionalProperties": False,
        "required": list(QUERY_KEYS),
        "properties": {
            "noun": _nullable("string", maxLength=MAX_WORD),
            "text": {"type": "string", "maxLength": MAX_TEXT},
            "color": _enum(COLORS),
            "color_part": _enum(COLOR_PARTS),
            "size": _enum(SIZES),
            "location": _enum(LOCATIONS),
            "ordinal": _nullable("integer", minimum=-1, maximum=MAX_ORDINAL),
            "ordinal_from": _enum(ORDINAL_FROM),
            "relation": _enum(RELATIONS),
            "anchor": {"anyOf": [{"$ref": "#/$defs/object"}, {"type": "null"}]},
            "attributes": {"type": "array", "maxItems": MAX_ATTRIBUTES,
                           "items": {"type": "string", "maxLength": MAX_WORD}},
            "exclusions": {"type": "array", "maxItems": MAX_EXCLUSIONS,
                           "items": {"$ref": "#/$defs/object"}},
        },
    }
    maybe_query = {"anyOf": [{"$ref": "#/$defs/object"}, {"type": "null"}]}
    step = {
        "type": "object",
        "additionalProperties": False,
        "required": list(STEP_KEYS),
        "properties": {
            "text": {"type": "string", "maxLength": MAX_TEXT},
            "action": _enum(ACTIONS),
            "target": maybe_query,
            "destination": maybe_query,
            "destination_relation": _enum(DESTINATION_RELATIONS),
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(PLAN_KEYS),
        "properties": {
            "steps": {"type": "array", "maxItems": MAX_STEPS, "items": {"$ref": "#/$defs/step"}},
            "negated": {"anyOf": [{"$ref": "#/$defs/step"}, {"type": "null"}]},
            "unknown_word": _nullable("string", maxLength=MAX_WORD),
            "suggestion": _nullable("string", maxLength=lx.MAX_COMMAND_CHARS),
            "error": _nullable("string", maxLength=MAX_TEXT),
        },
        "$defs": {"object": query, "step": step},
    }


PLAN_SCHEMA: dict[str, Any] = _schema()


def _q(noun: str | None, text: str, **fields: Any) -> dict[str, Any]:
    """An object of the answer with every key (examples in the prompt)."""
    query: dict[str, Any] = dict.fromkeys(QUERY_KEYS)
    query.update({"noun": noun, "text": text, "attributes": [], "exclusions": [], **fields})
    return query


def _step(text: str, action: str | None, target: dict | None = None,
          destination: dict | None = None, relation: str | None = None) -> dict[str, Any]:
    return {"text": text, "action": action, "target": target, "destination": destination,
            "destination_relation": relation}


def _plan(steps: list | None = None, **fields: Any) -> dict[str, Any]:
    return {"steps": steps or [], "negated": None, "unknown_word": None, "suggestion": None,
            "error": None, **fields}


EXAMPLES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("grab the red cup and put it in the bowl, not the blue one", _plan([
        _step("grab the red cup", "pick", _q("cup", "the red cup", color="red")),
        _step("put it in the bowl, not the blue one", "place", _q(PRONOUN, "it"),
              _q("bowl", "the bowl", exclusions=[_q(None, "the blue one", color="blue")]),
              "in"),
    ])),
    ("follow the man in the green jacket", _plan([
        _step("follow the man in the green jacket", "follow",
              _q("person", "the man in the green jacket", color="green", color_part="upper",
                 attributes=["jacket"])),
    ])),
    ("don't go to the second chair from the left", _plan(negated=_step(
        "go to the second chair from the left", "navigate",
        _q("chair", "the second chair from the left", ordinal=2, ordinal_from="left")))),
    ("grap the shiny mug", _plan(unknown_word="grap", suggestion="grab the shiny mug")),
)

_RULES = """\
You turn one command spoken to a robot into JSON. Answer with exactly one JSON object that \
follows the schema below: no prose, no Markdown, no code fence. Every key is required; use null \
(or [] for lists) when the command does not say it.

Actions (a step's "action"):
- pick: grab, take, fetch, bring, hand me
- place: put, set or drop something somewhere ("destination", "destination_relation" in|on)
- navigate: go to, drive to, approach
- look: look at, face, turn to
- find: find, locate, where is
- follow: follow, track (only as the last step)
- stop: stop, halt, freeze (no target)
- null: the command is only an object, answering a question ("the left one", "the red one")

Legal values (any other value is an error):
- color: {colors}. A colour word not in this list goes to "attributes" as said.
- size: {sizes}
- location: {locations}
- ordinal: 1-{max_ordinal}, or -1 for the last; "second to last" is 2 counted from the other side
- ordinal_from: {ordinal_from}
- relation (with "anchor", the other object): {relations}
- color_part (clothing colour): {color_parts}; the garment word goes to "attributes"

Rules:
1. Several steps: one entry in "steps" each, in the order they must be done ("X after you Y": \
Y first). At most {max_steps} steps.
2. A negative command ("don't grab the cup", "别拿杯子"): "steps" is [] and "negated" is the \
step the operator does not want.
3. Exclusions ("not the red one", "the cup that isn't red", "anything except the truck"): the \
excluded objects go to the object's "exclusions".
4. "noun": the English singular name of the object as said (a Chinese noun in English, e.g. \
杯子 -> cup); null for "one", "thing", "anything"; "it" for it / them / 它.
5. "text": the exact words of the command that name that object (copied, not rephrased), or "".
6. Words about an object that fit no field (shiny, wooden, striped, a second colour) go to \
"attributes" exactly as said. Never drop a word, never replace it by a similar one.
7. A word you do not know, or that looks misspelt: "steps" is [], "unknown_word" is that word \
exactly as written, and "suggestion" is the whole corrected command if the fix is obvious \
(else null). Never correct a command silently.
8. Not a command for the robot at all: "steps" is [] and "error" says why in a few words.
9. Do not add objects, colours or steps the operator did not say.

Schema:
{schema}

Examples:
{examples}"""


def system_prompt() -> str:
    """The system message: legal values, rules, the schema and worked examples."""
    examples = "\n".join(f"Command: {command}\nJSON: {json.dumps(answer, ensure_ascii=False)}"
                         for command, answer in EXAMPLES)
    return _RULES.format(
        colors=", ".join(COLORS), sizes=", ".join(SIZES), locations=", ".join(LOCATIONS),
        max_ordinal=MAX_ORDINAL, ordinal_from=", ".join(ORDINAL_FROM),
        relations=", ".join(RELATIONS), color_parts=", ".join(COLOR_PARTS),
        max_steps=MAX_STEPS, schema=json.dumps(PLAN_SCHEMA, separators=(",", ":")),
        examples=examples)


# --------------------------------------------------------------------------------------------
# Strict validation: model answer -> Plan, or why not
# --------------------------------------------------------------------------------------------
class InvalidAnswer(ValueError):
    """The model's answer breaks the contract; the message says where and how."""


_CJK_RE = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_FENCE_RE = re.compile(r"^\s*```")


def _normalise(text: str) -> str:
    norm = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")
    return " ".join(norm.split())


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise InvalidAnswer(f"the key {key!r} appears twice in one object")
    return dict(pairs)


def _reject_constant(name: str) -> None:
    raise InvalidAnswer(f"{name} is not a JSON number")


def _load(answer: str, finish_reason: str | None) -> dict[str, Any]:
    """The one JSON object the answer must be (nothing around it)."""
    if not answer.strip():
        raise InvalidAnswer("the answer is empty")
    if len(answer) > MAX_ANSWER_CHARS:
        raise InvalidAnswer(f"the answer is {len(answer)} characters long (at most "
                            f"{MAX_ANSWER_CHARS})")
    if _FENCE_RE.match(answer):
        raise InvalidAnswer("the JSON is wrapped in a Markdown code fence (``` ... ```) instead "
                            "of being the whole answer; the server may ignore response_format")
    try:
        data = json.loads(answer, object_pairs_hook=_no_duplicates,
                          parse_constant=_reject_constant)
    except InvalidAnswer:
        raise
    except json.JSONDecodeError as exc:
        snippet = answer.strip()[:SNIPPET]
        if exc.msg == "Extra data":
            raise InvalidAnswer(f"there is text after the JSON object (at character {exc.pos})"
                                ) from None
        if _unclosed(answer) or finish_reason == "length":
            cut = " (generation hit max_tokens)" if finish_reason == "length" else ""
            raise InvalidAnswer(f"the JSON is incomplete{cut}: it ends at character "
                                f"{len(answer)} ({exc.msg})") from None
        raise InvalidAnswer(f"it is not JSON ({exc.msg} at character {exc.pos}): "
                            f"{snippet!r}") from None
    except RecursionError:
        raise InvalidAnswer("the JSON is nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidAnswer(f"the answer is a JSON {type(data).__name__}, not an object")
    return data


def _unclosed(text: str) -> bool:
    """Does ``text`` stop inside a string or with brackets still open (a cut-off answer)?"""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
    return in_string or depth > 0


def _keys(data: object, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidAnswer(f"{where} must be an object, got {_kind(data)}")
    extra = [k for k in data if k not in keys]
    if extra:
        raise InvalidAnswer(f"{where} has the unknown key {extra[0]!r} (allowed: "
                            f"{', '.join(keys)})")
    missing = [k for k in keys if k not in data]
    if missing:
        raise InvalidAnswer(f"{where} lacks the required key {missing[0]!r}")
    return data


def _bounded_list(value: object, where: str, limit: int, items: str) -> list:
    """``value`` as a list of at most ``limit`` entries (InvalidAnswer otherwise)."""
    if not isinstance(value, list):
        raise InvalidAnswer(f"{where} must be an array, got {_kind(value)}")
    if len(value) > limit:
        raise InvalidAnswer(f"{where} has {len(value)} {items} (at most {limit})")
    return value


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:SNIPPET]!r}"
    return f"a JSON {'array' if isinstance(value, list) else type(value).__name__}"


def _string(value: object, where: str, limit: int, nullable: bool = True) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise InvalidAnswer(f"{where} must be a string{' or null' if nullable else ''}, got "
                            f"{_kind(value)}")
    if len(value) > limit:
        raise InvalidAnswer(f"{where} is {len(value)} characters long (at most {limit})")
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") for ch in value):
        raise InvalidAnswer(f"{where} contains control or unassigned characters")
    return value


def _choice(value: object, where: str, legal: tuple[str, ...], what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidAnswer(f"{where} must be one of the legal {what}s or null, got "
                            f"{_kind(value)}")
    if value not in legal:
        raise InvalidAnswer(f"{where} is {value[:SNIPPET]!r}, not a {what} I know (legal: "
                            f"{', '.join(legal)})")
    return value


class _Reader:
    """Validates one answer against one command (what was said bounds what may be answered)."""

    def __init__(self, command: str) -> None:
        self.said = _normalise(command)
        self.language: Language = "zh" if _CJK_RE.search(self.said) else "en"

    # ---------------------------------------------------------------- what the operator said
    def _occurs(self, phrase: str, whole_word: bool) -> bool:
        phrase = _normalise(phrase)
        if not phrase:
            return False
        if _CJK_RE.search(phrase) or not whole_word:
            return phrase in self.said
        # English: a word boundary before; after it only a plural ending ("cups", "boxes").
        return re.search(rf"(?<![\w]){re.escape(phrase)}(?:s|es)?(?![\w])", self.said) is not None

    def _noun_said(self, noun: str) -> bool:
        forms = {noun}
        forms.update(k for k, v in lx.EN_NOUN_SYNONYMS.items() if v == noun)
        forms.update(k for k, v in lx.EN_IRREGULAR_PLURALS.items() if v == noun)
        forms.update(k for k, v in lx.ZH_NOUNS.items() if v == noun)
        forms.update(k for k, (garment, _) in lx.GARMENTS.items() if garment == noun)
        if noun == PRONOUN:
            forms.update(lx.EN_PRONOUNS, lx.ZH_PRONOUNS, {"them", "它", "它们"})
        return any(self._occurs(form, whole_word=True) for form in forms)

    def _garment_said(self, word: str) -> bool:
        """A garment named in English for a Chinese command ("jacket" for 夹克)."""
        return any(self._occurs(said, whole_word=True)
                   for said, (garment, _) in lx.GARMENTS.items() if garment == word)

    def _color_said(self, color: str) -> bool:
        return any(self._occurs(word, whole_word=True)
                   for word, canonical in lx.COLORS.items() if canonical == color)

    # ---------------------------------------------------------------- the answer's parts
    def plan(self, data: dict[str, Any], shown: str) -> Plan:
        data = _keys(data, PLAN_KEYS, "the answer")
        plan = Plan(text=shown, language=self.language)
        steps = data["steps"]
        if not isinstance(steps, list):
            raise InvalidAnswer(f"steps must be an array, got {_kind(steps)}")
        if len(steps) > MAX_STEPS:
            raise InvalidAnswer(f"it has {len(steps)} steps (at most {MAX_STEPS})")
        unknown = _string(data["unknown_word"], "unknown_word", MAX_WORD)
        suggestion = _string(data["suggestion"], "suggestion", lx.MAX_COMMAND_CHARS)
        error = _string(data["error"], "error", MAX_TEXT)
        negated = data["negated"]
        outcomes = [name for name, present in (
            ("steps", bool(steps)), ("negated", negated is not None),
            ("unknown_word", unknown is not None), ("error", error is not None)) if present]
        if len(outcomes) != 1:
            raise InvalidAnswer("it must give exactly one of steps, negated, unknown_word or "
                                f"error; it gives {' and '.join(outcomes) or 'none'}")
        if suggestion is not None and unknown is None:
            raise InvalidAnswer("suggestion is only allowed with unknown_word")
        if unknown is not None:
            if not unknown.strip() or not self._occurs(unknown, whole_word=False):
                raise InvalidAnswer(f"unknown_word {unknown[:SNIPPET]!r} is not a word of the "
                                    "command")
            plan.error = f"I don't know the word '{unknown.strip()}'"
            if suggestion is not None:
                if not suggestion.strip() or _normalise(suggestion) == self.said:
                    raise InvalidAnswer("suggestion must be the corrected command, and differ "
                                        "from it")
                plan.suggestion = " ".join(suggestion.split())
                plan.error += f". Did you mean '{plan.suggestion}'?"
            else:
                plan.error += " (say the command with words I know)"
            return plan
        if error is not None:
            plan.error = f"the language model did not find a command: {' '.join(error.split())}"
            return plan
        if negated is not None:
            step = self.step(negated, "negated", several=False)
            if step.action is None or step.action == "stop":
                raise InvalidAnswer("negated must be a step with an action other than stop")
            plan.negated = step
            what = step.target.text if step.target and step.target.text else "that"
            plan.refusal = (f"you asked me not to {step.action} {what}: nothing to do, no goal "
                            "sent")
            return plan
        several = len(steps) > 1
        plan.steps = [self.step(s, f"steps[{i}]", several) for i, s in enumerate(steps)]
        if not several:
            plan.steps[0].text = shown
        _link_pronouns(plan.steps)
        return plan

    def step(self, data: object, where: str, several: bool) -> Instruction:
        data = _keys(data, STEP_KEYS, where)
        text = _string(data["text"], f"{where}.text", MAX_TEXT, nullable=False) or ""
        action = _choice(data["action"], f"{where}.action", ACTIONS, "action")
        target = self.query(data["target"], f"{where}.target", 0)
        destination = self.query(data["destination"], f"{where}.destination", 0)
        relation = _choice(data["destination_relation"], f"{where}.destination_relation",
                           DESTINATION_RELATIONS, "destination relation")
        if several and not text.strip():
            raise InvalidAnswer(f"{where}.text is empty (each of several steps says its words)")
        if action == "stop" and (target or destination):
            raise InvalidAnswer(f"{where} is a stop with an object")
        if action is None:
            if several:
                raise InvalidAnswer(f"{where} has no action (only a lone answer may lack one)")
            if target is None or destination is not None:
                raise InvalidAnswer(f"{where} has no action and is not an answer naming one "
                                    "object")
        elif action == "place":
            if target is None and destination is None:
                raise InvalidAnswer(f"{where} is a place with neither object nor destination")
        elif action != "stop" and target is None:
            raise InvalidAnswer(f"{where} is a {action} without a target")
        if destination is not None and action != "place":
            raise InvalidAnswer(f"{where} has a destination but is not a place")
        if (destination is None) != (relation is None):
            raise InvalidAnswer(f"{where}: destination and destination_relation go together")
        return Instruction(text=" ".join(text.split()), language=self.language,
                           action=action,  # type: ignore[arg-type]
                           target=target, destination=destination,
                           destination_relation=relation, is_followup=action is None)

    def query(self, data: object, where: str, depth: int) -> ObjectQuery | None:
        if data is None:
            return None
        data = _keys(data, QUERY_KEYS, where)
        noun = _string(data["noun"], f"{where}.noun", MAX_WORD)
        text = _string(data["text"], f"{where}.text", MAX_TEXT, nullable=False) or ""
        color = _choice(data["color"], f"{where}.color", COLORS, "colour")
        color_part = _choice(data["color_part"], f"{where}.color_part", COLOR_PARTS,
                             "clothing part")
        size = _choice(data["size"], f"{where}.size", SIZES, "size")
        location = _choice(data["location"], f"{where}.location", LOCATIONS, "location")
        ordinal = data["ordinal"]
        if ordinal is not None and (isinstance(ordinal, bool) or not isinstance(ordinal, int)):
            raise InvalidAnswer(f"{where}.ordinal must be an integer or null, got "
                                f"{_kind(ordinal)}")
        if ordinal is not None and not (ordinal == -1 or 1 <= ordinal <= MAX_ORDINAL):
            raise InvalidAnswer(f"{where}.ordinal is {ordinal} (legal: 1-{MAX_ORDINAL}, or -1 "
                                "for the last)")
        ordinal_from = _choice(data["ordinal_from"], f"{where}.ordinal_from", ORDINAL_FROM,
                               "counting start")
        relation = _choice(data["relation"], f"{where}.relation", RELATIONS, "relation")
        if data["anchor"] is not None and depth >= MAX_ANCHOR_DEPTH:
            raise InvalidAnswer(f"{where} nests anchors deeper than {MAX_ANCHOR_DEPTH}")
        anchor = self.query(data["anchor"], f"{where}.anchor", depth + 1)
        attributes = _bounded_list(data["attributes"], f"{where}.attributes", MAX_ATTRIBUTES,
                                   "words")
        words = [_string(w, f"{where}.attributes[{i}]", MAX_WORD, nullable=False) or ""
                 for i, w in enumerate(attributes)]
        exclusions = _bounded_list(data["exclusions"], f"{where}.exclusions", MAX_EXCLUSIONS,
                                   "objects")
        if exclusions and depth >= MAX_ANCHOR_DEPTH:
            raise InvalidAnswer(f"{where} nests objects deeper than {MAX_ANCHOR_DEPTH}")
        for i, e in enumerate(exclusions):
            if e is None:
                raise InvalidAnswer(f"{where}.exclusions[{i}] must be an object, got null")
        excluded = [self.query(e, f"{where}.exclusions[{i}]", depth + 1)
                    for i, e in enumerate(exclusions)]
        # ---- consistency, and nothing the operator did not say
        if (relation is None) != (anchor is None):
            raise InvalidAnswer(f"{where}: relation and anchor go together")
        if color_part is not None and color is None:
            raise InvalidAnswer(f"{where}: color_part without a color")
        if ordinal_from is not None and ordinal is None:
            raise InvalidAnswer(f"{where}: ordinal_from without an ordinal")
        if text.strip() and not self._occurs(text, whole_word=False):
            raise InvalidAnswer(f"{where}.text {text[:SNIPPET]!r} is not words of the command")
        if noun is not None:
            noun = " ".join(noun.split())
            if not noun:
                raise InvalidAnswer(f"{where}.noun is empty (null when no noun was said)")
            if _normalise(noun) in GENERIC_NOUNS:
                noun = None  # "the red one": no noun, as the grammar reads it
            elif not self._noun_said(_normalise(noun)):
                raise InvalidAnswer(f"{where}.noun {noun!r} is not a word of the command")
            else:
                noun = _normalise(noun)
        if color is not None and not self._color_said(color):
            raise InvalidAnswer(f"{where}.color {color!r} is not a colour the command says")
        for word in words:
            if not word.strip() or not (self._occurs(word, whole_word=False)
                                        or self._garment_said(_normalise(word))):
                raise InvalidAnswer(f"{where}.attributes word {word[:SNIPPET]!r} is not a word "
                                    "of the command")
        return ObjectQuery(noun=noun, text=" ".join(text.split()), color=color,
                           color_part=color_part, size=size, location=location, ordinal=ordinal,
                           ordinal_from=ordinal_from, relation=relation, anchor=anchor,
                           attributes=[_normalise(w) for w in words],
                           exclusions=[e for e in excluded if e is not None])


def _link_pronouns(steps: list[Instruction]) -> None:
    """A later step's "it" is the object an earlier step acted on (as the grammar links it;
    a place's "it" stays: it is whatever the gripper holds)."""
    previous: ObjectQuery | None = None
    for step in steps:
        target = step.target
        if target is not None and target.noun == PRONOUN and previous is not None \
                and step.action != "place":
            step.target = copy.deepcopy(previous)
        if step.target is not None and step.target.noun != PRONOUN:
            previous = step.target


def plan_from_answer(command: str, answer: str, finish_reason: str | None = None) -> Plan:
    """The Plan a model's ``answer`` gives for ``command``, or ``Plan(error=...)`` saying why
    the answer is invalid.  Never raises, never repairs."""
    shown = _shown(command)
    try:
        return _Reader(command).plan(_load(answer, finish_reason), shown)
    except InvalidAnswer as exc:
        return Plan(text=shown, language=_language(command),
                    error=f"the language model's answer was invalid: {exc}; command rejected "
                          "(nothing guessed)")
    except RecursionError:
        return Plan(text=shown, language=_language(command),
                    error="the language model's answer was invalid: nested too deeply; "
                          "command rejected (nothing guessed)")


def _shown(text: str) -> str:
    stripped = text.strip()
    return stripped if len(stripped) <= MAX_TEXT else stripped[:MAX_TEXT] + "…"


def _language(text: str) -> Language:
    return "zh" if _CJK_RE.search(text) else "en"


def _input_problem(text: object) -> str | None:
    if not isinstance(text, str):
        return "command must be text"
    if len(text) > lx.MAX_COMMAND_CHARS:
        return f"command too long ({len(text)} characters, at most {lx.MAX_COMMAND_CHARS})"
    if not text.strip():
        return "empty command"
    for ch in text:
        category = unicodedata.category(ch)
        if (category == "Cc" and ch not in "\t\n\r") or category in ("Cs", "Co", "Cn") \
                or ch == "\ufffd":
            return "command contains control, binary or unassigned characters"
    return None


# --------------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------------
class LlmParser:
    """``Callable[[str], Plan]`` for :class:`~vlm_ros.core.session.CommandSession` (``parse=``),
    backed by a chat model on an OpenAI-compatible server.  Never raises."""

    def __init__(
        self,
        model: str = "",
        base_url: str = "http://localhost:8000/v1",
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 10.0,
        retries: int = 1,
        json_mode: str | bool = "json_schema",
        temperature: float = 0.0,
        max_tokens: int = 1024,
        report: Callable[[str], None] | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(
                "parser llm needs parser_options model: the name the server serves (e.g. "
                "'Qwen/Qwen2.5-7B-Instruct' for vLLM, 'qwen2.5' for Ollama); list them with: "
                f"curl {str(base_url).rstrip('/')}/models")
        if json_mode is True:
            json_mode = "json_schema"
        elif json_mode is False:
            json_mode = "off"
        if json_mode not in JSON_MODES:
            raise ValueError(f"parser_options json_mode must be one of {', '.join(JSON_MODES)} "
                             f"(or true / false), got {json_mode!r}")
        try:
            timeout_s, retries = float(timeout_s), int(retries)
            temperature, max_tokens = float(temperature), int(max_tokens)
        except (TypeError, ValueError):
            raise ValueError("parser_options timeout_s, retries, temperature and max_tokens "
                             "must be numbers") from None
        if not timeout_s > 0 or retries < 0 or max_tokens < 64:
            raise ValueError(f"parser_options: need timeout_s > 0, retries >= 0 and "
                             f"max_tokens >= 64; got {timeout_s}, {retries}, {max_tokens}")
        self.model = model
        self.base_url = str(base_url).rstrip("/")
        self.endpoint = ChatEndpoint(
            url=f"{self.base_url}/chat/completions", base_url=self.base_url, model=model,
            api_key_env=api_key_env, timeout_s=timeout_s, retries=retries, name="llm parser",
            who="the language-model parser's server ")
        self.json_mode: str = json_mode
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._report = report or LOG.warning
        self._prompt = system_prompt()
        self._lock = threading.Lock()  # the json_mode fall-back and the logged state
        self._failing: bool | None = None  # None: not yet asked

    # ---------------------------------------------------------------- Callable[[str], Plan]
    def __call__(self, text: str) -> Plan:
        problem = _input_problem(text)
        if problem is not None:
            return Plan(text=_shown(text) if isinstance(text, str) else "", error=problem)
        if is_confirmation(text) is not None or _is_stop(text):
            return parse_plan(text)  # never waits on the server
        try:
            answer = post_chat(self.endpoint, lambda: self._body(text), self._downgrade)
        except BackendError as exc:
            self._state(failing=True, why=str(exc))
            return Plan(text=_shown(text), language=_language(text),
                        error=f"command not understood: {exc}")
        except Exception as exc:  # nothing may leave the parser
            self._state(failing=True, why=repr(exc))
            return Plan(text=_shown(text), language=_language(text),
                        error=f"command not understood: the language-model parser failed "
                              f"({exc!r:.120})")
        self._state(failing=False, why="")
        return plan_from_answer(text, answer.text, answer.finish_reason)

    def check(self, timeout_s: float = 2.0) -> str | None:
        """Is the server there?  None when it answers ``GET /models`` (any HTTP status), else
        why not (reported once, as the first failed command would be); commands are answered
        either way."""
        request = urllib.request.Request(f"{self.base_url}/models",
                                         headers=self.endpoint.headers())
        try:
            with urllib.request.urlopen(request, timeout=min(timeout_s, self.endpoint.timeout_s)):
                pass
        except urllib.error.HTTPError:
            pass  # it answered
        except Exception as exc:
            reason = getattr(exc, "reason", exc)
            problem = f"the language-model parser's server {self.base_url} does not answer " \
                      f"({reason})"
            self._state(failing=True, why=problem)  # logged once, here
            return problem
        return None

    def info(self) -> dict[str, object]:
        return {"parser": "llm", "model": self.model, "base_url": self.base_url,
                "json_mode": self.json_mode}

    # ---------------------------------------------------------------- protocol
    def _body(self, text: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": self._prompt},
                         {"role": "user", "content": f"Command: {text.strip()}"}],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stream": False,
        }
        mode = self.json_mode
        if mode == "json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "vlm_ros_plan", "strict": True, "schema": PLAN_SCHEMA}}
        elif mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    def _downgrade(self, detail: str) -> bool:
        """HTTP 400 naming the response format: ask with the next simpler one, from now on."""
        lowered = detail.lower()
        if "response_format" not in lowered and "json_schema" not in lowered \
                and "json_object" not in lowered:
            return False
        with self._lock:
            index = JSON_MODES.index(self.json_mode)
            if index + 1 >= len(JSON_MODES):
                return False
            was, self.json_mode = self.json_mode, JSON_MODES[index + 1]
        LOG.warning("llm parser: %s rejects response_format %s; asking with %s from now on",
                    self.endpoint.url, was, self.json_mode)
        return True

    def _state(self, failing: bool, why: str) -> None:
        """Log the first failure (and the recovery) once, not every command."""
        with self._lock:
            changed = failing != self._failing and (failing or self._failing is not None)
            self._failing = failing
        if changed:
            self._report(f"parser llm: {why}; commands are rejected with this reason until the "
                         "server answers" if failing else
                         f"parser llm: {self.endpoint.url} answers again")


def _is_stop(text: str) -> bool:
    plan = parse_plan(text)
    return plan.error is None and [s.action for s in plan.steps] == ["stop"]


# --------------------------------------------------------------------------------------------
PARSERS = ("grammar", "llm")


def make_parser(name: str, options: Mapping[str, Any] | None = None,
                report: Callable[[str], None] | None = None) -> Callable[[str], Plan]:
    """The session's parser for the ``parser`` parameter (ValueError names a bad setting)."""
    options = dict(options or {})
    if name == "grammar":
        if options:
            raise ValueError(f"parser_options are for parser llm; parser grammar takes none "
                             f"(got {', '.join(sorted(options))})")
        return parse_plan
    if name == "llm":
        allowed = {"model", "base_url", "api_key_env", "timeout_s", "retries", "json_mode",
                   "temperature", "max_tokens"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ValueError(f"unknown parser_options {', '.join(unknown)} (allowed: "
                             f"{', '.join(sorted(allowed))})")
        return LlmParser(**options, report=report)
    raise ValueError(f"parser must be one of {', '.join(PARSERS)}, got {name!r}")
