"""Every flag of tfssl and the frozen Config built from them.

The first block holds the 46 flags of the original train_and_eval.py with their original names,
help texts and *effective* defaults (the original declared most of them as None and applied the
default in code through `get_flag_value`; we do the same in `Config.from_flags`, so that a flagfile
that leaves a flag out behaves exactly like the original).  The later blocks are what the port adds.

Nothing outside `train_and_eval.py`, `tools/` and tests reads flags: tasks, models and the trainer
get a `Config`.  `Config.make(**overrides)` builds one without absl, for tests and library users.
"""

import dataclasses
import importlib
import json
from typing import Optional, Tuple



@dataclasses.dataclass(frozen=True)
class FlagSpec:
  name: str
  kind: str  # string | integer | float | bool | list
  default: object  # the *declared* default (None for most original flags)
  help: str
  effective: object = None  # default applied in code when the flag is None
  # "module:attribute" of the registry that owns the flag's values (a tuple of names, or a
  # function returning them); resolved only when validating, so declaring flags imports nothing.
  choices: Optional[str] = None

  def allowed(self):
    """The values the owning registry knows now (registrations included); None if any value goes."""
    if self.choices is None:
      return None
    module, attribute = self.choices.split(":")
    names = getattr(importlib.import_module(module), attribute)
    return tuple(names() if callable(names) else names)


_ORIGINAL = (
    FlagSpec("workdir", "string", None, "Where to store files."),
    FlagSpec("num_gpus", "integer", 1, "Number of GPUs to use. (Unused, as in the original; see --strategy.)"),
    FlagSpec("use_tpu", "bool", False, "Whether running on TPU or not. (The original defaulted to True; "
             "tfssl defaults to False and --use_tpu is a synonym of --strategy=tpu.)"),
    FlagSpec("run_eval", "bool", False, "Run eval mode"),
    FlagSpec("tpu_worker_name", "string", "tpu_worker", "Name of a TPU worker."),
    FlagSpec("dataset", "string", None, "Which dataset to use, typically `imagenet`.",
             choices="tfssl.data.datasets:known_datasets"),
    FlagSpec("dataset_dir", "string", None, "Location of the dataset files."),
    FlagSpec("eval_batch_size", "integer", None, "Optional different batch-size evaluation, defaults to the "
             "same as `batch_size`."),
    FlagSpec("keep_checkpoint_every_n_hours", "integer", None, "Keep one checkpoint every this many hours. "
             "Otherwise, only the last few ones are kept. Defaults to 4h.", 4),
    FlagSpec("random_seed", "integer", None, "Seed to use. None is random."),
    FlagSpec("save_checkpoints_secs", "integer", None, "Every how many seconds to save a checkpoint. Defaults "
             "to 600 ie every 10mins.", 600),
    FlagSpec("serving_input_key", "string", None, "The name of the input tensor in the generated hub module. "
             "Just leave it at default.", "image"),
    FlagSpec("serving_input_shape", "string", None, "The shape of the input tensor in the stored hub module. "
             "Can contain `None`.", "None,None,None,3"),
    FlagSpec("signature", "string", None, "The name of the tensor to use as representation for evaluation. "
             "Just leave to default.", "representation"),
    FlagSpec("task", "string", None, "Which pretext-task to learn from (a name in the task registry, "
             "tfssl/tasks/__init__.py), or the `knn_eval` command.", choices="tfssl.tasks:task_names"),
    FlagSpec("train_split", "string", None, "Which dataset split to train on. Should only be `train` "
             "(default) or `trainval`.", "train"),
    FlagSpec("val_split", "string", None, "Which dataset split to eval on. Should only be `val` (default) "
             "or `test`.", "val"),
    FlagSpec("embed_dim", "integer", None, "For most pretext tasks, which dimension the embedding/hidden "
             "vector should be. Defaults to 1000.", 1000),
    FlagSpec("margin", "float", None, "For the `exemplar` pretext task, how large the triplet loss margin "
             "should be.", 0.5),
    FlagSpec("num_of_inception_patches", "integer", None, "For the Exemplar pretext task, how many "
             "instances of an image to create.", 8),
    FlagSpec("patch_jitter", "integer", None, "For patch-based methods, by how many pixels to jitter the "
             "patches. Defaults to 0.", 0),
    FlagSpec("perm_subset_size", "integer", None, "Subset of permutations to sample per example in the "
             "`jigsaw` pretext task. Defaults to 8.", 8),
    FlagSpec("splits_per_side", "integer", None, "For the `crop_patches` preprocessor, how many times to "
             "split a side. For example, 3 will result in 3x3=9 patches.", 3),
    FlagSpec("eval_model", "string", None, "Whether to perform evaluation with a `linear` (default) model, "
             "or with an `mlp` model.", "linear", choices="tfssl.tasks.linear_eval:EVAL_MODELS"),
    FlagSpec("hub_module", "string", None, "Folder where the hub module that should be evaluated is stored."),
    FlagSpec("pool_mode", "string", None, "When running evaluation on intermediate layers (not logits) of "
             "the network, it is commonplace to pool the features down to 9000. This decides the pooling "
             "method to be used: `adaptive_max` (default), `adaptive_avg`, `max`, or `avg`.", "adaptive_max",
             choices="tfssl.evaluation.linear_probe:POOL_MODES"),
    FlagSpec("combine_patches", "string", None, "When running evaluation on patch models, it is used to "
             "merge patch representations to the full image representation. The value should be set to "
             "`avg_pool` (default), `max_pool` or `concat`.", "avg_pool",
             choices="tfssl.evaluation.linear_probe:COMBINE_MODES"),
    FlagSpec("architecture", "string", None, "Which basic network architecture to use (a name in "
             "tfssl/models/factory.py's ARCHITECTURES).", choices="tfssl.models.factory:ARCHITECTURES"),
    FlagSpec("filters_factor", "integer", None, "Widening factor for network filters. For ResNet, default "
             "= 4 = vanilla ResNet."),
    FlagSpec("last_relu", "bool", None, "Whether to include (default) the final ReLU layer in ResNet/RevNet "
             "models or not.", True),
    FlagSpec("mode", "string", None, "Which ResNet to use, `v1` or `v2`.", "v2",
             choices="tfssl.models.resnet:MODES"),
    FlagSpec("batch_size", "integer", None, "The global batch-size to use."),
    FlagSpec("decay_epochs", "string", None, "Optional list of epochs at which learning-rate decay should "
             "happen, such as `15,25`."),
    FlagSpec("epochs", "float", None, "Number of epochs to run training (fractions allowed)."),
    FlagSpec("lr_decay_factor", "float", None, "Factor by which to decay the learning-rate at each decay "
             "step. Default 0.1.", 0.1),
    FlagSpec("lr", "float", None, "The base learning-rate to use for training."),
    FlagSpec("lr_scale_batch_size", "float", None, "The batch-size for which the base learning-rate `lr` is "
             "defined. For batch-sizes different from that, it is scaled linearly accordingly. For example "
             "lr=0.1, batch_size=128, lr_scale_batch_size=32, then actual lr=0.025."),
    FlagSpec("optimizer", "string", None, "Which optimizer to use: `sgd` (default, momentum 0.9), `adam`, "
             "`lars` (SimCLR's) or `larc` (apex LARC around momentum SGD, SwAV's).", "sgd",
             choices="tfssl.optimizers:OPTIMIZERS"),
    FlagSpec("warmup_epochs", "float", None, "Duration of the linear learning-rate warm-up (from 0 to "
             "actual). Defaults to 0.", 0),
    FlagSpec("weight_decay", "float", None, "Strength of weight-decay. Defaults to 1e-4 (0 for linear_eval), "
             "and may be set to 0. Same meaning as the original TF1 l2_regularizer: wd * sum(w^2) / 2."),
    FlagSpec("crop_size", "string", None, "Size of the crop when using `crop` or `central_crop` "
             "preprocessing. Either a single integer like `32` or a pair like `32,24`."),
    FlagSpec("grayscale_probability", "float", None, "When using `to_gray` preprocessing, probability of "
             "actually doing it. Defaults to 1.0, i.e. deterministically grayscaling the input.", 1.0),
    FlagSpec("preprocessing", "string", None, "A comma-separated list of pre-processing steps to perform, "
             "see tfssl/data/preprocess.py."),
    FlagSpec("randomize_resize_method", "bool", None, "Whether or not (default) to use a random "
             "interpolation method in the `resize` preprocessor.", False),
    FlagSpec("resize_size", "string", None, "For the `resize`, `inception_preprocess`, and "
             "`crop_inception_preprocess_patches` preprocessors, the size in pixels to which to resize the "
             "input. Can be a single number for square, or a pair as `128,64`."),
    FlagSpec("smaller_size", "integer", None, "For the `resize_small` preprocessor, the desired size that "
             "the smaller side should have after resizing the image (keeping aspect ratio)."),
)

_PORT = (
    # Runtime and scale.
    FlagSpec("strategy", "string", "auto", "tf.distribute strategy: auto, default, one_device, "
             "mirrored, multi_worker or tpu. `auto` mirrors over all GPUs, else uses the default "
             "strategy.", choices="tfssl.runtime.strategy:STRATEGIES"),
    FlagSpec("cpu_replicas", "integer", 0, "Split the host CPU into this many logical devices (for "
             "testing mirrored training without GPUs). 0 leaves the CPU alone."),
    FlagSpec("tpu_name", "string", None, "The Cloud TPU to use with --strategy=tpu (name or grpc:// url)."),
    FlagSpec("device", "string", None, "`npu` to run on an Ascend NPU through its TF2 adapter "
             "(npu_device). Leave unset for CPU/GPU/TPU."),
    FlagSpec("precision", "string", "fp32", "Numeric precision: fp32, mixed_float16, mixed_bfloat16, "
             "or auto (the devices' fast format; the run's first line says which).",
             choices="tfssl.runtime.precision:PRECISIONS"),
    FlagSpec("jit_compile", "bool", False, "Compile the training step with XLA."),
    FlagSpec("steps_per_execution", "integer", 1, "Training steps run inside one tf.function call."),
    FlagSpec("global_bn", "bool", True, "Synchronize BatchNorm statistics across replicas (a no-op on "
             "one replica). The Revisiting originals normalised per TPU core: their flagfiles say "
             "--noglobal_bn."),
    # The backbone's BatchNorm and conv init, where the originals differ (models/layers.NetStyle).
    FlagSpec("bn_momentum", "float", 0.99, "BatchNorm moving-average momentum of the backbone (TF1's "
             "0.99, the Revisiting original; SimCLR's --batch_norm_decay 0.9; torch's 0.1 = 0.9)."),
    FlagSpec("bn_epsilon", "float", 1e-3, "BatchNorm epsilon of the backbone (TF1's 1e-3; SimCLR and "
             "torch 1e-5)."),
    FlagSpec("root_conv_stride", "integer", None, "Stride of the 7x7 first convolution of the "
             "ImageNet stem (resnet50, revnet50, resnet18; the cifar stem has none): 2 by default, 1 "
             "in the jigsaw/relative-patch-location patch nets; 1 keeps twice the resolution for "
             "small images such as Fashion-MNIST's 28 px."),
    FlagSpec("bn_zero_init_residual", "bool", False, "Start the last BatchNorm of every residual "
             "branch at gamma 0 (SimCLR's init_zero); needs a post-activation ResNet."),
    FlagSpec("conv_kernel_init", "string", "glorot_uniform", "Conv kernel initialiser of the "
             "backbone: glorot_uniform (TF1 default, Revisiting), variance_scaling (SimCLR) or "
             "kaiming_fan_out (torchvision, SwAV).", choices="tfssl.models.layers:KERNEL_INITS"),
    FlagSpec("skip_corrupt_records", "bool", False, "Skip and count records that fail to parse or decode, "
             "instead of stopping with the shard's name."),
    # Schedule, optimiser and checkpoints.
    FlagSpec("train_steps", "integer", None, "Train until the global step reaches this; overrides "
             "--epochs (a resumed run stops at the same step)."),
    FlagSpec("lr_schedule", "string", "piecewise", "`piecewise` (the original: warm-up then decay at "
             "--decay_epochs) or `cosine` (warm-up then cosine to 0).", choices="tfssl.optimizers:LR_SCHEDULES"),
    FlagSpec("momentum", "float", 0.9, "Momentum of sgd, lars and larc."),
    FlagSpec("learning_rate_scaling", "string", "linear", "How --lr scales with the batch: `linear` "
             "(lr * batch_size / lr_scale_batch_size, the original's) or `sqrt` (lr * sqrt(batch_size), "
             "SimCLR's option).", choices="tfssl.optimizers:LR_SCALINGS"),
    FlagSpec("start_warmup", "float", 0.0, "Learning rate at the first warm-up step (SwAV's "
             "--start_warmup; absolute, not scaled by the batch)."),
    FlagSpec("final_lr", "float", 0.0, "Learning rate the cosine schedule ends at (SwAV's --final_lr; "
             "absolute)."),
    FlagSpec("keep_checkpoint_max", "integer", 5, "How many of the newest checkpoints to keep."),
    FlagSpec("on_nonfinite", "string", "stop", "A step whose loss or gradient is not finite: `stop` "
             "the run there (exit 3, nothing saved from it), `skip` its update, or `ignore` it.",
             choices="tfssl.tasks.step_guard:MODES"),
    FlagSpec("max_nonfinite_steps", "integer", 20, "--on_nonfinite=skip: stop after this many "
             "non-finite steps in a row."),
    FlagSpec("log_every_steps", "integer", 100, "Log progress (loss, lr, steps/s, images/s, ETA) and "
             "write summaries every this many steps."),
    FlagSpec("progress_every_secs", "float", 10.0, "Between those lines, a short progress line (steps, "
             "epoch, loss, images/s after compilation, ETA) every this many seconds (0: none)."),
    FlagSpec("eval_timeout_secs", "integer", 600, "--run_eval: give up waiting for a new checkpoint after "
             "this many seconds (the original's 10 minutes)."),
    FlagSpec("eval_steps", "integer", None, "Evaluation batches to run; default the whole val split."),
    FlagSpec("knn_every_epochs", "float", 0, "Run the weighted kNN monitor on the train/val splits every "
             "this many epochs and at the last step (0: never)."),
    FlagSpec("knn_k", "integer", 200, "Neighbours of the weighted kNN evaluation."),
    FlagSpec("knn_temperature", "float", 0.1, "Temperature of the kNN vote weights exp(sim / t)."),
    FlagSpec("knn_end_point", "string", "pre_logits", "End point whose features the kNN uses."),
    FlagSpec("knn_preprocessing", "string", None, "Preprocessing chain (eval mode) for the kNN bank and "
             "queries; defaults to the task's evaluation chain."),
    FlagSpec("knn_max_train_examples", "integer", None, "Cap on the kNN bank size (default: whole split)."),
    # Pretext-task choices where the original has a quirk.
    FlagSpec("permutations_file", "string", None, "Jigsaw permutation set: tfssl's .npy/.txt file or the "
             "original's binary format. Default: tfssl's shipped 100 maximal-Hamming permutations."),
    FlagSpec("exemplar_norm_axis", "integer", 1, "Axis of the exemplar embedding's L2 normalisation: 1 "
             "(each embedding, the usual metric-learning choice) or 0 (across the batch, as the original)."),
    # Contrastive methods.
    FlagSpec("image_size", "integer", None, "Output size of the contrastive augmentations (SimCLR's "
             "--image_size)."),
    FlagSpec("temperature", "float", None, "Temperature of the contrastive loss (simclr 0.5 in the "
             "MindSpore seed / 0.1 in SimCLR; swav 0.1; ava 0.1)."),
    FlagSpec("color_jitter_strength", "float", 1.0, "Strength of the SimCLR colour jitter."),
    FlagSpec("crop_min_area", "float", 0.08, "Smallest share of the image's area that a "
             "simclr_augment / byol_augment crop covers (the papers' 0.08)."),
    FlagSpec("use_blur", "bool", True, "Gaussian blur in the SimCLR augmentation (for images > 32px)."),
    FlagSpec("augment_on_device", "bool", False, "Apply the views' flip, colour jitter, grayscale, "
             "blur and solarisation inside the train step on the accelerator (the host only "
             "decodes, crops and resizes); simclr_augment, byol_augment and multi_crop."),
    FlagSpec("proj_head_mode", "string", "nonlinear", "SimCLR projection head: none, linear or nonlinear.",
             choices="tfssl.tasks.simclr:PROJ_HEAD_MODES"),
    FlagSpec("num_proj_layers", "integer", 3, "Layers of the projection head."),
    FlagSpec("proj_hidden_dim", "integer", None, "Hidden width of the projection head (default: the "
             "backbone's feature width)."),
    FlagSpec("proj_out_dim", "integer", 128, "Output width of the projection head."),
    FlagSpec("pred_hidden_dim", "integer", None, "BYOL predictor hidden width (default proj_hidden_dim)."),
    FlagSpec("lineareval_while_pretraining", "bool", True, "Train a linear head on stop-gradient features "
             "during contrastive pretraining."),
    FlagSpec("tau_base", "float", 0.996, "BYOL target EMA base rate."),
    FlagSpec("tau_schedule", "string", "cosine", "BYOL EMA schedule: `cosine` (paper: tau_base -> 1) or "
             "`constant` (the seed's TF2 code).", choices="tfssl.models.momentum:TAU_SCHEDULES"),
    FlagSpec("nmb_prototypes", "integer", 3000, "SwAV prototypes."),
    FlagSpec("sinkhorn_iterations", "integer", 3, "SwAV Sinkhorn-Knopp iterations."),
    FlagSpec("epsilon", "float", 0.05, "SwAV entropy regularisation."),
    FlagSpec("nmb_crops", "string", "2", "SwAV multi-crop: crops per size, e.g. `2,6`."),
    FlagSpec("size_crops", "string", "224", "SwAV multi-crop sizes, e.g. `224,96`."),
    FlagSpec("min_scale_crops", "string", "0.14", "SwAV multi-crop minimum scales, e.g. `0.14,0.05`."),
    FlagSpec("max_scale_crops", "string", "1.0", "SwAV multi-crop maximum scales, e.g. `1,0.14`."),
    FlagSpec("crops_for_assign", "string", "0,1", "SwAV crops whose codes are computed."),
    FlagSpec("queue_length", "integer", 0, "SwAV feature queue length (0: no queue)."),
    FlagSpec("epoch_queue_starts", "integer", 15, "SwAV epoch from which the queue is used."),
    FlagSpec("freeze_prototypes_niters", "integer", 313, "SwAV: prototypes get no update for this many "
             "steps."),
    FlagSpec("randaugment_n", "integer", 2, "AVA auxiliary view: RandAugment number of ops."),
    FlagSpec("randaugment_m", "integer", 10, "AVA auxiliary view: RandAugment magnitude (of 30)."),
    # Semi-supervised fine-tuning.
    FlagSpec("subset_percent", "float", None, "finetune: labelled subset, percent of the train split "
             "(1 or 10), class-balanced and chosen with --random_seed."),
    FlagSpec("subset_file", "string", None, "finetune: file with one image filename per line (SimCLR's "
             "1percent.txt / 10percent.txt)."),
    FlagSpec("fine_tune_after_block", "integer", -1, "finetune: train only what comes after this block "
             "(-1 everything, 0 after the stem, 4 the head only)."),
)

# A list, not a tuple: register_flags() adds a method's own flags to it (and to every importer's view).
ALL_FLAGS = list(_ORIGINAL + _PORT)
_SPECS = {s.name: s for s in ALL_FLAGS}
_DEFINED_ON = []  # the absl FlagValues define_flags() has declared ALL_FLAGS on


def register_flags(*specs):
  """Adds flags of a method that tfssl does not ship (its task reads them from the Config).

  Call it when the method's module is imported, before the command line is parsed (see the
  README's "Adding a method"); a flag whose name is taken is an error.
  """
  for spec in specs:
    if spec.name in _SPECS:
      raise ValueError("flag --%s is already defined; give the method's flag another name" % spec.name)
    ALL_FLAGS.append(spec)
    _SPECS[spec.name] = spec
  for fv in _DEFINED_ON:
    define_flags(fv)


def flag_spec(name):
  return _SPECS[name]


def _conv(kind, value):
  if value is None:
    return None
  if kind == "integer":
    return int(value)
  if kind == "float":
    return float(value)
  if kind == "bool":
    if isinstance(value, str):
      return value.lower() in ("1", "true", "yes")
    return bool(value)
  return str(value)


def _int_list(text) -> Optional[Tuple[int, ...]]:
  if text is None or text == "":
    return None
  return tuple(int(float(x)) for x in str(text).split(",") if x.strip())


def _float_list(text) -> Optional[Tuple[float, ...]]:
  if text is None or text == "":
    return None
  return tuple(float(x) for x in str(text).split(",") if x.strip())


def _size_pair(text) -> Optional[Tuple[int, int]]:
  """`32` -> (32, 32); `32,24` -> (32, 24), as the original's crop/resize flags."""
  values = _int_list(text)
  if values is None:
    return None
  if len(values) == 1:
    return (values[0], values[0])
  if len(values) != 2:
    raise ValueError("size %r: give one integer or a pair like 32,24" % (text,))
  return values


@dataclasses.dataclass(frozen=True)
class Config:
  """The frozen run configuration: one attribute per flag, with effective defaults applied.

  Derived, parsed views of string flags are properties (`resize_hw`, `crop_hw`, `decay_epoch_list`).
  """
  # Populated dynamically below from ALL_FLAGS; see `make`.
  values: Tuple[Tuple[str, object], ...]

  def __getattr__(self, name):
    # dataclass(frozen) with a dict-like payload keeps the field list in one place (ALL_FLAGS).
    for key, value in object.__getattribute__(self, "values"):
      if key == name:
        return value
    raise AttributeError("Config has no field %r" % name)

  # ---- construction ----
  @classmethod
  def make(cls, **overrides) -> "Config":
    """A Config from keyword values (as flags would give them); unknown names raise."""
    unknown = sorted(set(overrides) - set(_SPECS))
    if unknown:
      raise ValueError("unknown config field(s): %s" % ", ".join(unknown))
    raw = {s.name: s.default for s in ALL_FLAGS}
    raw.update(overrides)
    return cls._resolve(raw)

  @classmethod
  def from_flags(cls, flags) -> "Config":
    return cls._resolve({s.name: getattr(flags, s.name) for s in ALL_FLAGS})

  @classmethod
  def _resolve(cls, raw) -> "Config":
    out = {}
    for spec in ALL_FLAGS:
      value = _conv(spec.kind, raw.get(spec.name))
      if value is None and spec.effective is not None:
        value = spec.effective
      out[spec.name] = value
    arch = out["architecture"] or ""
    if out["filters_factor"] is None:
      out["filters_factor"] = 8 if "vgg19" in arch else 4
    if out["weight_decay"] is None:
      out["weight_decay"] = 0.0 if out["task"] in ("linear_eval", "knn_eval") else 1e-4
    if out["eval_batch_size"] is None:
      out["eval_batch_size"] = out["batch_size"]
    if out["lr_scale_batch_size"] is None and out["batch_size"] is not None:
      out["lr_scale_batch_size"] = float(out["batch_size"])
    if out["use_tpu"] and out["strategy"] == "auto":
      out["strategy"] = "tpu"
    return cls(values=tuple(sorted(out.items())))

  def replace(self, **overrides) -> "Config":
    raw = dict(self.values)
    raw.update(overrides)
    return Config._resolve(raw)

  def as_dict(self):
    return dict(self.values)

  def to_json(self) -> str:
    return json.dumps(self.as_dict(), indent=2, sort_keys=True)

  # ---- parsed views ----
  @property
  def resize_hw(self):
    return _size_pair(self.resize_size)

  @property
  def crop_hw(self):
    return _size_pair(self.crop_size)

  @property
  def serving_shape(self):
    return [None if d.strip() == "None" else int(d) for d in self.serving_input_shape.split(",")]

  @property
  def decay_epoch_list(self):
    """Epochs at which the piecewise schedule decays; the original's default is [epochs] (no decay)."""
    parsed = _float_list(self.decay_epochs)
    if parsed is None:
      return (self.epochs,) if self.epochs is not None else ()
    return parsed

  @property
  def nmb_crops_list(self):
    return _int_list(self.nmb_crops)

  @property
  def size_crops_list(self):
    return _int_list(self.size_crops)

  @property
  def min_scale_crops_list(self):
    return _float_list(self.min_scale_crops)

  @property
  def max_scale_crops_list(self):
    return _float_list(self.max_scale_crops)

  @property
  def crops_for_assign_list(self):
    return _int_list(self.crops_for_assign)


def define_flags(flag_values=None):
  """Declares every flag in ALL_FLAGS with absl (idempotent per FlagValues)."""
  from absl import flags
  # Not `flag_values or FLAGS`: an empty FlagValues is falsy, and would silently mean the global one.
  fv = flags.FLAGS if flag_values is None else flag_values
  definers = {
      "string": flags.DEFINE_string, "integer": flags.DEFINE_integer,
      "float": flags.DEFINE_float, "bool": flags.DEFINE_bool,
  }
  for spec in ALL_FLAGS:
    if spec.name in fv:
      continue
    definers[spec.kind](spec.name, spec.default, spec.help, flag_values=fv)
  if all(fv is not seen for seen in _DEFINED_ON):
    _DEFINED_ON.append(fv)
  return fv


def flag_assignments(items, scope=None):
  """{flag: value} of `flag=value` items (a tool's repeated --set), taking `scope:flag=value`
  items only where scope is `scope`; ValueError naming a malformed item. Split at the first `=`,
  so a value may hold `:` or `=` (a path, a URL)."""
  out = {}
  for item in items:
    target, sep, value = item.partition("=")
    item_scope, _, name = target.rpartition(":")
    if not sep or not name.strip():
      raise ValueError("--set=%s: write --set=flag=value or --set=task:flag=value" % item)
    if item_scope in ("", scope):
      out[name.strip()] = value.strip()
  return out


def config_from_flagfile(path, **overrides):
  """A Config as `train_and_eval --flagfile=path --k=v ...` would build it (None values skipped).

  `path` is a flagfile, or the name of a shipped config (`simclr/fashion_mnist`, tfssl/flagfiles.py).
  """
  from absl import flags
  from tfssl import flagfiles
  fv = define_flags(flags.FlagValues())
  argv = ["tfssl", "--flagfile=" + flagfiles.resolve(str(path))]
  argv += ["--%s=%s" % (k, v) for k, v in overrides.items() if v is not None]
  fv(argv)
  return Config.from_flags(fv)
