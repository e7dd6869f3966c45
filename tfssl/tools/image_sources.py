"""What to convert: every source (folder, cifar10/100, idx) listed as the same Items per split.

Listing is cheap (paths, or pixels already in memory); reading and encoding happen in the workers.
Split names are the files' splits: `train` and `validation` (CIFAR's and MNIST's test sets).
"""

import hashlib
import os
import random
from typing import NamedTuple, Optional

import numpy as np

from tfssl.tools import cifar_files, idx_files

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot"]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
# slim's build_imagenet_data shuffled with this seed so that class-sorted listings mix in the shards.
SHUFFLE_SEED = 12345


class SourceError(ValueError):
  """Bad input a user can fix; the message is one line naming the thing and the fix."""


# The label of an image without one (stored as 0, slim's "background"; read back as -1).
UNLABELED = -1


class Item(NamedTuple):
  filename: str                       # stored as image/filename
  label: int                          # 0-based class index, or UNLABELED
  path: Optional[str] = None          # a file to read (folder sources)
  pixels: Optional[np.ndarray] = None  # uint8 [H, W] or [H, W, C] (array sources)

  def describe(self):
    """How to name this item to a user."""
    return self.path or self.filename

  def fingerprint(self, digest):
    """Feeds what identifies this item's content into `digest`, so a changed input redoes its shard."""
    digest.update(f"{self.filename}\0{self.label}\0".encode())
    if self.path is not None:
      try:
        st = os.stat(self.path)
        stamp = f"{st.st_size}\0{st.st_mtime_ns}"
      except OSError:
        stamp = "unreadable"  # the worker reports it; planning must not stop here
      digest.update(f"{self.path}\0{stamp}\0".encode())
    if self.pixels is not None:
      digest.update(str(self.pixels.shape).encode())
      digest.update(np.ascontiguousarray(self.pixels).tobytes())


class SourceData(NamedTuple):
  name: str
  classes: list
  splits: dict  # split name -> list of Items, in the order they are written
  labeled: bool = True  # False: a folder of photos with no classes (the manifest says so)


def fingerprint(items, extra=""):
  digest = hashlib.sha256(extra.encode())
  for item in items:
    item.fingerprint(digest)
  return digest.hexdigest()


def read_labels_file(path):
  if not os.path.isfile(path):
    raise SourceError(f"--labels_file={path} does not exist: give a file with one class folder "
                      "name per line")
  with open(path) as f:
    names = [line.strip() for line in f if line.strip()]
  dupes = sorted({n for n in names if names.count(n) > 1})
  if dupes:
    raise SourceError(f"--labels_file={path} lists {dupes[0]!r} twice: each class once")
  if not names:
    raise SourceError(f"--labels_file={path} is empty: give one class folder name per line")
  return names


def _class_folders(root, flag):
  if not root or not os.path.isdir(root):
    raise SourceError(f"{flag}={root} is not a directory: give a folder with one sub-folder per "
                      "class")
  return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def _images_below(folder):
  """Image files under `folder` at any depth (hidden files and folders left out), sorted by their
  path relative to it; the extension's case does not matter."""
  found = []
  for parent, dirs, files in os.walk(folder):
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    for name in files:
      if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
        path = os.path.join(parent, name)
        found.append((os.path.relpath(path, folder), os.path.abspath(path)))
  return sorted(found)


def _list_folder_split(root, flag, classes, seed):
  index = {name: i for i, name in enumerate(classes)}
  folders = _class_folders(root, flag)
  unknown = [f for f in folders if f not in index]
  if unknown:
    raise SourceError(f"{flag}={root} has class folder {unknown[0]!r} that --labels_file does not "
                      "list: add it to the labels file or remove the folder")
  items = []
  for folder in folders:
    for relative, path in _images_below(os.path.join(root, folder)):
      items.append(Item(relative, index[folder], path=path))
  if not items:
    raise SourceError(f"{flag}={root} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in its "
                      "class sub-folders: check the path, or pass --unlabeled for a folder of "
                      "photos without classes")
  random.Random(seed).shuffle(items)
  return items


def _list_unlabeled(root, flag, seed):
  if not root or not os.path.isdir(root):
    raise SourceError(f"{flag}={root} is not a directory: give the folder of images")
  items = [Item(relative, UNLABELED, path=path) for relative, path in _images_below(root)]
  if not items:
    raise SourceError(f"{flag}={root} holds no images ({', '.join(IMAGE_EXTENSIONS)}, any case) "
                      "at any depth: check the path")
  random.Random(seed).shuffle(items)
  return items


def is_flat(folder):
  """Images directly in `folder` and no sub-folders: a folder of photos, not of classes."""
  entries = [e for e in os.scandir(folder) if not e.name.startswith(".")]
  return (not any(e.is_dir() for e in entries)
          and any(e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS) for e in entries))


def folder_source(train_dir, validation_dir=None, labels_file=None, name="images",
                  seed=SHUFFLE_SEED, unlabeled=False):
  """ImageNet-style class sub-folders (the class order is `labels_file`'s, else the sorted
  names), searched at any depth. `unlabeled` (or a flat folder of images, which can only be
  that): every image below the folder, with no label; the sub-folders mean nothing."""
  if not train_dir or not os.path.isdir(train_dir):
    raise SourceError(f"--train_dir={train_dir} is not a directory: give a folder with one "
                      "sub-folder per class, or a folder of images with --unlabeled")
  if unlabeled or is_flat(train_dir):
    if labels_file:
      raise SourceError(f"--labels_file={labels_file} names classes, and --train_dir={train_dir} "
                        "is read without labels: drop --labels_file, or give class sub-folders")
    splits = {"train": _list_unlabeled(train_dir, "--train_dir", seed)}
    if validation_dir:
      splits["validation"] = _list_unlabeled(validation_dir, "--validation_dir", seed)
    return SourceData(name, [], splits, labeled=False)
  classes = read_labels_file(labels_file) if labels_file else _class_folders(train_dir,
                                                                              "--train_dir")
  splits = {"train": _list_folder_split(train_dir, "--train_dir", classes, seed)}
  if validation_dir:
    splits["validation"] = _list_folder_split(validation_dir, "--validation_dir", classes, seed)
  return SourceData(name, classes, splits)


def _array_items(prefix, images, labels):
  return [Item(f"{prefix}:{i}", int(label), pixels=image)
          for i, (image, label) in enumerate(zip(images, labels))]


def cifar_source(input_dir, dataset, name=None):
  if not input_dir or not os.path.isdir(input_dir):
    raise SourceError(f"--input_dir={input_dir} is not a directory: give the folder holding the "
                      f"{dataset} batches")
  try:
    data = cifar_files.read_cifar(input_dir, dataset)
  except cifar_files.CifarError as e:
    raise SourceError(str(e)) from e
  splits = {}
  for split, key in (("train", "train"), ("validation", "test")):
    splits[split] = [item for batch in data[key] for item in _array_items(*batch)]
  return SourceData(name or dataset, data["classes"], splits)


def _find_idx(input_dir, stem):
  for suffix in ("-idx3-ubyte", "-idx1-ubyte"):
    for ext in (".gz", ""):
      path = os.path.join(input_dir, stem + suffix + ext)
      if os.path.isfile(path):
        return path
  return None


def idx_source(input_dir, classes=None, name="fashion_mnist"):
  """MNIST-style IDX files: train-{images,labels}-idx?-ubyte[.gz] and t10k-... for validation."""
  if not input_dir or not os.path.isdir(input_dir):
    raise SourceError(f"--input_dir={input_dir} is not a directory: give the folder holding the "
                      "IDX files (train-images-idx3-ubyte.gz, ...)")
  classes = list(classes or FASHION_MNIST_CLASSES)
  splits = {}
  for split, prefix in (("train", "train"), ("validation", "t10k")):
    images_path = _find_idx(input_dir, f"{prefix}-images")
    labels_path = _find_idx(input_dir, f"{prefix}-labels")
    if images_path is None or labels_path is None:
      if split == "validation":
        continue  # a train-only IDX set is still a dataset
      raise SourceError(f"--input_dir={input_dir} lacks {prefix}-images-idx3-ubyte[.gz] or "
                        f"{prefix}-labels-idx1-ubyte[.gz]: copy the MNIST-style IDX files there")
    try:
      images, labels = idx_files.read_idx(images_path), idx_files.read_idx(labels_path)
    except ValueError as e:
      raise SourceError(str(e)) from e
    if images.ndim not in (3, 4) or images.dtype != np.uint8 or len(images) != len(labels):
      raise SourceError(f"{images_path}: expected uint8 [N, H, W] images and N labels, got "
                        f"{images.dtype} {images.shape} and {len(labels)} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
      raise SourceError(f"{labels_path}: label {labels.max()} is outside the {len(classes)} "
                        "classes: give --labels_file with one class name per line")
    splits[split] = _array_items(os.path.basename(images_path), images, labels)
  return SourceData(name, classes, splits)
