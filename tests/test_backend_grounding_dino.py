"""The grounding_dino adapter on tiny random Grounding DINO / MM-Grounding-DINO checkpoints.

No real weights exist offline, so each model is built from a tiny transformers config, saved with a
processor made offline (a BERT vocab file written here), and loaded back through the adapter's own
``load_pretrained`` path - the same code a real checkpoint takes.  Random weights give random boxes,
so the tests assert what must hold for any weights: boxes in the ORIGINAL pixels of a non-square
photo, scores in [0, 1], labels that are the caller's query phrases verbatim, class-wise NMS,
determinism, and that the result flows through the Pipeline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")

from photos import load_photo  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForZeroShotObjectDetection,
    BertConfig,
    BertTokenizer,
    GroundingDinoConfig,
    GroundingDinoImageProcessor,
    GroundingDinoProcessor,
    MMGroundingDinoConfig,
    SwinConfig,
)

from vlm_ros.backends import create_backend  # noqa: E402
from vlm_ros.backends.base import BackendError  # noqa: E402
from vlm_ros.backends.grounding_dino import (  # noqa: E402
    GroundingDinoBackend,
    phrase_token_spans,
    prompt_phrase,
)
from vlm_ros.core.pipeline import Pipeline  # noqa: E402
from vlm_ros.core.session import CommandSession
from vlm_ros.core.types import Frame  # noqa: E402

WORDS = ("a", "red", "cup", "person", "dog", "the", "man", "tie", "coffee", "bowl", "##s",
         "object")
MAX_TEXT_LEN = 32


def _bert_vocab() -> list[str]:
    """A vocab whose special ids match real BERT (the model hard-codes [CLS]=101, [SEP]=102,
    "."=1012, "?"=1029 to split the prompt into phrases), padded with unused entries."""
    vocab = ["[PAD]", *(f"[unused{i}]" for i in range(1, 100)), "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += WORDS
    vocab += [f"[unused{i}]" for i in range(len(vocab), 1012)] + ["."]
    vocab += [f"[unused{i}]" for i in range(len(vocab), 1029)] + ["?"]
    return vocab


def save_tiny_grounding_dino(folder: Path, config_class: type) -> Path:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    vocab = _bert_vocab()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True)
    images = GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    GroundingDinoProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    config = config_class(
        backbone_config=SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1],
                                   num_heads=[1, 1], window_size=4,
                                   out_features=["stage1", "stage2"]),
        text_config=BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=32,
                               max_position_embeddings=64),
        d_model=32, encoder_layers=1, decoder_layers=2,  # 1 decoder layer breaks weight tying
        encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2,
        decoder_attention_heads=2, num_queries=10, num_feature_levels=2, encoder_n_points=2,
        decoder_n_points=2, max_text_len=MAX_TEXT_LEN,
    )
    torch.manual_seed(0)
    AutoModelForZeroShotObjectDetection.from_config(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_grounding_dino(tmp_path_factory.mktemp("grounding_dino"), GroundingDinoConfig)


@pytest.fixture(scope="module")
def backend(tiny_model: Path) -> GroundingDinoBackend:
    return GroundingDinoBackend(model=str(tiny_model), device="cpu", score_threshold=0.0,
                                text_threshold=0.0)


@pytest.fixture(scope="module")
def zidane() -> np.ndarray:
    return load_photo("zidane")  # 1280x720: a non-square image the processor resizes to 96x54


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def test_prompt_phrase_is_lowercase_without_inner_separators() -> None:
    assert prompt_phrase("  Red  Cup ") == "red cup"
    assert prompt_phrase("st. john") == "st john"
    assert prompt_phrase(" . ") == ""


def test_phrase_spans_follow_the_separator_tokens(backend: GroundingDinoBackend) -> None:
    ids = backend.processor(text="a red cup. person.", return_tensors="pt")["input_ids"][0]
    tokens = backend.processor.tokenizer.convert_ids_to_tokens(ids.tolist())
    assert tokens == ["[CLS]", "a", "red", "cup", ".", "person", ".", "[SEP]"]
    spans = phrase_token_spans(ids.tolist(), backend._separator_id, backend._special_ids)
    assert spans == [[1, 2, 3], [5]]


def test_detect_returns_query_phrases_in_original_pixels(
    backend: GroundingDinoBackend, zidane: np.ndarray
) -> None:
    queries = ["Red cup", "person"]
    detections = backend.detect(zidane, queries)
    assert detections, "thresholds 0 must keep at least one of the 10 queries' boxes"
    height, width = zidane.shape[:2]
    for det in detections:
        assert det.label in queries and det.phrase == det.label
        assert 0.0 <= det.score <= 1.0
        x1, y1, x2, y2 = det.bbox
        assert 0.0 <= x1 < x2 <= width and 0.0 <= y1 < y2 <= height
    # Boxes span the full-resolution frame, not the 96x54 network input.
    assert max(det.bbox[2] for det in detections) > 96 or max(d.bbox[3] for d in detections) > 54
    scores = [det.score for det in detections]
    assert scores == sorted(scores, reverse=True)


def test_same_phrase_boxes_are_non_maximum_suppressed(
    backend: GroundingDinoBackend, zidane: np.ndarray
) -> None:
    detections = backend.detect(zidane, ["person", "tie"])
    for i, a in enumerate(detections):
        for b in detections[i + 1:]:
            if a.label == b.label:
                assert _iou(a.bbox, b.bbox) <= backend.nms_iou


def test_detect_is_deterministic(backend: GroundingDinoBackend, zidane: np.ndarray) -> None:
    first = backend.detect(zidane, ["person", "dog"])
    second = backend.detect(zidane, ["person", "dog"])
    assert [(d.label, d.score, d.bbox) for d in first] == [(d.label, d.score, d.bbox) for d in second]


def test_thresholds_gate_boxes_and_labels(tiny_model: Path, zidane: np.ndarray) -> None:
    strict = GroundingDinoBackend(model=str(tiny_model), device="cpu", box_threshold=0.5,
                                  text_threshold=0.6)
    assert strict.box_threshold == 0.5
    assert all(det.score >= 0.6 for det in strict.detect(zidane, ["person", "a red cup"]))


def test_empty_queries_ask_for_everything_with_the_generic_prompt(
    backend: GroundingDinoBackend, zidane: np.ndarray
) -> None:
    """No phrase = "everything you can see": the prompt "object ." and its boxes, as asking for
    "object" gives (the contract of Backend.detect; "grab the red thing" needs boxes)."""
    everything = backend.detect(zidane, [])
    assert everything, "thresholds 0 keep the generic prompt's boxes"
    assert {det.label for det in everything} == {"object"}
    assert all(det.score > 0.0 for det in everything)  # "object" is a real phrase of the prompt
    as_object = backend.detect(zidane, ["object"])
    assert [(d.bbox, d.score) for d in everything] == [(d.bbox, d.score) for d in as_object]
    assert [(d.bbox, d.score) for d in backend.detect(zidane, ["  ", "."])] == \
        [(d.bbox, d.score) for d in everything]  # nothing left to ask: everything


def test_queries_are_normalised_once_in_the_template(
    backend: GroundingDinoBackend, zidane: np.ndarray
) -> None:
    """Stripped, empties and repeats dropped; the prompt is lowercase, labels stay verbatim."""
    request = backend.request(zidane, ["  Red cup ", "", "Red cup", "person", " . "])
    assert request is not None and not request.everything
    assert request.phrases == ("Red cup", "person")
    assert request.prompts == ("red cup", "person")
    with pytest.raises(BackendError, match="RGB"):
        backend.detect(zidane[..., 0], ["person"])


def test_box_threshold_is_the_score_threshold(tiny_model: Path) -> None:
    """One threshold: the node's live score_threshold moves the box gate (box_threshold alias)."""
    default = GroundingDinoBackend(model=str(tiny_model), device="cpu")
    assert default.score_threshold == default.box_threshold == default.default_score_threshold
    default.score_threshold = 0.55
    assert default.box_threshold == 0.55 and default.info()["box_threshold"] == 0.55
    with pytest.raises(BackendError, match="score_threshold"):
        default.score_threshold = 1.5


def test_too_long_prompt_is_a_backend_error(backend: GroundingDinoBackend) -> None:
    with pytest.raises(BackendError, match="at most"):
        backend.detect(load_photo("coffee"), [f"red cup {w}" for w in WORDS])


def test_relevance_map_covers_the_image(backend: GroundingDinoBackend) -> None:
    rgb = load_photo("coffee")  # 600x400
    heat = backend.relevance_map(rgb, "red cup")
    assert heat.shape == rgb.shape[:2] and heat.dtype == np.float32
    assert 0.0 <= heat.min() <= heat.max() <= 1.0
    assert heat.std() > 0.0, "per-location encoder scores, not a constant"
    np.testing.assert_array_equal(heat, backend.relevance_map(rgb, "red cup"))
    assert not backend.relevance_map(rgb, " ").any()


def test_pipeline_grounds_a_command(backend: GroundingDinoBackend, zidane: np.ndarray) -> None:
    result = CommandSession(Pipeline(backend)).run("grab the cup", Frame(rgb=zidane))
    assert result.status in ("ok", "not_found", "ambiguous"), result.message
    for cand in result.candidates:
        assert cand.label == "cup"


def test_registry_creates_the_backend(tiny_model: Path) -> None:
    created = create_backend("grounding_dino", model=str(tiny_model), device="cpu")
    assert isinstance(created, GroundingDinoBackend)
    info = created.info()
    assert info["open_vocabulary"] is True and info["capabilities"] == ["relevance"]
    assert info["model_type"] == "grounding-dino"
    created.warmup()


def test_missing_folder_is_a_backend_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError):
        GroundingDinoBackend(model=str(tmp_path / "no_such_model"), device="cpu")


def test_mm_grounding_dino_loads_through_the_same_adapter(
    tmp_path: Path, zidane: np.ndarray
) -> None:
    folder = save_tiny_grounding_dino(tmp_path / "mm", MMGroundingDinoConfig)
    mm = GroundingDinoBackend(model=str(folder), device="cpu", score_threshold=0.0,
                              text_threshold=0.0)
    assert mm.info()["model_type"] == "mm-grounding-dino"
    detections = mm.detect(zidane, ["person", "dog"])
    assert detections
    for det in detections:
        assert det.label in ("person", "dog")
        assert 0.0 <= det.bbox[0] < det.bbox[2] <= 1280 and 0.0 <= det.bbox[1] < det.bbox[3] <= 720
    heat = mm.relevance_map(zidane, "person")
    assert heat.shape == (720, 1280) and 0.0 <= heat.min() <= heat.max() <= 1.0
