"""Every flagfile in flags/: it parses as `train_and_eval --flagfile` would read it, builds a Config
that the entry point accepts, names its source in its header, and, for the files that claim an
original config, sets exactly what that original ran."""

import re
import pathlib

import numpy as np
import pytest

from tfssl.config import ALL_FLAGS, Config
from tfssl.tasks import task_names

REPO = pathlib.Path(__file__).resolve().parent.parent
FLAGFILES = sorted(str(p.relative_to(REPO / "flags")) for p in (REPO / "flags").glob("*/*.cfg"))

# The Revisiting originals (config/*/imagenet.sh of google/revisiting-self-supervised), flag for flag, with what the TPU run implied: BatchNorm
# per core (--noglobal_bn), float32 (said explicitly, as every config that reproduces an original
# does) and, for exemplar, the original's normalisation axis 0.
_REVISITING = dict(dataset="imagenet", train_split="train", val_split="val", lr=0.1,
                   lr_scale_batch_size=256, decay_epochs="15,25", epochs=35, warmup_epochs=5,
                   global_bn=False, precision="fp32")
_PATCHES = dict(_REVISITING, batch_size=128, eval_batch_size=8, architecture="resnet50",
                filters_factor=8, last_relu=True, mode="v1",
                preprocessing="resize,to_gray,crop,crop_patches,standardization",
                resize_size="292,292", crop_size="255", grayscale_probability=0.66,
                splits_per_side=3, patch_jitter=21, embed_dim=1000,
                serving_input_shape="None,64,64,3")
ORIGINALS = {
    "rotation/imagenet.cfg": dict(
        _REVISITING, task="rotation", batch_size=64, eval_batch_size=16, architecture="revnet50",
        filters_factor=16, last_relu=True, preprocessing="inception_preprocess,rotate",
        resize_size="224,224", serving_input_shape="None,224,224,3"),
    "exemplar/imagenet.cfg": dict(
        _REVISITING, task="exemplar", batch_size=64, eval_batch_size=16, architecture="resnet50",
        filters_factor=12, last_relu=True, mode="v1",
        preprocessing="to_gray,crop_inception_preprocess_patches,standardization",
        resize_size="224,224", grayscale_probability=0.66, embed_dim=1000, margin=0.5,
        exemplar_norm_axis=0, num_of_inception_patches=8, serving_input_shape="None,224,224,3"),
    "jigsaw/imagenet.cfg": dict(_PATCHES, task="jigsaw"),
    "relative_patch_location/imagenet.cfg": dict(_PATCHES, task="relative_patch_location"),
}
# The settings of the contrastive originals that differ from tfssl's defaults, and must be set.
CONTRASTIVE = {
    # SimCLR v2's TF2 README command with its code's defaults (google-research/simclr, tf2/README.md).
    "simclr/imagenet.cfg": dict(
        batch_size=4096, epochs=100, temperature=0.1, lr=0.075, learning_rate_scaling="sqrt",
        weight_decay=1e-4, optimizer="lars", num_proj_layers=3, lr_schedule="cosine",
        warmup_epochs=10, bn_momentum=0.9, bn_epsilon=1e-5, bn_zero_init_residual=True,
        conv_kernel_init="variance_scaling", global_bn=True, mode="v1", precision="fp32"),
    # main_swav.py with scripts/swav_800ep_pretrain.sh (facebookresearch/swav).
    "swav/imagenet.cfg": dict(
        batch_size=4096, epochs=800, optimizer="larc", lr=4.8, weight_decay=1e-6,
        warmup_epochs=10, start_warmup=0.3, final_lr=0.0048, lr_schedule="cosine",
        bn_momentum=0.9, bn_epsilon=1e-5, bn_zero_init_residual=False,
        conv_kernel_init="kaiming_fan_out", freeze_prototypes_niters=313, mode="v1",
        precision="mixed_float16"),
}


@pytest.mark.parametrize("name", FLAGFILES)
def test_every_flagfile_names_its_precision_and_its_header_says_why(name):
  """The CPU-sized configs pick the hardware's format (--precision=auto); the ones that reproduce
  an original say its precision (issue 29)."""
  text = (REPO / "flags" / name).read_text()
  given = read_flagfile(REPO / "flags" / name)
  assert "precision" in given, name
  assert re.search(r"^# Precision: ", text, re.M), name
  if name.split("/")[1].startswith("fashion_mnist"):
    assert given["precision"] == "auto", name
  else:
    assert given["precision"] in ("fp32", "mixed_float16", "mixed_bfloat16"), name


def read_flagfile(path):
  """{name: value string} of an absl flagfile (one --name=value, --name or --noname a line)."""
  known = {spec.name for spec in ALL_FLAGS}
  flags = {}
  for line in pathlib.Path(path).read_text().splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
      continue
    name, equals, value = line[2:].partition("=")
    if not equals:  # a boolean: --name is true, --noname false
      negated = name.startswith("no") and name[2:] in known
      name, value = (name[2:], "false") if negated else (name, "true")
    flags[name] = value
  return flags


def header(path):
  lines = pathlib.Path(path).read_text().splitlines()
  out = []
  for line in lines:
    if not line.startswith("#"):
      break
    out.append(line)
  return "\n".join(out)


@pytest.mark.parametrize("name", FLAGFILES)
def test_flagfile_parses_builds_a_valid_config_and_names_its_source(name, fashion_mnist_dir):
  from tfssl.tools.experiment import config_from_flagfile
  from tfssl.train_and_eval import validate
  path = REPO / "flags" / name
  text = header(path)
  # An original's file names the repository or file it follows; tfssl's own CPU configs say so.
  names_source = re.search(r"\boriginal\b|\bseed\b|[\w-]+/[\w-]+\.(sh|py|md)|[\w-]+/[\w-]+\)", text)
  assert names_source or "sized for a 2-core CPU" in text, (name, text)
  overrides = dict(workdir="/unused", dataset_dir=fashion_mnist_dir)
  if name.split("/")[0] in ("evaluation", "finetune"):
    overrides["hub_module"] = "/unused/export/1"
  config = config_from_flagfile(str(path), **overrides)
  validate(config)
  assert config.task in task_names()
  folder = name.split("/")[0]
  if folder not in ("evaluation",):
    assert config.task == folder, (name, config.task)
  if name.endswith("fashion_mnist.cfg"):
    assert config.dataset == "fashion_mnist"


def test_every_original_and_contrastive_expectation_names_an_existing_file():
  assert set(ORIGINALS) | set(CONTRASTIVE) <= set(FLAGFILES)


@pytest.mark.parametrize("name", sorted(ORIGINALS))
def test_revisiting_flagfile_is_the_original_config(name):
  given = read_flagfile(REPO / "flags" / name)
  expected = ORIGINALS[name]
  assert set(given) == set(expected), set(given) ^ set(expected)
  config = Config.make(**given)
  assert {k: getattr(config, k) for k in expected} == expected


@pytest.mark.parametrize("name", sorted(CONTRASTIVE))
def test_contrastive_flagfile_sets_the_original_recipe(name):
  from tfssl.tools.experiment import config_from_flagfile
  config = config_from_flagfile(str(REPO / "flags" / name), workdir="/unused", dataset_dir="/unused")
  expected = CONTRASTIVE[name]
  assert {k: getattr(config, k) for k in expected} == expected


def _last_batch_norms_of_blocks(net):
  """The BatchNorm that ends each residual branch of a post-activation ResNet (bn3 / bn2)."""
  import keras
  out = []
  for block in net.blocks:
    for unit in block.members:
      last = getattr(unit, "bn3", None) or unit.bn2
      assert isinstance(last, keras.layers.BatchNormalization)
      out.append(last)
  return out


@pytest.mark.parametrize("name, zero_gammas, momentum, epsilon, init_scale", [
    ("simclr/imagenet.cfg", True, 0.9, 1e-5, 1.0),
    ("swav/imagenet.cfg", False, 0.9, 1e-5, 2.0),
    ("rotation/imagenet.cfg", False, 0.99, 1e-3, None),
])
def test_flagfile_builds_the_original_batch_norm_and_init(name, zero_gammas, momentum, epsilon,
                                                          init_scale):
  import keras
  import tensorflow as tf
  from tfssl.models import get_net_for_task
  from tfssl.tools.experiment import config_from_flagfile
  # The flagfile's net at width 1 (the BatchNorm and init choices do not depend on the width).
  config = config_from_flagfile(str(REPO / "flags" / name), workdir="/unused",
                                dataset_dir="/unused", filters_factor=1)
  net = get_net_for_task(config, None)
  net(tf.zeros([1, 64, 64, 3]), training=False)
  norms = [l for l in net._flatten_layers(include_self=False)
           if isinstance(l, keras.layers.BatchNormalization)]
  assert norms and all(n.momentum == momentum and n.epsilon == epsilon for n in norms)
  if config.architecture != "revnet50":
    ends = {id(n) for n in _last_batch_norms_of_blocks(net)}
    assert len(ends) == 16  # ResNet-50: 3 + 4 + 6 + 3 bottlenecks
    for n in norms:
      gamma = n.gamma.numpy()
      if id(n) in ends and zero_gammas:
        assert np.all(gamma == 0.0), n.path
      else:
        assert np.all(gamma == 1.0), n.path
  if init_scale is not None:
    # The stem's 7x7x3 -> 16 kernel, VarianceScaling std sqrt(scale / fan): SimCLR's fan_in = 147
    # from a normal truncated at 2 of its own stds, torchvision's fan_out = 7 * 7 * 16 = 784 from an
    # untruncated one. (Glorot-uniform would give std 0.046 and no tails.)
    kernel = net.root_conv.conv.kernel.numpy().ravel()
    fan = 7 * 7 * 3 if init_scale == 1.0 else 7 * 7 * 16
    std = np.sqrt(init_scale / fan)
    assert abs(kernel.std() / std - 1.0) < 0.05, (kernel.std(), std)
    if name.startswith("simclr"):
      assert np.abs(kernel).max() <= 2.0 * std / 0.87962566 + 1e-6
    else:
      kurtosis = np.mean((kernel - kernel.mean()) ** 4) / kernel.var() ** 2
      assert kurtosis > 2.6, kurtosis  # a normal's 3; uniform 1.8


def test_zero_init_residual_needs_a_post_activation_net():
  from tfssl.models import get_net
  with pytest.raises(ValueError, match="bn_zero_init_residual"):
    get_net("resnet50", None, mode="v2", zero_init_residual=True)
  with pytest.raises(ValueError, match="conv_kernel_init"):
    get_net("resnet50", None, kernel_init="xavier")


def test_shipped_configs_are_named_task_slash_dataset():
  from tfssl import flagfiles
  from tfssl.config import config_from_flagfile
  assert flagfiles.names() == sorted(name[:-len(".cfg")] for name in FLAGFILES)
  path = str(REPO / "tfssl" / "flags" / "simclr" / "imagenet.cfg")
  for name in ("simclr/imagenet", "simclr/imagenet.cfg", "flags/simclr/imagenet.cfg"):
    assert flagfiles.path_of(name) == path
  assert flagfiles.path_of("../simclr/imagenet") is None and flagfiles.path_of("simclr") is None
  assert flagfiles.resolve(__file__) == __file__  # a path that exists is taken as it is
  with pytest.raises(ValueError, match="--list_configs"):
    flagfiles.resolve("simclr/nope")
  config = config_from_flagfile("simclr/fashion_mnist", workdir="/unused", dataset_dir="/unused")
  assert config.task == "simclr" and config.dataset == "fashion_mnist"
  assert flagfiles.summary("simclr/imagenet").startswith("SimCLR v2's ImageNet pretraining")


def test_config_and_flagfile_names_become_flagfiles_or_one_line(capsys):
  from tfssl import flagfiles
  from tfssl.train_and_eval import with_packaged_configs
  path = flagfiles.path_of("rotation/fashion_mnist")
  assert with_packaged_configs(["x", "--config=rotation/fashion_mnist", "--lr=1"]) == [
      "x", "--flagfile=" + path, "--lr=1"]
  assert with_packaged_configs(["x", "--config", "rotation/fashion_mnist"]) == [
      "x", "--flagfile=" + path]
  assert with_packaged_configs(["x", "--flagfile=rotation/fashion_mnist"]) == [
      "x", "--flagfile=" + path]
  for bad in (["x", "--config=rotation/nope"], ["x", "--flagfile=/no/such.cfg"]):
    with pytest.raises(SystemExit) as exit_info:
      with_packaged_configs(bad)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfssl: error: --") and (
        "--list_configs" in lines[0])
