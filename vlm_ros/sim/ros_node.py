"""The simulator as ROS sees it: an RGB-D camera driver plus a robot that executes our goals.

Publishes what a real RGB-D camera driver does - ``camera/image`` (rgb8), ``camera/depth``
(32FC1, metres), ``camera/camera_info`` - stamped with the sim time, plus ``/clock`` so nodes
started with ``use_sim_time`` follow it.  Subscribes the vlm_ros node's ``grasp_pose`` and
``place_pose`` and executes them with the floating gripper in the physics; what happened (per the
physics state, not the command) goes out on ``~/robot_status`` as JSON.  The camera pans: a
``look_at`` view goal (an active search) turns it, and ``camera/pose`` says where it looks with
every frame's stamp (the node's ``camera_pose_topic`` without TF).
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import asdict

from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from vlm_ros.core.geometry import quat_from_rpy
from vlm_ros.core.types import Goal, Pose
from vlm_ros.ros.convert import array_to_image, seconds_to_stamp
from vlm_ros.ros.photo_camera import camera_info_msg
from vlm_ros.sim.world import ActionOutcome, SimWorld

CLOCK_GAP_S = 1.0  # sim-clock jump between scenes


class SimNode(Node):
    """Steps ``world`` in real time at ``rate_hz`` camera frames; executes goals as they come."""

    def __init__(self, world: SimWorld, rate_hz: float = 5.0, vlm_node: str = "/vlm_ros",
                 name: str = "vlm_ros_sim") -> None:
        super().__init__(name)
        # Every OpenGL user in the process (rendering, creating or freeing a world) holds this.
        self.gl_lock = threading.Lock()
        self.world = world
        self._retired: list[SimWorld] = []
        self.rate_hz = rate_hz
        reliable = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.create_publisher(Image, "camera/image", reliable)
        self.depth_pub = self.create_publisher(Image, "camera/depth", reliable)
        self.info_pub = self.create_publisher(CameraInfo, "camera/camera_info", reliable)
        # The camera pans (an active search's views): its body pose in base_link with every
        # frame's stamp, for a vlm_ros node without TF (camera_pose_topic:=camera/pose).
        self.pose_pub = self.create_publisher(PoseStamped, "camera/pose",
                                              QoSProfile(depth=50,
                                                         reliability=ReliabilityPolicy.RELIABLE))
        self.clock_pub = self.create_publisher(Clock, "/clock", 10)
        self.status_pub = self.create_publisher(String, "~/robot_status",
                                                QoSProfile(depth=10,
                                                           reliability=ReliabilityPolicy.RELIABLE))
        self._goals: queue.Queue[Goal] = queue.Queue()
        # Their own group: the frame timer is nearly always ready (a tick renders and steps the
        # physics), and in one mutually exclusive group it would starve these callbacks.
        goals_group = MutuallyExclusiveCallbackGroup()
        for kind, topic in (("grasp", "grasp_pose"), ("place", "place_pose"),
                            ("view", "look_at")):
            self.create_subscription(PoseStamped, f"{vlm_node}/{topic}",
                                     lambda msg, k=kind: self._goals.put(_goal(k, msg)), 10,
                                     callback_group=goals_group)
        self.outcomes: list[ActionOutcome] = []
        self.create_timer(1.0 / rate_hz, self._tick)

    def set_world(self, world: SimWorld) -> None:
        """Swap in a new scene (the evaluation runs many).

        The sim clock continues (stamps never run backwards, so an old depth image can never be
        paired with a new colour image), queued goals are dropped, and the old world is freed by
        the render thread after it has rendered the new one: OSMesa crashes when a context that
        is current on another thread is destroyed.  Spin this node with a single-threaded
        executor when worlds are swapped.
        """
        with self.gl_lock:
            old, self.world = self.world, world
            world.data.time = max(world.data.time, old.data.time + CLOCK_GAP_S)
            while not self._goals.empty():
                self._goals.get_nowait()
            self._retired.append(old)

    def _tick(self) -> None:
        try:
            self._step_and_publish()
        except Exception as exc:  # noqa: BLE001 - the simulator keeps running (and says why)
            self.get_logger().error(f"simulator tick failed: {exc!r}")

    def _step_and_publish(self) -> None:
        with self.gl_lock:
            world = self.world
            try:
                goal = self._goals.get_nowait()
            except queue.Empty:
                goal = None
            if goal is not None:
                outcome = world.execute(goal)
                self.outcomes.append(outcome)
                self.status_pub.publish(String(data=json.dumps(asdict(outcome))))
            else:
                world.step(max(1, round(1.0 / (self.rate_hz * world.model.opt.timestep))))
            self._publish_frame(world)
            while self._retired:
                self._retired.pop().close()

    def close(self) -> None:
        """Free every world this node holds (call after its executor has stopped)."""
        with self.gl_lock:
            for world in (*self._retired, self.world):
                world.close()
            self._retired.clear()

    def _publish_frame(self, world: SimWorld) -> None:
        frame = world.frame()
        stamp = seconds_to_stamp(frame.stamp)
        self.clock_pub.publish(Clock(clock=stamp))
        image = array_to_image(frame.rgb, "rgb8")
        depth = array_to_image(frame.depth_m, "32FC1")
        info = camera_info_msg(frame.intrinsics, frame.frame_id)
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, "base_link"
        x, y, z, roll, pitch, yaw = world.camera.pose_in_base()
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = x, y, z
        qx, qy, qz, qw = quat_from_rpy(roll, pitch, yaw)
        pose.pose.orientation.x, pose.pose.orientation.y = qx, qy
        pose.pose.orientation.z, pose.pose.orientation.w = qz, qw
        self.pose_pub.publish(pose)  # before the images it places
        for msg, publisher in ((image, self.image_pub), (depth, self.depth_pub),
                               (info, self.info_pub)):
            msg.header.stamp = stamp
            msg.header.frame_id = frame.frame_id
            publisher.publish(msg)


def _goal(kind: str, msg: PoseStamped) -> Goal:
    p, q = msg.pose.position, msg.pose.orientation
    return Goal(kind=kind, frame_id=msg.header.frame_id,
                pose=Pose((p.x, p.y, p.z), (q.x, q.y, q.z, q.w)),
                stamp=msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
