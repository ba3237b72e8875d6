"""Florence-2 adapter on a tiny random Florence2ForConditionalGeneration built in the test.

Random weights generate random tokens (often just the end token), so end-to-end tests assert
what must hold for any output: the real processor -> generate -> parse path runs on a real photo,
boxes lie inside the ORIGINAL image with scores in [0, 1], describe returns a string and the
pipeline answers with a valid status.  Post-processing (location tokens -> pixels, phrase
selection, scores) is tested deterministically on the raw strings Florence-2 writes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from photos import load_photo
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    BartTokenizer,
    CLIPImageProcessorPil,
    Florence2Config,
    Florence2ForConditionalGeneration,
    Florence2Processor,
)

from vlm_ros.backends import create_backend
from vlm_ros.backends.base import BackendError
from vlm_ros.backends.florence2 import SKIPPED_PHRASES, Florence2Backend, answering_phrase
from vlm_ros.backends.torch_base import TextRequest
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.session import CommandSession
from vlm_ros.core.types import Frame

IMAGE_SIDE = 64  # the tiny DaViT sees 64 x 64: 2 x 2 final feature map + 1 pooled token
IMAGE_TOKENS = (IMAGE_SIDE // 32) ** 2 + 1
EXTRA_TOKENS = ["<od>", "</od>", "<ocr>", "</ocr>", "<poly>", "</poly>", "<sep>"] + [
    f"<loc_{i}>" for i in range(1000)]


def _tiny_tokenizer() -> BartTokenizer:
    """Byte-level BPE (256 byte symbols, no merges) + BART specials, <image> and <loc_N>."""
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = BartTokenizer(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                              pad_token="<pad>", unk_token="<unk>",
                              extra_special_tokens={"image_token": "<image>"})
    tokenizer.add_tokens(EXTRA_TOKENS, special_tokens=True)
    return tokenizer


def save_tiny_florence2(folder, allowed_tokens: list[str] | None = None,
                        post_processor_config: dict | None = None) -> str:
    """Save a tiny random Florence-2 + processor; ``allowed_tokens`` restricts what it may write
    (through the saved generation config, which ``generate`` honours like any checkpoint's);
    ``post_processor_config`` is the processor's parsing config, as ported checkpoints carry."""
    tokenizer = _tiny_tokenizer()
    image_processor = CLIPImageProcessorPil(
        size={"height": IMAGE_SIDE, "width": IMAGE_SIDE}, do_center_crop=False,
        crop_size={"height": IMAGE_SIDE, "width": IMAGE_SIDE}, image_seq_length=IMAGE_TOKENS)
    config = Florence2Config(
        vision_config=dict(depths=[1, 1, 1, 1], embed_dim=[8, 8, 16, 16], num_heads=[1, 1, 2, 2],
                           num_groups=[1, 1, 2, 2], window_size=2, projection_dim=32,
                           max_position_embeddings=16, drop_path_rate=0.0),
        text_config=dict(model_type="bart", vocab_size=len(tokenizer), d_model=32,
                         encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                         decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                         max_position_embeddings=128, bos_token_id=0, pad_token_id=1,
                         eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2),
        image_token_id=tokenizer.image_token_id,
    )
    torch.manual_seed(0)
    model = Florence2ForConditionalGeneration(config)
    if allowed_tokens is not None:
        allowed = set(tokenizer.convert_tokens_to_ids(allowed_tokens))
        model.generation_config.suppress_tokens = [
            i for i in range(len(tokenizer)) if i not in allowed]
        model.generation_config.min_new_tokens = 16  # no end token before a few boxes
    model.save_pretrained(folder)
    Florence2Processor(image_processor=image_processor, tokenizer=tokenizer,
                       post_processor_config=post_processor_config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return save_tiny_florence2(tmp_path_factory.mktemp("tiny_florence2"))


@pytest.fixture(scope="module")
def locating_backend(tmp_path_factory) -> Florence2Backend:
    """Random weights that may only write the letter "a", location tokens and the end token: real boxes flow
    through the whole generate -> score -> parse path."""
    folder = tmp_path_factory.mktemp("tiny_florence2_locations")
    return Florence2Backend(model=save_tiny_florence2(folder, ["a", "</s>"] + [f"<loc_{i}>" for i in range(1000)]),
                            device="cpu", max_new_tokens=40, score_threshold=0.0)


@pytest.fixture(scope="module")
def backend(model_dir) -> Florence2Backend:
    return Florence2Backend(model=model_dir, device="cpu", max_new_tokens=24)


def test_registry_loads_the_tiny_model_with_its_declared_traits(model_dir):
    backend = create_backend("florence2", model=model_dir, device="cpu")
    assert isinstance(backend, Florence2Backend)
    assert backend.vocabulary is None and backend.resolves_referring_expressions
    assert backend.capabilities == {"describe"}
    assert backend.info()["task"] == "<CAPTION_TO_PHRASE_GROUNDING>"


@pytest.mark.parametrize("queries", [["the coffee cup"], ["cup", "saucer"], []])
def test_detect_on_a_real_photo_keeps_boxes_inside_the_original_image(backend, queries):
    rgb = load_photo("coffee")  # 600 x 400, squashed to 64 x 64 by the processor
    height, width = rgb.shape[:2]
    detections = backend.detect(rgb, queries)
    assert isinstance(detections, list)
    for det in detections:
        x1, y1, x2, y2 = det.bbox
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert 0.0 <= det.score <= 1.0
        assert det.phrase in (queries or [None])


def _generation(backend: Florence2Backend, rgb: np.ndarray, phrase: str) -> tuple[str, list]:
    """(text, location scores) of the one generation the stages run for ``phrase``."""
    request = backend.request(rgb, [phrase])
    assert backend.task_prompts(request) == [f"<CAPTION_TO_PHRASE_GROUNDING>{phrase}"]
    (generation,) = backend.infer(rgb, request)[1]
    return generation


def test_the_template_stages_write_one_task_prompt_per_phrase(backend):
    rgb = load_photo("coffee")
    assert backend.default_score_threshold == 0.3 and backend.score_threshold == 0.3
    request = backend.request(rgb, ["  red cup ", "big   saucer", "red cup", " "])
    assert request.phrases == ("red cup", "big   saucer")  # stripped, repeats and empties dropped
    assert backend.task_prompts(request) == ["<CAPTION_TO_PHRASE_GROUNDING>red cup",
                                             "<CAPTION_TO_PHRASE_GROUNDING>big saucer"]
    everything = backend.request(rgb, [])
    assert everything.everything and everything.phrases == ()
    assert backend.task_prompts(everything) == ["<OD>"]
    assert backend.task_prompts(TextRequest((400, 600), "describe")) == \
        ["<MORE_DETAILED_CAPTION>"]
    inputs, outputs = backend.infer(rgb, request)
    assert len(inputs) == len(outputs) == 2


def test_generated_locations_become_scored_boxes_in_the_original_image(locating_backend):
    rgb = load_photo("coffee")
    height, width = rgb.shape[:2]
    text, scores = _generation(locating_backend, rgb, "cup")
    assert text.count("<loc_") == len(scores) >= 4
    detections = locating_backend.detect(rgb, ["cup"])
    assert detections, text
    for det in detections:
        x1, y1, x2, y2 = det.bbox
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert 0.0 <= det.score <= 1.0 and det.phrase == "cup"
    assert [d.score for d in detections] == sorted((d.score for d in detections), reverse=True)


def test_generation_is_deterministic_and_scores_one_per_location_token(backend):
    rgb = load_photo("coffee")
    text, scores = _generation(backend, rgb, "cup")
    assert (text, scores) == _generation(backend, rgb, "cup")
    assert len(scores) == text.count("<loc_")
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_postprocess_maps_location_bins_to_original_pixels(backend):
    # Raw phrase-grounding output from transformers' Florence-2 processor tests
    # (https://github.com/huggingface/transformers/blob/main/tests/models/florence2/test_processing_florence2.py)
    text = ("</s><s>red car<loc_53><loc_334><loc_933><loc_775><loc_711><loc_203><loc_906>"
            "<loc_546>sky<loc_0><loc_0><loc_1000><loc_300></s>")
    detections = backend.parse(text, (600, 400), None, "red car")
    # Only the first grounded phrase answers the query: two red-car boxes, no "sky".
    assert [d.label for d in detections] == ["red car", "red car"]
    assert detections[0].bbox == pytest.approx((53.5 * 0.6, 334.5 * 0.4, 933.5 * 0.6, 775.5 * 0.4))
    assert all(d.phrase == "red car" and d.score == 1.0 for d in detections)


def test_postprocess_scores_boxes_by_their_location_tokens_and_filters(backend):
    text = "</s><s>cup<loc_10><loc_10><loc_50><loc_50><loc_60><loc_60><loc_90><loc_90></s>"
    detections = backend.parse(text, (100, 100), [0.9] * 4 + [0.1] * 4, "cup")
    assert len(detections) == 1 and detections[0].score == pytest.approx(0.9)


def test_od_output_keeps_category_labels(backend):
    # <OD> output format, same transformers test file
    text = "</s><s>car<loc_53><loc_334><loc_933><loc_775>door handle<loc_425><loc_504><loc_474><loc_516></s><pad>"
    detections = backend.parse(text, (1000, 1000), None, None)
    assert sorted(d.label for d in detections) == ["car", "door handle"]
    assert all(d.phrase is None for d in detections)


def test_describe_returns_a_string(backend):
    assert isinstance(backend.describe(load_photo("coffee")), str)


def test_pipeline_gives_a_valid_status(backend):
    result = CommandSession(Pipeline(backend)).run("grab the red cup", Frame(rgb=load_photo("coffee")))
    assert result.status in ("ok", "not_found", "ambiguous")


def test_bad_image_and_bad_options_are_backend_errors(backend, model_dir):
    with pytest.raises(BackendError, match="uint8"):
        backend.detect(np.zeros((8, 8, 3), np.float32), ["cup"])
    with pytest.raises(BackendError, match="task"):
        Florence2Backend(model=model_dir, device="cpu", task="<OCR>")


# ------------------------------------------------------------------ phrases the reference skips
# A checkpoint's post_processor_config as transformers' Florence-2 port writes it (convert script:
# phrase_grounding.banned_grounding_tokens; here the entries this test's answers use).
CHECKPOINT_POST_PROCESSING = {"phrase_grounding": {"banned_grounding_tokens": [
    "the image", "image", "it", "the", "a", "this"]}}
# <CAPTION_TO_PHRASE_GROUNDING> output in the documented format: "</s><s>" then each phrase
# followed by its <loc_N> boxes (transformers' Florence-2 processor tests), here with the filler
# phrase the model writes first for whole-image captions.
GROUNDED = ("</s><s>the image<loc_0><loc_0><loc_999><loc_999>a red cup<loc_412><loc_205>"
            "<loc_688><loc_733><loc_102><loc_300><loc_251><loc_598>the wooden table<loc_3>"
            "<loc_610><loc_996><loc_998>it<loc_500><loc_500><loc_600><loc_600></s>")
TASK = "<CAPTION_TO_PHRASE_GROUNDING>"


@pytest.fixture(scope="module")
def checkpoint_backend(tmp_path_factory) -> Florence2Backend:
    folder = save_tiny_florence2(tmp_path_factory.mktemp("tiny_florence2_ported"),
                                 post_processor_config=CHECKPOINT_POST_PROCESSING)
    return Florence2Backend(model=folder, device="cpu", max_new_tokens=8)


@pytest.mark.parametrize(("query", "answer"), [
    ("a red cup", "a red cup"), ("red cup", "a red cup"), ("the cup", "a red cup"),
    ("the table", "the wooden table"), ("the red cup on the table", "a red cup"),
])
def test_phrase_grounding_skips_what_the_reference_skips_and_answers_the_query(
        checkpoint_backend, query, answer):
    height, width = load_photo("coffee").shape[:2]  # 600 x 400: x and y scale differently
    reference = checkpoint_backend.processor.post_process_generation(
        GROUNDED, task=TASK, image_size=(width, height))[TASK]
    assert "the image" not in reference["labels"] and "it" not in reference["labels"]
    expected = [box for box, label in zip(reference["bboxes"], reference["labels"]) if label == answer]
    assert expected
    detections = checkpoint_backend.parse(GROUNDED, (width, height), None, query)
    assert {d.label for d in detections} == {answer}
    ours = sorted(d.bbox for d in detections)
    assert len(ours) == len(expected)
    for box, ref in zip(ours, sorted(expected)):
        assert box == pytest.approx(ref, abs=1.0)


def test_a_processor_without_post_processing_config_skips_the_original_list(backend):
    assert backend.processor.post_processor_config is None
    assert backend.skipped_phrases == SKIPPED_PHRASES
    assert {"the image", "it", "image", "the"} <= SKIPPED_PHRASES
    detections = backend.parse(GROUNDED, (600, 400), None, "cup")
    assert {d.label for d in detections} == {"a red cup"} and len(detections) == 2


def test_only_filler_phrases_answer_nothing(checkpoint_backend):
    text = "</s><s>the image<loc_0><loc_0><loc_999><loc_999>it<loc_1><loc_1><loc_9><loc_9></s>"
    assert checkpoint_backend.parse(text, (600, 400), None, "cup") == []


def test_answering_phrase_prefers_the_exact_query_then_shared_words_then_the_first():
    skipped = frozenset({"the image"})
    assert answering_phrase(["the image", "cup", "red cup"], "red cup", skipped) == "red cup"
    assert answering_phrase(["mug", "table"], "the table", skipped) == "table"
    assert answering_phrase(["mug", "plate"], "the cup", skipped) == "mug"
    assert answering_phrase(["the image"], "cup", skipped) is None
