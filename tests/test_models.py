"""Backbones and heads: shapes, end points, parameter counts, padding, BN modes, precision."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfssl.config import Config  # noqa: E402
from tfssl.models import get_net, get_net_for_task  # noqa: E402
from tfssl.models.heads import LinearHead, MLPHead, PatchHead, ProjectionHead  # noqa: E402
from tfssl.models.layers import FixedPaddingConv, FixedPaddingMaxPool  # noqa: E402
from tfssl.models.resnet import BottleneckV1, BottleneckV2  # noqa: E402
from tfssl.models.revnet import PoolAndDoubleChannels, ReversibleUnit  # noqa: E402
from tfssl.models.vgg import ConvBNReLU  # noqa: E402
from tfssl.models.weight_decay import is_decayed  # noqa: E402

RESNET_NAMES = ("after_root", "block1", "block2", "block3", "block4", "pre_logits", "logits")


def _images(size, batch=2, width=None, seed=0):
  return tf.random.stateless_normal([batch, size, width or size, 3], seed=[seed, 1])


def _trainable(model):
  return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def _total(model):
  return int(sum(np.prod(v.shape) for v in model.weights))


def _built(architecture, num_classes, size=32, **kwargs):
  net = get_net(architecture, num_classes, **kwargs)
  net(tf.zeros([1, size, size, 3]))
  return net


_SMALL = {}


def _small(architecture, mode="v2"):
  """A built ff=1, 10-class net, shared by tests that only read it (building dominates runtime)."""
  key = (architecture, mode)
  if key not in _SMALL:
    _SMALL[key] = _built(architecture, 10, filters_factor=1, mode=mode)
  return _SMALL[key]


# ---- hand counts (trainable parameters: kernels, biases, BN gamma and beta) ----

def _bottleneck(cin, cout, project, v2):
  inner = cout // 4
  n = cin * inner + 9 * inner * inner + inner * cout + 2 * (2 * inner)
  n += 2 * cin if v2 else 2 * cout  # v2: pre-activation BN on the input; v1: BN after conv3
  if project:
    n += cin * cout + (0 if v2 else 2 * cout)  # v1 normalises its shortcut
  return n


def _resnet50_count(ff, classes, v2):
  width = 16 * ff
  n = 7 * 7 * 3 * width + (0 if v2 else 2 * width)
  cin, cout = width, 4 * width
  for count in (3, 4, 6, 3):
    for j in range(count):
      n += _bottleneck(cin, cout, project=(j == 0), v2=v2)
      cin = cout
    cout *= 2
  return n + (2 * cin if v2 else 0) + cin * classes + classes


def _revnet50_count(ff, classes):
  c = 64 * ff
  n = 7 * 7 * 3 * c
  for count in (3, 4, 6, 3):
    half, inner = c // 2, c // 8
    unit = 2 * half + half * inner + 2 * inner + 9 * inner * inner + 2 * inner + inner * half
    n += count * unit
    c *= 2
  c //= 2
  return n + 2 * c + c * classes + classes


def _vgg19_count(ff, classes, fc6_side):
  w, cin, n = 8 * ff, 3, 0
  for count, mult in ((2, 1), (2, 2), (4, 4), (4, 8), (4, 8)):
    for _ in range(count):
      n += 9 * cin * mult * w + 2 * mult * w
      cin = mult * w
  fc = 512 * ff
  n += fc6_side * fc6_side * cin * fc + 2 * fc + fc * fc + 2 * fc
  return n + fc * classes + classes


# ---- parameter counts ----

def test_resnet50_v2_count_matches_hand_count_and_keras_reference():
  net = _built("resnet50", 1000)
  assert _trainable(net) == _resnet50_count(4, 1000, v2=True) == 25_549_352
  # Keras' ResNet50V2 is the same pre-activation graph except that its stem conv, shortcuts and
  # last 1x1 of each unit carry biases (its stride placement differs, which changes no count).
  reference = keras.applications.ResNet50V2(weights=None)
  conv_biases = sum(int(np.prod(l.bias.shape)) for l in reference.layers
                    if isinstance(l, keras.layers.Conv2D) and l.use_bias)
  assert _total(net) == reference.count_params() - conv_biases


def test_resnet50_v1_count_matches_torchvision_and_keras_reference():
  net = _built("resnet50", 1000, mode="v1")
  # torchvision.models.resnet50(): 25,557,032 parameters (no conv biases, BN after every conv).
  assert _trainable(net) == _resnet50_count(4, 1000, v2=False) == 25_557_032
  reference = keras.applications.ResNet50(weights=None)
  conv_biases = sum(int(np.prod(l.bias.shape)) for l in reference.layers
                    if isinstance(l, keras.layers.Conv2D) and l.use_bias)
  assert _total(net) == reference.count_params() - conv_biases


def test_small_resnet_counts_match_the_well_known_ones():
  # kuangliu/pytorch-cifar ResNet18: 11,173,962; torchvision resnet18: 11,689,512;
  # kuangliu ResNet50 (CIFAR stem): 23,520,842.
  assert _trainable(_built("cifar_resnet18", 10)) == 11_173_962
  assert _trainable(_built("resnet18", 1000)) == 11_689_512
  assert _trainable(_built("cifar_resnet50", 10)) == 23_520_842


def test_revnet50_count_matches_hand_count():
  net = _built("revnet50", 1000, filters_factor=2)
  assert _trainable(net) == _revnet50_count(2, 1000)
  assert net.feature_dim == 1024


def test_vgg19_count_matches_hand_count_with_fc6_over_the_remaining_map():
  net = _built("vgg19", 1000, size=32)  # 32 px leaves a 1x1 map for fc6
  assert _trainable(net) == _vgg19_count(8, 1000, fc6_side=1)
  small = _built("vgg19", 10, size=64, filters_factor=1)
  assert small.fc6.conv.kernel.shape == (2, 2, 64, 512)
  assert _trainable(small) == _vgg19_count(1, 10, fc6_side=2)
  # At 224 px the formula gives Keras' VGG19 (143,667,240) with its 5,504 conv biases and 8,192
  # fc6/fc7 biases replaced by BN gamma/beta on 5,504 + 8,192 channels.
  assert _vgg19_count(8, 1000, fc6_side=7) == 143_667_240 - 5_504 - 8_192 + 2 * (5_504 + 8_192)


# ---- shapes and end points ----

@pytest.mark.parametrize("architecture,kwargs,dims", [
    ("resnet50", dict(mode="v1"), (16, 16, 8, 4, 2)),
    ("resnet50", dict(mode="v2"), (16, 16, 8, 4, 2)),
    ("revnet50", {}, (16, 16, 8, 4, 2)),
    ("resnet18", {}, (16, 16, 8, 4, 2)),
    ("cifar_resnet18", {}, (64, 64, 32, 16, 8)),
    ("cifar_resnet50", {}, (64, 64, 32, 16, 8)),
])
def test_resnet_family_end_points_at_64px(architecture, kwargs, dims):
  net = _small(architecture, **kwargs)  # built at 32 px: the nets take any input size
  out, ends = net(_images(64), training=False)
  assert net.end_point_names == RESNET_NAMES
  assert tuple(ends) == RESNET_NAMES
  assert [ends[k].shape[1] for k in RESNET_NAMES[:5]] == list(dims)
  assert ends["block4"].shape[-1] == net.feature_dim
  assert ends["pre_logits"].shape == (2, net.feature_dim)
  assert out.shape == (2, 10)
  np.testing.assert_array_equal(out.numpy(), ends["logits"].numpy())


def test_patch_variant_keeps_resolution_as_the_original():
  config = Config.make(architecture="resnet50", filters_factor=1)
  _, ends = get_net_for_task(config, 1000, patch=True)(_images(64, batch=1))
  assert [ends[k].shape[1] for k in RESNET_NAMES[:5]] == [32, 32, 16, 8, 8]
  revnet = get_net_for_task(config.replace(architecture="revnet50"), 10, patch=True)
  _, ends = revnet(_images(64, batch=1))
  assert [ends[k].shape[1] for k in RESNET_NAMES[:5]] == [32, 32, 16, 8, 8]


def test_root_conv_stride_flag_halves_the_stems_stride_and_keeps_the_weights():
  """--root_conv_stride=1 on resnet18 at Fashion-MNIST's 28 px: the 7x7 conv keeps 28, the pool
  halves it (14, 14, 7, 4, 2), where the default stem gives 7, 7, 4, 2, 1; the same variables."""
  config = Config.make(architecture="resnet18", filters_factor=1)
  default_net = get_net_for_task(config, None)
  _, ends = default_net(_images(28, batch=1))
  assert [ends[k].shape[1] for k in RESNET_NAMES[:5]] == [7, 7, 4, 2, 1]
  stride1_net = get_net_for_task(config.replace(root_conv_stride=1), None)
  _, ends = stride1_net(_images(28, batch=1))
  assert [ends[k].shape[1] for k in RESNET_NAMES[:5]] == [14, 14, 7, 4, 2]
  assert [v.shape for v in stride1_net.weights] == [v.shape for v in default_net.weights]
  # Given on a patch net it wins over the patch variant's own stride 1.
  patch = get_net_for_task(Config.make(architecture="resnet50", filters_factor=1,
                                       root_conv_stride=2), None, patch=True)
  _, ends = patch(_images(64, batch=1))
  assert [ends[k].shape[1] for k in RESNET_NAMES[:5]] == [16, 16, 8, 4, 4]


def test_vgg19_end_points_and_any_input_size():
  net = get_net("vgg19", 5, filters_factor=1)
  out, ends = net(_images(64, width=96))
  assert net.end_point_names == ("block1", "block2", "block3", "block4", "block5", "fc6",
                                 "pre_logits", "logits")
  assert tuple(ends) == net.end_point_names
  assert [ends["block%d" % i].shape[1:3] for i in range(1, 6)] == [
      (64, 96), (32, 48), (16, 24), (8, 12), (4, 6)]
  assert ends["fc6"].shape == (2, 1, 1, 512)
  assert ends["pre_logits"].shape == (2, 512) and net.feature_dim == 512
  assert out.shape == (2, 5)
  with pytest.raises(ValueError, match="known size"):
    ConvBNReLU(4, None, name="fc6").build((None, None, None, 8))


def test_built_nets_trace_for_any_image_size():
  # The export serves `None,None,None,3`: once built, nothing may depend on the static size.
  for net in (_small("vgg19"), _small("revnet50")):
    traced = tf.function(net.call, input_signature=[tf.TensorSpec([None, None, None, 3])])
    out, ends = traced(_images(64))
    assert out.shape == (2, 10) and ends["pre_logits"].shape == (2, net.feature_dim)


def test_without_num_classes_the_output_is_pre_logits():
  for architecture in ("vgg19", "cifar_resnet18"):
    net = get_net(architecture, None, filters_factor=1)
    out, ends = net(_images(32))
    assert "logits" not in ends and net.end_point_names[-1] == "pre_logits"
    np.testing.assert_array_equal(out.numpy(), ends["pre_logits"].numpy())


def test_logits_are_a_biased_linear_map_of_mean_pooled_features():
  net = _small("resnet50", mode="v1")
  bias = np.linspace(-1.0, 2.0, 10).astype(np.float32)
  net.logits_layer.bias.assign(bias)
  out, ends = net(_images(32, seed=3))
  pooled = ends["block4"].numpy().mean(axis=(1, 2))  # v1 ends with the unit's ReLU
  np.testing.assert_allclose(ends["pre_logits"].numpy(), pooled, rtol=1e-5, atol=1e-6)
  kernel = net.logits_layer.kernel.numpy()[0, 0]
  expected = pooled @ kernel + bias
  np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_v2_final_bn_and_last_relu():
  inputs = _images(32)
  for last_relu in (True, False):
    net = _small("resnet50") if last_relu else get_net("resnet50", None, filters_factor=1,
                                                      last_relu=False)
    _, ends = net(inputs, training=False)
    out = ends["pre_logits"]
    # Fresh BN in inference: x / sqrt(1 + 1e-3).
    final = ends["block4"].numpy() / np.sqrt(1 + 1e-3)
    if last_relu:
      final = np.maximum(final, 0)
    np.testing.assert_allclose(out.numpy(), final.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)
  assert out.numpy().min() < 0  # without the last ReLU pre_logits can be negative


def test_v1_without_last_relu_raises():
  with pytest.raises(ValueError, match="last_relu"):
    get_net("resnet50", 10, mode="v1", last_relu=False)
  with pytest.raises(ValueError, match="last_relu"):
    get_net("cifar_resnet18", 10, last_relu=False)


def test_factory_knows_every_architecture_the_flags_accept():
  from tfssl.config import flag_spec
  from tfssl.models import ARCHITECTURES
  assert set(ARCHITECTURES) == set(flag_spec("architecture").allowed())


def test_unknown_architecture_and_mode_raise():
  with pytest.raises(ValueError, match="cifar_resnet18"):
    get_net("resnet101", 10)
  with pytest.raises(ValueError, match="v3"):
    get_net("resnet50", 10, mode="v3")


def test_default_filters_factor_is_vanilla():
  assert get_net("resnet50", None).feature_dim == 2048
  assert get_net("vgg19", None).feature_dim == 4096
  assert get_net("cifar_resnet18", None).feature_dim == 512
  assert get_net_for_task(Config.make(architecture="revnet50"), None).feature_dim == 2048


# ---- the original's layer details ----

def _window_sums(x, kernel, stride, before, after):
  """Sum over each kernel window of the zero-padded input: a conv with an all-ones kernel."""
  padded = np.pad(x, ((before, after), (before, after)))
  out = (padded.shape[0] - kernel) // stride + 1
  return np.array([[padded[i * stride:i * stride + kernel, j * stride:j * stride + kernel].sum()
                    for j in range(out)] for i in range(out)])


@pytest.mark.parametrize("size", [6, 7])
def test_strided_conv_uses_the_originals_fixed_padding(size):
  conv = FixedPaddingConv(1, 7, strides=2)
  x = np.arange(size * size, dtype=np.float32).reshape(size, size)
  conv(x[None, :, :, None])
  conv.conv.kernel.assign(np.ones((7, 7, 1, 1), np.float32))
  got = conv(x[None, :, :, None]).numpy()[0, :, :, 0]
  np.testing.assert_allclose(got, _window_sums(x, 7, 2, 3, 3))
  assert got.shape == ((size + 6 - 7) // 2 + 1,) * 2
  if size == 6:  # Keras 'same' would pad (2, 3) here, a window one pixel to the left and up
    assert not np.allclose(got, _window_sums(x, 7, 2, 2, 3))
  # The first window starts 3 pixels before the image, so it holds rows and columns 0..3.
  assert got[0, 0] == x[:4, :4].sum()


def test_root_max_pool_pads_with_zeros():
  pooled = FixedPaddingMaxPool(3, 2)(-np.ones((1, 4, 4, 1), np.float32)).numpy()[0, :, :, 0]
  np.testing.assert_array_equal(pooled, [[0, 0], [0, -1]])


def test_v1_stride_sits_on_the_3x3_conv():
  unit = BottleneckV1(16, strides=2, project=True)
  assert unit.conv1.strides == (1, 1) and unit.conv2.strides == 2
  assert unit.shortcut.strides == (2, 2)
  assert unit(tf.ones([1, 8, 8, 4])).shape == (1, 4, 4, 16)


def test_v2_projection_reads_the_pre_activated_input():
  unit = BottleneckV2(4, strides=1, project=True)
  x = -np.abs(np.random.RandomState(0).randn(1, 5, 5, 2).astype(np.float32))
  unit(x)
  unit.conv3.kernel.assign(np.zeros_like(unit.conv3.kernel.numpy()))  # residual branch -> 0
  unit.shortcut.kernel.assign(np.ones_like(unit.shortcut.kernel.numpy()))
  # relu(BN(x)) of a negative input is 0, so the shortcut sees zeros; on raw x it would not.
  np.testing.assert_array_equal(unit(x, training=False).numpy(), 0)
  positive = -x
  expected = (positive / np.sqrt(1 + 1e-3)).sum(axis=-1, keepdims=True) * np.ones((1, 1, 1, 4))
  np.testing.assert_allclose(unit(positive, training=False).numpy(), expected, rtol=1e-5)


def test_reversible_unit_passes_x2_through_and_adds_to_x1():
  unit = ReversibleUnit(8)
  x = tf.random.stateless_normal([2, 4, 4, 8], seed=[7, 8]).numpy()
  y = unit(x).numpy()
  np.testing.assert_array_equal(y[..., :4], x[..., 4:])
  residual = unit.residual(x[..., 4:]).numpy()
  np.testing.assert_allclose(y[..., 4:], x[..., :4] + residual, rtol=1e-6)


def test_pool_and_double_channels_zero_pads_both_sides():
  x = np.arange(32, dtype=np.float32).reshape(1, 4, 4, 2)
  y = PoolAndDoubleChannels(2)(x).numpy()
  assert y.shape == (1, 2, 2, 4)
  np.testing.assert_array_equal(y[..., 0], 0)
  np.testing.assert_array_equal(y[..., 3], 0)
  np.testing.assert_allclose(y[0, 0, 0, 1:3], x[0, :2, :2].mean(axis=(0, 1)))


def test_revnet_stem_is_exempt_from_weight_decay_like_the_original():
  net = _small("revnet50")
  assert [v.path for v in net.no_weight_decay_variables()] == ["revnet50/root_conv/conv/kernel"]
  assert get_net("resnet50", None).no_weight_decay_variables() == []


# ---- BN behaviour, weight-decay names, global BN, precision ----

def test_training_flag_switches_batch_norm_mode():
  net = get_net("cifar_resnet18", 4, filters_factor=1)
  images = _images(32, batch=4) * 3.0 + 1.0
  infer1, _ = net(images, training=False)
  infer2, _ = net(images, training=False)
  np.testing.assert_array_equal(infer1.numpy(), infer2.numpy())
  moving = net.root_bn.moving_mean.numpy().copy()
  train, _ = net(images, training=True)
  assert not np.allclose(train.numpy(), infer1.numpy(), atol=1e-3)
  assert not np.allclose(net.root_bn.moving_mean.numpy(), moving)  # statistics were updated
  after, _ = net(images, training=False)
  assert not np.allclose(after.numpy(), infer1.numpy())


@pytest.mark.parametrize("architecture", ["resnet50", "revnet50", "vgg19", "cifar_resnet18"])
def test_variable_names_let_weight_decay_pick_kernels_only(architecture):
  net = _small(architecture)
  for v in net.trainable_weights:
    name = v.path.split("/")[-1]
    assert name in ("kernel", "bias", "gamma", "beta"), v.path
    assert is_decayed(v) == (name == "kernel"), v.path


def _batch_norms(layer):
  return [l for l in layer._flatten_layers(include_self=False)
          if isinstance(l, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("architecture", ["resnet50", "revnet50", "vgg19", "cifar_resnet50"])
def test_global_bn_synchronizes_every_batch_norm(architecture):
  # Every BN layer exists once the net is constructed; calling it is left to the test below.
  for global_bn in (False, True):
    norms = _batch_norms(get_net(architecture, 10, filters_factor=1, global_bn=global_bn))
    assert len(norms) > 10 and all(n.synchronized == global_bn for n in norms)


def test_synchronized_batch_norm_trains_like_local_batch_norm_on_one_replica():
  local = get_net("cifar_resnet18", 10, filters_factor=1)
  synced = get_net("cifar_resnet18", 10, filters_factor=1, global_bn=True)
  images = _images(32)
  local(images)
  synced(images)
  synced.set_weights(local.get_weights())
  a, _ = local(images, training=True)
  b, _ = synced(images, training=True)
  np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_heads_take_global_bn_too():
  heads = (PatchHead(3, global_bn=True), MLPHead(8, 4, global_bn=True),
           ProjectionHead(2, 8, 4, global_bn=True))
  for head in heads:
    head(tf.ones([2, 6]), training=True)
    assert all(n.synchronized for n in _batch_norms(head))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_logits_and_pre_logits_float32(policy):
  keras.mixed_precision.set_global_policy(policy)
  try:
    net = get_net("cifar_resnet18", 10, filters_factor=1)
    out, ends = net(_images(32), training=True)
    head_out = PatchHead(5)(ends["pre_logits"], training=True)
    proj, _ = ProjectionHead(2, 8, 4)(ends["pre_logits"], training=True)
    compute = keras.mixed_precision.Policy(policy).compute_dtype
  finally:
    keras.mixed_precision.set_global_policy("float32")
  assert ends["block1"].dtype == compute  # the policy does apply inside the net
  assert net.root_conv.conv.kernel.dtype == "float32"
  for tensor in (out, ends["logits"], ends["pre_logits"], head_out, proj):
    assert tensor.dtype == tf.float32


# ---- heads ----

def test_patch_head_initialisation_and_shapes():
  head = PatchHead(100)
  x = tf.random.stateless_normal([4, 2000], seed=[1, 2])
  out = head(x, training=False)
  assert out.shape == (4, 100)
  kernel = head.fc7.kernel.numpy()
  assert kernel.shape == (2000, 4096)
  assert np.abs(kernel).max() <= 0.01 + 1e-7  # truncated at two standard deviations
  assert 0.0040 < kernel.std() < 0.0048  # 0.005 * 0.88, the std of a 2-sigma truncated normal
  np.testing.assert_array_equal(head.fc7.bias.numpy(), np.float32(0.1))
  np.testing.assert_array_equal(head.fc8.bias.numpy(), 0.0)
  assert head.bn.momentum == 0.997 and head.bn.epsilon == 1e-5
  # Inference is deterministic and equals the hand computation (dropout off, fresh BN).
  hidden = np.maximum((x.numpy() @ kernel + 0.1) / np.sqrt(1 + 1e-5), 0)
  np.testing.assert_allclose(out.numpy(), hidden @ head.fc8.kernel.numpy(), rtol=1e-4, atol=1e-6)
  a, b = head(x, training=True), head(x, training=True)
  assert not np.allclose(a.numpy(), b.numpy())  # dropout is active in training


def test_projection_head_matches_simclr_by_hand():
  head = ProjectionHead(num_layers=3, hidden_dim=None, out_dim=4)
  x = tf.random.stateless_normal([5, 6], seed=[3, 4])
  out, hiddens = head(x, training=False)
  assert len(hiddens) == 4 and out.shape == (5, 4)
  np.testing.assert_array_equal(hiddens[0].numpy(), x.numpy())
  kernels = [d.kernel.numpy() for d in head.dense_layers]
  assert [k.shape for k in kernels] == [(6, 6), (6, 6), (6, 4)]  # hidden width = input width
  assert all(not d.use_bias for d in head.dense_layers)
  assert [n.center for n in head.norm_layers] == [True, True, False]
  scale = np.sqrt(1 + 1e-5)
  h = x.numpy()
  for i, kernel in enumerate(kernels):
    h = h @ kernel / scale
    if i < 2:
      h = np.maximum(h, 0)
    np.testing.assert_allclose(hiddens[i + 1].numpy(), h, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(out.numpy(), h, rtol=1e-4, atol=1e-7)
  assert out.numpy().min() < 0  # no ReLU after the last layer
  none_out, none_hiddens = ProjectionHead(num_layers=0, out_dim=4)(x)
  np.testing.assert_array_equal(none_out.numpy(), x.numpy())
  assert len(none_hiddens) == 1


def test_mlp_and_linear_heads_by_hand():
  x = tf.random.stateless_normal([3, 5], seed=[5, 6])
  mlp = MLPHead(7, 2)
  out = mlp(x, training=False).numpy()
  hidden = np.maximum((x.numpy() @ mlp.hidden.kernel.numpy()) / np.sqrt(1 + 1e-3), 0)
  np.testing.assert_allclose(out, hidden @ mlp.out.kernel.numpy(), rtol=1e-4, atol=1e-6)
  linear = LinearHead(4)
  out = linear(x).numpy()
  linear.dense.bias.assign([1.0, 2.0, 3.0, 4.0])
  np.testing.assert_allclose(linear(x).numpy(), out + [1.0, 2.0, 3.0, 4.0], rtol=1e-6)


# One of each net class (cifar_resnet50 is the SmallResNet of cifar_resnet18 and resnet18).
@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["resnet50", "revnet50", "vgg19", "cifar_resnet18", "resnet18"])
def test_every_net_keeps_the_blocks_convention_fine_tuning_reads(architecture, tmp_path):
  """models/export_graph.py: stages in order in `blocks`, the stem in root_conv/root_bn. Through a
  saved export's object graph, as fine-tuning reads it, every variable falls in the stem, one
  block, or after the blocks, and block i holds exactly the variables of net.blocks[i - 1]."""
  from tfssl.models import ARCHITECTURES
  from tfssl.models.export import ExportModule, load_export, save_export
  from tfssl.models.export_graph import AFTER_BLOCKS, block_of_paths, variable_paths
  assert architecture in ARCHITECTURES
  net = get_net(architecture, 10, filters_factor=1)
  size = 64 if architecture == "vgg19" else 32
  net(_images(size))
  assert isinstance(net.blocks, list) and len(net.blocks) == (5 if architecture == "vgg19" else 4)
  loaded = load_export(save_export(ExportModule(net, input_shape=(None, size, size, 3)),
                                   str(tmp_path / "export"))).module
  paths = variable_paths(loaded)
  counts = {}
  for v in loaded.variable_list:
    place = block_of_paths(paths[v.ref()])
    counts[place] = counts.get(place, 0) + 1
  assert set(counts) - {0, AFTER_BLOCKS} == set(range(1, len(net.blocks) + 1)), sorted(counts)
  assert (0 in counts) == (architecture != "vgg19")  # the stem (VGG's first block is its stem)
  for i, block in enumerate(net.blocks):
    assert counts[i + 1] == len(block.variables), (i, counts)
