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
  ``score_threshold`` (default 0.3, ``default_score_threshold``) drops boxes under that score.
* The stages (vlm_ros/backends/torch_base.py): ``preprocess`` writes one task prompt per phrase
  (empty queries: ``<OD>``; describe: ``caption_task``) and runs the processor, ``forward``
  generates and decodes each with its location scores, ``postprocess`` parses the text into
  Detections and ``postprocess_text`` makes a caption of it.
* We parse with our own tested parser rather than the processor's ``post_process_generation``:
  that one depends on the checkpoint's ``post_processor_config``, and ours also carries scores.
* No beam search (the model card uses 3 beams): greedy is ~3x cheaper and keeps the token
  probabilities aligned with the chosen tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlm_ros.backends.base import BackendError
from vlm_ros.backends.hf import load_pretrained, to_device
from vlm_ros.backends.parsing import (
    extract_answer_text,
    parse_florence_locations,
)
from vlm_ros.backends.torch_base import DetectRequest, Request, TextRequest, TorchBackend
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


class Florence2Backend(TorchBackend):
    """Florence-2 via ``AutoModelForImageTextToText``: phrase grounding, OD and captions."""

    name = "florence2"
    vocabulary = None
    resolves_referring_expressions = True
    capabilities = frozenset({"describe"})
    # The floor on a box's location confidence (see the module doc): the value this adapter has
    # always run at.
    default_score_threshold = 0.3
    everything_pass = True  # empty queries: Florence's own <OD> task, not a phrase list

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        dtype: str = "auto",
        score_threshold: float | None = None,
        task: str = GROUNDING_TASKS[0],
        caption_task: str = "<MORE_DETAILED_CAPTION>",
        max_new_tokens: int = 128,
    ) -> None:
        super().__init__(score_threshold)
        if task not in GROUNDING_TASKS:
            raise BackendError(f"task must be one of {GROUNDING_TASKS}, got {task!r}")
        if caption_task not in CAPTION_TASKS:
            raise BackendError(f"caption_task must be one of {CAPTION_TASKS}, got {caption_task!r}")
        if max_new_tokens < 8:
            raise BackendError(f"max_new_tokens must be >= 8, got {max_new_tokens}")
        self.task, self.caption_task = task, caption_task
        self.max_new_tokens = int(max_new_tokens)
        self.processor = load_pretrained(AutoProcessor, model)
        self.load(AutoModelForImageTextToText, model, device, dtype)
        tokenizer = self.processor.tokenizer
        ids = tokenizer.convert_tokens_to_ids([f"<loc_{i}>" for i in range(NUM_LOCATIONS)])
        if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
            raise BackendError(f"{model}: tokenizer lacks Florence-2 <loc_N> tokens")
        self._location_ids = torch.tensor(ids, dtype=torch.long)
        self._bin_of_id = {token_id: i for i, token_id in enumerate(ids)}
        self.skipped_phrases = skipped_phrases(self.processor) if task == PHRASE_GROUNDING_TASK \
            else frozenset()

    # ------------------------------------------------------------------ the stages
    def task_prompts(self, request: Request) -> list[str]:
        """The task prompts of ``request``, one generation each: ``task`` + phrase per phrase,
        ``<OD>`` for everything, ``caption_task`` for describe."""
        if isinstance(request, TextRequest):
            return [self.caption_task]
        return [f"{self.task}{prompt}" for prompt in request.prompts] or [DETECT_ALL_TASK]

    def preprocess(self, rgb: np.ndarray, request: Request) -> list[dict[str, Any]]:
        """The processor on the image and each task prompt, on the device."""
        image = np.ascontiguousarray(rgb)
        return [to_device(self.processor(text=prompt, images=image, return_tensors="pt"),
                          self.device, self.dtype)
                for prompt in self.task_prompts(request)]

    def forward(self, inputs: list[dict[str, Any]], request: Request
                ) -> list[tuple[str, list[float]]]:
        """Greedy ``generate`` per prompt: (decoded text with special tokens, one location score
        per generated <loc_N>)."""
        generations = []
        for batch in inputs:
            output = self.model.generate(
                **batch, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
                return_dict_in_generate=True, output_logits=True)
            sequence = output.sequences[0]
            generated = sequence[len(sequence) - len(output.logits):]  # after the decoder start
            text = self.processor.tokenizer.decode(generated, skip_special_tokens=False)
            generations.append((text, self._location_scores(generated, output.logits)))
        return generations

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

    def postprocess(self, outputs: list[tuple[str, list[float]]], inputs: Any,
                    request: DetectRequest) -> list[Detection]:
        """Each generation's text -> Detections in pixels of the input image, best first."""
        height, width = request.image_hw
        detections: list[Detection] = []
        for phrase, (text, scores) in zip(request.phrases or (None,), outputs):
            detections += self.parse(text, (width, height), scores, phrase)
        return sorted(detections, key=lambda d: -d.score)

    def parse(
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

    def postprocess_text(self, outputs: list[tuple[str, list[float]]], inputs: Any,
                         request: TextRequest) -> str:
        """The caption: the generated text without special tokens and wrappers."""
        return extract_answer_text(outputs[0][0])

    def info(self) -> dict[str, object]:
        return {**super().info(), "task": self.task}
