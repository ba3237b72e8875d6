"""Text -> Plan: one or more steps, with negation, exclusions, self-corrections and typos.

``core/instruction.py`` parses one clause ("grab the red cup") into an ``Instruction`` (a step:
action, target referent, destination).  This module works on the whole sentence around it:

* self-corrections: "go to the horse, no wait, the dog" -> go to the dog (the correction
  replaces the last referent named before it, or the whole command when it has a verb);
* several steps: "grab the red cup and put it in the blue bowl", "go to the dog, then stop",
  "first ..., then ...", "... after you ...", "先……再/然后……" -> ordered steps;
* negative commands: "don't grab the cup", "别走向那个人" -> understood, and no goal;
* exclusions: "not the red one", "the cup that isn't red", "anything except the truck",
  "any cup but the blue one", "不是红色的那个", "除了卡车" -> ``ObjectQuery.exclusions``;
* typos: a verb or word one edit away from exactly one known word -> a suggestion ("Did you
  mean 'grab'?"), never a silent auto-correction;
* words the detector cannot judge: named in the answer (:func:`unjudged_words`), never dropped.

``parse_plan`` never raises: garbage gives ``Plan(error=...)``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import unicodedata
from dataclasses import dataclass, field

from rapidfuzz.distance import DamerauLevenshtein

from vlm_ros.core import lexicon as lx
from vlm_ros.core import speech_acts, zh_words
from vlm_ros.core.grasp_words import grasp_words
from vlm_ros.core.grasp_words import refusal as grasp_refusal
from vlm_ros.core.instruction import (
    _display_text,
    _input_error,
    parse_instruction,
)
from vlm_ros.core.types import Instruction, Language, ObjectQuery
from vlm_ros.core.vocabulary import GENERIC_NOUNS

__all__ = ["Plan", "parse_plan", "unjudged_words"]

_CJK_RE = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

# ---- self-corrections: what follows the marker replaces what came before it
_EN_CORRECTION = re.compile(
    r"(?:^|[\s,;.!]+)(?:no,?\s+wait|wait,?\s+no|no,?\s+sorry|sorry|i mean|i meant|"
    r"actually|correction|no,|no(?=\s+(?:the|a|an|that|this)\b))[\s,;.!]+")
_ZH_CORRECTION = re.compile(r"[，,。]?\s*(?:不对|我是说|我的意思是|说错了|更正)[，,：:]?\s*")

# ---- steps
# ("next" is no joiner: "the dog next to the bicycle".)
_EN_THEN = re.compile(r"\s*[,;.]?\s*\b(?:and then|then|after that|afterwards|and afterwards|"
                      r"and after that|finally|and finally)\b[\s,]*")
_EN_FIRST = re.compile(r"^\s*(?:first(?: of all)?|to start|start by)\b[\s,]*")
_EN_AND = re.compile(r"\s*[,;]?\s*\band\b\s+|\s*[,;]\s*")
_EN_AFTER = re.compile(r"^(?P<later>.+?)\s*,?\s+\bafter\b\s+(?:you(?:'ve| have)?\s+)?"
                       r"(?P<first>.+)$")
_EN_AFTER_LEADING = re.compile(r"^\s*after\s+(?:you(?:'ve| have)?\s+)?(?P<first>.+?)\s*,\s*"
                               r"(?P<later>.+)$")
_EN_BEFORE = re.compile(r"^(?P<first>.+?)\s*,?\s+\bbefore\b\s+(?:you\s+)?(?P<later>.+)$")
_ZH_FIRST_THEN = re.compile(r"^\s*先(?P<first>.+?)[，,]?\s*(?:然后再|然后|接着|之后再|之后|再)"
                            r"(?P<later>.+)$")
_ZH_THEN = re.compile(r"\s*[，,；;。]?\s*(?:然后再|然后|接着|随后|之后再|之后|以后再|以后)\s*")
_ZH_COMMA = re.compile(r"\s*[，,；;]\s*")

# ---- several objects: "all the cups", "every cup", "both cups", "所有的杯子"
_EN_QUANTITY = re.compile(r"\b(?P<q>all(?: of)?|every|each(?: of)?|both(?: of)?)\s+"
                          r"(?:the |those |these |my |your )?(?=\S)")
_ZH_QUANTITY = re.compile(r"(?P<q>所有的|所有|全部的|全部|每一个|每个|两个都|都)")
_ZH_BOTH = ("两个都",)
# "X and Y" for a pick: the second referent takes the pick's verb ("grab the cup and the bowl").
_ZH_AND = re.compile(r"\s*(?:和|跟|与|以及)\s*")
_EXCLUDING = re.compile(r"\b(?:except|but|not|isn't|aren't|other than|apart from|besides|"
                        r"excluding)\b|除了|不是|不要|别")
_EN_DETERMINER = re.compile(r"^(?:the|a|an|this|that|my|your|its|their)\b")

# ---- negation
_EN_NEGATIVE = re.compile(r"^\s*(?:please\s+)?(?:don't|dont|do not|never|you must not|"
                          r"you should not|you shouldn't)\s+(?P<rest>.+)$")
_ZH_NEGATIVE = re.compile(r"^\s*(?:请)?(?:千万别|千万不要|别|不要|不许|不准|禁止|不能)(?P<rest>.+)$")
# Exclusions inside a referring expression (applied after the action's words).
_EN_EXCLUDE = [
    re.compile(r"^(?P<head>.+?)\s*,?\s+(?:that|which)\s+(?:is not|isn't|is n't|are not|aren't|"
               r"is never)\s+(?P<excl>.+)$"),
    re.compile(r"^(?P<head>.+?)\s*,?\s+(?:except(?: for)?|other than|apart from|besides|"
               r"excluding|but not|and not|not)\s+(?P<excl>.+)$"),
    # "any cup but the blue one": "but" excludes only after "any" / "anything" / "all".
    re.compile(r"^(?P<head>(?:.*\b)?(?:any|anything|everything|all|every)\b.*?)\s+but\s+"
               r"(?P<excl>.+)$"),
]
_EN_ONLY_EXCLUSION = re.compile(r"^\s*(?:but\s+)?(?:not|except(?: for)?|anything but|"
                                r"any but|other than)\s+(?P<excl>.+)$")
_ZH_LIST = re.compile(r"[和与或、跟]")
_EN_LIST = re.compile(r"\s*,\s*(?:and\s+|or\s+|nor\s+)?|\s+(?:and|or|nor)\s+")
_EN_ANY_THING = re.compile(r"\b(?:anything|something|everything|any object|any thing)\b")
_ZH_EXCLUDE = [
    # "除了自行车和汽车，走到任何东西那边": the command after the comma, minus what 除了 names
    re.compile(r"^\s*除了(?P<excl>[^，,]+?)(?:以外|之外)?(?:的)?[，,]\s*(?P<head>)(?P<tail>.+)$"),
    # "抓取不是红色的杯子": the cup that is not red
    re.compile(r"^(?P<head>.*?)(?:不是|不要)(?P<excl>[^的，,]+)的"
               r"(?P<tail>(?!那个|那只|那一个|那些|这个)[^的，,]+)$"),
    re.compile(r"^(?P<head>.*?)[，,]?\s*除了(?P<excl>.+?)(?:以外|之外)(?:的)?(?P<tail>.*)$"),
    re.compile(r"^(?P<head>.*?)[，,]?\s*除了(?P<excl>.+?)(?P<tail>)$"),
    re.compile(r"^(?P<head>.*?)[，,]?\s*(?:不是|不要|别拿|不拿)(?P<excl>.+?)的?(?:那个|那只|那一个|那些)?"
               r"(?P<tail>)$"),
]

# ---- memory: "where did you see …", "go back to …", "the cup you saw"; the clause is rewritten to
# the plain command and its step marked ``recall`` (answered from the object memory)
_EN_RECALL: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^where (?:did|have|had) you (?:last |first |just )?(?:see|seen|spot|spotted|"
                r"notice|noticed|find|found) (?P<obj>.+?)(?: last| before| earlier)?$"),
     "where is {obj}"),
    (re.compile(r"^where (?:was|were) (?P<obj>.+)$"), "where is {obj}"),
    (re.compile(r"^(?:go|come|drive|walk|head|get|move) back (?:over )?to (?P<obj>.+)$"),
     "go to {obj}"),
    (re.compile(r"^return to (?P<obj>.+)$"), "go to {obj}"),
)
# "the cup (that) you saw (earlier) (on the table)": the object was seen before.
_EN_YOU_SAW = re.compile(r"\s+(?:that |which )?(?:you|we) (?:saw|have seen|had seen|spotted|"
                         r"noticed|found|saw before|saw earlier)(?: before| earlier| just now)?"
                         r"(?=\s|$)")
_ZH_RECALL: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(?:你)?(?:刚才|之前|以前)?(?:在)?(?:哪里|哪儿|哪)(?:看到|看见|见过|发现)(?:了|过)?"
                r"(?P<obj>.+?)(?:的)?$"), "{obj}在哪里"),
    (re.compile(r"^(?P<obj>.+?)(?:你)?(?:是)?在(?:哪里|哪儿|哪)(?:看到|看见|见过|发现)(?:的)?$"),
     "{obj}在哪里"),
    (re.compile(r"^(?:回到|返回|回去)(?P<obj>.+)$"), "走到{obj}"),
)
_ZH_YOU_SAW = re.compile(r"(?:你|我们)?(?:刚才|之前|以前|刚刚)?(?:看到|看见|见过|发现)(?:了|过)?的")

# ---- typos: how far a word may be from the one known word it is taken for
_MAX_EDITS = ((4, 0), (7, 1), (40, 2))  # len < 4: exact only; < 7: one edit; < 40: two


@dataclass
class Plan:
    """What a command means: ordered steps, or why there is nothing to do.

    ``error``: not understood (status rejected; names the word when there is one).
    ``refusal``: understood and deliberately no goal (a negative command).
    ``suggestion``: a typo's likely correction, to ask about ("Did you mean ...?").
    ``negated``: the step a negative command refers to (a follow-up "别拿红色的" may mean
    "not the red one" when a question is pending).
    """

    text: str
    language: Language = "en"
    steps: list[Instruction] = field(default_factory=list)
    error: str | None = None
    refusal: str | None = None
    suggestion: str | None = None
    negated: Instruction | None = None

    @property
    def is_followup(self) -> bool:
        return len(self.steps) == 1 and self.steps[0].is_followup

    def to_dicts(self) -> list[dict]:
        return [step.to_dict() for step in self.steps]


def parse_plan(text: str) -> Plan:
    """The plan a command asks for; never raises."""
    try:
        return _parse_plan(text)
    except Exception as exc:  # the parser must never take the node down
        return Plan(text=_display_text(text), error=f"internal parser error ({exc!r:.80})")


def unjudged_words(query: ObjectQuery | None) -> list[str]:
    """Words of a referring expression (and its anchors) that no stage of the core judges: a
    closed-set detector cannot use them, so a command holding them must say so."""
    words: list[str] = []
    while query is not None:
        for word in query.attributes:
            if word in lx.GARMENTS or lx.EN_NOUN_SYNONYMS.get(word) == "person":
                continue  # clothing (judged by colour part), "man"/"woman" said for person
            words.append(word)  # an unknown modifier, a second colour, a second object
        for excluded in query.exclusions:
            words.extend(unjudged_words(excluded))
        query = query.anchor
    return words


# --------------------------------------------------------------------------------------------
def _normalise(text: str) -> str:
    norm = unicodedata.normalize("NFKC", text.translate({ord(c): None for c in lx.INVISIBLE_CHARS}))
    return " ".join(norm.lower().replace("\u2019", "'").split())


def _parse_plan(text: str) -> Plan:
    plan = _parse_sentence(text)
    if plan.error is None and plan.refusal is None and plan.suggestion is None \
            and any(step.action is not None for step in plan.steps):
        return plan
    if plan.suggestion is not None or not isinstance(text, str) or _input_error(text):
        return plan
    # No command in it: a statement or a question must not be taken for an answer either.
    norm = _normalise(text)
    language = plan.language
    said = speech_acts.statement(norm, language)
    if said is not None and plan.refusal is None:
        return Plan(text=plan.text, language=language, refusal=said.message)
    if plan.refusal is None and speech_acts.is_unanswerable_question(norm, language):
        return Plan(text=plan.text, language=language, error=speech_acts.UNANSWERABLE)
    return plan


def _parse_sentence(text: str) -> Plan:
    if not isinstance(text, str):
        step = parse_instruction(text)  # its own message for bytes / non-text
        return Plan(text="", error=step.error or "command must be text")
    shown = _display_text(text)
    problem = _input_error(text)
    if problem:
        return Plan(text=shown, error=problem)
    norm = _normalise(text)
    language: Language = "zh" if _CJK_RE.search(norm) else "en"
    plan = Plan(text=shown, language=language)
    norm = _apply_correction(norm, language, plan)
    if plan.error:
        return plan
    act = speech_acts.classify(norm, language)
    if isinstance(act, speech_acts.Refusal):
        plan.refusal = act.message
        return plan
    if isinstance(act, speech_acts.Question):
        return _question_plan(act, language, plan)
    clauses = _split_steps(norm, language)
    if not clauses:  # only joining words ("first", "then")
        plan.error = "no recognisable command (try e.g. 'grab the red cup' or '抓取红色杯子')"
        return plan
    clauses = [c for c in clauses if not _is_vocative(c)] or clauses  # "hey robot, ..."
    refused: list[Plan] = []
    for clause in clauses:
        said = Plan(text=plan.text, language=language)
        step = _parse_clause(clause, language, said, several=len(clauses) > 1)
        if said.error or said.suggestion:
            plan.error, plan.suggestion = said.error, said.suggestion
            if plan.suggestion is not None and len(clauses) > 1:  # yes runs the whole command
                plan.suggestion = _rebuild(norm, clause, plan.suggestion)
            plan.steps = []  # a plan runs whole or not at all
            return plan
        if said.refusal:
            refused.append(said)
            continue
        assert step is not None
        step.text = clause if len(clauses) > 1 else shown
        plan.steps.append(step)
    if refused and not plan.steps:  # only "don't ...": nothing to do
        plan.refusal, plan.negated = refused[-1].refusal, refused[-1].negated
        return plan
    if refused and _refers_back(plan.steps):
        # "don't grab the red cup and put it on the table": the "it" is the object not to be
        # grabbed, so the "don't" covers the whole sentence.
        plan.refusal, plan.negated = refused[0].refusal, refused[0].negated
        plan.steps = []
        return plan
    for negative in refused:  # "don't grab the red cup, grab the cup": not the red one
        _exclude_negated(plan.steps, negative.negated)
    if len(plan.steps) > 1:
        _link_steps(plan)
    elif plan.steps:
        plan.steps[0].text = shown
    return plan


def _question_plan(question: speech_acts.Question, language: Language, plan: Plan) -> Plan:
    """"is there a red cup?" -> one ``ask`` step about the red cup (answered, never a goal)."""
    words = question.object_text
    if language == "en":
        # "how many cups are on the table" -> the cups on the table
        words = re.sub(r"\s+(?:are|is)\s+(?=(?:on|in|at|near|next to|under|behind)\b)", " ",
                       words)
        words = _EN_ANY_THING.sub("thing", re.sub(r"^(?:any|some|an?)\s+", "", words))
    target = _referent(words)
    if target is None:
        plan.error = f"I could not tell which object you ask about in '{plan.text}'"
        return plan
    step = Instruction(text=plan.text, language=language, action="ask", target=target,
                       question=question.kind)
    _check_words(step, words, plan)
    if not plan.error:
        plan.steps = [step]
    return plan


def _refers_back(steps: list[Instruction]) -> bool:
    """Does the first remaining step say "it" with nothing before it to refer to?"""
    first = steps[0] if steps else None
    return (first is not None and first.target is not None
            and first.target.noun in (*lx.EN_PRONOUNS, *lx.ZH_PRONOUNS))


def _is_vocative(clause: str) -> bool:
    words = clause.strip(" ,.;!?，。！？")
    return words in ("hey robot", "robot", "hey", "ok robot", "okay robot", "hello robot",
                     "机器人", "你好", "喂")


def _exclude_negated(steps: list[Instruction], negated: Instruction | None) -> None:
    """What a "don't" clause forbids stays excluded from the steps that do the same action."""
    if negated is None or negated.target is None:
        return
    for step in steps:
        same_action = step.action == negated.action
        same_noun = (negated.target.noun is None or step.target is None
                     or step.target.noun in (None, negated.target.noun))
        if same_action and same_noun and step.target is not None:
            if negated.target.noun is None or negated.target.noun != step.target.noun \
                    or negated.target.has_constraints():
                step.target.exclusions.append(copy.deepcopy(negated.target))


# ------------------------------------------------------------------------- corrections
def _apply_correction(norm: str, language: Language, plan: Plan) -> str:
    """"go to the horse, no wait, the dog" -> "go to the dog"; corrections apply in order."""
    pattern = _ZH_CORRECTION if language == "zh" else _EN_CORRECTION
    parts = [p for p in pattern.split(norm) if p and p.strip(" ,.;!，。")]
    current = parts[0] if parts else norm
    for correction in parts[1:]:
        current = _correct(current, correction.strip(" ,.;!，。"), language, plan)
        if plan.error:
            return norm
    return current


def _correct(before: str, correction: str, language: Language, plan: Plan) -> str:
    """The correction with a verb replaces the command; an object replaces the object it
    names again (the red cup -> the blue cup), else the last object named."""
    if _has_action(correction):
        return correction
    fixed = _referent(correction)
    referents = []
    for clause in _split_steps(before, language):
        step = parse_instruction(clause)
        for query in (step.target, step.destination):
            if query is not None and query.text and query.noun not in (*lx.EN_PRONOUNS,
                                                                         *lx.ZH_PRONOUNS):
                referents.append((clause, query))
    if fixed is None or not referents:
        plan.error = f"I could not tell what '{correction}' corrects"
        return before
    same = [r for r in referents if fixed.noun is not None and r[1].noun == fixed.noun]
    clause, old = (same or referents)[-1]
    new = fixed.text or correction
    if fixed.noun is None and old.noun is not None:  # "…, no, the left one": still the cup
        new = _with_noun(new, old, language)
        if new is None:
            plan.error = f"I could not tell what '{correction}' corrects"
            return before
    return _rebuild(before, clause, _rebuild(clause, old.text, new))


def _with_noun(text: str, old: ObjectQuery, language: Language) -> str | None:
    """"the left one" -> "the left cup"; "左边那个" -> "左边那个杯子"."""
    if language == "zh":
        said = next((w for w, noun in sorted(lx.ZH_NOUNS.items(), key=lambda kv: -len(kv[0]))
                     if noun == old.noun and w in old.text), None)
        return None if said is None else f"{text}{said}"
    if re.search(r"\bones?\b", text):
        return re.sub(r"\bones?\b", old.noun or "", text, count=1)
    return f"{text} {old.noun}"


def _rebuild(clause: str, old: str, new: str) -> str:
    at = clause.rfind(old)
    return clause if at < 0 else clause[:at] + new + clause[at + len(old):]


# ------------------------------------------------------------------------------ steps
def _split_steps(norm: str, language: Language) -> list[str]:
    if language == "zh":
        match = _ZH_FIRST_THEN.match(norm)
        if match:
            return [*_split_zh(match["first"]), *_split_zh(match["later"])]
        return _split_zh(norm)
    for pattern, order in ((_EN_AFTER_LEADING, ("first", "later")),
                           (_EN_AFTER, ("first", "later")), (_EN_BEFORE, ("first", "later"))):
        match = pattern.match(norm)
        if match and all(_has_action(match[name]) for name in order):
            return [*_split_en(match[order[0]]), *_split_en(match[order[1]])]
    return _split_en(_EN_FIRST.sub("", norm))


def _split_en(text: str) -> list[str]:
    clauses: list[str] = []
    for piece in _EN_THEN.split(text):
        piece = piece.strip(" ,.;!")
        if clauses and _pick_referent(piece, "en") and _is_pick(clauses[-1]):
            piece = f"pick up {piece}"  # "pick up the red cup and then the blue one"
        for part in _split_on_and(piece):
            clauses.extend(_split_picked_referents(part, "en") if _is_pick(part)
                           or " and " in part else [part])
    return [c.strip(" ,.;!") for c in clauses if c.strip(" ,.;!")]


def _split_on_and(text: str) -> list[str]:
    """Split at "and" / a comma only where a new verb starts ("grab the cup and the bowl" is
    one step)."""
    pieces: list[str] = []
    rest = text
    while True:
        match = next((m for m in _EN_AND.finditer(rest) if _has_action(rest[m.end():])), None)
        if match is None:
            pieces.append(rest)
            return pieces
        pieces.append(rest[:match.start()])
        rest = rest[match.end():]


def _split_zh(text: str) -> list[str]:
    clauses = []
    for piece in _ZH_THEN.split(text):
        parts = _ZH_COMMA.split(piece)
        merged = [parts[0]]
        for part in parts[1:]:
            if _has_action(part) and _has_action(merged[-1]):
                merged.append(part)
            else:  # a comma inside one step ("除了红色的杯子以外，拿杯子")
                merged[-1] = f"{merged[-1]}，{part}"
        for part in merged:
            clauses.extend(_split_picked_referents(part, "zh"))
    return [c.strip(" ，,。；;！!") for c in clauses if c.strip(" ，,。；;！!")]


def _has_action(clause: str) -> bool:
    clause = clause.strip(" ,.;!，。")
    if not clause:
        return False
    language: Language = "zh" if _CJK_RE.search(clause) else "en"
    if isinstance(speech_acts.classify(clause, language), speech_acts.Refusal):
        return True  # "…and kick the dog" is a step of its own (refused with the sentence)
    clause, _recall = recall_rewrite(clause, language)
    negative = _EN_NEGATIVE.match(clause) or _ZH_NEGATIVE.match(clause)
    if negative and _has_action(negative["rest"]):
        return True  # "don't grab the cup"; "不要蓝色的" is an exclusion, not a clause
    step = parse_instruction(clause)
    return step.error is None and step.action is not None


def _link_steps(plan: Plan) -> None:
    """Later steps may say "it": the object an earlier step acted on.  Picks named one after
    the other share a noun one of them leaves out ("the red and the blue cup", "the red cup and
    the blue one")."""
    picks = [s for s in plan.steps if s.action == "pick" and s.target is not None]
    for index, step in enumerate(picks):
        if step.target.noun is None and not step.target.exclusions:
            # "the blue one" refers back to a noun said before it; only a bare adjective
            # ("grab the red and the blue cup") takes the noun said after it - "grab the red
            # one and then the cup" does not make the red one a cup.
            one = re.search(r"\b(?:one|ones)$", step.text) is not None
            after = [] if one else picks[index + 1:index + 2]
            near = [p.target.noun for p in (picks[index - 1:index] + after)
                    if p.target.noun and p.target.noun not in (*lx.EN_PRONOUNS, *lx.ZH_PRONOUNS)]
            if near and step.target.has_constraints():
                step.target.noun = near[0]
                if not one and step.language == "en":
                    step.text = f"{step.text} {near[0]}"  # "grab the red" -> "... red cup"
                    step.target.text = f"{step.target.text} {near[0]}".strip()
    previous: ObjectQuery | None = None
    for step in plan.steps:
        target = step.target
        if (target is not None and target.noun in (*lx.EN_PRONOUNS, *lx.ZH_PRONOUNS)
                and previous is not None and step.action != "place"):
            step.target = copy.deepcopy(previous)
        if step.target is not None and step.target.noun not in (*lx.EN_PRONOUNS,
                                                                 *lx.ZH_PRONOUNS):
            previous = step.target


# ----------------------------------------------------------------------------- clauses
def recall_rewrite(clause: str, language: Language) -> tuple[str, bool]:
    """(the clause as a plain command, whether it refers to what the robot saw before):
    "where did you see the cup" -> ("where is the cup", True)."""
    for pattern, template in (_ZH_RECALL if language == "zh" else _EN_RECALL):
        match = pattern.match(clause)
        if match and match["obj"].strip():
            return template.format(obj=match["obj"].strip()), True
    said = _ZH_YOU_SAW if language == "zh" else _EN_YOU_SAW
    rewritten = said.sub("", clause)
    return (" ".join(rewritten.split()) if language == "en" else rewritten), rewritten != clause


def _parse_clause(clause: str, language: Language, plan: Plan,
                  several: bool) -> Instruction | None:
    clause, recall = recall_rewrite(clause, language)
    step = _parse_clause_text(clause, language, plan, several)
    if step is not None and recall:
        step.recall = True
    return step


def _parse_clause_text(clause: str, language: Language, plan: Plan,
                       several: bool) -> Instruction | None:
    wish = grasp_words(clause, language)
    if wish is not None and parse_instruction(wish.clause).action == "pick":
        # "pick up the cup from above" / "... by the handle": how to grasp, not which object.
        if wish.unsupported is not None:
            plan.error = grasp_refusal(wish.unsupported)
            return None
        step = _parse_clause_text(wish.clause, language, plan, several)
        if step is not None:
            step.grasp_approach = "top"
        return step
    several_objects = _quantity(clause, language)
    if several_objects is not None:
        quantity, word, rest = several_objects
        said = Plan(text=plan.text, language=language)
        step = _parse_clause_text(rest, language, said, several)
        if said.refusal is not None:  # "don't pick up all the cups": understood, nothing to do
            plan.refusal, plan.negated = said.refusal, said.negated
            return None
        noun = step.target.noun if step is not None and step.target is not None else None
        if said.error or said.suggestion or step is None or noun is None \
                or noun in (*lx.EN_PRONOUNS, *lx.ZH_PRONOUNS) or noun in GENERIC_NOUNS:
            plan.error = (f"'{word}': say which objects, by their name (e.g. 'pick up all the "
                          f"cups')")
            return None
        if step.action != "pick":
            plan.error = (f"'{word}': several objects at once is only for picking them up "
                          f"(e.g. 'pick up all the cups')")
            return None
        step.target.quantity = quantity
        return step
    negative = (_ZH_NEGATIVE if language == "zh" else _EN_NEGATIVE).match(clause)
    step = parse_instruction(clause)
    if negative and not (step.error is None and step.action == "stop"):  # "别动" is stop
        if isinstance(speech_acts.classify(negative["rest"], language), speech_acts.Refusal):
            # "don't kick the dog": understood; nothing to do
            plan.refusal = f"you asked me not to {negative['rest']}: nothing to do, no goal sent"
            return None
        negated = _parse_clause(negative["rest"], language, Plan(text=clause), several)
        if negated is None or negated.action is None:
            plan.error = f"I don't understand what not to do in '{clause}'"
            return None
        plan.negated = negated
        what = negated.target.text if negated.target and negated.target.text else "that"
        plan.refusal = (f"you asked me not to {negated.action} {what}: nothing to do, no goal "
                        f"sent")
        return None
    if step.error is None and step.action == "stop":
        return step  # "do not move", "别动": stop, whatever words it is said with
    act = speech_acts.classify(clause, language) if several else None
    if isinstance(act, speech_acts.Refusal):  # "grab the cup and kick the dog": none of it
        plan.error = act.message
        return None
    if isinstance(act, speech_acts.Question):
        plan.error = f"ask a question on its own, not as a step ('{clause}')"
        return None
    head, exclusions = _take_exclusions(clause, language)
    if exclusions is None:
        plan.error = f"I don't understand the exclusion in '{clause}'"
        return None
    if head is not None and head != clause:
        step = parse_instruction(head) if head.strip() else Instruction(
            text=clause, is_followup=True, target=ObjectQuery(text=""))
        if step.error and exclusions:
            # "grab anything except the truck": the verb with no object of its own - any object
            # but the excluded ones.  (An unknown stand-in noun lets the clause parser find the
            # verb; the stand-in is dropped at once.)
            with_object = parse_instruction(f"{head} zzobject")
            if with_object.error is None and with_object.action not in (None, "stop"):
                step = dataclasses.replace(with_object, target=ObjectQuery(text=head))
    if step.error:
        _explain(step, clause, language, plan)
        return None
    if several and step.action is None:
        suggestion = _suggest_verb(clause) if language == "en" else None
        if suggestion is not None:  # "grap the cup and put it on the table"
            wrong, right, fixed = suggestion
            plan.suggestion = fixed
            plan.error = f"I don't know the word '{wrong}'. Did you mean '{right}'?"
            return None
        first = _first_word(clause, language)
        plan.error = (f"I don't know the word '{first}' in '{clause}'" if first else
                      f"'{clause}' is not a step I can do (no verb)")
        return None
    if exclusions:
        if step.target is None:
            step.target = ObjectQuery(text="")
        step.target.exclusions.extend(exclusions)
    _check_words(step, clause, plan)
    if language == "zh" and not plan.error:
        nouns = [q.noun for q in _queries(step) if q.noun]
        unplaced = zh_words.unplaced(clause, _used_words(step), nouns)
        if unplaced:
            plan.error = f"I don't know the word '{unplaced[0]}' (in '{clause}')"
    return None if plan.suggestion or plan.error else step


def _quantity(clause: str, language: Language) -> tuple[str, str, str] | None:
    """("all" | "both", the word said, the clause without it) for "pick up all the cups",
    "grab both cups", "拿起所有的杯子"; None when the clause has none."""
    if language == "zh":
        match = _ZH_QUANTITY.search(clause)
        if match is None or match["q"] == "都" and not re.search(r"都(?:拿|抓|取|捡)", clause):
            return None
        rest = (clause[:match.start()] + clause[match.end():]).replace("都", "")
        return ("both" if match["q"] in _ZH_BOTH else "all"), match["q"], rest
    match = _EN_QUANTITY.search(clause)
    if match is None:
        return None
    word = match["q"].split()[0]
    rest = " ".join((clause[:match.start()] + "the " + clause[match.end():]).split())
    return ("both" if word == "both" else "all"), word, rest


def _pick_referent(text: str, language: Language) -> bool:
    """Is ``text`` (no verb of its own) an object a pick's verb can take ("the blue cup")?"""
    text = text.strip(" ,.;!，。")
    if not text or _has_action(text):
        return False
    step = parse_instruction(f"拿起{text}" if language == "zh" else f"pick up {text}")
    return step.error is None and step.action == "pick" and step.target is not None \
        and step.target.quantity is None and not step.target.is_empty()


def _is_pick(clause: str, plain: bool = False, noun: bool = False) -> bool:
    """Is ``clause`` a pick?  ``plain``: of an object without a relation ("the cup next to the
    bowl and the plate" may relate the cup to both: not split); ``noun``: that names its noun."""
    step = parse_instruction(clause.strip(" ,.;!，。"))
    return step.error is None and step.action == "pick" and not (
        plain and step.target is not None and step.target.relation is not None) and not (
        noun and (step.target is None or step.target.noun is None))


def _split_picked_referents(text: str, language: Language) -> list[str]:
    """A pick of several objects named one by one ("grab the cup and the bowl", "pick up the
    red cup and then the blue one", "拿起杯子和碗") -> one pick clause per object."""
    joiner = _ZH_AND if language == "zh" else _EN_AND
    verb = "拿起" if language == "zh" else "pick up "
    for match in joiner.finditer(text):
        left, right = text[:match.start()], text[match.end():]
        if language == "en" and not _EN_DETERMINER.match(right.strip()):
            continue  # "the red and blue cup" may be one two-coloured cup: not split
        if _EXCLUDING.search(left):
            continue  # "the cup except the red one and the blue one": both are exclusions
        shared = language == "en" and _is_pick(f"{left} {_noun_word(right, language)}",
                                               plain=True)
        if _pick_referent(right, language) and (_is_pick(left, plain=True, noun=True)
                                                or shared):
            return [*_split_picked_referents(left, language), f"{verb}{right.strip()}"]
    return [text]


def _noun_word(referent: str, language: Language) -> str:
    """The last word of a referent ("cup" of "the blue cup"): what "the red and the blue cup"
    shares."""
    words = referent.split()
    return words[-1] if words and language == "en" else ""


def _take_exclusions(clause: str, language: Language) -> tuple[str | None,
                                                                list[ObjectQuery] | None]:
    """(the clause without its exclusion, the excluded referents); (None, []) when there is
    none; (.., None) when an exclusion does not parse."""
    if language == "zh":
        for pattern in _ZH_EXCLUDE:
            match = pattern.match(clause)
            if match:
                excluded = [_referent(part) or _referent(part + "的")
                            for part in _ZH_LIST.split(match["excl"]) if part]
                head = (match["head"] + match["tail"]).strip(" ，,")
                return head, None if not excluded or None in excluded else excluded
        return None, []
    only = _EN_ONLY_EXCLUSION.match(clause)
    if only:
        return "", _referents(only["excl"])
    for pattern in _EN_EXCLUDE:
        match = pattern.match(clause)
        if match and match["head"].strip():
            return _EN_ANY_THING.sub("thing", match["head"]), _referents(match["excl"])
    return None, []


def _referents(text: str) -> list[ObjectQuery] | None:
    """"the red one and the blue one" -> two referents (None if any does not parse)."""
    parts = [p for p in _EN_LIST.split(text) if p.strip(" ,")]
    found = [_referent(part) for part in parts]
    return None if not found or any(f is None for f in found) else found  # type: ignore[misc]


def _referent(text: str) -> ObjectQuery | None:
    """An excluded referent: "the red one", "red", "the bicycle", "红色的"."""
    text = text.strip(" ,.;!，。")
    parsed = parse_instruction(text)
    if parsed.error is None and parsed.is_followup and parsed.target is not None:
        return parsed.target
    if parsed.error is None and parsed.action is None and parsed.target is not None:
        return parsed.target
    # An object the lexicon does not know ("the unicorn") is still an object: grounding will
    # say it cannot see it.
    if re.search(r"[,，;；]", text) or _has_action(text):
        return None  # more than one object phrase: not one referent
    as_object = parse_instruction(f"find {text}")
    if as_object.error is None and as_object.target is not None and as_object.target.noun:
        return as_object.target
    return None


def _explain(step: Instruction, clause: str, language: Language, plan: Plan) -> None:
    """A clause the single-clause parser rejected: a typo of a verb, or the parser's reason."""
    suggestion = _suggest_verb(clause) if language == "en" else None
    if suggestion is not None:
        wrong, right, fixed = suggestion
        plan.suggestion = fixed
        plan.error = f"I don't know the word '{wrong}'. Did you mean '{right}'?"
        return
    first = _first_word(clause, language)
    if step.error and step.error.startswith("no recognisable command") and first:
        plan.error = (f"I don't know the word '{first}' (no command starts with it; try e.g. "
                      f"'grab the red cup' or '抓取红色杯子')")
        return
    plan.error = step.error


def _first_word(clause: str, language: Language) -> str | None:
    """The clause's first word when nothing knows it (None when it is a known word)."""
    if language == "zh":
        words = zh_words.segment(clause)
        first = words[0] if words else ""
        return first if first and first not in zh_words.known_words() else None
    words = clause.split()
    first = words[0].strip(",.;!?") if words else ""
    known = (first in lx.COLORS or first in lx.SIZES or _known_noun(first)
             or first in lx.EN_DETERMINERS or any(a.split()[0] == first for a in lx.EN_ACTIONS)
             or any(p.split()[0] == first for p in lx.EN_POLITE_PREFIXES))
    return None if known or not first else first


def _check_words(step: Instruction, clause: str, plan: Plan) -> None:
    """A follow-up whose "verb" is a typo ("grap the cup" reads as an answer), and words one
    edit from a known colour or noun, become suggestions."""
    if step.is_followup and step.target is not None:
        first = clause.split()[0] if clause.split() else ""
        suggestion = _suggest_verb(clause)
        if suggestion is not None and first not in lx.COLORS and first not in lx.SIZES:
            wrong, right, fixed = suggestion
            plan.suggestion = fixed
            plan.error = f"I don't know the word '{wrong}'. Did you mean '{right}'?"
            return
        if first and first in step.target.attributes and not _known_noun(first):
            plan.error = (f"I don't know the word '{first}' (no command starts with it; try "
                          f"e.g. 'grab the red cup')")
            return
    for query in _queries(step):
        for word in list(query.attributes) + ([query.noun] if query.noun else []):
            if word in lx.COLORS or word in lx.SIZES or _known_noun(word):
                continue
            close = _close(word, [*lx.COLORS, *lx.SIZES, *lx.EN_KNOWN_NOUNS])
            if len(close) == 1:
                plan.suggestion = _rebuild(clause, word, close[0])
                plan.error = f"I don't know the word '{word}'. Did you mean '{close[0]}'?"
                return
            if close:  # several: name them, and ask for the command again
                options = " or ".join(f"'{c}'" for c in close[:3])
                plan.error = f"I don't know the word '{word}' (did you mean {options}?)"
                return


def _used_words(step: Instruction) -> list[str]:
    """Words the clause parser kept as they were said (unknown nouns, unjudged modifiers): they
    are accounted for - grounding or the session names them."""
    return [w for q in _queries(step) for w in (q.noun, *q.attributes) if w]


def _queries(step: Instruction) -> list[ObjectQuery]:
    found = []
    for query in (step.target, step.destination):
        while query is not None:
            found.append(query)
            found.extend(query.exclusions)
            query = query.anchor
    return found


def _known_noun(word: str) -> bool:
    return (word in lx.EN_KNOWN_NOUNS or word in lx.ZH_NOUNS or word in lx.EN_NOUN_SYNONYMS
            or word in lx.GARMENTS or word in lx.EN_PRONOUNS or word in lx.ZH_PRONOUNS
            or bool(_CJK_RE.search(word)))


def _suggest_verb(clause: str) -> tuple[str, str, str] | None:
    """("grap", "grab", "grab the red cup") when the first word(s) are one typo from exactly
    one verb; "goto" -> "go to"."""
    words = clause.split()
    if not words:
        return None
    verbs = [v for v in lx.EN_ACTIONS if " " not in v or len(v.split()) == 2]
    for n in (2, 1):
        if len(words) < n:
            continue
        said = " ".join(words[:n])
        joined = {v.replace(" ", ""): v for v in verbs}
        if n == 1 and said in joined and joined[said] != said:
            return said, joined[said], " ".join([joined[said], *words[1:]])
        close = _close(said, [v for v in verbs if len(v.split()) == n])
        if close and len({lx.EN_ACTIONS[v] for v in close}) == 1:  # "grab" / "grasp": one action
            known = close[0]
            return said, known, " ".join([known, *words[n:]])
    return None


def _close(word: str, known: list[str]) -> list[str]:
    """Known words within the allowed edits of ``word``, nearest first."""
    if _CJK_RE.search(word) or "'" in word:  # "don't" is not a typo of "donut"
        return []
    allowed = next((edits for length, edits in _MAX_EDITS if len(word) < length), 0)
    if allowed == 0:
        return []
    scored = {k: DamerauLevenshtein.distance(word, k, score_cutoff=allowed) for k in set(known)}
    return sorted((k for k, d in scored.items() if d <= allowed), key=lambda k: (scored[k], k))
