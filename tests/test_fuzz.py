"""Property-based fuzzing of the two places where untrusted input enters vlm_ros.

Both the command parser (text from a microphone or a ROS topic) and the message -> array
conversions (bytes from any publisher on the graph) promise one thing above coverage: bad input
gives a *typed* refusal (``Instruction.error`` / ``ConversionError``), never an exception that takes
the node down.  Hand-written tests check the inputs someone thought of; these let hypothesis search
for the ones nobody did.

Every property runs in two tiers: ``ci`` (a few hundred derandomized examples, so a CI failure is
reproducible) and ``long`` (>= 10,000 random examples; ``pytest -m long tests/test_fuzz.py``),
which the default run deselects through ``addopts`` in pyproject.toml.
"""

from __future__ import annotations

import array
import json
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sensor_msgs.msg import CompressedImage, Image

from vlm_ros.core import lexicon as lx
from vlm_ros.core.geometry import depth_to_meters
from vlm_ros.core.instruction import is_confirmation, merge_followup, parse_instruction
from vlm_ros.core.plan import parse_plan
from vlm_ros.core.types import ACTIONS, Instruction
from vlm_ros.ros.convert import (
    ENCODINGS,
    ConversionError,
    array_to_image,
    compressed_to_array,
    image_to_array,
)

# --------------------------------------------------------------------------------------------
# Tiers
# --------------------------------------------------------------------------------------------

_COMMON = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CI = settings(max_examples=300, derandomize=True, **_COMMON)
LONG = settings(max_examples=10_000, derandomize=False, **_COMMON)
TIERS = [pytest.param(CI, id="ci"), pytest.param(LONG, id="long", marks=pytest.mark.long)]


def run_property(tier: settings, check: Callable[..., None], **strategies: Any) -> None:
    """Run ``check`` as a hypothesis property under the tier's settings.

    Why not decorate the tests directly: each property needs two settings (ci and long), and one
    decorated function can carry only one.
    """
    tier(given(**strategies)(check))()


# --------------------------------------------------------------------------------------------
# Text strategies
# --------------------------------------------------------------------------------------------


def _lexicon_words() -> list[str]:
    """Every word and phrase the parser's tables know, English and Chinese."""
    words: set[str] = set()
    for value in vars(lx).values():
        items = value.keys() if isinstance(value, dict) else value
        if isinstance(value, dict | tuple | list | frozenset | set):
            words.update(w for w in items if isinstance(w, str) and w.strip())
            if isinstance(value, dict):
                words.update(v for v in value.values() if isinstance(v, str) and v.strip())
    return sorted(words)


LEXICON_WORDS = _lexicon_words()
_SEPARATORS = st.sampled_from([" ", " ", " ", "", ", ", "，", "。", "  ", "\t", "!", "的", "-"])

# hypothesis' characters() already leaves out surrogates (which a str from UTF-8 cannot hold)
any_unicode = st.text(st.characters(), max_size=80)
cjk_latin = st.text(
    st.one_of(
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
        st.characters(min_codepoint=ord("a"), max_codepoint=ord("z")),
        st.characters(min_codepoint=ord("A"), max_codepoint=ord("Z")),
        st.sampled_from(" ,.!?，。的把"),
    ),
    max_size=60,
)
whitespace_only = st.text(st.sampled_from(" \t\n\r\u3000\u00a0\u2003\u200b\ufeff"), max_size=30)


@st.composite
def lexicon_soup(draw: st.DrawFn) -> str:
    """Lexicon words in random order and script: realistic-looking but usually garbled."""
    words = draw(st.lists(st.sampled_from(LEXICON_WORDS), min_size=1, max_size=14))
    text = words[0]
    for word in words[1:]:
        text += draw(_SEPARATORS) + word
    return text


def _words(*tables: Any) -> list[str]:
    return sorted({w for table in tables for w in table})


_EN_SLOTS = [_words(lx.EN_POLITE_PREFIXES), _words(lx.EN_ACTIONS), _words(lx.EN_DETERMINERS),
             _words(lx.EN_ORDINALS), _words(lx.SIZES, lx.COLORS), _words(lx.EN_KNOWN_NOUNS),
             _words(lx.EN_RELATIONS, lx.EN_DESTINATION_PREPS, lx.EN_LOCATIONS),
             _words(lx.EN_DETERMINERS), _words(lx.COLORS), _words(lx.EN_KNOWN_NOUNS),
             _words(lx.EN_POLITE_SUFFIXES)]
_ZH_SLOTS = [_words(lx.ZH_POLITE_PREFIXES), _words(lx.ZH_ACTIONS, lx.ZH_PLACE_OBJECT_MARKERS),
             _words(lx.ZH_LOCATIONS, lx.ZH_MEASURE_WORDS), _words(lx.COLORS, lx.SIZES),
             _words(lx.ZH_NOUNS), _words(lx.ZH_PLACE_VERBS, lx.ZH_RELATION_PREFIXES),
             _words(lx.ZH_NOUNS), _words(lx.ZH_DESTINATION_POSTPOSITIONS, lx.ZH_RELATIONS),
             _words(lx.ZH_POLITE_SUFFIXES, lx.ZH_FIND_SUFFIXES)]


@st.composite
def command_shaped(draw: st.DrawFn) -> str:
    """Verb, modifiers, noun, relation, anchor in roughly the right order, with slots dropped at
    random: reaches the parser's deeper paths, which a word soup rarely does."""
    english = draw(st.booleans())
    words = [draw(st.sampled_from(slot)) for slot in (_EN_SLOTS if english else _ZH_SLOTS)
             if draw(st.integers(0, 2))]  # keep two slots in three
    return (" " if english else draw(st.sampled_from(["", "", "的", " "]))).join(words)


@st.composite
def corrupted_command(draw: st.DrawFn) -> str:
    """A lexicon soup with one arbitrary character (control, emoji, unassigned...) spliced in."""
    text = draw(st.one_of(lexicon_soup(), command_shaped()))
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.characters()) + text[at:]


@st.composite
def very_long(draw: st.DrawFn) -> str:
    """Around the MAX_COMMAND_CHARS limit, and well beyond it."""
    unit = draw(lexicon_soup()) + " "
    length = draw(st.one_of(st.integers(lx.MAX_COMMAND_CHARS - 5, lx.MAX_COMMAND_CHARS + 5),
                            st.integers(0, 20 * lx.MAX_COMMAND_CHARS)))
    return (unit * (length // len(unit) + 1))[:length]


COMMAND_TEXT = st.one_of(any_unicode, cjk_latin, whitespace_only, lexicon_soup(),
                         command_shaped(), command_shaped(), corrupted_command(), very_long())


# --------------------------------------------------------------------------------------------
# Parser properties
# --------------------------------------------------------------------------------------------


def assert_well_formed(inst: Instruction) -> None:
    """An Instruction is exactly one of: an error, a command, a follow-up; and it serialises."""
    assert isinstance(inst, Instruction)
    encoded = json.dumps(inst.to_dict(), ensure_ascii=False, allow_nan=False)
    assert Instruction.from_dict(json.loads(encoded)).to_dict() == inst.to_dict()
    is_error = inst.error is not None
    is_command = inst.action in ACTIONS and not inst.is_followup
    is_followup = inst.is_followup and inst.action is None
    assert is_error + is_command + is_followup == 1, inst
    assert inst.language in ("en", "zh")
    assert len(inst.text) <= 201  # echoed text is capped, never a megabyte
    if is_error:
        assert isinstance(inst.error, str) and inst.error
        # the safety net in parse_instruction hides an exception: that is a bug, not a refusal
        assert not inst.error.startswith("internal parser error"), inst.error
        assert inst.action is None and not inst.is_followup
    elif is_command and inst.action == "stop":
        assert inst.target is None
    elif is_command and inst.action != "place":
        assert inst.target is not None  # "'grab' needs an object" otherwise
    elif is_followup:
        assert inst.target is not None


def check_parse(text: str | bytes) -> None:
    assert_well_formed(parse_instruction(text))


def check_plan(text: str | bytes) -> None:
    """A plan is total too: steps, or exactly one reason why not - never an exception."""
    plan = parse_plan(text)
    reasons = [r for r in (plan.error, plan.refusal) if r]
    assert bool(plan.steps) != bool(reasons), plan
    for reason in reasons:
        assert not reason.startswith("internal parser error"), reason
    for step in plan.steps:
        assert_well_formed(step)
    if plan.suggestion is not None:
        assert plan.error and not plan.steps


def check_merge(pending_text: str, answer_text: str) -> None:
    pending, answer = parse_instruction(pending_text), parse_instruction(answer_text)
    merged = merge_followup(pending, answer)
    assert isinstance(merged, Instruction)
    json.dumps(merged.to_dict(), ensure_ascii=False, allow_nan=False)
    if answer.is_followup and not answer.error:
        assert not merged.is_followup and merged.error is None
        assert merged.action == pending.action
    else:
        assert merged is answer  # a new command or an error replaces the pending one


def check_confirmation(text: Any) -> None:
    assert is_confirmation(text) in (True, False, None)
    assert type(is_confirmation(text)) in (bool, type(None))


_CONFIRM_WORDS = sorted(lx.CONFIRM_YES | lx.CONFIRM_NO)
CONFIRM_TEXT = st.one_of(
    COMMAND_TEXT,
    st.builds(lambda a, sep, b: a + sep + b, st.sampled_from(_CONFIRM_WORDS), _SEPARATORS,
              st.one_of(st.sampled_from(_CONFIRM_WORDS + LEXICON_WORDS), any_unicode)),
    st.none(), st.integers(), st.binary(max_size=20), st.floats(),
)


@pytest.mark.parametrize("tier", TIERS)
def test_parse_instruction_is_total_and_well_formed(tier):
    run_property(tier, check_parse, text=st.one_of(COMMAND_TEXT, st.binary(max_size=60)))


@pytest.mark.parametrize("tier", TIERS)
def test_parse_plan_is_total(tier):
    run_property(tier, check_plan, text=st.one_of(COMMAND_TEXT, st.binary(max_size=60)))


@pytest.mark.parametrize("tier", TIERS)
def test_merge_followup_never_raises(tier):
    texts = st.one_of(command_shaped(), lexicon_soup(), cjk_latin, any_unicode)
    run_property(tier, check_merge, pending_text=texts, answer_text=texts)


@pytest.mark.parametrize("tier", TIERS)
def test_is_confirmation_answers_true_false_or_none(tier):
    run_property(tier, check_confirmation, text=CONFIRM_TEXT)


# --------------------------------------------------------------------------------------------
# sensor_msgs/Image -> array
# --------------------------------------------------------------------------------------------

_CHANNEL_ORDER = {"rgb": [0, 1, 2], "bgr": [2, 1, 0], "rgba": [0, 1, 2], "bgra": [2, 1, 0],
                  "raw": [0]}
ENCODING_NAMES = sorted(ENCODINGS)
garbage_encoding = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["RGB8", "rgb16", "bgr16", "yuv422", "bayer_rggb8", "64FC1", "8UC4", "16SC1",
                     "rgb8 ", " mono8", "jpeg"]),
)


@st.composite
def image_messages(draw: st.DrawFn) -> tuple[Image, int]:
    """A sensor_msgs/Image whose header may or may not agree with its data, plus a max_pixels."""
    consistent = draw(st.integers(0, 2)) > 0  # two in three: a header that matches the data
    names = st.sampled_from(ENCODING_NAMES)
    encoding = draw(names if consistent else st.one_of(names, garbage_encoding))
    low = 1 if consistent else 0
    width, height = draw(st.integers(low, 64)), draw(st.integers(low, 64))
    info = ENCODINGS.get(encoding)
    row_bytes = width * info.channels * np.dtype(info.dtype).itemsize if info else width * 3
    if consistent:  # any padding, including padding that misaligns multi-byte samples
        step = row_bytes + draw(st.one_of(st.just(0), st.integers(1, 9)))
    else:
        step = draw(st.one_of(st.integers(max(0, row_bytes - 3), row_bytes + 9),  # the edge
                              st.integers(0, 2 * row_bytes + 16)))
    exact = step * height
    length = exact if consistent else draw(st.one_of(
        st.just(exact), st.integers(max(0, exact - 8), exact + 8), st.integers(0, exact + 64)))
    seed = draw(st.integers(0, 2**32 - 1))
    msg = Image()
    msg.encoding, msg.width, msg.height, msg.step = encoding, width, height, step
    msg.is_bigendian = draw(st.sampled_from([0, 1]))
    msg.data = array.array("B", np.random.default_rng(seed).bytes(length))
    small_limit = not consistent and draw(st.booleans())
    max_pixels = draw(st.integers(1, 64 * 64)) if small_limit else 50_000_000
    return msg, max_pixels


def expected_pixels(msg: Image) -> np.ndarray:
    """An independent, slow decode of a valid message: what image_to_array must return."""
    info = ENCODINGS[msg.encoding]
    item = np.dtype(info.dtype).itemsize
    row_bytes = msg.width * info.channels * item
    raw = bytes(msg.data)
    rows = [raw[r * msg.step : r * msg.step + row_bytes] for r in range(msg.height)]
    wire = np.dtype(info.dtype).newbyteorder(">" if msg.is_bigendian else "<")
    pixels = np.frombuffer(b"".join(rows), dtype=wire).astype(np.dtype(info.dtype))
    pixels = pixels.reshape(msg.height, msg.width, info.channels)
    pixels = pixels[:, :, _CHANNEL_ORDER[info.order]]
    return pixels[:, :, 0] if info.order == "raw" else pixels


def check_image_to_array(message: tuple[Image, int]) -> None:
    msg, max_pixels = message
    info = ENCODINGS.get(msg.encoding)
    valid = (
        info is not None
        and msg.width > 0 and msg.height > 0
        and msg.width * msg.height <= max_pixels
        and msg.step >= msg.width * info.channels * np.dtype(info.dtype).itemsize
        and len(msg.data) == msg.step * msg.height
    )
    try:
        pixels, encoding = image_to_array(msg, max_pixels=max_pixels)
    except ConversionError as exc:
        assert not valid, f"rejected a valid message: {exc}"
        return
    assert valid, "accepted a message whose header does not match its data"
    assert encoding == msg.encoding
    shape = (msg.height, msg.width) if info.order == "raw" else (msg.height, msg.width, 3)
    assert pixels.shape == shape and pixels.dtype == np.dtype(info.dtype)
    assert np.array_equal(pixels, expected_pixels(msg), equal_nan=True)


@pytest.mark.parametrize("tier", TIERS)
def test_image_to_array_returns_consistent_array_or_conversion_error(tier):
    run_property(tier, check_image_to_array, message=image_messages())


@st.composite
def array_for_encoding(draw: st.DrawFn) -> tuple[np.ndarray, str]:
    """A random array that ``array_to_image`` accepts for a random supported encoding."""
    encoding = draw(st.sampled_from(ENCODING_NAMES))
    info = ENCODINGS[encoding]
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    if info.order == "raw":
        shape: tuple[int, ...] = (height, width)
    else:  # colour encodings take RGB, or RGBA whose alpha is dropped
        shape = (height, width, draw(st.sampled_from([3, 4])))
    elements = st.floats(width=32, allow_nan=True, allow_infinity=True) if info.dtype == "f4" else None
    pixels = draw(hnp.arrays(np.dtype(info.dtype), shape, elements=elements))
    return pixels, encoding


def check_round_trip(case: tuple[np.ndarray, str]) -> None:
    pixels, encoding = case
    out, out_encoding = image_to_array(array_to_image(pixels, encoding))
    expected = pixels[:, :, :3] if pixels.ndim == 3 else pixels
    assert out_encoding == encoding and out.dtype == pixels.dtype
    assert np.array_equal(out, expected, equal_nan=True)


@pytest.mark.parametrize("tier", TIERS)
def test_array_to_image_round_trips_for_every_encoding(tier):
    run_property(tier, check_round_trip, case=array_for_encoding())


# --------------------------------------------------------------------------------------------
# sensor_msgs/CompressedImage -> array
# --------------------------------------------------------------------------------------------


def _encoded_samples() -> dict[str, bytes]:
    """Small valid files of every kind compressed_to_array reads, to mutate."""
    rng = np.random.default_rng(7)
    colour = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    depth = rng.integers(0, 5000, (9, 11), dtype=np.uint16)
    samples = {
        "jpeg": cv2.imencode(".jpg", colour)[1].tobytes(),
        "png": cv2.imencode(".png", colour)[1].tobytes(),
        "png_grey": cv2.imencode(".png", colour[:, :, 0])[1].tobytes(),
        "png16": cv2.imencode(".png", depth)[1].tobytes(),
        "png_rgba": cv2.imencode(".png", np.dstack([colour, colour[:, :, :1]]))[1].tobytes(),
    }
    samples["depth32"] = struct.pack("<iff", 0, 2.0, -1.0) + samples["png16"]
    return samples


ENCODED = _encoded_samples()


def _mutable_span(name: str, data: bytes) -> tuple[int, int]:
    """The bytes a mutation may touch: the compressed pixels, not the header that declares the
    image size (a flipped size byte asks the decoder for gigapixels; ``_check_size`` rejects those
    only after decoding) nor PNG chunk lengths (see test_png_chunk_length_does_not_allocate)."""
    if name == "jpeg":
        return data.index(b"\xff\xc0") + 19, len(data)  # past SOF0
    idat = data.index(b"IDAT") + 4
    return idat, idat + int.from_bytes(data[idat - 8 : idat - 4], "big")
FORMATS = ["jpeg", "png", "rgb8; jpeg compressed bgr8", "16UC1; compressedDepth",
           "32FC1; compressedDepth png", "32FC1; compressedDepth", "", "garbage"]


@st.composite
def compressed_messages(draw: st.DrawFn) -> CompressedImage:
    """Random bytes, or a valid file with its body mutated (header kept, so the declared image
    stays small and the decoder really walks corrupt data), truncated, or with a random depth
    quantisation header."""
    kind = draw(st.sampled_from(["random", "mutated", "truncated", "depth_header"]))
    if kind == "random":
        data = draw(st.binary(max_size=600))
    else:
        name = draw(st.sampled_from(sorted(ENCODED)))
        data = bytearray(ENCODED[name])
        png_at = data.find(b"\x89PNG")
        if kind == "mutated":
            start, end = _mutable_span(name, bytes(data))
            for _ in range(draw(st.integers(1, 8))):
                at = draw(st.integers(start, end - 1))
                data[at] = draw(st.integers(0, 255))
        elif kind == "truncated":
            data = data[: draw(st.integers(0, len(data)))]
        else:  # compressedDepth ConfigHeader with any floats (NaN, inf, 0, negative)
            quant = draw(st.tuples(st.integers(-(2**31), 2**31 - 1), st.floats(width=32),
                                   st.floats(width=32)))
            data = bytearray(struct.pack("<iff", *quant)) + data[png_at:]
    msg = CompressedImage()
    msg.format = draw(st.one_of(st.sampled_from(FORMATS), st.text(max_size=10)))
    msg.data = array.array("B", bytes(data))
    return msg


def check_compressed(msg: CompressedImage) -> None:
    try:
        pixels = compressed_to_array(msg)
    except ConversionError:
        return
    assert isinstance(pixels, np.ndarray) and pixels.size > 0
    if pixels.ndim == 3:
        assert pixels.shape[2] == 3 and pixels.dtype == np.uint8
    else:
        assert pixels.ndim == 2 and pixels.dtype in (np.uint8, np.uint16, np.float32)
    if pixels.dtype == np.float32:  # compressedDepth 32FC1: must still become sane metres
        check_depth(pixels, "32FC1", 0.001)


@pytest.mark.parametrize("tier", TIERS)
def test_compressed_to_array_returns_array_or_conversion_error(tier):
    run_property(tier, check_compressed, msg=compressed_messages())


_PNG_CHUNK_LENGTH_PROBE = """
import array, resource, sys
import cv2, numpy as np
from sensor_msgs.msg import CompressedImage
from vlm_ros.ros.convert import ConversionError, compressed_to_array

png = bytearray(cv2.imencode(".png", np.zeros((9, 11, 3), np.uint8))[1].tobytes())
png[33:37] = (1 << 28).to_bytes(4, "big")  # the chunk after IHDR claims 256 MiB
msg = CompressedImage(format=sys.argv[1])
msg.data = array.array("B", bytes(png))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    compressed_to_array(msg)
except ConversionError:
    pass
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_png_chunk_length_does_not_allocate():
    """A corrupt PNG chunk length from a publisher must not cost memory it does not carry."""
    out = subprocess.run([sys.executable, "-c", _PNG_CHUNK_LENGTH_PROBE, "png"],
                         capture_output=True, text=True, timeout=60, check=True)
    assert int(out.stdout.split()[-1]) < 32  # MiB of peak-RSS growth for a 374-byte message


# --------------------------------------------------------------------------------------------
# depth_to_meters
# --------------------------------------------------------------------------------------------


@st.composite
def depth_images(draw: st.DrawFn) -> tuple[np.ndarray, str, float]:
    encoding = draw(st.sampled_from(["16UC1", "mono16", "32FC1"]))
    shape = hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=16)
    if encoding == "32FC1":
        dtype = draw(st.sampled_from([np.float32, np.float64]))
        elements = st.floats(width=np.dtype(dtype).itemsize * 8)
    else:  # drivers publish uint16, but a caller may hand over any integer array
        dtype = draw(st.sampled_from([np.uint16, np.uint8, np.int32, np.int64, np.uint64]))
        elements = None
    depth = draw(hnp.arrays(dtype, shape, elements=elements))
    scale = draw(st.one_of(st.just(0.001), st.floats()))
    return depth, encoding, scale


def check_depth(depth: np.ndarray, encoding: str, scale: float) -> None:
    metres = depth_to_meters(depth, encoding, scale)
    assert metres.shape == depth.shape and metres.dtype == np.float32
    assert not np.isinf(metres).any()
    assert not (metres <= 0).any()  # NaN compares False: only real zero/negative values fail
    if encoding == "32FC1":
        invalid = ~np.isfinite(depth) | (depth <= 0)
        assert np.isnan(metres[invalid]).all()


def check_depth_case(case: tuple[np.ndarray, str, float]) -> None:
    check_depth(*case)


@pytest.mark.parametrize("tier", TIERS)
def test_depth_to_meters_gives_positive_finite_or_nan(tier):
    run_property(tier, check_depth_case, case=depth_images())
