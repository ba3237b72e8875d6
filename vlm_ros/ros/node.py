"""The vlm_ros node: camera frames + a command in, a grounding result and goals out.

The rclpy shell around :class:`vlm_ros.core.session.CommandSession`, which decides everything
(what a command means, when to ask, when to confirm, what to track, what a stop cancels).  This
node only carries messages and threads:

* parameters become typed settings (:mod:`params`); camera -> base frames come from tf2 or the
  static extrinsics (:mod:`frames`);
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
import time
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import Executor, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Empty, String

from vlm_ros.backends import BackendError, create_backend
from vlm_ros.backends.llm_parser import LlmParser, make_parser
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.session import CommandSession
from vlm_ros.core.types import Frame, GroundingResult, Instruction
from vlm_ros.ros import messages
from vlm_ros.ros.convert import ConversionError
from vlm_ros.ros.diagnostics import STAGES, StageTimings, diagnostic_array
from vlm_ros.ros.frame_buffer import FrameBuffer, rectification_doubt, to_frame
from vlm_ros.ros.frames import make_frame_resolver
from vlm_ros.ros.model_guard import ModelGuard
from vlm_ros.ros.outputs import COMMAND_HISTORY, Outputs
from vlm_ros.ros.params import PARAMETERS, NodeSettings
from vlm_ros.ros.run import run_node
from vlm_ros.ros.worker import Request, Worker

__all__ = ["STAGES", "VlmRosNode", "main", "make_executor"]


class VlmRosNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("vlm_ros", **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        settings = NodeSettings.from_parameters(
            {name: self.get_parameter(name).value for name in PARAMETERS})
        self.settings = settings
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
        resolver, self._uses_tf2 = make_frame_resolver(self, settings)
        self.pipeline = Pipeline(self.backend, settings.pipeline_config(), resolver)
        self.session = CommandSession(
            self.pipeline, settings.session_config(), safety_config,
            stamp_clock=lambda: self.get_clock().now().nanoseconds * 1e-9, parse=parse)
        # The Chinese word segmenter loads its dictionary on first use (~0.6 s): here, not in
        # the callback of the first Chinese command.
        self.session.is_stop("停")
        self.timings = StageTimings()
        self._counts: collections.Counter[str] = collections.Counter()
        self.frames = FrameBuffer(settings.sync_slop_s, settings.use_depth, self.timings)
        self.outputs = Outputs(self, settings, safety_config, self.timings, resolver)
        self.model = ModelGuard(self.backend.name, settings.model_timeout_s)
        self.model.recovered = lambda: self.get_logger().info(
            f"backend {self.backend.name} answers again")

        # ---- inputs: callbacks only store or queue
        camera_qos = _camera_qos(settings.image_reliability)
        # Separate callback groups: commands (and stop) never wait behind 30 Hz image traffic.
        cameras = MutuallyExclusiveCallbackGroup()
        commands = MutuallyExclusiveCallbackGroup()
        if settings.use_compressed:
            image_sub = self.create_subscription(CompressedImage, "camera/image/compressed",
                                                 self._on_rgb, camera_qos, callback_group=cameras)
        else:
            image_sub = self.create_subscription(Image, "camera/image", self._on_rgb, camera_qos,
                                                 callback_group=cameras)
        if doubt := rectification_doubt(image_sub.topic_name, settings.image_rectified):
            self.get_logger().warning(doubt)
        if settings.use_depth:
            self.create_subscription(Image, "camera/depth", self._on_depth, camera_qos,
                                     callback_group=cameras)
        self.create_subscription(CameraInfo, "camera/camera_info", self._on_info, camera_qos,
                                 callback_group=cameras)
        # Keep-all on the command reader: a keep-last reader overwrites commands the executor
        # has not taken yet, and a lost command gets no answer at all; keep-all pushes back on
        # the sender instead (DDS flow control) and every command is answered, "busy" or not.
        every_command = QoSProfile(depth=COMMAND_HISTORY, reliability=ReliabilityPolicy.RELIABLE,
                                   history=HistoryPolicy.KEEP_ALL)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(String, "~/command", self._on_command, every_command,
                                 callback_group=commands)
        self.create_subscription(String, "~/ask", self._on_ask, reliable, callback_group=commands)
        self.create_subscription(Empty, "~/describe", self._on_describe, reliable,
                                 callback_group=commands)
        # The robot says when it finished what it was sent: a plan's next step waits for it.
        self.create_subscription(String, "robot_status", self._on_robot_status, reliable,
                                 callback_group=commands)
        services = messages.optional_module("vlm_ros.srv")
        if services is not None:
            # Its own callback group: the service waits for the worker's answer, which needs
            # camera frames that other executor threads deliver meanwhile.
            self.create_service(services.Ground, "~/ground", self._on_ground_service,
                                callback_group=MutuallyExclusiveCallbackGroup())
        # Only a blocking callback (~/ground) needs more executor threads (make_executor).
        self.needs_parallel_callbacks = services is not None

        self.worker = Worker(self.session, self.frames, self.outputs, self.model, self.timings,
                             self._counts, settings, self.get_logger())
        self.create_timer(1.0, self._publish_diagnostics)

        self.get_logger().info(
            f"vlm_ros ready: backend={self.backend.name}, parser={settings.parser}, "
            f"base_frame={settings.base_frame}, goal_frame={settings.goal_frame_name()}, "
            f"frames={'tf2' if self._uses_tf2 else 'static camera_pose_in_base'}, "
            f"vision_msgs={'yes' if self.outputs.vision_msgs else 'no'}, "
            f"vlm_ros interfaces="
            f"{'yes' if self.outputs.interfaces else 'no (bindings not built)'}")

    # ------------------------------------------------------------------ callbacks
    def _on_rgb(self, msg: Image | CompressedImage) -> None:
        started = time.perf_counter()
        self._counts["rgb_frames"] += 1
        self.frames.add("rgb", msg)
        self.timings.record("receive", started)

    def _on_depth(self, msg: Image) -> None:
        started = time.perf_counter()
        self._counts["depth_frames"] += 1
        self.frames.add("depth", msg)
        self.timings.record("receive", started)

    def _on_info(self, msg: CameraInfo) -> None:
        self._counts["camera_infos"] += 1
        self.frames.add("info", msg)

    def _on_command(self, msg: String) -> None:
        self._counts["commands"] += 1
        self.worker.submit(Request("command", self.worker.command(msg.data)))

    def _on_ask(self, msg: String) -> None:
        question = msg.data[:self.settings.max_command_length]
        self.worker.submit(Request("ask", self.worker.command(question)))

    def _on_describe(self, _msg: Empty) -> None:
        self.worker.submit(Request("describe", self.worker.command("")))

    def _on_robot_status(self, msg: String) -> None:
        self.worker.submit(Request("robot_status", self.worker.command(msg.data)))

    def _on_ground_service(self, request: Any, response: Any) -> Any:
        """~/ground: a command through the same session as ~/command (clarification,
        confirmation, length limit and stop included), answered in the response too."""
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
        self.outputs.diagnostics_pub.publish(diagnostic_array(
            self.backend.name, self._counts, self.model.stuck_for(), dict(self.worker.state),
            self.timings, self.get_clock().now().to_msg()))

    def destroy_node(self) -> None:
        # Also called by rclpy's shutdown for a node whose __init__ failed half-way (a backend
        # that cannot load): only stop what was started.
        worker = getattr(self, "worker", None)
        if worker is not None:
            worker.close()
        model = getattr(self, "model", None)
        if model is not None:
            model.shutdown()
        super().destroy_node()


def _camera_qos(reliability: str) -> QoSProfile:
    if reliability == "best_effort":
        return qos_profile_sensor_data
    if reliability == "reliable":
        return QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    raise ValueError(f"image_reliability must be best_effort or reliable, got {reliability!r}")


def make_executor(node: VlmRosNode) -> Executor:
    """One thread for the store-only callbacks; more only when a callback blocks (~/ground).

    The Python MultiThreadedExecutor costs far more per callback (futures, a thread pool, more
    wait-set rebuilds) and its threads fight the worker for the GIL: on a 2-core CPU under a
    30 Hz RGB-D stream it could not take 50 commands/s off DDS (vlm-ros soak).
    """
    if node.needs_parallel_callbacks:
        return MultiThreadedExecutor(num_threads=3)
    return SingleThreadedExecutor()


def main(args: list[str] | None = None) -> None:
    run_node(VlmRosNode, make_executor, (BackendError,),
             "vlm_ros: backend failed to load", args)


if __name__ == "__main__":
    main()
