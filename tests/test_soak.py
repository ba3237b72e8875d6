"""The soak tool against the real node process: a short run under camera + command load.

The ten-minute, 30 Hz + 50 commands/s run is `vlm-ros soak --minutes 10 --json`; this test is the
short version at a load a shared CI machine sustains, run as its own process like a user runs it,
checking the node's contract (alive, every command answered, memory flat) and that the JSON report
the tool prints is complete.
"""

from __future__ import annotations

import math

import pytest

# The soak module is an rclpy program; without rclpy even its ledger cannot be imported.
pytest.importorskip("rclpy")

from tool_process import run_tool_json

from vlm_ros.tools.soak import CommandLedger, percentiles_ms, time_limit_s


@pytest.mark.ros
def test_short_soak_answers_every_command_and_keeps_memory_flat() -> None:
    minutes = 0.2
    report = run_tool_json(["soak", "--minutes", str(minutes), "--rate", "15",
                            "--commands-per-s", "10"], time_limit_s(minutes) + 30.0)
    assert report["image_size"] == [640, 480] and report["rate_hz"] == 15.0
    assert report["node_alive"], report.get("node_log_tail")
    assert report["commands_sent"] > 0
    assert report["commands_unanswered"] == 0, report
    assert report["commands_answered"] == report["commands_sent"]
    assert report["unmatched_results"] == 0
    assert report["commands_received_by_node"] == report["commands_sent"]
    assert sum(report["statuses"].values()) == report["commands_answered"]
    # The mix holds grounded commands, unparseable ones and 2 KB junk: all three kinds appear.
    assert report["statuses"].get("rejected", 0) > 0
    assert report["statuses"].get("ok", 0) + report["statuses"].get("not_found", 0) > 0
    assert math.isfinite(report["latency_ms"]["p99"])
    assert report["rgb_frames_received_by_node"] > 0
    assert report["rss_mb_start"] > 0 and report["rss_growth_percent"] < 20.0
    assert report["max_queued_commands"] <= 8  # the node's command queue bound


def test_ledger_matches_results_to_commands_by_text() -> None:
    ledger = CommandLedger()
    junk = "z" * 2048
    for text in ("grab the red cup", "the left one", "grab the red cup", junk):
        ledger.record_send(text, 0.0)
    ledger.record_result({"status": "ok", "instruction": {"text": "grab the red cup"}}, 0.5)
    ledger.record_result({"status": "rejected", "message": "busy: too many commands waiting",
                          "instruction": {"text": "grab the red cup"}}, 0.25)
    ledger.record_result({"status": "ok",
                          "instruction": {"text": "grab the cup -> the left one"}}, 1.0)
    ledger.record_result({"status": "rejected", "instruction": {"text": junk[:80]}}, 2.0)
    ledger.record_result({"status": "ok", "instruction": {"text": "never sent"}}, 2.0)
    assert ledger.answered == ledger.sent == 4 and ledger.pending() == 0
    assert ledger.unmatched_results == 1
    assert ledger.statuses == {"ok": 2, "rejected (busy)": 1, "rejected": 1}
    assert percentiles_ms(ledger.latencies_s)["max"] == 2000.0
    assert len(ledger.latencies_processed_s) == 3  # busy refusals are kept apart
