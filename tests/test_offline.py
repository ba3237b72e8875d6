"""No hub reachable: the transformers backends answer at once, in one line, with what to do.

The situation is real, not simulated: this machine cannot reach huggingface.co, and the hub
endpoint is pinned deterministically with HF_ENDPOINT pointing at a local TCP port that accepts
connections and never answers (the worst case: a firewall that drops packets, a dead proxy) or
at one that refuses them.  The CLI runs in a subprocess with an empty hub cache (HF_HOME in a
temporary folder).

Timing: importing torch + transformers alone takes 3-8 s here, far more than the budget, so the
subprocess imports the adapters first and then times ``vlm_ros.cli.main`` itself — the backend's
own loading, which before this check spent 28-147 s in hub retries.  The local server also
counts connections: one probe per process, and no hub request at all when loading from the
cache.

Local folders are checked before any loader runs: a path that does not exist, a file, an empty
folder, config only, and tiny random models (the helpers of tests/test_backend_*.py) saved with
save_pretrained and then missing one file each.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from photos import photo_path
from test_backend_florence2 import save_tiny_florence2
from test_backend_grounding_dino import save_tiny_grounding_dino
from test_backend_owl import save_tiny_owl
from test_backend_qwen_vl import save_tiny_qwen
from transformers import GroundingDinoConfig

from vlm_ros.backends import backend_class, create_backend, default_model, hub
from vlm_ros.backends.base import BackendError

REPO_ROOT = Path(__file__).resolve().parent.parent
COFFEE = str(photo_path("coffee"))
BUDGET_S = 2.0  # the backend's own loading, from `main()` to the one-line answer
HUB_BACKENDS = ("owl", "grounding_dino", "florence2", "qwen_vl")
DEFAULTS = {name: default_model(backend_class(name)) for name in HUB_BACKENDS}

# Imports done before the clock starts (what a user pays once per process, whatever the outcome).
RUNNER = """
import importlib, json, sys, time
for module in ("vlm_ros.cli", "vlm_ros.backends.owl", "vlm_ros.backends.grounding_dino",
               "vlm_ros.backends.florence2", "vlm_ros.backends.qwen_vl", "vlm_ros.core.pipeline",
               "vlm_ros.core.session", "vlm_ros.core.geometry", "vlm_ros.core.goals",
               "vlm_ros.core.io", "huggingface_hub"):
    importlib.import_module(module)
from vlm_ros.cli import main
started = time.perf_counter()
rc = main(sys.argv[1:])
elapsed = time.perf_counter() - started
sys.stdout.flush()
print(json.dumps({"rc": rc, "elapsed_s": elapsed}))
"""


class SilentHub:
    """A TCP port that accepts connections, counts them, and never sends a byte."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._held.append(conn)

    def close(self) -> None:
        self._server.close()
        for conn in self._held:
            conn.close()


def refused_url() -> str:
    """A local port with nothing listening: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass
class Run:
    rc: int
    elapsed_s: float
    stdout: str
    stderr_lines: list[str]


def run_cli(args: list[str], env_extra: dict[str, str], home: Path) -> Run:
    """``vlm-ros ARGS`` in a fresh process with an empty hub cache under ``home``."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "HF_HUB_CACHE",
                          "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE")}
    env.update(HF_HOME=str(home), PYTHONPATH=os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]), **env_extra)
    proc = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, text=True,
                          env=env, timeout=180)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"runner printed nothing; stderr:\n{proc.stderr}"
    report = json.loads(lines[-1])
    return Run(report["rc"], report["elapsed_s"], "\n".join(lines[:-1]),
               proc.stderr.strip().splitlines())


def ground_args(backend: str, *extra: str) -> list[str]:
    return ["ground", "--backend", backend, "--image", COFFEE, "--command", "grab the cup",
            *extra]


def not_cached_line(backend: str, model: str, why: str) -> str:
    return (f"vlm-ros: error: {backend}: model {model} is not in the local cache and {why}: "
            f"download it on a machine with internet (`huggingface-cli download {model}`) and "
            f"copy ")


@pytest.fixture(scope="module")
def silent_hub() -> Iterator[SilentHub]:
    server = SilentHub()
    yield server
    server.close()


# ------------------------------------------------------------------ CLI: not cached, no hub
CASES: dict[str, list[str]] = {
    **{f"ground-{name}": ground_args(name) for name in HUB_BACKENDS},
    "describe": ["describe", "--image", COFFEE],
    "ask": ["ask", "--image", COFFEE, "--question", "what is on the table?"],
}


@dataclass
class Batch:
    url: str  # the silent hub every case was pointed at (HF_ENDPOINT)
    connections: int  # how many connections it accepted over the whole batch
    runs: dict[str, Run]


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    """Every case against its own silent hub (two at a time: the imports are CPU-bound)."""
    home = tmp_path_factory.mktemp("hf_home")
    server = SilentHub()
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {case: pool.submit(run_cli, args, {"HF_ENDPOINT": server.url}, home)
                       for case, args in CASES.items()}
            runs = {case: future.result() for case, future in futures.items()}
        return Batch(server.url, server.connections, runs)
    finally:
        server.close()


@pytest.mark.parametrize("backend", HUB_BACKENDS)
def test_ground_answers_in_one_line_within_the_budget(backend: str, batch: Batch) -> None:
    run = batch.runs[f"ground-{backend}"]
    assert run.rc == 2  # the CLI's bad-input code for a BackendError
    assert len(run.stderr_lines) == 1, run.stderr_lines
    assert run.stderr_lines[0].startswith(not_cached_line(
        backend, DEFAULTS[backend], f"the hub ({batch.url}) is unreachable"))
    assert run.stderr_lines[0].endswith("or pass --model /path/to/folder")
    assert run.elapsed_s < BUDGET_S, f"{backend}: {run.elapsed_s:.2f} s"


@pytest.mark.parametrize("command", ["describe", "ask"])
def test_describe_and_ask_say_what_they_load_then_fail_fast(command: str, batch: Batch) -> None:
    run = batch.runs[command]
    doing = "describe images" if command == "describe" else "answer questions about images"
    assert run.rc == 2
    assert len(run.stderr_lines) == 2, run.stderr_lines  # what it loads and why; the error
    assert run.stderr_lines[0] == (
        f"{command}: using qwen_vl ({DEFAULTS['qwen_vl']}): the default backend ssd_coco "
        f"cannot {doing}; pass --backend/--model to choose")
    assert run.stderr_lines[1].startswith(not_cached_line(
        "qwen_vl", DEFAULTS["qwen_vl"], f"the hub ({batch.url}) is unreachable"))
    assert run.elapsed_s < BUDGET_S, f"{command}: {run.elapsed_s:.2f} s"


def test_each_process_probes_the_hub_once_and_never_retries(batch: Batch) -> None:
    assert batch.connections == len(batch.runs)


def test_refused_connection_and_hf_hub_offline_answer_without_waiting(
    tmp_path: Path, silent_hub: SilentHub
) -> None:
    refused = run_cli(ground_args("owl"), {"HF_ENDPOINT": refused_url()}, tmp_path)
    assert refused.rc == 2 and len(refused.stderr_lines) == 1
    assert "is unreachable" in refused.stderr_lines[0]
    assert refused.elapsed_s < BUDGET_S

    before = silent_hub.connections
    offline = run_cli(ground_args("florence2"),
                      {"HF_ENDPOINT": silent_hub.url, "HF_HUB_OFFLINE": "1"}, tmp_path)
    assert offline.rc == 2 and len(offline.stderr_lines) == 1
    assert offline.stderr_lines[0].startswith(not_cached_line(
        "florence2", DEFAULTS["florence2"], "HF_HUB_OFFLINE is set"))
    assert offline.elapsed_s < 0.5  # no probe at all
    assert silent_hub.connections == before


def test_the_real_hub_here(tmp_path: Path) -> None:
    """This machine as a user finds it: no HF_ENDPOINT, huggingface.co unreachable."""
    if hub.hub_reachable(hub.DEFAULT_ENDPOINT):
        pytest.skip("huggingface.co is reachable here: the CLI would download the model")
    run = run_cli(ground_args("owl"), {}, tmp_path)
    assert run.rc == 2 and len(run.stderr_lines) == 1
    assert run.stderr_lines[0].startswith(not_cached_line(
        "owl", DEFAULTS["owl"], "the hub (https://huggingface.co) is unreachable"))
    assert run.elapsed_s < BUDGET_S


def test_missing_folder_is_not_answered_with_a_download_hint(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    run = run_cli(ground_args("owl", "--model", str(missing)), {}, tmp_path)
    assert run.rc == 2
    assert run.stderr_lines == [f"vlm-ros: error: owl: no such folder: {missing}"]
    assert run.elapsed_s < BUDGET_S


# ------------------------------------------------------------------ loading from the cache
def _cache_snapshot(home: Path, model: str, save: object) -> Path:
    """Put a tiny model where the hub cache keeps ``model``'s main revision."""
    repo = home / "hub" / f"models--{model.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    save(snapshot)  # type: ignore[operator]
    return snapshot


def test_cached_default_model_loads_offline_without_hub_requests(
    tmp_path: Path, silent_hub: SilentHub
) -> None:
    _cache_snapshot(tmp_path, DEFAULTS["owl"], lambda folder: save_tiny_owl(folder, "owlv2"))
    before = silent_hub.connections
    run = run_cli(ground_args("owl", "--device", "cpu", "--json"),
                  {"HF_ENDPOINT": silent_hub.url}, tmp_path)
    assert run.rc == 0, run.stderr_lines
    assert json.loads(run.stdout)["status"] in {"ok", "not_found", "ambiguous"}
    assert silent_hub.connections == before + 1  # the probe; every file came from the cache

    offline = run_cli(ground_args("owl", "--device", "cpu", "--json"),
                      {"HF_ENDPOINT": silent_hub.url, "HF_HUB_OFFLINE": "1"}, tmp_path)
    assert offline.rc == 0, offline.stderr_lines
    assert silent_hub.connections == before + 1  # HF_HUB_OFFLINE: not even the probe


def test_cached_vlm_describes_offline(tmp_path: Path, silent_hub: SilentHub) -> None:
    _cache_snapshot(tmp_path, DEFAULTS["qwen_vl"], save_tiny_qwen)
    before = silent_hub.connections
    run = run_cli(["describe", "--image", COFFEE, "--device", "cpu", "--json"],
                  {"HF_ENDPOINT": silent_hub.url}, tmp_path)
    assert run.rc == 0, run.stderr_lines
    assert run.stderr_lines[0].startswith(f"describe: using qwen_vl ({DEFAULTS['qwen_vl']})")
    assert isinstance(json.loads(run.stdout)["answer"], str)
    assert silent_hub.connections == before + 1  # the probe only


def test_partly_cached_model_names_the_missing_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    snapshot = _cache_snapshot(tmp_path, DEFAULTS["owl"],
                               lambda folder: save_tiny_owl(folder, "owlv2"))
    (snapshot / "model.safetensors").unlink()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendError) as error:
        create_backend("owl", device="cpu")
    assert str(error.value).startswith(
        f"owl: model {DEFAULTS['owl']} is only partly in the local cache (missing a weights "
        f"file (model.safetensors or pytorch_model.bin")
    assert "HF_HUB_OFFLINE is set" in str(error.value)


# ------------------------------------------------------------------ local folders
def test_path_that_does_not_exist(tmp_path: Path) -> None:
    for name in HUB_BACKENDS:
        with pytest.raises(BackendError) as error:
            create_backend(name, model=str(tmp_path / "nonexistent"), device="cpu")
        assert str(error.value) == f"{name}: no such folder: {tmp_path / 'nonexistent'}"


def test_a_file_is_not_a_model_folder(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(BackendError, match=r"^owl: not a folder: .*model\.safetensors"):
        create_backend("owl", model=str(weights), device="cpu")


def test_empty_folder_names_every_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as error:
        create_backend("grounding_dino", model=str(tmp_path), device="cpu")
    assert str(error.value).startswith(
        f"grounding_dino: folder {tmp_path} is missing config.json, a weights file "
        f"(model.safetensors or pytorch_model.bin, or a *.index.json with its shards), "
        f"preprocessor_config.json (or processor_config.json), tokenizer files "
        f"(tokenizer.json or vocab.txt):")
    assert "huggingface-cli download" in str(error.value)  # how to get a complete folder


def test_config_only_folder_names_the_rest(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BackendError) as error:
        create_backend("qwen_vl", model=str(tmp_path), device="cpu")
    message = str(error.value)
    assert message.startswith(f"qwen_vl: folder {tmp_path} is missing a weights file")
    assert "config.json," not in message and "tokenizer files (tokenizer.json, or vocab.json " \
        "and merges.txt)" in message


def _save(name: str, folder: Path) -> None:
    if name == "owl":
        save_tiny_owl(folder, "owlv2")
    elif name == "grounding_dino":
        save_tiny_grounding_dino(folder, GroundingDinoConfig)
    elif name == "florence2":
        save_tiny_florence2(folder)
    else:
        save_tiny_qwen(folder)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    for name in HUB_BACKENDS:
        _save(name, root / name)
    return {name: root / name for name in HUB_BACKENDS}


# (backend, files deleted from its tiny model, what the message must name)
DELETIONS = [
    ("owl", ["model.safetensors"], "a weights file"),
    ("owl", ["tokenizer.json"], "tokenizer files (tokenizer.json, or vocab.json and merges.txt)"),
    ("grounding_dino", ["tokenizer.json", "vocab.txt"], "tokenizer files (tokenizer.json or "
                                                        "vocab.txt)"),
    ("florence2", ["processor_config.json"], "preprocessor_config.json (or "
                                             "processor_config.json)"),
    ("qwen_vl", ["config.json"], "config.json"),
    ("qwen_vl", ["preprocessor_config.json"], "preprocessor_config.json"),
]


@pytest.mark.parametrize(("backend", "deleted", "named"), DELETIONS)
def test_saved_model_missing_a_file_names_it(
    backend: str, deleted: list[str], named: str, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / backend
    folder.mkdir()
    for source in tiny_models[backend].iterdir():
        if source.name not in deleted:
            (folder / source.name).write_bytes(source.read_bytes())
    with pytest.raises(BackendError) as error:
        create_backend(backend, model=str(folder), device="cpu")
    assert str(error.value).startswith(f"{backend}: folder {folder} is missing {named}")
    assert str(error.value).count(" is missing ") == 1 and "\n" not in str(error.value)


def test_complete_saved_models_pass_the_check(tiny_models: dict[str, Path]) -> None:
    for name, folder in tiny_models.items():
        requirements = hub.MODEL_FILES[name]
        assert hub.resolve_model(str(folder), requirements, label=name).kind == "folder"


def test_sharded_weights_need_every_listed_shard(tmp_path: Path) -> None:
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"a.weight": shards[0], "b.weight": shards[1]}}))
    (tmp_path / shards[0]).write_bytes(b"")
    assert hub.missing_files(tmp_path, (hub.WEIGHTS,)) == [f"weight shard(s) {shards[1]}"]
    (tmp_path / shards[1]).write_bytes(b"")
    assert hub.missing_files(tmp_path, (hub.WEIGHTS,)) == []


# ------------------------------------------------------------------ the probe itself
class _Hub(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_probe_tells_an_answering_hub_from_a_silent_one(silent_hub: SilentHub) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert hub.hub_reachable(url) is True
    finally:
        server.shutdown()
        server.server_close()
    assert hub.hub_reachable(url) is True  # remembered for the process: no second request

    silent = f"{silent_hub.url}/silent-probe"  # a fresh endpoint: not yet remembered
    started = time.perf_counter()
    assert hub.hub_reachable(silent) is False
    assert time.perf_counter() - started < hub.PROBE_TIMEOUT_S + 0.5
    started = time.perf_counter()
    assert hub.hub_reachable(silent) is False
    assert time.perf_counter() - started < 0.05


# ------------------------------------------------------------------ `vlm-ros backends`
def test_inventory_reports_the_same_source_and_error_as_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    from vlm_ros.backends.inventory import inventory

    snapshot = _cache_snapshot(tmp_path, DEFAULTS["owl"],
                               lambda folder: save_tiny_owl(folder, "owlv2"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rows = {row["name"]: row for row in inventory()}
    assert rows["owl"]["model"] == DEFAULTS["owl"]
    assert rows["owl"]["weights"] == f"local cache {snapshot}"
    assert rows["owl"]["usable"] == "not loaded (vlm-ros backends --load loads it)"
    with pytest.raises(BackendError) as error:
        create_backend("qwen_vl", device="cpu")
    assert rows["qwen_vl"]["usable"] is False
    assert f"qwen_vl: {rows['qwen_vl']['weights']}" == str(error.value)
    assert rows["ssd_coco"]["usable"] is True
