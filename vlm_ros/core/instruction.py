"""Text (English or Chinese) -> ``Instruction``; clarification answers; confirmations.

The parser is a small, table-driven shallow parser rather than a grammar: commands to a robot are
short imperative sentences ("grab the red cup", "把红色的杯子放到蓝色的碗里") whose structure is
verb + referring expression (+ destination).  The vocabulary lives in ``lexicon`` tables; the code
here decides *where* in a sentence to look for which table (a few function words that only steer
that decision - articles, "from", "with", Chinese particles - are spelled inline where used).

Two properties matter more than coverage:

* ``parse_instruction`` never raises.  It sits between a microphone / a ROS topic and a robot arm;
  garbage in must give ``Instruction(error=...)`` (status "rejected"), never an exception.
* An unknown *noun* is not an error ("pick up the unicorn" parses; grounding answers not_found),
  but an unknown *sentence* is ("blorp the zzz", "hello there"): without a recognised verb there is
  nothing safe to do.
"""

from __future__ import annotations

import copy
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Generic, TypeVar

from vlm_ros.core import lexicon as lx
from vlm_ros.core.types import Instruction, ObjectQuery

__all__ = ["is_confirmation", "merge_followup", "parse_instruction"]

V = TypeVar("V")

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{_CJK}]")
# English tokens: CJK runs on their own, other words may contain inner hyphens/apostrophes.
_EN_TOKEN_RE = re.compile(f"[{_CJK}]+|[^\\W_{_CJK}]+(?:[-'][^\\W_{_CJK}]+)*")
_LATIN_RE = re.compile(r"[a-z]")
_ZH_SPACE_RE = re.compile(r"(?<![a-z0-9])\s+|\s+(?![a-z0-9])")
_ZH_TRAILING_LATIN_RE = re.compile(r"[a-z][a-z0-9\- ]*$")
_MAX_DEPTH = 3  # nested relations: "the cup next to the bowl on the table"


class _PhraseTable(Generic[V]):
    """Longest-first lookup of multi-word English phrases in a token list."""

    def __init__(self, table: Mapping[str, V] | Iterable[str]) -> None:
        items = table.items() if isinstance(table, Mapping) else ((k, k) for k in table)
        self._by_tokens: dict[tuple[str, ...], V] = {tuple(k.split()): v for k, v in items}
        self._longest = max((len(k) for k in self._by_tokens), default=0)

    def match(self, tokens: Sequence[str], i: int) -> tuple[int, V] | None:
        """(number of tokens, value) of the longest phrase starting at ``tokens[i]``."""
        for n in range(min(self._longest, len(tokens) - i), 0, -1):
            key = tuple(tokens[i : i + n])
            if key in self._by_tokens:
                return n, self._by_tokens[key]
        return None

    def match_end(self, tokens: Sequence[str]) -> int:
        """Length of the longest phrase that ends the token list (0 if none)."""
        for n in range(min(self._longest, len(tokens)), 0, -1):
            if tuple(tokens[len(tokens) - n :]) in self._by_tokens:
                return n
        return 0


class _ZhTable(Generic[V]):
    """Longest-first lookup of Chinese words in unsegmented text."""

    def __init__(self, table: Mapping[str, V] | Iterable[str]) -> None:
        items = table.items() if isinstance(table, Mapping) else ((k, k) for k in table)
        self._table: dict[str, V] = dict(items)
        self._keys = sorted(self._table, key=len, reverse=True)

    def prefix(self, text: str, start: int = 0) -> tuple[str, V] | None:
        for key in self._keys:
            if text.startswith(key, start):
                return key, self._table[key]
        return None

    def suffix(self, text: str) -> tuple[str, V] | None:
        for key in self._keys:
            if text.endswith(key) and len(key) <= len(text):
                return key, self._table[key]
        return None


# English tables
_EN_POLITE_PREFIX = _PhraseTable(lx.EN_POLITE_PREFIXES)
_EN_POLITE_SUFFIX = _PhraseTable(lx.EN_POLITE_SUFFIXES)
_EN_ACTION = _PhraseTable(lx.EN_ACTIONS)
_EN_DEST_PREP = _PhraseTable(lx.EN_DESTINATION_PREPS)
_EN_RELATION = _PhraseTable(lx.EN_RELATIONS)
_EN_LOCATION = _PhraseTable(lx.EN_LOCATIONS)
_EN_ORDINAL = _PhraseTable(lx.EN_ORDINALS)
_EN_ORDINAL_FROM = _PhraseTable(lx.EN_ORDINAL_FROM)
_EN_FROM_END = _PhraseTable(lx.EN_ORDINAL_FROM_END)
_EN_CLOTHING_INTRO = _PhraseTable(lx.EN_CLOTHING_INTROS)
_EN_MULTIWORD_NOUN = _PhraseTable(lx.EN_MULTIWORD_NOUNS)
_EN_FOLLOWUP_PREFIX = _PhraseTable(lx.EN_FOLLOWUP_PREFIXES)
# Chinese tables
_ZH_POLITE_PREFIX = _ZhTable(lx.ZH_POLITE_PREFIXES)
_ZH_POLITE_SUFFIX = _ZhTable(lx.ZH_POLITE_SUFFIXES)
_ZH_ACTION = _ZhTable(lx.ZH_ACTIONS)
_ZH_PLACE_VERB = _ZhTable(lx.ZH_PLACE_VERBS)
_ZH_PLACE_DROP = _ZhTable(lx.ZH_PLACE_DROP)
_ZH_DEST_POST = _ZhTable(lx.ZH_DESTINATION_POSTPOSITIONS)
_ZH_FIND_SUFFIX = _ZhTable(lx.ZH_FIND_SUFFIXES)
_ZH_FIND_PREFIX = _ZhTable(lx.ZH_FIND_PREFIXES)
_ZH_NAV_SUFFIX = _ZhTable(lx.ZH_NAVIGATE_SUFFIXES)
_ZH_FOLLOWUP_PREFIX = _ZhTable(lx.ZH_FOLLOWUP_PREFIXES)
_ZH_RELATION = _ZhTable(lx.ZH_RELATIONS)
_ZH_RELATION_PREFIX = _ZhTable(lx.ZH_RELATION_PREFIXES)
_ZH_CLOTHING_VERB = _ZhTable(lx.ZH_CLOTHING_VERBS)
_ZH_NOUN = _ZhTable(lx.ZH_NOUNS)
_ZH_GENERIC_HEAD = _ZhTable(lx.ZH_GENERIC_HEADS)
_ZH_NUMERAL = _ZhTable(lx.ZH_NUMERALS)
_ZH_ORDINAL_FROM = _ZhTable(lx.ZH_ORDINAL_FROM)
_COLOR_ZH = _ZhTable({k: v for k, v in lx.COLORS.items() if _CJK_RE.search(k)})
_GARMENT_ZH = _ZhTable({k: v for k, v in lx.GARMENTS.items() if _CJK_RE.search(k)})
# One table of everything that may modify a Chinese noun, so the longest word wins across kinds
# ("最近" is a location, not "最" + "近"; "粉红" is pink, not "粉" + "红").
_ZH_MODIFIER: _ZhTable[tuple[str, object]] = _ZhTable({
    **{k: ("skip", None) for k in (*lx.ZH_DETERMINERS, *lx.ZH_MEASURE_WORDS)},
    **{k: ("size", v) for k, v in lx.SIZES.items() if _CJK_RE.search(k)},
    **{k: ("location", v) for k, v in lx.ZH_LOCATIONS.items()},
    **{k: ("color", v) for k, v in lx.COLORS.items() if _CJK_RE.search(k)},
    **{k: ("last", -1) for k in lx.ZH_LAST},
    lx.ZH_FROM_END: ("from_end", None),
    "第": ("ordinal", None),
})
_ZH_PUNCT_RE = re.compile("[" + re.escape(lx.ZH_PUNCTUATION) + "]")


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def parse_instruction(text: str) -> Instruction:
    """Parse one command or clarification answer; never raises.

    Bad input (empty, too long, control characters, binary garbage, no recognisable command)
    returns ``Instruction(error=<short reason>)`` so the caller can answer status "rejected".
    """
    try:
        return _parse(text)
    except Exception as exc:  # the parser must never take the node down
        return Instruction(text=_display_text(text), error=f"internal parser error ({exc!r:.80})")


def merge_followup(pending: Instruction, answer: Instruction) -> Instruction:
    """The pending command with a clarification answer's constraints merged into its target.

    "grab the cup" + "the left one" -> grab the cup, location left.  The answer wins where both
    say something; the noun stays the pending one unless the answer names a noun.  An ``answer``
    that is not a follow-up (a new command, or an error) is returned unchanged: it replaces the
    pending command rather than refining it.
    """
    if not answer.is_followup or answer.error:
        return answer
    merged = copy.deepcopy(pending)
    merged.is_followup = False
    merged.error = None
    extra = answer.target
    if extra is None:
        return merged
    base = merged.target if merged.target is not None else ObjectQuery()
    # A location and an ordinal are two ways of picking one of several; the answer's replaces
    # the pending one ("the cup on the left" + "the second one" -> the second cup).
    if extra.ordinal is not None:
        base.location = None
    if extra.location is not None:
        base.ordinal = base.ordinal_from = None
    for name in ("color", "color_part", "size", "location", "ordinal", "ordinal_from",
                 "relation"):
        value = getattr(extra, name)
        if value is not None:
            setattr(base, name, value)
    if extra.color is not None and extra.color_part is None:
        base.color_part = None  # "the red one" recolours the whole object
    if extra.relation is not None:
        base.anchor = copy.deepcopy(extra.anchor)
    if extra.noun is not None:
        base.noun = extra.noun
    base.attributes = list(dict.fromkeys([*base.attributes, *extra.attributes]))
    base.exclusions = [*base.exclusions, *copy.deepcopy(extra.exclusions)]
    base.text = f"{base.text}, {extra.text}" if base.text else extra.text
    merged.target = base
    return merged


def is_confirmation(text: str) -> bool | None:
    """yes/confirm/确认 -> True, no/cancel/取消 -> False, anything else -> None.

    Used by a confirm-before-motion mode: only an unmistakable answer moves (or cancels) the robot.
    The whole answer, or its first clause ("no, the left one"), must be a known word.
    """
    if not isinstance(text, str) or len(text) > lx.MAX_COMMAND_CHARS:
        return None
    norm = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")
    clauses = [c.strip() for c in re.split(r"[,.!?;:，。！？；：、]+", norm) if c.strip()]
    for candidate in (" ".join(norm.split()).strip(" ,.!?;:，。！？；：、"), *clauses[:1]):
        candidate = _strip_confirmation_politeness(candidate)
        if candidate in lx.CONFIRM_YES:
            return True
        if candidate in lx.CONFIRM_NO:
            return False
    return None


def _strip_confirmation_politeness(text: str) -> str:
    tokens = text.split()
    while tokens and (n := _EN_POLITE_SUFFIX.match_end(tokens)) and n < len(tokens):
        tokens = tokens[:-n]
    text = " ".join(tokens)
    for filler in ("请", "吧", "了", "啊"):
        if len(text) > len(filler):
            text = text.removeprefix(filler) if filler == "请" else text.removesuffix(filler)
    return text


# --------------------------------------------------------------------------------------------
# Validation and dispatch
# --------------------------------------------------------------------------------------------


def _display_text(text: object) -> str:
    """What to echo back as ``Instruction.text``: never a megabyte, never raises."""
    if not isinstance(text, str):
        return ""
    stripped = text.strip()
    return stripped if len(stripped) <= 200 else stripped[:200] + "…"


def _input_error(text: str) -> str | None:
    """A short reason why ``text`` cannot be a command, or None if it may be one."""
    if len(text) > lx.MAX_COMMAND_CHARS:
        return f"command too long ({len(text)} characters, at most {lx.MAX_COMMAND_CHARS})"
    if not text.strip():
        return "empty command"
    if "\ufffd" in text:
        return "command contains undecodable (binary) data"
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cc" and ch not in "\t\n\r":
            return "command contains control characters"
        if category in ("Cs", "Co", "Cn"):
            return "command contains binary or unassigned characters"
    if not any(unicodedata.category(ch).startswith("L") for ch in text):
        return "command contains no words"
    return None


def _parse(text: str) -> Instruction:
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            return Instruction(text="", error="command is not valid UTF-8 text")
    if not isinstance(text, str):
        return Instruction(text="", error=f"command must be text, not {type(text).__name__}")
    shown = _display_text(text)
    error = _input_error(text)
    if error:
        return Instruction(text=shown, error=error)
    norm = unicodedata.normalize("NFKC", text.translate({ord(c): None for c in lx.INVISIBLE_CHARS}))
    norm = " ".join(norm.lower().replace("\u2019", "'").split())
    language = "zh" if _CJK_RE.search(norm) else "en"
    if language == "en":
        result = _parse_en(norm)
    else:
        # Mixed script ("grab the 红色 cup"): try the parser of the script the command starts
        # with, then the other; the first one that finds a command wins.
        parsers = [_parse_zh, _parse_en] if _CJK_RE.match(norm) else [_parse_en, _parse_zh]
        if not _LATIN_RE.search(norm):
            parsers = [_parse_zh]
        results = [parser(norm) for parser in parsers]
        result = next((r for r in results if not isinstance(r, str)), results[0])
    if isinstance(result, str):
        return Instruction(text=shown, language=language, error=result)
    result.text = shown
    result.language = language
    return result


def _needs_target_error(action: str) -> str:
    return f"'{action}' needs an object, e.g. '{lx.ACTION_EXAMPLES.get(action, action)}'"


def _finish(action: str, target: ObjectQuery | None) -> Instruction | str:
    if action != "stop" and (target is None or (target.is_empty() and not target.attributes)):
        return _needs_target_error(action)
    return Instruction(text="", action=action, target=target if action != "stop" else None)


def _followup(target: ObjectQuery, known_noun: bool) -> Instruction | str:
    """A clarification answer names a constraint or a noun we know; anything else is not
    understood ("hello there", "blorp the red zzz")."""
    if known_noun or (target.has_constraints() and target.noun is None):
        return Instruction(text="", action=None, target=target, is_followup=True)
    return "no recognisable command (try e.g. 'grab the red cup' or '抓取红色杯子')"


# --------------------------------------------------------------------------------------------
# English
# --------------------------------------------------------------------------------------------


def _en_tokens(text: str) -> list[str]:
    words = [lx.EN_CONTRACTIONS.get(w, w) for w in text.split()]
    return _EN_TOKEN_RE.findall(" ".join(words))


def _strip_en_politeness(tokens: list[str]) -> list[str]:
    tokens = [t for t in tokens if t != "please"]
    changed = True
    while changed and tokens:
        changed = False
        if (m := _EN_POLITE_PREFIX.match(tokens, 0)) and m[0] < len(tokens):
            tokens, changed = tokens[m[0] :], True
        n = _EN_POLITE_SUFFIX.match_end(tokens)
        if n and n < len(tokens):
            tokens, changed = tokens[:-n], True
    return tokens


def _parse_en(text: str) -> Instruction | str:
    tokens = _strip_en_politeness(_en_tokens(text))
    if not tokens:
        return "no recognisable command"
    found = _EN_ACTION.match(tokens, 0)
    if found is None:
        if (m := _EN_FOLLOWUP_PREFIX.match(tokens, 0)) and m[0] < len(tokens):
            tokens = tokens[m[0] :]
        target = _parse_np_en(tokens)
        return _followup(target, _en_known(target.noun))
    length, action = found
    rest = tokens[length:]
    if action == "stop":
        return Instruction(text="", action="stop")
    particles = lx.EN_PARTICLES.get(action, frozenset())
    if action == "place":
        rest = [t for t in rest if t not in particles]
        return _parse_en_place(rest)
    if action == "look" and rest and rest[0] in particles:
        rest = rest[1:]
    while rest and rest[-1] in particles:
        rest = rest[:-1]
    if not rest:
        return _needs_target_error(action)
    return _finish(action, _parse_np_en(rest))


def _en_known(noun: str | None) -> bool:
    return noun is not None and (noun in lx.EN_KNOWN_NOUNS or noun in lx.ZH_NOUNS.values())


def _is_location_here(tokens: Sequence[str], i: int, other_length: int) -> bool:
    """True when a location phrase at ``i`` is longer than another reading of it.

    "on the left" (location) vs "on" (relation/destination); "near me" (location) vs "near".
    """
    loc = _EN_LOCATION.match(tokens, i)
    return loc is not None and loc[0] > other_length


def _parse_en_place(rest: list[str]) -> Instruction | str:
    """put/place X in/on Y: the first preposition whose right side is a real object wins."""
    for i in range(len(rest)):
        prep = _EN_DEST_PREP.match(rest, i)
        if prep is None:
            continue
        length, relation = prep
        rel = _EN_RELATION.match(rest, i)
        if (rel is not None and rel[0] > length) or _is_location_here(rest, i, length):
            continue  # "on the left of the bowl", "in front of", "on the left"
        dest_tokens = rest[i + length :]
        destination = _parse_np_en(dest_tokens) if dest_tokens else None
        if destination is None or not _is_object(destination):
            continue  # "put the person in the red shirt ..." is clothing, not a destination
        target = _parse_np_en(rest[:i]) if i > 0 else None
        return Instruction(text="", action="place", target=target, destination=destination,
                           destination_relation=relation)
    if not rest:
        return _needs_target_error("place")
    target = _parse_np_en(rest)
    if target.relation not in (None, "in", "on"):
        # "put the cup next to the laptop": a destination we cannot express (only in/on);
        # refusing beats picking "the cup next to the laptop" and dropping it where it is.
        return "I can only put things in or on something (e.g. 'put the cup on the table')"
    return Instruction(text="", action="place", target=target)


def _is_object(query: ObjectQuery) -> bool:
    """Whether a phrase names a thing that can be an anchor or destination (not "the left",
    not a pronoun, not a garment)."""
    return query.noun is not None and query.noun not in lx.EN_PRONOUNS and (
        query.noun not in lx.GARMENTS
    )


def _parse_np_en(tokens: Sequence[str], depth: int = 0) -> ObjectQuery:
    """An English referring expression -> ObjectQuery (noun may be None or unknown)."""
    tokens = list(tokens)
    query = ObjectQuery(text=" ".join(tokens))
    if len(tokens) == 1 and tokens[0] in lx.EN_PRONOUNS:
        query.noun = tokens[0]
        return query
    tokens, from_where, from_end = _take_en_ordinal_from(tokens)
    tokens = _take_en_clothing(tokens, query)
    tokens = _take_en_relation(tokens, query, depth)
    _fill_en_head(tokens, query)
    _settle_ordinal(query, from_where, from_end)
    return query


def _take_en_ordinal_from(tokens: list[str]) -> tuple[list[str], str | None, bool]:
    """Remove "from the left" / "from the end" / "(second) to last".

    Returns the remaining tokens, the side counting starts from (None if not said) and whether
    counting starts from the far end ("second to last", "second from the end").
    """
    for i, token in enumerate(tokens):
        if token in ("from", "counting"):
            j = i + 1
            while j < len(tokens) and tokens[j] in ("from", "the"):
                j += 1
            if m := _EN_ORDINAL_FROM.match(tokens, j):
                return tokens[:i] + tokens[j + m[0] :], m[1], False
            if j < len(tokens) and tokens[j] in lx.EN_FROM_END_WORDS:
                return tokens[:i] + tokens[j + 1 :], None, True
        elif i > 0 and _is_counting_word(tokens[i - 1]) and (m := _EN_FROM_END.match(tokens, i)):
            return tokens[:i] + tokens[i + m[0] :], None, True
    return tokens, None, False


def _is_counting_word(token: str) -> bool:
    return lx.EN_ORDINALS.get(token, -1) > 0


def _take_en_clothing(tokens: list[str], query: ObjectQuery) -> list[str]:
    """"in the blue jacket" / "wearing a red shirt" / "with a white hat" -> color + part."""
    for i in range(1, len(tokens)):
        intro = _EN_CLOTHING_INTRO.match(tokens, i)
        if intro is None:
            continue
        j = i + intro[0]
        while j < len(tokens) and tokens[j] in ("a", "an", "the"):
            j += 1
        color = lx.COLORS.get(tokens[j]) if j < len(tokens) else None
        k = j + 1 if color else j
        garments = []
        while k < len(tokens) and tokens[k] in lx.GARMENTS:
            garments.append(lx.GARMENTS[tokens[k]])
            k += 1
            # "a red shirt and blue jeans": further garments become attributes only
            nxt = k
            while nxt < len(tokens) and (tokens[nxt] in ("and", "a", "an", "with")
                                         or tokens[nxt] in lx.COLORS):
                nxt += 1
            if nxt > k and nxt < len(tokens) and tokens[nxt] in lx.GARMENTS:
                k = nxt
        if garments:
            query.color = color or query.color
            query.color_part = garments[0][1] if color else query.color_part
            query.attributes.extend(g for g, _ in garments)
            return tokens[:i] + tokens[k:]
        if color and k == len(tokens) and tokens[i] in ("in", "wearing", "dressed"):
            query.color = color  # "the person in red"
            return tokens[:i]
    return tokens


def _take_en_relation(tokens: list[str], query: ObjectQuery, depth: int) -> list[str]:
    """Split "<head> <relation> <anchor>" at the first relation whose anchor is an object."""
    if depth >= _MAX_DEPTH:
        return tokens
    for i in range(1, len(tokens)):
        rel = _EN_RELATION.match(tokens, i)
        if rel is None or _is_location_here(tokens, i, rel[0]):
            continue
        head = [t for t in tokens[:i] if t not in lx.EN_DETERMINERS]
        anchor_tokens = tokens[i + rel[0] :]
        if not head or not anchor_tokens:
            continue
        anchor = _parse_np_en(anchor_tokens, depth + 1)
        if not _is_object(anchor):
            continue
        query.relation, query.anchor = rel[1], anchor
        return tokens[:i]
    return tokens


def _fill_en_head(tokens: list[str], query: ObjectQuery) -> None:
    """Modifiers (colour, size, location, ordinal) and the head noun of a simple phrase."""
    content: list[str] = []  # words that are none of the modifiers, in order
    colors: list[tuple[int, str]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if m := _EN_ORDINAL.match(tokens, i):
            query.ordinal = m[1]
            i += m[0]
        elif m := _EN_LOCATION.match(tokens, i):
            if query.location is None:
                query.location = m[1]
            else:  # a second position is kept as said, so the answer can name it
                query.attributes.append(" ".join(tokens[i:i + m[0]]))
            i += m[0]
        elif m := _EN_MULTIWORD_NOUN.match([_singular(t) for t in tokens[i : i + 4]], 0):
            content.append(" ".join(tokens[i : i + m[0]]))
            i += m[0]
        elif token in lx.SIZES:
            query.size = lx.SIZES[token]
            i += 1
        elif token in lx.COLORS:
            colors.append((i, token))
            i += 1
        else:
            if token not in lx.EN_DETERMINERS and token != "and":
                content.append(token)
            i += 1
    if not content and colors and colors[-1][0] == len(tokens) - 1 and _en_known(
        _canonical_en_noun(colors[-1][1])[0]
    ):
        content.append(colors.pop()[1])  # "the orange": a fruit, not a colour
    if colors:
        query.color = lx.COLORS[colors[0][1]]
        # One colour is judged per object: a second one is kept, so the answer can name it.
        query.attributes.extend(word for _, word in colors[1:])
    if not content:
        return
    head = content[-1]
    query.attributes = [*content[:-1], *query.attributes]
    if head in lx.EN_GENERIC_HEADS:
        return
    noun, said_as = _canonical_en_noun(head)
    query.noun = noun
    if said_as:
        query.attributes.append(said_as)


def _canonical_en_noun(word: str) -> tuple[str, str | None]:
    """(canonical noun, the word as said when it adds information, e.g. "man" for person)."""
    if word in lx.ZH_NOUNS:  # a Chinese noun inside an English sentence
        return lx.ZH_NOUNS[word], None
    singular = _singular(word)
    noun = lx.EN_NOUN_SYNONYMS.get(word) or lx.EN_NOUN_SYNONYMS.get(singular) or singular
    said_as = singular if noun == "person" and singular not in ("person", "people") else None
    return noun, said_as


def _singular(word: str) -> str:
    if word in lx.EN_IRREGULAR_PLURALS:
        return lx.EN_IRREGULAR_PLURALS[word]
    if " " in word:
        *first, last = word.split(" ")
        return " ".join([*first, _singular(last)])
    if word in lx.EN_INVARIANT_NOUNS or word in lx.EN_KNOWN_NOUNS or len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _settle_ordinal(query: ObjectQuery, from_where: str | None, from_end: bool) -> None:
    """Decide where an ordinal counts from; a location next to an ordinal names that side."""
    if query.ordinal is None:
        return
    if from_where is None and query.location in lx.LOCATION_TO_ORDINAL_FROM:
        from_where = lx.LOCATION_TO_ORDINAL_FROM[query.location]
        query.location = None
    from_where = from_where or lx.DEFAULT_ORDINAL_FROM
    if from_end:
        from_where = lx.OPPOSITE_ORDINAL_FROM[from_where]
    query.ordinal_from = from_where


# --------------------------------------------------------------------------------------------
# Chinese
# --------------------------------------------------------------------------------------------


def _strip_zh_politeness(text: str) -> str:
    for filler in lx.ZH_FILLERS:
        text = text.replace(filler, "")
    changed = True
    while changed and text:
        changed = False
        if (m := _ZH_POLITE_PREFIX.prefix(text)) and len(m[0]) < len(text):
            text, changed = text[len(m[0]) :], True
        if (m := _ZH_POLITE_SUFFIX.suffix(text)) and len(m[0]) < len(text):
            text, changed = text[: -len(m[0])], True
    return text


def _parse_zh(text: str) -> Instruction | str:
    text = _ZH_PUNCT_RE.sub(" ", text)
    text = " ".join(_ZH_SPACE_RE.sub("", text).split())
    text = _strip_zh_politeness(text)
    if not text:
        return "no recognisable command"
    if (m := _ZH_ACTION.prefix(text)) and m[1] == "stop":
        return Instruction(text="", action="stop")
    if text[0] in lx.ZH_PLACE_OBJECT_MARKERS and len(text) > 1:
        return _parse_zh_disposal(text[1:])
    if m := _ZH_PLACE_VERB.prefix(text):  # "放到桌子上": the held object
        return _parse_zh_destination(None, text[len(m[0]) :], m[1])
    if m := _ZH_PLACE_DROP.prefix(text):  # "放下杯子"
        return _finish("place", _parse_np_zh(text[len(m[0]) :]))
    if (suffix := _ZH_FIND_SUFFIX.suffix(text)) and len(suffix[0]) < len(text):
        subject = text[: -len(suffix[0])]  # "猫在哪里", "找手机在哪里"
        if (verb := _ZH_ACTION.prefix(subject)) and verb[1] == "find" and verb[0] != subject:
            subject = subject[len(verb[0]) :]
        return _finish("find", _parse_np_zh(subject))
    if (m := _ZH_FIND_PREFIX.prefix(text)) and len(m[0]) < len(text):
        return _finish("find", _parse_np_zh(text[len(m[0]) :]))
    if m := _ZH_ACTION.prefix(text):
        word, action = m
        rest = text[len(word) :]
        while action == "navigate" and (suffix := _ZH_NAV_SUFFIX.suffix(rest)) and len(
            suffix[0]
        ) < len(rest):
            rest = rest[: -len(suffix[0])]
        if not rest:
            return _needs_target_error(action)
        return _finish(action, _parse_np_zh(rest))
    if (m := _ZH_FOLLOWUP_PREFIX.prefix(text)) and len(m[0]) < len(text):
        text = text[len(m[0]) :]
    target = _parse_np_zh(text)
    return _followup(target, _zh_known(text) or _en_known(target.noun))


def _parse_zh_disposal(body: str) -> Instruction | str:
    """把/将 X <verb> ...: "把苹果放到碗里" (place) or "把杯子拿起来" (any other verb)."""
    for i in range(1, len(body)):
        if m := _ZH_PLACE_VERB.prefix(body, i):
            target = _parse_np_zh(body[:i])
            after = body[i + len(m[0]) :]
            if _ZH_PLACE_DROP.prefix(body, i) and not after.lstrip("来下"):
                return _finish("place", target)  # "把杯子放下"
            return _parse_zh_destination(target, after, m[1])
        if (m := _ZH_ACTION.prefix(body, i)) and m[1] != "stop":
            after = body[i + len(m[0]) :]
            if after in ("", "来", "起来", "起", "住", "走"):
                return _finish(m[1], _parse_np_zh(body[:i]))
    return "no recognisable command after '把'"


def _parse_zh_destination(
    target: ObjectQuery | None, after: str, verb_relation: str | None
) -> Instruction | str:
    post = _ZH_DEST_POST.suffix(after)
    relation = verb_relation
    if post and len(post[0]) < len(after):
        after = after[: -len(post[0])]
        relation = relation or post[1]
    if not after:
        return _finish("place", target) if target is not None else _needs_target_error("place")
    destination = _parse_np_zh(after)
    return Instruction(text="", action="place", target=target, destination=destination,
                       destination_relation=relation or "on")


def _zh_known(text: str) -> bool:
    return _ZH_NOUN.suffix(text) is not None


def _parse_np_zh(text: str, depth: int = 0) -> ObjectQuery:
    """A Chinese referring expression -> ObjectQuery."""
    query = ObjectQuery(text=text)
    if text in lx.ZH_PRONOUNS:
        query.noun = text
        return query
    text, from_where, from_end = _take_zh_ordinal_from(text)
    text = _take_zh_clothing(text, query)
    text = _take_zh_relation(text, query, depth)
    _fill_zh_head(text, query)
    _settle_ordinal(query, from_where, from_end)
    return query


def _take_zh_ordinal_from(text: str) -> tuple[str, str | None, bool]:
    """"从左数第二个" -> ("第二个", "left"); "倒数第二个" counts from the other end."""
    from_end = lx.ZH_FROM_END in text
    start = text.find("从")
    if start < 0 or start + 1 >= len(text):
        return text, None, from_end
    side = _ZH_ORDINAL_FROM.prefix(text, start + 1)
    if side is None:
        return text, None, from_end
    end = start + 1 + len(side[0])
    for tail in ("边开始数", "边数起", "边数", "侧数", "面数", "边", "侧", "面", "往右数",
                 "往左数", "开始数", "数起", "数", "起"):
        if text.startswith(tail, end):
            end += len(tail)
            break
    return text[:start] + text[end:], side[1], from_end


def _take_zh_clothing(text: str, query: ObjectQuery) -> str:
    """"穿蓝色夹克的人" -> color blue, color_part upper, attributes [jacket]; returns "人"."""
    for i in range(len(text)):
        verb = _ZH_CLOTHING_VERB.prefix(text, i)
        if verb is None:
            continue
        j = i + len(verb[0])
        color = _COLOR_ZH.prefix(text, j)
        if color:
            j += len(color[0])
        if text.startswith("的", j):
            j += 1
        garment = _GARMENT_ZH.prefix(text, j)
        if garment:
            j += len(garment[0])
        if not color and not garment:
            continue
        if text.startswith("的", j):
            j += 1
        if color:
            query.color = color[1]
            query.color_part = garment[1][1] if garment else None
        if garment:
            query.attributes.append(garment[1][0])
        return text[:i] + text[j:]
    return text


def _take_zh_relation(text: str, query: ObjectQuery, depth: int) -> str:
    """"笔记本电脑旁边的杯子" -> relation next_to, anchor laptop; returns "杯子"."""
    if depth >= _MAX_DEPTH:
        return text
    for i in range(1, len(text)):
        rel = _ZH_RELATION.prefix(text, i)
        if rel is None:
            continue
        end = i + len(rel[0])
        if text.startswith("的", end):
            end += 1
        elif not text.startswith(("那", "这"), end):
            continue
        anchor_text = text[:i].removesuffix("的")
        if prefix := _ZH_RELATION_PREFIX.prefix(anchor_text):
            anchor_text = anchor_text[len(prefix[0]) :]
        if not anchor_text or not _zh_known(anchor_text) or end >= len(text):
            continue
        query.relation = rel[1]
        query.anchor = _parse_np_zh(anchor_text, depth + 1)
        return text[end:]
    return text


def _fill_zh_head(text: str, query: ObjectQuery) -> None:
    """Head noun at the end (Chinese is head-final), modifiers scanned left to right before it."""
    latin = _ZH_TRAILING_LATIN_RE.search(text)
    noun_hit = _ZH_NOUN.suffix(text)
    generic = _ZH_GENERIC_HEAD.suffix(text)
    head_said = True
    if noun_hit:
        query.noun = noun_hit[1]
        text = text[: -len(noun_hit[0])]
    elif latin:  # "抓取红色的cup"
        query.noun = _canonical_en_noun(latin.group().strip())[0]
        text = text[: latin.start()]
    elif generic:  # "左边那个", "第二个": the noun is the one under discussion
        text = text[: -len(generic[0])]
    else:
        head_said = False
    unknown, trailing = _scan_zh_modifiers(text, query)
    if not head_said and trailing is not None:
        unknown.pop()
        query.noun = trailing  # an unknown noun, kept as said; grounding answers not_found
    query.attributes.extend(unknown)


def _scan_zh_modifiers(text: str, query: ObjectQuery) -> tuple[list[str], str | None]:
    """Apply every modifier word in ``text``; return the unrecognised runs and the trailing one.

    The trailing run (text that ends the phrase and matched no table) is the head noun when no
    known noun was found.
    """
    runs: list[str] = []
    unknown = ""
    i = 0
    while i < len(text):
        hit = _ZH_MODIFIER.prefix(text, i)
        if hit is None:
            unknown += text[i]
            i += 1
            continue
        if unknown:
            runs.append(unknown)
            unknown = ""
        word, (kind, value) = hit
        i += len(word)
        if kind == "ordinal":
            number = _ZH_NUMERAL.prefix(text, i)
            if number is None:
                continue
            query.ordinal = number[1]
            i += len(number[0])
        elif kind == "last":
            query.ordinal = -1
        elif kind in ("color", "size", "location"):
            setattr(query, kind, value)
    if unknown:
        runs.append(unknown)
        return runs, unknown
    return runs, None
