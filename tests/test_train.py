"""train.py: what a run writes and prints, its TensorBoard events, resuming with the options it
keeps, bad input, interruption and exact resume."""
import collections
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import evaluate
import generate
import train
from conftest import (CHECKPOINTS, EARLIER, LATEST, ROOT, STEPS, TINY_PARAMS, checkpoint_values,
                      error_of, flag_error, png_pixels, run_main, snapshot, tf, train_flags,
                      write_file, write_json, write_png)
from wavenet import checkpoints

LAYERS = len(TINY_PARAMS['dilations'])
TRAIN_LOSS_LINE = r'^step (\d+)/\d+  loss (\S+)  '
TRAIN_BITS_LINE = r'^step (\d+)/\d+  loss \S+  bits/dim (\S+)  '
VALIDATION_LINE = r'^step (\d+): saved \S+, validation bits/dim (\S+)$'


def printed(text, pattern):
    """{step: value} of every line of `text` that matches `pattern` (groups: step, value)."""
    return {int(match.group(1)): float(match.group(2))
            for match in re.finditer(pattern, text, re.M)}


def events(folder):
    """Every event of every event file directly in `folder`."""
    names = sorted(name for name in os.listdir(str(folder)) if 'tfevents' in name)
    assert names, 'no event file in %s' % folder
    return [event for name in names
            for event in tf.train.summary_iterator(os.path.join(str(folder), name))]


def summary_values(folder):
    """(step, Summary.Value) of every summary value in `folder`'s events."""
    return [(event.step, value) for event in events(folder) if event.HasField('summary')
            for value in event.summary.value]


def scalars(folder):
    """{tag: {step: value}} of the scalar summaries in `folder`'s events."""
    found = collections.defaultdict(dict)
    for step, value in summary_values(folder):
        if value.HasField('simple_value'):
            found[value.tag][step] = value.simple_value
    return found


def test_a_run_writes_its_record_checkpoints_samples_and_quiet_progress(trained, data_dir):
    logdir, result = trained
    assert result.stderr == '', result.stderr  # TensorFlow's start-up lines held back
    names = set(os.listdir(str(logdir)))
    for name in ('run.json', 'checkpoint', EARLIER + '.index', LATEST + '.index', 'train',
                 'validation', 'samples'):
        assert name in names, sorted(names)
    # The HParams of the run in the logdir's own events, its metrics in train/ and validation/.
    assert len([name for name in names if 'tfevents' in name]) == 1, names
    run = json.loads((logdir / 'run.json').read_text())
    assert {key: run['params'][key] for key in TINY_PARAMS} == TINY_PARAMS
    assert (run['image_size'], run['classes'], run['channels']) == ([8, 8], ['bright', 'dark'],
                                                                   1)
    assert run['training']['batch_size'] == 4 and run['training']['learning_rate'] == 0.03
    stored = tf.train.load_variable(str(logdir / LATEST), 'run_spec').decode()
    assert json.loads(stored) == run  # the same record in every checkpoint
    assert tf.train.load_variable(str(logdir / LATEST), 'global_step') == STEPS
    for step in CHECKPOINTS:  # two samples side by side, 1 pixel of padding
        image, mode = png_pixels(logdir / 'samples' / ('samples-%d.png' % step))
        assert (mode, image.shape) == ('L', (8, 17))

    out = result.stdout
    # 1 + (2 - 1) * (1 + 2 + 4 + 8) + 1 pixels.
    assert re.search(r'^receptive field: 17 pixels \(2\.1 rows of 8\)$', out, re.M), out
    assert [line for line in out.splitlines() if line.startswith('data: ')] == [
        'data: %s: 11 training and 1 validation images (10%% held out), 8x8 grayscale, 2 '
        'classes' % data_dir], out
    assert re.search(r'^training from step 0 to %d, batch 4$' % STEPS, out, re.M), out
    assert 'moving averages: decay 0.999, used by validation and samples\n' in out, out
    assert sorted(printed(out, TRAIN_BITS_LINE)) == list(range(1, STEPS + 1)), out
    assert re.search(r'^step %d/%d .*\d pixels/s$' % (STEPS, STEPS), out, re.M), out
    assert sorted(printed(out, VALIDATION_LINE)) == list(CHECKPOINTS), out


def test_training_and_validation_events(trained):
    logdir, result = trained
    found = scalars(logdir / 'train')
    assert set(found) == {'loss', 'bits_per_dim', 'learning_rate'}, sorted(found)
    for tag, values in found.items():
        assert sorted(values) == list(range(1, STEPS + 1)), (tag, values)
    for step, value in printed(result.stdout, TRAIN_LOSS_LINE).items():
        assert found['loss'][step] == pytest.approx(value, abs=1e-4), step
        assert found['bits_per_dim'][step] == pytest.approx(value / math.log(2), abs=1e-4)
    for step, value in found['learning_rate'].items():  # cosine, at global step - 1
        assert value == pytest.approx(0.03 * (1 + math.cos(math.pi * (step - 1) / STEPS)) / 2,
                                      rel=1e-5, abs=1e-8), step
    assert not [value for _, value in summary_values(logdir / 'train')
                if value.HasField('histo')], 'histograms without --histograms'
    validation = scalars(logdir / 'validation')
    reported = printed(result.stdout, VALIDATION_LINE)
    assert set(validation) == {'bits_per_dim'} and sorted(validation['bits_per_dim']) == sorted(
        reported)
    for step, value in reported.items():
        assert validation['bits_per_dim'][step] == pytest.approx(value, abs=1e-4)
    assert max(reported.values()) < 7.5, reported  # learnt: a uniform model scores 8
    images = {step: value.image for step, value in summary_values(logdir / 'train')
              if value.tag == 'samples'}
    assert sorted(images) == list(CHECKPOINTS)
    for step, image in images.items():  # the sample files, 3x larger
        native, _ = png_pixels(logdir / 'samples' / ('samples-%d.png' % step))
        assert (image.width, image.height, image.colorspace) == (51, 24, 1)
        zoomed, _ = png_pixels(io.BytesIO(image.encoded_image_string))
        np.testing.assert_array_equal(zoomed, native.repeat(3, 0).repeat(3, 1))


def test_the_graph_reads_data_input_layers_output_loss(trained):
    graphs = [event.graph_def for event in events(trained.logdir / 'train') if event.graph_def]
    assert len(graphs) == 1
    graph = tf.GraphDef()
    graph.ParseFromString(graphs[0])
    names = [node.name for node in graph.node]
    scopes = collections.Counter(name.split('/')[0] for name in names if '/' in name)
    for scope in ('wavenet', 'data', 'input', 'layers', 'output', 'loss', 'optimizer', 'train',
                  'validation', 'generation'):
        assert scopes[scope] > 0, scopes
    # No stray op at the top level: only the variables outside the model.
    assert {name for name in names if '/' not in name} == {'global_step', 'run_spec'}
    for use in ('', 'validation/', 'generation/'):
        inside = [name for name in names if name.startswith(use) and (
            use or not name.startswith(('validation/', 'generation/')))]
        assert {int(index) for name in inside
                for index in re.findall(r'(?:^|/)layers/layer(\d+)/', name)} == set(
                    range(LAYERS)), use
    # One edge from the layers into the output (else TensorBoard sets the output aside), and
    # the L2 terms in the loss.
    into_output = {source.lstrip('^').split(':')[0] for node in graph.node
                   if node.name.startswith('output/') for source in node.input}
    assert {name for name in into_output if name.startswith('layers/')} == {'layers/skips'}
    assert [node for node in graph.node if node.op == 'L2Loss']
    assert all(node.name.startswith('loss/') for node in graph.node if node.op == 'L2Loss')


def test_the_run_settings_are_in_tensorboard(trained, data_dir):
    texts = {value.tag: tf.make_ndarray(value.tensor).item().decode()
             for _, value in summary_values(trained.logdir / 'train')
             if value.metadata.plugin_data.plugin_name == 'text'}
    assert sorted(texts) == ['settings/data', 'settings/params', 'settings/training']
    assert '| dilations | [1, 2, 4, 8] |' in texts['settings/params'], texts
    assert '| batch_size | 4 |' in texts['settings/training'], texts
    assert '| data_dir | "%s" |' % data_dir in texts['settings/data'], texts
    hparams = [value for _, value in summary_values(trained.logdir)]
    assert [value.metadata.plugin_data.plugin_name for value in hparams] == ['hparams']


def test_resume_continues_to_num_steps_with_the_options_it_keeps(trained, logdir_copy,
                                                                 data_dir, capsys):
    # Only the logdir and the steps: the run's params and options come from its record.
    out = run_main(train, ['--data_dir=%s' % data_dir, '--logdir=%s' % logdir_copy,
                           '--num_steps=%d' % (STEPS + 2), '--xla=off'], capsys).stdout
    assert 'resumed from %s\n' % (logdir_copy / LATEST) in out, out
    assert 'training from step %d to %d, batch 4\n' % (STEPS, STEPS + 2) in out, out
    assert tf.train.load_variable(str(logdir_copy / ('model.ckpt-%d' % (STEPS + 2))),
                                  'global_step') == STEPS + 2
    before = snapshot(logdir_copy)
    out = run_main(train, train_flags(data_dir, logdir_copy, STEPS + 2), capsys).stdout
    assert 'step {0} already reached --num_steps={0}; nothing to train'.format(STEPS + 2) in out
    assert snapshot(logdir_copy) == before


@pytest.mark.parametrize('flag, kept', [('--seed=9', '0'), ('--batch_size=3', '4'),
                                        ('--learning_rate_schedule=constant', 'cosine'),
                                        ('--channels=3', '1'), ('--image_size=6x5', '(8, 8)')])
def test_a_resumed_run_refuses_other_options_untouched(logdir_copy, data_dir, flag, kept):
    before = snapshot(logdir_copy)
    message = error_of(train, train_flags(data_dir, logdir_copy, STEPS + 2, flag))
    name, value = flag[2:].split('=')
    value = '(6, 5)' if name == 'image_size' else value
    assert message.startswith('%s=%s differs from %s, which the run in %s keeps' % (
        name, value, kept, logdir_copy)), message
    assert snapshot(logdir_copy) == before


def test_resume_with_other_params_is_refused(logdir_copy, data_dir, tmp_path):
    wide = tmp_path / 'wide.json'
    write_json(wide, dict(TINY_PARAMS, residual_channels=16))
    before = snapshot(logdir_copy)
    message = error_of(train, train_flags(data_dir, logdir_copy, STEPS + 2, params=wide))
    assert 'differ from those of the run in %s in residual_channels' % logdir_copy in message
    message = error_of(train, train_flags(data_dir, logdir_copy, STEPS + 2, '--gc_channels=4'))
    assert 'in gc_channels' in message, message
    assert snapshot(logdir_copy) == before


def test_a_resumed_run_equals_an_uninterrupted_one(data_dir, tiny_params, tmp_path):
    """SIGINT to a real process saves and exits 0; the batches, dropout masks, shifts and
    symmetries are functions of the seed and the step, so the resumed run ends where one that
    never stopped does (every variable, Adam's slots included)."""
    flags = ('--dropout=0.3', '--augment_shift=2', '--augment_symmetries=0.5',
             '--checkpoint_every=100', '--print_every=5', '--num_samples=0')
    run_main(train, train_flags(data_dir, tmp_path / 'straight', 40, *flags,
                                params=tiny_params))
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'train.py')] + train_flags(
        data_dir, tmp_path / 'stopped', 40, *flags, params=tiny_params), cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not process.stdout.readline().startswith('step 5/'):
        assert process.poll() is None, process.stderr.read()
    process.send_signal(signal.SIGINT)
    output, errors = process.communicate(timeout=120)
    assert process.returncode == 0 and 'SIGINT: finishing this step and saving' in errors
    stopped = int(re.search(r'interrupted at step (\d+);', output).group(1))
    assert 5 <= stopped < 40, output
    assert 'saved %s' % (tmp_path / 'stopped' / ('model.ckpt-%d' % stopped)) in output
    # Resumed with the logdir alone: the steps, the schedule and the options are the run's.
    run_main(train, ['--data_dir=%s' % data_dir, '--logdir=%s' % (tmp_path / 'stopped'),
                     '--xla=off'])
    straight, resumed = (checkpoint_values(tmp_path / name / 'model.ckpt-40')
                         for name in ('straight', 'stopped'))
    assert any(name.endswith('/Adam') for name in straight)
    assert sorted(straight) == sorted(resumed)
    for name, value in straight.items():
        np.testing.assert_allclose(resumed[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_dropout_and_shifts_change_what_training_learns(data_dir, tiny_params, tmp_path):
    weights = {}
    for name, flags in (('plain', ()), ('dropout', ('--dropout=0.3',)),
                        ('shifts', ('--augment_shift=2',)),
                        ('symmetries', ('--augment_symmetries=0.9',))):
        run_main(train, train_flags(data_dir, tmp_path / name, 3, '--num_samples=0', *flags,
                                    params=tiny_params))
        weights[name] = checkpoint_values(tmp_path / name / 'model.ckpt-3')
    for name in ('dropout', 'shifts', 'symmetries'):
        assert any(not np.array_equal(weights[name][key], weights['plain'][key])
                   for key in weights['plain']), name


def test_a_run_with_symmetries_is_scored_and_sampled_upright(data_dir, tiny_params, tmp_path,
                                                             capsys):
    """Its symmetry terms are trained and saved; evaluation and generation build the model
    without them (the upright image has none) and still restore every weight they use."""
    logdir = tmp_path / 'symmetries'
    run_main(train, train_flags(data_dir, logdir, 3, '--num_samples=0',
                                '--augment_symmetries=0.9', params=tiny_params))
    terms = checkpoint_values(logdir / 'model.ckpt-3')['wavenet/conditioning/symmetry_terms']
    assert terms.shape[0] == 7 and np.abs(terms).min(axis=1).max() > 0
    out = run_main(evaluate, ['--checkpoint=%s' % logdir, '--data_dir=%s' % data_dir],
                   capsys).stdout
    assert re.search(r'bits/dim: \d\.\d{4}\n$', out), out
    run_main(generate, ['--checkpoint=%s' % logdir, '--num_images=1',
                        '--out=%s' % (tmp_path / 'one.png')], capsys)
    assert (tmp_path / 'one.png').exists()


BAD_DATA = {
    'missing': lambda folder: None,
    'empty': lambda folder: folder.mkdir(),
    'text only': lambda folder: write_file(folder / 'dark' / 'readme.txt', 'not an image\n'),
    'corrupt only': lambda folder: [write_file(folder / 'dark' / 'empty.png', b''),
                                    write_file(folder / 'dark' / 'noise.jpg', bytes(512))],
}


@pytest.mark.parametrize('kind', sorted(BAD_DATA))
def test_bad_data_dir_is_refused_before_anything_is_written(tiny_params, tmp_path, kind):
    folder = tmp_path / 'data'
    BAD_DATA[kind](folder)
    message = error_of(train, train_flags(folder, tmp_path / 'logdir', params=tiny_params))
    assert str(folder) in message, message
    assert not (tmp_path / 'logdir').exists()


def test_corrupt_images_are_skipped_with_a_warning(data_dir, tiny_params, tmp_path, capsys):
    data = tmp_path / 'data'
    shutil.copytree(str(data_dir), str(data))
    broken = data / 'dark' / 'broken\nname.png'  # a newline: the warning stays one line
    write_file(broken, b'\x89PNG\r\n\x1a\n' + b'truncated garbage' * 4)
    write_file(data / 'bright' / 'notes.txt', 'a text file among the images\n')
    result = run_main(train, train_flags(data, tmp_path / 'logdir', params=tiny_params), capsys)
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith(
        'warning: skipped %s: ' % str(broken).replace('\n', '\\n')), result
    assert '2 classes, 1 file skipped' in result.stdout, result


@pytest.mark.parametrize('flag', ['--batch_size=0', '--num_steps=0', '--image_size=0',
                                  '--image_size=abc', '--dropout=1', '--augment_shift=-1',
                                  '--validation_fraction=1', '--channels=2', '--seed=-1',
                                  '--seed=%d' % 2 ** 70, '--learning_rate=0',
                                  '--l2_regularization_strength=inf', '--num_samples=5000',
                                  '--precision=fp16', '--learning_rate_schedule=linear'])
def test_bad_flag_values_are_one_line_naming_the_flag(flag, capsys):
    assert flag.split('=')[0] in flag_error(train, ['--num_steps=4', flag], capsys)


@pytest.mark.parametrize('content, named', [
    (None, 'does not exist'), ('{"dilations": [1, 2,', 'not valid JSON'),
    (json.dumps(dict(TINY_PARAMS, skip_chanels=16)), 'skip_chanels'),
    (json.dumps(dict(TINY_PARAMS, dilations=[0])), 'dilations'),
    (json.dumps(dict(TINY_PARAMS, residual_channels=8.5)), 'residual_channels'),
    ('{"dilations": %s1%s}' % ('[' * 100000, ']' * 100000), 'nested too deeply'),
    ('{"dilations": [1, Infinity]}', 'not valid JSON'),
])
def test_bad_params_files_are_one_error_naming_the_file(data_dir, tmp_path, content, named):
    params = tmp_path / 'params.json'
    if content is not None:
        write_file(params, content)
    message = error_of(train, train_flags(data_dir, tmp_path / 'logdir', params=params))
    assert str(params) in message and named in message, message
    assert not (tmp_path / 'logdir').exists()


def test_image_size_histograms_and_a_short_receptive_field(data_dir, tmp_path, capsys):
    params = tmp_path / 'short.json'
    write_json(params, dict(TINY_PARAMS, dilations=[1]))
    result = run_main(train, train_flags(data_dir, tmp_path / 'logdir', 2, '--histograms',
                                         '--image_size=6x5', params=params), capsys)
    assert 'receptive field: 3 pixels (0.6 rows of 5)' in result.stdout, result
    assert 'warning: the receptive field is shorter than one image row' in result.stderr
    assert json.loads((tmp_path / 'logdir' / 'run.json').read_text())['image_size'] == [6, 5]
    image, _ = png_pixels(tmp_path / 'logdir' / 'samples' / 'samples-2.png')
    assert image.shape == (6, 11)
    histograms = [value.tag for _, value in summary_values(tmp_path / 'logdir' / 'train')
                  if value.HasField('histo')]
    trainable = {name for name, _ in tf.train.list_variables(str(tmp_path / 'logdir'))
                 if name.startswith('wavenet/') and '/Adam' not in name
                 and 'ExponentialMovingAverage' not in name}
    assert sorted(set(histograms)) == sorted('histograms/' + name for name in trainable)
    assert len(histograms) == 2 * len(trainable)


def test_the_most_common_image_size_wins_and_is_reported(data_dir, tiny_params, tmp_path,
                                                         capsys):
    folder = tmp_path / 'images'
    shutil.copytree(str(data_dir), str(folder))
    write_png(folder / 'dark' / 'stray.png', np.zeros((30, 30)))
    out = run_main(train, train_flags(folder, tmp_path / 'run', 1, '--num_samples=0',
                                      params=tiny_params), capsys).stdout
    assert 'the training images have 2 sizes: 8x8 (11), 30x30 (1); all are resized to 8x8' \
        in out, out


def test_runs_that_cannot_fit_are_refused_before_reading_data(data_dir, tiny_params, tmp_path):
    for flags in (['--batch_size=1000000000', '--image_size=6'],
                  ['--image_size=4096', '--batch_size=64']):
        message = error_of(train, train_flags(data_dir, tmp_path / 'big', 2, *flags,
                                              params=tiny_params))
        assert re.search(r'needs about [\d.]+ GiB, and this machine has [\d.]+ GiB: lower the '
                         r'batch size or the image size', message), message
    message = error_of(train, train_flags(data_dir, tmp_path / 'big', 2, '--augment_shift=8',
                                          params=tiny_params))
    assert 'augment_shift=8 must be less than the image side (8x8)' in message, message
    message = error_of(train, train_flags(data_dir, tmp_path / 'big', 2, '--image_size=6x8',
                                          '--augment_symmetries=0.5', params=tiny_params))
    assert 'augment_symmetries needs square images, got 6x8' in message, message
    assert not (tmp_path / 'big').exists()


def test_a_diverging_loss_stops_with_the_last_good_checkpoint(data_dir, tiny_params, tmp_path,
                                                              capsys):
    logdir = tmp_path / 'run'
    with pytest.raises(SystemExit) as exit_:
        run_main(train, train_flags(data_dir, logdir, 500, '--learning_rate=1e30',
                                    '--learning_rate_schedule=constant', '--checkpoint_every=1',
                                    '--num_samples=0', params=tiny_params), capsys)
    assert exit_.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: the loss became'), lines
    step = int(re.search(r'at step (\d+);', lines[0]).group(1))
    assert 'model.ckpt-%d' % (step - 1) in lines[0]
    assert checkpoints.list_checkpoints(str(logdir))[0] == str(logdir / (
        'model.ckpt-%d' % (step - 1)))


def test_a_second_interrupt_exits_at_once_and_keeps_the_last_checkpoint(data_dir, tmp_path):
    """The second Ctrl-C lands while the first one's save still samples 64 images."""
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'train.py')] + train_flags(
        data_dir, tmp_path / 'run', 100000, '--print_every=5', '--checkpoint_every=5',
        '--num_samples=64', '--image_size=28'), cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    while not process.stdout.readline().startswith('step 5: saved'):
        assert process.poll() is None, process.stderr.read()
    process.send_signal(signal.SIGINT)
    while 'SIGINT: finishing this step and saving' not in process.stderr.readline():
        assert process.poll() is None
    process.send_signal(signal.SIGINT)
    output, errors = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGINT, (output, errors)
    assert 'second SIGINT: exiting now' in errors and 'Traceback' not in errors, errors
    assert 'interrupted at step' not in output, output
    assert checkpoints.newest_readable_checkpoint(str(tmp_path / 'run'))[0] is not None
