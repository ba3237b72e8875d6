"""Instruction parser: English and Chinese commands, clarification answers, garbage in.

Table-driven: each row is a sentence a user might say and the fields the parser must produce.
A field not named in a row is not checked, except ``action``, which always is.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from vlm_ros.core.instruction import is_confirmation, merge_followup, parse_instruction
from vlm_ros.core.types import Instruction, ObjectQuery


def assert_query(query: ObjectQuery | None, expected: dict[str, Any] | None) -> None:
    """Check the named fields of ``query``; "anchor" is checked the same way, recursively, and
    "attributes" means "contains these"."""
    if expected is None:
        assert query is None
        return
    assert query is not None
    for key, want in expected.items():
        if key == "anchor":
            assert_query(query.anchor, want)
        elif key == "attributes":
            for word in want:
                assert word in query.attributes, (word, query.attributes)
        else:
            assert getattr(query, key) == want, (key, getattr(query, key), want, query)


# (text, action, expected target fields)
COMMANDS: list[tuple[str, str, dict[str, Any] | None]] = [
    # --- the issue's own examples
    ("grab the red cup", "pick", {"noun": "cup", "color": "red", "text": "the red cup"}),
    ("go to the chair on the left", "navigate", {"noun": "chair", "location": "left",
                                                 "relation": None}),
    ("抓取红色杯子", "pick", {"noun": "cup", "color": "red", "text": "红色杯子"}),
    ("go to the dog", "navigate", {"noun": "dog", "color": None}),
    ("pick up the second cup from the left", "pick",
     {"noun": "cup", "ordinal": 2, "ordinal_from": "left", "location": None}),
    ("find the person in the blue jacket", "find",
     {"noun": "person", "color": "blue", "color_part": "upper", "attributes": ["jacket"],
      "relation": None}),
    ("look at the biggest bowl", "look", {"noun": "bowl", "size": "large"}),
    ("take the cup next to the laptop", "pick",
     {"noun": "cup", "relation": "next_to", "anchor": {"noun": "laptop"}}),
    ("follow the person", "follow", {"noun": "person"}),
    ("stop", "stop", None),
    ("停", "stop", None),
    ("走到左边的椅子", "navigate", {"noun": "chair", "location": "left"}),
    ("where is the cat?", "find", {"noun": "cat"}),
    # --- pick synonyms
    ("pick the apple", "pick", {"noun": "apple"}),
    ("take the banana", "pick", {"noun": "banana"}),
    ("get the bottle", "pick", {"noun": "bottle"}),
    ("fetch the book", "pick", {"noun": "book"}),
    ("pick the cup up", "pick", {"noun": "cup"}),
    ("抓杯子", "pick", {"noun": "cup"}),
    ("拿马克杯", "pick", {"noun": "mug"}),
    ("拿起苹果", "pick", {"noun": "apple"}),
    ("取香蕉", "pick", {"noun": "banana"}),
    ("把杯子拿起来", "pick", {"noun": "cup"}),
    # --- navigate synonyms
    ("walk to the bicycle", "navigate", {"noun": "bicycle"}),
    ("drive to the car", "navigate", {"noun": "car"}),
    ("move to the dining table", "navigate", {"noun": "dining table"}),
    ("approach the horse", "navigate", {"noun": "horse"}),
    ("head to the traffic light", "navigate", {"noun": "traffic light"}),
    ("navigate to the box", "navigate", {"noun": "box"}),
    ("去椅子", "navigate", {"noun": "chair"}),
    ("到桌子那里", "navigate", {"noun": "table"}),
    ("前往门", "navigate", {"noun": "door"}),
    ("导航到冰箱", "navigate", {"noun": "refrigerator"}),
    ("走到桌子旁边", "navigate", {"noun": "table"}),
    # --- look / find / follow / stop
    ("look at the dog", "look", {"noun": "dog"}),
    ("look left", "look", {"noun": None, "location": "left"}),
    ("看狗", "look", {"noun": "dog"}),
    ("看向那个人", "look", {"noun": "person"}),
    ("注视红色的球", "look", {"noun": "ball", "color": "red"}),
    ("find the keys", "find", {"noun": "key"}),
    ("locate the bottles", "find", {"noun": "bottle"}),
    ("search for the remote", "find", {"noun": "remote"}),
    ("look for the cell phone", "find", {"noun": "cell phone"}),
    ("找书", "find", {"noun": "book"}),
    ("寻找手机", "find", {"noun": "cell phone"}),
    ("猫在哪里", "find", {"noun": "cat"}),
    ("马在哪", "find", {"noun": "horse"}),
    ("帮我找一下手机在哪里", "find", {"noun": "cell phone", "text": "手机"}),
    ("track the dog", "follow", {"noun": "dog"}),
    ("跟着那个人", "follow", {"noun": "person"}),
    ("跟随狗", "follow", {"noun": "dog"}),
    ("halt", "stop", None),
    ("freeze!", "stop", None),
    ("cancel", "stop", None),
    ("abort", "stop", None),
    ("PLEASE STOP NOW!", "stop", None),
    ("停止", "stop", None),
    ("别动", "stop", None),
    ("取消", "stop", None),
    # --- politeness is ignored
    ("please grab the cup", "pick", {"noun": "cup"}),
    ("Could you please grab the cell phones?", "pick", {"noun": "cell phone"}),
    ("can you find the dog", "find", {"noun": "dog"}),
    ("I want you to go to the chair", "navigate", {"noun": "chair"}),
    ("hey robot, could you pick up the blue bottle for me please?", "pick",
     {"noun": "bottle", "color": "blue", "text": "the blue bottle"}),
    ("请抓取杯子", "pick", {"noun": "cup"}),
    ("帮我拿一下那个红色的瓶子", "pick", {"noun": "bottle", "color": "red"}),
    # --- nouns: multi-word, plurals, synonyms, Chinese table, unknown
    ("pick up the teddy bear", "pick", {"noun": "teddy bear"}),
    ("go to the potted plant", "navigate", {"noun": "potted plant"}),
    ("find the boxes", "find", {"noun": "box"}),
    ("find the people", "find", {"noun": "person"}),
    ("follow that man", "follow", {"noun": "person", "attributes": ["man"]}),
    ("get me the orange", "pick", {"noun": "orange", "color": None}),
    ("get me the orange cup", "pick", {"noun": "cup", "color": "orange"}),
    ("head to the kitchen table", "navigate", {"noun": "table", "attributes": ["kitchen"]}),
    ("pick up the unicorn", "pick", {"noun": "unicorn"}),
    ("拿手机", "pick", {"noun": "cell phone"}),
    ("拿笔记本电脑", "pick", {"noun": "laptop"}),
    ("拿电脑", "pick", {"noun": "laptop"}),
    ("找自行车", "find", {"noun": "bicycle"}),
    ("找汽车", "find", {"noun": "car"}),
    ("去厨房", "navigate", {"noun": "厨房"}),
    ("ｇｒａｂ　ｔｈｅ　ｃｕｐ", "pick", {"noun": "cup"}),
    # --- colours
    ("grab the purple cup", "pick", {"color": "purple"}),
    ("grab the violet cup", "pick", {"color": "purple"}),
    ("grab the grey cup", "pick", {"color": "gray"}),
    ("grab the pink cup", "pick", {"color": "pink"}),
    ("grab the brown cup", "pick", {"color": "brown"}),
    ("grab the black cup", "pick", {"color": "black"}),
    ("grab the white cup", "pick", {"color": "white"}),
    ("grab the green cup", "pick", {"color": "green"}),
    ("grab the yellow cup", "pick", {"color": "yellow"}),
    ("拿黄色的香蕉", "pick", {"noun": "banana", "color": "yellow"}),
    ("拿粉红色的杯子", "pick", {"color": "pink"}),
    ("拿灰色的盒子", "pick", {"color": "gray"}),
    ("拿棕色的狗", "pick", {"color": "brown"}),
    ("拿紫色的球", "pick", {"color": "purple"}),
    ("拿橙色的球", "pick", {"color": "orange"}),
    ("拿绿杯子", "pick", {"color": "green"}),
    ("拿蓝色的碗", "pick", {"noun": "bowl", "color": "blue"}),
    ("拿白色的碗", "pick", {"color": "white"}),
    ("拿黑色的猫", "pick", {"noun": "cat", "color": "black"}),
    # --- sizes
    ("grab the tiny cup", "pick", {"size": "small"}),
    ("grab the little cup", "pick", {"size": "small"}),
    ("grab the smallest cup", "pick", {"size": "small"}),
    ("grab the large cup", "pick", {"size": "large"}),
    ("grab the huge cup", "pick", {"size": "large"}),
    ("拿最小的碗", "pick", {"noun": "bowl", "size": "small"}),
    ("拿大的碗", "pick", {"noun": "bowl", "size": "large"}),
    # --- locations
    ("grab the leftmost cup", "pick", {"location": "left"}),
    ("grab the rightmost cup", "pick", {"location": "right"}),
    ("grab the cup on the right", "pick", {"location": "right", "relation": None}),
    ("grab the cup in the middle", "pick", {"location": "middle", "relation": None}),
    ("grab the centre cup", "pick", {"location": "middle"}),
    ("grab the upper cup", "pick", {"location": "top"}),
    ("grab the cup at the bottom", "pick", {"location": "bottom"}),
    ("go to the closest chair", "navigate", {"location": "nearest"}),
    ("grab the cup near me", "pick", {"location": "nearest", "relation": None}),
    ("grab the farthest cup", "pick", {"location": "farthest"}),
    ("grab the furthest cup", "pick", {"location": "farthest"}),
    ("拿最近的杯子", "pick", {"location": "nearest"}),
    ("去最远的椅子", "navigate", {"location": "farthest"}),
    ("拿中间的瓶子", "pick", {"noun": "bottle", "location": "middle"}),
    ("拿最左边的杯子", "pick", {"location": "left", "relation": None}),
    ("拿右边的杯子", "pick", {"location": "right", "relation": None}),
    # --- ordinals
    ("pick the third cup from the right", "pick", {"ordinal": 3, "ordinal_from": "right"}),
    ("pick up the 1st cup", "pick", {"ordinal": 1, "ordinal_from": "left"}),
    ("pick up the 2nd cup", "pick", {"ordinal": 2, "ordinal_from": "left"}),
    ("pick up the last bottle", "pick", {"ordinal": -1}),
    ("take the second to last cup", "pick", {"ordinal": 2, "ordinal_from": "right"}),
    ("grab the second cup on the left", "pick",
     {"ordinal": 2, "ordinal_from": "left", "location": None}),
    ("grab the second closest cup", "pick", {"ordinal": 2, "ordinal_from": "near"}),
    ("拿左边第二个杯子", "pick",
     {"noun": "cup", "ordinal": 2, "ordinal_from": "left", "location": None}),
    ("拿从左数第二个杯子", "pick", {"noun": "cup", "ordinal": 2, "ordinal_from": "left"}),
    ("拿从右边数第三个杯子", "pick", {"ordinal": 3, "ordinal_from": "right"}),
    ("拿第一个杯子", "pick", {"ordinal": 1, "ordinal_from": "left"}),
    ("拿最后一个杯子", "pick", {"ordinal": -1}),
    ("拿倒数第二个杯子", "pick", {"ordinal": 2, "ordinal_from": "right"}),
    # --- relations with anchors
    ("take the cup next to the red bowl", "pick",
     {"noun": "cup", "relation": "next_to", "anchor": {"noun": "bowl", "color": "red"}}),
    ("grab the cup on the left of the bowl", "pick",
     {"noun": "cup", "relation": "left_of", "location": None, "anchor": {"noun": "bowl"}}),
    ("grab the cup to the left of the bowl", "pick", {"relation": "left_of"}),
    ("grab the cup to the right of the bowl", "pick",
     {"relation": "right_of", "anchor": {"noun": "bowl"}}),
    ("grab the cup behind the laptop", "pick", {"relation": "behind"}),
    ("grab the cup in front of the laptop", "pick", {"relation": "in_front_of"}),
    ("grab the cup near the bowl", "pick",
     {"noun": "cup", "relation": "next_to", "location": None, "anchor": {"noun": "bowl"}}),
    ("grab the book above the laptop", "pick", {"relation": "above"}),
    ("grab the cup under the table", "pick", {"relation": "below"}),
    ("pick up the red cup on the table", "pick",
     {"noun": "cup", "color": "red", "relation": "on", "anchor": {"noun": "table"}}),
    ("grab the cup next to the bowl on the table", "pick",
     {"relation": "next_to", "anchor": {"noun": "bowl", "relation": "on",
                                        "anchor": {"noun": "table"}}}),
    ("拿笔记本电脑旁边的杯子", "pick",
     {"noun": "cup", "relation": "next_to", "anchor": {"noun": "laptop"}}),
    ("拿红色碗旁边的杯子", "pick",
     {"noun": "cup", "relation": "next_to", "anchor": {"noun": "bowl", "color": "red"}}),
    ("拿桌子上的杯子", "pick", {"noun": "cup", "relation": "on", "anchor": {"noun": "table"}}),
    ("拿碗里的苹果", "pick", {"noun": "apple", "relation": "in", "anchor": {"noun": "bowl"}}),
    ("拿在盒子左边的球", "pick",
     {"noun": "ball", "relation": "left_of", "anchor": {"noun": "box"}}),
    ("找猫后面的人", "find", {"noun": "person", "relation": "behind", "anchor": {"noun": "cat"}}),
    # --- clothing
    ("find the person wearing a red shirt", "find",
     {"noun": "person", "color": "red", "color_part": "upper", "attributes": ["shirt"]}),
    ("find the woman wearing blue jeans", "find",
     {"noun": "person", "color": "blue", "color_part": "lower", "attributes": ["jeans"]}),
    ("follow the man in the white hat", "follow",
     {"noun": "person", "color": "white", "color_part": "head", "attributes": ["hat"]}),
    ("find the kid with a yellow cap", "find", {"color": "yellow", "color_part": "head"}),
    ("follow the person in black trousers", "follow",
     {"color": "black", "color_part": "lower", "attributes": ["trousers"]}),
    ("find the person in the green hoodie", "find", {"color": "green", "color_part": "upper"}),
    ("find the person in red", "find", {"noun": "person", "color": "red"}),
    ("找穿蓝色夹克的人", "find",
     {"noun": "person", "color": "blue", "color_part": "upper", "attributes": ["jacket"],
      "relation": None}),
    ("跟着穿黑色裤子的人", "follow",
     {"noun": "person", "color": "black", "color_part": "lower", "attributes": ["trousers"]}),
    ("找戴红帽子的人", "find",
     {"noun": "person", "color": "red", "color_part": "head", "attributes": ["hat"]}),
    # --- pronouns (the pipeline resolves them against the last target)
    ("pick it up", "pick", {"noun": "it"}),
]


@pytest.mark.parametrize(("text", "action", "target"), COMMANDS, ids=[r[0] for r in COMMANDS])
def test_command(text: str, action: str, target: dict[str, Any] | None) -> None:
    instruction = parse_instruction(text)
    assert instruction.error is None, instruction.error
    assert instruction.action == action
    assert not instruction.is_followup
    assert_query(instruction.target, target)
    if action != "place":
        assert instruction.destination is None


# (text, target fields, destination_relation, destination fields)
PLACES: list[tuple[str, dict[str, Any] | None, str, dict[str, Any]]] = [
    ("put the apple in the bowl", {"noun": "apple"}, "in", {"noun": "bowl"}),
    ("place the red cup on the blue plate", {"noun": "cup", "color": "red"}, "on",
     {"noun": "plate", "color": "blue"}),
    ("drop the ball into the basket", {"noun": "ball"}, "in", {"noun": "basket"}),
    ("set the book onto the shelf", {"noun": "book"}, "on", {"noun": "shelf"}),
    ("put the cup down on top of the box", {"noun": "cup"}, "on", {"noun": "box"}),
    ("put the cup on the left in the box", {"noun": "cup", "location": "left"}, "in",
     {"noun": "box"}),
    ("put the cup next to the laptop on the table",
     {"noun": "cup", "relation": "next_to", "anchor": {"noun": "laptop"}}, "on",
     {"noun": "table"}),
    ("put the person in the red shirt in the car",
     {"noun": "person", "color": "red", "color_part": "upper"}, "in", {"noun": "car"}),
    ("put it in the bowl", {"noun": "it"}, "in", {"noun": "bowl"}),
    ("把苹果放到碗里", {"noun": "apple"}, "in", {"noun": "bowl"}),
    ("把红色的杯子放到蓝色的碗里", {"noun": "cup", "color": "red"}, "in",
     {"noun": "bowl", "color": "blue"}),
    ("把书放到桌子上", {"noun": "book"}, "on", {"noun": "table"}),
    ("将球放进盒子里", {"noun": "ball"}, "in", {"noun": "box"}),
    ("把杯子放在桌子上面", {"noun": "cup"}, "on", {"noun": "table"}),
    ("请把那个红色的杯子放到桌子上好吗？", {"noun": "cup", "color": "red"}, "on",
     {"noun": "table"}),
    ("把笔记本电脑旁边的杯子放到碗里",
     {"noun": "cup", "relation": "next_to", "anchor": {"noun": "laptop"}}, "in",
     {"noun": "bowl"}),
    ("把它放到碗里", {"noun": "它"}, "in", {"noun": "bowl"}),
    ("放到桌子上", None, "on", {"noun": "table"}),
]


@pytest.mark.parametrize(("text", "target", "relation", "destination"), PLACES,
                         ids=[r[0] for r in PLACES])
def test_place(text: str, target: dict[str, Any] | None, relation: str,
               destination: dict[str, Any]) -> None:
    instruction = parse_instruction(text)
    assert instruction.error is None, instruction.error
    assert instruction.action == "place"
    assert_query(instruction.target, target)
    assert instruction.destination_relation == relation
    assert_query(instruction.destination, destination)


@pytest.mark.parametrize("text", ["drop the cup", "把杯子放下"])
def test_place_without_destination_keeps_the_target(text: str) -> None:
    instruction = parse_instruction(text)
    assert instruction.action == "place" and instruction.error is None
    assert instruction.target is not None and instruction.target.noun == "cup"
    assert instruction.destination is None


# (answer text, expected constraint fields on a noun-less target)
FOLLOWUPS: list[tuple[str, dict[str, Any]]] = [
    ("the left one", {"noun": None, "location": "left"}),
    ("the red one", {"noun": None, "color": "red"}),
    ("the second one", {"noun": None, "ordinal": 2, "ordinal_from": "left"}),
    ("the one next to the bowl", {"noun": None, "relation": "next_to",
                                  "anchor": {"noun": "bowl"}}),
    ("I mean the biggest one", {"noun": None, "size": "large"}),
    ("it's the second one from the right", {"ordinal": 2, "ordinal_from": "right"}),
    ("left", {"noun": None, "location": "left"}),
    ("the bottle", {"noun": "bottle"}),
    ("the cup next to the red bowl",
     {"noun": "cup", "relation": "next_to", "anchor": {"noun": "bowl", "color": "red"}}),
    ("左边那个", {"noun": None, "location": "left"}),
    ("红色的那个", {"noun": None, "color": "red"}),
    ("第二个", {"noun": None, "ordinal": 2, "ordinal_from": "left"}),
    ("从左数第二个", {"noun": None, "ordinal": 2, "ordinal_from": "left"}),
    ("最大的那个", {"noun": None, "size": "large"}),
    ("碗旁边的那个", {"noun": None, "relation": "next_to", "anchor": {"noun": "bowl"}}),
    ("我要右边那个", {"noun": None, "location": "right"}),
]


@pytest.mark.parametrize(("text", "target"), FOLLOWUPS, ids=[r[0] for r in FOLLOWUPS])
def test_followup_answer(text: str, target: dict[str, Any]) -> None:
    instruction = parse_instruction(text)
    assert instruction.error is None, instruction.error
    assert instruction.is_followup
    assert instruction.action is None
    assert_query(instruction.target, target)


# (pending command, answer, expected merged target fields)
MERGES: list[tuple[str, str, dict[str, Any]]] = [
    ("grab the cup", "the left one", {"noun": "cup", "location": "left"}),
    ("grab the cup", "the red one", {"noun": "cup", "color": "red"}),
    ("grab the red cup", "the blue one", {"noun": "cup", "color": "blue"}),
    ("grab the cup on the left", "the second one",
     {"noun": "cup", "ordinal": 2, "location": None}),
    ("grab the second cup", "the left one",
     {"noun": "cup", "location": "left", "ordinal": None}),
    ("grab the red cup", "the one next to the bowl",
     {"noun": "cup", "color": "red", "relation": "next_to", "anchor": {"noun": "bowl"}}),
    ("grab the cup", "the bottle", {"noun": "bottle"}),
    ("拿杯子", "左边那个", {"noun": "cup", "location": "left"}),
    ("拿杯子", "红色的那个", {"noun": "cup", "color": "red"}),
    ("拿杯子", "第二个", {"noun": "cup", "ordinal": 2, "ordinal_from": "left"}),
]


@pytest.mark.parametrize(("pending_text", "answer_text", "target"), MERGES,
                         ids=[f"{p} + {a}" for p, a, _ in MERGES])
def test_merge_followup(pending_text: str, answer_text: str, target: dict[str, Any]) -> None:
    pending = parse_instruction(pending_text)
    answer = parse_instruction(answer_text)
    merged = merge_followup(pending, answer)
    assert merged.action == pending.action
    assert not merged.is_followup and merged.error is None
    assert_query(merged.target, target)
    # The pending instruction itself is left as it was (the pipeline may ask again).
    assert parse_instruction(pending_text).to_dict() == pending.to_dict()


def test_merge_keeps_place_destination() -> None:
    pending = parse_instruction("put the cup in the bowl")
    merged = merge_followup(pending, parse_instruction("the left one"))
    assert merged.action == "place" and merged.destination_relation == "in"
    assert_query(merged.target, {"noun": "cup", "location": "left"})
    assert_query(merged.destination, {"noun": "bowl"})


def test_merge_with_a_new_command_returns_the_new_command() -> None:
    pending = parse_instruction("grab the cup")
    answer = parse_instruction("go to the chair")
    assert merge_followup(pending, answer) is answer


# Rejected input: (text, a word the reason must contain)
REJECTS: list[tuple[str, str]] = [
    ("", "empty"),
    ("   \t\n ", "empty"),
    ("hello", "command"),
    ("hello there", "command"),
    ("blorp the zzz", "command"),
    ("the red zzz", "command"),
    ("你好", "command"),
    ("yes", "command"),
    ("x" * 1_000_000, "too long"),
    ("grab the cup " * 100, "too long"),
    ("grab\x00 the cup", "control"),
    ("grab the \x1b[31mcup", "control"),
    (bytes(range(256)).decode("utf-8", errors="replace"), "binary"),
    ("12345 !!! ???", "no words"),
    ("look", "needs an object"),
    ("go to", "needs an object"),
    ("抓", "needs an object"),
    ("put the cup next to the laptop", "in or on"),
]


@pytest.mark.parametrize(("text", "reason"), REJECTS, ids=[r[0][:30] for r in REJECTS])
def test_rejected(text: str, reason: str) -> None:
    instruction = parse_instruction(text)
    assert instruction.error is not None
    assert reason in instruction.error
    assert len(instruction.error) < 200
    assert len(instruction.text) <= 201  # a megabyte of input is not echoed back


@pytest.mark.parametrize("value", [None, 42, b"\xff\xfe\x00garbage", ["grab", "cup"]])
def test_non_text_input_is_rejected_not_raised(value: object) -> None:
    instruction = parse_instruction(value)  # type: ignore[arg-type]
    assert instruction.error


def test_utf8_bytes_are_accepted() -> None:
    assert parse_instruction("抓取红色杯子".encode()).action == "pick"  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "language"), [
    ("grab the red cup", "en"), ("抓取红色杯子", "zh"), ("grab the 红色 cup", "zh"),
    ("停", "zh"), ("stop", "en"),
])
def test_language(text: str, language: str) -> None:
    assert parse_instruction(text).language == language


@pytest.mark.parametrize("text", ["grab the 红色 cup", "抓取红色的cup", "把cup放到碗里"])
def test_mixed_script_parses(text: str) -> None:
    instruction = parse_instruction(text)
    assert instruction.error is None, instruction.error
    assert instruction.target is not None and instruction.target.noun == "cup"


def _random_strings(seed: int, count: int) -> list[str]:
    """Random unicode of three kinds: any code point, printable BMP, and shuffled command words."""
    rng = random.Random(seed)
    words = [
        "grab", "the", "red", "cup", "抓取", "红色", "杯子", "on", "left", "of", "next", "to", "的",
        "把", "放到", "里", "second", "from", "put", "in", "where", "is", "第二个", "那个", "穿",
        "jacket", "wearing", "stop", "停", "在哪", "一", "个", "从", "左", "数", "倒数", "one",
    ]
    out = []
    for k in range(count):
        n = rng.randint(0, 40)
        if k % 3 == 0:
            out.append("".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(n)))
        elif k % 3 == 1:
            out.append("".join(chr(rng.randint(0x20, 0x9FFF)) for _ in range(n)))
        else:
            joiner = rng.choice([" ", ""])
            out.append(joiner.join(rng.choice(words) for _ in range(n // 4)))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_never_raises_on_random_unicode(seed: int) -> None:
    for text in _random_strings(seed, 300):
        instruction = parse_instruction(text)
        assert isinstance(instruction, Instruction)
        # The catch-all exists for safety; reaching it would be a parser bug.
        assert not (instruction.error or "").startswith("internal"), (text, instruction.error)
        if instruction.error is None:
            assert instruction.action in (None, "pick", "place", "navigate", "look", "find",
                                          "follow", "stop")
            assert instruction.is_followup == (instruction.action is None)
        # Whatever comes out survives the result schema.
        assert Instruction.from_dict(instruction.to_dict()).to_dict() == instruction.to_dict()


@pytest.mark.parametrize(("text", "expected"), [
    ("yes", True), ("Yes, please", True), ("OK!", True), ("confirm", True), ("go ahead", True),
    ("确认", True), ("好的", True), ("是的", True),
    ("no", False), ("cancel.", False), ("abort", False), ("no, the left one", False),
    ("取消", False), ("不", False), ("不要", False),
    ("maybe", None), ("the red cup", None), ("", None), ("grab the cup", None),
])
def test_is_confirmation(text: str, expected: bool | None) -> None:
    assert is_confirmation(text) is expected
