"""Backbones. `get_net(...)` builds one by name; every net returns `(output, end_points)`.

Contract (used by tasks and the export):
  get_net(architecture, num_classes, filters_factor=None, last_relu=True, mode="v2",
          root_conv_stride=2, strides=(2, 2, 2), global_bn=False, name=None, bn_momentum=0.99,
          bn_epsilon=1e-3, zero_init_residual=False, kernel_init="glorot_uniform") -> keras.Model
  - `architecture`: resnet50 | revnet50 | vgg19 | cifar_resnet18 | cifar_resnet50 | resnet18
  - `num_classes` falsy: output is `pre_logits`; else output is `logits` (a 1x1 conv with bias on the
    pooled features, squeezed to [N, num_classes]).
  - `model(images, training=...)` -> (output, end_points) with end_points named as the original:
    after_root, block1..block4, pre_logits, logits (VGG: block1..block5, fc6, pre_logits, logits).
  - `model.end_point_names`: the ordered end-point names; `model.feature_dim`: width of pre_logits.
  - `model.blocks`: the stages, in order (block i + 1 is `blocks[i]`), and the stem in `root_conv` /
    `root_bn`: fine-tuning's --fine_tune_after_block reads these names from an export's object
    graph (models/export_graph.py).
  - Weight decay is not attached to layers: tasks add `Task.weight_decay_loss()` (original meaning).
  - `global_bn=True` makes BatchNorm synchronized across replicas; `bn_momentum`, `bn_epsilon`,
    `zero_init_residual` and `kernel_init` choose the original's BatchNorm and conv init
    (layers.NetStyle: Revisiting's TF1 defaults unless a flagfile says SimCLR's or SwAV's).
  get_net_for_task(config, num_classes, patch=False): the same, reading architecture, filters_factor,
    last_relu, mode and global_bn from a Config; `patch=True` gives the jigsaw/RPL variant
    (root_conv_stride=1, strides=(2, 2, 1)).
"""

from tfssl.models.factory import ARCHITECTURES, get_net, get_net_for_task  # noqa: F401
from tfssl.models.heads import LinearHead, MLPHead, PatchHead, ProjectionHead  # noqa: F401
# Registers the classes a saved `.keras` encoder names (Encoder, ProjectedNet, the backbones and
# heads), so `keras.saving.load_model` finds them after `import tfssl.models`.
from tfssl.models import projected, representation  # noqa: F401,E402
