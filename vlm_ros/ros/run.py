"""The one way our node processes start and end (vlm_node, vlm_voice)."""

from __future__ import annotations

from typing import Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.node import Node


def run_node(make_node: Callable[[], Node], make_executor: Callable[[Node], Executor],
             fatal: tuple[type[BaseException], ...], what_failed: str,
             args: list[str] | None = None) -> None:
    """Init rclpy, build the node, spin until Ctrl-C or shutdown, always clean up.

    An exception in ``fatal`` (a model or device that cannot be loaded) ends the process with
    exit code 2 and one line - ``what_failed: <reason>`` - instead of a traceback (an exception
    with its own ``what_failed`` attribute names itself, e.g. invalid parameters).
    """
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        rclpy.spin(node, executor=make_executor(node))
    except fatal as exc:
        print(f"{getattr(exc, 'what_failed', what_failed)}: {exc}", flush=True)
        raise SystemExit(2) from exc
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
