"""What this machine's CPU can do, and the session settings of precision and XLA.

- fp32: everything in float32.
- bf16 (mixed precision) on a CPU with bf16 units (AVX512-BF16 or AMX): oneDNN's graph
  rewrite (auto_mixed_precision_onednn_bfloat16) runs the matrix products and convolutions
  in bfloat16 and keeps the variables, the optimizer state and the loss in float32. It is a
  session option: in train.py it also covers the validation and sample grids that share the
  training session; evaluate.py and generate.py always compute in float32.

XLA compiles the training step: TensorFlow's auto-clustering (the session's global jit
level; TF_XLA_FLAGS=--tf_xla_cpu_global_jit lets it reach the CPU). By default it is on where
it measured faster (benchmarks/README.md): see choose_xla.

Nothing here imports TensorFlow at import time (train.py parses its flags with it).
"""
import os

from wavenet.errors import Error

BF16_FLAGS = ('avx512_bf16', 'amx_bf16')  # /proc/cpuinfo flags of CPUs with bf16 units


def cpu_info(path='/proc/cpuinfo'):
    """(model name, flags) of the first processor in `path`; ('unknown', set()) if unreadable."""
    fields = {}
    try:
        with open(path) as cpuinfo:
            for line in cpuinfo:
                if not line.strip():
                    break
                key, _, value = line.partition(':')
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields.get('model name', 'unknown'), set(fields.get('flags', '').split())


def has_bf16_units(flags):
    """Whether CPU flags (a set) name bf16 units."""
    return any(flag in flags for flag in BF16_FLAGS)


def check_precision(precision, num_gpus, cpu):
    """Raises errors.Error unless training in `precision` ('fp32' or 'bf16') is possible on
    `num_gpus` GPUs (0: the CPU) or the CPU `cpu` ((model name, flags) of cpu_info)."""
    if precision == 'fp32':
        return
    if num_gpus:
        raise Error('bf16 mixed precision is built for CPUs with bf16 units only, not for '
                    'GPUs yet: train in fp32')
    name, flags = cpu
    if not has_bf16_units(flags):
        raise Error('bf16 precision: this CPU (%s) has no bf16 units (no %s flag in '
                    '/proc/cpuinfo): train in fp32, or resume the run on a machine that has '
                    'them' % (name, ' or '.join(BF16_FLAGS)))


XLA_FLAGS = '--tf_xla_cpu_global_jit'  # lets the sessions' jit level reach the CPU
XLA_MIN_BATCH = 32  # images per step from which XLA measured faster on the CPU
XLA_CHOICES = ('auto', 'on', 'off')


def choose_xla(choice, on_one_cpu, batch_size):
    """Whether a run compiles with XLA: `choice` 'on' or 'off', or 'auto': on when training on
    the one CPU device of one process (`on_one_cpu`: no GPUs, logical CPU replicas or
    cluster) at XLA_MIN_BATCH or more images per step. When on, lets XLA reach the CPU
    (TF_XLA_FLAGS, read once): call it before anything touches TensorFlow's devices."""
    on = choice == 'on' or (choice == 'auto' and on_one_cpu and batch_size >= XLA_MIN_BATCH)
    if on:
        os.environ['TF_XLA_FLAGS'] = xla_environment(os.environ.get('TF_XLA_FLAGS'))
    return on


def xla_environment(value):
    """The TF_XLA_FLAGS value that lets XLA compile for the CPU, from its current value or None."""
    if value and XLA_FLAGS in value:
        return value
    return ' '.join(part for part in (value, XLA_FLAGS) if part)


def session_config(base, precision='fp32', xla=False):
    """A copy of the tf.ConfigProto `base` with the graph rewrite of `precision` and, when
    `xla`, XLA auto-clustering (global jit level ON_1)."""
    import tensorflow.compat.v1 as tf
    from tensorflow.core.protobuf import rewriter_config_pb2
    config = tf.ConfigProto()
    config.CopyFrom(base)
    if precision == 'bf16':
        config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = (
            rewriter_config_pb2.RewriterConfig.ON)
    if xla:
        config.graph_options.optimizer_options.global_jit_level = tf.OptimizerOptions.ON_1
    return config
