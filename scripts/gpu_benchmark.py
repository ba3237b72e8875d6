#!/usr/bin/env python3
"""Per-frame GPU latency of each vision-language backend, with random weights of the REAL sizes.

Why random weights: the benchmark machine has no network and no checkpoints, and latency depends
on the architecture and the input shapes, not on the weight values.  Every model is built from a
config whose hyper-parameters are written below (with the config.json they come from), on the
device, so one short command measures what a robot would see per frame:

* owl (OWLv2-B/16, 960 px): ``full`` = the plain ``model(**inputs)`` forward (text and image
  towers + heads), ``image_only`` = the adapter's own cached-text path
  (``OwlBackend.raw_outputs``: image tower + class head against cached query embeddings + box
  head), and ``detect_end_to_end`` = ``OwlBackend.detect`` on a 640x480 frame (CPU
  preprocessing and post-processing included).  The OWL model is saved to a temporary folder and
  loaded through the adapter's real loader; for ``image_only`` the processor's output for the
  frame is computed once and fed as a tensor (the instance's ``pixel_values`` returns it), so the
  figure is GPU work, not CPU preprocessing.
* grounding_dino (Swin-T + BERT-base): ``full`` only - it fuses text and image in the encoder, so
  an image-only pass with cached text does not exist.
* florence2 (Florence-2-base) and qwen_vl (Qwen2.5-VL-3B): ``vision_encoder`` (the image tower)
  and ``generate`` (a greedy generation of exactly ``--new-tokens`` tokens, prefill included).

Non-OWL backends are fed tensors of the shapes their processors produce for a 640x480 frame
(no tokenizer files exist offline; token ids are fixed random ids).  Timing: warm-up calls, then
N calls each bracketed by CUDA events and ``torch.cuda.synchronize`` (``perf_counter`` on the
CPU); median and p90 in ms.  ``--tiny`` swaps every config for a tiny one so the whole script runs
on a CPU in seconds (the smoke test CI runs); its numbers say nothing about real latency.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # the GPU machine runs from a plain checkout, not installed
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

BACKENDS = ("owl", "grounding_dino", "florence2", "qwen_vl")
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
FRAME_HW = (480, 640)  # a typical robot camera frame (RealSense colour stream default)
QUERIES = ("a red cup", "a person")
OWL_TARGET_MS = 8.0  # the target: OWLv2-B/16 @ 960 px, fp16, cached text, on an H100
RESULTS_BEGIN = "<!-- gpu_benchmark:results -->"
RESULTS_END = "<!-- /gpu_benchmark:results -->"

Call = Callable[[], Any]


@dataclass
class Settings:
    """What every backend's runner needs to know about this run."""

    device: torch.device
    tiny: bool
    iterations: int
    warmup: int
    generate_iterations: int
    new_tokens: int
    workdir: Path


# ---------------------------------------------------------------------------------------- timing
def time_call(call: Call, device: torch.device, warmup: int, iterations: int) -> dict[str, Any]:
    """Median and p90 wall time (ms) of ``call`` after ``warmup`` untimed calls."""
    with torch.inference_mode():
        for _ in range(warmup):
            call()
        _synchronize(device)
        samples = []
        for _ in range(iterations):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                    enable_timing=True)
                start.record()
                call()
                end.record()
                torch.cuda.synchronize(device)
                samples.append(start.elapsed_time(end))
            else:
                begin = time.perf_counter()
                call()
                samples.append((time.perf_counter() - begin) * 1000.0)
    return {"median_ms": round(float(np.median(samples)), 3),
            "p90_ms": round(float(np.percentile(samples, 90)), 3),
            "iterations": len(samples)}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_frame(seed: int = 0) -> np.ndarray:
    """A fixed 640x480 RGB frame; content does not change the work any pass here does."""
    return np.random.default_rng(seed).integers(0, 256, (*FRAME_HW, 3), dtype=np.uint8)


def _build(model_class: type, config: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """Random-init ``model_class(config)`` directly on ``device`` in ``dtype``, eval mode."""
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:
            model = model_class(config)
    finally:
        torch.set_default_dtype(previous)
    return model.to(device=device, dtype=dtype).eval()


def _random_ids(count: int, low: int, high: int, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(low, high, count).tolist()


# ------------------------------------------------------------------------------------------- owl
def owl_config(tiny: bool) -> Any:
    """OWLv2-B/16 (google/owlv2-base-patch16-ensemble config.json): vision ViT-B/16 at 960 px
    (hidden 768, 12 layers, 12 heads, MLP 3072), text = CLIP-B text tower (hidden 512, 12 layers,
    8 heads, MLP 2048, vocab 49408, 16 tokens), projection 512."""
    from transformers import Owlv2Config

    if tiny:
        tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                 "num_attention_heads": 2}
        vision, text, projection = {**tower, "image_size": 64, "patch_size": 16}, dict(tower), 32
    else:
        vision = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                  "num_attention_heads": 12, "image_size": 960, "patch_size": 16}
        text = {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
                "num_attention_heads": 8}
        projection = 512
    tokenizer = owl_tokenizer()
    text.update(vocab_size=49408 if not tiny else len(tokenizer), max_position_embeddings=16,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=0)
    return Owlv2Config(text_config=text, vision_config=vision, projection_dim=projection)


def owl_tokenizer() -> Any:
    """A CLIP BPE tokenizer over single bytes (no merges): what the adapter needs, built offline.

    "!" is id 0 (CLIP's pad) and <|endoftext|> the highest id, because OWL pools the text at the
    argmax id and treats a query starting with id 0 as padding - as with CLIP's real vocabulary.
    """
    from transformers import CLIPTokenizer

    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    alphabet = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]
    tokens = alphabet + [f"{c}</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[], pad_token="!",
                         model_max_length=16)


def save_owl(settings: Settings) -> Path:
    """Random OWLv2 + offline processor saved once, so every dtype loads through the adapter."""
    from transformers import Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    folder = settings.workdir / "owl"
    if (folder / "config.json").exists():
        return folder
    config = owl_config(settings.tiny)
    model = _build(Owlv2ForObjectDetection, config, settings.device, torch.float32)
    model.save_pretrained(folder)
    del model
    side = config.vision_config.image_size
    size = {"height": side, "width": side}
    Owlv2Processor(image_processor=Owlv2ImageProcessor(size=size), tokenizer=owl_tokenizer()
                   ).save_pretrained(folder)
    return folder


def run_owl(settings: Settings, dtype_name: str) -> dict[str, Any]:
    from vlm_ros.backends.hf import to_device
    from vlm_ros.backends.owl import OwlBackend

    backend = OwlBackend(model=str(save_owl(settings)), device=str(settings.device),
                         dtype=dtype_name)
    rgb = synthetic_frame()
    queries = list(QUERIES)
    passes: dict[str, Any] = {}
    # End to end first: it needs the real preprocessing, which the image-only pass bypasses.
    passes["detect_end_to_end"] = time_call(lambda: backend.detect(rgb, queries), settings.device,
                                            settings.warmup, settings.generate_iterations)
    pixel_values = backend.pixel_values(rgb)
    tokens = to_device(backend.processor.tokenizer(queries, padding="max_length", truncation=True,
                                                   return_tensors="pt"),
                       backend.device, backend.dtype)
    passes["full"] = time_call(
        lambda: backend.model(input_ids=tokens["input_ids"],
                              attention_mask=tokens["attention_mask"],
                              pixel_values=pixel_values),
        settings.device, settings.warmup, settings.iterations)
    backend.pixel_values = lambda _rgb: pixel_values  # the tensor, not the CPU processor
    passes["image_only"] = time_call(lambda: backend.raw_outputs(rgb, queries), settings.device,
                                     settings.warmup, settings.iterations)
    passes["image_only"]["note"] = "OwlBackend.raw_outputs with the query embeddings cached"
    side = backend.processor.image_processor.size["height"]
    return {"model": f"OWLv2-B/16 @ {side} px" if not settings.tiny else "tiny OWLv2",
            "passes": passes}


# -------------------------------------------------------------------------------- grounding_dino
def grounding_dino_config(tiny: bool) -> Any:
    """IDEA-Research/grounding-dino-tiny: Swin-T backbone (embed 96, depths 2-2-6-2, heads
    3-6-12-24, window 7, stages 2-4), BERT-base text (768, 12 layers, vocab 30522), d_model 256,
    6+6 layers, FFN 2048, 8 heads, 900 queries, 4 feature levels, 4 points, max_text_len 256.
    These are transformers' GroundingDinoConfig defaults; they are spelled out so a change of
    defaults cannot silently change what is measured."""
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    if tiny:
        return GroundingDinoConfig(
            backbone_config=SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1],
                                       num_heads=[1, 1], window_size=4,
                                       out_features=["stage1", "stage2"]),
            text_config=BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, max_position_embeddings=64),
            d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32,
            decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2,
            num_queries=10, num_feature_levels=2, encoder_n_points=2, decoder_n_points=2,
            max_text_len=32)
    return GroundingDinoConfig(
        backbone_config=SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
                                   window_size=7, out_indices=[2, 3, 4]),
        text_config=BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                               num_attention_heads=12, intermediate_size=3072),
        d_model=256, encoder_layers=6, decoder_layers=6, encoder_ffn_dim=2048,
        decoder_ffn_dim=2048, encoder_attention_heads=8, decoder_attention_heads=8,
        num_queries=900, num_feature_levels=4, encoder_n_points=4, decoder_n_points=4,
        max_text_len=256, two_stage=True)


def run_grounding_dino(settings: Settings, dtype_name: str) -> dict[str, Any]:
    from transformers import GroundingDinoForObjectDetection

    device, dtype = settings.device, DTYPES[dtype_name]
    model = _build(GroundingDinoForObjectDetection, grounding_dino_config(settings.tiny), device,
                   dtype)
    # The processor's shape for 640x480: shortest edge 800, longest <= 1333 -> 800 x 1066.
    height, width = (64, 85) if settings.tiny else (800, 1066)
    # "[CLS] a red cup . a person . [SEP]" with BERT's real special ids (the model splits the
    # prompt into phrases on 101/102/1012); the words are fixed random ids.
    words = _random_ids(5, 2000, 3000)
    ids = [101, *words[:3], 1012, *words[3:], 1012, 102]
    inputs = {
        "pixel_values": torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0)
                                    ).to(device, dtype),
        "pixel_mask": torch.ones(1, height, width, dtype=torch.long, device=device),
        "input_ids": torch.tensor([ids], device=device),
        "token_type_ids": torch.zeros(1, len(ids), dtype=torch.long, device=device),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long, device=device),
    }
    passes = {
        "full": time_call(lambda: model(**inputs), device, settings.warmup, settings.iterations),
        "image_only": {"skipped": "not applicable: Grounding DINO fuses text and image features "
                                  "in its encoder, so no part of a frame's pass is text-only"},
    }
    return {"model": "Grounding DINO tiny (Swin-T) @ 800x1066" if not settings.tiny
            else "tiny Grounding DINO", "passes": passes}


# ------------------------------------------------------------------------------------- florence2
def florence2_config(tiny: bool) -> Any:
    """florence-community/Florence-2-base: DaViT (depths 1-1-9-1, dims 128-256-512-1024, heads and
    groups 4-8-16-32, window 12) projected to 768, 768 px input (24x24 + 1 = 577 image tokens);
    BART-base language model (d_model 768, 6+6 layers, 12 heads, FFN 3072, vocab 51289 + the
    <image> token the transformers port adds, id 51289)."""
    from transformers import Florence2Config

    if tiny:
        return Florence2Config(
            vision_config=dict(depths=[1, 1, 1, 1], embed_dim=[8, 8, 16, 16],
                               num_heads=[1, 1, 2, 2], num_groups=[1, 1, 2, 2], window_size=2,
                               projection_dim=32, max_position_embeddings=16),
            text_config=dict(model_type="bart", vocab_size=64, d_model=32, encoder_layers=1,
                             decoder_layers=1, encoder_attention_heads=2,
                             decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                             max_position_embeddings=128, bos_token_id=0, pad_token_id=1,
                             eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2),
            image_token_id=63)
    return Florence2Config(
        vision_config=dict(depths=[1, 1, 9, 1], embed_dim=[128, 256, 512, 1024],
                           num_heads=[4, 8, 16, 32], num_groups=[4, 8, 16, 32], window_size=12,
                           projection_dim=768, max_position_embeddings=50),
        text_config=dict(model_type="bart", vocab_size=51290, d_model=768, encoder_layers=6,
                         decoder_layers=6, encoder_attention_heads=12,
                         decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072,
                         max_position_embeddings=1024, bos_token_id=0, pad_token_id=1,
                         eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2),
        image_token_id=51289)


def run_florence2(settings: Settings, dtype_name: str) -> dict[str, Any]:
    from transformers import Florence2ForConditionalGeneration

    device, dtype = settings.device, DTYPES[dtype_name]
    config = florence2_config(settings.tiny)
    model = _build(Florence2ForConditionalGeneration, config, device, dtype)
    side = 64 if settings.tiny else 768  # the processor resizes every frame to a square
    image_tokens = (side // 32) ** 2 + 1
    # "<image>"*577 + "<s>Locate the phrases in the caption: a red cup</s>" (~12 ids).
    prompt = [0, *_random_ids(12, 4, min(config.text_config.vocab_size - 2, 50000)), 2]
    input_ids = torch.tensor([[config.image_token_id] * image_tokens + prompt], device=device)
    pixel_values = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0)
                               ).to(device, dtype)
    new = settings.new_tokens

    def generate() -> Any:
        # As the adapter calls it (greedy, logits kept for the location scores), forced to
        # write exactly `new` tokens so every call does the same work.
        return model.generate(input_ids=input_ids, pixel_values=pixel_values,
                              attention_mask=torch.ones_like(input_ids), max_new_tokens=new,
                              min_new_tokens=new, do_sample=False, num_beams=1,
                              return_dict_in_generate=True, output_logits=True)

    passes = {
        "vision_encoder": time_call(lambda: model.get_image_features(pixel_values=pixel_values),
                                    device, settings.warmup, settings.iterations),
        "generate": time_call(generate, device, min(settings.warmup, 2),
                              settings.generate_iterations),
    }
    passes["generate"]["new_tokens"] = new
    return {"model": f"Florence-2-base @ {side} px" if not settings.tiny else "tiny Florence-2",
            "passes": passes}


# --------------------------------------------------------------------------------------- qwen_vl
QWEN_IDS = {"im_start": 151644, "im_end": 151645, "vision_start": 151652, "vision_end": 151653,
            "image_pad": 151655, "video_pad": 151656, "endoftext": 151643}


def qwen_config(tiny: bool) -> Any:
    """Qwen/Qwen2.5-VL-3B-Instruct config.json: text hidden 2048, 36 layers, 16 heads, 2 KV heads,
    MLP 11008, vocab 151936, rope_theta 1e6, mrope_section 16-24-24, tied embeddings; vision depth
    32, hidden 1280, MLP 3420, 16 heads, patch 14, merge 2, window 112, full attention in blocks
    7/15/23/31, out_hidden 2048."""
    from transformers import Qwen2_5_VLConfig

    if tiny:
        text = dict(vocab_size=152000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                    rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3],
                                     "rope_theta": 10000.0})
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                      out_hidden_size=32, fullatt_block_indexes=[1], window_size=56)
    else:
        text = dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008,
                    num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2,
                    max_position_embeddings=128000, rms_norm_eps=1e-6,
                    tie_word_embeddings=True,
                    rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24],
                                     "rope_theta": 1000000.0})
        vision = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                      out_hidden_size=2048, fullatt_block_indexes=[7, 15, 23, 31],
                      window_size=112)
    text.update(bos_token_id=QWEN_IDS["endoftext"], eos_token_id=QWEN_IDS["im_end"],
                pad_token_id=QWEN_IDS["endoftext"])
    vision.update(patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_chans=3,
                  hidden_act="silu")
    return Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, image_token_id=QWEN_IDS["image_pad"],
        video_token_id=QWEN_IDS["video_pad"], vision_start_token_id=QWEN_IDS["vision_start"],
        vision_end_token_id=QWEN_IDS["vision_end"], tie_word_embeddings=not tiny)


def qwen_grid(height: int, width: int, min_pixels: int, max_pixels: int, factor: int = 28
              ) -> tuple[int, int]:
    """The Qwen2-VL processor's smart resize -> (rows, cols) of 14 px patches."""
    rows, cols = round(height / factor) * factor, round(width / factor) * factor
    if rows * cols > max_pixels:
        scale = math.sqrt(height * width / max_pixels)
        rows = math.floor(height / scale / factor) * factor
        cols = math.floor(width / scale / factor) * factor
    elif rows * cols < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        rows = math.ceil(height * scale / factor) * factor
        cols = math.ceil(width * scale / factor) * factor
    return rows // 14, cols // 14


def run_qwen_vl(settings: Settings, dtype_name: str) -> dict[str, Any]:
    from transformers import Qwen2_5_VLForConditionalGeneration

    device, dtype = settings.device, DTYPES[dtype_name]
    model = _build(Qwen2_5_VLForConditionalGeneration, qwen_config(settings.tiny), device, dtype)
    # Processor defaults of the 3B checkpoint: min 3136, max 12845056 pixels; 640x480 -> 476x644
    # -> 34x46 patches -> 391 image tokens.  Tiny: the test suite's 56^2..112^2 pixels.
    limits = (56 * 56, 112 * 112) if settings.tiny else (3136, 12845056)
    rows, cols = qwen_grid(*FRAME_HW, *limits)
    pixel_values = torch.randn(rows * cols, 3 * 2 * 14 * 14,
                               generator=torch.Generator().manual_seed(0)).to(device, dtype)
    grid_thw = torch.tensor([[1, rows, cols]], device=device)
    ids = QWEN_IDS
    # The adapter's ChatML turn: grounding prompt of ~40 tokens around the image placeholder.
    prompt = ([ids["im_start"], *_random_ids(2, 1000, 100000), ids["vision_start"]]
              + [ids["image_pad"]] * (rows * cols // 4) + [ids["vision_end"]]
              + _random_ids(40, 1000, 100000, seed=1)
              + [ids["im_end"], *_random_ids(2, 1000, 100000, seed=2), ids["im_start"],
                 *_random_ids(2, 1000, 100000, seed=3)])
    input_ids = torch.tensor([prompt], device=device)
    new = settings.new_tokens

    def generate() -> Any:
        return model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                              pixel_values=pixel_values, image_grid_thw=grid_thw,
                              max_new_tokens=new, min_new_tokens=new, do_sample=False)

    passes = {
        "vision_encoder": time_call(
            lambda: model.get_image_features(pixel_values=pixel_values, image_grid_thw=grid_thw),
            device, settings.warmup, settings.iterations),
        "generate": time_call(generate, device, min(settings.warmup, 2),
                              settings.generate_iterations),
    }
    passes["generate"]["new_tokens"] = new
    passes["vision_encoder"]["image_tokens"] = rows * cols // 4
    return {"model": f"Qwen2.5-VL-3B, {cols * 14}x{rows * 14} input" if not settings.tiny
            else "tiny Qwen2.5-VL", "passes": passes}


RUNNERS: dict[str, Callable[[Settings, str], dict[str, Any]]] = {
    "owl": run_owl,
    "grounding_dino": run_grounding_dino,
    "florence2": run_florence2,
    "qwen_vl": run_qwen_vl,
}


# ------------------------------------------------------------------------------------ reporting
def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def owl_target(results: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Whether OWLv2 fp16 image-only (cached text) meets the 8 ms/frame target."""
    entry = results.get("owl", {}).get("dtypes", {}).get("float16", {})
    measured = entry.get("passes", {}).get("image_only", {}).get("median_ms")
    verdict: dict[str, Any] = {"target_ms": OWL_TARGET_MS, "measured_median_ms": measured,
                               "met": None}
    if measured is None:
        verdict["reason"] = "no fp16 image-only OWL figure in this run"
    elif device.type != "cuda":
        verdict["reason"] = "the target is for a GPU (H100); this run was not on one"
    else:
        verdict["met"] = measured <= OWL_TARGET_MS
    return verdict


def render_markdown(report: dict[str, Any]) -> str:
    """The results block: run facts, then one table row per backend / pass / dtype."""
    lines = [
        f"Device: **{report['device']}** ({report['device_type']}); torch {report['torch']}, "
        f"transformers {report['transformers']}, Python {report['python']}; "
        f"{report['date']}; {report['iterations']} timed iterations "
        f"({report['generate_iterations']} for generate / end-to-end)"
        + ("; **tiny configs - not comparable with real models**" if report["tiny"] else "")
        + ".",
        "",
        "| backend | model | pass | dtype | median ms | p90 ms | note |",
        "| --- | --- | --- | --- | ---: | ---: | --- |",
    ]
    for backend, entry in report["results"].items():
        for dtype_name, run in entry.get("dtypes", {}).items():
            if "error" in run or "skipped" in run:
                why = run.get("skipped") or f"error: {run['error']}"
                lines.append(f"| {backend} | {entry.get('model', '')} | all | {dtype_name} "
                             f"| - | - | {why} |")
                continue
            for pass_name, timing in run["passes"].items():
                if "skipped" in timing:
                    lines.append(f"| {backend} | {run['model']} | {pass_name} | {dtype_name} "
                                 f"| - | - | {timing['skipped']} |")
                    continue
                extras = [f"{key}={timing[key]}" for key in ("new_tokens", "image_tokens")
                          if key in timing]
                note = "; ".join(filter(None, [timing.get("note", ""), *extras]))
                lines.append(f"| {backend} | {run['model']} | {pass_name} | {dtype_name} "
                             f"| {timing['median_ms']:.2f} | {timing['p90_ms']:.2f} | {note} |")
    target = report["owl_target"]
    met = {True: "**met**", False: "**not met**", None: "not judged"}[target["met"]]
    lines += ["", f"OWLv2 fp16 image-only target {target['target_ms']} ms/frame: {met}"
              + (f" (median {target['measured_median_ms']} ms)"
                 if target["measured_median_ms"] is not None else "")
              + (f" - {target['reason']}" if target.get("reason") else "") + "."]
    lines += [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def write_markdown(path: Path, block: str) -> None:
    """Replace the block between the result markers of ``path``, or write the block alone."""
    wrapped = f"{RESULTS_BEGIN}\n{block}{RESULTS_END}\n"
    if path.exists():
        text = path.read_text()
        if RESULTS_BEGIN in text and RESULTS_END in text:
            head, rest = text.split(RESULTS_BEGIN, 1)
            tail = rest.split(RESULTS_END, 1)[1].removeprefix("\n")
            path.write_text(head + wrapped + tail)
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(wrapped)


# ------------------------------------------------------------------------------------------- run
def run_benchmark(backends: list[str], dtypes: list[str], settings: Settings,
                  progress: Callable[[dict[str, Any]], None] | None = None
                  ) -> dict[str, Any]:
    """Every backend x dtype; a failure is recorded (with its reason) and the run goes on.

    ``progress`` gets the report so far (``"partial": true``) after each backend x dtype, so
    a run killed at a time limit still leaves the figures it measured.
    """
    device = settings.device
    sizes = "tiny random configs (smoke test only)" if settings.tiny else \
        "random weights of the real architectures"
    notes = [f"Models: {sizes}; inputs are a fixed 640x480 frame's processor-shaped tensors "
             "(OWL end-to-end: the real processor on that frame)."]
    if device.type == "cpu":
        notes.append("fp16/bf16 are not timed on the CPU (slow, unrepresentative kernels).")
    results: dict[str, Any] = {}
    for backend in backends:
        entry: dict[str, Any] = {"dtypes": {}}
        for dtype_name in dtypes:
            if device.type == "cpu" and dtype_name != "float32":
                entry["dtypes"][dtype_name] = {"skipped": "half precision is not timed on CPU"}
                continue
            began = time.perf_counter()
            print(f"[gpu_benchmark] {backend} {dtype_name} ...", flush=True)
            try:
                run = RUNNERS[backend](settings, dtype_name)
            except Exception as exc:  # recorded, so one failure does not lose the other figures
                traceback.print_exc()
                run = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            run["seconds"] = round(time.perf_counter() - began, 1)
            entry["model"] = run.get("model", entry.get("model", ""))
            entry["dtypes"][dtype_name] = run
            print(f"[gpu_benchmark] {backend} {dtype_name}: "
                  f"{json.dumps(run.get('passes', run))}", flush=True)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
            results[backend] = entry
            if progress is not None:
                progress({**_report(settings, notes, results), "partial": True})
        results[backend] = entry
    return _report(settings, notes, results)


def _report(settings: Settings, notes: list[str], results: dict[str, Any]) -> dict[str, Any]:
    device = settings.device
    return {
        "device": device_name(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "tiny": settings.tiny,
        "iterations": settings.iterations,
        "generate_iterations": settings.generate_iterations,
        "warmup": settings.warmup,
        "frame_hw": list(FRAME_HW),
        "queries": list(QUERIES),
        "notes": notes,
        "results": results,
        "owl_target": owl_target(results, device),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"comma-separated subset of {','.join(BACKENDS)}")
    parser.add_argument("--dtypes", default="float16,float32",
                        help=f"comma-separated subset of {','.join(DTYPES)}")
    parser.add_argument("--iterations", type=int, default=50, help="timed calls per pass")
    parser.add_argument("--generate-iterations", type=int, default=None,
                        help="timed calls for generate / end-to-end passes (default: "
                             "min(iterations, 10))")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed calls first (default 5 on a GPU, 1 on the CPU)")
    parser.add_argument("--new-tokens", type=int, default=16, help="tokens each generate writes")
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu")
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument("--markdown", type=Path,
                        help="write the results table here (replaces the marked block of an "
                             "existing file such as docs/gpu_benchmark.md)")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny configs: a CPU smoke run in seconds; numbers not comparable")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    unknown = [b for b in backends if b not in RUNNERS] + [d for d in dtypes if d not in DTYPES]
    if unknown or args.iterations < 1 or args.new_tokens < 1:
        print(f"unknown backend/dtype {unknown} or non-positive counts", file=sys.stderr)
        return 2
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    warmup = args.warmup if args.warmup is not None else (5 if device.type == "cuda" else 1)
    generate_iterations = args.generate_iterations or min(args.iterations, 10)
    with tempfile.TemporaryDirectory(prefix="vlm_gpu_benchmark_") as workdir:
        settings = Settings(device=device, tiny=args.tiny, iterations=args.iterations,
                            warmup=warmup, generate_iterations=generate_iterations,
                            new_tokens=args.new_tokens, workdir=Path(workdir))
        report = run_benchmark(backends, dtypes, settings,
                               progress=(lambda partial: write_json(args.json, partial))
                               if args.json else None)
    block = render_markdown(report)
    print(block)
    if args.json:
        write_json(args.json, report)
    if args.markdown:
        write_markdown(args.markdown, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
