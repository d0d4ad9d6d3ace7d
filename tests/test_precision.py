"""Training precision (fp32, bf16 mixed precision) and XLA: the CPU checks, the refusals on
machines without bf16 units, end-to-end runs where the machine has them, and XLA runs.

The runs are tiny and pass --xla=off (compiling costs them more than it saves) unless XLA is
what they test.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import train as train_script
from wavenet import cli, hardware

PARAMS = {'dilations': [1, 2, 4], 'residual_channels': 4, 'dilation_channels': 4,
          'skip_channels': 8}
CPU = hardware.cpu_info()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Without bf16 units (AVX512-BF16 or AMX) the bf16 path cannot run: TensorFlow's oneDNN
# rewrite leaves the graph in float32 there, so a "bf16" run would be an fp32 run. Its
# refusal on such CPUs is tested everywhere.
BF16_SKIP = pytest.mark.skipif(not hardware.has_bf16_units(CPU[1]),
                               reason='this CPU (%s) has no bf16 units' % CPU[0])


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Ten random 6x6 images and the tiny params file beside them."""
    root = tmp_path_factory.mktemp('precision')
    rng = np.random.default_rng(1)
    (root / 'images').mkdir()
    for index in range(10):
        Image.fromarray(rng.integers(0, 256, (6, 6)).astype(np.uint8)).save(
            root / 'images' / ('%d.png' % index))
    (root / 'params.json').write_text(json.dumps(PARAMS))
    return root / 'images'


def run_train(data, logdir, num_steps, *extra):
    """train.main in a graph of its own; returns the final checkpoint's variables."""
    with tf.Graph().as_default():
        train_script.main(['--data_dir=%s' % data, '--logdir=%s' % logdir,
                           '--num_steps=%d' % num_steps, '--batch_size=4', '--num_samples=0',
                           '--xla=off', '--wavenet_params=%s' % (data.parent / 'params.json')]
                          + list(extra))
    return checkpoint_variables(logdir, num_steps)


def checkpoint_variables(logdir, step):
    """{name: value} of every variable in the logdir's checkpoint of `step`."""
    prefix = str(logdir / ('model.ckpt-%d' % step))
    return {name: tf.train.load_variable(prefix, name)
            for name, _ in tf.train.list_variables(prefix)}


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
    hardware.check_precision('fp32', 0, ('AMD EPYC', {'avx2'}))
    hardware.check_precision('bf16', 0, ('Xeon', {'avx512f', 'amx_bf16'}))
    with pytest.raises(hardware.PrecisionError, match=r'this CPU \(AMD EPYC\) has no bf16'):
        hardware.check_precision('bf16', 0, ('AMD EPYC', {'avx2'}))
    with pytest.raises(hardware.PrecisionError, match='not for GPUs yet'):
        hardware.check_precision('bf16', 2, ('Xeon', {'amx_bf16'}))


def test_the_bf16_rewrite_is_a_session_option():
    config = hardware.use_precision(tf.ConfigProto(), 'bf16')
    assert config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == 1
    plain = hardware.use_precision(tf.ConfigProto(), 'fp32')
    assert plain.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == 0


def test_bf16_without_bf16_units_is_refused_in_one_line(data, tmp_path, monkeypatch):
    """On every machine: the CPU is made to look like one without bf16 units."""
    monkeypatch.setattr(hardware, 'cpu_info', lambda: ('Plain CPU', {'avx2', 'fma'}))
    with pytest.raises(cli.UsageError) as error:
        run_train(data, tmp_path / 'run', 2, '--precision=bf16')
    assert str(error.value) == ('--precision=bf16: this CPU (Plain CPU) has no bf16 units (no '
                                'avx512_bf16 or amx_bf16 flag in /proc/cpuinfo); train with '
                                '--precision=fp32')
    assert not (tmp_path / 'run').exists()


def test_a_bf16_run_keeps_its_precision(data, tmp_path, monkeypatch):
    """Stored in training.json like the other options; another --precision is refused."""
    monkeypatch.setattr(hardware, 'cpu_info', lambda: ('Plain CPU', {'avx2', 'fma'}))
    run_train(data, tmp_path / 'run', 1)
    assert json.loads((tmp_path / 'run' / 'training.json').read_text())['precision'] == 'fp32'
    with pytest.raises(cli.UsageError, match='--precision=bf16 differs from fp32'):
        run_train(data, tmp_path / 'run', 2, '--precision=bf16')


def validation_bits(output, step):
    """The validation bits/dim printed at the checkpoint of `step`."""
    match = re.search(r'^step %d: saved .*, validation bits/dim ([\d.]+)$' % step, output, re.M)
    assert match, output
    return float(match.group(1))


@BF16_SKIP
def test_bf16_trains_close_to_fp32_and_resumes_exactly(data, tmp_path, capsys):
    fp32 = run_train(data, tmp_path / 'fp32', 6, '--learning_rate_schedule=constant')
    fp32_bits = validation_bits(capsys.readouterr().out, 6)
    bf16 = run_train(data, tmp_path / 'bf16', 6, '--precision=bf16',
                     '--learning_rate_schedule=constant')
    bf16_bits = validation_bits(capsys.readouterr().out, 6)
    assert abs(bf16_bits - fp32_bits) < 0.03 * fp32_bits, (bf16_bits, fp32_bits)
    weights = [name for name in fp32 if name != 'run_spec']
    for name in weights:
        assert bf16[name].dtype == fp32[name].dtype, name  # variables stay float32
    # The rewrite ran: the products rounded to bf16 move the weights elsewhere.
    assert any(not np.array_equal(bf16[name], fp32[name]) for name in weights)
    run_train(data, tmp_path / 'resumed', 3, '--precision=bf16',
              '--learning_rate_schedule=constant')
    resumed = run_train(data, tmp_path / 'resumed', 6)
    for name, value in bf16.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)


def test_xla_is_on_by_default_at_large_batches_on_one_cpu_and_reaches_it_through_flags(
        monkeypatch):
    assert hardware.xla_by_default(True, 32) and hardware.xla_by_default(True, 64)
    assert not hardware.xla_by_default(True, 16) and not hardware.xla_by_default(False, 64)
    assert hardware.xla_environment(None) == '--tf_xla_cpu_global_jit'
    assert hardware.xla_environment('--xla_dump_to=/tmp/x') == ('--xla_dump_to=/tmp/x '
                                                               '--tf_xla_cpu_global_jit')
    assert hardware.xla_environment('--tf_xla_cpu_global_jit') == '--tf_xla_cpu_global_jit'
    monkeypatch.delenv('TF_XLA_FLAGS', raising=False)
    monkeypatch.delenv('TF_CONFIG', raising=False)

    def switched(flags):
        args = train_script.get_arguments(flags)
        return train_script.switch_xla(args, train_script.read_cluster(args)[1] is not None)

    for flags in (['--xla=auto', '--batch_size=32'], ['--xla=on', '--batch_size=2']):
        assert switched(flags)
        assert os.environ['TF_XLA_FLAGS'] == '--tf_xla_cpu_global_jit'
        monkeypatch.delenv('TF_XLA_FLAGS')
    for flags in (['--xla=off', '--batch_size=32'], ['--num_gpus=1', '--batch_size=32'],
                  ['--cpu_replicas=2', '--batch_size=64'], ['--batch_size=16'],
                  ['--worker_hosts=127.0.0.1:1,127.0.0.1:2', '--batch_size=64']):
        assert not switched(flags), flags
        assert 'TF_XLA_FLAGS' not in os.environ
    config = hardware.use_xla(tf.ConfigProto(), True)
    assert config.graph_options.optimizer_options.global_jit_level == tf.OptimizerOptions.ON_1
    assert hardware.use_xla(tf.ConfigProto(), False) == tf.ConfigProto()


def test_xla_by_default_follows_the_batch_size_a_resumed_run_keeps(data, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setattr(hardware, 'XLA_MIN_BATCH', 4)
    run_train(data, tmp_path / 'run', 1)  # batch 4, kept in training.json
    args = train_script.get_arguments(['--data_dir=%s' % data, '--logdir=%s' % (tmp_path / 'run'),
                                       '--num_steps=2'])
    assert args.batch_size is None
    train_script.resolve_run(args)
    assert args.batch_size == 4 and train_script.switch_xla(args, False)
    args.batch_size = 3
    assert not train_script.switch_xla(args, False)


def test_xla_reaches_the_cpu_in_a_fresh_process_resuming_a_run(data, tmp_path):
    """train.py decides XLA after reading the resumed run, in a process without
    TF_XLA_FLAGS (this one has it: conftest.py): its step must still be compiled."""
    constant = '--learning_rate_schedule=constant'
    run_train(data, tmp_path / 'plain', 2, constant)
    shutil.copytree(tmp_path / 'plain', tmp_path / 'compiled')
    plain = run_train(data, tmp_path / 'plain', 3)
    environment = {name: value for name, value in os.environ.items()
                   if name not in ('TF_XLA_FLAGS', 'TF_CONFIG')}
    subprocess.run([sys.executable, os.path.join(ROOT, 'train.py'), '--data_dir=%s' % data,
                    '--logdir=%s' % (tmp_path / 'compiled'), '--num_steps=3', '--xla=on',
                    '--num_samples=0'],
                   env=environment, check=True, timeout=300, stdout=subprocess.DEVNULL)
    compiled = checkpoint_variables(tmp_path / 'compiled', 3)
    names = [name for name in plain if name != 'run_spec']
    assert any(not np.array_equal(compiled[name], plain[name]) for name in names)
    for name in names:
        np.testing.assert_allclose(compiled[name], plain[name], rtol=0, atol=1e-3,
                                   err_msg=name)


def test_xla_compiles_the_step_and_resumes_exactly(data, tmp_path, capsys):
    """Compiled, the step rounds differently (so XLA ran) but trains the same way."""
    constant = '--learning_rate_schedule=constant'  # the same rates whatever --num_steps
    compiled = run_train(data, tmp_path / 'xla', 4, '--xla=on', constant)
    assert re.search(r'^arithmetic: fp32, XLA on$', capsys.readouterr().out, re.M)
    plain = run_train(data, tmp_path / 'plain', 4, constant)
    names = [name for name in plain if name != 'run_spec']
    assert any(not np.array_equal(compiled[name], plain[name]) for name in names)
    for name in names:
        np.testing.assert_allclose(compiled[name], plain[name], rtol=0, atol=1e-3,
                                   err_msg=name)
    run_train(data, tmp_path / 'resumed', 2, '--xla=on', constant)
    resumed = run_train(data, tmp_path / 'resumed', 4, '--xla=on')
    for name, value in compiled.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)
