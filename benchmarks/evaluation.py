"""How a pretraining config is evaluated: its eval chain, the settings that chain reads, and kNN.

The chain is the config's --knn_preprocessing, else its --preprocessing, run in eval mode. Its ops
read sizes from the config (resize_size, crop_size, splits_per_side, image_size, ...), so the
linear evaluation and the kNN must get those fields too: `eval_overrides` lists them.
"""

from tfssl.tools import experiment

# Config fields that preprocessing ops and patch/tap handling read.
EVAL_FIELDS = (
    "resize_size", "crop_size", "smaller_size", "splits_per_side", "patch_jitter",
    "num_of_inception_patches", "grayscale_probability", "randomize_resize_method", "image_size",
    "color_jitter_strength", "use_blur", "nmb_crops", "size_crops", "min_scale_crops",
    "max_scale_crops", "randaugment_n", "randaugment_m", "combine_patches", "pool_mode",
    "random_seed",
)


def eval_chain(config):
  return config.knn_preprocessing or config.preprocessing


def eval_overrides(config):
  return {name: getattr(config, name) for name in EVAL_FIELDS if getattr(config, name) is not None}


def linear_eval(export_dir, workdir, config, epochs):
  """Linear heads on every end point of the frozen export, tested on the test split."""
  return experiment.linear_eval(export_dir, workdir, config.dataset_dir, eval_chain(config),
                                dataset=config.dataset, epochs=epochs, **eval_overrides(config))


def knn_of_export(export_dir, config, end_point, k=200, temperature=0.1, max_bank=None):
  """Weighted kNN of an export's end point: the train split is the bank, the test split the queries.

  As experiment.knn_of_export, but the eval chain reads its sizes from `config`.
  """
  import tensorflow as tf
  from tfssl.data import datasets
  from tfssl.evaluation import knn, linear_probe
  from tfssl.models.export import load_export
  export = load_export(export_dir)
  data_config = config.replace(preprocessing=eval_chain(config), eval_batch_size=512)
  spec = datasets.get_dataset(config.dataset, config.dataset_dir)

  @tf.function
  def representation(images):
    fn = lambda x: export.representation(x, training=False)  # noqa: E731
    if images.shape.rank == 5:
      return linear_probe.patch_taps(fn, images, config.pool_mode, config.combine_patches)
    return fn(images)

  def features(split, limit):
    ds = datasets.make_input_fn(data_config, split, is_training=False)(None)
    if limit:
      ds = ds.unbatch().take(limit).batch(512)
    return knn.extract_features(representation, ds, end_point)

  bank, bank_labels = features("train", max_bank)
  queries, query_labels = features("test", None)
  return knn.weighted_knn(bank, bank_labels, queries, query_labels, spec.num_classes, k=k,
                          temperature=temperature)
