"""A run survives faults: lost and damaged checkpoints and run files, concurrent runs, full
disks, read-only folders, kill -9 at any moment.

Most tests call train.main / generate.main in this process, in a graph of their own, on a
copy of one tiny logdir trained once for the module; what needs a process of its own (a
lock held by another run, a file-size limit, kill -9) runs train.py as a subprocess.
"""
import json
import os
import re
import resource
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
PARAMS = {'dilations': [1, 2, 4, 8], 'residual_channels': 4, 'dilation_channels': 4,
          'skip_channels': 8}
FLAGS = ['--xla=off', '--batch_size=2', '--num_samples=0', '--checkpoint_every=2',
         '--print_every=1']


def train_flags(data, logdir, num_steps, *extra):
    return ['--data_dir=%s' % data, '--logdir=%s' % logdir, '--num_steps=%d' % num_steps,
            '--wavenet_params=%s' % (data.parent / 'params.json')] + FLAGS + list(extra)


def run_train(data, logdir, num_steps, *extra):
    """train.main in a graph of its own (in this process)."""
    with tf.Graph().as_default():
        train.main(train_flags(data, logdir, num_steps, *extra))


def run_generate(*flags):
    with tf.Graph().as_default():
        generate.main(list(flags))


def snapshot(folder):
    """{relative path: (size, mtime_ns)} of every file below `folder`."""
    found = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            found[os.path.relpath(path, folder)] = (os.path.getsize(path),
                                                   os.stat(path).st_mtime_ns)
    return found


def global_step(prefix):
    return int(tf.train.load_variable(str(prefix), 'global_step'))


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Eight random 6x6 images and the tiny params file beside them."""
    root = tmp_path_factory.mktemp('faults')
    rng = np.random.default_rng(0)
    (root / 'images').mkdir()
    for index in range(8):
        Image.fromarray(rng.integers(0, 256, (6, 6)).astype(np.uint8)).save(
            root / 'images' / ('%d.png' % index))
    (root / 'params.json').write_text(json.dumps(PARAMS))
    return root / 'images'


@pytest.fixture(scope='module')
def trained(data, tmp_path_factory):
    """A logdir with checkpoints at steps 2 and 4."""
    logdir = tmp_path_factory.mktemp('trained') / 'logdir'
    run_train(data, logdir, 4)
    return logdir


@pytest.fixture
def logdir(trained, tmp_path):
    """A copy of the trained logdir that a test may damage."""
    copy = tmp_path / 'logdir'
    shutil.copytree(trained, copy)
    return copy


# ----------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize('damage', ['newest_deleted', 'index_deleted', 'index_emptied',
                                    'index_garbage'])
def test_resume_from_the_newest_checkpoint_file_whatever_the_index_says(data, logdir,
                                                                         damage, capsys):
    if damage == 'newest_deleted':
        for name in os.listdir(logdir):
            if name.startswith('model.ckpt-4.'):
                os.remove(logdir / name)
    elif damage == 'index_deleted':
        os.remove(logdir / 'checkpoint')
    else:
        (logdir / 'checkpoint').write_bytes(b'' if damage == 'index_emptied'
                                            else b'\xff\xfe garbage {{{')
    run_train(data, logdir, 6)
    expected = 2 if damage == 'newest_deleted' else 4
    assert 'resumed from %s' % (logdir / ('model.ckpt-%d' % expected)) in capsys.readouterr().out
    assert global_step(logdir / 'model.ckpt-6') == 6


@pytest.mark.parametrize('damage', ['truncated', 'zero_filled'])
def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning(data, logdir, damage, capsys):
    data_file = logdir / 'model.ckpt-4.data-00000-of-00001'
    size = data_file.stat().st_size
    with open(data_file, 'r+b') as stream:
        if damage == 'truncated':
            stream.truncate(size // 2)
        else:
            stream.write(bytes(size))
    run_generate('--checkpoint=%s' % logdir, '--out=%s' % (logdir / 'one.png'),
                 '--num_images=1', '--seed=1')
    output = capsys.readouterr()
    assert re.search(r'^warning: checkpoint \S+model\.ckpt-4 cannot be read \(.+\); skipped it$',
                     output.err, re.M), output.err
    assert 'from %s' % (logdir / 'model.ckpt-2') in output.out
    run_train(data, logdir, 6)
    output = capsys.readouterr()
    assert 'model.ckpt-4 cannot be read' in output.err
    assert 'resumed from %s' % (logdir / 'model.ckpt-2') in output.out
    assert global_step(logdir / 'model.ckpt-4') == 4  # written again, readable
    checkpoints.verify_checkpoint(str(logdir / 'model.ckpt-4'))


def test_no_readable_checkpoint_is_an_error_not_a_new_run(data, logdir):
    for name in os.listdir(logdir):
        if name.startswith('model.ckpt-'):
            (logdir / name).write_bytes(b'garbage')
    before = snapshot(logdir)
    with pytest.raises(cli.UsageError, match='no checkpoint in .* can be read'):
        run_train(data, logdir, 6)
    assert snapshot(logdir) == before


@pytest.mark.parametrize('damage', ['params_deleted', 'params_garbage', 'data_deleted'])
def test_checkpoints_without_their_run_files_are_refused_untouched(data, logdir, damage):
    name = 'data.json' if damage == 'data_deleted' else 'params.json'
    if damage == 'params_garbage':
        (logdir / name).write_text('{"dilations": [1, 2')
    else:
        os.remove(logdir / name)
    before = snapshot(logdir)
    with pytest.raises(cli.UsageError) as error:
        run_train(data, logdir, 6, '--seed=9')
    message = str(error.value)
    assert 'holds checkpoints up to %s' % (logdir / 'model.ckpt-4') in message, message
    assert 'put back' in message and 'new --logdir' in message, message
    assert snapshot(logdir) == before


def test_run_files_that_differ_from_the_checkpoint_are_refused(data, logdir):
    params = json.loads((logdir / 'params.json').read_text())
    params['dilations'] = [8, 4, 2, 1]  # the same variable shapes, another network
    (logdir / 'params.json').write_text(json.dumps(params))
    description = json.loads((logdir / 'data.json').read_text())
    description['channels'] = 3
    (logdir / 'data.json').write_text(json.dumps(description))
    before = snapshot(logdir)
    for run in (lambda: run_train(data, logdir, 6, '--wavenet_params=%s' % (logdir /
                                                                             'params.json')),
                lambda: run_generate('--checkpoint=%s' % logdir,
                                     '--out=%s' % (logdir.parent / 'x.png'))):
        with pytest.raises(cli.UsageError, match=r'differ in dilations, channels;'):
            run()
    assert snapshot(logdir) == before
    assert not (logdir.parent / 'x.png').exists()


def test_the_run_spec_is_stored_in_every_checkpoint(trained):
    stored = tf.train.load_variable(str(trained / 'model.ckpt-2'), 'run_spec')
    spec = checkpoints.read_run_files(str(trained))
    assert json.loads(stored.decode()) == json.loads(checkpoints.spec_to_json(spec))
    assert json.loads(stored.decode())['params']['dilations'] == PARAMS['dilations']


def test_stale_temporaries_of_an_interrupted_writer_are_removed(data, logdir, capsys):
    (logdir / 'model.ckpt-6_temp').mkdir()
    (logdir / 'model.ckpt-6_temp' / 'part-00000-of-00001.data-00000-of-00001').write_bytes(
        b'half')
    (logdir / '.params.json.tmp-123-abcdef12').write_text('{')
    (logdir / 'samples').mkdir(exist_ok=True)
    (logdir / 'samples' / '.samples-6.png.tmp-123-abcdef12').write_bytes(b'\x89PNG')
    run_train(data, logdir, 6)
    err = capsys.readouterr().err
    assert 'removed model.ckpt-6_temp, left by an interrupted run' in err
    assert 'removed samples/.samples-6.png.tmp-123-abcdef12, left by' in err, err
    assert not (logdir / 'model.ckpt-6_temp').exists()
    assert not (logdir / '.params.json.tmp-123-abcdef12').exists()
    assert os.listdir(logdir / 'samples') == []


def rewrite_as_an_earlier_version(prefix, optimizer_scope):
    """Rewrites checkpoint `prefix` as earlier versions wrote them: no run_spec, Adam's beta
    powers under `optimizer_scope`."""
    values = {name: tf.train.load_variable(str(prefix), name)
              for name, _ in tf.train.list_variables(str(prefix)) if name != 'run_spec'}
    for name in [name for name in values if name.startswith('optimizer/')]:
        values[optimizer_scope + name[len('optimizer/'):]] = values.pop(name)
    for path in prefix.parent.glob(prefix.name + '.*'):
        os.remove(path)
    with tf.Graph().as_default(), tf.Session() as session:
        variables = [tf.Variable(value, name=name) for name, value in values.items()]
        session.run(tf.global_variables_initializer())
        tf.train.Saver(variables).save(session, str(prefix), write_meta_graph=False)


@pytest.mark.parametrize('optimizer_scope', ['', 'optimizer_1/'])
def test_checkpoints_of_earlier_versions_resume_exactly(data, trained, logdir, tmp_path,
                                                        optimizer_scope):
    """Before #16 (no run_spec, no training.json, Adam's beta powers at the top level) and
    while the optimizer scope was 'optimizer_1'."""
    os.remove(logdir / 'training.json')
    rewrite_as_an_earlier_version(logdir / 'model.ckpt-4', optimizer_scope)
    assert 'run_spec' not in dict(tf.train.list_variables(str(logdir / 'model.ckpt-4')))
    run_train(data, logdir, 6)
    whole = tmp_path / 'whole'
    shutil.copytree(trained, whole)
    run_train(data, whole, 6)
    for name, _ in tf.train.list_variables(str(whole / 'model.ckpt-6')):
        if name != 'run_spec':  # the earlier checkpoint had none: the run's own now
            np.testing.assert_array_equal(
                tf.train.load_variable(str(logdir / 'model.ckpt-6'), name),
                tf.train.load_variable(str(whole / 'model.ckpt-6'), name), err_msg=name)


# ----------------------------------------------------------------------------- run options


def test_a_resumed_run_keeps_its_options_and_refuses_others(data, tmp_path, capsys):
    """--seed=3 given once: resumed without flags, the run goes on as one that never
    stopped; resumed with another seed, it is refused and untouched."""
    resumed, whole = tmp_path / 'resumed', tmp_path / 'whole'
    run_train(data, resumed, 2, '--seed=3', '--learning_rate_schedule=constant')
    assert json.loads((resumed / 'training.json').read_text())['seed'] == 3
    run_train(data, resumed, 4)
    run_train(data, whole, 4, '--seed=3', '--learning_rate_schedule=constant')
    for name in ('wavenet/layer0/filter_gate', 'global_step'):
        np.testing.assert_array_equal(
            tf.train.load_variable(str(resumed / 'model.ckpt-4'), name),
            tf.train.load_variable(str(whole / 'model.ckpt-4'), name))
    before = snapshot(resumed)
    for flag, kept in (('--seed=9', '3'), ('--learning_rate_schedule=cosine', 'constant')):
        with pytest.raises(cli.UsageError) as error:
            run_train(data, resumed, 6, flag)
        assert str(error.value).startswith('%s differs from %s, which the run in %s keeps'
                                           % (flag, kept, resumed)), error.value
        assert 'resume without %s' % flag.split('=')[0] in str(error.value)
    assert snapshot(resumed) == before


def test_the_stored_options_must_match_the_checkpoint(data, logdir):
    options = json.loads((logdir / 'training.json').read_text())
    (logdir / 'training.json').write_text(json.dumps(dict(options, seed=5)))
    with pytest.raises(cli.UsageError, match=r'differ in seed;'):
        run_train(data, logdir, 6)


def test_run_files_without_a_checkpoint_are_replaced_with_a_warning(data, logdir, capsys):
    for name in os.listdir(logdir):
        if name.startswith('model.ckpt-') or name == 'checkpoint':
            os.remove(logdir / name)
    run_train(data, logdir, 2, '--seed=4')
    err = capsys.readouterr().err
    assert 'warning: %s holds the run files of a run that saved no checkpoint; this run ' \
        'replaces them' % logdir in err, err
    assert global_step(logdir / 'model.ckpt-2') == 2
    assert json.loads((logdir / 'training.json').read_text())['seed'] == 4


def test_a_logdir_that_is_a_file_is_refused(data, tmp_path):
    (tmp_path / 'run').write_text('notes')
    with pytest.raises(cli.UsageError, match='--logdir=.*run is a file: give a folder'):
        run_train(data, tmp_path / 'run', 2)
    assert (tmp_path / 'run').read_text() == 'notes'


def test_old_checkpoints_count_towards_max_checkpoints_after_a_resume(data, logdir):
    run_train(data, logdir, 8, '--max_checkpoints=2')
    steps = sorted(checkpoints.step_of(prefix)
                   for prefix in checkpoints.list_checkpoints(str(logdir)))
    assert steps == [6, 8]


# ----------------------------------------------------------------------------- other processes


def script(*args, **kwargs):
    """Runs `python ARGS` from the repository root; returns the CompletedProcess."""
    return subprocess.run([sys.executable] + [str(arg) for arg in args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, **kwargs)


def assert_one_error_line(result, *parts):
    """Exit status 2, no traceback and one stderr line 'error: ...' containing every part
    (beside warnings and progress lines)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert 'Traceback' not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if 'error' in line.lower()]
    assert len(errors) == 1 and errors[0].startswith('error: '), result.stderr
    for part in parts:
        assert str(part) in errors[0], (part, errors[0])
    return errors[0]


def test_a_second_run_on_the_same_logdir_is_refused_naming_the_first(data, tmp_path, capsys):
    logdir = tmp_path / 'logdir'
    first = subprocess.Popen(
        [sys.executable, 'train.py'] + train_flags(data, logdir, 100000),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while 'training from step' not in first.stdout.readline():
            assert first.poll() is None, first.stderr.read()
        with pytest.raises(cli.UsageError, match=r'in use by another training run \(PID %d\)'
                           % first.pid):
            run_train(data, logdir, 100000)
        # Interrupt after a finished step, so the run has one to resume from (even on a
        # loaded machine, where the first step can take longer than the refusal).
        while not first.stdout.readline().startswith('step '):
            assert first.poll() is None, first.stderr.read()
        first.send_signal(signal.SIGINT)
        output, errors = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, errors
    assert 'interrupted at step' in output
    # The lock went with its process: the logdir resumes.
    capsys.readouterr()
    run_train(data, logdir, 1)
    assert 'nothing to train' in capsys.readouterr().out


def limit_file_size(size):
    """A preexec_fn: files of the process cannot grow past `size` bytes (EFBIG), as on a full
    disk. Python ignores SIGXFSZ, so the write fails instead of killing the process."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def test_a_full_disk_stops_training_with_one_line_and_keeps_the_last_checkpoint(data, logdir):
    # The checkpoints are about 3 KB, the events file with the graph about 200 KB: a limit
    # between them lets the first run write nothing large and a resumed run save nothing.
    before = sorted(checkpoints.list_checkpoints(str(logdir)))
    result = script('train.py', *train_flags(data, logdir, 8),
                    preexec_fn=limit_file_size(4000))
    line = assert_one_error_line(result, 'cannot save checkpoint 6', 'File too large',
                                 'newest good checkpoint: %s' % (logdir / 'model.ckpt-4'))
    assert 'free disk space' in line
    assert sorted(checkpoints.list_checkpoints(str(logdir))) == before
    assert checkpoints.newest_readable_checkpoint(str(logdir)) == (
        str(logdir / 'model.ckpt-4'), [])
    leftovers = [name for name in os.listdir(logdir) if 'temp' in name or '.tmp-' in name]
    assert not leftovers, leftovers


@pytest.fixture
def read_only_folder(tmp_path):
    """An empty folder nobody may write into: chmod for a normal user; for root (whom
    permissions do not stop) a read-only tmpfs, or a skip where mounting is not allowed."""
    folder = tmp_path / 'read_only'
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs',
                              str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip('root here cannot mount a read-only folder: %s' % mounted.stderr.strip())
    yield folder
    subprocess.run(['umount', str(folder)], check=True)


def test_a_read_only_logdir_is_one_line_and_nothing_trained(data, read_only_folder):
    result = script('train.py', *train_flags(data, read_only_folder / 'run', 2))
    assert_one_error_line(result, str(read_only_folder / 'run'), 'another --logdir')
    assert 'training from step' not in result.stdout


def test_generate_refuses_an_unwritable_output_before_generating(trained, read_only_folder,
                                                                  tmp_path):
    for flag, message in (('--out=%s' % tmp_path, 'is a folder'),
                          ('--out=%s' % (read_only_folder / 'x.png'), 'cannot be written'),
                          ('--out_dir=%s' % (read_only_folder / 'images'),
                           'cannot be written')):
        with pytest.raises(cli.UsageError, match=message):
            run_generate('--checkpoint=%s' % trained, flag, '--num_images=1')
    assert os.listdir(read_only_folder) == []


def test_generate_on_a_full_disk_is_one_line_and_leaves_no_temporary_file(trained, tmp_path):
    out = tmp_path / 'grid.png'
    result = script('generate.py', '--checkpoint=%s' % trained, '--out=%s' % out,
                    '--num_images=4', preexec_fn=limit_file_size(20))
    assert_one_error_line(result, 'cannot write %s' % out, 'File too large')
    assert os.listdir(tmp_path) == []


def test_kill_9_at_random_moments_never_loses_the_run(data, tmp_path):
    """Killed at seeded random moments of training (a checkpoint every step, so many land
    mid-save) again and again, every resume starts from the newest complete checkpoint; the
    last run completes."""
    logdir, rng = tmp_path / 'logdir', np.random.default_rng(7)
    flags = train_flags(data, logdir, 400) + ['--checkpoint_every=1', '--print_every=50']
    newest_step = 0
    for _ in range(3):
        process = subprocess.Popen([sys.executable, 'train.py'] + flags, cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started = process.stdout.readline()
        while started and not started.startswith('training from step'):
            started = process.stdout.readline()
        time.sleep(rng.uniform(0.1, 1.5))
        process.kill()
        output, errors = process.communicate()
        assert 'Traceback' not in errors, errors
        assert started == 'training from step %d to 400, batch 2, adam\n' % newest_step, (
            newest_step, started, errors)
        newest_step = checkpoints.step_of(checkpoints.newest_readable_checkpoint(
            str(logdir))[0])
    assert newest_step > 0, 'no checkpoint was written in three runs'
    # The last run goes 5 steps further (--num_steps is the one flag a resume may change).
    final = script('train.py', *train_flags(data, logdir, newest_step + 5,
                                            '--checkpoint_every=1'))
    assert final.returncode == 0, final.stderr
    assert 'resumed from %s' % (logdir / ('model.ckpt-%d' % newest_step)) in final.stdout
    generated = script('generate.py', '--checkpoint=%s' % logdir,
                       '--out=%s' % (tmp_path / 'one.png'), '--num_images=1')
    assert generated.returncode == 0, generated.stderr
    assert global_step(checkpoints.newest_readable_checkpoint(str(logdir))[0]) == \
        newest_step + 5


# ----------------------------------------------------------------------------- bounds


def parse_error(script_module, argv, capsys):
    """The one stderr line of an argparse refusal (exit status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        script_module.get_arguments(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), lines
    assert '--help lists the flags' in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize('flag, allowed', [
    ('--seed=-1', 'from 0 to 4294967295'), ('--seed=%d' % 2 ** 70, 'from 0 to 4294967295'),
    ('--image_size=100000', 'sides from 1 to 4096'), ('--image_size=0x5', 'sides from 1'),
    ('--batch_size=0', 'at least 1'), ('--momentum=nan', 'from 0'),
    ('--momentum=-0.5', 'from 0'), ('--l2_regularization_strength=inf', 'from 0'),
    ('--learning_rate=0', 'above 0'), ('--dropout=1', 'from 0 to below 1'),
    ('--validation_fraction=-0.1', 'from 0 to below 1'), ('--num_samples=5000', 'to 1024'),
    ('--gc_channels=-1', 'from 0 to 4096'),
])
def test_train_refuses_values_out_of_range_naming_flag_and_range(flag, allowed, capsys):
    line = parse_error(train, [flag], capsys)
    assert flag.split('=')[0] in line and allowed in line, line


@pytest.mark.parametrize('flag, allowed', [
    ('--num_images=1000000000000', 'from 1 to 100000'), ('--seed=-5', 'from 0 to 4294967295'),
    ('--batch_size=100000', 'from 1 to 4096'), ('--temperature=nan', 'above 0'),
])
def test_generate_refuses_values_out_of_range_naming_flag_and_range(flag, allowed, capsys):
    line = parse_error(generate, [flag], capsys)
    assert flag.split('=')[0] in line and allowed in line, line


def test_a_run_that_cannot_fit_in_memory_is_refused_before_reading_data(data, tmp_path):
    with pytest.raises(cli.UsageError, match=r'needs about [\d.]+ GiB, and this machine has '
                                             r'[\d.]+ GiB: lower --batch_size'):
        run_train(data, tmp_path / 'big', 2, '--batch_size=1000000000', '--image_size=6')
    with pytest.raises(cli.UsageError, match='lower --batch_size or --image_size'):
        run_train(data, tmp_path / 'big', 2, '--image_size=4096', '--batch_size=64')
    assert not (tmp_path / 'big').exists()


def test_shifts_must_be_less_than_the_image_side(data, tmp_path):
    with pytest.raises(cli.UsageError, match=r'--augment_shift=6 must be less than the image '
                                             r'side \(6x6\)'):
        run_train(data, tmp_path / 'run', 2, '--augment_shift=6')
    assert not (tmp_path / 'run').exists()


def test_generate_refuses_more_columns_than_images_and_too_many_images(trained, tmp_path):
    out = '--out=%s' % (tmp_path / 'grid.png')
    with pytest.raises(cli.UsageError, match='--columns=1000000000 is more than the 4 images'):
        run_generate('--checkpoint=%s' % trained, out, '--num_images=4', '--columns=1000000000')
    seed = tmp_path / 'seed.png'
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(seed)
    with pytest.raises(cli.UsageError, match='120000 images asked for'):
        run_generate('--checkpoint=%s' % trained, out, '--num_images=60000',
                     '--seed_image=%s' % seed, '--seed_image=%s' % seed)
    assert os.listdir(tmp_path) == ['seed.png']


def test_the_most_common_image_size_wins_and_is_reported(data, tmp_path, capsys):
    folder = tmp_path / 'images'
    shutil.copytree(data, folder)
    shutil.copy(data.parent / 'params.json', tmp_path / 'params.json')
    Image.fromarray(np.zeros((300, 300), np.uint8)).save(folder / '0000_stray.png')
    run_train(folder, tmp_path / 'run', 1, '--validation_fraction=0')
    out = capsys.readouterr().out
    assert 'the training images have 2 sizes: 6x6 (8), 300x300 (1); all are resized to 6x6' \
        in out, out
    assert json.loads((tmp_path / 'run' / 'data.json').read_text())['image_size'] == [6, 6]
