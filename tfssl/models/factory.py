"""`get_net` / `get_net_for_task`: a backbone by name, with the original's defaults.

Names match exactly, unlike the original's substring test: 'resnet50' is a substring of
'cifar_resnet50', which is a different net.
"""

from tfssl.models.cifar_resnet import cifar_resnet18, cifar_resnet50, resnet18
from tfssl.models.layers import BN_EPSILON, BN_MOMENTUM, NetStyle
from tfssl.models.resnet import resnet50
from tfssl.models.revnet import revnet50
from tfssl.models.vgg import vgg19

ARCHITECTURES = ("resnet50", "revnet50", "vgg19", "cifar_resnet18", "cifar_resnet50", "resnet18")
# Nets without the 7x7 ImageNet stem, so without a root_conv_stride to set.
WITHOUT_ROOT_CONV = ("vgg19", "cifar_resnet18", "cifar_resnet50")

# The jigsaw / relative-patch-location variant keeps more resolution for 64x64 patches.
PATCH_ROOT_CONV_STRIDE = 1
PATCH_STRIDES = (2, 2, 1)


def default_filters_factor(architecture):
  """8 for VGG (vanilla VGG19 starts at 64 = 8*8), 4 for the ResNets (64 = 16*4)."""
  return 8 if architecture == "vgg19" else 4


def get_net(architecture, num_classes, filters_factor=None, last_relu=True, mode="v2",
            root_conv_stride=2, strides=(2, 2, 2), global_bn=False, name=None,
            bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, zero_init_residual=False,
            kernel_init="glorot_uniform"):
  """Builds the backbone `architecture`; see the package docstring for the contract.

  VGG19 takes only filters_factor (the original never passed it the ResNet options); RevNet and
  the small ResNets have no v1/v2 choice, so `mode` only reaches resnet50. `zero_init_residual`
  needs a post-activation net (a BatchNorm ends each residual branch): resnet50 v1 or the small
  ResNets.
  """
  if architecture not in ARCHITECTURES:
    raise ValueError("Unsupported architecture %r: use one of %s."
                     % (architecture, ", ".join(ARCHITECTURES)))
  post_activation = architecture in ("cifar_resnet18", "cifar_resnet50", "resnet18") or (
      architecture == "resnet50" and mode == "v1")
  if zero_init_residual and not post_activation:
    raise ValueError("--bn_zero_init_residual needs a BatchNorm at the end of each residual branch: "
                     "use --architecture=resnet50 --mode=v1 or a cifar_resnet/resnet18, not %s%s"
                     % (architecture, " " + mode if architecture == "resnet50" else ""))
  if filters_factor is None:
    filters_factor = default_filters_factor(architecture)
  last_relu = True if last_relu is None else last_relu
  style = NetStyle(global_bn=bool(global_bn), bn_momentum=float(bn_momentum),
                   bn_epsilon=float(bn_epsilon), zero_init_residual=bool(zero_init_residual),
                   kernel_init=kernel_init)
  common = dict(num_classes=num_classes, filters_factor=int(filters_factor), style=style,
                name=name or architecture)
  if architecture == "vgg19":
    net = vgg19(**common)
  else:
    common.update(last_relu=last_relu, root_conv_stride=int(root_conv_stride),
                  strides=tuple(int(s) for s in strides))
    if architecture == "resnet50":
      net = resnet50(mode=mode or "v2", **common)
    else:
      builders = {"revnet50": revnet50, "cifar_resnet18": cifar_resnet18,
                  "cifar_resnet50": cifar_resnet50, "resnet18": resnet18}
      net = builders[architecture](**common)
  # What the net is rebuilt from when a .keras file is loaded (Backbone.get_config).
  net.net_args = dict(architecture=architecture, num_classes=num_classes,
                      filters_factor=int(filters_factor), last_relu=bool(last_relu), mode=mode,
                      root_conv_stride=int(root_conv_stride),
                      strides=[int(s) for s in strides], global_bn=bool(global_bn),
                      bn_momentum=float(bn_momentum), bn_epsilon=float(bn_epsilon),
                      zero_init_residual=bool(zero_init_residual), kernel_init=kernel_init)
  return net


def get_net_for_task(config, num_classes, patch=False):
  """`get_net` with architecture, filters_factor, root_conv_stride, last_relu, mode, global_bn and
  the BatchNorm and init flags (--bn_momentum, --bn_epsilon, --bn_zero_init_residual,
  --conv_kernel_init) from a Config.

  `patch=True` gives the jigsaw/RPL variant (root conv stride 1, block strides (2, 2, 1)).
  """
  if not config.architecture:
    raise ValueError("No architecture given: set --architecture to one of %s."
                     % ", ".join(ARCHITECTURES))
  extra = {}
  if patch:
    extra = dict(root_conv_stride=PATCH_ROOT_CONV_STRIDE, strides=PATCH_STRIDES)
  if config.root_conv_stride is not None:  # given: it wins over the patch variant's too
    extra["root_conv_stride"] = config.root_conv_stride
  return get_net(config.architecture, num_classes, filters_factor=config.filters_factor,
                 last_relu=config.last_relu, mode=config.mode, global_bn=config.global_bn,
                 bn_momentum=config.bn_momentum, bn_epsilon=config.bn_epsilon,
                 zero_init_residual=config.bn_zero_init_residual,
                 kernel_init=config.conv_kernel_init,
                 **extra)
