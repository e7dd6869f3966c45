"""The views as their originals make them (issue #30): each method's crop sampler against a NumPy
transcription of its original, PIL's colour forms on SwAV's and AVA's path against Pillow itself,
and SimCLR's views unchanged seed for seed."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageEnhance, ImageFilter

from helpers import original_samplers
from helpers.configs import tiny_config
from tfssl.data import crop_samplers, pil_colour, preprocess, view_colour
from tfssl.data.randomness import SeedScope
from tfssl.tools import idx_files

DRAWS = 4000  # tfssl's windows, one seed each
REFERENCE_DRAWS = 40000  # the transcription's: its own sampling noise well below the tolerance
QUANTILES = (5, 25, 50, 75, 95)
FASHION_IDX = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
PINNED = pathlib.Path(__file__).parent / "data" / "simclr_views_pinned.npz"


def _tfssl_windows(sampler, height, width, area, min_object_covered=0.1):
  @tf.function
  def windows(seeds):
    def one(seed):
      with SeedScope(seed):
        return tf.stack(crop_samplers.crop_window(sampler, tf.constant(height), tf.constant(width),
                                                  area, min_object_covered=min_object_covered))
    return tf.map_fn(one, seeds, fn_output_signature=tf.int32)
  seeds = tf.stack([tf.range(DRAWS, dtype=tf.int64), tf.fill([DRAWS], tf.constant(17, tf.int64))], 1)
  return windows(seeds).numpy()


def _original_windows(sampler, height, width, area):
  rng = np.random.RandomState(0)
  draw = original_samplers.SAMPLERS[sampler]
  return np.array([draw(rng, height, width, area) for _ in range(REFERENCE_DRAWS)])


def _summary(windows, height, width):
  top, left, h, w = windows.T
  assert (h >= 1).all() and (w >= 1).all()
  assert (top >= 0).all() and (left >= 0).all()
  assert (top + h <= height).all() and (left + w <= width).all()
  area = h * w / float(height * width)
  return np.percentile(area, QUANTILES), np.log(w / h).mean()


@pytest.mark.parametrize("sampler, area", [("torchvision", (0.08, 1.0)),
                                           ("torchvision", (0.14, 1.0)),   # SwAV's 224 crops
                                           ("torchvision", (0.05, 0.14)),  # and its 96 ones
                                           ("byol", (0.08, 1.0))])
@pytest.mark.parametrize("height, width", [(375, 500), (32, 32)])
def test_crop_samplers_draw_as_their_originals(sampler, area, height, width):
  ours = _summary(_tfssl_windows(sampler, height, width, area), height, width)
  theirs = _summary(_original_windows(sampler, height, width, area), height, width)
  np.testing.assert_allclose(ours[0], theirs[0], atol=0.02, err_msg="area quantiles")
  assert abs(ours[1] - theirs[1]) < 0.02, ("log-aspect mean", ours[1], theirs[1])


def test_simclr_sampler_is_not_byols():
  # What issue #30 found: BYOL's views used SimCLR's sampler (coverage 0.1, 100 attempts), whose
  # crops are smaller than DeepMind's (median area 0.35 against 0.54 on a 500x375 photo).
  simclr = _summary(_tfssl_windows("simclr", 375, 500, (0.08, 1.0)), 375, 500)
  byol = _summary(_original_windows("byol", 375, 500, (0.08, 1.0)), 375, 500)
  assert byol[0][2] - simclr[0][2] > 0.1, (simclr[0], byol[0])


def _colour_images():
  """Real Fashion-MNIST images, three to an RGB image (so saturation has colour to act on), and
  one photo-sized image made from them."""
  gray = idx_files.read_idx(FASHION_IDX)[:24]
  rgb = np.stack([gray[0:8], gray[8:16], gray[16:24]], axis=-1).astype(np.uint8)
  photo = tf.image.resize(rgb[:1].astype(np.float32), [375, 500], "bicubic").numpy()
  return rgb, np.clip(np.round(photo), 0, 255).astype(np.uint8)


def _params(n, **values):
  """Photometric parameters that apply only what `values` sets (jitter on, every factor 1)."""
  base = dict(flip=0.0, jitter=1.0, order0=0.0, order1=1.0, order2=2.0, order3=3.0,
              brightness_scale=1.0, brightness_shift=0.0, contrast=1.0, saturation=1.0, hue=0.0,
              gray=0.0, blur_sigma=0.0, solarize=0.0)
  base.update(values)
  return np.tile(np.array([base[k] for k in view_colour.FIELDS], np.float32), [n, 1])


def _pil(images, fn):
  return np.stack([np.asarray(fn(Image.fromarray(x)), np.float32) for x in images]) / 255.0


@pytest.mark.parametrize("select", ["per_view", "mask"])
def test_swav_and_ava_colour_forms_equal_pils(select):
  # SwAV's and AVA's originals jitter PIL images; their path (form="pil") must give PIL's pixels
  # within 2/255 (PIL rounds to 8 bits), on the host and in the train step alike.
  for images in _colour_images():
    apply = lambda **values: view_colour.apply_params(  # noqa: E731
        images, _params(len(images), **values), select=select, form="pil").numpy()
    for factor in (0.2, 0.6, 1.4, 1.8):
      contrast = _pil(images, lambda im: ImageEnhance.Contrast(im).enhance(factor))
      np.testing.assert_allclose(apply(contrast=factor), contrast, atol=2 / 255)
      color = _pil(images, lambda im: ImageEnhance.Color(im).enhance(factor))
      np.testing.assert_allclose(apply(saturation=factor), color, atol=2 / 255)
    for sigma in (0.1, 0.7, 1.3, 2.0):
      blurred = _pil(images, lambda im: im.filter(ImageFilter.GaussianBlur(sigma)))
      np.testing.assert_allclose(apply(jitter=0.0, blur_sigma=sigma), blurred, atol=2 / 255)


def test_tf_image_forms_are_not_pils():
  # The test above can fail: tf.image's contrast (per-channel means) and SimCLR's zero-padded
  # blur differ from PIL's by more than its tolerance.
  rgb, _ = _colour_images()
  contrast = view_colour.apply_params(rgb, _params(len(rgb), contrast=1.8), form="tf").numpy()
  pil = _pil(rgb, lambda im: ImageEnhance.Contrast(im).enhance(1.8))
  assert np.abs(contrast - pil).max() > 4 / 255
  blur = view_colour.apply_params(rgb, _params(len(rgb), jitter=0.0, blur_sigma=2.0),
                                  form="tf").numpy()
  assert np.abs(blur - _pil(rgb, lambda im: im.filter(ImageFilter.GaussianBlur(2.0)))).max() > 4 / 255


def test_pil_blur_is_pils_fixed_point_box_blur_exactly():
  _, photo = _colour_images()
  for sigma in (0.3, 1.0, 1.9):
    ours = np.round(pil_colour.gaussian_blur(photo / 255.0, [sigma]).numpy() * 255)
    np.testing.assert_array_equal(ours, np.round(255 * _pil(
        photo, lambda im: im.filter(ImageFilter.GaussianBlur(sigma)))))


def test_simclr_views_are_unchanged_seed_for_seed():
  # Pinned before issue #30's samplers and PIL forms: SimCLR's views (crop, colour, blur at
  # 64 px) must not move; its original is TensorFlow and tfssl's ops are its own.
  pinned = np.load(PINNED)
  for size, key in ((32, "rgb"), (64, "photo")):
    config = tiny_config("simclr", image_size=size, preprocessing="simclr_augment")
    fn = preprocess.get_preprocess_fn("simclr_augment", config, True)
    for seed in (3, 11):
      views = fn({"image": tf.constant(pinned[key])}, tf.constant([seed, 7]))["image"].numpy()
      np.testing.assert_allclose(views, pinned["views_%d_%d" % (size, seed)], atol=1e-5)
