"""Training precision (fp32, bf16 mixed precision) and XLA: the CPU checks, the refusals on
machines without bf16 units, an end-to-end bf16 run where the machine has them, and XLA runs.

Every run here is in this process, but the one that shows XLA reaching the CPU in a fresh
process. The runs use a constant learning rate (a run resumed at any step goes on as the whole
one) and pass --xla=off unless XLA is what they test.
"""
import contextlib
import io
import json
import os
import re
import shutil

import numpy as np
import pytest

import train
from conftest import (TINY_PARAMS, assert_same_values, checkpoint_values, describe, error_of,
                      run_main, run_script, snapshot, tf, train_flags, write_json)
from wavenet import checkpoints, errors, hardware, record

CPU = hardware.cpu_info()
# Without bf16 units (AVX512-BF16 or AMX) TensorFlow's oneDNN rewrite leaves the graph in
# float32: a "bf16" run there is an fp32 run, so the end-to-end test cannot tell them apart.
# The refusal on such CPUs is tested everywhere.
BF16_SKIP = pytest.mark.skipif(
    not hardware.has_bf16_units(CPU[1]),
    reason="this CPU (%s) has no bf16 units: TensorFlow's oneDNN rewrite leaves the graph in "
           'float32 there' % CPU[0])
WITH_BF16 = ('Some Xeon', {'avx512f', 'amx_bf16'})
WITHOUT_BF16 = ('Plain CPU', {'avx2', 'fma'})
STEPS = 4  # every run's; checkpoints at 2 and 4


def run(data_dir, params, logdir, *extra):
    """train.main in this process for STEPS steps; returns its stdout."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        run_main(train, train_flags(data_dir, logdir, STEPS, '--num_samples=0',
                                    '--checkpoint_every=2', '--learning_rate_schedule=constant',
                                    *extra, params=params))
    return output.getvalue()


def stopped_after_step_2(logdir, copy):
    """A copy of `logdir` as a run stopped after step 2 left it."""
    shutil.copytree(str(logdir), str(copy), ignore=shutil.ignore_patterns(
        '%s-%d.*' % (checkpoints.CHECKPOINT_PREFIX, STEPS)))
    return copy


def final(logdir):
    return checkpoint_values(logdir / ('model.ckpt-%d' % STEPS))


def validation_bits(output):
    """The validation bits/dim printed at the last checkpoint."""
    match = re.search(r'^step %d: saved .*, validation bits/dim ([\d.]+)$' % STEPS, output,
                      re.M)
    assert match, output
    return float(match.group(1))


def assert_close_but_not_equal(first, second):
    """The weights of two runs that rounded differently: not all equal, all close."""
    assert any(not np.array_equal(first[name], second[name]) for name in first)
    assert_same_values(first, second, atol=1e-3)


@pytest.fixture(scope='module')
def params(tmp_path_factory):
    """Tinier params than conftest's: two layers, which XLA compiles in half the time."""
    path = tmp_path_factory.mktemp('params') / 'params.json'
    write_json(path, dict(TINY_PARAMS, dilations=[1, 2]))
    return path


@pytest.fixture(scope='module')
def fp32(data_dir, params, tmp_path_factory):
    """An fp32 run without XLA: (logdir, stdout)."""
    logdir = tmp_path_factory.mktemp('fp32') / 'run'
    return logdir, run(data_dir, params, logdir)


# ----------------------------------------------------------------------------- precision


def test_cpu_info_reads_the_model_and_flags(tmp_path):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 amx_bf16\n'
                       '\nprocessor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n')
    assert hardware.cpu_info(str(cpuinfo)) == ('Some CPU', {'fpu', 'avx2', 'amx_bf16'})
    assert hardware.cpu_info(str(tmp_path / 'missing')) == ('unknown', set())


@pytest.mark.parametrize('flags, units', [({'avx2', 'fma'}, False), ({'avx512_bf16'}, True),
                                          ({'avx512f', 'amx_bf16'}, True), (set(), False)])
def test_bf16_units_are_named_by_their_flags(flags, units):
    assert hardware.has_bf16_units(flags) == units


def test_precision_checks():
    hardware.check_precision('fp32', 0, WITHOUT_BF16)
    hardware.check_precision('bf16', 0, WITH_BF16)
    with pytest.raises(errors.Error, match=r'^bf16 precision: this CPU \(Plain CPU\) has no '
                                             r'bf16 units'):
        hardware.check_precision('bf16', 0, WITHOUT_BF16)
    with pytest.raises(errors.Error, match='not for GPUs yet: train in fp32$'):
        hardware.check_precision('bf16', 2, WITH_BF16)


def test_bf16_without_bf16_units_is_refused_naming_the_cpu_and_writing_nothing(
        data_dir, params, tmp_path, monkeypatch):
    """On every machine: the CPU is made to look like one without bf16 units."""
    monkeypatch.setattr(hardware, 'cpu_info', lambda: WITHOUT_BF16)
    assert error_of(train, train_flags(data_dir, tmp_path / 'run', 2, '--precision=bf16',
                                       params=params)) == (
        'bf16 precision: this CPU (Plain CPU) has no bf16 units (no avx512_bf16 or amx_bf16 '
        'flag in /proc/cpuinfo): train in fp32, or resume the run on a machine that has them')
    assert not (tmp_path / 'run').exists()


def test_a_bf16_run_keeps_its_precision_and_resumes_only_on_a_cpu_with_bf16_units(
        data_dir, params, tmp_path, monkeypatch):
    """On every machine: the CPU is made to look like one with bf16 units (without them, the
    run computes in float32, which is enough here)."""
    monkeypatch.setattr(hardware, 'cpu_info', lambda: WITH_BF16)
    logdir = tmp_path / 'run'
    output = run(data_dir, params, logdir, '--precision=bf16')
    assert re.search(r'^arithmetic: bf16, XLA off', output, re.M), output
    kept = record.RunRecord.from_dict(json.loads((logdir / record.RUN_FILE).read_text()),
                                      record.RUN_FILE)
    assert kept.training.precision == 'bf16'
    assert checkpoints.read_record(str(logdir / 'model.ckpt-4'), str(logdir)) == kept
    before = snapshot(logdir)
    flags = train_flags(data_dir, logdir, 6, params=params)
    assert error_of(train, flags + ['--precision=fp32']) == (
        'precision=fp32 differs from bf16, which the run in %s keeps: resume without it, or '
        'train into a new logdir' % logdir)
    monkeypatch.setattr(hardware, 'cpu_info', lambda: WITHOUT_BF16)
    assert error_of(train, flags).endswith('resume the run on a machine that has them')
    assert snapshot(logdir) == before


@BF16_SKIP
def test_bf16_trains_close_to_fp32_and_resumes_exactly(data_dir, params, fp32, tmp_path):
    """The rewrite ran: the products rounded to bf16 move the weights away from fp32's, while
    every variable keeps its dtype (float32 weights and optimizer state); the validation
    loss stays within 3%, and a resumed run ends where the whole one does."""
    logdir = tmp_path / 'bf16'
    output = run(data_dir, params, logdir, '--precision=bf16')
    assert re.search(r'^arithmetic: bf16, XLA off', output, re.M), output
    bf16, plain = final(logdir), final(fp32[0])
    for name, value in bf16.items():
        assert value.dtype == plain[name].dtype, name
    assert any(not np.array_equal(bf16[name], plain[name]) for name in plain)
    bits, fp32_bits = validation_bits(output), validation_bits(fp32[1])
    assert abs(bits - fp32_bits) < 0.03 * fp32_bits, (bits, fp32_bits)
    resumed = stopped_after_step_2(logdir, tmp_path / 'resumed')
    run(data_dir, params, resumed)  # bf16: the run's
    assert_same_values(bf16, final(resumed))


# ----------------------------------------------------------------------------- XLA


def test_xla_is_on_where_it_measured_faster_and_then_reaches_the_cpu(monkeypatch):
    monkeypatch.delenv('TF_XLA_FLAGS', raising=False)
    for choice, on_one_cpu, batch_size in (('auto', True, 32), ('auto', True, 64),
                                           ('on', False, 2)):
        assert hardware.choose_xla(choice, on_one_cpu, batch_size)
        assert os.environ.pop('TF_XLA_FLAGS') == '--tf_xla_cpu_global_jit'
    for choice, on_one_cpu, batch_size in (('auto', True, 31), ('auto', False, 64),
                                           ('off', True, 64)):
        assert not hardware.choose_xla(choice, on_one_cpu, batch_size)
        assert 'TF_XLA_FLAGS' not in os.environ
    assert hardware.xla_environment(None) == '--tf_xla_cpu_global_jit'
    assert hardware.xla_environment('--xla_dump_to=/tmp/x') == ('--xla_dump_to=/tmp/x '
                                                               '--tf_xla_cpu_global_jit')
    assert hardware.xla_environment('--tf_xla_cpu_global_jit') == '--tf_xla_cpu_global_jit'


class Decided(Exception):
    """Stops train.main once it has chosen XLA."""


def test_train_chooses_xla_from_its_devices_and_the_batch_the_run_keeps(
        data_dir, fp32, tmp_path, monkeypatch):
    """What train.py hands to choose_xla: one CPU device of one process or not, and the batch
    size of the run (a resumed one's is the one it keeps)."""
    monkeypatch.setenv('TF_XLA_FLAGS', '--tf_xla_cpu_global_jit')
    monkeypatch.delenv('TF_CONFIG', raising=False)
    chosen = []

    def choose_xla(*arguments):
        chosen.append(arguments)
        raise Decided()

    monkeypatch.setattr(hardware, 'choose_xla', choose_xla)

    def decided(logdir, *flags):
        with pytest.raises(Decided):
            run_main(train, ['--data_dir=%s' % data_dir, '--logdir=%s' % logdir] + list(flags))
        return chosen.pop()

    new = tmp_path / 'new'
    assert decided(new) == ('auto', True, record.TrainingOptions().batch_size)
    assert decided(new, '--batch_size=32', '--xla=on') == ('on', True, 32)
    assert decided(new, '--cpu_replicas=2', '--batch_size=64') == ('auto', False, 64)
    assert decided(new, '--num_gpus=1', '--batch_size=64') == ('auto', False, 64)
    assert decided(new, '--worker_hosts=127.0.0.1:1,127.0.0.1:2', '--batch_size=64') == (
        'auto', False, 64)
    monkeypatch.setenv('TF_CONFIG', '{"cluster": {"worker": ["a:1", "b:2"]}, "task": '
                                    '{"type": "worker", "index": 0}}')
    assert decided(new, '--batch_size=64') == ('auto', False, 64)
    monkeypatch.delenv('TF_CONFIG')
    assert decided(fp32[0], '--num_steps=%d' % (STEPS + 1)) == ('auto', True, 4)
    assert not new.exists()


def test_xla_compiles_the_step_and_resumes_exactly(data_dir, params, fp32, tmp_path):
    """Compiled, the step rounds differently (so XLA ran) but trains the same way."""
    logdir = tmp_path / 'xla'
    output = run(data_dir, params, logdir, '--xla=on')
    assert re.search(r'^arithmetic: fp32, XLA on$', output, re.M), output
    compiled = final(logdir)
    assert_close_but_not_equal(compiled, final(fp32[0]))
    resumed = stopped_after_step_2(logdir, tmp_path / 'resumed')
    run(data_dir, params, resumed, '--xla=on')
    assert_same_values(compiled, final(resumed))


def test_xla_reaches_the_cpu_in_a_fresh_process_resuming_a_run(data_dir, fp32, tmp_path):
    """train.py chooses XLA after reading the run it resumes, in a process without
    TF_XLA_FLAGS (this one has it: conftest.py); the step must still be compiled."""
    logdir = stopped_after_step_2(fp32[0], tmp_path / 'compiled')
    environment = {name: value for name, value in os.environ.items()
                   if name not in ('TF_XLA_FLAGS', 'TF_CONFIG')}
    result = run_script('train.py', '--data_dir=%s' % data_dir, '--logdir=%s' % logdir,
                        '--num_steps=%d' % STEPS, '--xla=on', '--num_samples=0',
                        env=environment)
    assert result.returncode == 0, describe(result)
    assert 'resumed from %s' % (logdir / 'model.ckpt-2') in result.stdout
    assert_close_but_not_equal(final(logdir), final(fp32[0]))


@BF16_SKIP
@pytest.mark.parametrize('output, local_condition', [('softmax', ''),
                                                    ('logistic_mixture', 'lowres:2')])
def test_bf16_keeps_the_likelihood_in_float32(output, local_condition):
    """In the graph the bf16 rewrite runs, the matrix products are bfloat16 (the condition
    network's too) and no op of the loss (the softmax cross-entropy, or the mixture's CDFs
    and logs) is."""
    from wavenet.model import WaveNetModel
    from wavenet.params import WaveNetParams
    params = WaveNetParams(dilations=(1, 2), residual_channels=8, dilation_channels=8,
                           skip_channels=8, output=output, mixture_components=3,
                           local_condition=local_condition, condition_channels=4)
    with tf.Graph().as_default():
        model = WaveNetModel(params, (4, 4))
        pixels = tf.constant(np.random.default_rng(0).integers(0, 256, (2, 16)), tf.int32)
        condition = (model.derive_condition(tf.reshape(pixels, [2, 4, 4, 1]))
                     if local_condition else None)
        loss, objective = model.loss(pixels, condition=condition, l2_strength=1e-4)
        step = tf.train.AdamOptimizer(1e-3).minimize(objective)
        config = hardware.session_config(tf.ConfigProto(), 'bf16')
        with tf.Session(config=config) as session:
            session.run(tf.global_variables_initializer())
            metadata = tf.RunMetadata()
            session.run([loss, step], options=tf.RunOptions(output_partition_graphs=True),
                        run_metadata=metadata)
    in_bf16 = [node for graph in metadata.partition_graphs for node in graph.node
               if 'T' in node.attr and node.attr['T'].type == tf.bfloat16.as_datatype_enum]
    assert any('MatMul' in node.op for node in in_bf16)
    assert bool(local_condition) == any(node.name.startswith('conditioning/') for node in in_bf16)
    assert not [node.name for node in in_bf16 if node.name.startswith('loss/')]
