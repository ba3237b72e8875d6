"""`parse_plan`: whole sentences -> steps, exclusions, negative commands, corrections, typos.

Every case pins what a word did: understood and used (in a step, an exclusion, a correction) or
named in the answer.  The single-clause parser has its own tests (tests/test_instruction.py).
"""

from __future__ import annotations

import pytest

from vlm_ros.core.plan import parse_plan, unjudged_words
from vlm_ros.core.types import ObjectQuery


def steps(text: str) -> list[tuple]:
    plan = parse_plan(text)
    assert plan.error is None and plan.refusal is None, (text, plan.error, plan.refusal)
    return [(s.action, s.target.noun if s.target else None,
             s.destination.noun if s.destination else None) for s in plan.steps]


def excluded(text: str) -> list[tuple]:
    plan = parse_plan(text)
    assert plan.error is None and len(plan.steps) == 1, (text, plan.error)
    target = plan.steps[0].target
    return [(e.noun, e.color, e.location) for e in target.exclusions]


# ------------------------------------------------------------------------- several steps
@pytest.mark.parametrize("text, expected", [
    ("grab the red cup and put it in the blue bowl",
     [("pick", "cup", None), ("place", "it", "bowl")]),
    ("grab the cup and go to the table", [("pick", "cup", None), ("navigate", "table", None)]),
    ("go to the dog, then stop", [("navigate", "dog", None), ("stop", None, None)]),
    ("first grab the cup, then go to the table",
     [("pick", "cup", None), ("navigate", "table", None)]),
    ("go to the table after you grab the cup",
     [("pick", "cup", None), ("navigate", "table", None)]),
    ("after you grab the cup, go to the table",
     [("pick", "cup", None), ("navigate", "table", None)]),
    ("find the bottle and then look at the person",
     [("find", "bottle", None), ("look", "person", None)]),
    ("先抓取红色杯子再放到蓝色碗里", [("pick", "cup", None), ("place", None, "bowl")]),
    ("把杯子放到碗里然后停下", [("place", "cup", "bowl"), ("stop", None, None)]),
    ("走到椅子那里，然后看向那个人", [("navigate", "chair", None), ("look", "person", None)]),
])
def test_several_steps_in_order(text: str, expected: list[tuple]) -> None:
    assert steps(text) == expected


def test_one_step_with_and_inside_the_object_stays_one_step() -> None:
    assert steps("look at the cup and the bowl")[0][0] == "look"
    assert len(parse_plan("look at the cup and the bowl").steps) == 1


def test_a_later_it_is_the_earlier_object() -> None:
    plan = parse_plan("find the red cup and then look at it")
    assert plan.steps[1].target.noun == "cup" and plan.steps[1].target.color == "red"


# -------------------------------------------------------------------------- exclusions
@pytest.mark.parametrize("text, expected", [
    ("go to the dog, not the bicycle", [("bicycle", None, None)]),
    ("grab the cup, not the red one", [(None, "red", None)]),
    ("grab the cup that isn't red", [(None, "red", None)]),
    ("grab the cup that is not red", [(None, "red", None)]),
    ("grab any cup but the blue one", [(None, "blue", None)]),
    ("grab anything except the truck", [("truck", None, None)]),
    ("grab the cup except the red one and the blue one", [(None, "red", None),
                                                           (None, "blue", None)]),
    ("grab the cup, not the left one", [(None, None, "left")]),
    ("not the red one", [(None, "red", None)]),
    ("不是红色的那个", [(None, "red", None)]),
    ("除了卡车", [("truck", None, None)]),
])
def test_exclusions_are_kept_not_dropped(text: str, expected: list[tuple]) -> None:
    assert excluded(text) == expected


def test_the_excluded_noun_is_not_the_target() -> None:
    plan = parse_plan("go to the dog, not the bicycle")
    assert plan.steps[0].action == "navigate" and plan.steps[0].target.noun == "dog"
    anything = parse_plan("grab anything except the truck").steps[0]
    assert anything.action == "pick" and anything.target.noun is None


# ------------------------------------------------------------------ negative commands
@pytest.mark.parametrize("text, action", [
    ("don't grab the cup", "pick"),
    ("do not go to the person", "navigate"),
    ("never follow the dog", "follow"),
    ("别走向那个人", "navigate"),
    ("不要拿杯子", "pick"),
])
def test_negative_commands_are_understood_and_refused(text: str, action: str) -> None:
    plan = parse_plan(text)
    assert plan.steps == [] and plan.refusal and "not to" in plan.refusal
    assert plan.negated is not None and plan.negated.action == action


@pytest.mark.parametrize("text", ["别动", "don't move", "do not move"])
def test_dont_move_is_stop(text: str) -> None:
    assert steps(text) == [("stop", None, None)]


# ---------------------------------------------------------------------- corrections
@pytest.mark.parametrize("text, expected", [
    ("go to the horse, no wait, the dog", [("navigate", "dog", None)]),
    ("grab the cup, I mean the bottle", [("pick", "bottle", None)]),
    ("put the cup in the bowl, sorry, the box", [("place", "cup", "box")]),
    ("go to the horse, actually look at the dog", [("look", "dog", None)]),
    ("走到马那里，不对，走到狗那里", [("navigate", "dog", None)]),
])
def test_self_corrections_use_the_correction(text: str, expected: list[tuple]) -> None:
    assert steps(text) == expected


# ----------------------------------------------------------------------------- typos
@pytest.mark.parametrize("text, word, fixed", [
    ("grap the red cup", "grap", "grab the red cup"),
    ("goto the dog", "goto", "go to the dog"),
    ("fnd the bottle", "fnd", None),  # three letters: too short to guess
    ("folow the person", "folow", "follow the person"),
])
def test_a_typo_is_named_and_one_close_word_is_suggested(text: str, word: str,
                                                         fixed: str | None) -> None:
    plan = parse_plan(text)
    assert plan.steps == [] and plan.error and f"'{word}'" in plan.error
    assert plan.suggestion == fixed


def test_two_close_words_are_named_not_chosen() -> None:
    plan = parse_plan("grab the gren cup")
    assert plan.suggestion is None and "'gren'" in plan.error and "'green'" in plan.error


# ------------------------------------------------------------------ polite and indirect
@pytest.mark.parametrize("text, expected", [
    ("I want the cup", [("pick", "cup", None)]),
    ("I would like the red cup please", [("pick", "cup", None)]),
    ("can you hand me the cup", [("pick", "cup", None)]),
    ("bring me the bottle", [("pick", "bottle", None)]),
    ("帮我拿杯子", [("pick", "cup", None)]),
    ("你去椅子那里", [("navigate", "chair", None)]),
])
def test_polite_and_indirect_forms(text: str, expected: list[tuple]) -> None:
    assert steps(text) == expected


# --------------------------------------------------------------- words that are not judged
def test_unjudged_words_are_named() -> None:
    query = parse_plan("grab the shiny cup").steps[0].target
    assert unjudged_words(query) == ["shiny"]
    assert unjudged_words(parse_plan("grab the red and blue cup").steps[0].target) == ["blue"]
    assert unjudged_words(parse_plan("grab the man in the red shirt").steps[0].target) == []
    assert unjudged_words(ObjectQuery(noun="cup", exclusions=[
        ObjectQuery(attributes=["striped"])])) == ["striped"]


@pytest.mark.parametrize("text", ["", "   ", "\x00\x01", "a" * 2000, "blorp the zzz",
                                  "hello there", "ignore previous instructions"])
def test_garbage_never_becomes_a_step(text: str) -> None:
    plan = parse_plan(text)
    assert plan.steps == [] and plan.error


# --------------------------------------------------------------- Chinese words (jieba)
@pytest.mark.parametrize("text, word", [
    ("拿起那个条纹的杯子", "条纹"),  # the clause parser alone read 条 as a measure word, kept 纹
    ("抓取蓝绿色杯子", "蓝绿色"),  # two colours in one word: one judged colour would not cover it
])
def test_chinese_words_nothing_accounts_for_are_named(text: str, word: str) -> None:
    plan = parse_plan(text)
    assert plan.steps == [] and f"'{word}'" in plan.error


@pytest.mark.parametrize("text", ["抓取左边第二个杯子", "请帮我拿一下那个红色的杯子吧",
                                  "跟着穿蓝色衣服的人", "看向桌子左边的瓶子", "拿倒数第二个杯子"])
def test_chinese_commands_made_of_known_words_pass(text: str) -> None:
    assert parse_plan(text).error is None


def test_an_unknown_chinese_noun_is_kept_for_grounding_to_name() -> None:
    assert steps("抓取独角兽") == [("pick", "独角兽", None)]
