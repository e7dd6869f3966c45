"""Model FLOPs counted from a traced graph, and the machine's matrix-product rate to compare with.

`graph_flops` walks a concrete function's graph, and the graphs of the functions it calls
(Keras layers and nested tf.functions trace into called functions, which tf.compat.v1's profiler
does not enter), and counts 2 FLOPs per multiply-add of the ops that hold nearly all of a
network's arithmetic: convolutions and matrix products. Elementwise ops (BatchNorm, ReLU, adds)
are left out, so the count is a slight undercount. Shapes must be static: a traced batch of fixed
size gives them.
"""

import time

import numpy as np
import tensorflow as tf

_CALL_OPS = ("StatefulPartitionedCall", "PartitionedCall")
_LOOP_OPS = ("While", "StatelessWhile")


def _dims(tensor):
  dims = tensor.shape.as_list() if tensor.shape.rank is not None else None
  if dims is None or any(d is None for d in dims):
    raise ValueError("unknown shape %s of %s" % (tensor.shape, tensor.name))
  return dims


def op_flops(op):
  """FLOPs of one op (0 for ops that are not convolutions or matrix products)."""
  kind = op.type
  if kind in ("Conv2D", "Conv3D"):
    out, kernel = _dims(op.outputs[0]), _dims(op.inputs[1])
    # Each output element sums kernel_h * kernel_w * in_channels products.
    return 2 * int(np.prod(out)) * int(np.prod(kernel[:-1]))
  if kind == "DepthwiseConv2dNative":
    out, kernel = _dims(op.outputs[0]), _dims(op.inputs[1])
    return 2 * int(np.prod(out)) * kernel[0] * kernel[1]
  if kind == "MatMul":
    a = _dims(op.inputs[0])
    k = a[0] if op.get_attr("transpose_a") else a[1]
    return 2 * int(np.prod(_dims(op.outputs[0]))) * k
  if kind in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
    a = _dims(op.inputs[0])
    adj = op.get_attr("adj_x")
    k = a[-2] if adj else a[-1]
    return 2 * int(np.prod(_dims(op.outputs[0]))) * k
  return 0


def graph_flops(graph, _seen=None):
  """(flops, notes) of a graph and the functions it calls; notes name what could not be counted."""
  total, notes = 0, []
  for op in graph.get_operations():
    try:
      total += op_flops(op)
    except ValueError as e:
      notes.append(str(e))
    names = []
    if op.type in _CALL_OPS:
      names = [op.get_attr("f").name]
    elif op.type in _LOOP_OPS:
      names = [op.get_attr("body").name]
      notes.append("%s: loop body counted once" % op.name)
    for name in names:
      fn = graph._get_function(name)  # pylint: disable=protected-access
      if fn is None:
        notes.append("%s: function %s not found" % (op.name, name))
        continue
      inner, inner_notes = graph_flops(fn.graph)
      total += inner
      notes += inner_notes
  return total, notes


def function_flops(fn, *args):
  """FLOPs of tf.function `fn` traced on `args` (tensors of static shape)."""
  concrete = tf.function(fn).get_concrete_function(*args)
  return graph_flops(concrete.graph)


def cpu_has_bf16():
  """Whether this CPU multiplies bfloat16 natively (AVX512_BF16 or AMX-BF16, /proc/cpuinfo)."""
  from tfssl.runtime.precision import cpu_flags
  return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def matmul_rate(size=4096, runs=7, dtype=tf.float32):
  """Best FLOP/s of `runs` timings of a size x size matrix product on the default device (after
  one warm-up): the best is the closest to the machine's peak when anything else shares it, where a
  median of one or two timings read 113 GFLOP/s for a product that runs at 466."""
  a = tf.random.normal([size, size], dtype=tf.float32)
  b = tf.random.normal([size, size], dtype=tf.float32)
  a, b = tf.cast(a, dtype), tf.cast(b, dtype)

  @tf.function
  def product(x, y):
    return tf.reduce_sum(tf.cast(tf.matmul(x, y), tf.float32))

  product(a, b).numpy()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    product(a, b).numpy()
    times.append(time.perf_counter() - start)
  return 2.0 * size ** 3 / float(np.min(times))
