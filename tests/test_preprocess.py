"""The --preprocessing ops against hand computations, in training and eval mode."""

import numpy as np
import pytest
import tensorflow as tf

from tfssl.config import Config
from tfssl.data import preprocess

ALL_ORIGINAL_OPS = (
    "plain_preprocess", "0_to_1", "-1_to_1", "resize", "resize_small", "crop", "central_crop",
    "inception_crop", "flip_lr", "inception_preprocess", "crop_inception_preprocess_patches",
    "to_gray", "crop_patches", "standardization", "rotate")


def coded_image(height, width):
  """uint8 image whose pixel (r, c) holds (r, c, r * width + c mod 256): crops are recognisable."""
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  return np.stack([rows, cols, (rows * width + cols) % 256], axis=-1).astype(np.uint8)


def run(chain, image, is_training=False, seed=None, label=7, **flags):
  fn = preprocess.get_preprocess_fn(chain, Config.make(**flags), is_training)
  seed = None if seed is None else tf.constant([seed, 0], tf.int64)
  out = fn({"image": tf.constant(image), "label": tf.constant(label, tf.int32)}, seed)
  return out["image"].numpy(), out["label"].numpy()


def find_window(image, window):
  """(top, left) where `window` sits inside `image`, or None."""
  h, w = window.shape[:2]
  for top in range(image.shape[0] - h + 1):
    for left in range(image.shape[1] - w + 1):
      if np.array_equal(image[top:top + h, left:left + w], window):
        return top, left
  return None


def test_every_original_op_is_registered():
  assert set(ALL_ORIGINAL_OPS) <= set(preprocess.known_ops())


def test_plain_and_value_scalings():
  image = np.array([[[0, 51, 255]]], np.uint8)
  assert run("plain_preprocess", image)[0].tolist() == image.tolist()
  zero_one, _ = run("0_to_1", image)
  assert zero_one.dtype == np.float32
  np.testing.assert_allclose(zero_one, [[[0.0, 0.2, 1.0]]], atol=1e-6)
  np.testing.assert_allclose(run("-1_to_1", image)[0], [[[-1.0, -0.6, 1.0]]], atol=1e-6)


def test_resize_halves_by_block_means_and_takes_pairs():
  image = coded_image(4, 4)
  out, _ = run("resize", image, resize_size="2")
  # Half-pixel bilinear at exactly half size averages each 2x2 block.
  blocks = image.astype(np.float32).reshape(2, 2, 2, 2, 3).mean(axis=(1, 3))
  assert out.dtype == np.float32
  np.testing.assert_allclose(out, blocks, atol=1e-4)
  assert run("resize", image, resize_size="2,3")[0].shape == (2, 3, 3)


def test_random_resize_method_uses_the_three_reachable_methods_in_training_only():
  image = np.random.RandomState(0).randint(0, 256, (7, 5, 3)).astype(np.uint8)
  expected = {m: tf.cast(tf.image.resize(image, [3, 4], method=m), tf.float32).numpy()
              for m in ("bilinear", "nearest", "bicubic")}
  seen = set()
  for seed in range(30):
    out, _ = run("resize", image, True, seed, resize_size="3,4", randomize_resize_method=True)
    matches = [m for m, e in expected.items() if np.allclose(out, e, atol=1e-4)]
    assert len(matches) == 1
    seen.add(matches[0])
  assert seen == set(expected)
  out, _ = run("resize", image, False, 1, resize_size="3,4", randomize_resize_method=True)
  np.testing.assert_allclose(out, expected["bilinear"], atol=1e-4)


def test_resize_small_keeps_the_aspect_with_area_resize():
  assert run("resize_small", np.zeros((6, 9, 3), np.uint8), smaller_size=4)[0].shape == (4, 6, 3)
  assert run("resize_small", np.zeros((9, 6, 3), np.uint8), smaller_size=4)[0].shape == (6, 4, 3)
  # 5x7 to smaller side 3: 7 * 0.6 = 4.2 rounds to 4.
  assert run("resize_small", np.zeros((5, 7, 3), np.uint8), smaller_size=3)[0].shape == (3, 4, 3)
  image = coded_image(4, 6)
  out, _ = run("resize_small", image, smaller_size=2)
  np.testing.assert_allclose(out, image.astype(np.float32).reshape(2, 2, 3, 2, 3).mean(axis=(1, 3)),
                             atol=1e-4)


def test_crop_is_central_in_eval_and_a_random_window_in_training():
  image = coded_image(5, 7)
  central, _ = run("crop", image, crop_size="3")
  np.testing.assert_array_equal(central, image[1:4, 2:5])  # offsets (5-3)//2, (7-3)//2
  np.testing.assert_array_equal(run("central_crop", image, True, 3, crop_size="3")[0], central)
  offsets = set()
  for seed in range(20):
    window, _ = run("crop", image, True, seed, crop_size="3,2")
    assert window.shape == (3, 2, 3)
    offsets.add(find_window(image, window))
  assert None not in offsets and len(offsets) > 3


def test_crop_works_on_each_image_of_a_stack():
  stack = np.stack([coded_image(5, 5), 255 - coded_image(5, 5)])
  out, _ = run("crop", stack, crop_size="3")
  np.testing.assert_array_equal(out, stack[:, 1:4, 1:4])


def test_inception_crop_stays_within_area_and_aspect_bounds_and_is_training_only():
  image = coded_image(120, 120)
  areas = []
  for seed in range(12):
    window, _ = run("inception_crop", image, True, seed)
    h, w = window.shape[:2]
    areas.append(h * w / 120.0 ** 2)
    assert 0.05 <= areas[-1] <= 1.0
    assert 0.75 - 1.0 / h <= w / h <= 1.33 + 1.0 / h
    assert find_window(image, window) is not None
  assert len(set(areas)) > 1
  np.testing.assert_array_equal(run("inception_crop", image, False, 1)[0], image)


def test_flip_lr_flips_each_image_at_random_in_training_only():
  image = coded_image(3, 4)
  outcomes = set()
  for seed in range(12):
    out, _ = run("flip_lr", image, True, seed)
    assert np.array_equal(out, image) or np.array_equal(out, image[:, ::-1])
    outcomes.add(np.array_equal(out, image))
  assert outcomes == {True, False}
  np.testing.assert_array_equal(run("flip_lr", image, False, 1)[0], image)
  stack = np.stack([image] * 16)
  flipped = [not np.array_equal(x, image) for x in run("flip_lr", stack, True, 0)[0]]
  assert 0 < sum(flipped) < 16


def test_inception_preprocess_eval_is_central_crop_resize_and_minus_one_to_one():
  image = coded_image(16, 16)
  out, _ = run("inception_preprocess", image, resize_size="14")
  # central_fraction 0.875 of 16 leaves 14 starting at 1; resizing 14 to 14 changes nothing.
  np.testing.assert_allclose(out, (image[1:15, 1:15] / 255.0 - 0.5) * 2.0, atol=1e-5)
  np.testing.assert_array_equal(run("inception_preprocess", image, resize_size="14")[0], out)


def test_inception_preprocess_training_bounds_brightness_on_a_gray_image():
  value = 100
  image = np.full((40, 30, 3), value, np.uint8)
  outs = []
  for seed in range(6):
    out, _ = run("inception_preprocess", image, True, seed, resize_size="24,20")
    assert out.shape == (24, 20, 3) and out.dtype == np.float32
    # Saturation leaves gray alone; brightness moves it by at most 32/255 before [-1, 1].
    np.testing.assert_allclose(out, out[0, 0, 0], atol=1e-5)
    assert abs((out[0, 0, 0] / 2.0 + 0.5) - value / 255.0) <= 32.0 / 255.0 + 1e-5
    outs.append(out[0, 0, 0])
  assert len(set(np.round(outs, 5))) > 1


def test_crop_inception_preprocess_patches_stacks_independent_crops():
  image = np.random.RandomState(1).randint(0, 256, (40, 40, 3)).astype(np.uint8)
  flags = dict(resize_size="16", num_of_inception_patches=4)
  crops, label = run("crop_inception_preprocess_patches", image, True, 2, **flags)
  assert crops.shape == (4, 16, 16, 3) and label == 7
  assert len({c.tobytes() for c in crops}) == 4
  single, _ = run("inception_preprocess", image, resize_size="16")
  evals, _ = run("crop_inception_preprocess_patches", image, **flags)
  for crop in evals:
    np.testing.assert_allclose(crop, single, atol=1e-6)


def test_to_gray_tiles_the_rgb_mean_with_its_probability():
  image = coded_image(4, 5)
  gray, _ = run("to_gray", image, grayscale_probability=1.0)
  mean = image.astype(np.float32).mean(axis=-1, keepdims=True)
  np.testing.assert_allclose(gray, np.repeat(mean, 3, axis=-1), atol=1e-4)
  np.testing.assert_array_equal(run("to_gray", image, True, 1, grayscale_probability=0.0)[0], image)


def test_to_gray_before_patches_is_one_decision_for_all_of_them():
  image = coded_image(12, 12)
  decisions = set()
  for seed in range(16):
    patches, _ = run("to_gray,crop_patches", image, True, seed, grayscale_probability=0.5,
                     splits_per_side=3, patch_jitter=1)
    gray = [bool(np.all(p[..., 0] == p[..., 1])) for p in patches]
    assert len(set(gray)) == 1
    decisions.add(gray[0])
  assert decisions == {True, False}


def test_crop_patches_gives_row_major_tiles():
  image = coded_image(6, 9)
  patches, _ = run("crop_patches", image, splits_per_side=3, patch_jitter=0)
  assert patches.shape == (9, 2, 3, 3)
  for i in range(3):
    for j in range(3):
      np.testing.assert_array_equal(patches[3 * i + j], image[2 * i:2 * i + 2, 3 * j:3 * j + 3])


def test_crop_patches_jitter_is_central_in_eval_and_inside_the_cell_in_training():
  image = coded_image(12, 12)
  flags = dict(splits_per_side=3, patch_jitter=2)
  patches, _ = run("crop_patches", image, **flags)
  assert patches.shape == (9, 2, 2, 3)
  for k, patch in enumerate(patches):
    i, j = divmod(k, 3)
    np.testing.assert_array_equal(patch, image[4 * i + 1:4 * i + 3, 4 * j + 1:4 * j + 3])
  offsets = set()
  for seed in range(4):
    patches, _ = run("crop_patches", image, True, seed, **flags)
    for k, patch in enumerate(patches):
      i, j = divmod(k, 3)
      where = find_window(image[4 * i:4 * i + 4, 4 * j:4 * j + 4], patch)
      assert where is not None
      offsets.add(where)
  assert len(offsets) > 1


def test_crop_patches_needs_a_static_size():
  fn = preprocess.get_preprocess_fn("crop_patches", Config.make(), False)
  traced = tf.function(fn, input_signature=[{"image": tf.TensorSpec([None, None, 3], tf.uint8),
                                             "label": tf.TensorSpec([], tf.int32)}])
  with pytest.raises(ValueError, match="known size"):
    traced.get_concrete_function()


def test_standardization_per_image_and_per_patch():
  stack = np.random.RandomState(2).randint(0, 256, (2, 3, 4, 3)).astype(np.uint8)
  stack[1] = 9  # a constant patch: its stddev is floored at 1/sqrt(N)
  out, _ = run("standardization", stack)
  for patch, result in zip(stack.astype(np.float64), out):
    expected = (patch - patch.mean()) / max(patch.std(), 1.0 / np.sqrt(patch.size))
    np.testing.assert_allclose(result, expected, atol=1e-4)


def test_rotate_stacks_the_four_ccw_rotations_with_labels():
  image = coded_image(4, 4)
  rotations, labels = run("rotate", image)
  assert labels.tolist() == [0, 1, 2, 3]
  for k in range(4):
    np.testing.assert_array_equal(rotations[k], np.rot90(image, k))
  with pytest.raises(ValueError, match="square"):
    run("rotate", coded_image(4, 5))


def test_eval_chains_are_deterministic():
  image = np.random.RandomState(3).randint(0, 256, (50, 40, 3)).astype(np.uint8)
  flags = dict(smaller_size=36, crop_size="33", splits_per_side=3, patch_jitter=2,
               grayscale_probability=1.0)
  chain = "resize_small,crop,to_gray,crop_patches,standardization"
  first, _ = run(chain, image, False, **flags)
  second, _ = run(chain, image, False, **flags)
  np.testing.assert_array_equal(first, second)


def test_a_seed_fixes_the_training_randomness():
  image = np.random.RandomState(4).randint(0, 256, (30, 30, 3)).astype(np.uint8)
  chain, flags = "inception_crop,resize,flip_lr,crop", dict(resize_size="20", crop_size="16")
  first, _ = run(chain, image, True, 11, **flags)
  np.testing.assert_array_equal(run(chain, image, True, 11, **flags)[0], first)
  assert not np.array_equal(run(chain, image, True, 12, **flags)[0], first)


def test_unknown_op_lists_the_known_ones():
  with pytest.raises(ValueError) as error:
    preprocess.validate_chain("resize, no_such_op")
  message = str(error.value)
  assert "unknown preprocessing op 'no_such_op' in --preprocessing; known ops:" in message
  assert all(name in message for name in ALL_ORIGINAL_OPS)
  with pytest.raises(ValueError, match="empty op name"):
    preprocess.validate_chain("resize,,crop")
  assert preprocess.validate_chain(" resize , crop ") == ["resize", "crop"]


def test_a_missing_flag_is_named():
  with pytest.raises(ValueError, match="--crop_size"):
    run("crop", coded_image(4, 4))


def test_registered_ops_join_chains_and_names_are_unique():
  @preprocess.register("test_add_one")
  def add_one(data, config, is_training):
    return dict(data, image=tf.cast(data["image"], tf.float32) + 1.0)

  out, _ = run("test_add_one,test_add_one", np.zeros((1, 1, 3), np.uint8))
  assert out.tolist() == [[[2.0, 2.0, 2.0]]]
  with pytest.raises(ValueError, match="already registered"):
    preprocess.register("rotate")(add_one)
