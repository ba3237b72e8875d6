"""`vlm-ros console` and `vlm-ros demo --console` arguments (no aiohttp / rclpy import here:
the CLI builds its parser without them)."""

from __future__ import annotations

import argparse
from typing import Any

from vlm_ros.argtypes import fraction, node_name, positive, whole_number


def _port(text: str) -> int:
    return whole_number(text, 0, 65535)


def _fps(text: str) -> float:
    value = positive(text)
    if value > 60.0:
        raise argparse.ArgumentTypeError(f"must be > 0 and <= 60, got {text!r}")
    return value


def _token(text: str) -> str:
    if len(text.strip()) < 8:
        raise argparse.ArgumentTypeError("a token needs at least 8 characters")
    return text.strip()


def add_console_arguments(parser: argparse.ArgumentParser, demo: bool = False) -> None:
    """The server's options; ``demo``: without --node / --camera-topic (the demo sets them)."""
    if not demo:
        parser.add_argument("--node", default="/vlm_ros", type=node_name,
                            help="the vlm_ros node's name, e.g. vlm_ros or /robot1/vlm_ros "
                                 "(default /vlm_ros)")
        parser.add_argument("--camera-topic", default=None,
                            help="camera shown live under the answers (default: camera/image in "
                                 "the node's namespace; '' = only ~/debug_image)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only); any other "
                             "address needs the token")
    parser.add_argument("--port", type=_port, default=8080,
                        help="TCP port (default 8080; 0 = any free port, printed at start)")
    parser.add_argument("--token", type=_token, default=None,
                        help="access token (default: none on 127.0.0.1, a random one printed "
                             "at start on any other address)")
    parser.add_argument("--max-fps", type=_fps, default=15.0,
                        help="camera frames per second sent to a browser, at most (default 15)")
    parser.add_argument("--no-voice", dest="voice", action="store_false",
                        help="no push-to-talk (no speech models are loaded)")
    parser.add_argument("--language", default="en",
                        help="push-to-talk language: en, zh, ... or auto (default en)")
    parser.add_argument("--min-confidence", type=fraction, default=0.4,
                        help="spoken commands below this confidence (0..1) are not sent")


def run_from_args(args: Any, node: str | None = None, camera_topic: str | None = None) -> int:
    from vlm_ros.console.server import run_console
    from vlm_ros.console.voice import VoiceSettings

    return run_console(node=node or args.node, host=args.host, port=args.port, token=args.token,
                       camera_topic=camera_topic if node else args.camera_topic,
                       max_fps=args.max_fps, voice=args.voice,
                       voice_settings=VoiceSettings(language=args.language,
                                                    min_confidence=args.min_confidence))
