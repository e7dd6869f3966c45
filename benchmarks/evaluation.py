"""How a pretraining config is evaluated: its eval chain and the config fields that chain reads.

The chain and its size fields are tfssl.data.preprocess.eval_view's (what an export records): the
config's --knn_preprocessing, else the evaluation chain of its --preprocessing. Linear evaluation
and kNN get those fields, and the pooling mode and seed, too.
"""

from tfssl.data import preprocess
from tfssl.tools import experiment

EVAL_FIELDS = tuple(preprocess.EVAL_VIEW_FIELDS) + ("pool_mode", "random_seed")


def eval_chain(config):
  return preprocess.eval_view(config)[0]


def eval_overrides(config):
  return {name: getattr(config, name) for name in EVAL_FIELDS if getattr(config, name) is not None}


def linear_eval(export_dir, workdir, config, epochs):
  """Linear heads on every end point of the frozen export, tested on the test split."""
  return experiment.linear_eval(export_dir, workdir, config.dataset_dir, eval_chain(config),
                                dataset=config.dataset, epochs=epochs, **eval_overrides(config))


def knn_of_export(export_dir, config, end_point, k=200, temperature=0.1, max_bank=None):
  """Weighted kNN of an export's end point: the train split is the bank, the test split the queries."""
  return experiment.knn_of_export(export_dir, config.dataset_dir, eval_chain(config),
                                  end_point=end_point, dataset=config.dataset, k=k,
                                  temperature=temperature, max_bank=max_bank,
                                  combine=config.combine_patches, **eval_overrides(config))
