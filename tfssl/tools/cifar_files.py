"""CIFAR-10 / CIFAR-100 as distributed: the binary batches and the python pickles.

Each layout is found either in `input_dir` itself or in its usual sub-folder (cifar-10-batches-bin,
cifar-10-batches-py, cifar-100-binary, cifar-100-python). Images come back as uint8 [N, 32, 32, 3].
"""

import os
import pickle

import numpy as np

from tfssl.tools import safe_pickle

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck"]
_PIXELS = 32 * 32 * 3

# (sub-folder, train files, test files, metadata file) per dataset and layout.
_LAYOUTS = {
    ("cifar10", "bin"): ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)],
                         ["test_batch.bin"], "batches.meta.txt"),
    ("cifar10", "py"): ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)],
                        ["test_batch"], "batches.meta"),
    ("cifar100", "bin"): ("cifar-100-binary", ["train.bin"], ["test.bin"], "fine_label_names.txt"),
    ("cifar100", "py"): ("cifar-100-python", ["train"], ["test"], "meta"),
}


class CifarError(ValueError):
  pass


def _find_layout(input_dir, dataset):
  for layout in ("bin", "py"):
    subdir, train, test, meta = _LAYOUTS[(dataset, layout)]
    for folder in (input_dir, os.path.join(input_dir, subdir)):
      if all(os.path.isfile(os.path.join(folder, f)) for f in train + test):
        return layout, folder, train, test, meta
  want = " or ".join(f"{_LAYOUTS[(dataset, l)][0]}/ ({', '.join(_LAYOUTS[(dataset, l)][1][:1])}...)"
                     for l in ("bin", "py"))
  raise CifarError(f"--input_dir={input_dir} holds no {dataset} batches: point it at {want}")


def _read_binary(path, label_bytes):
  record = label_bytes + _PIXELS
  raw = np.fromfile(path, np.uint8)
  if raw.size % record:
    raise CifarError(f"{path}: {raw.size} bytes is not a whole number of {record}-byte records: "
                     "the file is truncated, download it again")
  raw = raw.reshape(-1, record)
  # CIFAR-100 records start with the coarse label, then the fine one; we keep the fine label.
  return raw[:, label_bytes:], raw[:, label_bytes - 1].astype(np.int64)


def _read_pickle(path, label_key):
  try:
    with open(path, "rb") as f:
      batch = safe_pickle.load(f)
    return np.asarray(batch[b"data"], np.uint8), np.asarray(batch[label_key], np.int64)
  except safe_pickle.ForbiddenGlobal as e:
    raise CifarError(f"{path}: refused, not a CIFAR python batch: {e}; use the files from the "
                     "official archive") from e
  except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as e:
    raise CifarError(f"{path}: not a CIFAR python batch ({e!r}): download it again") from e


def _class_names(dataset, layout, meta_path):
  if not os.path.isfile(meta_path):
    if dataset == "cifar10":
      return list(CIFAR10_CLASSES)
    raise CifarError(f"{meta_path} is missing: CIFAR-100 class names come from it, copy it from "
                     "the original archive")
  if layout == "bin":
    with open(meta_path) as f:
      return [line.strip() for line in f if line.strip()]
  try:
    with open(meta_path, "rb") as f:
      meta = safe_pickle.load(f)
  except safe_pickle.ForbiddenGlobal as e:
    raise CifarError(f"{meta_path}: refused, not CIFAR metadata: {e}; use the file from the "
                     "official archive") from e
  key = b"label_names" if dataset == "cifar10" else b"fine_label_names"
  return [name.decode() for name in meta[key]]


def read_cifar(input_dir, dataset):
  """{"classes": [...], "train": [(file, images, labels), ...], "test": [...]} for cifar10/cifar100."""
  layout, folder, train, test, meta = _find_layout(input_dir, dataset)
  out = {"classes": _class_names(dataset, layout, os.path.join(folder, meta))}
  for split, files in (("train", train), ("test", test)):
    out[split] = []
    for name in files:
      path = os.path.join(folder, name)
      if layout == "bin":
        data, labels = _read_binary(path, 1 if dataset == "cifar10" else 2)
      else:
        data, labels = _read_pickle(path, b"labels" if dataset == "cifar10" else b"fine_labels")
      if data.ndim != 2 or data.shape[1] != _PIXELS or len(labels) != len(data):
        raise CifarError(f"{path}: expected N x {_PIXELS} pixels and N labels, got "
                         f"{data.shape} and {len(labels)}: download it again")
      if labels.size and (labels.min() < 0 or labels.max() >= len(out["classes"])):
        raise CifarError(f"{path}: label {labels.max()} is outside the {len(out['classes'])} "
                         "classes: the file is corrupt, download it again")
      images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # stored channel-major
      out[split].append((name, np.ascontiguousarray(images), labels))
  return out
