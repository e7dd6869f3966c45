"""Shared fixtures: the real Fashion-MNIST records that `make data` builds."""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

REPO = pathlib.Path(__file__).resolve().parents[1]
FASHION_MNIST = REPO / "data" / "fashion_mnist"


@pytest.fixture(scope="session")
def fashion_mnist_dir():
  """data/fashion_mnist with its dataset_info.json; `make test` builds it first (make data)."""
  if not (FASHION_MNIST / "dataset_info.json").exists():
    pytest.fail("data/fashion_mnist is missing: run `make data` (make test does it for you)")
  return str(FASHION_MNIST)


@pytest.fixture(scope="session")
def repo_root():
  return REPO
