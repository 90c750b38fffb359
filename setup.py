"""pip packaging of sam2_ros.

``pip install .`` gives the pure-PyTorch SAM 2 model ``sam2_model`` (no ROS needed) and the
Python sources of ``sam2_ros`` (whose ROS parts need rclpy and the interfaces that CMake
generates; see README.md). On a robot, colcon builds the package from CMakeLists.txt instead.
The version is read from package.xml, so the two never disagree.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
VERSION = re.search(r"<version>\s*([^<\s]+)\s*</version>", (HERE / "package.xml").read_text()).group(1)

# The same names and functions are installed into lib/sam2_ros by CMakeLists.txt (ros2 run).
CONSOLE_SCRIPTS = [
    "tracker_node = sam2_ros.tracker_node:main",
    "sam2-eval = sam2_ros.evaluation.cli:main",
    "sam2-make-bag = sam2_ros.evaluation.make_bag:main",
    "sam2-eval-compare = sam2_ros.evaluation.compare:main",
    "sam2-train = sam2_model.train.cli:main",
    "sam2-server = sam2_server.cli:main",
]

setup(
    name="sam2_ros",
    version=VERSION,
    description="Meta's SAM 2 in plain PyTorch (sam2_model) and a ROS 2 tracking node (sam2_ros)",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["sam2_model", "sam2_model.*", "sam2_ros", "sam2_ros.*", "sam2_server",
                                    "sam2_server.*"]),
    package_data={"sam2_model": ["*.yaml", "*.json", "**/*.yaml", "**/*.json", "weights/*.pt"]},
    install_requires=[
        "torch>=2.1",
        "numpy",
        "pyyaml",
    ],
    extras_require={
        # Evaluation tools (sam2-eval, sam2-eval-compare, sam2-make-bag) and media reading.
        "eval": ["pillow", "matplotlib", "tqdm", "rosbags", "av", "psutil"],
        # The ROS node (rclpy comes from the ROS installation) decodes JPEG/PNG itself.
        "node": ["pillow", "pyzmq"],
        # sam2-server (ZeroMQ inference server for tracker nodes in other processes or machines).
        "server": ["pyzmq"],
        "test": ["pytest", "pytest-timeout"],
    },
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
    zip_safe=False,
)
