"""What this machine's CPU can do, and the session settings of the training precisions.

- fp32: everything in float32.
- bf16 (mixed precision) on a CPU with bf16 units (AVX512-BF16 or AMX): oneDNN's graph
  rewrite (auto_mixed_precision_onednn_bfloat16) runs the matrix products and convolutions
  in bfloat16 and keeps the variables, the optimizer state and the loss in float32. It is a
  session option: in train.py it also covers the validation and sample grids that share the
  training session; evaluate.py and generate.py always compute in float32.

XLA compiles the training step: TensorFlow's auto-clustering (the session's global jit
level; TF_XLA_FLAGS=--tf_xla_cpu_global_jit lets it reach the CPU). By default it is on
where it measured faster: training on the CPU in one process, one device, at XLA_MIN_BATCH
(32) or more images per step (2-core AMD EPYC, Zen 3: 1.18x and on another day 1.07x at
batch 32, but 0.97x at 24, 0.91x and 0.96x at 16 and 1.03x, within the spread, at batch 8,
`python benchmarks/xla_steps.py`; 2-core Intel Xeon with AVX-512: 1.25x at batch 32,
measured when the option was asked for). It is off at smaller batches, and on GPUs, logical
CPU replicas and clusters (not measured there).

Nothing here imports TensorFlow at import time (train.py parses its flags with it). The XLA
switch must be set before TensorFlow touches its devices, which read TF_XLA_FLAGS once.
"""
PRECISIONS = ('fp32', 'bf16')
BF16_FLAGS = ('avx512_bf16', 'amx_bf16')  # /proc/cpuinfo flags of CPUs with bf16 units


class PrecisionError(Exception):
    """A precision this machine cannot train in, with a one-line reason."""


def cpu_info(path='/proc/cpuinfo'):
    """(model name, set of flags) of the first processor in `path`; ('unknown', set()) when
    unreadable."""
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
    """Raises PrecisionError unless training in `precision` is possible here.

    Args:
        precision: one of PRECISIONS.
        num_gpus: GPUs the run trains on (0: the CPU).
        cpu: (model name, flags) as cpu_info returns them.
    """
    if precision == 'fp32':
        return
    if num_gpus:
        raise PrecisionError('bf16 mixed precision is built for CPUs with bf16 units only, '
                             'not for GPUs yet')
    name, flags = cpu
    if not has_bf16_units(flags):
        raise PrecisionError('this CPU (%s) has no bf16 units (no %s flag in /proc/cpuinfo)'
                             % (name, ' or '.join(BF16_FLAGS)))


def use_precision(config, precision):
    """Sets the graph rewrite of `precision` on a tf.ConfigProto; returns the config."""
    from tensorflow.core.protobuf import rewriter_config_pb2
    if precision == 'bf16':
        config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = (
            rewriter_config_pb2.RewriterConfig.ON)
    return config


XLA_FLAGS = '--tf_xla_cpu_global_jit'  # lets the sessions' jit level reach the CPU
XLA_MIN_BATCH = 32  # images per step from which XLA measured faster on the CPU


def xla_by_default(on_one_cpu, batch_size):
    """Whether XLA is on by default: when training on the one CPU device of one process
    (`on_one_cpu`: no GPUs, logical CPU replicas or cluster) at XLA_MIN_BATCH or more images
    per step; see the module docstring."""
    return on_one_cpu and batch_size >= XLA_MIN_BATCH


def xla_environment(value):
    """The TF_XLA_FLAGS value that lets XLA compile for the CPU, from its current value (or
    None)."""
    if value and XLA_FLAGS in value:
        return value
    return ' '.join(part for part in (value, XLA_FLAGS) if part)


def use_xla(config, on):
    """Sets XLA auto-clustering (global jit level ON_1) on a tf.ConfigProto when `on`;
    returns the config."""
    if on:
        from tensorflow.core.protobuf import config_pb2
        config.graph_options.optimizer_options.global_jit_level = (
            config_pb2.OptimizerOptions.ON_1)
    return config
