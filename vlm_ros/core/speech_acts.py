"""Sentences that are not commands to move toward something, recognised before a verb is looked
for: questions, statements, harmful acts and requests to keep away.

Each of them has words the clause parser would otherwise take for a command ("do you see a cup"
-> find, "I already picked up the cup" -> pick, "踢狗" -> an answer "the dog") - a confident
wrong goal.  So :func:`classify` runs first on the whole normalised sentence:

* a question the robot can answer from the image - ``is there a dog?``, ``how many cups are
  there?``, ``what colour is the truck?`` (and ``有狗吗``, ``有几个杯子``, ``卡车是什么颜色``) - becomes
  an ``ask`` step: answered, never a goal (:class:`Question`);
* any other question, a statement ("I already picked up the cup", "the cup is red"), an act that
  could hurt or damage ("kick the dog", "throw the cup", "踢狗") and a request to keep away from
  something ("stay away from the dog", "远离那只狗") are refused with the reason, naming the word
  (:class:`Refusal`): the node has no way to express them, and guessing would move the robot.

Where-questions stay ``find`` ("where is the cup?"), polite commands stay commands ("can you
grab the cup?"): those are tried by the clause parser first (:func:`is_unanswerable_question`
only speaks when it found no command).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from vlm_ros.core import lexicon as lx
from vlm_ros.core.types import Language

QuestionKind = Literal["presence", "count", "color"]

ANSWERABLE = ("'is there a …?', 'how many … are there?', 'what colour is the …?' and "
              "'where is the …?'")


@dataclass(frozen=True)
class Question:
    """A question about the image: ``kind`` and the words naming the object asked about."""

    kind: QuestionKind
    object_text: str


@dataclass(frozen=True)
class Refusal:
    """A sentence that must not become a goal; ``message`` says why and names the word."""

    message: str


# ------------------------------------------------------------------------------- questions
_EN_QUESTIONS: tuple[tuple[QuestionKind, re.Pattern[str]], ...] = (
    ("count", re.compile(r"^how many (?P<obj>.+?)(?:\s+(?:are there|is there|do you see|can you "
                         r"see|are (?:on|in|at|near|next to) .+|are visible|do i have))?$")),
    ("color", re.compile(r"^(?:what|which) colou?r (?:is|are|'s) (?P<obj>.+)$")),
    ("color", re.compile(r"^what is the colou?r of (?P<obj>.+)$")),
    ("presence", re.compile(r"^(?:is there|are there|is there any|are there any|do you see|can "
                            r"you see|did you see|do you have|can you spot|do you notice) "
                            r"(?P<obj>.+)$")),
)
_ZH_QUESTIONS: tuple[tuple[QuestionKind, re.Pattern[str]], ...] = (
    ("count", re.compile(r"^(?:这里|那里|桌上|桌子上|图里|画面里)?有(?:几|多少)(?:个|只|辆|把|张|条|台|位)?"
                         r"(?P<obj>.+?)$")),
    ("count", re.compile(r"^(?P<obj>.+?)有(?:几|多少)(?:个|只|辆|把|张|条|台|位)?$")),
    ("color", re.compile(r"^(?P<obj>.+?)(?:是)?什么颜色(?:的)?$")),
    ("presence", re.compile(r"^(?:这里|那里|桌上|桌子上|图里|画面里)?有没有(?P<obj>.+?)$")),
    ("presence", re.compile(r"^(?:你)?(?:看到|看见|发现)(?:了)?(?P<obj>.+?)(?:了)?(?:吗|么|没有|没)$")),
    ("presence", re.compile(r"^(?:这里|那里|桌上|桌子上|图里|画面里)?有(?P<obj>.+?)(?:吗|么|嘛)$")),
)
# "把杯子扔掉", "把狗推倒": the object first, then the harmful verb.
_ZH_HARMFUL_BA_VERBS = ("扔", "丢", "砸", "摔", "踢", "打碎", "打破", "打坏", "打翻", "推倒", "撞",
                        "弄坏", "踩", "烧", "毁", "撕", "捏碎", "压扁")
# Words that open a question (English) or mark one (Chinese).
_EN_QUESTION_START = re.compile(
    r"^(?:what|what's|why|who|whose|whom|how|when|which|is|are|was|were|does|do|did|has|have|"
    r"had|should|shall|may|might|am)\b")
_ZH_QUESTION_MARK = re.compile(r"(?:吗|么|嘛|呢|为什么|什么|谁|怎么|怎样|几|多少|是不是|有没有)")

# ------------------------------------------------------------------------------- statements
_EN_SUBJECT = r"(?:i|we|he|she|they|you|it)"
_EN_STATEMENTS = (
    # "I already picked up the cup", "we have put it away", "he took the cup"
    re.compile(rf"^{_EN_SUBJECT}(?:'ve|'d)?\s+(?:(?:already|just|have|has|had|also|finally|"
               r"already have|have already|just now)\s+)*(?P<verb>(?!need\b|feed\b|speed\b)\w+ed|took|"
               r"put|got|brought|went|"
               r"did|saw|found|gave|left|held|ate|drank|made|moved|threw|broke|"
               r"fetched|grabbed|picked up|placed)\b"),
    # "I am holding the cup", "I like the cup", "we know where it is"
    re.compile(rf"^{_EN_SUBJECT}\s+(?P<verb>am|was|were|like|love|hate|know|think|see|saw|"
               r"have got|own|prefer)\b"),
    # "the cup is red", "this bottle was empty", "my cup is on the table"
    re.compile(r"^(?:the|this|that|these|those|my|your|our|his|her|their)\s+"
               r"(?:(?!that\b|which\b|who\b)[\w-]+\s+){0,3}?"
               r"(?P<verb>is|are|was|were|has|have|looks|seems)\b(?!\s+(?:it|there)\b)"),
)
_ZH_STATEMENTS = (
    # "我已经拿了杯子", "他拿了杯子", "我刚把杯子放到碗里了"
    re.compile(r"^(?:我|我们|他|她|他们|她们|你|你们)(?:已经|刚才|刚刚|刚|都|也|早就)+.+$"),
    re.compile(r"^(?:我|我们|他|她|他们|她们)(?P<verb>[^，,]{1,6}?)了.*$"),
    # "杯子是红色的"
    re.compile(r"^(?!.*什么)(?P<obj>.+?)是.+?的$"),
)

# ------------------------------------------------------------------------ harmful acts
# Verbs the robot never carries out on anything: it would hit, throw, break or hurt.
_EN_HARMFUL = (
    "kick", "hit", "punch", "slap", "strike", "smack", "smash", "break", "throw", "toss", "hurl",
    "fling", "push", "shove", "knock over", "knock down", "knock", "stab", "cut", "crush",
    "squash", "attack", "hurt", "harm", "injure", "kill", "burn", "destroy", "damage", "wreck",
    "bite", "poke", "trip", "run over", "step on", "ram", "bump into", "tip over", "shoot",
    "spill", "drop on", "hammer", "beat", "whack", "tear", "rip", "shake",
)
_EN_HARMFUL_RE = re.compile(
    r"^(?:(?:please|can you|could you|would you|will you|i want you to|go and|now|just|then)\s+)*"
    r"(?P<verb>" + "|".join(sorted(map(re.escape, _EN_HARMFUL), key=len, reverse=True))
    + r")\b\s*(?P<rest>.*)$")
_ZH_HARMFUL = (
    "踢", "揍", "打碎", "打破", "打坏", "打翻", "打倒", "打", "砸", "摔", "扔", "丢", "抛", "推倒",
    "推", "撞", "攻击", "伤害", "弄坏", "弄伤", "踩", "咬", "砍", "刺", "捅", "烧", "毁", "破坏",
    "掀翻", "撕", "碾", "压扁", "捏碎", "泼", "戳",
)
# 打 starts harmless words too (打开 open, 打扫 sweep, 打印 print, 打电话 call).
_ZH_HARMFUL_RE = re.compile(
    r"^(?:请你|请|帮我|你|给我|去)*(?P<verb>"
    + "|".join(sorted(map(re.escape, _ZH_HARMFUL), key=len, reverse=True))
    + r")(?!开|扫|印|电话|招呼|算|包|工)(?P<rest>.*)$")

# ------------------------------------------------------------------------ keep away
_EN_KEEP_AWAY = re.compile(
    r"^(?:(?:please|can you|could you|would you|now|just)\s+)*(?P<verb>(?:stay|keep|get|move|go|"
    r"back|walk|drive|run|steer)\s+(?:well\s+|far\s+)?(?:away|clear)\s+(?:from|of)|avoid|keep "
    r"(?:your )?distance from|keep off|steer clear of|back off from|get away from|keep out of "
    r"the way of)\s+(?P<rest>.+)$")
_ZH_HARMFUL_BA = re.compile(
    r"^(?:请你|请|帮我|你|给我)*(?:把|将)(?P<rest>.+?)(?P<verb>"
    + "|".join(sorted(map(re.escape, _ZH_HARMFUL_BA_VERBS), key=len, reverse=True)) + r").*$")
_ZH_KEEP_AWAY = re.compile(
    r"^(?:请你|请|你|要)*(?P<verb>远离|避开|躲开|躲避|绕开|绕过|回避|离开|不要靠近|别靠近|不要接近|别接近)"
    r"(?P<rest>.+)$")
_ZH_KEEP_AWAY_FAR = re.compile(r"^(?:请你|请|你)*离(?P<rest>.+?)远(?:一)?点(?:儿)?$")


def _object_words(text: str) -> str:
    return text.strip(" ?？!！.。,，") or "that"


def classify(norm: str, language: Language) -> Question | Refusal | None:
    """What ``norm`` (a normalised sentence) is, when it is no command to move toward a thing;
    None: parse it as a command."""
    text = norm.strip()
    asked = text.rstrip(" ?？")
    if language == "zh":
        return _classify_zh(text, asked)
    return _classify_en(text, asked)


def _classify_en(text: str, asked: str) -> Question | Refusal | None:
    for kind, pattern in _EN_QUESTIONS:
        match = pattern.match(asked)
        if match:
            return Question(kind, _object_words(match["obj"]))
    keep_away = _EN_KEEP_AWAY.match(asked)
    if keep_away:
        return _keep_away(keep_away["verb"], _object_words(keep_away["rest"]))
    harmful = _EN_HARMFUL_RE.match(asked)
    if harmful:
        return _harmful(harmful["verb"], _object_words(harmful["rest"]))
    return None


def _classify_zh(text: str, asked: str) -> Question | Refusal | None:
    asked = asked.rstrip("。！!")
    for kind, pattern in _ZH_QUESTIONS:
        match = pattern.match(asked)
        if match and match["obj"].strip():
            return Question(kind, _object_words(match["obj"]))
    keep_away = _ZH_KEEP_AWAY.match(asked) or _ZH_KEEP_AWAY_FAR.match(asked)
    if keep_away:
        verb = keep_away["verb"] if "verb" in keep_away.groupdict() else "离…远点"
        return _keep_away(verb, _object_words(keep_away["rest"]))
    harmful = _ZH_HARMFUL_RE.match(asked) or _ZH_HARMFUL_BA.match(asked)
    if harmful and harmful["rest"].strip():
        return _harmful(harmful["verb"], _object_words(harmful["rest"]))
    return None


def _harmful(verb: str, what: str) -> Refusal:
    return Refusal(f"I won't {verb} {what}: I never hit, push, throw, break or do anything "
                   f"else that could hurt someone or damage something; no goal sent")


def statement(norm: str, language: Language) -> Refusal | None:
    """A statement ("I already picked up the cup", "杯子是红色的"): asked only of a sentence the
    clause parser found no command in - it must not be taken for one, nor for an answer."""
    text = norm.strip()
    if language == "zh":
        asked = text.rstrip(" 。！!")
        if _ZH_QUESTION_MARK.search(asked) or asked.startswith(("不", "别", "就")):
            return None
        for pattern in _ZH_STATEMENTS:
            match = pattern.match(asked)
            if match is None:
                continue
            subject = match.groupdict().get("obj")
            if subject is not None and not any(noun in subject for noun in lx.ZH_NOUNS):
                continue  # "X是…的" says something only of a thing it names
            return _statement(text, match.groupdict().get("verb") or asked[:4])
        return None
    if text.endswith("?"):
        return None
    for pattern in _EN_STATEMENTS:
        match = pattern.match(text.rstrip(" .!"))
        if match:
            return _statement(text, match["verb"])
    return None


def _keep_away(verb: str, what: str) -> Refusal:
    return Refusal(f"'{verb}' {what}: keeping away from something is not a goal I can send (I "
                   f"only make goals toward objects); no goal sent - say 'stop' to halt the robot")


def _statement(text: str, verb: str) -> Refusal:
    return Refusal(f"that sounds like a statement ('{verb}'), not a command: nothing to do, no "
                   f"goal sent")


def is_unanswerable_question(norm: str, language: Language) -> bool:
    """Is ``norm``, which the clause parser could not read as a command, a question?"""
    text = norm.strip()
    if language == "zh":
        return text.endswith(("?", "？")) or bool(_ZH_QUESTION_MARK.search(text))
    return text.endswith("?") or bool(_EN_QUESTION_START.match(text))


UNANSWERABLE = f"I can't answer that question: I answer {ANSWERABLE}"
