"""`vlm-ros soak`: hold the real node under camera + command load and report how it copes.

Why a separate tool: the node's promise is "every command gets a result, nothing crashes, memory
stays flat" while an RGB-D driver streams at full rate and a UI hammers ~/command.  Unit tests
cannot see leaks or queue build-up; only minutes of sustained load can.  So this module starts
the node as its own process (its RSS is then the node's alone, read from /proc/<pid>/status),
streams a 640x480 RGB + depth + CameraInfo at ``rate_hz`` (a real photo, synthetic depth), sends
a mix of commands at ``commands_per_s`` and matches every ~/result to the command it answers.

Results carry the command text, not an id (and a suffix such as " #12" would change what the
parser reads), so matching is per text, first-in first-out: counts are exact, and a latency may
be attributed to another send of the same text when a "busy" rejection overtakes queued ones.
"""

from __future__ import annotations

import collections
import faulthandler
import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from vlm_ros.ros.run import end_signal_handling, shutdown_rclpy
from vlm_ros.tools.rig import (
    BASE_NODE_ARGS,
    CountingCamera,
    NodeProcess,
    coffee_scene,
    counters,
    node_status,
    parse_result,
    read_rss_mb,
    spin_in_background,
    stop_spinning,
    wait_until,
)

NODE_ARGS = [*BASE_NODE_ARGS, "-p", "follow_rate_hz:=0.0"]

# The command mix, cycled in order; every JUNK_EVERY-th command is a 2 KB junk string instead.
COMMANDS = ("grab the red cup", "grab the blue cup", "go to the cup", "hello", "the left one",
            "抓取红色杯子")
JUNK_EVERY = 25
JUNK_CHARS = 2048
_REJECTED_PREFIX = 80  # the node echoes only this much of an over-long command

STARTUP_TIMEOUT_S = 90.0  # model load + warm-up + DDS discovery
WARMUP_S = 5.0  # full load before the start RSS is read, so allocator pools are already filled
DRAIN_TIMEOUT_S = 20.0  # queue of 8 x per-command time, plus command_frame_timeout_s
RSS_SAMPLE_EVERY_S = 10.0
SHUTDOWN_S = 60.0  # the spin thread, the ROS nodes and the node process (terminate, then kill)


def time_limit_s(minutes: float) -> float:
    """The longest a soak of ``minutes`` takes when every phase runs into its limit."""
    return STARTUP_TIMEOUT_S + WARMUP_S + minutes * 60.0 + DRAIN_TIMEOUT_S + 3.0 + SHUTDOWN_S


def _match_key(text: str) -> str:
    """The part of a command that its result echoes back."""
    return text if len(text) <= _REJECTED_PREFIX else text[:_REJECTED_PREFIX]


def percentiles_ms(latencies_s: list[float]) -> dict[str, float | None]:
    if not latencies_s:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    ms = np.asarray(latencies_s) * 1000.0
    return {"p50": round(float(np.percentile(ms, 50)), 1),
            "p90": round(float(np.percentile(ms, 90)), 1),
            "p99": round(float(np.percentile(ms, 99)), 1),
            "max": round(float(ms.max()), 1)}


@dataclass
class CommandLedger:
    """Sent commands awaiting a result, and what came back (thread-safe: the executor adds
    results while the main thread sends)."""

    outstanding: dict[str, collections.deque[float]] = field(
        default_factory=lambda: collections.defaultdict(collections.deque))
    sent: int = 0
    answered: int = 0
    unmatched_results: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    latencies_s: list[float] = field(default_factory=list)
    latencies_processed_s: list[float] = field(default_factory=list)  # not a "busy" refusal
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record_send(self, text: str, when: float) -> None:
        with self.lock:
            self.outstanding[_match_key(text)].append(when)
            self.sent += 1

    def record_result(self, result: dict[str, Any], when: float) -> None:
        said = ((result.get("instruction") or {}).get("text") or "").strip()
        with self.lock:
            key = self._find(said)
            if key is None:
                self.unmatched_results += 1
                return
            sent_at = self.outstanding[key].popleft()
            self.answered += 1
            status = str(result.get("status"))
            message = str(result.get("message") or "")
            busy = status == "rejected" and message.startswith("busy")
            self.statuses["rejected (busy)" if busy else status] += 1
            self.latencies_s.append(when - sent_at)
            if not busy:
                self.latencies_processed_s.append(when - sent_at)

    def _find(self, said: str) -> str | None:
        """Which sent text ``said`` answers (a clarification answer comes back merged)."""
        candidates = [said, _match_key(said)]
        if "-> " in said:
            candidates.append(said.rsplit("-> ", 1)[1])
        for key in candidates:
            if self.outstanding.get(key):
                return key
        return None

    def pending(self) -> int:
        with self.lock:
            return sum(len(q) for q in self.outstanding.values())


class SoakClient(Node):
    """Sends commands, collects ~/result and the node's /diagnostics counters."""

    def __init__(self, ledger: CommandLedger, node: str = "/vlm_ros") -> None:
        super().__init__("vlm_ros_soak")
        self.ledger = ledger
        # Deep queues on this side: the soak must never be the one that drops messages.
        deep = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        # Keep-all like the node's command reader: a burst is never overwritten in DDS.
        every = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                           history=HistoryPolicy.KEEP_ALL)
        self.command_pub = self.create_publisher(String, f"{node}/command", every)
        self.result_topic = f"{node}/result"
        self.create_subscription(String, self.result_topic, self._on_result, deep)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, deep)
        self.counts: dict[str, int] = {}
        self.max_queued = 0
        self.diagnostics_seen = 0

    def _on_result(self, msg: String) -> None:
        self.ledger.record_result(parse_result(msg), time.monotonic())

    def _on_diagnostics(self, array: DiagnosticArray) -> None:
        values = node_status(array)
        if values is not None:
            counts = counters(values)
            self.counts = counts
            self.max_queued = max(self.max_queued, counts.get("queued_commands", 0))
            self.diagnostics_seen += 1

    def send(self, text: str) -> None:
        self.ledger.record_send(text, time.monotonic())
        self.command_pub.publish(String(data=text))


def _command_stream(seed: int = 0):
    """COMMANDS in turn, with a 2 KB junk string every JUNK_EVERY-th command."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz ,.!?#%&*()0123456789杯子红色"
    junk = ["".join(rng.choice(alphabet) for _ in range(JUNK_CHARS)) for _ in range(2)]
    index = 0
    while True:
        index += 1
        if index % JUNK_EVERY == 0:
            yield junk[(index // JUNK_EVERY) % len(junk)]
        else:
            yield COMMANDS[index % len(COMMANDS)]


def _send_paced(client: SoakClient, commands, commands_per_s: float, duration_s: float,
                node: NodeProcess, on_tick=None) -> None:
    """Send at a steady rate for ``duration_s`` (stops early if the node dies)."""
    period = 1.0 / commands_per_s if commands_per_s > 0 else None
    start = time.monotonic()
    end = start + duration_s
    next_send = start
    while True:
        now = time.monotonic()
        if now >= end or not node.alive():
            return
        if on_tick is not None:
            on_tick(now)
        if period is None:
            time.sleep(min(0.1, end - now))
            continue
        if now >= next_send:
            client.send(next(commands))
            next_send += period
            if next_send < now - 1.0:  # fell far behind (machine stalled): do not burst
                next_send = now
        else:
            time.sleep(min(next_send - now, end - now))


def run_soak(minutes: float, rate_hz: float = 30.0, commands_per_s: float = 50.0,
             width: int = 640, height: int = 480) -> dict[str, Any]:
    """Soak the node for ``minutes`` and return a JSON-able report.

    ``ok`` is the soak's pass criterion: the node is still alive, every command sent got a result
    (an explicit "busy"/"superseded" counts), and RSS grew less than 5 % after the warm-up.
    Every phase has a time limit; the node process is always terminated.
    """
    ledger = CommandLedger()
    report: dict[str, Any] = {
        "minutes": minutes, "rate_hz": rate_hz, "commands_per_s": commands_per_s,
        "image_size": [width, height], "warmup_s": WARMUP_S}
    owns_rclpy = not rclpy.ok()
    if owns_rclpy:
        rclpy.init()  # first: an invalid ROS_DOMAIN_ID fails here, before any process starts
    # One thread: the camera timer and the result callback are short, and a Python thread pool
    # would cost the node under test CPU on a small machine.
    executor = SingleThreadedExecutor()
    camera = client = node = spinner = None
    # Every phase below is bounded; should one still hang (in DDS or rclpy, where Python cannot
    # interrupt it), every thread's stack goes to stderr, so whoever kills the run sees where.
    faulthandler.dump_traceback_later(time_limit_s(minutes), file=sys.stderr)
    try:
        node = NodeProcess(NODE_ARGS)
        rgb, depth, intrinsics = coffee_scene(width, height)
        camera = CountingCamera(rgb, depth, intrinsics, rate_hz=rate_hz, name="vlm_ros_soak_cam")
        client = SoakClient(ledger)
        executor.add_node(camera)
        executor.add_node(client)
        spinner = spin_in_background(executor)

        came_up = wait_until(
            lambda: (not node.alive()) or (
                client.command_pub.get_subscription_count() > 0
                and client.count_publishers(client.result_topic) > 0
                and camera.image_pub.get_subscription_count() > 0
                and client.counts.get("rgb_frames", 0) > 0), STARTUP_TIMEOUT_S)
        if not came_up or not node.alive():
            report.update(ok=False, error="node did not come up", node_alive=node.alive(),
                          node_log_tail=list(node.log))
            return report

        commands = _command_stream()
        _send_paced(client, commands, commands_per_s, WARMUP_S, node)
        rss_start = read_rss_mb(node.pid)
        counts_start = dict(client.counts)
        frames_start = camera.published
        rss_samples: list[tuple[float, float]] = []
        started = time.monotonic()
        last_sample = [started]

        def sample_rss(now: float) -> None:
            if now - last_sample[0] >= RSS_SAMPLE_EVERY_S:
                last_sample[0] = now
                rss = read_rss_mb(node.pid)
                if rss is not None:
                    rss_samples.append((round(now - started, 1), round(rss, 1)))

        _send_paced(client, commands, commands_per_s, minutes * 60.0, node, sample_rss)
        load_s = time.monotonic() - started
        rss_end = read_rss_mb(node.pid)
        frames_published = camera.published - frames_start
        counts_end = dict(client.counts)

        drain_started = time.monotonic()
        wait_until(lambda: ledger.pending() == 0 or not node.alive(), DRAIN_TIMEOUT_S)
        drain_s = time.monotonic() - drain_started
        seen = client.diagnostics_seen  # one more /diagnostics: the node's final command count
        wait_until(lambda: client.diagnostics_seen > seen, 3.0)
        alive = node.alive()

        def delta(key: str, end: dict[str, int]) -> int:
            return end.get(key, 0) - counts_start.get(key, 0)

        growth = (None if rss_start is None or rss_end is None
                  else round(100.0 * (rss_end - rss_start) / rss_start, 2))
        with ledger.lock:
            statuses = dict(ledger.statuses)
            report.update(
                load_s=round(load_s, 1), drain_s=round(drain_s, 1),
                commands_sent=ledger.sent,
                commands_received_by_node=client.counts.get("commands", 0),
                commands_answered=ledger.answered,
                commands_unanswered=ledger.sent - ledger.answered,
                unmatched_results=ledger.unmatched_results,
                results_published_by_node=client.counts.get("results", 0),
                statuses=statuses,
                latency_ms=percentiles_ms(ledger.latencies_s),
                latency_ms_processed=percentiles_ms(ledger.latencies_processed_s))
        report.update(
            frames_published=frames_published,
            rgb_frames_received_by_node=delta("rgb_frames", counts_end),
            depth_frames_received_by_node=delta("depth_frames", counts_end),
            rgb_rate_received_hz=round(delta("rgb_frames", counts_end) / load_s, 2),
            max_queued_commands=client.max_queued,
            rss_mb_start=None if rss_start is None else round(rss_start, 1),
            rss_mb_end=None if rss_end is None else round(rss_end, 1),
            rss_growth_percent=growth,
            rss_mb_samples=rss_samples,
            node_alive=alive)
        report["ok"] = bool(alive and report["commands_unanswered"] == 0
                            and growth is not None and growth < 5.0)
        if not alive:
            report["node_exit_code"] = node.process.returncode
            report["node_log_tail"] = list(node.log)
        return report
    finally:
        if owns_rclpy:
            end_signal_handling()
        stop_spinning(executor, spinner, [camera, client])
        if owns_rclpy:
            shutdown_rclpy()
        if node is not None:
            node.stop()
        faulthandler.cancel_dump_traceback_later()


def main(argv: list[str] | None = None) -> int:
    """`python -m vlm_ros.tools.soak --minutes M [--json]` (the CLI wires `vlm-ros soak` here)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate-hz", type=float, default=30.0)
    parser.add_argument("--commands-per-s", type=float, default=50.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = run_soak(args.minutes, args.rate_hz, args.commands_per_s, args.width, args.height)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        for key, value in report.items():
            print(f"{key:32s} {value}")
    return 0 if report.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
