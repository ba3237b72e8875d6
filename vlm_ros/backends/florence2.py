"""Florence-2: a small (0.23B / 0.77B) seq2seq VLM that grounds phrases and captions frames.

Why: it resolves a whole phrase ("red cup") into boxes at a fraction of Qwen-VL's cost and runs on
a CPU, and it captions images.  It answers in text with ``<loc_N>`` location tokens (1000 bins
per axis), which ``parsing.parse_florence_locations`` turns into pixels.

Choices, and why:
* One generation per query phrase with ``<CAPTION_TO_PHRASE_GROUNDING>`` (configurable: ``task``).
  Joining phrases into one caption saves a pass but Florence then names sub-phrases we cannot map
  back to the caller's queries reliably; the core usually sends one phrase anyway.
* Phrase grounding also boxes other phrases: the other noun phrases of a longer expression ("the
  cup *on the table*") and filler such as "the image" or "it".  Like Florence-2's own
  post-processing we drop the filler (``SKIPPED_PHRASES``, or the list the checkpoint's
  ``post_processor_config`` carries); of the phrases left, the boxes of the one that best matches
  the query answer it (most shared content words; ties -> the first, as the head noun phrase
  comes first in English referring expressions).
* Scores: Florence has no detection score.  A box's score is the mean, over its four location
  tokens, of the probability mass the decoder put within ``LOCATION_TOLERANCE`` bins of the bin
  it chose (greedy decoding, raw logits).  That measures how sure the model was *where* the
  object is, tolerant of the off-by-one-bin split that makes single-token probabilities look low.
* We parse with our own tested parser rather than the processor's ``post_process_generation``:
  that one depends on the checkpoint's ``post_processor_config``, and ours also carries scores.
* No beam search (the model card uses 3 beams): greedy is ~3x cheaper and keeps the token
  probabilities aligned with the chosen tokens.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlm_ros.backends.base import Backend, BackendError, require_rgb
from vlm_ros.backends.hf import load_model, load_pretrained, to_device
from vlm_ros.backends.parsing import (
    extract_answer_text,
    parse_florence_locations,
)
from vlm_ros.core.types import Detection

# The native transformers port (Florence2ForConditionalGeneration); microsoft/Florence-2-* need
# trust_remote_code and an older transformers.
DEFAULT_MODEL = "florence-community/Florence-2-base"
GROUNDING_TASKS: tuple[str, ...] = ("<CAPTION_TO_PHRASE_GROUNDING>", "<OPEN_VOCABULARY_DETECTION>")
DETECT_ALL_TASK = "<OD>"
CAPTION_TASKS: tuple[str, ...] = ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>")
LOCATION_TOLERANCE = 5  # bins either side (0.5% of the image each) that still count as "there"
NUM_LOCATIONS = 1000
PHRASE_GROUNDING_TASK = GROUNDING_TASKS[0]
# Phrases Florence-2's reference post-processing drops from <CAPTION_TO_PHRASE_GROUNDING> answers:
# ``black_list_of_phrase_grounding`` of the original processing_florence2.py (microsoft/Florence-2-*,
# FILTER_BY_BLACK_LIST on), which transformers' convert_florence2_original_pytorch_to_hf.py writes
# into the ported checkpoints as post_processor_config["phrase_grounding"]["banned_grounding_tokens"].
# Used when the loaded processor carries no such config.  Matched exactly, like the reference.
SKIPPED_PHRASES = frozenset({
    "it", "I", "me", "mine", "you", "your", "yours", "he", "him", "his", "she", "her", "hers",
    "they", "them", "their", "theirs", "one", "oneself", "we", "us", "our", "ours", "its",
    "myself", "yourself", "himself", "herself", "itself", "ourselves", "yourselves", "themselves",
    "this", "that", "these", "those", "who", "whom", "whose", "which", "what", "all", "another",
    "any", "anybody", "anyone", "anything", "each", "everybody", "everyone", "everything", "few",
    "many", "nobody", "none", "several", "some", "somebody", "someone", "something",
    "each other", "one another", "the image", "image", "images", "the", "a", "an", "a group",
    "other objects", "lots", "a set",
})
_WORD_RE = re.compile(r"[a-z0-9]+")


def skipped_phrases(processor: object) -> frozenset[str]:
    """The phrase-grounding skip list of ``processor``'s post_processor_config, else ours."""
    config = getattr(processor, "post_processor_config", None)
    if isinstance(config, dict) and isinstance(config.get("phrase_grounding"), dict):
        return frozenset(config["phrase_grounding"].get("banned_grounding_tokens", []))
    return SKIPPED_PHRASES


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD_RE.findall(text.lower()) if w not in SKIPPED_PHRASES}


def answering_phrase(labels: Iterable[str], query: str, skipped: frozenset[str]) -> str | None:
    """Which grounded phrase answers ``query``: not a skipped one; the exact query if Florence
    repeated it, else the one sharing most content words with it, ties -> the first."""
    candidates = [label for label in dict.fromkeys(labels) if label not in skipped]
    if not candidates:
        return None
    wanted, words = query.strip().lower(), _content_words(query)

    def rank(item: tuple[int, str]) -> tuple[bool, int, int]:
        index, label = item
        return label.strip().lower() == wanted, len(_content_words(label) & words), -index

    return max(enumerate(candidates), key=rank)[1]


class Florence2Backend(Backend):
    """Florence-2 via ``AutoModelForImageTextToText``: phrase grounding, OD and captions."""

    name = "florence2"
    vocabulary = None
    resolves_referring_expressions = True
    capabilities = frozenset({"describe"})

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        dtype: str = "auto",
        score_threshold: float = 0.3,
        task: str = GROUNDING_TASKS[0],
        caption_task: str = "<MORE_DETAILED_CAPTION>",
        max_new_tokens: int = 128,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise BackendError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if task not in GROUNDING_TASKS:
            raise BackendError(f"task must be one of {GROUNDING_TASKS}, got {task!r}")
        if caption_task not in CAPTION_TASKS:
            raise BackendError(f"caption_task must be one of {CAPTION_TASKS}, got {caption_task!r}")
        if max_new_tokens < 8:
            raise BackendError(f"max_new_tokens must be >= 8, got {max_new_tokens}")
        self.model_id = model
        self.score_threshold = float(score_threshold)
        self.task, self.caption_task = task, caption_task
        self.max_new_tokens = int(max_new_tokens)
        self.processor = load_pretrained(AutoProcessor, model)
        self.model, self.device, self.dtype = load_model(
            AutoModelForImageTextToText, model, device, dtype)
        tokenizer = self.processor.tokenizer
        ids = tokenizer.convert_tokens_to_ids([f"<loc_{i}>" for i in range(NUM_LOCATIONS)])
        if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
            raise BackendError(f"{model}: tokenizer lacks Florence-2 <loc_N> tokens")
        self._location_ids = torch.tensor(ids, dtype=torch.long)
        self._bin_of_id = {token_id: i for i, token_id in enumerate(ids)}
        self.skipped_phrases = skipped_phrases(self.processor) if task == PHRASE_GROUNDING_TASK \
            else frozenset()
        self._lock = threading.Lock()  # one generation at a time

    # ------------------------------------------------------------------ model
    def _generate(self, rgb: np.ndarray, prompt: str) -> tuple[str, list[float]]:
        """(decoded text with special tokens, one location score per generated <loc_N>)."""
        require_rgb(rgb, self.name)
        batch = self.processor(text=prompt, images=np.ascontiguousarray(rgb), return_tensors="pt")
        batch = to_device(batch, self.device, self.dtype)
        with self._lock, torch.inference_mode():
            output = self.model.generate(
                **batch, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
                return_dict_in_generate=True, output_logits=True)
        sequence = output.sequences[0]
        generated = sequence[len(sequence) - len(output.logits):]  # after the decoder start
        text = self.processor.tokenizer.decode(generated, skip_special_tokens=False)
        return text, self._location_scores(generated, output.logits)

    def _location_scores(self, tokens: torch.Tensor, logits: Sequence[torch.Tensor]) -> list[float]:
        scores = []
        for token, step_logits in zip(tokens.tolist(), logits):
            chosen = self._bin_of_id.get(token)
            if chosen is None:
                continue
            probs = torch.softmax(step_logits[0].float(), dim=-1)
            lo, hi = max(0, chosen - LOCATION_TOLERANCE), chosen + LOCATION_TOLERANCE + 1
            near = self._location_ids[lo:hi].to(probs.device)
            scores.append(float(probs[near].sum().clamp(0.0, 1.0)))
        return scores

    # ------------------------------------------------------------------ post-process
    def _postprocess(
        self, text: str, image_size: tuple[int, int], location_scores: Sequence[float] | None,
        phrase: str | None,
    ) -> list[Detection]:
        """Generated text -> Detections in pixels of the (width, height) image.

        With a ``phrase`` only the boxes of the grounded phrase that answers it count (skip list,
        then best match: see module doc); without one (``<OD>``) every box keeps its label.
        """
        boxes = parse_florence_locations(text, image_size, location_scores=location_scores)
        if phrase is not None and boxes:
            label = answering_phrase((b.label for b in boxes), phrase, self.skipped_phrases)
            boxes = [b for b in boxes if b.label == label]
        detections = []
        for box in boxes:
            score = 1.0 if box.score is None else box.score
            if score < self.score_threshold:
                continue
            detections.append(Detection(label=box.label or phrase or "object", score=score,
                                        bbox=box.bbox, phrase=phrase))
        return sorted(detections, key=lambda d: -d.score)

    # ------------------------------------------------------------------ interface
    def detect(self, rgb: np.ndarray, queries: Sequence[str]) -> list[Detection]:
        """Boxes for each phrase in ``queries`` (one generation each); [] -> Florence's <OD>."""
        if isinstance(queries, str):
            queries = [queries]
        height, width = rgb.shape[:2] if hasattr(rgb, "shape") else (0, 0)
        detections: list[Detection] = []
        for phrase in list(queries) or [None]:
            prompt = f"{self.task}{phrase}" if phrase else DETECT_ALL_TASK
            text, scores = self._generate(rgb, prompt)
            detections += self._postprocess(text, (width, height), scores, phrase)
        return sorted(detections, key=lambda d: -d.score)

    def describe(self, rgb: np.ndarray) -> str:
        text, _ = self._generate(rgb, self.caption_task)
        return extract_answer_text(text)

    def info(self) -> dict[str, object]:
        return {**super().info(), "model": self.model_id, "device": str(self.device),
                "dtype": str(self.dtype).replace("torch.", ""), "task": self.task,
                "score_threshold": self.score_threshold}
