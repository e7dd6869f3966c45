"""The contrastive view-making ops: shapes, ranges, independence of views, deterministic eval, and
the building blocks against NumPy / PIL computations of what they are defined as."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageFilter, ImageOps, ImageEnhance

from tfssl.config import Config
from tfssl.data import ava_views, multi_crop, randaugment, simclr_views, view_colour, view_ops
from tfssl.data.preprocess import get_preprocess_fn

RNG = np.random.RandomState(0)
IMAGE = RNG.randint(0, 256, size=(28, 28, 3)).astype(np.uint8)
SWAV = dict(nmb_crops="2,3", size_crops="32,16", min_scale_crops="0.14,0.05",
            max_scale_crops="1,0.14")


def _run(op, is_training, seed=(1, 2), image=IMAGE, **config):
  fn = get_preprocess_fn(op, Config.make(**config), is_training)
  out = fn({"image": tf.constant(image), "label": tf.constant(3)}, seed=tf.constant(seed, tf.int64))
  return {k: v.numpy() for k, v in out.items()}


def _unnormalized(images, mean, std):
  return images * np.asarray(std, np.float32) + np.asarray(mean, np.float32)


@pytest.mark.parametrize("op, mean, std", [
    ("simclr_augment", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    # DeepMind's BYOL normalises both views with ImageNet's mean and std after their colour.
    ("byol_augment", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
])
def test_two_view_ops_give_two_different_views_in_0_1(op, mean, std):
  out = _run(op, True, image_size=32)
  views = out["image"]
  assert views.shape == (2, 32, 32, 3) and views.dtype == np.float32
  views = _unnormalized(views, mean, std)
  assert views.min() >= -1e-6 and views.max() <= 1.0 + 1e-6
  assert np.abs(views[0] - views[1]).mean() > 0.01
  assert out["label"] == 3


def test_views_repeat_with_the_seed_and_change_without_it():
  a = _run("simclr_augment", True, seed=(5, 6), image_size=32)["image"]
  b = _run("simclr_augment", True, seed=(5, 6), image_size=32)["image"]
  c = _run("simclr_augment", True, seed=(7, 8), image_size=32)["image"]
  np.testing.assert_array_equal(a, b)
  assert np.abs(a - c).mean() > 0.01


@pytest.mark.parametrize("op", ["simclr_augment", "byol_augment", "center_crop_resize",
                                "byol_eval_view"])
def test_eval_view_is_the_centre_crop_and_deterministic(op):
  # 64 px, image_size 56: SimCLR's 0.875 centre crop is 56 px from (4, 4), resized 56 -> 56
  # (DeepMind's BYOL keeps 224/256 = 0.875 too, and normalises as in training).
  image = RNG.randint(0, 256, size=(64, 64, 3)).astype(np.uint8)
  a = _run(op, False, seed=(1, 1), image=image, image_size=56)["image"]
  b = _run(op, False, seed=(9, 9), image=image, image_size=56)["image"]
  np.testing.assert_array_equal(a, b)
  if "byol" in op:
    a = _unnormalized(a, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
  np.testing.assert_allclose(a, image[4:60, 4:60] / 255.0, atol=1e-5)


def test_swav_eval_view_is_its_eval_linear_resize_and_centre_crop():
  # eval_linear.py: Resize(256) (the shorter side; bilinear, antialiased on PIL) and
  # CenterCrop(224), normalised with SwAV's constants (its first std is 0.228). At 112 px:
  # a 150x120 image's shorter side goes to 128, the longer to int(128 * 150 / 120) = 160;
  # the centre 112 starts at round(48 / 2) = 24 and round(16 / 2) = 8.
  image = RNG.randint(0, 256, size=(150, 120, 3)).astype(np.uint8)
  out = _run("swav_eval_view", False, image=image, image_size=112)["image"]
  resized = tf.image.resize(image / 255.0, [160, 128], "bilinear", antialias=True).numpy()
  expected = (resized[24:136, 8:120] - [0.485, 0.456, 0.406]) / [0.228, 0.224, 0.225]
  np.testing.assert_allclose(out, expected, atol=1e-4)


def test_small_eval_images_are_only_resized():
  # CIFAR-sized: no crop (SimCLR's test_crop is off for <= 32 px); 28 -> 28 keeps every pixel.
  out = _run("simclr_augment", False, image_size=28)["image"]
  np.testing.assert_allclose(out, IMAGE / 255.0, atol=1e-5)


def test_multi_crop_groups_by_size_in_flag_order():
  out = _run("multi_crop", True, **SWAV)
  assert set(out) == {"crops_32", "crops_16", "label"}
  assert out["crops_32"].shape == (2, 32, 32, 3) and out["crops_16"].shape == (3, 16, 16, 3)
  for key in ("crops_32", "crops_16"):  # normalised with SwAV's mean and std
    crops = _unnormalized(out[key], (0.485, 0.456, 0.406), (0.228, 0.224, 0.225))
    assert crops.min() >= -1e-6 and crops.max() <= 1.0 + 1e-6
  assert np.abs(out["crops_16"][0] - out["crops_16"][1]).mean() > 0.01
  config = Config.make(nmb_crops="1,2,3", size_crops="32,16,32", min_scale_crops="0.1,0.1,0.1",
                       max_scale_crops="1,1,1")
  groups = multi_crop.crop_groups(config)
  assert [(key, sum(n for n, _, _ in parts)) for key, _, parts in groups] == [("crops_32", 4),
                                                                               ("crops_16", 2)]
  assert multi_crop.num_crops(config) == 6
  evaluated = _run("multi_crop", False, **SWAV)
  assert evaluated["image"].shape == (32, 32, 3)


def test_multi_crop_rejects_mismatched_lists():
  with pytest.raises(ValueError, match="same number"):
    multi_crop.crop_groups(Config.make(nmb_crops="2,6", size_crops="224"))


def test_ava_views_are_three_normalised_views_and_eval_is_normalize_only():
  out = _run("ava_views", True, image_size=32)["image"]
  assert out.shape == (3, 32, 32, 3)
  low = (0 - np.array(ava_views.CIFAR_MEAN)) / np.array(ava_views.CIFAR_STD)
  high = (1 - np.array(ava_views.CIFAR_MEAN)) / np.array(ava_views.CIFAR_STD)
  assert np.all(out >= low - 1e-5) and np.all(out <= high + 1e-5)
  assert np.abs(out[0] - out[2]).mean() > 0.01
  image = RNG.randint(0, 256, size=(32, 32, 3)).astype(np.uint8)
  evaluated = _run("ava_views", False, image=image)["image"]
  expected = (image / 255.0 - np.array(ava_views.CIFAR_MEAN)) / np.array(ava_views.CIFAR_STD)
  np.testing.assert_allclose(evaluated, expected, atol=1e-4)


# ---- building blocks ----

def _jitter_only(image, strengths, seed=(5, 6), additive=False):
  """The views' jitter alone (always on, no flip, gray, blur) on one image, from one seed."""
  from tfssl.data import randomness
  with randomness.SeedScope(tf.constant(seed, tf.int64)):
    params = view_colour.draw_params(strengths, p_jitter=1.0, p_gray=0.0, flip=False,
                                     additive_brightness=additive)
  return view_colour.apply_params(tf.constant(image)[None], params[None], "per_view")[0].numpy()


def test_zero_strength_jitter_is_identity_and_grayscale_uses_luma():
  x = RNG.rand(8, 8, 3).astype(np.float32)
  np.testing.assert_allclose(_jitter_only(x, (0, 0, 0, 0)), x, atol=1e-6)
  gray = view_colour.luma(tf.constant(x)[None])[0].numpy()
  luma = x @ np.array([0.2989, 0.587, 0.114])
  for c in range(3):
    np.testing.assert_allclose(gray[..., c], luma, atol=1e-3)


def test_brightness_is_multiplicative():
  x = RNG.rand(8, 8, 3).astype(np.float32) * 0.5
  out = _jitter_only(x, (0.5, 0, 0, 0))
  ratio = out / x
  assert 0.5 <= ratio.mean() <= 1.5
  np.testing.assert_allclose(ratio, ratio.mean(), rtol=1e-4)


def test_gaussian_blur_is_the_separable_kernel_with_zero_padding():
  x = RNG.rand(9, 9, 3).astype(np.float32)
  sigma, size = 1.3, 5
  r = np.arange(-2, 3)
  k = np.exp(-r ** 2 / (2 * sigma ** 2))
  k /= k.sum()
  padded = np.pad(x, [(2, 2), (2, 2), (0, 0)])
  expected = np.zeros_like(x)
  for i in range(9):
    for j in range(9):
      expected[i, j] = np.einsum("a,b,abc->c", k, k, padded[i:i + 5, j:j + 5])
  out = view_colour.gaussian_blur(tf.constant(x)[None], tf.constant([sigma]), size)[0].numpy()
  np.testing.assert_allclose(out, expected, atol=1e-5)


# ---- RandAugment against PIL, on uint8-valued images ----

def _op(name):
  return {n: fn for n, fn, _, _ in randaugment.RANDAUGMENT_OPS}[name]


def _tf(image, name, value=0.0):
  return _op(name)(tf.constant(image, tf.float32), value).numpy()


@pytest.mark.parametrize("name,pil", [
    ("AutoContrast", ImageOps.autocontrast),
    ("Equalize", ImageOps.equalize),
    ("Invert", ImageOps.invert),
])
def test_parameterless_ops_match_pil(name, pil):
  # A narrow range, so autocontrast and equalize really move the pixels. Images of their
  # own seeds (not the module's RNG, whose state depends on which tests ran before on this
  # worker), and enough of them that float32 rounding of autocontrast's scale would show.
  for seed in range(40):
    image = np.random.RandomState(seed).randint(40, 180, size=(16, 16, 3)).astype(np.uint8)
    expected = np.asarray(pil(Image.fromarray(image)), np.float32)
    np.testing.assert_array_equal(_tf(image, name), expected, err_msg=f"seed {seed}")


def test_magnitude_ops_match_pil_at_m10():
  image = RNG.randint(0, 256, size=(16, 16, 3)).astype(np.uint8)
  pil = Image.fromarray(image)
  value = lambda low, high: randaugment.randaugment_value(10, low, high)
  np.testing.assert_array_equal(_tf(image, "Posterize", value(0, 4)),
                                np.asarray(ImageOps.posterize(pil, 1), np.float32))
  np.testing.assert_array_equal(_tf(image, "Solarize", value(0, 256)),
                                np.asarray(ImageOps.solarize(pil, value(0, 256)), np.float32))
  added = Image.fromarray(np.clip(image + value(0, 110), 0, 255).astype(np.uint8))
  np.testing.assert_array_equal(_tf(image, "SolarizeAdd", value(0, 110)),
                                np.asarray(ImageOps.solarize(added, 128), np.float32))
  contrast = np.asarray(ImageEnhance.Contrast(pil).enhance(value(0.1, 1.9)), np.float32)
  np.testing.assert_array_equal(_tf(image, "Contrast", value(0.1, 1.9)), contrast)
  sharp = np.asarray(ImageEnhance.Sharpness(pil).enhance(value(0.1, 1.9)), np.float32)
  np.testing.assert_array_equal(_tf(image, "Sharpness", value(0.1, 1.9)), sharp)
  for name, pil_filter in (("BLUR", ImageFilter.BLUR), ("CONTOUR", ImageFilter.CONTOUR),
                           ("EMBOSS", ImageFilter.EMBOSS), ("FIND_EDGES", ImageFilter.FIND_EDGES)):
    expected = np.asarray(pil.filter(pil_filter), np.float32)
    np.testing.assert_array_equal(_tf(image, name), expected, err_msg=name)


@pytest.mark.parametrize("name,value,pil_args", [
    ("Rotate", 10.0, lambda pil, v: pil.rotate(v)),
    ("Rotate", 90.0, lambda pil, v: pil.rotate(v)),
    ("ShearX", 0.1, lambda pil, v: pil.transform(pil.size, Image.AFFINE, (1, v, 0, 0, 1, 0))),
    ("ShearY", 0.3, lambda pil, v: pil.transform(pil.size, Image.AFFINE, (1, 0, 0, v, 1, 0))),
    ("TranslateXabs", 5.0, lambda pil, v: pil.transform(pil.size, Image.AFFINE, (1, 0, v, 0, 1, 0))),
    ("TranslateYabs", 5.0, lambda pil, v: pil.transform(pil.size, Image.AFFINE, (1, 0, 0, 0, 1, v))),
])
def test_geometric_ops_match_pil_with_a_random_sign(name, value, pil_args):
  image = RNG.randint(1, 256, size=(16, 16, 3)).astype(np.uint8)
  pil = Image.fromarray(image)
  candidates = [np.asarray(pil_args(pil, v), np.float32) for v in (value, -value)]
  signs = set()
  for _ in range(24):
    out = _tf(image, name, value)
    matches = [i for i, c in enumerate(candidates) if np.array_equal(out, c)]
    assert matches, name
    signs.update(matches)
  assert signs == {0, 1}  # both directions occur (probability 1 - 2^-23)


def test_cutout_paints_one_grey_square():
  image = np.zeros((32, 32, 3), np.float32)
  out = _tf(image, "CutoutAbs", 10.0)
  painted = np.all(out == [125.0, 123.0, 114.0], axis=-1)
  rows, cols = np.nonzero(painted)
  assert painted.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
  assert rows.max() - rows.min() <= 10 and cols.max() - cols.min() <= 10
  assert np.all(out[~painted] == 0)


def test_randaugment_picks_ops_by_index_and_keeps_uint8_values():
  image = RNG.randint(0, 256, size=(16, 16, 3)).astype(np.float32)
  invert = randaugment.apply_randaugment_op(tf.constant(image), tf.constant(2), 10).numpy()
  np.testing.assert_array_equal(invert, 255.0 - image)
  out = randaugment.randaugment(tf.constant(image), 2, 10).numpy()
  assert out.shape == image.shape
  assert out.min() >= 0 and out.max() <= 255 and np.array_equal(out, np.round(out))
  assert len(randaugment.RANDAUGMENT_OPS) == 18


@pytest.mark.parametrize("multi_view, single_view, config", [
    ("simclr_augment", "center_crop_resize", dict(image_size=32)),
    ("byol_augment", "byol_eval_view", dict(image_size=32)),
    ("multi_crop", "swav_eval_view", dict(SWAV, image_size=32)),
    ("ava_views", "ava_eval_view", dict(image_size=32)),
])
def test_single_view_counterparts_give_the_multi_view_ops_eval_image_in_both_modes(
    multi_view, single_view, config):
  # What linear evaluation and kNN of a contrastive config see (its --knn_preprocessing).
  image = RNG.randint(0, 256, size=(40, 40, 3)).astype(np.uint8)
  expected = _run(multi_view, False, image=image, **config)["image"]
  assert expected.shape == (32, 32, 3)
  for is_training in (False, True):
    np.testing.assert_array_equal(_run(single_view, is_training, image=image, **config)["image"],
                                  expected)


def check_single_view(chain):
  """The one views check (tasks/views.py), as validate runs it for --task=linear_eval."""
  from tfssl.tasks.linear_eval import LinearEval
  from tfssl.tasks.views import check_chain_views
  check_chain_views(LinearEval, "linear_eval", Config.make(preprocessing=chain))


def test_multi_view_chains_are_refused_where_one_view_is_trained():
  with pytest.raises(ValueError, match="ava_views makes several augmented views.*"
                                       "--preprocessing=ava_eval_view"):
    check_single_view("ava_views")
  with pytest.raises(ValueError, match="multi_crop makes several"):
    check_single_view("to_gray, multi_crop")
  check_single_view("resize,crop_patches,standardization")  # patches: fine


def _brightness_only(image, additive, seed):
  return _jitter_only(image, (0.4, 0.0, 0.0, 0.0), seed, additive)


def test_byol_brightness_adds_a_delta_where_simclr_multiplies():
  # DeepMind's BYOL: tf.image.random_brightness, x + U(-0.4, 0.4) at strength 1. Two pixels at
  # 0.2 and 0.6 move by the same amount; a factor would move the second three times as far.
  image = np.zeros([2, 1, 3], np.float32)
  image[0], image[1] = 0.2, 0.6
  deltas = []
  for seed in range(40):
    out = _brightness_only(image, True, (seed, 3))
    shift = out - image
    if 0.0 < out.min() and out.max() < 1.0:  # no clipping
      np.testing.assert_allclose(shift, shift.ravel()[0], atol=1e-6)
      deltas.append(float(shift.ravel()[0]))
    factor = _brightness_only(image, False, (seed, 3))
    ratio = (factor[1] - image[1]) / np.where(factor[0] == image[0], 1.0, factor[0] - image[0])
    if abs(factor[0, 0, 0] - 0.2) > 1e-3 and factor.max() < 1.0:
      np.testing.assert_allclose(ratio, 3.0, rtol=1e-3)
  deltas = np.array(deltas)
  assert len(deltas) > 20 and np.all(np.abs(deltas) <= 0.4 + 1e-6)
  assert deltas.min() < -0.1 and deltas.max() > 0.1
  # The same seed gives the same delta.
  np.testing.assert_array_equal(_brightness_only(image, True, (7, 3)),
                                _brightness_only(image, True, (7, 3)))


def test_byol_views_use_the_additive_brightness(monkeypatch):
  seen = []
  real = simclr_views.draw_params

  def spy(strengths, **kwargs):
    seen.append((tuple(strengths), kwargs.get("additive_brightness", False)))
    return real(strengths, **kwargs)

  monkeypatch.setattr(simclr_views, "draw_params", spy)
  _run("byol_augment", True, image_size=32)
  _run("simclr_augment", True, image_size=32)
  byol = [(s, a) for s, a in seen if s == simclr_views.BYOL_STRENGTHS]
  simclr = [(s, a) for s, a in seen if s == view_ops.simclr_strengths(1.0)]
  assert byol and all(a for _, a in byol)
  assert simclr and not any(a for _, a in simclr)


def _byol_views(seeds, image):
  ds = tf.data.Dataset.range(seeds).map(
      lambda s: get_preprocess_fn("byol_augment", Config.make(image_size=32), True)(
          {"image": tf.constant(image), "label": tf.constant(0)},
          seed=tf.stack([s, tf.constant(11, tf.int64)]))["image"])
  views = np.stack([v.numpy() for v in ds.batch(100)]).reshape(-1, 2, 32, 32, 3)
  return _unnormalized(views, view_colour.IMAGENET_MEAN, view_colour.IMAGENET_STD)


def test_byol_views_grayscale_and_solarise_at_the_papers_rates():
  # BYOL's table 6: grayscale p = 0.2 on both views, solarisation p = 0 (view 1) and 0.2 (view 2).
  # A colourful image with a white band: a grayscale view has R = G = B; a solarised view has no
  # value above 0.5 (x >= 0.5 becomes 1 - x), which an unsolarised one keeps in the band unless
  # the jitter darkened it, a false-positive rate view 1 measures.
  image = np.zeros([28, 28, 3], np.uint8)
  image[:, :, 0] = np.linspace(0, 255, 28).astype(np.uint8)[None]
  image[:, :, 1] = np.linspace(255, 0, 28).astype(np.uint8)[:, None]
  image[:, :, 2] = 60
  image[10:18] = 255
  views = _byol_views(400, image)
  gray = np.all(np.abs(views - views[..., :1]) < 1e-5, axis=(2, 3, 4))  # [N, 2]
  dark = views.max(axis=(2, 3, 4)) <= 0.5 + 1e-6
  for v in range(2):
    assert abs(gray[:, v].mean() - 0.2) < 0.07, gray.mean(0)  # binomial sd 0.02
  solarised = dark[:, 1].mean() - dark[:, 0].mean()
  assert abs(solarised - 0.2) < 0.08, dark.mean(0)
