"""End-to-end tests of the command-line scripts train.py, generate.py and evaluate.py.

Layout:
- Fixtures (module-scoped, each made once): a tiny data set the tests write (12 grayscale
  8x8 PNG images in two classes), a tiny params file, and ONE tiny trained logdir from a
  real `python train.py` run (60 steps, checkpoints at steps 30 and 60: enough for a model
  whose likeliest next pixel depends on the pixels before it). Nothing else is started
  by a fixture: every test starts what it checks. Tests that change a logdir work on a copy.
- Most tests call a script in this process, which is quick: `script.get_arguments([...])` for
  flag errors (argparse exits 2), `script.main([...])` in a graph of its own for the rest,
  reading the output with capsys; bad input raises wavenet.cli.UsageError.
- A few tests run a real subprocess (each pays ~5 s for importing TensorFlow), for what only a
  subprocess shows: the exit status, no TensorFlow log noise on stdout and stderr, the
  one-line `error:` of a usage error, and --help answered without importing TensorFlow.
  They are the training fixture, test_generate_script, test_evaluate_script,
  test_usage_error_through_the_script and test_help.

Sections: helpers, fixtures, train.py, its TensorBoard events, generate.py, evaluate.py,
--help.
"""
import collections
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import tensorflow.compat.v1 as tf

import evaluate
import generate
import train
from wavenet import checkpoints, cli, reader

TIMEOUT = 300  # seconds per subprocess; the machine may be busy with other work

TINY_PARAMS = {'dilations': [1, 2, 4, 8], 'residual_channels': 8, 'dilation_channels': 8,
               'skip_channels': 16, 'quantization_channels': 256}
LAYERS = len(TINY_PARAMS['dilations'])
# Every step printed and summarized; a checkpoint at the end of a run. A high learning rate:
# soon the model is far from uniform (8 bits/dim).
# --xla=off: compiling costs a tiny run more than it saves (test_precision.py tests XLA).
SMALL_FLAGS = ['--xla=off', '--batch_size=4', '--num_samples=2', '--print_every=1',
               '--summary_every=1', '--learning_rate=0.03']
STEPS, CHECKPOINTS = 60, (30, 60)  # the trained logdir's
LATEST, EARLIER = ('model.ckpt-%d' % step for step in reversed(CHECKPOINTS))
TF_NOISE = ('oneDNN', 'WARNING:tensorflow', 'I0000', 'W0000')

Result = collections.namedtuple('Result', 'returncode stdout stderr')
Trained = collections.namedtuple('Trained', 'logdir result')

# Lines train.py prints: (step, value) groups.
TRAIN_LOSS_LINE = r'^step (\d+)/\d+  loss (\S+)  '
TRAIN_BITS_LINE = r'^step (\d+)/\d+  loss \S+  bits/dim (\S+)  '
VALIDATION_LINE = r'^step (\d+): saved \S+, validation bits/dim (\S+)$'


# ----------------------------------------------------------------------------- helpers


def run_script(*args, cwd):
    """Runs `python ARGS` in `cwd`; returns a Result.

    The TF_CPP_MIN_LOG_LEVEL that conftest.py sets for this process is removed, so the
    scripts' own silencing of TensorFlow is what is tested.
    """
    env = dict(os.environ)
    env.pop('TF_CPP_MIN_LOG_LEVEL', None)
    # oneDNN on, as it is by default on CPUs with AVX512_VNNI, AVX512_BF16 or AMX: then
    # TensorFlow writes start-up lines to stderr that the scripts must hold back.
    env['TF_ENABLE_ONEDNN_OPTS'] = '1'
    env['COLUMNS'] = '200'  # --help on long lines
    proc = subprocess.run([sys.executable] + [str(arg) for arg in args], cwd=str(cwd), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=TIMEOUT)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def describe(result):
    return 'exit %s\n--- stdout:\n%s\n--- stderr:\n%s' % result


def assert_quiet(result, *stderr_starts):
    """Exit 0, no TensorFlow log noise, and one stderr line per start in `stderr_starts`."""
    assert result.returncode == 0, describe(result)
    for noise in TF_NOISE:
        assert noise not in result.stdout + result.stderr, describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == len(stderr_starts), describe(result)
    for line, start in zip(lines, stderr_starts):
        assert line.startswith(start), describe(result)


def train_args(data_dir, logdir, *extra, params=None, num_steps=2):
    """train.py's flags for a tiny run."""
    args = ['--data_dir=%s' % data_dir, '--logdir=%s' % logdir,
            '--num_steps=%d' % num_steps] + SMALL_FLAGS + list(extra)
    if params is not None:
        args.append('--wavenet_params=%s' % params)
    return args


def run_main(script, args, capsys):
    """script.main(ARGS) in this process, in a graph of its own; returns a Result."""
    capsys.readouterr()
    with tf.Graph().as_default():
        script.main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return Result(0, captured.out, captured.err)


def usage_error(script, args):
    """The message of the cli.UsageError that script.main(ARGS) raises."""
    with tf.Graph().as_default(), pytest.raises(cli.UsageError) as error:
        script.main([str(arg) for arg in args])
    return str(error.value)


def flag_error(script, args, capsys):
    """The one 'error:' line of argparse refusing ARGS with exit status 2."""
    with pytest.raises(SystemExit) as exit_info:
        script.get_arguments([str(arg) for arg in args])
    captured = capsys.readouterr()
    result = Result(exit_info.value.code, captured.out, captured.err)
    assert result.returncode == 2 and result.stdout == '', describe(result)
    lines = [line for line in result.stderr.splitlines() if 'error:' in line]
    assert len(lines) == 1, describe(result)
    return lines[0]


def write_file(path, content):
    """Writes bytes or text to `path`, creating its folders."""
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), 'wb') as stream:
        stream.write(content if isinstance(content, bytes) else content.encode())


def write_png(path, values):
    """Writes a grayscale PNG of uint8 `values` [height, width], creating its folders."""
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    Image.fromarray(np.asarray(values, np.uint8), mode='L').save(str(path), format='PNG')


def write_json(path, content):
    write_file(path, json.dumps(content))


def edit_json(path, **changes):
    write_json(path, dict(json.loads(path.read_text()), **changes))


def copy_logdir(trained, tmp_path):
    """A copy of the trained logdir that a test may change."""
    copy = tmp_path / 'logdir_copy'
    shutil.copytree(str(trained.logdir), str(copy))
    return copy


def snapshot(folder):
    """{relative path: (sha256 of the content, mtime_ns)} of every file below `folder`, but
    the lock file that every run of train.py takes (and leaves)."""
    files = {}
    for parent, _, names in os.walk(str(folder)):
        for name in set(names) - {checkpoints.LOCK_FILE}:
            path = os.path.join(parent, name)
            with open(path, 'rb') as stream:
                digest = hashlib.sha256(stream.read()).hexdigest()
            files[os.path.relpath(path, str(folder))] = (digest, os.stat(path).st_mtime_ns)
    return files


def pixels(source):
    """The pixels of a PNG file or PNG bytes, and the image mode."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as image:
        return np.asarray(image), image.mode


def png(path):
    """(mode, (width, height)) of a PNG file."""
    array, mode = pixels(path)
    return mode, (array.shape[1], array.shape[0])


def tiles(grid, count, size=8, padding=1):
    """The first `count` images of a grid of size x size images, row by row."""
    step = size + padding
    columns = (grid.shape[1] + padding) // step
    corners = [(index // columns * step, index % columns * step) for index in range(count)]
    return [grid[top:top + size, left:left + size] for top, left in corners]


def printed(text, pattern):
    """{step: value} of every line of `text` that matches `pattern` (groups: step, value)."""
    return {int(match.group(1)): float(match.group(2))
            for match in re.finditer(pattern, text, re.M)}


def bits_per_dim(stdout):
    """The score on the last line, which must read `bits/dim: X.XXXX`."""
    match = re.fullmatch(r'bits/dim: (\d+\.\d{4})', stdout.splitlines()[-1])
    assert match, stdout
    return float(match.group(1))


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


def graph_nodes(folder):
    """The nodes of the one GraphDef in `folder`'s events."""
    graphs = [event.graph_def for event in events(folder) if event.graph_def]
    assert len(graphs) == 1, 'expected one graph in %s, found %d' % (folder, len(graphs))
    graph = tf.GraphDef()
    graph.ParseFromString(graphs[0])
    return list(graph.node)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    """12 grayscale 8x8 images: 6 dark and 6 bright, each in its class folder."""
    folder = tmp_path_factory.mktemp('data') / 'data'
    rng = np.random.default_rng(0)
    for name, base in (('dark', 40), ('bright', 210)):
        for index in range(6):
            write_png(folder / name / ('%s_%02d.png' % (name, index)),
                      np.clip(base + rng.integers(-10, 11, (8, 8)), 0, 255))
    return folder


@pytest.fixture(scope='module')
def tiny_params(tmp_path_factory):
    path = tmp_path_factory.mktemp('params') / 'tiny_params.json'
    write_json(path, TINY_PARAMS)
    return path


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data_dir, tiny_params):
    """The one training subprocess, into a logdir of its own; a Trained."""
    root = tmp_path_factory.mktemp('trained')
    logdir = root / 'logdir'
    result = run_script(train.__file__, *train_args(
        data_dir, logdir, '--checkpoint_every=%d' % CHECKPOINTS[0], params=tiny_params,
        num_steps=STEPS), cwd=root)
    assert result.returncode == 0, describe(result)
    return Trained(logdir, result)


# ----------------------------------------------------------------------------- train.py


def test_train_end_to_end(trained, data_dir):
    logdir, result = trained
    assert_quiet(result)  # and nothing at all on stderr
    names = set(os.listdir(str(logdir)))
    for name in ('params.json', 'data.json', 'checkpoint', EARLIER + '.index',
                 LATEST + '.index', 'train', 'validation', 'samples'):
        assert name in names, sorted(names)
    for step in CHECKPOINTS:
        assert any(name.startswith('model.ckpt-%d.data-' % step) for name in names), names
    # The HParams of the run in the logdir's own events, its metrics in train/ and validation/.
    assert len([name for name in names if 'tfevents' in name]) == 1, names
    stored_params = json.loads((logdir / 'params.json').read_text())
    assert {key: stored_params.get(key) for key in TINY_PARAMS} == TINY_PARAMS, stored_params
    data = json.loads((logdir / 'data.json').read_text())
    assert data == {'image_size': [8, 8], 'classes': ['bright', 'dark'], 'channels': 1}
    assert tf.train.latest_checkpoint(str(logdir)) == str(logdir / LATEST)
    assert tf.train.load_variable(str(logdir / LATEST), 'global_step') == STEPS
    # Two samples in a grid of 2 columns with 1 pixel of padding, at native size.
    for step in CHECKPOINTS:
        assert png(logdir / 'samples' / ('samples-%d.png' % step)) == ('L', (17, 8))

    out = result.stdout
    # 1 + (2 - 1) * (1 + 2 + 4 + 8) + 1 pixels.
    assert re.search(r'^receptive field: 17 pixels \(2\.1 rows of 8\)$', out, re.M), out
    data_lines = [line for line in out.splitlines() if line.startswith('data: ')]
    assert data_lines == ['data: %s: 11 training and 1 validation images (10%% held out), '
                          '8x8 grayscale, 2 classes' % data_dir], out
    assert re.search(r'^training from step 0 to %d, batch 4, adam$' % STEPS, out, re.M), out
    assert sorted(printed(out, TRAIN_BITS_LINE)) == list(range(1, STEPS + 1)), out
    assert re.search(r'^step %d/%d .*\d pixels/s$' % (STEPS, STEPS), out, re.M), out
    assert sorted(printed(out, VALIDATION_LINE)) == list(CHECKPOINTS), out
    for step in CHECKPOINTS:
        assert re.search(r'^step %d: saved %s, ' % (step, re.escape(str(logdir / (
            'model.ckpt-%d' % step)))), out, re.M), out


def test_resume_continues_to_num_steps(trained, data_dir, tiny_params, tmp_path, capsys):
    logdir = copy_logdir(trained, tmp_path)
    # No --wavenet_params: the logdir's params.json.
    out = run_main(train, train_args(data_dir, logdir, num_steps=STEPS + 2), capsys).stdout
    assert re.search(r'^resumed from %s$' % re.escape(str(logdir / LATEST)), out, re.M), out
    assert 'training from step %d to %d' % (STEPS, STEPS + 2) in out, out
    assert sorted(printed(out, TRAIN_BITS_LINE)) == [STEPS + 1, STEPS + 2], out
    latest = tf.train.latest_checkpoint(str(logdir))
    assert latest == str(logdir / ('model.ckpt-%d' % (STEPS + 2)))
    assert tf.train.load_variable(latest, 'global_step') == STEPS + 2

    # Again, with the same params given: nothing left to do.
    before = snapshot(logdir)
    out = run_main(train, train_args(data_dir, logdir, params=tiny_params,
                                     num_steps=STEPS + 2), capsys).stdout
    assert 'step {0} already reached --num_steps={0}; nothing to train'.format(STEPS + 2) \
        in out, out
    assert not re.search(r'^step \d+/', out, re.M), out
    assert snapshot(logdir) == before


def test_resume_with_different_params_is_refused(trained, data_dir, tmp_path):
    logdir = copy_logdir(trained, tmp_path)
    wide = tmp_path / 'wide_params.json'
    write_json(wide, dict(TINY_PARAMS, residual_channels=16))
    before = snapshot(logdir)
    message = usage_error(train, train_args(data_dir, logdir, params=wide, num_steps=STEPS + 2))
    assert 'differ from %s in residual_channels' % (logdir / 'params.json') in message, message
    assert snapshot(logdir) == before


BAD_DATA = {
    'missing': lambda folder: None,
    'empty': lambda folder: folder.mkdir(),
    'text only': lambda folder: write_file(folder / 'dark' / 'readme.txt', 'not an image\n'),
    'corrupt only': lambda folder: [
        write_file(folder / 'dark' / 'empty.png', b''),
        write_file(folder / 'dark' / 'noise.jpg', bytes(range(256)) * 2)],
}


@pytest.mark.parametrize('kind', sorted(BAD_DATA))
def test_train_bad_data_dir(tiny_params, tmp_path, kind):
    folder = tmp_path / 'data'
    BAD_DATA[kind](folder)
    message = usage_error(train, train_args(folder, tmp_path / 'logdir', params=tiny_params))
    assert str(folder) in message, message
    assert not (tmp_path / 'logdir').exists()


def test_train_skips_corrupt_image(data_dir, tiny_params, tmp_path, capsys):
    data = tmp_path / 'data'
    shutil.copytree(str(data_dir), str(data))
    broken = data / 'dark' / 'broken.png'
    write_file(broken, b'\x89PNG\r\n\x1a\n' + b'truncated garbage' * 4)
    write_file(data / 'bright' / 'notes.txt', 'a text file among the images\n')  # not an image
    logdir = tmp_path / 'logdir'
    result = run_main(train, train_args(data, logdir, '--optimizer=rmsprop', params=tiny_params),
                      capsys)
    warnings = [line for line in result.stderr.splitlines() if line.startswith('warning:')]
    assert len(warnings) == 1 and warnings[0].startswith('warning: skipped %s: ' % broken), \
        describe(result)
    assert '11 training and 1 validation images (10% held out), 8x8 grayscale, 2 classes, ' \
        '1 file skipped' in result.stdout, describe(result)
    assert 'training from step 0 to 2, batch 4, rmsprop' in result.stdout, describe(result)
    assert tf.train.latest_checkpoint(str(logdir)) == str(logdir / 'model.ckpt-2')
    assert any(name.endswith('/RMSProp') for name, _ in tf.train.list_variables(str(logdir)))


@pytest.mark.parametrize('flag', ['--batch_size=0', '--batch_size=-1', '--num_steps=0',
                                  '--image_size=0', '--image_size=abc', '--dropout=1',
                                  '--dropout=-0.1', '--augment_shift=-1',
                                  '--validation_fraction=1', '--optimizer=adagrad',
                                  '--channels=2'])
def test_train_bad_flag_value(flag, capsys):
    assert flag.split('=')[0] in flag_error(train, ['--num_steps=4', flag], capsys)


@pytest.mark.parametrize('name, content, named', [
    ('missing', None, 'does not exist'),
    ('malformed', '{"dilations": [1, 2,', 'not valid JSON'),
    ('unknown', json.dumps(dict(TINY_PARAMS, skip_chanels=16)), 'skip_chanels'),
    ('invalid', json.dumps(dict(TINY_PARAMS, dilations=[0])), 'dilations'),
])
def test_train_bad_wavenet_params(data_dir, tmp_path, name, content, named):
    params = tmp_path / ('%s_params.json' % name)
    if content is not None:
        write_file(params, content)
    message = usage_error(train, train_args(data_dir, tmp_path / 'logdir', params=params))
    assert str(params) in message and named in message, message
    assert not (tmp_path / 'logdir').exists()


def test_image_size_sgd_histograms_and_naive_generation(data_dir, tiny_params, tmp_path,
                                                        capsys):
    logdir = tmp_path / 'logdir'
    out = run_main(train, train_args(data_dir, logdir, '--optimizer=sgd', '--histograms',
                                     '--image_size=6x5', params=tiny_params, num_steps=2),
                   capsys).stdout
    assert 'training from step 0 to 2, batch 4, sgd' in out, out
    assert json.loads((logdir / 'data.json').read_text())['image_size'] == [6, 5]
    assert 'receptive field: 17 pixels (3.4 rows of 5)' in out, out
    # Two 6x5 samples side by side, written with the fast generator.
    assert png(logdir / 'samples' / 'samples-2.png') == ('L', (2 * 5 + 1, 6))
    # One histogram per trainable variable, tagged 'histograms/' + its name, at each step.
    histograms = [value.tag for _, value in summary_values(logdir / 'train')
                  if value.HasField('histo')]
    trainable = {name for name, _ in tf.train.list_variables(str(logdir))
                 if name.startswith(checkpoints.MODEL_SCOPE + '/')
                 and not name.endswith('/Momentum')}
    assert len(trainable) > LAYERS
    assert set(histograms) == {'histograms/' + name for name in trainable}
    assert len(histograms) == 2 * len(trainable)

    image = tmp_path / 'six_by_five.png'
    out = run_main(generate, ['--checkpoint=%s' % logdir, '--out=%s' % image, '--num_images=1',
                              '--fast_generation=false', '--seed=3'], capsys).stdout
    assert '(naive generation, temperature 1, seed 3)' in out, out
    assert png(image) == ('L', (5, 6))


# ----------------------------------------------------------------------------- TensorBoard


def test_training_events(trained):
    logdir, result = trained
    found = scalars(logdir / 'train')
    assert set(found) == {'loss', 'bits_per_dim', 'learning_rate'}, sorted(found)
    for tag, values in found.items():
        assert sorted(values) == list(range(1, STEPS + 1)), (tag, values)
    # Each step's summary: the loss its progress line printed, in nats and in bits.
    for step, value in printed(result.stdout, TRAIN_LOSS_LINE).items():
        assert found['loss'][step] == pytest.approx(value, abs=1e-4), (step, found['loss'])
        assert found['bits_per_dim'][step] == pytest.approx(found['loss'][step] / math.log(2),
                                                            rel=1e-5)
    for step, value in printed(result.stdout, TRAIN_BITS_LINE).items():
        assert found['bits_per_dim'][step] == pytest.approx(value, abs=1e-4), step
    # The cosine schedule: the rate of the step, at global step - 1.
    for step, value in found['learning_rate'].items():
        assert value == pytest.approx(0.03 * (1 + math.cos(math.pi * (step - 1) / STEPS)) / 2,
                                      rel=1e-5, abs=1e-8), (step, found['learning_rate'])
    assert not [value.tag for _, value in summary_values(logdir / 'train')
                if value.HasField('histo')], 'histograms without --histograms'


def test_sample_images_are_the_sample_files_scaled_up_three_times(trained):
    logdir, _ = trained
    images = {step: value.image for step, value in summary_values(logdir / 'train')
              if value.tag == 'samples' and value.HasField('image')}
    assert sorted(images) == list(CHECKPOINTS), images.keys()
    for step, image in images.items():
        native, _ = pixels(logdir / 'samples' / ('samples-%d.png' % step))
        zoomed, mode = pixels(image.encoded_image_string)
        assert (image.width, image.height, image.colorspace) == (51, 24, 1)
        assert mode == 'L' and zoomed.shape == (24, 51)
        np.testing.assert_array_equal(zoomed, native.repeat(3, axis=0).repeat(3, axis=1))


def test_validation_events(trained):
    logdir, result = trained
    found = scalars(logdir / 'validation')
    assert set(found) == {'bits_per_dim'}, sorted(found)
    reported = printed(result.stdout, VALIDATION_LINE)
    assert sorted(found['bits_per_dim']) == sorted(reported) == list(CHECKPOINTS), \
        (found, reported)
    for step, value in reported.items():
        assert found['bits_per_dim'][step] == pytest.approx(value, abs=1e-4)
    # Learnt something: well below the 8 bits/dim of a uniform model.
    assert max(reported.values()) < 7.5, reported
    assert not [event for event in events(logdir / 'validation') if event.graph_def]


def layer_indices(names):
    """The N of every `layerN/` name scope in `names`, at the top level or below another."""
    return {int(match.group(1)) for name in names
            for match in [re.search(r'(?:^|/)layer(\d+)/', name)] if match}


def test_graph_in_train_events_is_grouped_by_name_scopes(trained):
    nodes = graph_nodes(trained.logdir / 'train')
    names = [node.name for node in nodes]
    scopes = collections.Counter(name.split('/')[0] for name in names if '/' in name)
    for scope in ('wavenet', 'data', 'input', 'layers', 'output', 'loss', 'optimizer', 'train',
                  'validation', 'generation'):
        assert scopes[scope] > 0, scopes
    # No stray op at the top level: only the variables outside the model.
    assert {name for name in names if '/' not in name} == {'global_step', 'run_spec'}
    # The model's ops, wherever it runs, under input/, layers/layerN/ and output/ name scopes
    # (wavenet/ holds the variables, optimizer/ the gradients and updates).
    by_use = {use: [name for name in names if name.startswith(use + '/')]
              for use in ('validation', 'generation')}
    by_use['training'] = [name for name in names if not name.startswith(
        ('validation/', 'generation/', 'wavenet/', 'optimizer/'))]
    for use, inside in by_use.items():
        assert layer_indices(inside) == set(range(LAYERS)), (use, layer_indices(inside))
        for part in ('input', 'output'):
            assert any(re.search(r'(?:^|/)%s/' % part, name) for name in inside), (use, part)
    # One edge from the layers into the output (else TensorBoard sets the output aside), and
    # the L2 terms in the loss.
    into_output = {source.lstrip('^').split(':')[0] for node in nodes
                   if node.name.startswith('output/') for source in node.input}
    assert {source for source in into_output if source.startswith('layers/')} == {
        'layers/skips'}, into_output
    assert any(node.op == 'L2Loss' for node in nodes)
    assert all(node.name.startswith('loss/') for node in nodes if node.op == 'L2Loss')


def test_the_run_settings_are_in_tensorboard(trained, data_dir):
    """Text tables of the params, training options and data in train/, HParams in the
    logdir's own events."""
    texts = {value.tag: tf.make_ndarray(value.tensor).item().decode()
             for _, value in summary_values(trained.logdir / 'train')
             if value.metadata.plugin_data.plugin_name == 'text'}
    assert sorted(texts) == ['settings/data', 'settings/params', 'settings/training']
    assert '| dilations | [1, 2, 4, 8] |' in texts['settings/params'], texts
    assert '| batch_size | 4 |' in texts['settings/training'], texts
    assert '| data_dir | "%s" |' % data_dir in texts['settings/data'], texts
    plugins = [value.metadata.plugin_data.plugin_name
               for _, value in summary_values(trained.logdir)]
    assert plugins == ['hparams'], plugins


# ----------------------------------------------------------------------------- generate.py


def generate_grid(checkpoints, out, capsys, *flags):
    """Runs generate.main; returns (its stdout, the pixels of `out`)."""
    printed_out = run_main(generate, ['--checkpoint=%s' % path for path in checkpoints]
                           + ['--out=%s' % out] + list(flags), capsys).stdout
    return printed_out, pixels(out)[0]


def argmax_completions(checkpoints, data_dir, out, capsys, *flags):
    """generate.main with --argmax, completing a dark and a bright image from 3 kept rows,
    3 times each; returns (its stdout, the grid's 10 tiles). The grid has a row per seed
    image: the image, its kept rows and its 3 completions."""
    seeds = [data_dir / 'dark' / 'dark_00.png', data_dir / 'bright' / 'bright_00.png']
    printed_out, grid = generate_grid(
        checkpoints, out, capsys, '--argmax', '--seed_rows=3', '--num_images=3',
        *['--seed_image=%s' % seed for seed in seeds], *flags)
    assert grid.shape == (2 * 8 + 1, 5 * 8 + 4)
    images = tiles(grid, 10)
    # The likeliest pixels depend on the pixels before them: dark stays dark, bright bright.
    assert max(image[3:].mean() for image in images[2:5]) < 100, grid
    assert min(image[3:].mean() for image in images[7:10]) > 150, grid
    return printed_out, images


def test_generate_script(trained, tmp_path, capsys):
    """One image into a missing folder; the same seed in this process gives the same image."""
    out = tmp_path / 'missing' / 'nested' / 'one.png'
    result = run_script(generate.__file__, '--checkpoint=%s' % trained.logdir,
                        '--out=%s' % out, '--num_images=1', '--seed=7', cwd=tmp_path)
    assert_quiet(result, 'generating: 64 pixels')
    assert result.stdout.splitlines() == [
        'generating 1 image of 8x8 from %s (fast generation, temperature 1, seed 7)'
        % (trained.logdir / LATEST), 'wrote %s' % out], describe(result)
    assert png(out) == ('L', (8, 8))

    again, other = tmp_path / 'again.png', tmp_path / 'other.png'
    for path, seed in ((again, 7), (other, 8)):
        run_main(generate, ['--checkpoint=%s' % trained.logdir, '--out=%s' % path,
                            '--num_images=1', '--seed=%d' % seed], capsys)
    assert again.read_bytes() == out.read_bytes()
    assert other.read_bytes() != out.read_bytes()


def test_generate_grid(trained, tmp_path, capsys):
    _, grid = generate_grid([trained.logdir], tmp_path / 'grid.png', capsys, '--num_images=4',
                            '--seed=1')
    # 2 columns and 2 rows of 8x8 images with 1 pixel of black padding between them.
    assert grid.shape == (2 * 8 + 1, 2 * 8 + 1)
    assert not grid[8].any() and not grid[:, 8].any()
    images = tiles(grid, 4)
    assert len({image.tobytes() for image in images}) == 4


@pytest.mark.parametrize('state', ['ring', 'queues'])
def test_generate_in_lanes_with_every_state_as_naive_generation(trained, data_dir, tmp_path,
                                                                capsys, state):
    """6 images in batches of 4 (the last one padded), each batch in 2 lanes: with --argmax
    the same images as naive generation."""
    _, naive = argmax_completions([trained.logdir], data_dir, tmp_path / 'naive.png', capsys,
                                  '--fast_generation=false')
    out, fast = argmax_completions([trained.logdir], data_dir, tmp_path / 'fast.png', capsys,
                                   '--batch_size=4', '--lanes=2', '--generation_state=' + state)
    assert '(fast generation' in out, out
    np.testing.assert_array_equal(fast, naive)


def test_generate_out_dir_from_checkpoint_prefix(trained, tmp_path, capsys):
    checkpoint = trained.logdir / EARLIER
    folder = tmp_path / 'out_dir' / 'images'
    out = run_main(generate, ['--checkpoint=%s' % checkpoint, '--out_dir=%s' % folder,
                              '--num_images=3', '--seed=2'], capsys).stdout
    assert 'from %s (' % checkpoint in out and LATEST not in out, out
    assert out.splitlines()[-1] == 'wrote %s' % folder
    assert sorted(os.listdir(str(folder))) == ['image_0000.png', 'image_0001.png',
                                               'image_0002.png']
    # The same images as in the grid of the same seed.
    _, grid = generate_grid([checkpoint], tmp_path / 'grid.png', capsys, '--num_images=3',
                            '--seed=2')
    for index, image in enumerate(tiles(grid, 3)):
        assert png(folder / ('image_%04d.png' % index)) == ('L', (8, 8))
        np.testing.assert_array_equal(pixels(folder / ('image_%04d.png' % index))[0], image)


def test_generate_from_an_ensemble(trained, data_dir, tmp_path, capsys):
    """Two members named; an ensemble of the model with itself generates as the model."""
    members = [trained.logdir, trained.logdir / EARLIER]
    out, _ = generate_grid(members, tmp_path / 'pair.png', capsys, '--num_images=2', '--seed=4')
    assert 'from the ensemble of %s, %s (' % (members[0] / LATEST, members[1]) in out, out
    assert png(tmp_path / 'pair.png') == ('L', (17, 8))
    _, alone = argmax_completions(members[:1], data_dir, tmp_path / 'alone.png', capsys)
    _, itself = argmax_completions(members[:1] * 2, data_dir, tmp_path / 'itself.png', capsys)
    np.testing.assert_array_equal(itself, alone)


def test_generate_missing_checkpoint(tmp_path):
    prefix = tmp_path / 'no_such_logdir' / LATEST
    message = usage_error(generate, ['--checkpoint=%s' % prefix,
                                     '--out=%s' % (tmp_path / 'never.png')])
    assert 'checkpoint %s does not exist' % prefix in message, message
    assert os.listdir(str(tmp_path)) == []


def test_generate_logdir_without_params(trained, tmp_path):
    logdir = copy_logdir(trained, tmp_path)
    (logdir / 'params.json').unlink()
    before = snapshot(logdir)
    message = usage_error(generate, ['--checkpoint=%s' % logdir,
                                     '--out=%s' % (tmp_path / 'never.png')])
    assert '%s has no params.json' % logdir in message, message
    assert snapshot(logdir) == before
    assert not (tmp_path / 'never.png').exists()


def test_generate_logdir_with_edited_params(trained, tmp_path):
    logdir = copy_logdir(trained, tmp_path)
    edit_json(logdir / 'params.json', residual_channels=16)
    before = snapshot(logdir)
    message = usage_error(generate, ['--checkpoint=%s' % logdir,
                                     '--out=%s' % (tmp_path / 'never.png')])
    assert 'checkpoint %s' % (logdir / LATEST) in message, message
    assert 'differ in residual_channels' in message, message
    assert snapshot(logdir) == before


@pytest.mark.parametrize('flag', ['--temperature=0', '--temperature=-1', '--lanes=0',
                                  '--num_images=0', '--generation_state=arrays',
                                  '--fast_generation=maybe', '--seed_rows=3'])
def test_generate_bad_flag_value(flag, capsys):
    assert flag.split('=')[0] in flag_error(generate, ['--out=x.png', flag], capsys)


def test_usage_error_through_the_script(tmp_path):
    """A folder without a checkpoint: exit 2, one `error:` line, no traceback."""
    empty = tmp_path / 'no_checkpoint'
    empty.mkdir()
    result = run_script(generate.__file__, '--checkpoint=%s' % empty,
                        '--out=%s' % (tmp_path / 'never.png'), cwd=tmp_path)
    assert result.returncode == 2, describe(result)
    assert result.stdout == '', describe(result)
    assert result.stderr.splitlines() == [
        'error: no checkpoint in %s: train a model into it first' % empty], describe(result)
    assert os.listdir(str(empty)) == []
    assert not (tmp_path / 'never.png').exists()


# ----------------------------------------------------------------------------- evaluate.py


def evaluate_bits(checkpoints, data, capsys, *flags):
    """(bits/dim, stdout) of evaluate.main on the checkpoints and a data folder."""
    out = run_main(evaluate, ['--checkpoint=%s' % path for path in checkpoints]
                   + ['--data_dir=%s' % data] + list(flags), capsys).stdout
    return bits_per_dim(out), out


def test_evaluate_script(trained, data_dir, tmp_path):
    """The validation image scores what validation reported at the same checkpoint."""
    validation = reader.load_dataset(str(data_dir)).validation.files
    assert len(validation) == 1, validation
    folder = tmp_path / 'validation'
    folder.mkdir()
    shutil.copy(validation[0], str(folder))
    result = run_script(evaluate.__file__, '--checkpoint=%s' % trained.logdir,
                        '--data_dir=%s' % folder, cwd=tmp_path)
    assert_quiet(result, 'evaluating: 1 images')
    assert result.stdout.splitlines()[0] == 'evaluating %s on 1 image of 8x8 from %s' % (
        trained.logdir / LATEST, folder), describe(result)
    reported = printed(trained.result.stdout, VALIDATION_LINE)[STEPS]
    assert bits_per_dim(result.stdout) == pytest.approx(reported, abs=1.5e-4), reported
    assert reported < 7.5  # not what a uniform model scores


def test_evaluate_counts_every_image_once(trained, data_dir, capsys):
    """The whole folder (batches of 5: the last one partial) scores the mean of its halves."""
    whole, out = evaluate_bits([trained.logdir], data_dir, capsys, '--batch_size=5')
    assert 'on 12 images of 8x8 from %s' % data_dir in out, out
    halves = [evaluate_bits([trained.logdir], data_dir / name, capsys)[0]
              for name in ('dark', 'bright')]
    assert abs(halves[0] - halves[1]) > 1e-3, halves
    assert whole == pytest.approx(np.mean(halves), abs=1.5e-4), (whole, halves)


def test_evaluate_ensemble(trained, data_dir, capsys):
    """A model with itself scores as the model alone; two checkpoints score as a mixture:
    another score than either, no worse than their mean (the mixture's log-likelihood is at
    least the mean of the members')."""
    latest, earlier = trained.logdir / LATEST, trained.logdir / EARLIER
    single = evaluate_bits([trained.logdir], data_dir, capsys)[0]
    itself = evaluate_bits([trained.logdir, trained.logdir], data_dir, capsys)[0]
    first = evaluate_bits([earlier], data_dir, capsys)[0]
    pair, out = evaluate_bits([trained.logdir, earlier], data_dir, capsys)
    assert itself == single
    assert pair not in (single, first) and single != first, (pair, single, first)
    assert pair <= (single + first) / 2 + 1e-4, (pair, single, first)
    assert 'evaluating the ensemble of %s, %s on 12 images' % (latest, earlier) in out, out


def test_ensemble_of_different_image_sizes_is_refused(trained, data_dir, tiny_params, tmp_path,
                                                      capsys):
    other = tmp_path / 'logdir_6x5'
    run_main(train, train_args(data_dir, other, '--image_size=6x5', '--num_samples=0',
                               params=tiny_params, num_steps=1), capsys)
    message = usage_error(evaluate, ['--checkpoint=%s' % trained.logdir,
                                     '--checkpoint=%s' % other, '--data_dir=%s' % data_dir])
    assert 'cannot ensemble %s with %s' % (other, trained.logdir) in message, message
    assert 'image size' in message, message


def test_evaluate_missing_data_dir(trained, tmp_path):
    missing = tmp_path / 'no_such_data'
    message = usage_error(evaluate, ['--checkpoint=%s' % trained.logdir,
                                     '--data_dir=%s' % missing])
    assert str(missing) in message and 'does not exist' in message, message


@pytest.mark.parametrize('args, flag', [
    (['--checkpoint=logdir'], '--data_dir'),
    (['--data_dir=data'], '--checkpoint'),
    (['--checkpoint=logdir', '--data_dir=data', '--batch_size=0'], '--batch_size'),
])
def test_evaluate_bad_flags(args, flag, capsys):
    assert flag in flag_error(evaluate, args, capsys)


# ----------------------------------------------------------------------------- --help


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


TRAIN_FLAGS = ['--data_dir', '--image_size', '--channels', '--validation_fraction', '--logdir',
               '--wavenet_params', '--gc_channels', '--batch_size', '--num_steps',
               '--learning_rate', '--learning_rate_schedule', '--optimizer', '--momentum',
               '--l2_regularization_strength', '--dropout', '--augment_shift', '--seed',
               '--checkpoint_every', '--max_checkpoints', '--print_every', '--summary_every',
               '--num_samples', '--histograms', '--num_gpus', '--cpu_replicas',
               '--worker_hosts', '--task_index', '--step_timeout', '--precision', '--xla',
               '--verbose']
GENERATE_FLAGS = ['--checkpoint', '--out', '--out_dir', '--num_images', '--columns', '--class',
                  '--seed_image', '--seed_rows', '--batch_size', '--temperature', '--argmax',
                  '--seed', '--fast_generation', '--generation_state', '--lanes',
                  '--save_every', '--verbose']
EVALUATE_FLAGS = ['--checkpoint', '--data_dir', '--batch_size', '--verbose']


@pytest.mark.parametrize('script, flags, defaults', [
    (train, TRAIN_FLAGS, {'--batch_size': '8', '--num_steps': '4200',
                          '--learning_rate': '0.006', '--optimizer': 'adam',
                          '--checkpoint_every': '1000', '--max_checkpoints': '5',
                          '--seed': '0', '--histograms': 'False', '--num_gpus': '0',
                          '--cpu_replicas': '1', '--step_timeout': '600.0',
                          '--precision': 'fp32', '--xla': 'auto'}),
    (generate, GENERATE_FLAGS, {'--out': 'samples.png', '--num_images': '16',
                                '--temperature': '1.0', '--argmax': 'False',
                                '--fast_generation': 'True', '--save_every': '0',
                                '--generation_state': 'ring'}),
    (evaluate, EVALUATE_FLAGS, {'--batch_size': '100', '--verbose': 'False'}),
], ids=['train', 'generate', 'evaluate'])
def test_help(script, flags, defaults, tmp_path):
    """--help lists every flag with its default, without importing TensorFlow."""
    result = run_script('-X', 'importtime', script.__file__, '--help', cwd=tmp_path)
    assert result.returncode == 0, describe(result)
    # -X importtime lists every module imported, on stderr.
    assert re.search(r'\|\s*wavenet\.cli$', result.stderr, re.M), 'no import times listed'
    assert not re.search(r'\|\s*tensorflow\b', result.stderr), 'tensorflow imported'
    blocks = option_blocks(result.stdout)
    assert sorted(blocks) == sorted(flags + ['-h']), result.stdout
    for flag, text in blocks.items():
        if flag != '-h':
            assert '(default: ' in text, (flag, text)
    for flag, value in defaults.items():
        # A run option kept on resume says so after its default: '(default: 8; when ...'.
        assert re.search(r'\(default: %s[);]' % re.escape(value), blocks[flag]), (flag,
                                                                                  blocks[flag])
    if script is train:
        assert "(default: 8; when resuming, the run's)" in blocks['--batch_size']
        assert "(default: 4200)" in blocks['--num_steps']
