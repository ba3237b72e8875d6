"""Voice latency on this machine: audio length vs transcription time, and spoken-stop delay.

For each test command, espeak-ng speaks it (plus white noise at 20 dB SNR), and the voice front
end runs exactly as in the node: 32 ms chunks through the VAD, each finished utterance through
Whisper (warm model).  Reported per command:

  audio_s        length of the utterance Whisper got (speech + VAD padding)
  transcribe_ms  Whisper's wall time for it (the model is warm)
  rtf            transcribe time / audio length (below 1 = faster than real time)
  end_to_send_ms from the end of the speech to the moment the command could be published:
                 the VAD's closing silence (stream time) + transcription (wall time)

    .venv/bin/python scripts/voice_latency.py [--repeat 3] [--json] [--model DIR] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from vlm_ros.voice import SAMPLE_RATE, Transcriber, TranscriberConfig, VoiceFrontEnd, read_wav

COMMANDS = ["stop", "grab the red cup", "grab the green cup", "look at the person",
            "go to the chair on the left", "grab the red cup and put it in the blue bowl"]
CHUNK = 512


def speak(text: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text],
                       check=True, capture_output=True)
        return read_wav(path)


def measure(frontend: VoiceFrontEnd, text: str, rng: np.random.Generator) -> dict:
    speech = speak(text)
    voiced = np.flatnonzero(np.abs(speech) > 1e-3)
    lead = SAMPLE_RATE // 2
    speech_end_s = (lead + voiced[-1]) / SAMPLE_RATE
    audio = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(SAMPLE_RATE, np.float32)])
    power = float(np.mean(speech[voiced] ** 2))
    audio = audio + rng.standard_normal(audio.size).astype(np.float32) * np.sqrt(power / 100.0)
    for start in range(0, audio.size, CHUNK):
        done = frontend.push(audio[start:start + CHUNK])
        if done:
            closed_s = (start + CHUNK) / SAMPLE_RATE
            result = frontend.recognise(done[0])
            frontend.flush()
            t = result.transcript
            return {"command": text, "heard": t.text, "confidence": round(t.confidence, 3),
                    "audio_s": round(t.duration_s, 2), "transcribe_ms": round(t.latency_ms),
                    "rtf": round(t.latency_ms / 1000.0 / t.duration_s, 3),
                    "end_to_send_ms": round((closed_s - speech_end_s) * 1000.0 + t.latency_ms)}
    raise RuntimeError(f"no utterance found for {text!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per command (median kept)")
    parser.add_argument("--model", default="")
    parser.add_argument("--threads", type=int, default=0, help="CTranslate2 threads (0 = default)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        print("voice_latency: needs espeak-ng (bash scripts/ensure_espeak.sh)", file=sys.stderr)
        return 2
    transcriber = Transcriber(TranscriberConfig(model=args.model, cpu_threads=args.threads))
    transcriber.warmup()
    frontend = VoiceFrontEnd(transcriber)
    rows = []
    for text in COMMANDS:
        runs = [measure(frontend, text, np.random.default_rng(seed)) for seed in range(args.repeat)]
        row = dict(runs[0])
        for key in ("transcribe_ms", "rtf", "end_to_send_ms"):
            row[key] = statistics.median(r[key] for r in runs)
        rows.append(row)
    report = {"model": transcriber.model_path, "compute_type": "int8", "cpus": os.cpu_count(),
              "load_avg_1min": round(os.getloadavg()[0], 2), "rows": rows}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"model {report['model']} (int8), {report['cpus']} CPUs, "
          f"load {report['load_avg_1min']}")
    print(f"{'command':48s} {'audio_s':>7s} {'asr_ms':>7s} {'rtf':>6s} {'end->send':>9s}  heard")
    for r in rows:
        print(f"{r['command']:48s} {r['audio_s']:7.2f} {r['transcribe_ms']:7.0f} {r['rtf']:6.2f} "
              f"{r['end_to_send_ms']:9.0f}  {r['heard']!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
