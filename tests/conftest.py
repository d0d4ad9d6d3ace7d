"""What the tests share: TensorFlow quiet in graph mode, tiny data and params, one trained
logdir, and helpers that run the scripts in this process or in a subprocess.

Most tests call a script's main() in this process, in a graph of its own (quick, and the
results are those of a `python SCRIPT` run: every run is seeded). What only a process of its
own shows (exit status, stderr, signals, kill -9, file-size limits) runs a subprocess.
"""
import collections
import contextlib
import faulthandler
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# Lets train.py's --xla reach the CPU in runs in this process (TensorFlow reads it once).
os.environ.setdefault('TF_XLA_FLAGS', '--tf_xla_cpu_global_jit')

from wavenet import cli, errors  # noqa: E402

tf = cli.import_tensorflow(verbose=False)

TIMEOUT = 300  # seconds per subprocess: the machine may be busy with other work
TINY_PARAMS = {'dilations': [1, 2, 4, 8], 'residual_channels': 8, 'dilation_channels': 8,
               'skip_channels': 16}
# Every step printed and summarized; a checkpoint at the end of a run. A high learning rate:
# soon the model is far from uniform (8 bits/dim). --xla=off: compiling costs a tiny run more
# than it saves (test_precision.py tests XLA).
SMALL_FLAGS = ['--xla=off', '--batch_size=4', '--num_samples=2', '--print_every=1',
               '--summary_every=1', '--learning_rate=0.03']
STEPS, CHECKPOINTS = 60, (30, 60)  # those of the trained logdir
LATEST, EARLIER = ('model.ckpt-%d' % step for step in reversed(CHECKPOINTS))

Result = collections.namedtuple('Result', 'returncode stdout stderr')
Trained = collections.namedtuple('Trained', 'logdir result')


def describe(result):
    return 'exit %s\n--- stdout:\n%s\n--- stderr:\n%s' % tuple(result)


def run_script(*args, cwd=ROOT, env=None, **kwargs):
    """Runs `python ARGS` with oneDNN on (TensorFlow's default on CPUs with AVX512_VNNI,
    AVX512_BF16 or AMX, whose start-up lines the scripts must hold back); returns a Result.
    The TF_CPP_MIN_LOG_LEVEL of this process is removed: the scripts' own silencing of
    TensorFlow is what is tested."""
    environ = dict(env if env is not None else os.environ, TF_ENABLE_ONEDNN_OPTS='1',
                   COLUMNS='200')
    environ.pop('TF_CPP_MIN_LOG_LEVEL', None)
    process = subprocess.run([sys.executable] + [str(arg) for arg in args], cwd=str(cwd),
                             env=environ, capture_output=True, text=True, timeout=TIMEOUT,
                             **kwargs)
    return Result(process.returncode, process.stdout, process.stderr)


def run_main(script, args, capsys=None):
    """script.main(ARGS) in this process, in a graph of its own; returns a Result (its
    captured output with `capsys`)."""
    if capsys is not None:
        capsys.readouterr()
    with tf.Graph().as_default():
        script.main([str(arg) for arg in args])
    captured = capsys.readouterr() if capsys is not None else ('', '')
    return Result(0, captured[0], captured[1])


def error_of(script, args):
    """The message of the errors.Error that script.main(ARGS) raises."""
    with tf.Graph().as_default(), pytest.raises(errors.Error) as error:
        script.main([str(arg) for arg in args])
    return str(error.value)


def flag_error(script, args, capsys):
    """The one 'error:' line of argparse refusing ARGS with exit status 2."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        script.get_arguments([str(arg) for arg in args])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and captured.out == '', captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), captured.err
    assert '--help lists the flags' in lines[0], lines[0]
    return lines[0]


def assert_one_error_line(result, *parts):
    """Exit status 2, no traceback and one stderr line 'error: ...' containing every part
    (beside warnings and the progress lines); returns that line."""
    assert result.returncode == 2, describe(result)
    assert 'Traceback' not in result.stderr, describe(result)
    lines = [line for line in result.stderr.splitlines() if 'error' in line.lower()]
    assert len(lines) == 1 and lines[0].startswith('error: '), describe(result)
    for part in parts:
        assert str(part) in lines[0], (part, lines[0])
    return lines[0]


def train_flags(data_dir, logdir, num_steps=2, *extra, params=None):
    """train.py's flags for a tiny run."""
    flags = ['--data_dir=%s' % data_dir, '--logdir=%s' % logdir,
             '--num_steps=%d' % num_steps] + SMALL_FLAGS + list(extra)
    return flags + (['--wavenet_params=%s' % params] if params is not None else [])


class Hang(BaseException):
    """A time limit ran out (a BaseException: no `except Exception` of the code swallows it)."""


@contextlib.contextmanager
def time_limit(seconds=10):
    """Fails the block with Hang after `seconds`: a wait in Python code or in a system call
    (opening a FIFO, also from TensorFlow's C++ code) is interrupted by SIGALRM. A wait that
    the alarm cannot end ends the whole test process 30 s later, with the traceback of every
    thread, instead of stalling the suite."""
    def expire(signum, frame):
        raise Hang('still waiting after %d s: a hang' % seconds)
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    faulthandler.dump_traceback_later(seconds + 30, exit=True, file=sys.__stderr__)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(main, capsys):
    """main() under cli.run_main, the scripts' one error path, in this process (the signal
    handlers it sets are restored after): a Result."""
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        cli.run_main(main)
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    captured = capsys.readouterr()
    return Result(status, captured.out, captured.err)


def write_file(path, content):
    """Writes bytes or text to `path`, creating its folders."""
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), 'wb') as stream:
        stream.write(content if isinstance(content, bytes) else content.encode())


def write_png(path, values):
    """Writes uint8 `values` [height, width] (or [height, width, 3]) as a PNG file."""
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    Image.fromarray(np.asarray(values, np.uint8)).save(str(path), format='PNG')


def write_json(path, content):
    write_file(path, json.dumps(content))


def png_pixels(path):
    """The pixels of a PNG file (or file object) and its mode."""
    with Image.open(path if hasattr(path, 'read') else str(path)) as image:
        return np.asarray(image), image.mode


def snapshot(folder):
    """{relative path: (sha256 of the content, mtime_ns)} of every file below `folder`, but
    the lock file that every run of train.py takes (and leaves)."""
    found = {}
    for parent, _, names in os.walk(str(folder)):
        for name in set(names) - {'train.lock'}:
            path = os.path.join(parent, name)
            with open(path, 'rb') as stream:
                digest = hashlib.sha256(stream.read()).hexdigest()
            found[os.path.relpath(path, str(folder))] = (digest, os.stat(path).st_mtime_ns)
    return found


def checkpoint_values(prefix):
    """{name: value} of every variable of a checkpoint but the run record."""
    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name != 'run_spec'}


def assert_same_values(first, second, atol=0.0):
    assert sorted(first) == sorted(second)
    for name, value in first.items():
        np.testing.assert_allclose(second[name], value, rtol=0, atol=atol, err_msg=name)


def limit_file_size(size):
    """A preexec_fn: files of the process cannot grow past `size` bytes (EFBIG), as on a full
    disk. Python ignores SIGXFSZ, so the write fails instead of killing the process."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
    """12 grayscale 8x8 images: 6 dark and 6 bright, each in its class folder."""
    folder = tmp_path_factory.mktemp('data') / 'data'
    rng = np.random.default_rng(0)
    for name, base in (('dark', 40), ('bright', 210)):
        for index in range(6):
            write_png(folder / name / ('%s_%02d.png' % (name, index)),
                      np.clip(base + rng.integers(-10, 11, (8, 8)), 0, 255))
    return folder


@pytest.fixture(scope='session')
def tiny_params(tmp_path_factory):
    path = tmp_path_factory.mktemp('params') / 'tiny_params.json'
    write_json(path, TINY_PARAMS)
    return path


@pytest.fixture(scope='session')
def trained(tmp_path_factory, data_dir, tiny_params):
    """One real `python train.py` run into a logdir of its own (60 steps, checkpoints at 30 and
    60: a model whose likeliest next pixel depends on the pixels before it); a Trained. Tests
    that change a logdir work on a copy (copy_logdir)."""
    logdir = tmp_path_factory.mktemp('trained') / 'logdir'
    result = run_script(os.path.join(ROOT, 'train.py'), *train_flags(
        data_dir, logdir, STEPS, '--checkpoint_every=%d' % CHECKPOINTS[0], params=tiny_params))
    assert result.returncode == 0, describe(result)
    return Trained(logdir, result)


@pytest.fixture
def logdir_copy(trained, tmp_path):
    """A copy of the trained logdir that a test may change."""
    copy = tmp_path / 'logdir_copy'
    shutil.copytree(str(trained.logdir), str(copy))
    return copy
