"""Qwen-VL adapter on tiny random Qwen2.5-VL / Qwen3-VL models built in the test (no download).

Random weights write random bytes, so the end-to-end tests assert what must hold for any output:
the real preprocess -> generate -> parse path runs on a real photo, boxes (if any) lie inside the
ORIGINAL image, describe/ask return strings, the pipeline answers with a valid status.  The
coordinate mapping is tested deterministically by feeding the adapter's own post-processing the
answers Qwen models actually write.  The model inputs are compared with the official processor's
and the positions the model really uses in ``generate`` with ``get_rope_index``'s M-RoPE grid.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from photos import load_photo
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoTokenizer,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessorPil,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
)

from vlm_ros.backends import create_backend
from vlm_ros.backends.base import BackendError
from vlm_ros.backends.hf import auto_dtype, resolve_dtype
from vlm_ros.backends.qwen_vl import (
    DESCRIBE_PROMPT,
    DETECT_ALL_PROMPT,
    GROUNDING_PROMPT,
    QwenVlBackend,
    chatml_prompt,
)
from vlm_ros.backends.torch_base import TextRequest
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.session import CommandSession
from vlm_ros.core.types import Frame

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
            "<|image_pad|>", "<|video_pad|>"]
# The ChatML layout of Qwen's own template, reduced to one user turn with images and text.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif part['type'] == 'text' %}"
    "{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
MIN_PIXELS, MAX_PIXELS = 56 * 56, 112 * 112  # a handful of 14 px patches per image


def _tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE over the 256 byte symbols (no merges) plus Qwen's special tokens."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(SPECIALS)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def save_tiny_qwen(folder) -> str:
    """A tiny random Qwen2.5-VL with an offline tokenizer and image processor, saved in folder."""
    tokenizer = _tiny_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIALS}
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
            rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3],
                             "rope_theta": 10000.0},
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14,
            spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=32,
            fullatt_block_indexes=[1], window_size=56),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(folder)
    Qwen2VLImageProcessorPil(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def save_tiny_qwen3(folder) -> str:
    """A tiny random Qwen3-VL (16 px patches, interleaved M-RoPE, one deepstack layer)."""
    tokenizer = _tiny_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIALS}
    config = Qwen3VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
            rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3],
                             "mrope_interleaved": True, "rope_theta": 10000.0},
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16,
            spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=32,
            num_position_embeddings=16, deepstack_visual_indexes=[1]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    Qwen3VLForConditionalGeneration(config).save_pretrained(folder)
    Qwen2VLImageProcessorPil(patch_size=16, min_pixels=64 * 64,
                             max_pixels=128 * 128).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return save_tiny_qwen(tmp_path_factory.mktemp("tiny_qwen2_5_vl"))


@pytest.fixture(scope="module")
def qwen3_dir(tmp_path_factory) -> str:
    return save_tiny_qwen3(tmp_path_factory.mktemp("tiny_qwen3_vl"))


@pytest.fixture(scope="module")
def backend(model_dir) -> QwenVlBackend:
    return QwenVlBackend(model=model_dir, device="cpu", max_new_tokens=24, answer_tokens=12)


def _inside(bbox, width: int, height: int) -> bool:
    x1, y1, x2, y2 = bbox
    return 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height


def test_registry_loads_the_tiny_model_with_its_declared_traits(model_dir):
    backend = create_backend("qwen_vl", model=model_dir, device="cpu", max_new_tokens=8)
    assert isinstance(backend, QwenVlBackend)
    assert backend.vocabulary is None and backend.resolves_referring_expressions
    assert backend.capabilities == {"describe", "ask"}
    info = backend.info()
    assert info["coords"] == "pixels"  # qwen2_5_vl answers in pixels of its resized input
    assert info["open_vocabulary"] is True and info["device"] == "cpu"


def test_detect_on_a_real_photo_returns_boxes_inside_the_original_image(backend):
    rgb = load_photo("coffee")  # 600 x 400, resized by the processor to a few patches
    height, width = rgb.shape[:2]
    detections = backend.detect(rgb, ["the coffee cup"])
    assert isinstance(detections, list)
    for det in detections:  # random weights rarely write valid JSON: usually empty
        assert _inside(det.bbox, width, height)
        assert 0.0 <= det.score <= 1.0 and det.phrase == "the coffee cup"


def test_the_vision_tower_sees_the_resized_input(backend):
    rgb = load_photo("coffee")
    batch = backend.encode(rgb, "hello")
    input_size = backend.input_size(batch)
    grid = batch["image_grid_thw"][0].tolist()
    assert input_size == (grid[2] * 14, grid[1] * 14)
    assert MIN_PIXELS <= input_size[0] * input_size[1] <= MAX_PIXELS
    image_tokens = int((batch["input_ids"] == backend.tokenizer.convert_tokens_to_ids(
        "<|image_pad|>")).sum())
    assert image_tokens == grid[0] * grid[1] * grid[2] // 4  # one per 2x2 merged patch


def test_generation_is_deterministic(backend):
    rgb = load_photo("coffee")
    request = backend.request(rgb, ["x"])
    first = backend.infer(rgb, request)[1]
    assert len(first) == 1 and first == backend.infer(rgb, request)[1]


def test_the_template_stages_write_one_prompt_per_generation(backend):
    rgb = load_photo("coffee")
    assert backend.default_score_threshold == 0.3 and backend.score_threshold == 0.3
    request = backend.request(rgb, [" the cup ", "a plate", "the cup"])
    assert backend.task_texts(request) == [GROUNDING_PROMPT.format(phrase="the cup"),
                                           GROUNDING_PROMPT.format(phrase="a plate")]
    everything = backend.request(rgb, [])
    assert everything.everything and backend.task_texts(everything) == [DETECT_ALL_PROMPT]
    assert backend.task_texts(TextRequest((400, 600), "describe")) == [DESCRIBE_PROMPT]
    assert backend.task_texts(TextRequest((400, 600), "ask", "Is it hot?")) == \
        ["Is it hot? Answer briefly."]
    inputs, outputs = backend.infer(rgb, request)
    assert len(inputs) == len(outputs) == 2 and all(isinstance(t, str) for t in outputs)


def test_an_empty_question_is_refused(backend):
    with pytest.raises(BackendError, match="non-empty question"):
        backend.ask(load_photo("coffee"), "   ")


def test_postprocess_maps_qwen2_5_pixels_of_the_resized_input_back_to_the_photo(backend):
    # Qwen's grounding answer layout (a fenced JSON list of {"bbox_2d", "label"}; see the samples
    # cited in test_parsing.py), coordinates in pixels of the 112 x 84 image the model saw for a
    # 600 x 400 photo.
    answer = '```json\n[\n\t{"bbox_2d": [56, 21, 112, 84], "label": "cup"}\n]\n```'
    (det,) = backend.parse(answer, (600, 400), (112, 84), "the cup")
    assert det.bbox == pytest.approx((300.0, 100.0, 600.0, 400.0))
    assert det.label == "cup" and det.phrase == "the cup" and det.score == 1.0


def test_postprocess_reads_qwen3_grid_when_the_model_is_qwen3(backend, monkeypatch):
    monkeypatch.setattr(backend, "coords", "grid1000")
    (det,) = backend.parse('[{"bbox_2d": [500, 250, 1000, 750], "label": "cup"}]',
                                  (600, 400), (112, 84), "cup")
    assert det.bbox == pytest.approx((300.0, 100.0, 600.0, 300.0))


def test_postprocess_drops_boxes_whose_written_score_is_too_low(backend):
    answer = ('[{"bbox_2d": [0, 0, 10, 10], "label": "a", "confidence": 0.1},'
              ' {"bbox_2d": [0, 0, 20, 20], "label": "b", "confidence": 0.9}]')
    detections = backend.parse(answer, (100, 100), (100, 100), None)
    assert [d.label for d in detections] == ["b"] and detections[0].score == 0.9


def test_describe_and_ask_return_strings(backend):
    rgb = load_photo("coffee")
    assert isinstance(backend.describe(rgb), str)
    assert isinstance(backend.ask(rgb, "What is on the table?"), str)


def test_pipeline_gives_a_valid_status(backend):
    rgb = load_photo("coffee")
    result = CommandSession(Pipeline(backend)).run("grab the red cup", Frame(rgb=rgb))
    assert result.status in ("ok", "not_found", "ambiguous")
    assert result.backend in ("", "qwen_vl")


def test_bad_image_is_a_backend_error(backend):
    with pytest.raises(BackendError, match="uint8"):
        backend.detect(np.zeros((8, 8), np.float32), ["cup"])


def test_chatml_fallback_prompt_has_one_image_placeholder():
    prompt = chatml_prompt("Describe.")
    assert prompt.count("<|image_pad|>") == 1 and prompt.endswith("<|im_start|>assistant\n")


def test_unknown_folder_is_a_clear_error(tmp_path):
    with pytest.raises(BackendError, match="cannot load"):
        QwenVlBackend(model=str(tmp_path), device="cpu")


# ------------------------------------------------------------------ inputs and M-RoPE positions
OFFICIAL_PROCESSORS = {"qwen2_5_vl": Qwen2_5_VLProcessor, "qwen3_vl": Qwen3VLProcessor}


def official_processor(folder: str, family: str):
    """transformers' own processor class for ``family`` on the saved folder.  Its video processor
    needs torchvision (not installed here), so only that sub-processor is left out; ``__call__``,
    the placeholder expansion and ``mm_token_type_ids`` are the library's code."""
    reference = type("ReferenceProcessor", (OFFICIAL_PROCESSORS[family],),
                     {"get_attributes": classmethod(lambda cls: ["image_processor", "tokenizer"])})
    return reference(image_processor=Qwen2VLImageProcessorPil.from_pretrained(folder),
                     tokenizer=AutoTokenizer.from_pretrained(folder), chat_template=CHAT_TEMPLATE)


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl"])
def family_case(request, model_dir, qwen3_dir):
    folder = model_dir if request.param == "qwen2_5_vl" else qwen3_dir
    backend = QwenVlBackend(model=folder, device="cpu", max_new_tokens=4, answer_tokens=4)
    return request.param, backend, official_processor(folder, request.param)


def _official_inputs(processor, rgb: np.ndarray, text: str):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return processor(images=[rgb], text=[prompt], return_tensors="pt")


def _positions_used_by_generate(backend: QwenVlBackend, rgb: np.ndarray, phrase: str
                                ) -> torch.Tensor:
    """The position ids the language model's rotary embedding really receives for the prompt
    of the stages' grounding request for ``phrase``."""
    seen: list[torch.Tensor] = []
    rotary = backend.model.model.language_model.rotary_emb
    handle = rotary.register_forward_hook(lambda _m, args, _out: seen.append(args[1].clone()))
    try:
        backend.infer(rgb, backend.request(rgb, [phrase]))
    finally:
        handle.remove()
    return seen[0]  # the prefill over the whole prompt


def test_model_inputs_are_exactly_what_the_official_processor_returns(family_case):
    family, backend, processor = family_case
    rgb = load_photo("coffee")  # 600 x 400: a non-square grid of patches
    text = GROUNDING_PROMPT.format(phrase="the coffee cup")
    (ours,) = backend.preprocess(rgb, backend.request(rgb, ["the coffee cup"]))  # the stage
    reference = _official_inputs(processor, rgb, text)
    assert "mm_token_type_ids" in reference  # what M-RoPE needs (transformers 5)
    assert set(ours) == set(reference), family
    for key, value in reference.items():
        assert torch.equal(ours[key].cpu(), value), key
    grid = reference["image_grid_thw"][0].tolist()
    assert grid[1] != grid[2]  # the photo's grid is not square: rows and columns differ


def test_generate_uses_the_m_rope_grid_positions_of_get_rope_index(family_case):
    family, backend, processor = family_case
    rgb = load_photo("coffee")
    text = GROUNDING_PROMPT.format(phrase="the coffee cup")
    reference = _official_inputs(processor, rgb, text)
    expected, _ = backend.model.model.get_rope_index(
        reference["input_ids"], mm_token_type_ids=reference["mm_token_type_ids"],
        image_grid_thw=reference["image_grid_thw"], attention_mask=reference["attention_mask"])
    used = _positions_used_by_generate(backend, rgb, "the coffee cup")
    assert torch.equal(used, expected), family
    # ... which is not the 1-D fallback: image tokens sit on a (t, h, w) grid, so the height and
    # width rows differ from each other and the sequence is shorter in positions than in tokens.
    length = reference["input_ids"].shape[1]
    fallback = torch.arange(length).view(1, 1, -1).expand(3, 1, -1)
    assert not torch.equal(used, fallback)
    image = reference["mm_token_type_ids"][0] == 1
    assert not torch.equal(used[1, 0, image], used[2, 0, image])
    assert int(used.max()) + 1 < length


# ------------------------------------------------------------------ dtype "auto"
@pytest.mark.parametrize(("family", "device_type", "bf16", "expected"), [
    ("qwen2_5_vl", "cuda", True, torch.bfloat16),
    ("qwen2_5_vl", "cuda", False, torch.float32),   # never float16: garbage output (issue #14)
    ("qwen2_vl", "cuda", False, torch.float32),
    ("qwen3_vl", "cuda", False, torch.float32),
    ("qwen3_vl_moe", "cuda", False, torch.float32),
    ("qwen3_vl", "cuda", True, torch.bfloat16),
    ("florence2", "cuda", False, torch.float16),    # other families keep float16 without bf16
    ("owlv2", "cuda", False, torch.float16),
    ("grounding-dino", "cuda", True, torch.bfloat16),
    (None, "cuda", False, torch.float16),
    ("qwen2_5_vl", "cpu", False, torch.float32),
    ("florence2", "cpu", True, torch.float32),
])
def test_auto_dtype_by_family_device_and_bf16_support(family, device_type, bf16, expected):
    assert auto_dtype(family, device_type, bf16) == expected


def test_float16_by_name_is_honoured_with_a_warning_for_qwen2_5_vl(caplog):
    with caplog.at_level(logging.WARNING, logger="vlm_ros.backends"):
        assert resolve_dtype("float16", torch.device("cpu"), family="qwen2_5_vl") == torch.float16
    assert "garbage" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vlm_ros.backends"):
        assert resolve_dtype("float16", torch.device("cpu"), family="florence2") == torch.float16
        assert resolve_dtype("auto", torch.device("cpu"), family="qwen2_5_vl") == torch.float32
    assert caplog.text == ""


def test_the_backend_warns_when_qwen2_5_vl_is_asked_for_float16(model_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="vlm_ros.backends"):
        backend = QwenVlBackend(model=model_dir, device="cpu", dtype="float16", max_new_tokens=2)
    assert backend.dtype == torch.float16 and "garbage" in caplog.text
