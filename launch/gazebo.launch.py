"""Run vlm_ros against a simulated RGB-D camera in gz-sim (Gazebo Harmonic / Ionic).

    ros2 launch vlm_ros gazebo.launch.py
    ros2 launch vlm_ros gazebo.launch.py headless:=true backend:=owl
    ros2 launch vlm_ros gazebo.launch.py world:=/path/to/other.sdf bridge_config:=/path/to/b.yaml

Starts four things: gz-sim with worlds/tabletop.sdf (through ros_gz_sim's gz_sim.launch.py),
ros_gz_bridge's parameter_bridge with config/gz_bridge.yaml (camera + /clock, Gazebo -> ROS),
static transforms base_link -> camera_link -> camera_optical_frame matching the camera's pose in
the world, and vlm_ros.launch.py with use_sim_time:=true and the bridged camera topics.

The world has no robot: its origin stands for base_link, so the SDF camera pose is the camera
pose in base_link.  tests/test_gazebo_files.py checks that CAMERA_POSE_IN_BASE below equals the
pose in the SDF, and that the bridge's ROS topics equal CAMERA_TOPICS.
"""

from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction, Shutdown
from launch.events.process import ProcessExited
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

BASE_FRAME = "base_link"
CAMERA_FRAME = "camera_link"  # gz convention: x forward, y left, z up
OPTICAL_FRAME = "camera_optical_frame"  # ROS optical convention: z forward, x right, y down; the
# SDF sensor's <gz_frame_id>, so every bridged image carries it as header.frame_id
# x y z (m) roll pitch yaw (rad) of camera_link in base_link: the camera model's <pose> in the SDF.
CAMERA_POSE_IN_BASE: tuple[float, float, float, float, float, float] = (
    0.0, 0.0, 1.25, 0.0, 0.6, 0.0)
# camera_link -> camera_optical_frame, the fixed rotation every ROS camera driver publishes.
OPTICAL_IN_CAMERA: tuple[float, float, float, float, float, float] = (
    0.0, 0.0, 0.0, -1.5707963267948966, 0.0, -1.5707963267948966)

# vlm_ros.launch.py argument -> the ROS topic config/gz_bridge.yaml publishes it on.
CAMERA_TOPICS: dict[str, str] = {
    "image_topic": "/camera/image",
    "depth_topic": "/camera/depth",
    "camera_info_topic": "/camera/camera_info",
}


def _end_launch(event: ProcessExited, context: LaunchContext) -> list[Shutdown]:
    """A node that exits ends the launch; a non-zero exit code makes `ros2 launch` exit 1
    (gz sim itself ends it through gz_sim.launch.py's on_exit_shutdown)."""
    what = f"{event.process_name} exited with code {event.returncode}"
    if event.returncode != 0:
        raise RuntimeError(what)
    return [Shutdown(reason=what)]


def _share(*parts: str) -> PathJoinSubstitution:
    return PathJoinSubstitution([FindPackageShare(parts[0]), *parts[1:]])


# (name, default, description) of every launch argument: the table is the interface.
LAUNCH_ARGUMENTS: tuple[tuple[str, str | PathJoinSubstitution, str], ...] = (
    ("world", _share("vlm_ros", "worlds", "tabletop.sdf"), "SDF world file for gz-sim"),
    ("headless", "false", "true = server only (gz sim -s, headless rendering), no GUI"),
    ("bridge_config", _share("vlm_ros", "config", "gz_bridge.yaml"),
     "ros_gz_bridge YAML mapping the gz camera topics to the node's"),
    ("backend", "", "grounding backend for vlm_ros; empty = the parameters file's"),
    ("gz_verbosity", "3", "gz sim console verbosity, 0 (none) to 4 (debug)"),
)


def _gz_args(context: LaunchContext) -> str:
    """The gz sim command line: -r starts the simulation running, so /clock ticks at once.

    Headless needs --headless-rendering as well as -s: the Sensors system still renders the
    camera, and without it ogre2 wants a display."""
    headless = LaunchConfiguration("headless").perform(context).strip().lower() in ("1", "true")
    verbosity = LaunchConfiguration("gz_verbosity").perform(context).strip()
    world = LaunchConfiguration("world").perform(context)
    flags = ["-r", f"-v{verbosity}"] + (["-s", "--headless-rendering"] if headless else [])
    return " ".join([*flags, world])


def _gazebo(context: LaunchContext) -> list[IncludeLaunchDescription]:
    return [
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(_share("ros_gz_sim", "launch", "gz_sim.launch.py")),
            launch_arguments={"gz_args": _gz_args(context), "on_exit_shutdown": "true"}.items(),
        )
    ]


def _static_transform(pose: tuple[float, ...], parent: str, child: str) -> Node:
    x, y, z, roll, pitch, yaw = (str(v) for v in pose)
    return Node(
        package="tf2_ros",
        executable="static_transform_publisher",
        name=f"{child}_static_tf",
        arguments=["--x", x, "--y", y, "--z", z, "--roll", roll, "--pitch", pitch, "--yaw", yaw,
                   "--frame-id", parent, "--child-frame-id", child],
        parameters=[{"use_sim_time": True}],
        on_exit=_end_launch,
    )


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument(name, default_value=default, description=description)
        for name, default, description in LAUNCH_ARGUMENTS
    ]
    bridge = Node(
        package="ros_gz_bridge",
        executable="parameter_bridge",
        name="gz_bridge",
        output="screen",
        parameters=[{"config_file": LaunchConfiguration("bridge_config"), "use_sim_time": True}],
        on_exit=_end_launch,
    )
    vlm_ros = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(_share("vlm_ros", "launch", "vlm_ros.launch.py")),
        launch_arguments={
            "use_sim_time": "true",
            "backend": LaunchConfiguration("backend"),
            **CAMERA_TOPICS,
        }.items(),
    )
    return LaunchDescription([
        *arguments,
        OpaqueFunction(function=_gazebo),
        bridge,
        _static_transform(CAMERA_POSE_IN_BASE, BASE_FRAME, CAMERA_FRAME),
        _static_transform(OPTICAL_IN_CAMERA, CAMERA_FRAME, OPTICAL_FRAME),
        vlm_ros,
    ])
