"""The views' photometric part as parameters (data/view_colour.py): the closed forms against
tf.image, the matrix blur against the depthwise convolution, the three ways of applying one
batch's parameters against each other, the parameters' distributions against the recipes, and
--augment_on_device against the host on real images."""

import numpy as np
import pytest
import tensorflow as tf

from tfssl.config import Config
from tfssl.data import datasets, view_colour, view_ops
from tfssl.data.randomness import SeedScope

RNG = np.random.RandomState(3)


def _images(n=8, size=24):
  x = RNG.rand(n, size, size, 3).astype(np.float32)
  x[-2] = 0.5                                    # gray: no hue, no saturation
  x[-1] = RNG.rand(size, size, 1).repeat(3, -1)  # gray too, varying
  x[0, :4, :4] = [1.0, 0.0, 0.0]                 # a saturated corner
  return tf.constant(x)


@pytest.mark.parametrize("name, factors", [
    ("contrast", [0.0, 0.2, 1.0, 1.8, 2.5, 0.7, 1.3, 0.5]),
    ("saturation", [0.0, 0.2, 1.0, 1.8, 2.5, 0.7, 1.3, 0.5]),
    ("hue", [0.0, 0.1, -0.2, 0.5, -0.5, 0.37, 0.2, -0.1]),
])
def test_batched_closed_forms_equal_tf_image_per_image(name, factors):
  x = _images()
  mine = getattr(view_colour, "adjust_" + name)(x, tf.constant(factors))
  theirs = getattr(tf.image, "adjust_" + name)
  expected = tf.stack([theirs(x[i], factors[i]) for i in range(len(factors))])
  np.testing.assert_allclose(mine.numpy(), expected.numpy(), atol=2e-5)


def test_matrix_blur_is_simclrs_depthwise_convolution_with_zero_padding():
  x = _images(4, 40)
  sigmas = [0.1, 0.7, 1.3, 2.0]
  kernel = view_colour.blur_kernel_size(230)  # 23 taps, as at 224
  out = view_colour.gaussian_blur(x, tf.constant(sigmas), kernel).numpy()
  radius = kernel // 2
  for i, sigma in enumerate(sigmas):
    taps = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma ** 2))
    taps = (taps / taps.sum()).astype(np.float32)
    vertical = np.tile(taps.reshape(-1, 1, 1, 1), [1, 1, 3, 1])
    horizontal = np.tile(taps.reshape(1, -1, 1, 1), [1, 1, 3, 1])
    y = tf.nn.depthwise_conv2d(x[i:i + 1], vertical, [1, 1, 1, 1], "SAME")
    y = tf.nn.depthwise_conv2d(y, horizontal, [1, 1, 1, 1], "SAME")[0].numpy()
    np.testing.assert_allclose(out[i], y, atol=1e-5)


def _draw(n, seed=0, **recipe):
  """n views' parameters, each from its own example seed, drawn as the chain draws them."""
  def one(i):
    with SeedScope(tf.stack([tf.constant(seed, tf.int64), i])):
      return view_colour.draw_params(**recipe)
  return tf.data.Dataset.range(n).map(one).batch(n).get_single_element()


SIMCLR = dict(strengths=view_ops.simclr_strengths(1.0), p_blur=0.5)


def test_per_view_gather_and_mask_give_the_same_views():
  x = _images(16, 32)
  params = _draw(16, seed=4, p_solarize=0.3, **SIMCLR)
  per_view = view_colour.apply_params(x, params, "per_view").numpy()
  for select in ("gather", "mask"):
    np.testing.assert_allclose(view_colour.apply_params(x, params, select).numpy(), per_view,
                               atol=2e-5, err_msg=select)
  assert np.all(per_view >= 0.0) and np.all(per_view <= 1.0)
  assert np.abs(per_view - x.numpy()).max() > 0.1  # the parameters did something


def test_the_train_step_form_compiles_with_xla_to_the_same_views():
  # --augment_on_device with --jit_compile: the mask form has static shapes, so XLA takes it.
  x = tf.cast(tf.constant(RNG.randint(0, 256, size=(6, 48, 48, 3))), tf.uint8)
  params = _draw(6, seed=8, p_solarize=0.2, **SIMCLR)
  compiled = tf.function(lambda v, p: view_colour.apply_params(v, p, "mask"), jit_compile=True)
  np.testing.assert_allclose(compiled(x, params).numpy(),
                             view_colour.apply_params(x, params, "per_view").numpy(), atol=2e-5)


def test_the_jitter_runs_in_the_drawn_order_and_clips_after_each_op():
  x = _images(2, 16) * 0.9
  base = dict(zip(view_colour.FIELDS, [0.0] * view_colour.NUM_PARAMS))
  base.update(jitter=1.0, brightness_scale=1.0, brightness_shift=0.3, contrast=1.8,
              saturation=1.0, hue=0.0)
  first = dict(base, order0=0.0, order1=1.0, order2=2.0, order3=3.0)   # brightness, contrast
  second = dict(base, order0=1.0, order1=0.0, order2=2.0, order3=3.0)  # contrast, brightness
  params = tf.constant([[first[k] for k in view_colour.FIELDS],
                        [second[k] for k in view_colour.FIELDS]], tf.float32)
  out = view_colour.apply_params(x, params, "per_view").numpy()
  clip = lambda v: np.clip(v, 0.0, 1.0)  # noqa: E731
  a = clip(x[0].numpy() + 0.3)
  a = clip(tf.image.adjust_contrast(a, 1.8).numpy())
  b = clip(tf.image.adjust_contrast(x[1], 1.8).numpy())
  b = clip(b + 0.3)
  np.testing.assert_allclose(out[0], a, atol=1e-5)
  np.testing.assert_allclose(out[1], b, atol=1e-5)
  assert np.abs(a - clip(clip(tf.image.adjust_contrast(x[0], 1.8).numpy()) + 0.3)).max() > 0.05


def test_parameters_follow_the_recipes_over_many_seeds():
  n = 2000
  p = dict(zip(view_colour.FIELDS, _draw(n, **SIMCLR).numpy().T))
  # binomial sd at n = 2000 is at most 0.011
  assert abs(p["flip"].mean() - 0.5) < 0.04
  assert abs(p["jitter"].mean() - 0.8) < 0.04
  assert abs(p["gray"].mean() - 0.2) < 0.04
  assert abs((p["blur_sigma"] > 0).mean() - 0.5) < 0.04
  assert p["solarize"].max() == 0.0
  sigma = p["blur_sigma"][p["blur_sigma"] > 0]
  assert sigma.min() >= 0.1 and sigma.max() <= 2.0 and abs(sigma.mean() - 1.05) < 0.05
  for name, low, high in (("brightness_scale", 0.2, 1.8), ("contrast", 0.2, 1.8),
                          ("saturation", 0.2, 1.8), ("hue", -0.2, 0.2)):
    v = p[name]
    assert v.min() >= low and v.max() <= high, name
    assert abs(v.mean() - (low + high) / 2) < 0.05 and v.std() > (high - low) / 4, name
  assert np.all(p["brightness_shift"] == 0.0)
  orders = np.stack([p["order%d" % i] for i in range(4)], 1).astype(int)
  assert np.all(np.sort(orders, 1) == np.arange(4))  # a permutation every time
  for op in range(4):
    assert abs((orders[:, 0] == op).mean() - 0.25) < 0.04
  byol = dict(zip(view_colour.FIELDS, _draw(n, strengths=(0.4, 0.4, 0.2, 0.1), p_blur=0.1,
                                              p_solarize=0.2, additive_brightness=True).numpy().T))
  assert np.all(byol["brightness_scale"] == 1.0)
  shift = byol["brightness_shift"]
  assert shift.min() >= -0.4 and shift.max() <= 0.4 and abs(shift.mean()) < 0.03
  assert abs((byol["blur_sigma"] > 0).mean() - 0.1) < 0.03
  assert abs(byol["solarize"].mean() - 0.2) < 0.04


def _batch(fashion_mnist_dir, chain, on_device, **flags):
  config = Config.make(task="simclr", dataset="fashion_mnist", dataset_dir=fashion_mnist_dir,
                       preprocessing=chain, batch_size=8, random_seed=3,
                       augment_on_device=on_device, **flags)
  batch = next(iter(datasets.make_input_fn(config, "train", True)(None)))
  return {k: v for k, v in batch.items()}


@pytest.mark.slow
@pytest.mark.parametrize("chain, flags", [
    ("simclr_augment", dict(image_size=40)),  # 40 px: blurred (SimCLR blurs only above 32)
    ("byol_augment", dict(image_size=40)),
    ("multi_crop", dict(nmb_crops="2,2", size_crops="40,16", min_scale_crops="0.14,0.05",
                        max_scale_crops="1,0.14")),
])
def test_augment_on_device_gives_the_host_views_of_real_images(fashion_mnist_dir, chain, flags):
  from tfssl.tasks.base import Task
  host = _batch(fashion_mnist_dir, chain, False, **flags)
  again = _batch(fashion_mnist_dir, chain, False, **flags)
  device = _batch(fashion_mnist_dir, chain, True, **flags)
  assert not view_colour.deferred_keys(host)
  keys = view_colour.deferred_keys(device)
  params = [k for k in device if view_colour.is_colour_key(k)]
  assert keys and len(params) == len(keys)
  assert all(device[k].shape[-1] == view_colour.NUM_PARAMS for k in params)
  finished = tf.function(Task.finish_views)(device)  # in a graph, as the train step runs it
  assert sorted(finished) == sorted(host)
  for key in host:
    np.testing.assert_array_equal(host[key].numpy(), again[key].numpy())  # same seed, same batch
    difference = np.abs(finished[key].numpy() - host[key].numpy())
    if chain == "multi_crop":
      # PIL's blur rounds to 8-bit levels after each pass (pil_colour.py): where the host's and
      # the step's float jitter (tf.image's kernels, the closed forms; equal to ~1e-6) sit on
      # either side of a half level, the two round one level apart. Rare, and one level at most
      # (in SwAV's normalised units: 1 / 255 / 0.224).
      assert difference.max() <= 1 / 255 / 0.224 + 1e-4, key
      assert (difference > 1e-4).mean() < 1e-3, (key, (difference > 1e-4).mean())
    else:
      np.testing.assert_allclose(finished[key].numpy(), host[key].numpy(), atol=2e-5, err_msg=key)
  for key in keys:
    # 8-bit crops that differ from the finished views: the colour really was left to the step
    assert device[key].dtype == tf.uint8
    assert np.abs(device[key].numpy() / 255.0 - host[key].numpy()).max() > 0.05


def test_a_simclr_step_trains_on_a_batch_left_for_the_device(fashion_mnist_dir, tmp_path):
  import tfssl
  config = Config.make(task="simclr", architecture="cifar_resnet18", filters_factor=1,
                       dataset="fashion_mnist", dataset_dir=fashion_mnist_dir, batch_size=8,
                       preprocessing="simclr_augment", image_size=40, lr=1e-3, optimizer="adam",
                       train_steps=2, random_seed=2, workdir=str(tmp_path / "w"),
                       augment_on_device=True, lineareval_while_pretraining=False)
  task = tfssl.build_task(config)
  batch = next(iter(tfssl.training_dataset(config)))
  assert "image" + view_colour.SUFFIX in batch
  logs = task.train_step(batch)
  assert np.isfinite(float(logs["loss"])) and float(logs["loss"]) > 1.0  # NT-Xent of 16 views


def _crop_boxes(chain, count, **flags):
  """(area fraction, aspect) of every crop the chain cuts from a 255x255 image whose red channel
  is the row and green the column, over `count` example seeds (colour left deferred)."""
  from tfssl.data.preprocess import get_preprocess_fn
  rows, cols = np.mgrid[0:255, 0:255]
  image = tf.constant(np.stack([rows, cols, rows * 0], -1).astype(np.uint8))
  fn = get_preprocess_fn(chain, Config.make(**flags), True, defer_colour=True)
  key = "image" if chain != "multi_crop" else "crops_%s" % flags["size_crops"].split(",")[-1]
  crops = tf.data.Dataset.range(count).map(lambda i: fn(
      {"image": image, "label": tf.constant(0)}, seed=tf.stack([i, tf.constant(9, tf.int64)]))[key])
  crops = np.concatenate([c.numpy() for c in crops.batch(100)]).astype(np.float32)
  crops = crops.reshape((-1,) + crops.shape[-3:])
  # the crop's first and last rows and columns, widened by half an output pixel each side
  height = crops[:, -1, :, 0].mean(1) - crops[:, 0, :, 0].mean(1)
  width = crops[:, :, -1, 1].mean(1) - crops[:, :, 0, 1].mean(1)
  n = crops.shape[1]
  height, width = height * n / (n - 1) + 1, width * n / (n - 1) + 1
  return height * width / 255.0 ** 2, width / height


def test_crops_keep_their_area_and_aspect_ranges():
  area, aspect = _crop_boxes("simclr_augment", 300, image_size=64)
  assert area.min() > 0.08 - 0.02 and area.max() <= 1.0 + 0.03
  assert area.min() < 0.15 and area.max() > 0.8  # the whole range is used
  assert 0.36 < area.mean() < 0.50  # 0.43 here; a (0.2, 1) range would give about 0.55
  assert aspect.min() > 3 / 4 - 0.06 and aspect.max() < 4 / 3 + 0.06
  # --crop_min_area moves the lower end, for BYOL's views too
  for chain in ("simclr_augment", "byol_augment"):
    larger, _ = _crop_boxes(chain, 150, image_size=64, crop_min_area=0.5)
    assert larger.min() > 0.5 - 0.03 and larger.max() <= 1.0 + 0.03
    assert larger.min() < 0.6 and 0.6 < larger.mean() < 0.8
  small, small_aspect = _crop_boxes("multi_crop", 200, nmb_crops="1,2", size_crops="64,32",
                                    min_scale_crops="0.14,0.05", max_scale_crops="1,0.14")
  assert small.min() > 0.05 - 0.015 and small.max() < 0.14 + 0.02
  assert 0.08 < small.mean() < 0.11
  assert small_aspect.min() > 3 / 4 - 0.08 and small_aspect.max() < 4 / 3 + 0.08
