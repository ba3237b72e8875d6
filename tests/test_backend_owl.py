"""The owl backend (OWLv2 / OWL-ViT) on tiny random models built offline, through the real loader.

No OWL weights exist offline, so each model family gets a tiny random checkpoint (config ->
model -> save_pretrained, with a byte-level BPE tokenizer and an image processor written here).
Random weights give random boxes, so the tests assert what must hold for any weights: phrases as
labels, boxes in the original (non-square) photo's pixels, scores in [0, 1], the cached text path
equal to the plain full forward, the text tower run once per query set, and a valid pipeline
status.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from photos import load_photo
from transformers import (
    CLIPTokenizer,
    Owlv2Config,
    Owlv2ForObjectDetection,
    Owlv2ImageProcessor,
    Owlv2Processor,
    OwlViTConfig,
    OwlViTForObjectDetection,
    OwlViTImageProcessor,
    OwlViTProcessor,
)

from vlm_ros.backends import create_backend
from vlm_ros.backends.base import BackendError
from vlm_ros.backends.detections import suppress_duplicates
from vlm_ros.backends.owl import EVERYTHING_QUERIES, OwlBackend
from vlm_ros.core.grounding import GroundingConfig
from vlm_ros.core.pipeline import Pipeline, PipelineConfig
from vlm_ros.core.session import CommandSession
from vlm_ros.core.types import STATUSES, Frame
from vlm_ros.ros.params import NodeSettings

IMAGE_SIZE = 64
MAX_TOKENS = 16
QUERIES = ["a red cup", "a person"]

# model_type -> (config, model, image processor, processor) classes of the family.
FAMILIES = {
    "owlv2": (Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor),
    "owlvit": (OwlViTConfig, OwlViTForObjectDetection, OwlViTImageProcessor, OwlViTProcessor),
}


def _byte_alphabet() -> list[str]:
    """GPT-2/CLIP's printable stand-in for each of the 256 bytes (byte-level BPE's base symbols)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def _tiny_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer whose vocabulary is single bytes (with and without the word end mark).

    "!" is id 0 (CLIP's pad) and <|endoftext|> has the highest id, because OWL pools the text
    at the argmax token id and treats a query whose first id is 0 as padding.
    """
    alphabet = _byte_alphabet()
    tokens = alphabet + [f"{c}</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=[], pad_token="!", model_max_length=MAX_TOKENS)


def save_tiny_owl(folder: Path, model_type: str, score: float | None = None) -> Path:
    """A tiny random OWL checkpoint; ``score``: every patch scores about this for any query
    (the class head's scale made tiny and its shift set: sigmoid((sim + shift) * 0.01))."""
    config_cls, model_cls, image_processor_cls, processor_cls = FAMILIES[model_type]
    tokenizer = _tiny_tokenizer()
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 2}
    config = config_cls(
        text_config={**tower, "vocab_size": len(tokenizer), "max_position_embeddings": MAX_TOKENS,
                     "bos_token_id": tokenizer.bos_token_id,
                     "eos_token_id": tokenizer.eos_token_id, "pad_token_id": 0},
        vision_config={**tower, "image_size": IMAGE_SIZE, "patch_size": 16},
        projection_dim=32,
    )
    torch.manual_seed(0)
    model = model_cls(config).eval()
    # Random box heads saturate the sigmoid (zero-width boxes); a near-zero last layer leaves each
    # patch's box at the model's grid prior plus a little noise, as a trained model roughly is.
    with torch.no_grad():
        model.box_head.dense2.weight.normal_(std=0.01)
        model.box_head.dense2.bias.zero_()
        if score is not None:
            head = model.class_head
            head.logit_scale.weight.zero_()
            head.logit_scale.bias.fill_(math.log(0.01))  # elu(log 0.01) + 1 = 0.01
            head.logit_shift.weight.zero_()
            head.logit_shift.bias.fill_(math.log(score / (1 - score)) / 0.01)
    model.save_pretrained(folder)
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    image_processor = image_processor_cls(size=size, crop_size=size, do_center_crop=False)
    processor_cls(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> OwlBackend:
    folder = save_tiny_owl(tmp_path_factory.mktemp(request.param), request.param)
    return OwlBackend(model=str(folder), device="cpu", score_threshold=0.0, example_threshold=0.0)


@pytest.fixture(scope="module")
def zidane() -> np.ndarray:
    return load_photo("zidane")  # 1280x720: non-square, so the padding frame matters


def test_loads_the_family_named_by_the_saved_config(backend: OwlBackend) -> None:
    expected = FAMILIES[backend.info()["model_type"]][1]
    assert isinstance(backend.model, expected)
    assert backend.vocabulary is None and backend.capabilities == {"relevance"}
    assert backend.info()["open_vocabulary"] is True


def test_detect_labels_phrases_with_boxes_in_the_original_pixels(
    backend: OwlBackend, zidane: np.ndarray
) -> None:
    height, width = zidane.shape[:2]
    detections = backend.detect(zidane, QUERIES)
    assert detections, "score_threshold 0 keeps every visible box"
    for det in detections:
        assert det.label in QUERIES and det.phrase == det.label
        assert 0.0 <= det.score <= 1.0
        x1, y1, x2, y2 = det.bbox
        assert 0.0 <= x1 < x2 <= width and 0.0 <= y1 < y2 <= height
    scores = [d.score for d in detections]
    assert scores == sorted(scores, reverse=True)
    again = backend.detect(zidane, QUERIES)
    assert [(d.label, d.bbox, d.score) for d in again] == \
        [(d.label, d.bbox, d.score) for d in detections]


def test_boxes_use_the_models_coordinate_frame(backend: OwlBackend, zidane: np.ndarray) -> None:
    """Unclipped boxes = normalised cxcywh x (padded square side | image width/height)."""
    height, width = zidane.shape[:2]
    logits, boxes, _ = backend.raw_outputs(zidane, QUERIES)
    best = int(torch.sigmoid(logits[0].max(dim=-1).values).argmax())
    cx, cy, w, h = boxes[0, best].tolist()
    side = max(height, width)
    sx, sy = (side, side) if backend.family.pads_to_square else (width, height)
    expected = np.clip([(cx - w / 2) * sx, (cy - h / 2) * sy, (cx + w / 2) * sx,
                        (cy + h / 2) * sy], 0, [width, height, width, height])
    found = [d.bbox for d in backend.detect(zidane, QUERIES)]
    assert expected[2] - expected[0] >= 1 and expected[3] - expected[1] >= 1
    assert np.allclose(found[0], expected, atol=1e-3)  # the best box survives NMS first


def test_pixel_values_equal_the_reference_image_processor(
    backend: OwlBackend, zidane: np.ndarray
) -> None:
    """Our preprocessing is the family's image processor's (OWLv2: pad the 1280x720 photo to a
    square, then its anti-aliased resize) - no shrink of our own before it."""
    image_processor_cls = FAMILIES[backend.info()["model_type"]][2]
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    reference = image_processor_cls(size=size, crop_size=size, do_center_crop=False)(
        images=zidane, return_tensors="pt")["pixel_values"]
    ours = backend.pixel_values(zidane)
    assert ours.shape == reference.shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    torch.testing.assert_close(ours, reference.float(), rtol=0, atol=1e-6)


def test_cached_text_path_equals_the_full_forward(backend: OwlBackend, zidane: np.ndarray) -> None:
    inputs = backend.processor(text=[QUERIES], images=zidane, return_tensors="pt")
    with torch.inference_mode():
        full = backend.model(**inputs)
    logits, boxes, grid = backend.raw_outputs(zidane, QUERIES)
    assert logits.shape == full.logits.shape == (1, grid[0] * grid[1], len(QUERIES))
    torch.testing.assert_close(logits, full.logits.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(boxes, full.pred_boxes.float(), rtol=1e-5, atol=1e-5)


def test_text_tower_runs_once_per_query_set(backend: OwlBackend, zidane: np.ndarray) -> None:
    calls: list[int] = []
    hook = backend.text_model.register_forward_hook(lambda *_: calls.append(1))
    try:
        fresh = ["a blue bowl", "a chair"]
        backend.detect(zidane, fresh)
        backend.detect(zidane[::-1].copy(), fresh)  # another frame, same command
        assert len(calls) == 1
        backend.detect(zidane, ["a dog"])
        assert len(calls) == 2
    finally:
        hook.remove()


def test_empty_queries_detect_everything_with_the_coco_names(
    backend: OwlBackend, zidane: np.ndarray
) -> None:
    """No phrase = "everything you can see" (Backend.detect's contract): the COCO class names are
    asked for, and one object is kept once even when two names box it."""
    everything = backend.detect(zidane, [])
    assert everything, "score_threshold 0 keeps boxes"
    assert {det.label for det in everything} <= set(EVERYTHING_QUERIES)
    boxes = np.array([det.bbox for det in everything])
    scores = np.array([det.score for det in everything])
    kept = suppress_duplicates(boxes, scores, np.zeros(len(boxes), int), backend.nms_iou, 1.1)
    assert len(kept) == len(everything), "class-agnostic NMS: no object under two names"
    again = backend.detect(zidane, ["", "  "])  # nothing left to ask: everything too
    assert [(d.label, d.bbox) for d in again] == [(d.label, d.bbox) for d in everything]


def test_relevance_map_covers_the_image(backend: OwlBackend) -> None:
    coffee = load_photo("coffee")  # 600x400
    relevance = backend.relevance_map(coffee, "a cup")
    assert relevance.shape == coffee.shape[:2] and relevance.dtype == np.float32
    assert 0.0 <= relevance.min() and relevance.max() <= 1.0
    assert relevance.std() > 0  # patches differ: it is a map, not a constant


def test_detect_by_example_finds_boxes_in_the_image(backend: OwlBackend, zidane: np.ndarray) -> None:
    example = zidane[200:500, 500:800].copy()
    detections = backend.detect_by_example(zidane, example)
    height, width = zidane.shape[:2]
    assert detections
    for det in detections:
        assert det.label == "example" and 0.0 <= det.score <= 1.0
        x1, y1, x2, y2 = det.bbox
        assert 0.0 <= x1 < x2 <= width and 0.0 <= y1 < y2 <= height


def _reference_image_guided(backend: OwlBackend, rgb: np.ndarray, example: np.ndarray,
                            threshold: float) -> np.ndarray:
    """transformers' own path: processor -> image_guided_detection ->
    post_process_image_guided_detection (NMS 0.3), boxes clipped to the photo like ours."""
    inputs = backend.processor(images=rgb, query_images=example, return_tensors="pt")
    with torch.inference_mode():
        outputs = backend.model.image_guided_detection(**inputs)
    height, width = rgb.shape[:2]
    side = max(height, width)
    target = [side, side] if backend.family.pads_to_square else [height, width]
    results = backend.processor.post_process_image_guided_detection(
        outputs=outputs, threshold=threshold, nms_threshold=0.3,
        target_sizes=torch.tensor([target]))
    boxes = results[0]["boxes"].numpy().astype(np.float64) if results else np.zeros((0, 4))
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    visible = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    return boxes[visible]


def _sorted_boxes(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return boxes[np.lexsort(boxes.T[::-1])]


def test_detect_by_example_matches_transformers_image_guided_post_processing(
    backend: OwlBackend, zidane: np.ndarray
) -> None:
    """Same boxes (within 1 px) as image_guided_detection + post_process_image_guided_detection
    on the non-square photo - NMS 0.3 over all boxes, the threshold, the relative cut - not the
    text-query post-processing (NMS 0.5)."""
    example = zidane[200:500, 500:800].copy()
    loose = backend.detect_by_example(zidane, example)  # example_threshold 0
    middle = float(np.median([det.score for det in loose]))
    for threshold in (0.0, middle):
        backend.example_threshold = threshold
        try:
            ours = backend.detect_by_example(zidane, example)
        finally:
            backend.example_threshold = 0.0
        reference = _reference_image_guided(backend, zidane, example, threshold)
        assert len(ours) == len(reference) > 0, threshold
        np.testing.assert_allclose(_sorted_boxes([d.bbox for d in ours]),
                                   _sorted_boxes(reference), atol=1.0)
        assert all(det.score >= threshold for det in ours)
    assert len(backend.detect_by_example(zidane, example)) == len(loose)


def test_example_threshold_defaults_to_the_documented_values(backend: OwlBackend) -> None:
    """transformers documents 0.9 for OWLv2 and 0.6 for OWL-ViT image-guided detection."""
    default = OwlBackend(model=backend.model_id, device="cpu")
    expected = {"owlv2": 0.9, "owlvit": 0.6}[default.info()["model_type"]]
    assert default.example_threshold == expected == default.info()["example_threshold"]
    assert default.score_threshold == default.default_score_threshold == 0.1
    with pytest.raises(BackendError, match="example_threshold"):
        OwlBackend(model=backend.model_id, device="cpu", example_threshold=1.5)


@pytest.fixture(scope="module")
def calibrated_owl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OWLv2 whose every box scores about 0.15: kept at OWL's 0.1, dropped at 0.3."""
    return save_tiny_owl(tmp_path_factory.mktemp("owl015"), "owlv2", score=0.15)


def _grab_the_cup(settings: NodeSettings, model: Path) -> tuple[OwlBackend, object]:
    """The node's construction path: backend from backend_kwargs, the core from
    pipeline_config, one command on a photo."""
    options = {**settings.backend_kwargs(), "model": str(model), "device": "cpu"}
    backend = OwlBackend(**options)
    pipeline = Pipeline(backend, settings.pipeline_config())
    return backend, CommandSession(pipeline).run("grab the cup", Frame(rgb=load_photo("coffee")))


def test_unset_score_threshold_runs_owl_at_its_own_default_end_to_end(
    calibrated_owl: Path
) -> None:
    backend, result = _grab_the_cup(NodeSettings(), calibrated_owl)
    assert backend.score_threshold == 0.1
    assert result.candidates, result.message
    assert all(0.14 < c.score < 0.16 for c in result.candidates)
    assert not any("dropped" in " ".join(c.reasons) for c in result.candidates)
    assert result.status in ("ok", "ambiguous"), result.message


def test_a_user_score_threshold_drops_owls_low_scores(calibrated_owl: Path) -> None:
    backend, result = _grab_the_cup(NodeSettings().changed({"score_threshold": 0.3}),
                                    calibrated_owl)
    assert backend.score_threshold == 0.3
    assert result.status == "not_found"
    # The core's floor is the user's too, even when the detector itself runs lower.
    backend.score_threshold = 0.1
    config = PipelineConfig(grounding=GroundingConfig(min_score=0.3))
    result = CommandSession(Pipeline(backend, config)).run("grab the cup",
                                                           Frame(rgb=load_photo("coffee")))
    assert result.status == "not_found"
    assert result.candidates and all("score 0.15 < 0.30" in " ".join(c.reasons)
                                     for c in result.candidates)


def test_pipeline_handles_a_command(backend: OwlBackend) -> None:
    frame = Frame(rgb=load_photo("coffee"))
    result = CommandSession(Pipeline(backend)).run("grab the cup", frame)
    assert result.status in {"ok", "not_found", "ambiguous"}
    assert result.status in STATUSES


def test_registry_creates_the_owl_backend(tmp_path: Path) -> None:
    folder = save_tiny_owl(tmp_path / "owlv2", "owlv2")
    created = create_backend("owl", model=str(folder), device="cpu")
    assert isinstance(created, OwlBackend) and created.name == "owl"


def test_unknown_model_offline_raises_with_advice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendError, match="huggingface-cli download"):
        OwlBackend(model="nobody/no-such-owl-model", device="cpu")
    with pytest.raises(BackendError, match="folder"):
        OwlBackend(model=str(tmp_path), device="cpu")  # exists, but holds no config


def test_bfloat16_weights_take_matching_inputs(backend: OwlBackend, zidane: np.ndarray) -> None:
    """dtype flows from the loaded weights to pixels and text tokens (the GPU path, on the CPU)."""
    half = OwlBackend(model=backend.model_id, device="cpu", dtype="bfloat16", score_threshold=0.0)
    assert half.info()["dtype"] == "bfloat16"
    height, width = zidane.shape[:2]
    for det in half.detect(zidane, QUERIES):
        x1, y1, x2, y2 = det.bbox
        assert det.label in QUERIES and 0.0 <= x1 < x2 <= width and 0.0 <= y1 < y2 <= height
    assert half.relevance_map(zidane, "a person").dtype == np.float32
