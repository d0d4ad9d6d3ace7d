"""End-to-end tests of the command-line scripts: train.py, generate.py, wavenet.evaluate.

Every script runs as a subprocess in a temporary folder, on a tiny data set the tests write
(12 grayscale 8x8 PNG images in two classes) and a tiny model. Each subprocess pays for a
TensorFlow import, so the runs are few, and the module-scoped `runs` fixture starts all of
them at once in a small thread pool: a test only waits for the results it checks. Runs that
change a logdir work on a copy of the one trained logdir.
"""
import collections
import concurrent.futures
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import tensorflow.compat.v1 as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, 'train.py')
GENERATE = os.path.join(ROOT, 'generate.py')
TIMEOUT = 300  # seconds per subprocess; the machine may be busy with other work

TINY_PARAMS = {'dilations': [1, 2, 4, 8], 'residual_channels': 8, 'dilation_channels': 8,
               'skip_channels': 16, 'quantization_channels': 256}
SMALL_FLAGS = ['--batch_size=4', '--checkpoint_every=2', '--num_samples=2', '--print_every=1',
               '--summary_every=1']
TF_NOISE = ('oneDNN', 'WARNING:tensorflow', 'I0000', 'W0000')

Result = collections.namedtuple('Result', 'returncode stdout stderr seconds')


# ----------------------------------------------------------------------------- helpers


def run_script(args, cwd, env_extra=None):
    """Runs `python ARGS` in `cwd`; returns a Result.

    The TF_CPP_MIN_LOG_LEVEL that conftest.py sets for this process is removed, so the
    scripts' own silencing of TensorFlow is what is tested.
    """
    env = dict(os.environ)
    env.pop('TF_CPP_MIN_LOG_LEVEL', None)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, env.get('PYTHONPATH')]))
    env.update(env_extra or {})
    started = time.perf_counter()
    proc = subprocess.run([sys.executable] + [str(arg) for arg in args], cwd=str(cwd), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=TIMEOUT)
    return Result(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - started)


def describe(result):
    return 'exit %d\n--- stdout:\n%s\n--- stderr:\n%s' % (result.returncode, result.stdout,
                                                       result.stderr)


def train_args(data_dir, logdir, params=None, num_steps=4, extra=()):
    args = [TRAIN, '--data_dir=%s' % data_dir, '--logdir=%s' % logdir,
            '--num_steps=%d' % num_steps] + SMALL_FLAGS + list(extra)
    if params is not None:
        args.append('--wavenet_params=%s' % params)
    return args


def write_png(path, pixels):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    Image.fromarray(np.asarray(pixels, np.uint8), mode='L').save(str(path), format='PNG')


def write_json(path, content):
    with open(str(path), 'w') as json_file:
        json.dump(content, json_file)


def snapshot(folder):
    """{relative path: (sha256 of the content, mtime_ns)} of every file below `folder`."""
    files = {}
    for parent, _, names in os.walk(str(folder)):
        for name in names:
            path = os.path.join(parent, name)
            with open(path, 'rb') as stream:
                digest = hashlib.sha256(stream.read()).hexdigest()
            files[os.path.relpath(path, str(folder))] = (digest, os.stat(path).st_mtime_ns)
    return files


def assert_usage_error(result, *names):
    """Exit 2 and exactly one stderr line, 'error: ...', that contains every one of `names`."""
    assert result.returncode == 2, describe(result)
    assert 'Traceback' not in result.stderr, describe(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, describe(result)
    assert lines[0].startswith('error:'), describe(result)
    for name in names:
        assert str(name) in lines[0], 'expected %r in the error line\n%s' % (name,
                                                                            describe(result))
    return lines[0]


def assert_argparse_error(result, flag):
    """Exit 2 from argparse: a usage line and an 'error:' line naming the flag."""
    assert result.returncode == 2, describe(result)
    assert 'Traceback' not in result.stderr, describe(result)
    error_lines = [line for line in result.stderr.splitlines() if 'error:' in line]
    assert len(error_lines) == 1, describe(result)
    assert flag in error_lines[0], describe(result)
    assert result.stdout == '', describe(result)


def events(logdir):
    """Every event of every event file in `logdir`."""
    found = []
    names = sorted(name for name in os.listdir(str(logdir)) if 'tfevents' in name)
    assert names, 'no event file in %s' % logdir
    for name in names:
        found.extend(tf.train.summary_iterator(os.path.join(str(logdir), name)))
    return found


def summary_values(logdir):
    """(step, Summary.Value) of every summary value in `logdir`'s events."""
    return [(event.step, value) for event in events(logdir) if event.HasField('summary')
            for value in event.summary.value]


def option_blocks(help_text):
    """{'--flag': its help text on one line} parsed from argparse --help output."""
    blocks, current = {}, None
    for line in help_text.splitlines():
        match = re.match(r'^  (-[^\s,]+)', line)
        if match:
            current = match.group(1)
            blocks[current] = line
        elif current is not None and line.startswith('   '):
            blocks[current] += ' ' + line
        else:
            current = None
    return {flag: ' '.join(text.split()) for flag, text in blocks.items()}


def png(path):
    with Image.open(str(path)) as image:
        image.load()
        return image.mode, image.size


# ----------------------------------------------------------------------------- fixtures


class Runs:
    """Named runs in a thread pool; runs[name] waits for one and returns its result."""

    def __init__(self, workers):
        self.pool = concurrent.futures.ThreadPoolExecutor(workers)
        self.futures = {}

    def submit(self, name, function):
        self.futures[name] = self.pool.submit(function)

    def __getitem__(self, name):
        return self.futures[name].result()


@pytest.fixture(scope='module')
def paths(tmp_path_factory):
    """The folders and files every run uses, all written here."""
    root = tmp_path_factory.mktemp('cli')
    p = collections.OrderedDict(root=root)
    rng = np.random.default_rng(0)

    def write_tiny_folder(folder):
        for name, base in (('dark', 40), ('bright', 210)):
            for index in range(6):
                noise = rng.integers(-30, 31, (8, 8))
                write_png(folder / name / ('%s_%02d.png' % (name, index)),
                          np.clip(base + noise, 0, 255))

    p['data'] = root / 'data'
    write_tiny_folder(p['data'])
    p['params'] = root / 'tiny_params.json'
    write_json(p['params'], TINY_PARAMS)
    p['params_wide'] = root / 'wide_params.json'
    write_json(p['params_wide'], dict(TINY_PARAMS, residual_channels=16))
    p['params_missing'] = root / 'no_such_params.json'
    p['params_malformed'] = root / 'malformed_params.json'
    p['params_malformed'].write_text('{"dilations": [1, 2,')
    p['params_unknown'] = root / 'unknown_params.json'
    write_json(p['params_unknown'], dict(TINY_PARAMS, skip_chanels=16))
    p['params_invalid'] = root / 'invalid_params.json'
    write_json(p['params_invalid'], dict(TINY_PARAMS, dilations=[0]))

    p['data_missing'] = root / 'no_such_data'
    p['data_empty'] = root / 'empty_data'
    p['data_empty'].mkdir()
    p['data_text'] = root / 'text_data'
    (p['data_text'] / 'dark').mkdir(parents=True)
    (p['data_text'] / 'dark' / 'readme.txt').write_text('not an image\n')
    p['data_corrupt'] = root / 'corrupt_data'
    (p['data_corrupt'] / 'dark').mkdir(parents=True)
    (p['data_corrupt'] / 'dark' / 'empty.png').write_bytes(b'')
    (p['data_corrupt'] / 'dark' / 'noise.jpg').write_bytes(
        np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8).tobytes())
    p['data_one_bad'] = root / 'one_bad_data'
    shutil.copytree(str(p['data']), str(p['data_one_bad']))
    p['bad_file'] = p['data_one_bad'] / 'dark' / 'broken.png'
    p['bad_file'].write_bytes(b'\x89PNG\r\n\x1a\n' + b'truncated garbage' * 4)
    p['text_file'] = p['data_one_bad'] / 'bright' / 'notes.txt'
    p['text_file'].write_text('a text file among the images\n')
    p['no_checkpoint_dir'] = root / 'no_checkpoint'
    p['no_checkpoint_dir'].mkdir()

    p['logdir'] = root / 'logdir'
    p['gen'] = root / 'gen'
    return p


@pytest.fixture(scope='module')
def runs(paths):
    """Starts every run of this module; tests wait for the ones they check.

    Order: the training run first, then the quick argparse runs, a few runs that need no
    logdir (to use the workers while training runs), the runs on the trained logdir (the
    two resumes, the longest chain, first), and the rest.
    """
    p = paths
    root = p['root']
    workers = 3
    jobs = Runs(workers)
    quick, independent, dependent = [], [], []

    def script(*args, env_extra=None):
        return run_script(list(args), root, env_extra)

    def copy_logdir(name):
        copy = root / name
        shutil.copytree(str(p['logdir']), str(copy))
        return copy

    # Quick: refused by argparse, or --help, before TensorFlow is imported.
    fresh = root / 'never_created'
    for flag in ('--batch_size=0', '--batch_size=-1', '--num_steps=0', '--image_size=0',
                 '--image_size=abc', '--dropout=1', '--dropout=-0.1', '--augment_shift=-1'):
        quick.append(('train ' + flag, lambda flag=flag: script(
            *train_args(p['data'], fresh / 'flags', p['params']) + [flag])))
    for flag in ('--temperature=0', '--temperature=-1', '--lanes=0'):
        quick.append(('generate ' + flag, lambda flag=flag: script(
            GENERATE, '--checkpoint=%s' % p['logdir'], '--out=%s' % (p['gen'] / 'never.png'),
            flag)))
    # -X importtime lists every module imported: --help must not import TensorFlow.
    for name, path in (('train_help', TRAIN), ('generate_help', GENERATE)):
        quick.append((name, lambda path=path: run_script(
            ['-X', 'importtime', path, '--help'], root, {'COLUMNS': '200'})))

    # Runs that need no trained logdir.
    def sgd_6x5():
        logdir = root / 'logdir_6x5'
        trained = script(*train_args(p['data'], logdir, p['params'], num_steps=2,
                                     extra=['--optimizer=sgd', '--histograms',
                                            '--image_size=6x5']))
        out = p['gen'] / 'six_by_five.png'
        # The slow path: the fast one already wrote the sample grids during training.
        generated = script(GENERATE, '--checkpoint=%s' % logdir, '--out=%s' % out,
                           '--num_images=1', '--fast_generation=false', '--seed=3')
        return logdir, trained, generated, out
    independent.append(('sgd_6x5', sgd_6x5))
    independent.append(('one_bad_rmsprop', lambda: script(*train_args(
        p['data_one_bad'], root / 'logdir_rmsprop', p['params'], num_steps=2,
        extra=['--optimizer=rmsprop']))))
    for name in ('data_missing', 'data_empty', 'data_text', 'data_corrupt'):
        independent.append((name, lambda name=name: script(
            *train_args(p[name], fresh / name, p['params']))))
    for name in ('params_missing', 'params_malformed', 'params_unknown', 'params_invalid'):
        independent.append((name, lambda name=name: script(
            *train_args(p['data'], fresh / name, p[name]))))
    independent.append(('generate_missing', lambda: script(
        GENERATE, '--checkpoint=%s' % (root / 'no_such_logdir' / 'model.ckpt-4'),
        '--out=%s' % (p['gen'] / 'never.png'))))
    independent.append(('generate_no_checkpoint', lambda: script(
        GENERATE, '--checkpoint=%s' % p['no_checkpoint_dir'],
        '--out=%s' % (p['gen'] / 'never.png'))))

    # Runs on the trained logdir (read only) or on copies of it.
    def resume():
        logdir = copy_logdir('logdir_resume')
        first = script(*train_args(p['data'], logdir, num_steps=6))
        latest_after_first = tf.train.latest_checkpoint(str(logdir))
        second = script(*train_args(p['data'], logdir, p['params'], num_steps=6))
        return logdir, first, latest_after_first, second
    dependent.append(('resume', resume))

    def changed_params():
        logdir = copy_logdir('logdir_changed_params')
        before = snapshot(logdir)
        result = script(*train_args(p['data'], logdir, p['params_wide'], num_steps=6))
        return before, snapshot(logdir), result
    dependent.append(('changed_params', changed_params))

    def generate(*flags):
        return script(GENERATE, '--checkpoint=%s' % p['logdir'], *flags)
    one_a = p['gen'] / 'missing' / 'nested' / 'one.png'
    one_b = p['gen'] / 'one_again.png'
    dependent.append(('generate_one', lambda: generate(
        '--out=%s' % one_a, '--num_images=1', '--seed=7')))
    dependent.append(('generate_one_again', lambda: generate(
        '--out=%s' % one_b, '--num_images=1', '--seed=7')))
    dependent.append(('generate_grid', lambda: generate(
        '--out=%s' % (p['gen'] / 'grid.png'), '--num_images=4', '--seed=1')))
    for state in ('ring', 'queues', 'arrays'):
        dependent.append(('generate_lanes_' + state, lambda state=state: generate(
            '--out=%s' % (p['gen'] / ('lanes_%s.png' % state)), '--num_images=5',
            '--batch_size=3', '--lanes=2', '--generation_state=' + state, '--seed=3')))
    dependent.append(('generate_out_dir', lambda: script(
        GENERATE, '--checkpoint=%s' % (p['logdir'] / 'model.ckpt-2'),
        '--out_dir=%s' % (p['gen'] / 'out_dir' / 'images'), '--num_images=3', '--seed=2')))
    dependent.append(('evaluate', lambda: script(
        '-m', 'wavenet.evaluate', '--checkpoint=%s' % p['logdir'],
        '--data_dir=%s' % p['data'])))
    dependent.append(('evaluate_self_ensemble', lambda: script(
        '-m', 'wavenet.evaluate', '--checkpoint=%s' % p['logdir'],
        '--checkpoint=%s' % p['logdir'], '--data_dir=%s' % p['data'])))
    dependent.append(('evaluate_ensemble', lambda: script(
        '-m', 'wavenet.evaluate', '--checkpoint=%s' % p['logdir'],
        '--checkpoint=%s' % (p['logdir'] / 'model.ckpt-2'), '--data_dir=%s' % p['data'])))
    dependent.append(('generate_ensemble', lambda: generate(
        '--checkpoint=%s' % (p['logdir'] / 'model.ckpt-2'),
        '--out=%s' % (p['gen'] / 'ensemble.png'), '--num_images=2', '--seed=4')))

    def ensemble_mismatch():
        jobs['sgd_6x5']  # its 6x5 logdir exists
        return script('-m', 'wavenet.evaluate', '--checkpoint=%s' % p['logdir'],
                      '--checkpoint=%s' % (root / 'logdir_6x5'), '--data_dir=%s' % p['data'])
    dependent.append(('ensemble_mismatch', ensemble_mismatch))
    dependent.append(('evaluate_missing', lambda: script(
        '-m', 'wavenet.evaluate', '--checkpoint=%s' % p['logdir'],
        '--data_dir=%s' % p['data_missing'])))

    def generate_broken_logdir(name, change):
        def task():
            logdir = copy_logdir(name)
            change(logdir)
            before = snapshot(logdir)
            result = script(GENERATE, '--checkpoint=%s' % logdir,
                            '--out=%s' % (p['gen'] / (name + '.png')), '--num_images=1')
            return logdir, before, snapshot(logdir), result
        return task

    def edit_params(logdir):
        params_path = logdir / 'params.json'
        params = json.loads(params_path.read_text())
        params['residual_channels'] = 16
        write_json(params_path, params)
    dependent.append(('generate_no_params', generate_broken_logdir(
        'logdir_no_params', lambda logdir: (logdir / 'params.json').unlink())))
    dependent.append(('generate_edited_params', generate_broken_logdir(
        'logdir_edited', edit_params)))

    def after_training(function):
        def task():
            jobs['train']  # the trained logdir exists (or test_train_end_to_end says why not)
            return function()
        return task

    jobs.submit('train', lambda: script(*train_args(p['data'], p['logdir'], p['params'])))
    for name, function in (quick + independent[:workers - 1]
                           + [(name, after_training(function)) for name, function in dependent]
                           + independent[workers - 1:]):
        jobs.submit(name, function)
    yield jobs
    jobs.pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope='module')
def trained(runs, paths):
    """The result of the one training run; the logdir is paths['logdir']."""
    return runs['train']


# ----------------------------------------------------------------------------- training


def test_train_end_to_end(trained, paths):
    assert trained.returncode == 0, describe(trained)
    logdir = paths['logdir']
    names = set(os.listdir(str(logdir)))
    for name in ('params.json', 'data.json', 'checkpoint', 'model.ckpt-2.index',
                 'model.ckpt-4.index'):
        assert name in names, sorted(names)
    for step in (2, 4):
        assert any(name.startswith('model.ckpt-%d.data-' % step) for name in names), names
    stored_params = json.loads((logdir / 'params.json').read_text())
    assert {key: stored_params.get(key) for key in TINY_PARAMS} == TINY_PARAMS, stored_params
    data = json.loads((logdir / 'data.json').read_text())
    assert data == {'image_size': [8, 8], 'classes': ['bright', 'dark'], 'channels': 1}
    assert tf.train.latest_checkpoint(str(logdir)) == str(logdir / 'model.ckpt-4')
    # Two samples in a grid of 2 columns with 1 pixel of padding.
    assert png(logdir / 'samples' / 'samples-4.png') == ('L', (17, 8))
    assert (logdir / 'samples' / 'samples-2.png').exists()

    lines = trained.stdout.splitlines()
    # 1 + (2 - 1) * (1 + 2 + 4 + 8) + 1 pixels.
    assert [line for line in lines if line.startswith('receptive field: 17 pixels')], \
        describe(trained)
    data_lines = [line for line in lines if line.startswith('data: ')]
    assert len(data_lines) == 1, describe(trained)
    for part in (str(paths['data']), '11 training and 1 validation images', '8x8',
                 '2 classes'):
        assert part in data_lines[0], data_lines[0]
    assert 'skipped' not in data_lines[0]
    assert [line for line in lines if line.startswith('step 4/4 ') and 'pixels/s' in line], \
        describe(trained)
    assert [line for line in lines if re.match(r'^step 1/4 .*bits/dim', line)], \
        describe(trained)
    for step in (2, 4):
        assert [line for line in lines if line.startswith('step %d: saved ' % step)
                and 'model.ckpt-%d' % step in line], describe(trained)
    for noise in TF_NOISE:
        assert noise not in trained.stdout + trained.stderr, describe(trained)
    assert trained.stderr.strip() == '', describe(trained)


def test_tensorboard_events(trained, paths):
    assert trained.returncode == 0, describe(trained)
    values = summary_values(paths['logdir'])
    scalars = collections.defaultdict(dict)
    for step, value in values:
        if value.HasField('simple_value'):
            scalars[value.tag][step] = value.simple_value
    for tag in ('train/loss', 'train/bits_per_dim', 'train/learning_rate'):
        assert sorted(scalars[tag]) == [1, 2, 3, 4], (tag, scalars[tag])
        assert all(math.isfinite(v) for v in scalars[tag].values()), (tag, scalars[tag])
    assert sorted(scalars['validation/bits_per_dim']) == [2, 4], scalars
    assert all(0 < v < 16 for v in scalars['validation/bits_per_dim'].values()), scalars
    for step, loss in scalars['train/loss'].items():
        assert scalars['train/bits_per_dim'][step] == pytest.approx(loss / math.log(2),
                                                                    rel=1e-4)
    images = [(step, value.image) for step, value in values
              if value.tag == 'samples' and value.HasField('image')]
    assert sorted(step for step, _ in images) == [2, 4], values
    for _, image in images:
        assert (image.width, image.height) == (17, 8)
        assert image.encoded_image_string.startswith(b'\x89PNG')
    assert not [value.tag for _, value in values if value.HasField('histo')]
    assert any(event.graph_def for event in events(paths['logdir']))


def test_resume_continues_to_num_steps(runs, paths):
    logdir, first, latest_after_first, second = runs['resume']
    assert first.returncode == 0, describe(first)
    assert re.search(r'^resumed from \S*model\.ckpt-4$', first.stdout, re.M), describe(first)
    assert 'training from step 4 to 6' in first.stdout, describe(first)
    assert re.search(r'^step 6/6 .*pixels/s', first.stdout, re.M), describe(first)
    assert latest_after_first is not None and latest_after_first.endswith('-6')
    assert tf.train.load_variable(latest_after_first, 'global_step') == 6

    assert second.returncode == 0, describe(second)
    assert 'nothing to train' in second.stdout, describe(second)
    assert not re.search(r'^step \d+/', second.stdout, re.M), describe(second)
    assert tf.train.latest_checkpoint(str(logdir)).endswith('model.ckpt-6')


def test_resume_with_different_params_is_refused(runs):
    before, after, result = runs['changed_params']
    assert_usage_error(result, 'residual_channels')
    assert after == before


# ----------------------------------------------------------------------------- generation


def test_generate_one_image_into_missing_folder(runs, paths):
    result = runs['generate_one']
    assert result.returncode == 0, describe(result)
    out = paths['gen'] / 'missing' / 'nested' / 'one.png'
    assert png(out) == ('L', (8, 8))
    assert 'wrote %s' % out in result.stdout
    assert 'seed 7' in result.stdout
    for noise in TF_NOISE:
        assert noise not in result.stdout + result.stderr, describe(result)


def test_generate_same_seed_same_image(runs, paths):
    first, second = runs['generate_one'], runs['generate_one_again']
    assert first.returncode == 0, describe(first)
    assert second.returncode == 0, describe(second)
    one = (paths['gen'] / 'missing' / 'nested' / 'one.png').read_bytes()
    again = (paths['gen'] / 'one_again.png').read_bytes()
    assert one == again


def test_generate_grid(runs, paths):
    result = runs['generate_grid']
    assert result.returncode == 0, describe(result)
    # 2 columns and 2 rows of 8x8 images with 1 pixel of padding between them.
    assert png(paths['gen'] / 'grid.png') == ('L', (2 * 8 + 1, 2 * 8 + 1))


@pytest.mark.parametrize('state', ['ring', 'queues', 'arrays'])
def test_generate_in_lanes_with_every_state(runs, paths, state):
    """5 images in batches of 3 (the last one padded), each batch in 2 lanes."""
    result = runs['generate_lanes_' + state]
    assert result.returncode == 0, describe(result)
    assert png(paths['gen'] / ('lanes_%s.png' % state)) == ('L', (3 * 8 + 2, 2 * 8 + 1))


def test_generate_out_dir_from_checkpoint_prefix(runs, paths):
    result = runs['generate_out_dir']
    assert result.returncode == 0, describe(result)
    assert 'model.ckpt-2' in result.stdout and 'model.ckpt-4' not in result.stdout, \
        describe(result)
    folder = paths['gen'] / 'out_dir' / 'images'
    assert sorted(os.listdir(str(folder))) == ['image_0000.png', 'image_0001.png',
                                               'image_0002.png']
    for name in os.listdir(str(folder)):
        assert png(folder / name) == ('L', (8, 8))


# ----------------------------------------------------------------------------- evaluation


def test_evaluate(runs):
    result = runs['evaluate']
    assert result.returncode == 0, describe(result)
    lines = result.stdout.splitlines()
    assert lines and re.match(r'^bits/dim: \d+\.\d+$', lines[-1]), describe(result)
    # A barely trained model is close to uniform over 256 levels: 8 bits per pixel.
    assert 0 < float(lines[-1].split(':')[1]) < 9
    assert 'on 12 images of 8x8' in result.stdout, describe(result)
    for noise in TF_NOISE:
        assert noise not in result.stdout + result.stderr, describe(result)


def test_evaluate_ensemble(runs, paths):
    """A model with itself scores as the model alone; two checkpoints score as a mixture."""
    single, itself, pair = (runs[name] for name in ('evaluate', 'evaluate_self_ensemble',
                                                      'evaluate_ensemble'))
    for result in (single, itself, pair):
        assert result.returncode == 0, describe(result)
    score = {name: float(result.stdout.splitlines()[-1].split(':')[1])
             for name, result in (('single', single), ('itself', itself), ('pair', pair))}
    assert score['itself'] == score['single'], score
    assert 0 < score['pair'] < 9 and score['pair'] != score['single'], score
    members = ', '.join(str(paths['logdir'] / name) for name in ('model.ckpt-4', 'model.ckpt-2'))
    assert 'the ensemble of %s on' % members in pair.stdout, describe(pair)


def test_generate_from_an_ensemble(runs, paths):
    result = runs['generate_ensemble']
    assert result.returncode == 0, describe(result)
    assert 'from the ensemble of' in result.stdout, describe(result)
    assert png(paths['gen'] / 'ensemble.png')[0] == 'L'


def test_ensemble_of_different_image_sizes_is_refused(runs, paths):
    assert_usage_error(runs['ensemble_mismatch'], paths['root'] / 'logdir_6x5', 'image size')


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize('name', ['data_missing', 'data_empty', 'data_text', 'data_corrupt'])
def test_train_bad_data_dir(runs, paths, name):
    assert_usage_error(runs[name], paths[name])
    assert not (paths['root'] / 'never_created').exists()


def test_train_skips_corrupt_image(runs, paths):
    result = runs['one_bad_rmsprop']
    assert result.returncode == 0, describe(result)
    warnings = [line for line in result.stderr.splitlines() if line.startswith('warning: skipped')]
    assert len(warnings) == 1 and str(paths['bad_file']) in warnings[0], describe(result)
    assert 'notes.txt' not in result.stderr, describe(result)
    assert 'Traceback' not in result.stderr, describe(result)
    assert '1 files skipped' in result.stdout, describe(result)
    assert 'training from step 0 to 2, batch 4, rmsprop' in result.stdout, describe(result)
    assert tf.train.latest_checkpoint(str(paths['root'] / 'logdir_rmsprop')).endswith(
        'model.ckpt-2')


@pytest.mark.parametrize('flag', ['--batch_size=0', '--batch_size=-1', '--num_steps=0',
                                  '--image_size=0', '--image_size=abc', '--dropout=1',
                                  '--dropout=-0.1', '--augment_shift=-1'])
def test_train_bad_flag_value(runs, paths, flag):
    assert_argparse_error(runs['train ' + flag], flag.split('=')[0])
    assert not (paths['root'] / 'never_created').exists()


@pytest.mark.parametrize('name, named', [('params_missing', None), ('params_malformed', None),
                                         ('params_unknown', 'skip_chanels'),
                                         ('params_invalid', 'dilations')])
def test_train_bad_wavenet_params(runs, paths, name, named):
    line = assert_usage_error(runs[name], paths[name])
    if named:
        assert named in line
    assert not (paths['root'] / 'never_created').exists()


def test_generate_missing_checkpoint(runs, paths):
    assert_usage_error(runs['generate_missing'],
                       paths['root'] / 'no_such_logdir' / 'model.ckpt-4')
    assert not paths['gen'].joinpath('never.png').exists()


def test_generate_folder_without_checkpoint(runs, paths):
    assert_usage_error(runs['generate_no_checkpoint'], paths['no_checkpoint_dir'])
    assert os.listdir(str(paths['no_checkpoint_dir'])) == []


def test_generate_logdir_without_params(runs):
    logdir, before, after, result = runs['generate_no_params']
    assert_usage_error(result, 'params.json', logdir)
    assert after == before


def test_generate_logdir_with_edited_params(runs):
    logdir, before, after, result = runs['generate_edited_params']
    line = assert_usage_error(result, 'does not match')
    checkpoint = tf.train.latest_checkpoint(str(logdir))
    variables = [name for name, _ in tf.train.list_variables(checkpoint)
                 if name != 'global_step']
    assert any(name in line for name in variables), (line, variables)
    assert after == before


@pytest.mark.parametrize('flag', ['--temperature=0', '--temperature=-1', '--lanes=0'])
def test_generate_bad_flag_value(runs, flag):
    assert_argparse_error(runs['generate ' + flag], flag.split('=')[0])


def test_evaluate_missing_data_dir(runs, paths):
    assert_usage_error(runs['evaluate_missing'], paths['data_missing'])


# ----------------------------------------------------------------------------- --help

TRAIN_FLAGS = ['--data_dir', '--logdir', '--wavenet_params', '--batch_size', '--num_steps',
               '--learning_rate', '--optimizer', '--l2_regularization_strength', '--dropout',
               '--augment_shift',
               '--checkpoint_every', '--max_checkpoints', '--image_size', '--seed',
               '--histograms', '--verbose']
GENERATE_FLAGS = ['--checkpoint', '--out', '--out_dir', '--num_images', '--temperature',
                  '--argmax', '--seed', '--fast_generation', '--generation_state', '--lanes',
                  '--save_every']


@pytest.mark.parametrize('name, flags, defaults', [
    ('train_help', TRAIN_FLAGS, {'--batch_size': '16', '--num_steps': '4000',
                                 '--learning_rate': '0.002', '--optimizer': 'adam',
                                 '--checkpoint_every': '500', '--max_checkpoints': '5',
                                 '--seed': '0', '--histograms': 'False'}),
    ('generate_help', GENERATE_FLAGS, {'--out': 'samples.png', '--num_images': '16',
                                       '--temperature': '1.0', '--argmax': 'False',
                                       '--seed': 'None', '--fast_generation': 'True',
                                       '--save_every': '0', '--generation_state': 'ring'}),
])
def test_help(runs, name, flags, defaults):
    result = runs[name]
    assert result.returncode == 0, describe(result)
    # Quick: --help is answered before TensorFlow is imported.
    assert not re.search(r'\|\s*tensorflow\b', result.stderr), 'tensorflow imported'
    assert result.seconds < 60
    blocks = option_blocks(result.stdout)
    for flag in flags:
        assert flag in blocks, (flag, result.stdout)
    for flag, text in blocks.items():
        if flag != '-h':
            assert '(default: ' in text, (flag, text)
    for flag, value in defaults.items():
        assert '(default: %s)' % value in blocks[flag], (flag, blocks[flag])


# ----------------------------------------------------------------------------- other flags


def test_image_size_sgd_histograms_and_naive_generation(runs):
    logdir, trained, generated, out = runs['sgd_6x5']
    assert trained.returncode == 0, describe(trained)
    assert 'sgd' in trained.stdout, describe(trained)
    assert json.loads((logdir / 'data.json').read_text())['image_size'] == [6, 5]
    assert 'receptive field: 17 pixels (3.4 rows of 5)' in trained.stdout, describe(trained)
    # Two 6x5 samples side by side, written with the fast generator.
    assert png(logdir / 'samples' / 'samples-2.png') == ('L', (2 * 5 + 1, 6))
    assert generated.returncode == 0, describe(generated)
    assert 'naive generation' in generated.stdout, describe(generated)
    assert png(out) == ('L', (5, 6))
    # One histogram per trainable variable, tagged 'histograms/' + its name.
    histograms = [value.tag for _, value in summary_values(logdir) if value.HasField('histo')]
    stored = {name for name, _ in tf.train.list_variables(tf.train.latest_checkpoint(str(logdir)))}
    trainable = {name for name in stored if name != 'global_step'
                 and not name.endswith(('/Momentum', '/RMSProp', '/RMSProp_1'))}
    assert histograms, 'no histogram summaries with --histograms'
    assert {tag for tag in histograms} == {'histograms/' + name for name in trainable}
    # Two steps with --summary_every=1: each histogram twice.
    assert len(histograms) == 2 * len(trainable)
