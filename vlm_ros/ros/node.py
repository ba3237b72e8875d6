"""The vlm_ros node: camera frames + a command in, a grounding result and goals out.

The rclpy shell around :class:`vlm_ros.core.session.CommandSession`, which decides everything
(what a command means, when to ask, when to confirm, what to track, what a stop cancels).  This
node only carries messages and threads:

* a managed (lifecycle) node: configure loads the backend, activate opens the inputs,
  deactivate stops acting, cleanup frees the model; ``autostart`` does configure + activate
  at start-up (see :class:`VlmRosNode`);
* parameters become typed settings (:mod:`params`), declared with descriptors (ranges,
  read-only); live ones are validated and handed to the worker, which applies them between two
  commands; camera -> base frames come from tf2 or the static extrinsics (:mod:`frames`);
* callbacks store camera messages (:mod:`frame_buffer`) and hand commands to the worker
  (:mod:`worker`), the one thread that talks to the session; a stop is signalled on ~/stop at
  once and cancels the queue before the session hears of it;
* the worker carries out the session's effects: replies and goals (:mod:`outputs`, the one
  gated goal path), model passes on a frame newer than the command (:mod:`model_guard`: the
  model's own thread, with a deadline), tracked frames;
* a timer publishes /diagnostics (:mod:`diagnostics`).

Nothing here may crash the node or publish a goal the session and the safety gate did not pass.
"""

from __future__ import annotations

import collections
import concurrent.futures
import gc
import sys
import threading
import time
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import Executor, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.service import Service
from rclpy.subscription import Subscription
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Empty, String
from std_srvs.srv import Trigger

from vlm_ros.backends import BackendError, create_backend
from vlm_ros.backends.llm_parser import LlmParser, make_parser
from vlm_ros.core.memory import ObjectMemory
from vlm_ros.core.memory_file import load_memory, save_memory
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.session import CommandSession
from vlm_ros.core.types import Frame, GroundingResult, Instruction
from vlm_ros.ros import messages
from vlm_ros.ros.convert import ConversionError
from vlm_ros.ros.diagnostics import STAGES, StageTimings, diagnostic_array
from vlm_ros.ros.frame_buffer import FrameBuffer, rectification_doubt, to_frame
from vlm_ros.ros.frames import make_frame_resolver
from vlm_ros.ros.instruct_action import InstructServer
from vlm_ros.ros.model_guard import ModelGuard
from vlm_ros.ros.outputs import COMMAND_HISTORY, Outputs
from vlm_ros.ros.params import PARAMETER_SPECS, PARAMETERS, NodeSettings, ParamSpec
from vlm_ros.ros.run import run_node
from vlm_ros.ros.worker import Request, Worker

__all__ = ["STAGES", "ParameterError", "VlmRosNode", "main", "make_executor"]


class ParameterError(ValueError):
    """Start-up parameters the node cannot run with (out of range, cross-field rules)."""

    what_failed = "vlm_ros: invalid parameters"


class VlmRosNode(LifecycleNode):
    """A managed (lifecycle) node.

    * unconfigured: parameters only (and the lifecycle services);
    * on_configure: the parser, the backend (loaded, warmed up), the session, the worker, the
      publishers and the ~/command subscription; a load failure is a FAILURE transition (the
      reason is logged, the node stays unconfigured and alive);
    * on_activate: camera, ~/ask, ~/describe, robot_status subscriptions and the ~/ground
      service; goals may go out;
    * on_deactivate: those are destroyed, goals are gated off and whatever runs is cancelled as
      by a stop (~/stop is signalled); ~/command is still answered, with status "rejected"
      ("inactive: ..."), so a sender is never left waiting;
    * on_cleanup: everything configure made is released, the model freed.

    ``autostart`` (default true) configures and activates at start-up, as an unmanaged node did.
    Parameters not marked read-only are applied live (:meth:`_on_set_parameters`).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("vlm_ros", **kwargs)
        try:
            for name, spec in PARAMETER_SPECS.items():
                self.declare_parameter(name, spec.default, _descriptor(name, spec))
            self.settings = NodeSettings.from_parameters(
                {name: self.get_parameter(name).value for name in PARAMETERS})
        except ParameterException:
            raise  # a value of the wrong type: run_node answers it in one line, with a hint
        except ValueError as exc:
            raise ParameterError(str(exc)) from exc
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Only blocking callbacks (~/ground, ~/instruct) need more executor threads.
        self._srv_module = messages.optional_module("vlm_ros.srv")
        self._nothing_configured()
        self._configure_error: BaseException | None = None
        if self.settings.autostart:
            if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                error = self._configure_error
                raise error if error is not None else RuntimeError("configure failed")
            if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                raise RuntimeError("vlm_ros: activate failed (see the log)")

    def _nothing_configured(self) -> None:
        self.backend: Any = None
        self.pipeline: Pipeline | None = None
        self.session: CommandSession | None = None
        self.worker: Worker | None = None
        self.outputs: Outputs | None = None
        self.model: ModelGuard | None = None
        self.frames: FrameBuffer | None = None
        self._resolver: Any = None
        self._command_sub: Any = None
        self._diagnostics_timer: Any = None
        self._memory_services: list[Any] = []
        self._inputs: list[Any] = []  # what activate creates and deactivate destroys
        self.instruct: InstructServer | None = None
        self._blocking: BlockingInterfaces | None = None
        self._active = False

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as exc:  # noqa: BLE001 - any load failure is a failed transition
            self._configure_error = exc
            self.get_logger().error(f"configure failed: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        self._configure_error = None
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._open_inputs()
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"activate failed: {exc}")
            self._close_inputs()
            return TransitionCallbackReturn.FAILURE
        assert self.outputs is not None
        self.outputs.active = self._active = True
        self.get_logger().info("vlm_ros ready: active, acting on commands")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self.get_logger().info("vlm_ros inactive: commands are answered 'rejected', no goals")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("vlm_ros unconfigured: backend released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS  # -> unconfigured

    def _configure(self) -> None:
        try:
            settings = self.settings.check()
        except ValueError as exc:
            raise ParameterError(str(exc)) from exc
        # parser llm: an unreachable server is not fatal - commands are rejected naming it (the
        # parser logs that once, and again when the server answers).
        parse = make_parser(settings.parser, settings.parser_kwargs(),
                            report=self.get_logger().warning)
        if isinstance(parse, LlmParser):
            parse.check()

        self.backend = create_backend(settings.backend, **settings.backend_kwargs())
        if settings.warmup:
            self.backend.warmup()
        safety_config = settings.safety_config()
        self._resolver, self._uses_tf2 = make_frame_resolver(self, settings)
        self.pipeline = Pipeline(self.backend, settings.pipeline_config(), self._resolver)
        self.session = CommandSession(
            self.pipeline, settings.session_config(), safety_config,
            stamp_clock=lambda: self.get_clock().now().nanoseconds * 1e-9, parse=parse)
        self.session.memory = ObjectMemory(settings.memory_config(), frame_id=settings.base_frame)
        if settings.memory_file:
            try:
                loaded = load_memory(self.session.memory, settings.memory_file)
            except ValueError as exc:
                raise ParameterError(str(exc)) from exc
            self.get_logger().info(f"memory: {loaded} object(s) from {settings.memory_file}")
        # ~/save_memory and ~/clear_memory answer at once (the memory has its own lock).
        self._memory_services = [
            self.create_service(Trigger, "~/save_memory", self._on_save_memory),
            self.create_service(Trigger, "~/clear_memory", self._on_clear_memory)]
        # The Chinese word segmenter loads its dictionary on first use (~0.6 s): here, not in
        # the callback of the first Chinese command.
        self.session.is_stop("停")
        self.timings = StageTimings()
        self._counts: collections.Counter[str] = collections.Counter()
        self.frames = FrameBuffer(settings.sync_slop_s, settings.use_depth, self.timings)
        self.outputs = Outputs(self, settings, safety_config, self.timings, self._resolver)
        self.outputs.active = False  # until activate
        self.model = ModelGuard(self.backend.name, settings.model_timeout_s)
        backend_name = self.backend.name
        self.model.recovered = lambda: self.get_logger().info(
            f"backend {backend_name} answers again")
        self.worker = Worker(self.session, self.frames, self.outputs, self.model, self.timings,
                             self._counts, settings, self.get_logger())
        # ~/command is read while configured, active or not: inactive, every command is
        # answered "rejected" instead of being left without a reply.
        # Keep-all on the command reader: a keep-last reader overwrites commands the executor
        # has not taken yet, and a lost command gets no answer at all; keep-all pushes back on
        # the sender instead (DDS flow control) and every command is answered, "busy" or not.
        every_command = QoSProfile(depth=COMMAND_HISTORY, reliability=ReliabilityPolicy.RELIABLE,
                                   history=HistoryPolicy.KEEP_ALL)
        self._commands_group = MutuallyExclusiveCallbackGroup()
        self._command_sub = self.create_subscription(
            String, "~/command", self._on_command, every_command,
            callback_group=self._commands_group)
        self._diagnostics_timer = self.create_timer(1.0, self._publish_diagnostics)
        # ~/instruct (an action, for executives), where the interfaces were built.  Like
        # ~/command it lives from configure to cleanup: inactive, new goals are refused, and a
        # goal that deactivation ends can still hand its client the result.
        actions = messages.optional_module("vlm_ros.action")
        if self.outputs.interfaces is not None and (actions is not None or
                                                   self._srv_module is not None):
            self._blocking = BlockingInterfaces(self)
        if actions is not None and self._blocking is not None:
            self.instruct = InstructServer(self._blocking.node, actions.Instruct,
                                           self.outputs.interfaces, self.worker, self.frames,
                                           self.outputs, lambda: self.settings,
                                           self.backend.name, accepting=lambda: self._active,
                                           name=self._blocking.name("instruct"))
        self.get_logger().info(
            f"vlm_ros configured: backend={self.backend.name}, parser={settings.parser}, "
            f"base_frame={settings.base_frame}, goal_frame={settings.goal_frame_name()}, "
            f"frames={'tf2' if self._uses_tf2 else 'camera_pose_topic ' + settings.camera_pose_topic if settings.camera_pose_topic else 'static camera_pose_in_base'}, "
            f"vision_msgs={'yes' if self.outputs.vision_msgs else 'no'}, "
            f"vlm_ros interfaces="
            f"{'yes' if self.outputs.interfaces else 'no (bindings not built)'}")

    def _open_inputs(self) -> None:
        """Activate: the inputs that make the node act (destroyed again by _close_inputs)."""
        settings = self.settings
        camera_qos = _camera_qos(settings.image_reliability)
        # Separate callback groups: commands (and stop) never wait behind 30 Hz image traffic.
        cameras = MutuallyExclusiveCallbackGroup()
        commands = self._commands_group
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        inputs = self._inputs
        if settings.use_compressed:
            inputs.append(self.create_subscription(
                CompressedImage, "camera/image/compressed", self._on_rgb, camera_qos,
                callback_group=cameras))
        else:
            inputs.append(self.create_subscription(Image, "camera/image", self._on_rgb,
                                                   camera_qos, callback_group=cameras))
        if doubt := rectification_doubt(inputs[-1].topic_name, settings.image_rectified):
            self.get_logger().warning(doubt)
        if settings.use_depth:
            inputs.append(self.create_subscription(Image, "camera/depth", self._on_depth,
                                                   camera_qos, callback_group=cameras))
        inputs.append(self.create_subscription(CameraInfo, "camera/camera_info", self._on_info,
                                               camera_qos, callback_group=cameras))
        inputs.append(self.create_subscription(String, "~/ask", self._on_ask, reliable,
                                               callback_group=commands))
        inputs.append(self.create_subscription(Empty, "~/describe", self._on_describe, reliable,
                                               callback_group=commands))
        # The robot says when it finished what it was sent: a plan's next step waits for it.
        inputs.append(self.create_subscription(String, "robot_status", self._on_robot_status,
                                               reliable, callback_group=commands))
        if self._srv_module is not None and self._blocking is not None:
            # On the blocking-interfaces node: the call waits for the worker's answer.
            side = self._blocking.node
            inputs.append((side, side.create_service(
                self._srv_module.Ground, self._blocking.name("ground"),
                self._on_ground_service)))

    def _close_inputs(self) -> None:
        for entity in self._inputs:
            if isinstance(entity, tuple):  # (the blocking-interfaces node, its service)
                owner, service = entity
                owner.destroy_service(service)
            elif isinstance(entity, Service):
                self.destroy_service(entity)
            elif isinstance(entity, Subscription):
                self.destroy_subscription(entity)
            else:  # an action server (rclpy.action.ActionServer has destroy())
                entity.destroy()
        self._inputs.clear()

    def _deactivate(self) -> None:
        """Stop acting: no goal from here on, inputs closed, whatever runs cancelled."""
        if not self._active:
            return
        self._active = False
        if self.outputs is not None:
            self.outputs.active = False  # first: a goal in flight is not published
        self._close_inputs()
        if self.instruct is not None:
            self.instruct.end_active("the node was deactivated")
        if self.worker is not None:
            self.worker.stop_all()  # tracking, plans, confirmations end; ~/stop is signalled

    def _release(self) -> None:
        """Everything configure made, dropped (cleanup, shutdown, a failed configure)."""
        self._deactivate()
        self._close_inputs()
        if self.worker is not None:
            self.worker.close()
        if self.model is not None:
            self.model.shutdown()
        if self._command_sub is not None:
            self.destroy_subscription(self._command_sub)
        if self.instruct is not None:
            self.instruct.destroy()
            self.instruct = None
        if self._blocking is not None:
            self._blocking.close()
            self._blocking = None
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
        for service in self._memory_services:
            self.destroy_service(service)
        self._memory_services = []
        subscription = getattr(self._resolver, "subscription", None)
        if subscription is not None:  # camera_pose_topic
            self.destroy_subscription(subscription)
        if self.outputs is not None:
            self.outputs.close()
        unregister = getattr(getattr(self._resolver, "listener", None), "unregister", None)
        if unregister is not None:  # tf2's listener subscribes to /tf
            unregister()
        close = getattr(self.backend, "close", None)
        had_backend = self.backend is not None
        if callable(close):
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - releasing goes on
                self.get_logger().warning(f"backend close failed: {exc!r}")
        self._nothing_configured()
        if had_backend:
            _free_model_memory()

    # ------------------------------------------------------------------ callbacks
    # A callback taken just before cleanup may run after it (executor threads): each one
    # reads what it needs once, and does nothing when the node was unconfigured meanwhile.
    def _on_rgb(self, msg: Image | CompressedImage) -> None:
        started = time.perf_counter()
        frames = self.frames
        if frames is None:
            return
        self._counts["rgb_frames"] += 1
        frames.add("rgb", msg)
        self.timings.record("receive", started)

    def _on_depth(self, msg: Image) -> None:
        started = time.perf_counter()
        frames = self.frames
        if frames is None:
            return
        self._counts["depth_frames"] += 1
        frames.add("depth", msg)
        self.timings.record("receive", started)

    def _on_info(self, msg: CameraInfo) -> None:
        frames = self.frames
        if frames is None:
            return
        self._counts["camera_infos"] += 1
        frames.add("info", msg)

    def _on_command(self, msg: String) -> None:
        worker, outputs = self.worker, self.outputs
        if worker is None or outputs is None:
            return
        self._counts["commands"] += 1
        if self._active:
            worker.submit(Request("command", worker.command(msg.data)))
            return
        # Inactive (lifecycle): answered at once, nothing grounded, no goal.  A stop is still
        # signalled - stopping is always safe.
        if worker.session.is_stop(msg.data):
            outputs.publish_stop()
        outputs.publish_result(GroundingResult(
            status="rejected", backend=self.backend.name,
            message="inactive: vlm_ros is not active (lifecycle state inactive); activate it "
                    "to act on commands", instruction=Instruction(text=msg.data[:200])), None)

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validate a change (types, ranges, cross-field rules) and apply it live.

        rclpy has already refused read-only parameters and values outside a declared range.
        The worker takes the new settings between two commands (never half-way through one).
        """
        try:
            settings = self.settings.changed({p.name: p.value for p in parameters})
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.settings = settings
        if self.worker is not None:
            self.worker.reconfigure(settings)
        self.get_logger().info("parameters set: " + ", ".join(
            f"{p.name}={p.value!r}" for p in parameters) + " (applied from the next command)")
        return SetParametersResult(successful=True)

    def _on_ask(self, msg: String) -> None:
        worker = self.worker
        if worker is None:
            return
        question = msg.data[:self.settings.max_command_length]
        worker.submit(Request("ask", worker.command(question)))

    def _on_describe(self, _msg: Empty) -> None:
        worker = self.worker
        if worker is not None:
            worker.submit(Request("describe", worker.command("")))

    def _on_save_memory(self, _request: Any, response: Any) -> Any:
        path = self.settings.memory_file
        memory = self.session.memory
        if not path:
            response.success, response.message = False, "memory_file is not set: nowhere to save"
            return response
        try:
            save_memory(memory, path)
        except OSError as exc:
            response.success, response.message = False, f"could not save the memory: {exc}"
            return response
        response.success = True
        response.message = f"saved {len(memory.objects)} object(s) to {path}"
        return response

    def _on_clear_memory(self, _request: Any, response: Any) -> Any:
        response.success = True
        response.message = f"forgot {self.session.memory.clear()} object(s)"
        return response

    def _on_robot_status(self, msg: String) -> None:
        worker = self.worker
        if worker is not None:
            worker.submit(Request("robot_status", worker.command(msg.data)))

    def _on_ground_service(self, request: Any, response: Any) -> Any:
        """~/ground: a command through the same session as ~/command (clarification,
        confirmation, length limit and stop included), answered in the response too."""
        if self.worker is None or self.outputs is None or self.frames is None:
            return response  # unconfigured meanwhile
        image: Frame | None = None
        if not request.use_latest_frame:
            try:
                image = to_frame(request.image, None, self.frames.latest_info(),
                                 self.settings.depth_scale, self.settings.camera_frame,
                                 self.settings.image_rectified)
            except ConversionError as exc:
                failed = GroundingResult(status="error", message=f"bad camera input: {exc}",
                                         instruction=Instruction(text=request.command[:200]),
                                         backend=self.backend.name)
                header, goal_msgs = self.outputs.publish_result(failed, None)
                response.result = messages.result_to_interface(
                    self.outputs.interfaces, failed, header, goal_msgs)
                return response
        queued = Request("command", self.worker.command(request.command, image))
        reply = self.worker.answer_later(queued)
        wait_s = self.settings.command_frame_timeout_s + self.settings.model_timeout_s + 5.0
        try:
            result, header, goal_msgs = reply.result(timeout=wait_s)
        except concurrent.futures.TimeoutError:
            self.worker.forget(queued)
            result = GroundingResult(status="error", message="no answer in time",
                                     instruction=Instruction(text=request.command[:200]),
                                     backend=self.backend.name)
            header, goal_msgs = self.outputs.publish_result(result, None)
        response.result = messages.result_to_interface(self.outputs.interfaces, result, header,
                                                       goal_msgs)
        return response

    # ------------------------------------------------------------------ diagnostics, shutdown
    def _publish_diagnostics(self) -> None:
        if self.outputs is None or self.worker is None or self.model is None:
            return
        self.outputs.diagnostics_pub.publish(diagnostic_array(
            self.backend.name, self._counts, self.model.stuck_for(), dict(self.worker.state),
            self.timings, self.get_clock().now().to_msg()))

    def destroy_node(self) -> None:
        # Also called by rclpy's shutdown for a node whose __init__ failed half-way (a backend
        # that cannot load): only stop what was started.
        if hasattr(self, "_inputs"):
            self._release()
        super().destroy_node()


_PARAMETER_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
                    float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}


def _descriptor(name: str, spec: ParamSpec) -> ParameterDescriptor:
    """The declared descriptor: description, type, range, read-only (`ros2 param describe`)."""
    default = spec.default
    if isinstance(default, list):
        kind = (ParameterType.PARAMETER_STRING_ARRAY if isinstance(default[0], str)
                else ParameterType.PARAMETER_DOUBLE_ARRAY)
    else:
        kind = _PARAMETER_TYPES[type(default)]
    descriptor = ParameterDescriptor(name=name, type=kind, description=spec.description,
                                     read_only=spec.read_only)
    if spec.range is not None:
        low, high = spec.range
        if kind == ParameterType.PARAMETER_INTEGER:
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high),
                                                     step=1)]
        else:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(low), to_value=float(high), step=0.0)]
    return descriptor


def _free_model_memory() -> None:
    """After the backend's references are dropped: collect, and give CUDA memory back."""
    gc.collect()
    torch = sys.modules.get("torch")  # never import torch just for this
    if torch is not None:
        try:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001 - best effort
            pass


class BlockingInterfaces:
    """A second node, ``<name>_interfaces``, that hosts the callbacks which wait: the ~/ground
    service and the ~/instruct action, under the main node's names (``/<ns>/vlm_ros/ground``).

    They wait for the worker (a frame, the model, an answer); on the main node they would need
    the MultiThreadedExecutor for every camera callback too.  Here a small thread pool serves
    only them, and the main node keeps its single-threaded executor.
    """

    def __init__(self, main: Node) -> None:
        self._prefix = main.get_fully_qualified_name().rstrip("/")
        self.node = Node(f"{main.get_name()}_interfaces", namespace=main.get_namespace(),
                         context=main.context, start_parameter_services=False)
        # An executing goal or a waiting call holds a thread; others take cancels and new calls.
        self._executor = MultiThreadedExecutor(num_threads=3, context=main.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="vlm_ros_interfaces",
                                        daemon=True)
        self._thread.start()

    def name(self, leaf: str) -> str:
        """The main node's private name ``~/leaf``, written out (remapping is per node)."""
        return f"{self._prefix}/{leaf}"

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # noqa: BLE001 - the context is shutting down
            pass

    def close(self) -> None:
        # The spin thread leaves its wait set before the node's entities go (an executor's
        # shutdown does not wait for that).
        self._executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=2.0)
        self.node.destroy_node()


def _camera_qos(reliability: str) -> QoSProfile:
    if reliability == "best_effort":
        return qos_profile_sensor_data
    if reliability == "reliable":
        return QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    raise ValueError(f"image_reliability must be best_effort or reliable, got {reliability!r}")


def make_executor(node: VlmRosNode) -> Executor:
    """One thread for the node's own callbacks, which only store or queue.

    The Python MultiThreadedExecutor costs far more per callback (futures, a thread pool, more
    wait-set rebuilds) and its threads fight the worker for the GIL: on a 2-core CPU under a
    30 Hz RGB-D stream it could not take 50 commands/s off DDS (vlm-ros soak), and with it the
    first goal took ~4x longer (vlm-ros bench).  The callbacks that block (~/ground,
    ~/instruct) live on a node of their own with its own executor (BlockingInterfaces).
    """
    return SingleThreadedExecutor(context=node.context)



def main(args: list[str] | None = None) -> None:
    run_node(VlmRosNode, make_executor, (BackendError, ParameterError),
             "vlm_ros: backend failed to load", args)


if __name__ == "__main__":
    main()
