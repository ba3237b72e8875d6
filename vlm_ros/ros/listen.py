"""`vlm-ros listen`: speak commands to a running vlm_ros node from a terminal.

Push-to-talk by default (Enter starts recording, Enter again sends), or hands-free with VAD
(``--hands-free``).  Each utterance goes through the same front end as the voice node
(VAD -> Whisper -> gate); an accepted transcript is published on ``<node>/command`` and the node's
answer printed; a rejected one prints "say that again".  The microphone is opened before anything
else is loaded, so a machine without one fails at once with one sentence.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from vlm_ros.voice.audio import resample
from vlm_ros.voice.frontend import VoiceFrontEnd, VoiceResult
from vlm_ros.voice.microphone import Microphone


def run_listen(frontend_factory: Callable[[], VoiceFrontEnd], node: str = "/vlm_ros",
               mic_device: str | None = None, mic_rate: int = 0, hands_free: bool = False,
               wait_s: float = 10.0, show: Callable[[dict[str, Any]], str] = str) -> int:
    """Open the microphone, then load the models, then talk to ``node`` until Ctrl-C / EOF.

    Raises MicrophoneError (no microphone) before any model is loaded.
    """
    microphone = Microphone(mic_device, mic_rate)
    try:
        frontend = frontend_factory()
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from vlm_ros.ros.run import end_signal_handling, shutdown_rclpy
        from vlm_ros.ros.teleop import CommandClient

        rclpy.init()
        client = CommandClient(node, name="vlm_ros_listen")
        executor = SingleThreadedExecutor()
        executor.add_node(client)
        try:
            if not client.wait_for_node(executor, wait_s):
                print(f"warning: no {node} node found; commands are sent anyway", file=sys.stderr)
            print(f"microphone: {microphone.name} ({microphone.rate} Hz); Ctrl-C quits")

            def deliver(result: VoiceResult) -> None:
                _print_result(result)
                if result.decision.send:
                    answer = client.send(result.decision.command, executor, wait_s)
                    print(show(answer) if answer else f"  (no answer from {node} in {wait_s} s)")

            loop = _hands_free if hands_free else _push_to_talk
            loop(microphone, frontend, deliver)
        except (KeyboardInterrupt, EOFError):
            print()
        finally:
            end_signal_handling()
            executor.shutdown()
            client.destroy_node()
            shutdown_rclpy()
    finally:
        microphone.close()
    return 0


def _push_to_talk(microphone: Microphone, frontend: VoiceFrontEnd,
                  deliver: Callable[[VoiceResult], None]) -> None:
    while True:
        input("[Enter] to talk ")
        microphone.drain()
        released = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.readline(), released.set()),
                         daemon=True).start()
        print("  recording... [Enter] to send")
        blocks: list[np.ndarray] = []
        while not released.is_set():
            block = microphone.read(0.05)
            if block is not None:
                blocks.append(block)
        audio = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        deliver(frontend.recognise_audio(resample(audio, microphone.rate)))


def _hands_free(microphone: Microphone, frontend: VoiceFrontEnd,
                deliver: Callable[[VoiceResult], None]) -> None:
    print("listening (hands-free)...")
    while True:
        block = microphone.read(0.1)
        if block is not None:
            for utterance in frontend.push(block, microphone.rate):
                deliver(frontend.recognise(utterance))


def _print_result(result: VoiceResult) -> None:
    t, d = result.transcript, result.decision
    heard = f"  heard {t.text!r} (confidence {t.confidence:.2f}, {t.latency_ms:.0f} ms)"
    if d.send:
        print(f"{heard} -> sent")
    elif d.status == "rejected":
        print(f"{heard} -> {d.message} ({d.reason})")
    else:
        print(f"{heard} -> {d.status} ({d.reason})")
