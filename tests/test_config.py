"""Config: effective defaults of the original flags and parsing of the list-valued flags."""

import pytest
from absl import flags

from tfssl.config import ALL_FLAGS, Config, define_flags


def test_original_effective_defaults():
  c = Config.make(task="rotation", architecture="resnet50", batch_size=64)
  assert c.filters_factor == 4 and c.mode == "v2" and c.last_relu is True
  assert c.weight_decay == 1e-4 and c.eval_batch_size == 64
  assert c.save_checkpoints_secs == 600 and c.keep_checkpoint_every_n_hours == 4
  assert c.serving_input_key == "image" and c.serving_shape == [None, None, None, 3]
  assert (c.train_split, c.val_split, c.pool_mode, c.combine_patches) == ("train", "val", "adaptive_max", "avg_pool")
  assert (c.embed_dim, c.perm_subset_size, c.patch_jitter, c.optimizer) == (1000, 8, 0, "sgd")


def test_architecture_and_task_dependent_defaults():
  assert Config.make(architecture="vgg19").filters_factor == 8
  assert Config.make(task="linear_eval").weight_decay == 0.0


def test_parsed_sizes_and_decay_epochs():
  c = Config.make(crop_size="32", resize_size="128,64", decay_epochs="15,25", epochs=35)
  assert c.crop_hw == (32, 32) and c.resize_hw == (128, 64) and c.decay_epoch_list == (15.0, 25.0)
  assert Config.make(epochs=35).decay_epoch_list == (35,)
  with pytest.raises(ValueError):
    Config.make(crop_size="1,2,3").crop_hw


def test_unknown_field_is_an_error():
  with pytest.raises(ValueError, match="unknown config field"):
    Config.make(no_such_flag=1)


def test_every_original_flag_is_defined():
  fv = define_flags(flags.FlagValues())
  original = ["workdir", "num_gpus", "use_tpu", "run_eval", "tpu_worker_name", "dataset", "dataset_dir",
              "eval_batch_size", "keep_checkpoint_every_n_hours", "random_seed", "save_checkpoints_secs",
              "serving_input_key", "serving_input_shape", "signature", "task", "train_split", "val_split",
              "embed_dim", "margin", "num_of_inception_patches", "patch_jitter", "perm_subset_size",
              "splits_per_side", "eval_model", "hub_module", "pool_mode", "combine_patches", "architecture",
              "filters_factor", "last_relu", "mode", "batch_size", "decay_epochs", "epochs",
              "lr_decay_factor", "lr", "lr_scale_batch_size", "optimizer", "warmup_epochs", "weight_decay",
              "crop_size", "grayscale_probability", "preprocessing", "randomize_resize_method",
              "resize_size", "smaller_size"]
  assert len(original) == 46
  for name in original:
    assert name in fv, name
  assert len({s.name for s in ALL_FLAGS}) == len(ALL_FLAGS)
  fv(["prog", "--task=jigsaw", "--crop_size=255", "--batch_size=8"])
  c = Config.from_flags(fv)
  assert c.task == "jigsaw" and c.crop_hw == (255, 255) and c.eval_batch_size == 8


def test_fresh_flag_values_do_not_share_state():
  """define_flags on a new FlagValues must not fall back to the global one (an empty FlagValues
  is falsy): two parses in one process would otherwise leak values into each other."""
  first = define_flags(flags.FlagValues())
  first(["prog", "--task=simclr", "--architecture=cifar_resnet18", "--workdir=/first"])
  second = define_flags(flags.FlagValues())
  second(["prog", "--task=jigsaw"])
  assert first is not second and first is not flags.FLAGS
  c = Config.from_flags(second)
  assert (c.task, c.architecture, c.workdir) == ("jigsaw", None, None)


def test_flag_assignments_of_a_tools_set_flag():
  from tfssl.config import flag_assignments
  items = ["lr=6e-3", "byol:tau_base=0.99", "swav:temperature=0.1", "hub_module=gs://b/e:1"]
  assert flag_assignments(items, scope="byol") == {
      "lr": "6e-3", "tau_base": "0.99", "hub_module": "gs://b/e:1"}
  assert flag_assignments(items) == {"lr": "6e-3", "hub_module": "gs://b/e:1"}
  with pytest.raises(ValueError, match="--set=lr: write --set=flag=value"):
    flag_assignments(["lr"])
