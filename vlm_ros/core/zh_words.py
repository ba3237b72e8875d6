"""Chinese words, segmented with jieba, each one accounted for.

The clause parser (core/instruction.py) finds Chinese words by longest match against the lexicon
tables.  A word it does not know can then vanish between two known ones ("条纹" = "条", a measure
word, + "纹"), or a compound can keep only its last part ("蓝绿色" read as 绿色).  Here a real
segmenter (jieba, which ships its dictionary) cuts the clause into words, and every word must be
known to the lexicon, or be made of known words (but never of two colours), or be one the parse
kept as said (an unknown noun, an unjudged modifier - grounding names those).  What is left is
named in the answer.
"""

from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache

from vlm_ros.core import lexicon as lx

_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Function words the tables do not list: particles, pronouns, directional complements, and the
# words around a place or a clause that carry no object, colour or action of their own.
_FUNCTION_WORDS = frozenset({
    "的", "地", "得", "了", "着", "过", "吧", "呢", "啊", "呀", "吗", "嘛", "哦", "哈",
    "把", "将", "在", "里", "里面", "上", "上面", "下", "下面", "中", "中间", "内",
    "那里", "这里", "那边", "这边", "那儿", "这儿", "边上", "旁", "处", "位置",
    "我", "你", "他", "她", "我们", "你们", "请", "先", "再", "然后", "接着", "也", "都", "就",
    "一", "一个", "一只", "一下", "个", "只", "那", "这", "些", "那些", "这些", "那个", "这个",
    "和", "与", "跟", "及", "或", "或者", "还有", "以及", "去", "来", "到", "给", "向", "往", "从",
    "起", "起来", "过来", "过去", "下来", "回", "回来", "一点", "点", "所有", "任何", "东西",
    "物体", "数", "面", "边", "是", "不是", "不", "别", "不要", "除了", "以外", "之外", "对", "第",
    "不对", "我是说", "帮", "帮忙", "麻烦", "可以", "能", "要", "想", "让", "叫",
})
_lock = threading.Lock()


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, (tuple, list, frozenset, set)):
        return [s for item in value for s in _strings(item)]
    return []


@lru_cache(maxsize=1)
def known_words() -> frozenset[str]:
    """Every Chinese word in the lexicon tables, and the function words above."""
    # Not the words the core cannot judge (条纹, 塑料): those must stay visible to be named.
    words = {s for name in dir(lx) if name.isupper() and name != "UNJUDGED_ATTRIBUTES"
             for s in _strings(getattr(lx, name))}
    return frozenset({w for w in words if _CJK.search(w)} | _FUNCTION_WORDS)


@lru_cache(maxsize=1)
def _colours() -> frozenset[str]:
    return frozenset(k for k in lx.COLORS if _CJK.search(k))


@lru_cache(maxsize=1)
def _segmenter():  # noqa: ANN202 - jieba's Tokenizer
    import jieba

    jieba.setLogLevel(logging.WARNING)  # its "Building prefix dict" lines are not ours
    tokenizer = jieba.Tokenizer()
    for word in known_words():  # our words stay whole ("抓取", "蓝色杯子" -> 蓝色 / 杯子)
        tokenizer.add_word(word)
    return tokenizer


def segment(text: str) -> list[str]:
    """The words of ``text`` (jieba; its dictionary ships with it, nothing is downloaded)."""
    with _lock:  # jieba's lazy initialisation is not thread-safe
        return [w for w in _segmenter().lcut(text) if w.strip()]


def unplaced(clause: str, used: list[str], nouns: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    """Chinese words of ``clause`` that nothing accounts for (see the module docstring).
    ``used``: words the parse kept as said; ``nouns``: those of them that are object nouns (a
    word may be a known word glued to one: "找龙" = 找 + 龙)."""
    known = known_words()
    found = []
    for word in segment(clause):
        if not _CJK.search(word) or word in known or any(word in u for u in used):
            continue
        if _made_of_known(word, known | frozenset(n for n in nouns if _CJK.search(n))):
            continue  # "找龙": 找 + the unknown noun the parse kept
        found.append(word)
    return found


def _made_of_known(word: str, known: frozenset[str]) -> bool:
    """Can ``word`` be cut into known words with at most one colour among them?  (Two colours
    make a compound colour - "蓝绿色" - that one judged colour would not cover.)"""
    inf = len(word) + 1
    fewest = [0] + [inf] * len(word)  # fewest colour pieces in a cut of word[:end]
    for end in range(1, len(word) + 1):
        for start in range(end):
            piece = word[start:end]
            if fewest[start] < inf and piece in known:
                fewest[end] = min(fewest[end], fewest[start] + (piece in _colours()))
    return fewest[-1] <= 1
