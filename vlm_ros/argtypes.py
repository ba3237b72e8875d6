"""argparse value types shared by the CLI's parsers (vlm_ros/cli.py, vlm_ros/console/args.py).

Each turns a bad value into ``argparse.ArgumentTypeError``, which the parser reports as one line
with exit code 2.  No heavy imports: the CLI builds its parser before loading any model or rclpy.
"""

from __future__ import annotations

import argparse
import math

__all__ = ["fraction", "node_name", "non_negative", "number", "positive", "whole_number"]


def number(text: str) -> float:
    """A finite float."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive(text: str) -> float:
    value = number(text)
    if value <= 0.0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def non_negative(text: str) -> float:
    value = number(text)
    if value < 0.0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    value = number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def whole_number(text: str, minimum: int, maximum: int | None = None) -> int:
    """An int in [minimum, maximum] (no upper bound when ``maximum`` is None)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text!r}")
    if maximum is not None and value > maximum:
        raise argparse.ArgumentTypeError(f"must be {minimum}..{maximum}, got {text!r}")
    return value


def node_name(text: str) -> str:
    """A node name with or without its leading slash, made fully qualified."""
    from vlm_ros.ros.teleop import qualified_node_name  # rclpy-free, but keep start-up light

    try:
        return qualified_node_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
