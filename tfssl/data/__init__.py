"""The data layer: TFRecord schema (tfrecord.py), dataset registry and input pipeline (datasets.py),
the preprocessing op-chain language (preprocess.py) and the contrastive methods' views
(view_ops.py, simclr_views.py, multi_crop.py, randaugment.py, ava_views.py; randomness.py).
"""
