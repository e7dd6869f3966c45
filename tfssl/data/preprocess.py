"""The `--preprocessing` language: a comma-separated chain of named ops, applied in order.

Each op is `op(data, config, is_training) -> data` on one example `{"image": uint8 [H, W, 3],
"label": int32}`, registered with `@register("name")`; ops marked "training only" do nothing in
eval. Most ops also take a stack of images (..., H, W, C), as the original's ops did.

  plain_preprocess                   identity
  0_to_1 / -1_to_1                   float32 image / 255, or -1 + image / 255 * 2
  resize                             to --resize_size (bilinear; with --randomize_resize_method, in
                                     training one of bilinear / nearest / bicubic at random)
  resize_small                       area resize keeping the aspect, smaller side --smaller_size
  crop                               --crop_size: random in training, central in eval
  central_crop                       --crop_size, always central
  inception_crop                     training only: sample_distorted_bounding_box crop, no resize
  flip_lr                            training only: random left-right flip per image
  inception_preprocess               slim Inception preprocessing to --resize_size, in [-1, 1]
  crop_inception_preprocess_patches  --num_of_inception_patches of those, stacked [N, H, W, 3]
  to_gray                            with --grayscale_probability per image: RGB mean, 3 channels
  crop_patches                       --splits_per_side grid with --patch_jitter: [s*s, h, w, C]
  standardization                    tf.image.per_image_standardization per image or patch
  rotate                             the 4 rotations by k * 90 degrees CCW, label [0, 1, 2, 3]

Randomness: an op asks `next_seed()` (randomness.py) for a stateless seed. Inside the input
pipeline every example carries its own seed (derived from --random_seed), so a fixed seed repeats
the same pixels. The contrastive methods' ops are registered the same way by simclr_views.py,
multi_crop.py and ava_views.py, imported on first use.
"""

import importlib

import tensorflow as tf

from tfssl.data import image_ops
from tfssl.data import inception_preprocessing
from tfssl.data import view_colour
from tfssl.data.randomness import SeedScope, apply_with_probability, next_seed

_OPS = {}
_VIEWS = {}  # op name -> OpViews, for the ops that stack views of an example on axis 1
# The modules that register the contrastive methods' ops; imported on first use (they are larger).
_EXTENSIONS = ("tfssl.data.simclr_views", "tfssl.data.multi_crop", "tfssl.data.ava_views")


class OpViews:
  """What a view-making op declares: how many views it stacks per example in training
  (`count(config)`), and what becomes of it in the evaluation chain of its model (`eval_op`): the
  single-view op giving the evaluation image of *augmented* views (a name, perhaps followed by a
  note), "" for an op evaluation leaves out (rotate: the model takes one image), None for one it
  keeps (tiles: a patch model is evaluated on its tiles). `deferred_colour`: the op leaves its
  views' photometric part as parameters under `<key>_colour`, applied to the batch later
  (view_colour.py)."""

  def __init__(self, count, eval_op=None, deferred_colour=False):
    self.count = count if callable(count) else (lambda config, n=count: n)
    self.eval_op = eval_op
    self.deferred_colour = deferred_colour


def register(name, views=None, eval_op=None, deferred_colour=False):
  """Decorator: makes `op(data, config, is_training) -> dict` available as `name` in chains.

  A view-making op says what it makes: `views` (an int, or `fn(config) -> int`) views stacked on
  axis 1 in training, and `eval_op`, its single-view evaluation counterpart, if its views are
  augmentations of one image. tasks/views.py checks a chain against what its task expects.
  `deferred_colour`: see OpViews.
  """
  def wrap(op):
    existing = _OPS.get(name)
    # A module reloaded (tests, notebooks) registers the same function again; that is fine.
    if existing is not None and (existing.__module__, existing.__qualname__) != (
        op.__module__, op.__qualname__):
      raise ValueError("preprocessing op %r is already registered by %s.%s; pick another name"
                       % (name, existing.__module__, existing.__qualname__))
    _OPS[name] = op
    if views is not None:
      _VIEWS[name] = OpViews(views, eval_op, deferred_colour)
    return op
  return wrap


def register_eval_view(name, make_image):
  """Registers `name`, a single-view evaluation op: `make_image(image, config)` in both modes
  (deterministic: what kNN banks, probes and exports see), the other keys kept."""
  def op(data, config, is_training):
    del is_training
    out = dict(data)
    out["image"] = make_image(data["image"], config)
    return out
  op.__name__ = op.__qualname__ = name
  return register(name)(op)


# The flags a chain's ops read for their sizes and modes: what an evaluation of a pretrained model
# needs to see the images as pretraining did.
EVAL_VIEW_FIELDS = ("resize_size", "crop_size", "smaller_size", "splits_per_side", "patch_jitter",
                    "grayscale_probability", "randomize_resize_method", "image_size",
                    "num_of_inception_patches", "combine_patches",
                    # multi_crop evaluates at the first of --size_crops
                    "nmb_crops", "size_crops", "min_scale_crops", "max_scale_crops")


def evaluation_chain(chain):
  """The single-view evaluation chain of a training chain: augmented-view ops replaced by their
  eval op, rotate left out, everything else kept (OpViews)."""
  names = []
  for name in validate_chain(chain):
    views = _VIEWS.get(name)
    if views is None or views.eval_op is None:
      names.append(name)
    elif views.eval_op:
      names.append(views.eval_op.split()[0])
  return ",".join(names)


def eval_view(config):
  """(chain, flags) to evaluate a representation pretrained with `config`: its
  --knn_preprocessing, else the evaluation chain of its --preprocessing, and the size flags."""
  chain = config.knn_preprocessing or (evaluation_chain(config.preprocessing)
                                       if config.preprocessing else None)
  return chain, {k: getattr(config, k) for k in EVAL_VIEW_FIELDS if getattr(config, k) is not None}


def chain_views(chain, config):
  """(views per example the chain stacks in training, [(op name, OpViews)] of its view ops)."""
  count, makers = 1, []
  for name in validate_chain(chain):
    if name in _VIEWS:
      makers.append((name, _VIEWS[name]))
      count *= int(_VIEWS[name].count(config))
  return count, makers


def defers_colour(chain):
  """The chain's ops that leave their views' colour to the batch (view_colour.py)."""
  return [name for name in validate_chain(chain)
          if name in _VIEWS and _VIEWS[name].deferred_colour]


def _load_extensions():
  for module in _EXTENSIONS:
    try:
      importlib.import_module(module)
    except ModuleNotFoundError as e:
      # Only the extension's own absence is fine; a missing import inside it is a real error.
      if e.name != module:
        raise


def known_ops():
  """Sorted names of every registered op."""
  _load_extensions()
  return sorted(_OPS)


def parse_chain(chain):
  """'a, b' or ['a', 'b'] -> ['a', 'b']; None or '' -> []."""
  if not chain:
    return []
  names = chain.split(",") if isinstance(chain, str) else list(chain)
  names = [name.strip() for name in names]
  if any(not name for name in names):
    raise ValueError("empty op name in --preprocessing=%r: remove the extra comma" % (chain,))
  return names


def validate_chain(chain):
  """The chain's op names; ValueError naming the first unknown op and listing the known ones."""
  names = parse_chain(chain)
  known = known_ops()
  for name in names:
    if name not in _OPS:
      raise ValueError("unknown preprocessing op %r in --preprocessing; known ops: %s"
                       % (name, ", ".join(known)))
  return names


def get_preprocess_fn(chain, config, is_training, defer_colour=False):
  """fn(data, seed=None) -> data: the chain's ops in order (ValueError if one is unknown).

  The views come out finished; with `defer_colour` a view op's photometric parameters stay
  beside its views (`<key>_colour`) for view_colour.finish_views to apply to the whole batch.
  """
  ops = [_OPS[name] for name in validate_chain(chain)]

  def preprocess(data, seed=None):
    data = dict(data)
    with SeedScope(None if seed is None else tf.cast(seed, tf.int64)):
      for op in ops:
        data = op(data, config, is_training)
    return data if defer_colour else view_colour.finish_views(data)

  return preprocess


# ---- config values an op needs ----
def _required(config, name, example):
  value = getattr(config, name)
  if value is None:
    raise ValueError("--preprocessing needs --%s (e.g. --%s=%s)" % (name, name, example))
  return value


def _with_image(data, image):
  out = dict(data)
  out["image"] = image
  return out


# ---- the ops ----
@register("plain_preprocess")
def plain_preprocess(data, config, is_training):
  return data


@register("0_to_1")
def zero_to_one(data, config, is_training):
  return _with_image(data, image_ops.to_float(data["image"]) / 255.0)


@register("-1_to_1")
def minus_one_to_one(data, config, is_training):
  return _with_image(data, -1.0 + image_ops.to_float(data["image"]) / 255.0 * 2.0)


# The original drew from [0, 3): its AREA branch was unreachable, so it is not offered here.
RANDOM_RESIZE_METHODS = ("bilinear", "nearest", "bicubic")


@register("resize")
def resize(data, config, is_training):
  _required(config, "resize_size", "224")
  size = list(config.resize_hw)
  image = data["image"]
  if not (config.randomize_resize_method and is_training):
    return _with_image(data, image_ops.resize(image, size))
  pick = tf.random.stateless_uniform([], next_seed(), 0, len(RANDOM_RESIZE_METHODS), tf.int32)
  branches = [lambda m=m: image_ops.resize(image, size, m) for m in RANDOM_RESIZE_METHODS]
  return _with_image(data, tf.switch_case(pick, branches))


@register("resize_small")
def resize_small(data, config, is_training):
  smaller = _required(config, "smaller_size", "256")

  def one(image):
    shape = tf.shape(image)
    height, width = image_ops.smaller_side_size(shape[0], shape[1], smaller)
    return image_ops.resize(image, [height, width], method="area")

  return _with_image(data, image_ops.map_images(one, data["image"], tf.float32))


def _crop_op(data, config, is_training):
  _required(config, "crop_size", "224")
  height, width = config.crop_hw
  image = data["image"]
  if not is_training:
    fn = lambda x: image_ops.central_crop(x, height, width)
    return _with_image(data, image_ops.map_images(fn, image, image.dtype))
  fn = lambda x, s: image_ops.random_crop(x, height, width, s)
  return _with_image(data, image_ops.map_images(fn, image, image.dtype, seed=next_seed()))


@register("crop")
def crop(data, config, is_training):
  return _crop_op(data, config, is_training)


@register("central_crop")
def central_crop(data, config, is_training):
  return _crop_op(data, config, False)


@register("inception_crop")
def inception_crop(data, config, is_training):
  if not is_training:
    return data
  image = data["image"]
  if image.shape.rank != 3:
    raise ValueError("inception_crop takes one image [H, W, C]; put it before ops that stack "
                     "images")
  whole_image = tf.zeros([0, 0, 4], tf.float32)  # no boxes: the whole image, TF's defaults
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.shape(image), whole_image, seed=next_seed(), use_image_if_no_bounding_boxes=True)
  cropped = tf.slice(image, begin, size)
  cropped.set_shape([None, None, image.shape[-1]])
  return _with_image(data, cropped)


@register("flip_lr")
def flip_lr(data, config, is_training):
  if not is_training:
    return data
  image = data["image"]
  fn = tf.image.stateless_random_flip_left_right
  return _with_image(data, image_ops.map_images(fn, image, image.dtype, seed=next_seed()))


@register("inception_preprocess")
def inception_preprocess(data, config, is_training):
  _required(config, "resize_size", "224")
  height, width = config.resize_hw

  def one(image, seed):
    return inception_preprocessing.preprocess_image(image, height, width, is_training, seed)

  return _with_image(data, image_ops.map_images(one, data["image"], tf.float32, seed=next_seed()))


@register("crop_inception_preprocess_patches", views=lambda config: config.num_of_inception_patches)
def crop_inception_preprocess_patches(data, config, is_training):
  _required(config, "resize_size", "224")
  height, width = config.resize_hw
  image = data["image"]
  count = config.num_of_inception_patches
  seeds = tf.random.experimental.stateless_split(next_seed(), count)
  crops = tf.map_fn(
      lambda s: inception_preprocessing.preprocess_image(image, height, width, is_training, s),
      seeds, fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32))
  return _with_image(data, crops)


@register("to_gray")
def to_gray(data, config, is_training):
  probability = config.grayscale_probability

  def one(image, seed):
    return apply_with_probability(image_ops.to_gray, image_ops.to_float(image), probability, seed)

  return _with_image(data, image_ops.map_images(one, data["image"], tf.float32, seed=next_seed()))


@register("crop_patches", views=lambda config: config.splits_per_side ** 2)
def crop_patches(data, config, is_training):
  splits, jitter = config.splits_per_side, config.patch_jitter
  image = data["image"]

  def one(image, seed):
    return image_ops.crop_patches(image, splits, jitter, is_training, seed)

  return _with_image(data, image_ops.map_images(one, image, image.dtype, seed=next_seed()))


@register("standardization")
def standardization(data, config, is_training):
  # per_image_standardization reduces over the last three axes: each image or patch on its own.
  return _with_image(data, tf.image.per_image_standardization(data["image"]))


@register("rotate", views=4, eval_op="")
def rotate(data, config, is_training):
  image = data["image"]
  height, width = image.shape[-3], image.shape[-2]
  if height is not None and width is not None and height != width:
    raise ValueError("rotate needs square images, got %dx%d: put a square crop or resize before it "
                     "in --preprocessing" % (height, width))
  rotated = image_ops.map_images(image_ops.four_rotations, image, image.dtype)
  labels = tf.broadcast_to(tf.range(4, dtype=tf.int32), tf.concat([tf.shape(image)[:-3], [4]], 0))
  out = _with_image(data, rotated)
  out["label"] = labels
  return out
