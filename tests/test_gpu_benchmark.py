"""Smoke test of scripts/gpu_benchmark.py: the whole script, tiny configs, on the CPU.

The real run happens once on a GPU machine with no network; this proves that the script, its
JSON report and its markdown block work end to end before that run (every backend, every pass,
finite positive timings, the device recorded, fp16 skipped on the CPU with a reason).  No timing
is asserted beyond "a positive finite number": CPU speed says nothing about the GPU figures.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_benchmark.py"
PASSES = {
    "owl": {"full", "image_only", "detect_end_to_end"},
    "grounding_dino": {"full"},
    "florence2": {"vision_encoder", "generate"},
    "qwen_vl": {"vision_encoder", "generate"},
}
DOC_TEMPLATE = ("# Benchmark\n\nintro kept\n\n<!-- gpu_benchmark:results -->\nold numbers\n"
                "<!-- /gpu_benchmark:results -->\n\n## After\n\ntail kept\n")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    folder = tmp_path_factory.mktemp("gpu_benchmark")
    report_path, doc_path = folder / "report.json", folder / "doc.md"
    doc_path.write_text(DOC_TEMPLATE)
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--iterations", "2", "--device", "cpu",
         "--json", str(report_path), "--markdown", str(doc_path)],
        capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(report_path.read_text()), doc_path.read_text()


def test_report_records_the_run(smoke_run: tuple[dict[str, Any], str]) -> None:
    report, _ = smoke_run
    assert report["device_type"] == "cpu" and report["device"]
    assert report["tiny"] is True and report["iterations"] == 2
    for key in ("torch", "transformers", "python", "date"):
        assert report[key]
    assert set(report["results"]) == set(PASSES)


def test_every_backend_times_each_pass_with_finite_positive_numbers(
    smoke_run: tuple[dict[str, Any], str]
) -> None:
    report, _ = smoke_run
    for backend, expected in PASSES.items():
        run = report["results"][backend]["dtypes"]["float32"]
        assert "error" not in run, run
        timed = {name for name, timing in run["passes"].items() if "skipped" not in timing}
        assert timed == expected, backend
        for name in timed:
            timing = run["passes"][name]
            assert timing["iterations"] >= 1
            for key in ("median_ms", "p90_ms"):
                assert math.isfinite(timing[key]) and timing[key] > 0, (backend, name, timing)
            assert timing["p90_ms"] >= timing["median_ms"]
    generate = report["results"]["qwen_vl"]["dtypes"]["float32"]["passes"]["generate"]
    assert generate["new_tokens"] == 16


def test_inapplicable_passes_and_cpu_half_precision_say_why(
    smoke_run: tuple[dict[str, Any], str]
) -> None:
    report, _ = smoke_run
    gdino = report["results"]["grounding_dino"]["dtypes"]["float32"]["passes"]
    assert "not applicable" in gdino["image_only"]["skipped"]
    for backend in PASSES:
        assert "CPU" in report["results"][backend]["dtypes"]["float16"]["skipped"]
    target = report["owl_target"]
    assert target["target_ms"] == 8.0 and target["met"] is None and target["reason"]


def test_markdown_replaces_only_the_marked_block(smoke_run: tuple[dict[str, Any], str]) -> None:
    report, doc = smoke_run
    assert "intro kept" in doc and "tail kept" in doc and "old numbers" not in doc
    assert doc.count("<!-- gpu_benchmark:results -->") == 1
    assert report["device"] in doc and "tiny configs" in doc
    assert "| owl | tiny OWLv2 | image_only | float32 |" in doc
