"""The one way our node processes start and end (vlm_node, vlm_voice)."""

from __future__ import annotations

import signal
import sys
import textwrap
import threading
from collections.abc import Mapping
from typing import Any, Callable

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import uninstall_signal_handlers

ROS_ARGS_USAGE = """\
ROS arguments (after --ros-args; end them with -- if more follow):
  -p NAME:=VALUE          set a parameter (YAML value: 0.5, true, '[0.0, 0.0, 1.0]', text)
  --params-file FILE      parameters from a ROS 2 YAML file
  -r FROM:=TO             remap a topic or service, e.g. -r camera/image:=/camera/color/image_raw
  -r __ns:=/NAMESPACE     run in a namespace (its relative topics move with it)
  -r __node:=NAME         rename the node
  --log-level LEVEL       debug | info | warn | error | fatal"""


def node_usage(program: str, summary: str,
               parameters: Mapping[str, tuple[Any, str]] | None = None) -> str:
    """``--help`` text of a node process: what it accepts (only ROS arguments) and its
    parameters with their defaults."""
    lines = [f"usage: {program} [-h] [--ros-args [ROS ARGUMENTS ...]]", "",
             textwrap.fill(summary, 100), "",
             "options:", "  -h, --help              show this help and exit (ROS is not started)",
             "", ROS_ARGS_USAGE]
    if parameters:
        lines += ["", "parameters (-p NAME:=VALUE; default in brackets):"]
        for name, (default, description) in parameters.items():
            lines.append(textwrap.fill(f"{name} [{default!r}]: {description}", 100,
                                       initial_indent="  ", subsequent_indent="      "))
    return "\n".join(lines)


def check_node_args(program: str, args: list[str], usage: str) -> int | None:
    """Screen a node's command line before rclpy starts.

    ``args`` is the command line without the program name.  Returns 0 after printing ``usage``
    for -h / --help, 2 after one ``program: error: ...`` line on stderr for anything else that
    is not a ROS argument (or for ROS arguments rcl cannot parse), None when the node may start.
    """
    from rclpy.utilities import remove_ros_args

    try:
        user_args = remove_ros_args([program, *args])[1:]
    except RuntimeError as exc:  # RCLInvalidROSArgsError
        return _arg_error(program, _first_line(str(exc)))
    if "-h" in user_args or "--help" in user_args:
        print(usage)
        return 0
    if user_args:
        return _arg_error(program, f"unrecognized arguments: {' '.join(user_args)} (node settings"
                                   " are ROS parameters: --ros-args -p NAME:=VALUE; see --help)")
    return None


def _arg_error(program: str, message: str) -> int:
    print(f"{program}: error: {message}", file=sys.stderr, flush=True)
    return 2


def _first_line(text: str) -> str:
    """rcl's messages append ', at file.c:line' locations: keep the part a user can act on."""
    return text.splitlines()[0].split(", at /")[0] if text else "invalid arguments"


def _interrupt_once(signum: int, frame: Any) -> None:
    """The first Ctrl-C raises KeyboardInterrupt; from then on SIGINT is ignored, also through
    interpreter exit.  ``ros2 launch`` forwards SIGINT to a node whose terminal has sent one too,
    and people press Ctrl-C again: a repeat that raised inside the clean-up (joining threads,
    destroying nodes) ended the process with a traceback and exit code -2, and one during
    Python's exit (which resets a Python-function handler, not an ignored signal, to the
    default) killed it with -2."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def interrupt_once() -> None:
    """For a process's entry point: only the first Ctrl-C interrupts (see _interrupt_once).
    Call it before ``rclpy.init()``: rclpy's handler then chains to this one; set after it,
    Python's handler would replace rclpy's, and an executor blocked in its wait set would never
    wake.  Only the main thread can set handlers; elsewhere this does nothing."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupt_once)


def end_signal_handling() -> None:
    """Call first in the clean-up of a process that owns rclpy, before any executor is shut down
    or dropped: stops rclpy's signal thread (``rclpy.shutdown()`` would stop it only at the end).

    Why: rclpy (Humble to Rolling) wakes executors on SIGINT from a thread of its own, which walks
    the list of every executor's SIGINT guard condition; shutting an executor down removes its
    entry, frees the old list and destroys the guard condition, with no lock between the two.  A
    Ctrl-C still being handled while the clean-up shut an executor down was a use-after-free: the
    node died with SIGSEGV in 4 of 60 double Ctrl-C's on a loaded 2-core machine (and once in CI).
    ``uninstall_signal_handlers`` joins that thread, so nothing walks the list any more."""
    uninstall_signal_handlers()


def shutdown_rclpy() -> None:
    """The last step of that clean-up: ``rclpy.shutdown()`` without uninstalling the signal
    handlers again (a second uninstall sets SIGINT to its default action for a moment)."""
    if rclpy.ok():
        rclpy.shutdown(uninstall_handlers=False)


def run_node(make_node: Callable[[], Node], make_executor: Callable[[Node], Executor],
             fatal: tuple[type[BaseException], ...], what_failed: str,
             args: list[str] | None = None) -> None:
    """Init rclpy, build the node, spin until Ctrl-C or shutdown, always clean up.

    An exception in ``fatal`` (a model or device that cannot be loaded) ends the process with
    exit code 2 and one line - ``what_failed: <reason>`` - instead of a traceback (an exception
    with its own ``what_failed`` attribute names itself, e.g. invalid parameters); so do a
    command line that is not ROS arguments and a parameter of the wrong type (one line on
    stderr).  ``-h`` / ``--help`` prints the usage and exits 0 without starting ROS.  Ctrl-C
    (SIGINT, also a repeated one) and ``rclpy.shutdown()`` end it with exit code 0.
    """
    argv = list(sys.argv if args is None else args)
    program = (what_failed.split(":")[0].strip() or "node") if what_failed else "node"
    code = check_node_args(program, argv[1:], node_usage(program, "A vlm_ros ROS 2 node."))
    if code is not None:
        raise SystemExit(code)
    interrupt_once()
    try:
        rclpy.init(args=argv)
    except RuntimeError as exc:  # rcl refused the ROS arguments
        raise SystemExit(_arg_error(program, _first_line(str(exc)))) from exc
    node = executor = None  # kept here: an executor dropped mid-signal is the crash above
    try:
        node = make_node()
        executor = make_executor(node)
        rclpy.spin(node, executor=executor)
    except fatal as exc:
        print(f"{getattr(exc, 'what_failed', what_failed)}: {_first_line(str(exc))}",
              file=sys.stderr, flush=True)
        raise SystemExit(2) from exc
    except ParameterException as exc:  # e.g. [0, 0, 1] where doubles are declared: 0.0, ...
        message = _first_line(str(exc))
        if "INTEGER" in message and "DOUBLE" in message:
            message += " (write numbers with a decimal point: 1.0, not 1)"
        raise SystemExit(_arg_error(program, f"bad parameter: {message}")) from exc
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        _uninterrupted(end_signal_handling)
        _uninterrupted(lambda: node.destroy_node() if node is not None else None)
        _uninterrupted(lambda: executor.shutdown(timeout_sec=5.0) if executor is not None
                       else None)
        _uninterrupted(shutdown_rclpy)


def _uninterrupted(step: Callable[[], Any]) -> None:
    """Run a clean-up step; a SIGINT already pending when clean-up began does not stop it."""
    try:
        step()
    except KeyboardInterrupt:
        pass
