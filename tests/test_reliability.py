"""Training from the command line: interruption, exact resume, numerical faults, warnings.

Most tests call train.main / generate.main in this process, in a graph of their own (results
are deterministic, so an in-process run equals a `python train.py` run). What needs a process
of its own runs train.py as a subprocess: a signal (SIGINT, SIGTERM, a second Ctrl-C) goes to
a real process, whose exit status and stderr are checked.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import generate
import train
from wavenet import checkpoints, cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARAMS = ('{"dilations": [1, 2, 4, 8], "residual_channels": 8, "dilation_channels": 8, '
          '"skip_channels": 16}')
RESUME_STEPS = 200  # the exact-resume runs; the interrupt lands at step 20 or soon after


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Ten random 6x6 images and a tiny params file."""
    folder = tmp_path_factory.mktemp('reliability')
    rng = np.random.default_rng(0)
    for index in range(10):
        os.makedirs(folder / 'images', exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (6, 6)).astype(np.uint8)).save(
            folder / 'images' / ('%d.png' % index))
    (folder / 'params.json').write_text(PARAMS)
    return folder


def train_flags(data, logdir, *flags):
    return ['--data_dir=%s' % (data / 'images'), '--wavenet_params=%s' % (data / 'params.json'),
            '--logdir=%s' % logdir, '--batch_size=3', '--num_samples=0',
            '--seed=5', '--xla=off'] + list(flags)


def train_command(data, logdir, *flags):
    """`python train.py` with train_flags, for a subprocess."""
    return [sys.executable, os.path.join(ROOT, 'train.py')] + train_flags(data, logdir, *flags)


def run_train(data, logdir, *flags):
    """train.main in a graph of its own (in this process)."""
    with tf.Graph().as_default():
        train.main(train_flags(data, logdir, *flags))


def run_generate(*flags):
    with tf.Graph().as_default():
        generate.main(list(flags))


def checkpoint_values(logdir):
    """{name: value} of every variable of the newest checkpoint but the run's spec."""
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(logdir)))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name != 'run_spec'}


def wait_for_line(process, text, timeout=60):
    """Reads process stdout until a line containing `text`; returns the lines read."""
    lines, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError('never printed %r; got %r' % (text, lines))


def interrupt(command, after_line, signum):
    """Starts training, sends `signum` once it prints `after_line`, and waits for it to exit.

    Returns:
        (exit code, stdout, stderr, the step it reported stopping at).
    """
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    wait_for_line(process, after_line)
    process.send_signal(signum)
    output, errors = process.communicate(timeout=120)
    assert 'interrupted at step' in output, errors
    stopped_at = int(output.split('interrupted at step ')[1].split(';')[0])
    return process.returncode, output, errors, stopped_at


def test_interrupted_and_resumed_run_equals_uninterrupted_run(data, tmp_path, capsys):
    """Random batches, dropout masks and shifts are functions of the step: resume is exact.

    The interrupted run is a subprocess (it gets a real SIGINT); the uninterrupted run and
    the resumed run are in this process."""
    regularization = ('--dropout=0.3', '--augment_shift=2')
    steps = '--num_steps=%d' % RESUME_STEPS
    run_train(data, tmp_path / 'straight', steps, '--checkpoint_every=%d' % RESUME_STEPS,
              *regularization)
    returncode, _, errors, stopped_at = interrupt(
        train_command(data, tmp_path / 'interrupted', steps,
                      '--checkpoint_every=%d' % RESUME_STEPS, '--print_every=10',
                      *regularization), 'step 20/%d' % RESUME_STEPS, signal.SIGINT)
    assert returncode == 0, errors
    assert 20 <= stopped_at < RESUME_STEPS, 'the run was not interrupted halfway'
    assert tf.train.latest_checkpoint(str(tmp_path / 'interrupted')).endswith('-%d' % stopped_at)
    capsys.readouterr()
    run_train(data, tmp_path / 'interrupted', steps, *regularization)
    assert 'resumed from %s' % (tmp_path / 'interrupted' / ('model.ckpt-%d' % stopped_at)) in (
        capsys.readouterr().out)
    straight, interrupted = checkpoint_values(tmp_path / 'straight'), checkpoint_values(
        tmp_path / 'interrupted')
    assert sorted(straight) == sorted(interrupted)
    assert any('Adam' in name for name in straight), 'optimizer slots are not checkpointed'
    assert straight['global_step'] == interrupted['global_step'] == RESUME_STEPS
    for name, value in straight.items():
        np.testing.assert_allclose(interrupted[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_sigterm_saves_and_exits_zero(data, tmp_path):
    returncode, output, errors, stopped_at = interrupt(
        train_command(data, tmp_path / 'run', '--num_steps=100000', '--print_every=5'),
        'step 5/', signal.SIGTERM)
    assert returncode == 0, errors
    assert 'SIGTERM' in errors
    assert tf.train.latest_checkpoint(str(tmp_path / 'run')).endswith('-%d' % stopped_at)
    assert 'saved %s' % (tmp_path / 'run' / ('model.ckpt-%d' % stopped_at)) in output


def test_diverging_loss_stops_with_the_last_good_checkpoint(data, tmp_path, capsys):
    """Step 1 (a finite loss) makes the weights huge, step 2's loss is not finite."""
    logdir = tmp_path / 'run'
    with pytest.raises(SystemExit) as exit_:
        run_train(data, logdir, '--num_steps=500', '--optimizer=sgd', '--learning_rate=1e30',
                  '--learning_rate_schedule=constant', '--checkpoint_every=1')
    assert exit_.value.code == 1
    errors = capsys.readouterr().err
    error_lines = [line for line in errors.splitlines() if line.strip()]
    assert len(error_lines) == 1 and error_lines[0].startswith('error: the loss became'), errors
    assert 'at step 2' in error_lines[0] and 'model.ckpt-1' in error_lines[0], error_lines
    assert checkpoints.list_checkpoints(str(logdir)) == [str(logdir / 'model.ckpt-1')]


def test_generation_from_a_model_with_nan_weights_is_a_clear_error(data, tmp_path, capsys):
    logdir = tmp_path / 'run'
    run_train(data, logdir, '--num_steps=1')
    checkpoint = tf.train.latest_checkpoint(str(logdir))
    with tf.Graph().as_default():
        reader = tf.train.load_checkpoint(checkpoint)
        variables = [tf.Variable(reader.get_tensor(name), name=name)
                     for name in reader.get_variable_to_shape_map()]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            biases = next(v for v in variables if v.op.name == 'wavenet/output/logits_biases')
            session.run(biases.assign(tf.fill(tf.shape(biases), float('nan'))))
            tf.train.Saver(variables).save(session, str(logdir / 'broken.ckpt'),
                                           write_meta_graph=False)
    capsys.readouterr()
    with pytest.raises(cli.UsageError) as error:
        run_generate('--checkpoint=%s' % (logdir / 'broken.ckpt'),
                     '--out=%s' % (tmp_path / 'out.png'), '--num_images=2')
    message = str(error.value)
    assert 'non-finite probabilities' in message and '\n' not in message, message
    errors = capsys.readouterr().err
    assert 'error' not in errors.lower(), errors  # the UsageError is the one error
    assert not (tmp_path / 'out.png').exists()


def test_second_interrupt_exits_at_once_and_keeps_the_last_checkpoint(data, tmp_path):
    """The second Ctrl-C lands while the first one's final save is still sampling 28x28
    images (about a second): the run exits at once with 128 + SIGINT, not after the save."""
    rng = np.random.default_rng(1)
    for index in range(4):
        os.makedirs(tmp_path / 'images', exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (28, 28)).astype(np.uint8)).save(
            tmp_path / 'images' / ('%d.png' % index))
    command = train_command(data, tmp_path / 'run', '--num_steps=100000', '--print_every=5',
                            '--checkpoint_every=5', '--num_samples=64')
    command[command.index('--data_dir=%s' % (data / 'images'))] = (
        '--data_dir=%s' % (tmp_path / 'images'))
    command.remove('--num_samples=0')
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    wait_for_line(process, 'step 10: saved')
    process.send_signal(signal.SIGINT)
    first = process.stderr.readline()
    while first and 'SIGINT' not in first:
        first = process.stderr.readline()
    assert 'SIGINT: finishing this step and saving' in first, first
    process.send_signal(signal.SIGINT)
    output, errors = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGINT, (output, errors)
    assert 'second SIGINT: exiting now' in errors, errors
    assert 'interrupted at step' not in output, output
    assert 'Traceback' not in errors
    latest = tf.train.latest_checkpoint(str(tmp_path / 'run'))
    assert tf.train.load_variable(latest, 'global_step') >= 10


def test_receptive_field_shorter_than_a_row_warns(data, tmp_path, capsys):
    params = tmp_path / 'short.json'
    params.write_text('{"dilations": [1], "residual_channels": 4, "dilation_channels": 4, '
                      '"skip_channels": 4}')
    run_train(data, tmp_path / 'run', '--num_steps=1', '--wavenet_params=%s' % params)
    output = capsys.readouterr()
    assert 'receptive field: 3 pixels (0.5 rows of 6)' in output.out
    assert 'warning: the receptive field is shorter than one image row' in output.err
    assert tf.train.latest_checkpoint(str(tmp_path / 'run')).endswith('-1')


def test_a_moved_logdir_still_resumes(data, tmp_path, capsys):
    run_train(data, tmp_path / 'old', '--num_steps=2')
    shutil.move(str(tmp_path / 'old'), str(tmp_path / 'new'))
    capsys.readouterr()
    run_train(data, tmp_path / 'new', '--num_steps=3')
    assert 'resumed from %s' % (tmp_path / 'new' / 'model.ckpt-2') in capsys.readouterr().out
    assert tf.train.latest_checkpoint(str(tmp_path / 'new')).endswith('-3')


def test_dropout_and_shifts_change_what_training_learns(data, tmp_path):
    """The flags reach the training graph: the same seed and steps end with other weights."""
    off = ('--dropout=0', '--augment_shift=0')
    runs = {'plain': off, 'dropout': off + ('--dropout=0.3',),
            'shifts': off + ('--augment_shift=2',)}
    weights = {}
    for name, flags in runs.items():
        run_train(data, tmp_path / name, '--num_steps=3', *flags)
        weights[name] = checkpoint_values(tmp_path / name)
    for name in ('dropout', 'shifts'):
        assert any(not np.array_equal(weights[name][key], weights['plain'][key])
                   for key in weights['plain'] if 'Adam' not in key), name
