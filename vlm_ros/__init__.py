"""vlm_ros: ground spoken or typed robot commands in camera images and publish ROS 2 goals."""

from pkgutil import extend_path

# The generated ROS interfaces (vlm_ros.msg, vlm_ros.srv, vlm_ros.action) are installed by the
# ament build into its own site-packages/vlm_ros.  Let that folder, when it is on sys.path, add
# them to this package: a source checkout (tests, `pip install -e`) then sees the built
# interfaces, and everything else still comes from the first vlm_ros on the path.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
