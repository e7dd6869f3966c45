"""The data layer: TFRecord schema (tfrecord.py), dataset registry and input pipeline (datasets.py),
the preprocessing op-chain language (preprocess.py) and the contrastive augmentations (augment.py).
"""
