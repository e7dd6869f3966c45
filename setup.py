"""tfssl: self-supervised visual representation learning for TensorFlow 2 / Keras 3."""

import importlib.metadata

from setuptools import find_packages, setup


def _tensorflow_requirement():
  # A user with a GPU gets the full `tensorflow` build.  Where `tensorflow-cpu` is already
  # installed (the Makefile installs it on machines without nvidia-smi, and CI), require that
  # instead, so pip does not pull a second, GPU-sized TensorFlow next to it.
  for dist in ("tensorflow", "tensorflow-cpu"):
    try:
      importlib.metadata.version(dist)
      return dist + ">=2.21"
    except importlib.metadata.PackageNotFoundError:
      pass
  return "tensorflow>=2.21"


setup(
    name="tfssl",
    version="0.1.0",
    description="Self-supervised visual representation learning (rotation, exemplar, jigsaw, relative "
                "patch location, SimCLR, BYOL, SwAV, AVA) in TensorFlow 2 / Keras 3",
    python_requires=">=3.10",
    packages=find_packages(include=["tfssl", "tfssl.*"]),
    package_data={"tfssl": ["data/*.npy", "data/*.txt"]},
    install_requires=[
        _tensorflow_requirement(),
        "tensorflow-datasets",
        "absl-py",
        "tensorboard",
        "numpy",
        "pillow",
        "matplotlib",
    ],
    extras_require={
        "test": ["pytest", "pytest-xdist"],
        "gpu": ["tensorflow[and-cuda]>=2.21"],
    },
    entry_points={
        "console_scripts": [
            "tfssl-build-tfrecords=tfssl.tools.build_tfrecords:run",
            "tfssl-train=tfssl.train_and_eval:run",
            "tfssl-visualize=tfssl.tools.visualize:run",
        ],
    },
)
