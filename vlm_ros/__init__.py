"""vlm_ros: ground spoken or typed robot commands in camera images and publish ROS 2 goals."""

__version__ = "0.1.0"
