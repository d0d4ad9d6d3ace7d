"""benchmarks/: FLOPs counted by hand, the speed report measured on train.py's graph, the
conditioning figures, scaling's reading of train.py, and the training curves."""
import contextlib
import dataclasses
import io
import itertools
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import train
from benchmarks import conditioning, plot_curves, run, scaling
from benchmarks.flops import flops_breakdown, flops_per_pixel
from conftest import (ROOT, TINY_PARAMS, png_pixels, run_main, tf, train_flags, write_json,
                      write_png)
from wavenet import errors, hardware, reader
from wavenet.model import WaveNetModel
from wavenet.params import WaveNetParams, load_params

SMALL = WaveNetParams(filter_width=3, initial_filter_width=4, dilations=(1, 2, 4),
                      residual_channels=5, dilation_channels=7, skip_channels=11,
                      quantization_channels=13)
SMALL_MIXTURE = dataclasses.replace(SMALL, output='logistic_mixture', mixture_components=2)


@pytest.fixture(scope='module')
def lowres(data_dir, tiny_params, tmp_path_factory):
    """A lowres:2 model of conftest's 8x8 images trained by train.py for 6 steps, validated at
    3 and 6: (logdir, what train.py printed)."""
    logdir = tmp_path_factory.mktemp('lowres') / 'logdir'
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run_main(train, train_flags(data_dir, logdir, 6, '--local_condition=lowres:2',
                                    '--checkpoint_every=3', '--num_samples=0',
                                    params=tiny_params))
    return logdir, printed.getvalue()


def test_flops_of_small_params_match_a_hand_count():
    assert flops_breakdown(SMALL) == {
        'input_convolution': 3 * 5,  # three additions of looked-up taps
        'filter_gate': 3 * 2 * 3 * 5 * 14, 'residual_1x1': 2 * 2 * 7 * 5,  # not in the last layer
        'skip_1x1': 3 * 2 * 7 * 11, 'output_1x1s': 2 * 11 * 11 + 2 * 11 * 13}
    assert flops_per_pixel(SMALL) == 2405
    assert flops_per_pixel(SMALL_MIXTURE) == 2405 - 2 * 11 * 13 + 2 * 11 * 3 * 2  # 3K outputs
    # The configs of the report: 18 layers of 32 channels, skip 128 (outputs 256 or 30); the
    # anchor's 20 layers with skip 256.
    layers = 18 * (8192 + 8192) + 17 * 2048 + 2 * 128 * 128
    assert flops_per_pixel(load_params(run.CONFIGS['default'])) == 32 + layers + 2 * 128 * 256
    assert flops_per_pixel(load_params(run.CONFIGS['mixture'])) == 32 + layers + 2 * 128 * 30
    assert flops_per_pixel(load_params(run.CONFIGS['anchor'])) == (32 + 20 * 8192 + 19 * 2048
                                                        + 20 * 16384 + 2 * 2 * 256 * 256)


@pytest.mark.parametrize('params', [SMALL, SMALL_MIXTURE], ids=['softmax', 'mixture'])
def test_flops_are_two_per_weight_of_the_model(params):
    """Each weight matrix multiplies once per pixel; the input tables are lookups."""
    with tf.Graph().as_default():
        weights = WaveNetModel(params, (4, 4)).weights
        multiply_adds = sum(math.prod(weight.shape.as_list()) for weight in weights
                            if 'input/tables' not in weight.name)
    assert flops_per_pixel(params) == 2 * multiply_adds + 3 * 5


def test_training_is_measured_on_the_graph_train_py_builds(lowres):
    """The variables of train.py's checkpoint (Adam's slots, the moving averages, the global
    step), the batch gathered from the images (data/), and steps that train."""
    logdir, _ = lowres
    params = WaveNetParams.from_dict(json.loads((logdir / 'run.json').read_text())['params'])
    settings = dataclasses.replace(run.QUICK, warmup_steps=0, timed_steps=2)
    with tf.Graph().as_default() as graph:
        result = run.measure_training(tf, params, 4, settings, 'train')
        measured = {variable.op.name for variable in tf.global_variables()}
        assert any(op.type == 'PyFunc' and op.name.startswith('data/')
                   for op in graph.get_operations())
    saved = {name for name, _ in tf.train.list_variables(str(logdir / 'model.ckpt-6'))}
    assert measured == saved - {'run_spec'}
    assert {'optimizer/beta1_power', 'global_step'} <= measured
    assert len(result['seconds']) == 2 and result['pixels_per_s'] == pytest.approx(
        4 * run.PIXELS / np.median(result['seconds']))


def test_only_the_xla_process_gets_the_cpu_flag():
    others = '--xla_dump_to=/tmp/x'
    for given in ({}, {'TF_XLA_FLAGS': hardware.XLA_FLAGS},
                  {'TF_XLA_FLAGS': '%s %s' % (hardware.XLA_FLAGS, others)}):
        off, on = (run.process_environment(kind, dict(given, PATH='/bin'))
                   for kind in ('train', 'train_xla'))
        assert off.get('TF_XLA_FLAGS', '').split() == others.split() * (others in str(given))
        assert on['TF_XLA_FLAGS'].split().count(hardware.XLA_FLAGS) == 1
        assert off['PATH'] == on['PATH'] == '/bin'


def test_training_and_the_default_store_are_measured_in_rounds_that_reverse():
    calls = []

    def run_one(kind, config, batch):
        calls.append((kind, config, batch))
        return {metric: float(len(calls)) for metric in set(run.METRIC.values())}
    run.measure_all(['default', 'mixture'], dataclasses.replace(run.Settings(), rounds=1), True,
                    run_one)
    first, calls = calls, []
    assert len(first) == len(set(first)) == 3 + 2 + 8 + 2 + 1 + 3 + 4  # the mixture's last
    assert ('train_bf16', 'default', 32) in first and ('queues', 'mixture', 16) not in first
    results = run.measure_all(['default', 'mixture'], run.Settings(), True, run_one)
    repeated = [m for m in first if m[0] in ('train', 'train_xla', 'train_bf16', 'ring')
                and m[2] in (8, 16, 32, 256)]
    assert calls == first + repeated[::-1] + repeated
    assert [kind for kind, config, batch in calls if config == 'default' and batch == 32] == [
        'train', 'train_xla', 'train_bf16', 'train_bf16', 'train_xla', 'train', 'train',
        'train_xla', 'train_bf16']  # XLA off and on take turns
    xla = next(r for r in results if (r['kind'], r['config'], r['batch'])
               == ('train_xla', 'default', 32))
    assert xla['processes'] == [index + 1 for index, call in enumerate(calls)
                                if call == ('train_xla', 'default', 32)]
    assert xla['pixels_per_s'] == xla['processes'][1]  # the median process


def test_the_report_has_a_row_per_measurement(tiny_params, monkeypatch):
    """Every kind of measurement runs (in this process, on tiny params) and the report has one
    row per measurement with finite positive numbers, the mixture's share of the peak right."""
    monkeypatch.setitem(run.CONFIGS, 'default', str(tiny_params))
    mixture = os.path.join(os.path.dirname(str(tiny_params)), 'tiny_mixture.json')
    write_json(mixture, dict(TINY_PARAMS, output='logistic_mixture'))
    monkeypatch.setitem(run.CONFIGS, 'mixture', mixture)
    monkeypatch.setattr(run, 'SIDE', 8)  # 8x8 images: quicker
    monkeypatch.setattr(run, 'PIXELS', 64)
    settings = dataclasses.replace(run.QUICK, train_batches=(2,), fast_batches=(2,),
                                   naive_batches=(2,), naive_pixels=2)

    measured = {}

    def run_one(kind, config, batch):  # XLA: the same numbers as without, not compiled
        with tf.Graph().as_default():
            if kind != 'train_xla':
                measured[config] = run.measure(tf, kind, load_params(run.CONFIGS[config]),
                                               batch, settings)
            return measured[config]
    results = run.measure_all(['default', 'mixture'], settings, False, run_one)
    machine = {'cpu': 'a CPU', 'cores': 2, 'bf16_units': False, 'matmul_size': 8,
               'fp32_gflops': 0.1, 'bf16_gflops': 0.05, 'tensorflow': '2', 'numpy': '2',
               'python': '3', 'date': 'today', 'load_average': '0.00, 0.00, 0.00'}
    report = run.format_report(machine, settings, True, ['default', 'mixture'], results)
    tables = {title: [line.strip('| ').split(' | ') for line in body.splitlines()
                      if line.startswith('| ') and not line.startswith('| config')]
              for title, body in re.findall(r'## (.+?)\n(.*?)(?=\n## |\Z)', report, re.S)}
    assert {title: len(rows) for title, rows in tables.items()} == {
        'Training': 3, 'Fast generation': 3, 'Naive generation': 1,
        'Priming for image completion': 1}
    for row in (row for rows in tables.values() for row in rows):
        for cell in row[2:]:
            if cell not in ('fp32', 'fp32 + XLA', 'ring', 'queues'):
                value = float(re.sub(r'[,x%]', '', cell.split('-')[0]))
                assert 0 < value < math.inf, (row, cell)
    [mixture_training] = [row for row in tables['Training'] if row[0] == 'mixture']
    gflops = 3 * flops_per_pixel(load_params(mixture)) * float(
        mixture_training[4].replace(',', '')) / 1e9
    assert float(mixture_training[6]) == pytest.approx(gflops, rel=0.01)
    assert float(mixture_training[7]) == pytest.approx(1000 * gflops, rel=0.01)


def test_the_measured_peak_counts_two_flops_per_multiply_add(monkeypatch):
    clock = itertools.count(0, 0.25)  # every timed product takes 0.25 s
    monkeypatch.setattr(run.time, 'perf_counter', lambda: next(clock))
    for dtype in (tf.float32, tf.bfloat16):
        assert run.matmul_gflops(tf, dtype, size=64, repeats=3) == 2 * 64 ** 3 / 0.25 / 1e9


def test_every_script_runs_as_a_module_from_the_repository_root():
    """No sys.path insertion; --help names every default, without importing TensorFlow."""
    processes = {name: subprocess.Popen(
        [sys.executable, '-X', 'importtime', '-m', 'benchmarks.' + name, '--help'], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ('run', 'scaling', 'plot_curves', 'conditioning')}
    for name, process in processes.items():
        out, imports = process.communicate(timeout=120)
        assert process.returncode == 0 and out.startswith('usage: python -m benchmarks.' + name)
        assert 'wavenet.cli' in imports and not re.search(r'\|\s*tensorflow\b', imports), name
        flags = re.findall(r'^  (--\w+)(.*(?:\n {4,}.*)*)', out, re.M)
        assert len(flags) >= 2 and all(re.search(r'\((default: |required)', ' '.join(
            text.split())) for _, text in flags), (name, flags)


def test_the_mean_differences_by_hand():
    conditions = np.array([[[[10]]], [[[20]]], [[[40]]]])  # three 1x1 conditions
    samples = np.array([[12, 10], [20, 30], [40, 44]]).reshape(3, 2, 1, 1, 1)
    own, other = conditioning.mean_differences(samples, conditions)
    assert own == pytest.approx((2 + 0 + 0 + 10 + 0 + 4) / 6)
    assert other == pytest.approx((8 + 10 + 20 + 10 + 30 + 34) / 6)  # 1 -> 2, 2 -> 3, 3 -> 1


def test_conditioning_prints_both_figures_and_writes_the_grid(lowres, data_dir, tmp_path,
                                                               capsys):
    logdir, _ = lowres
    grid_path = tmp_path / 'grid.png'
    out = run_main(conditioning, ['--checkpoint=%s' % logdir, '--data_dir=%s' % data_dir,
                                  '--num_images=3', '--samples=2', '--grid=%s' % grid_path],
                   capsys).stdout
    assert hardware.cpu_info()[0] in out and '--num_images=3' in out
    own, other = (float(value) for value in out.split('|')[-3:-1])
    grid, _ = png_pixels(grid_path)
    assert grid.shape == (3 * 9 - 1, 4 * 9 - 1)  # per image: condition, 2 samples, original
    cells = np.pad(grid, ((0, 1), (0, 1))).reshape(3, 9, 4, 9)[:, :8, :, :8].swapaxes(1, 2)
    # Three images evenly spaced over the folder's twelve.
    images = reader.load_folder(str(data_dir), (8, 8), 256)[0].images[[0, 5, 11]]
    np.testing.assert_array_equal(cells[:, 3], images)
    blocks = np.floor(images.reshape(3, 4, 2, 4, 2).mean(axis=(2, 4)) + 0.5)
    np.testing.assert_array_equal(cells[:, 0, ::2, ::2], blocks)  # the condition, 2x2 blocks
    samples = np.floor(cells[:, 1:3].reshape(3, 2, 4, 2, 4, 2).mean(axis=(3, 5)) + 0.5)
    assert own == pytest.approx(np.abs(samples - blocks[:, None]).mean(), abs=0.006)
    assert other == pytest.approx(np.abs(samples - np.roll(blocks, -1, 0)[:, None]).mean(),
                                  abs=0.006)  # image i against image i + 3 // 2


def test_conditioning_of_a_gray_model_is_on_luminance(tmp_path, capsys):
    rng = np.random.default_rng(3)
    for index in range(4):  # coloured strokes on a background of another colour
        image = np.empty((8, 8, 3), np.uint8)
        image[:], image[2:6, 3:5] = rng.integers(0, 256, (2, 3))
        write_png(tmp_path / 'colour' / ('%d.png' % index), image)
    write_json(tmp_path / 'params.json', dict(TINY_PARAMS, position_channels=2))
    run_main(train, train_flags(tmp_path / 'colour', tmp_path / 'gray', 2, '--channels=3',
                                '--local_condition=gray', '--num_samples=0',
                                params=tmp_path / 'params.json'))
    out = run_main(conditioning, ['--checkpoint=%s' % (tmp_path / 'gray'), '--samples=1',
                                  '--data_dir=%s' % (tmp_path / 'colour'),
                                  '--grid=%s' % (tmp_path / 'grid.png')], capsys).stdout
    assert '(gray)' in out and 'difference of the luminance' in out
    own, other = (float(value) for value in out.split('|')[-3:-1])
    grid, mode = png_pixels(tmp_path / 'grid.png')
    assert mode == 'RGB' and grid.shape == (4 * 9 - 1, 3 * 9 - 1, 3)
    cells = np.pad(grid, ((0, 1), (0, 1), (0, 0))).reshape(4, 9, 3, 9, 3)[:, :8, :, :8]
    conditions, samples = cells[:, :, 0, :, 0], cells[:, :, 1].astype(int)  # shown gray
    luma = (samples @ [299, 587, 114] + 500) // 1000
    assert own == pytest.approx(np.abs(luma - conditions).mean(), abs=0.006)
    # Image i against image i + 4 // 2.
    assert other == pytest.approx(np.abs(luma - np.roll(conditions, -2, 0)).mean(), abs=0.006)


def test_scaling_reads_train_pys_step_times(lowres):
    _, printed = lowres
    assert len(re.findall('^step ', printed, re.M)) >= 6
    seconds = scaling.step_seconds(printed)
    assert len(seconds) == 5 and all(value > 0 for value in seconds)


def test_training_curves_of_a_training_run(lowres, tmp_path):
    logdir, _ = lowres
    curves = plot_curves.read_run(tf, 'lowres', str(logdir))
    np.testing.assert_array_equal(curves.train.steps, np.arange(1, 7))
    np.testing.assert_array_equal(curves.validation.steps, [3, 6])
    assert (curves.train.values > 0).all() and (curves.validation.values > 0).all()
    drawn = plot_curves.plot_curves([curves, curves._replace(label='again')],
                                    str(tmp_path / 'png' / 'curves.png'), size=(320, 200))
    assert drawn == {'lowres train': 6, 'lowres validation': 2, 'again train': 6,
                     'again validation': 2}
    assert png_pixels(tmp_path / 'png' / 'curves.png')[0].shape[:2] == (200, 320)
    with pytest.raises(errors.Error, match='no events.out.tfevents'):
        plot_curves.read_run(tf, 'empty', str(tmp_path))


def write_events(logdir, scalars, suffix=''):
    """Writes (tag, step, value) scalars into a new event file in `logdir`."""
    writer = tf.summary.FileWriter(str(logdir), filename_suffix=suffix)
    for tag, step, value in scalars:
        writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag=tag, simple_value=value)]),
                           step)
    writer.close()


def test_a_resumed_run_keeps_the_later_value_of_a_step(tmp_path):
    """Event files in name order; another tag, a NaN and a truncated last record (a file still
    being written) are left out."""
    write_events(tmp_path / 'train', [('bits_per_dim', 1, 3.0), ('bits_per_dim', 2, 2.0),
                                      ('loss', 3, 9.0), ('bits_per_dim', 3, 9.0)], '.1')
    write_events(tmp_path / 'train', [('bits_per_dim', 3, 1.5), ('bits_per_dim', 4, np.nan),
                                      ('bits_per_dim', 5, 1.25)], '.2')
    write_events(tmp_path / 'validation', [('bits_per_dim', 2, 2.5)])
    second = sorted((tmp_path / 'train').iterdir())[-1]
    second.write_bytes(second.read_bytes()[:-5])
    curves = plot_curves.read_run(tf, 'resumed', str(tmp_path))
    assert dict(zip(curves.train.steps.tolist(), curves.train.values.tolist())) == {
        1: 3.0, 2: 2.0, 3: 1.5}
    assert curves.validation.steps.tolist() == [2] and curves.validation.values.tolist() == [2.5]


def test_the_y_axis_follows_the_validation_and_the_training_is_smoothed():
    train = [np.array([9.0, 4.0, 1.0]), np.array([8.0, 1.5])]
    assert plot_curves.y_limits(train, [np.array([2.0, 1.5]), np.array([1.75])]) == (
        pytest.approx(1.0 - 0.06), pytest.approx(2.0 + 0.06))
    top = np.percentile([9.0, 4.0, 1.0, 8.0, 1.5], 98)  # without validation
    assert plot_curves.y_limits(train, []) == (pytest.approx(1.0 - 0.06 * (top - 1.0)),
                                               pytest.approx(top + 0.06 * (top - 1.0)))
    np.testing.assert_allclose(plot_curves.moving_average(np.array([1.0, 2, 3, 4, 5]), 3),
                               [1.5, 2, 3, 4, 4.5])
