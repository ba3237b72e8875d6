"""Voice commands, ROS-free: audio -> VAD utterances -> faster-whisper transcripts -> a gate that
sends the command or asks to "say that again".  See README "Voice" and vlm_ros/ros/voice_node.py.

Heavy dependencies (faster-whisper, silero-vad, sounddevice; the ``voice`` extra) are imported
only when a model or microphone is opened, so importing this package costs nothing.
"""

from vlm_ros.voice.audio import SAMPLE_RATE, AudioError, Resampler, read_wav, resample, write_wav
from vlm_ros.voice.frontend import VoiceFrontEnd, VoiceResult, transcribe_file
from vlm_ros.voice.gate import SAY_AGAIN, CommandGate, Decision, GateConfig
from vlm_ros.voice.transcriber import (
    Transcriber,
    TranscriberConfig,
    Transcript,
    VoiceError,
    confidence_of,
    default_model_path,
    to_simplified,
)
from vlm_ros.voice.vad import Utterance, UtteranceSegmenter, VadConfig, VadError, find_utterances

__all__ = [
    "SAMPLE_RATE", "SAY_AGAIN", "AudioError", "CommandGate", "Decision", "GateConfig",
    "Resampler", "Transcriber", "TranscriberConfig", "Transcript", "Utterance",
    "UtteranceSegmenter", "VadConfig", "VadError", "VoiceError", "VoiceFrontEnd", "VoiceResult",
    "confidence_of", "default_model_path", "find_utterances", "read_wav", "resample",
    "to_simplified", "transcribe_file", "write_wav",
]
