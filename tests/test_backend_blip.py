"""BLIP adapter on tiny random BLIP caption and VQA models built in the test.

No BLIP weights can be downloaded here, so each model is built from a tiny ``BlipConfig`` with an
offline BERT WordPiece tokenizer (the tokenizer family BLIP uses) and saved with its processor;
the adapter loads the folders through its real ``from_pretrained`` path.  Random weights write
arbitrary words, so the tests pin what must hold for any weights: the adapter's answer is exactly
what the transformers model card's own recipe (processor on a PIL image -> ``generate`` ->
``decode``) gives on the same real photo, and its preprocessing equals the processor's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from photos import load_photo, photo_path
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoProcessor,
    BertTokenizer,
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2Processor,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipForQuestionAnswering,
    BlipImageProcessorPil,
    BlipProcessor,
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
    InstructBlipProcessor,
    PreTrainedTokenizerFast,
)

from vlm_ros.backends import create_backend, hub
from vlm_ros.backends.base import BackendError, CapabilityError
from vlm_ros.backends.blip import DEFAULT_MODEL, DEFAULT_QUESTION_MODEL, NO_DETECT, BlipBackend
from vlm_ros.backends.torch_base import TextRequest
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.session import CommandSession
from vlm_ros.core.types import Frame

IMAGE_SIDE = 32
WORDS = ("a the cup mug dog cat on table red blue green white black of in is with and what "
         "color colour yes no two three bottle chair person left right small big near under "
         "over bowl plate door open closed box book phone laptop keyboard car bus tree sky "
         "grass floor wall window").split()
PHOTO = "dog"  # 768 x 576: not square, so a transposed or cropped image would show


def _tiny_tokenizer() -> BertTokenizer:
    """BERT WordPiece over a few English words, with BLIP's [DEC] (bos) and [ENC] specials."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    return BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, bos_token="[DEC]",
                         extra_special_tokens=["[ENC]"])


def save_tiny_blip(folder, architecture: type = BlipForConditionalGeneration) -> str:
    """Save a tiny random BLIP (``architecture``: caption or VQA head) and its processor."""
    tokenizer = _tiny_tokenizer()
    processor = BlipProcessor(
        image_processor=BlipImageProcessorPil(size={"height": IMAGE_SIDE, "width": IMAGE_SIDE}),
        tokenizer=tokenizer)
    config = BlipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                         encoder_hidden_size=32, bos_token_id=tokenizer.bos_token_id,
                         pad_token_id=tokenizer.pad_token_id, sep_token_id=tokenizer.sep_token_id,
                         eos_token_id=tokenizer.sep_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=IMAGE_SIDE, patch_size=8),
        projection_dim=32)
    torch.manual_seed(0)
    architecture(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


def _tiny_byte_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE (256 byte symbols, no merges) with OPT's specials: the language model's
    tokenizer of a BLIP-2 / InstructBLIP checkpoint."""
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="</s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def save_tiny_blip2(folder, family: str = "blip-2") -> str:
    """Save a tiny random BLIP-2 or InstructBLIP (Q-Former + a decoder-only OPT) + processor."""
    tokenizer = _tiny_byte_tokenizer()
    image_processor = BlipImageProcessorPil(size={"height": IMAGE_SIDE, "width": IMAGE_SIDE})
    if family == "blip-2":
        processor = Blip2Processor(image_processor=image_processor, tokenizer=tokenizer,
                                   num_query_tokens=4)
        config_class, model_class = Blip2Config, Blip2ForConditionalGeneration
    else:
        processor = InstructBlipProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                          qformer_tokenizer=_tiny_tokenizer(), num_query_tokens=4)
        config_class, model_class = InstructBlipConfig, InstructBlipForConditionalGeneration
    qformer_vocab = len(_tiny_tokenizer())
    config = config_class(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=IMAGE_SIDE, patch_size=8),
        qformer_config=dict(vocab_size=max(qformer_vocab, 64), hidden_size=32,
                            num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                            encoder_hidden_size=32, max_position_embeddings=64),
        text_config=dict(model_type="opt", vocab_size=len(tokenizer), hidden_size=32,
                         num_hidden_layers=1, num_attention_heads=2, ffn_dim=64,
                         word_embed_proj_dim=32, max_position_embeddings=512, bos_token_id=1,
                         eos_token_id=1, pad_token_id=0),
        num_query_tokens=4, image_token_index=tokenizer.convert_tokens_to_ids("<image>"))
    torch.manual_seed(0)
    model_class(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def caption_dir(tmp_path_factory) -> str:
    return save_tiny_blip(tmp_path_factory.mktemp("tiny_blip_caption"))


@pytest.fixture(scope="module")
def vqa_dir(tmp_path_factory) -> str:
    return save_tiny_blip(tmp_path_factory.mktemp("tiny_blip_vqa"), BlipForQuestionAnswering)


@pytest.fixture(scope="module")
def backend(caption_dir, vqa_dir) -> BlipBackend:
    return BlipBackend(model=caption_dir, question_model=vqa_dir, device="cpu")


def _model_card_answer(folder: str, architecture: type, text: str | None,
                       max_new_tokens: int) -> str:
    """The transformers model card's recipe, independent of the adapter: PIL image from the
    file, processor, greedy generate, decode."""
    processor = AutoProcessor.from_pretrained(folder)
    model = architecture.from_pretrained(folder).eval()
    image = Image.open(photo_path(PHOTO)).convert("RGB")
    inputs = processor(images=image, text=text, return_tensors="pt") if text else \
        processor(images=image, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens)
    return processor.decode(output[0], skip_special_tokens=True).strip()


def test_registry_loads_both_tiny_models_with_the_declared_traits(caption_dir, vqa_dir):
    backend = create_backend("blip", model=caption_dir, question_model=vqa_dir, device="cpu",
                             score_threshold=0.3)
    assert isinstance(backend, BlipBackend)
    assert backend.capabilities == {"describe", "ask"}
    assert not backend.resolves_referring_expressions
    info = backend.info()
    assert info["name"] == "blip" and info["capabilities"] == ["ask", "describe"]
    assert (info["model"], info["question_model"]) == (caption_dir, vqa_dir)
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    assert isinstance(backend.captioner.model, BlipForConditionalGeneration)
    assert isinstance(backend.answerer.model, BlipForQuestionAnswering)
    # BLIP has no scores: the user's threshold is checked and kept, unused; unset it is None.
    assert backend.default_score_threshold is None and backend.score_threshold == 0.3
    assert BlipBackend(model=caption_dir, question_model="", device="cpu").score_threshold is None


def test_defaults_are_the_small_cpu_capable_blip_base_checkpoints():
    assert DEFAULT_MODEL == "Salesforce/blip-image-captioning-base"
    assert DEFAULT_QUESTION_MODEL == "Salesforce/blip-vqa-base"


def test_preprocessing_equals_the_processor_on_a_non_square_photo(backend, caption_dir, vqa_dir):
    rgb = load_photo(PHOTO)
    assert rgb.shape[:2] == (576, 768)
    image = Image.open(photo_path(PHOTO)).convert("RGB")  # the model card's input
    ours = backend.preprocess(rgb, TextRequest(rgb.shape[:2], "describe"))
    theirs = AutoProcessor.from_pretrained(caption_dir)(images=image, return_tensors="pt")
    assert set(ours) == {"pixel_values"}
    assert ours["pixel_values"].shape == (1, 3, IMAGE_SIDE, IMAGE_SIDE)
    assert torch.equal(ours["pixel_values"], theirs["pixel_values"])

    question = "what colour is the dog?"
    ours = backend.preprocess(rgb, TextRequest(rgb.shape[:2], "ask", question))
    theirs = AutoProcessor.from_pretrained(vqa_dir)(images=image, text=question,
                                                    return_tensors="pt")
    assert set(ours) == set(theirs) >= {"pixel_values", "input_ids", "attention_mask"}
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key
    # Real words, not [UNK]: the question reached the tokenizer intact.
    assert backend.answerer.processor.decode(ours["input_ids"][0], skip_special_tokens=True) \
        == "what colour is the dog"


def test_describe_is_the_model_cards_caption_of_the_same_photo(backend, caption_dir):
    caption = backend.describe(load_photo(PHOTO))
    expected = _model_card_answer(caption_dir, BlipForConditionalGeneration, None,
                                  backend.max_new_tokens)
    assert caption and caption == expected
    assert set(caption.split()) <= set(WORDS)


def test_ask_is_the_model_cards_vqa_answer_to_the_same_question(backend, vqa_dir):
    question = "what colour is the dog?"
    answer = backend.ask(load_photo(PHOTO), question)
    expected = _model_card_answer(vqa_dir, BlipForQuestionAnswering, question,
                                  backend.answer_tokens)
    assert answer and answer == expected
    assert backend.ask(load_photo(PHOTO), f"  {question} ") == answer


def test_token_limits_and_the_caption_prompt_reach_generate(caption_dir, vqa_dir):
    short = BlipBackend(model=caption_dir, question_model=vqa_dir, device="cpu",
                        max_new_tokens=3, answer_tokens=2, caption_prompt="a dog on")
    rgb = load_photo(PHOTO)
    caption = short.describe(rgb)
    assert caption == _model_card_answer(caption_dir, BlipForConditionalGeneration,
                                         "a dog on", 3)
    # BLIP's conditional captioning continues the prompt, which it keeps; 3 new words at most.
    assert caption.startswith("a dog on ") and len(caption.split()) <= 3 + 3
    answer = short.ask(rgb, "is the door open?")
    assert answer == _model_card_answer(vqa_dir, BlipForQuestionAnswering, "is the door open?", 2)
    assert 1 <= len(answer.split()) <= 2


@pytest.mark.parametrize("family, model_class, prompt", [
    ("blip-2", Blip2ForConditionalGeneration, "Question: what is it? Answer:"),
    ("instructblip", InstructBlipForConditionalGeneration, "what is it?"),
])
def test_a_blip2_or_instructblip_question_model_answers_without_echoing_the_prompt(
        caption_dir, tmp_path, family, model_class, prompt):
    folder = save_tiny_blip2(tmp_path / family, family)
    backend = BlipBackend(model=caption_dir, question_model=folder, device="cpu",
                          answer_tokens=5)
    assert isinstance(backend.answerer.model, model_class)
    answer = backend.ask(load_photo(PHOTO), "what is it?")
    # The model card's recipe; its decoder-only language model returns prompt + answer.
    processor = AutoProcessor.from_pretrained(folder)
    model = model_class.from_pretrained(folder).eval()
    inputs = processor(images=Image.open(photo_path(PHOTO)).convert("RGB"), text=prompt,
                       return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=5)[0]
    n = inputs["input_ids"].shape[1]
    assert torch.equal(output[:n], inputs["input_ids"][0])  # the echo the adapter cuts off
    assert answer == " ".join(processor.decode(output[n:], skip_special_tokens=True).split())
    assert answer and prompt not in answer
    assert prompt in processor.decode(output, skip_special_tokens=True)


def test_detect_says_blip_does_not_localise(backend):
    with pytest.raises(CapabilityError, match="cannot detect or locate") as caught:
        backend.detect(load_photo(PHOTO), ["dog"])
    assert str(caught.value) == NO_DETECT


def test_a_command_through_the_core_is_an_error_result_not_an_exception(backend):
    rgb = load_photo(PHOTO)
    # (a cup: "grab the dog" is refused before any model runs - a dog is never picked up)
    result = CommandSession(Pipeline(backend)).run("grab the cup", Frame(rgb=rgb))
    assert result.status == "error"
    assert "cannot detect or locate" in result.message


@pytest.mark.parametrize("bad", [
    np.zeros((48, 64), np.uint8),
    np.zeros((48, 64, 4), np.uint8),
    np.zeros((48, 64, 3), np.float32),
    np.zeros((0, 64, 3), np.uint8),
    "not an image",
])
def test_bad_images_are_refused_with_a_backend_error(backend, bad):
    with pytest.raises(BackendError, match="HxWx3 uint8 RGB"):
        backend.describe(bad)
    with pytest.raises(BackendError, match="HxWx3 uint8 RGB"):
        backend.ask(bad, "what is this?")


def test_tiny_and_odd_shaped_images_are_answered(backend):
    # A 3-pixel-high image would be read as channels-first by a numpy-guessing processor.
    for shape in ((3, 50, 3), (1, 1, 3), (400, 7, 3)):
        rgb = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
        assert isinstance(backend.describe(rgb), str)
        assert isinstance(backend.ask(rgb, "what is this?"), str)


def test_an_empty_question_is_refused(backend):
    with pytest.raises(BackendError, match="non-empty question"):
        backend.ask(load_photo(PHOTO), "  ")


def test_a_missing_local_folder_is_one_line_naming_the_model_option(tmp_path, caption_dir):
    missing = tmp_path / "no_such_blip"
    with pytest.raises(BackendError) as caught:
        create_backend("blip", model=str(missing), question_model="", device="cpu")
    assert str(caught.value) == f"blip: no such folder: {missing}"
    with pytest.raises(BackendError) as caught:
        create_backend("blip", model=caption_dir, question_model=str(missing), device="cpu")
    assert str(caught.value) == f"blip question_model: no such folder: {missing}"


def test_a_folder_without_weights_is_a_clear_backend_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendError) as caught:
        create_backend("blip", model=str(tmp_path / "empty"), question_model="", device="cpu")
    message = str(caught.value)
    assert message.startswith(f"blip: folder {tmp_path / 'empty'} is missing config.json, a "
                              "weights file") and "\n" not in message
    # Built directly (no registry check first), loading still fails in one line, by folder.
    with pytest.raises(BackendError, match="folder .*empty"):
        BlipBackend(model=str(tmp_path / "empty"), question_model="", device="cpu")


def _copy_without(source: str, folder, deleted: str) -> str:
    folder.mkdir()
    for path in Path(source).iterdir():
        if path.name != deleted and path.is_file():
            (folder / path.name).write_bytes(path.read_bytes())
    return str(folder)


@pytest.mark.parametrize("option, deleted, named", [
    ("model", "tokenizer.json", "tokenizer files (tokenizer.json or vocab.txt)"),
    ("model", "processor_config.json", "preprocessor_config.json (or processor_config.json)"),
    ("question_model", "model.safetensors", "a weights file"),
    ("question_model", "config.json", "config.json"),
])
def test_a_saved_model_missing_a_file_names_it(caption_dir, vqa_dir, tmp_path, option, deleted,
                                                named):
    folders = {"model": caption_dir, "question_model": vqa_dir}
    folders[option] = _copy_without(folders[option], tmp_path / option, deleted)
    with pytest.raises(BackendError) as caught:
        create_backend("blip", device="cpu", **folders)
    label = "blip" if option == "model" else "blip question_model"
    message = str(caught.value)
    assert message.startswith(f"{label}: folder {folders[option]} is missing {named}")
    assert message.count(" is missing ") == 1 and "\n" not in message


def test_both_blip_model_folders_pass_the_shared_check(caption_dir, vqa_dir, tmp_path):
    assert hub.resolve_model(caption_dir, hub.MODEL_FILES["blip"]).kind == "folder"
    question_files = hub.OPTION_MODEL_FILES["blip"]["question_model"]
    assert hub.resolve_model(vqa_dir, question_files).kind == "folder"
    for family in ("blip-2", "instructblip"):  # OPT's byte-level BPE behind the Q-Former
        folder = save_tiny_blip2(tmp_path / family, family)
        assert hub.resolve_model(folder, question_files).kind == "folder"


def test_a_checkpoint_of_the_wrong_head_is_refused_by_name(caption_dir, vqa_dir):
    with pytest.raises(BackendError, match="BlipForQuestionAnswering checkpoint; blip's `model` "
                                           "needs one of BlipForConditionalGeneration"):
        BlipBackend(model=vqa_dir, question_model="", device="cpu")
    with pytest.raises(BackendError, match="question_model .*BlipForConditionalGeneration"):
        BlipBackend(model=caption_dir, question_model=caption_dir, device="cpu")


@pytest.mark.parametrize("options, match", [
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"answer_tokens": -1}, "answer_tokens"),
    ({"score_threshold": 2.0}, "score_threshold"),
    ({"device": "tpu"}, "unknown device"),
    ({"dtype": "int3"}, "unknown dtype"),
])
def test_bad_options_are_backend_errors(caption_dir, options, match):
    with pytest.raises(BackendError, match=match):
        BlipBackend(model=caption_dir, question_model="", **options)


def test_without_a_question_model_it_only_describes(caption_dir):
    backend = BlipBackend(model=caption_dir, question_model="", device="cpu")
    assert backend.capabilities == {"describe"} and backend.answerer is None
    assert backend.info()["question_model"] is None
    assert isinstance(backend.describe(load_photo(PHOTO)), str)
    with pytest.raises(CapabilityError, match="question_model"):
        backend.ask(load_photo(PHOTO), "what is this?")
    backend.warmup()  # captions only: warms up without detect or ask


def test_warmup_runs_both_models_without_detect(backend):
    backend.warmup()


def test_concurrent_callers_get_the_same_answers_as_one_caller(backend):
    rgb = load_photo(PHOTO)
    expected = (backend.describe(rgb), backend.ask(rgb, "how many dogs?"))
    results: list[tuple[str, str]] = []

    def call() -> None:
        results.append((backend.describe(rgb), backend.ask(rgb, "how many dogs?")))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [expected] * 4


# ---------------------------------------------------------------------------- the CLI


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vlm_ros.cli", *args], capture_output=True,
                          text=True, timeout=180)


def test_cli_backends_lists_blip_with_its_capabilities():
    proc = _cli("backends")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["blip"]["installed"] is True
    assert rows["blip"]["capabilities"] == ["ask", "describe"]


def test_cli_describe_and_ask_end_to_end(backend, caption_dir, vqa_dir):
    image = str(photo_path(PHOTO))
    proc = _cli("describe", "--image", image, "--backend", "blip", "--model", caption_dir,
                "--device", "cpu", "--option", f"question_model={vqa_dir}")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines == [backend.describe(load_photo(PHOTO))]

    proc = _cli("ask", "--image", image, "--question", "what colour is the dog?", "--json",
                "--backend", "blip", "--model", caption_dir, "--device", "cpu",
                "--option", f"question_model={vqa_dir}")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["backend"] == "blip" and result["question"] == "what colour is the dog?"
    assert result["answer"] == backend.ask(load_photo(PHOTO), "what colour is the dog?")


def test_cli_describe_with_a_missing_folder_is_one_line(tmp_path):
    proc = _cli("describe", "--image", str(photo_path(PHOTO)), "--backend", "blip",
                "--model", str(tmp_path / "nothing_here"), "--option", "question_model=")
    assert proc.returncode == 2, proc.stderr
    # The notice of which model describe loads, then the one error line.
    notice, error = proc.stderr.strip().splitlines()
    assert notice.startswith("describe: using blip ("), proc.stderr
    assert error == f"vlm-ros: error: blip: no such folder: {tmp_path / 'nothing_here'}"


def test_cli_ground_with_blip_answers_an_error_result_not_a_traceback(caption_dir):
    proc = _cli("ground", "--image", str(photo_path(PHOTO)), "--backend", "blip",
                "--model", caption_dir, "--device", "cpu", "--option", "question_model=",
                "--json", "--command", "grab the cup")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["status"] == "error" and "cannot detect or locate" in result["message"]


# ---------------------------------------------------------------------------- the node


@pytest.mark.ros
def test_the_node_describes_and_answers_with_blip_and_refuses_commands(caption_dir, vqa_dir):
    pytest.importorskip("rclpy")
    from ros_harness import RosGraph
    from std_msgs.msg import Empty, String

    from vlm_ros import scenes

    # warmup stays on (the default): it must caption, not detect.
    graph = RosGraph(["-p", "backend:=blip", "-p", f"model:={caption_dir}", "-p", "device:=cpu",
                      "-p", f"backend_options:='{{question_model: {vqa_dir}}}'",
                      "-p", "image_reliability:=reliable", "-p", "max_frame_age_s:=10.0"])

    def answer(topic: str, msg) -> dict:
        count = graph.listener.count("answer")
        graph.client.create_publisher(type(msg), topic, 10).publish(msg)
        assert graph.wait_for("answer", count + 1, timeout_s=60.0)
        return json.loads(graph.listener.received["answer"][-1].data)

    try:
        graph.show(*scenes.coffee())
        described = answer("/vlm_ros/describe", Empty())
        assert described["status"] == "ok" and described["backend"] == "blip"
        assert isinstance(described["answer"], str) and described["answer"]
        asked = answer("/vlm_ros/ask", String(data="what is on the table?"))
        assert asked["status"] == "ok" and asked["kind"] == "ask" and asked["answer"]
        result = graph.say("grab the red cup", timeout_s=60.0)
        assert result["status"] == "error" and "cannot detect or locate" in result["message"]
        assert graph.alive()
    finally:
        graph.close()
