"""Scaling out: data-parallel replicas and the workers of a cluster follow the one-device run,
a cluster stops and fails together, and prepared datasets are read memory-mapped.

The one-device runs are in this process. Logical CPU devices must be set before TensorFlow
touches its devices, so the replicas' runs share one process of their own (RUNNER), with the
memory measurements; a cluster is a process per worker.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

import train
from conftest import (ROOT, TIMEOUT, TINY_PARAMS, assert_same_values, checkpoint_values,
                      describe, error_of, limit_file_size, run_main, run_script, train_flags,
                      write_json)
from datasets import prepare
from wavenet import checkpoints, distribution, prepared, reader

# Every run: a constant rate (a run resumed at any step goes on as the whole one), a
# checkpoint every 3 steps, no sample grids.
RUN_FLAGS = ('--learning_rate_schedule=constant', '--learning_rate=0.01', '--seed=3',
             '--checkpoint_every=3', '--num_samples=0')
CLASSES = ('--gc_channels=3', '--dropout=0.2', '--augment_shift=1',
           '--augment_symmetries=0.5')
# A model given a 4x4 copy of each image, with the logistic-mixture output.
CONDITIONED = dict(TINY_PARAMS, dilations=[1, 2], position_channels=2, local_condition='lowres:2',
                   condition_channels=2, output='logistic_mixture', mixture_components=2)
# train.main for each list of flags, in one process: logical CPU devices are set once, before
# TensorFlow touches its devices, and kept. Prints, as JSON, each run's stdout, its
# errors.Error message (or None) and the process's peak memory (MiB) after it.
RUNNER = '''
import contextlib, io, json, resource, sys
from wavenet import cli, errors
tf = cli.import_tensorflow(verbose=False)
import train
results = []
for flags in json.loads(sys.argv[1]):
    output, error = io.StringIO(), None
    try:
        with tf.Graph().as_default(), contextlib.redirect_stdout(output):
            train.main(flags)
    except errors.Error as refused:
        error = str(refused)
    results.append({'stdout': output.getvalue(), 'error': error,
                    'peak': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
print(json.dumps(results))
'''


def run_in_one_process(*runs):
    """RUNNER's results for train.py flags `runs`, in a process of its own."""
    result = run_script('-c', RUNNER, json.dumps([[str(flag) for flag in flags]
                                                  for flags in runs]))
    assert result.returncode == 0, describe(result)
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope='module')
def params(tmp_path_factory):
    """Tinier params than conftest's (two layers: the graphs build faster), with position
    conditioning, which the replicas split too."""
    path = tmp_path_factory.mktemp('params') / 'params.json'
    write_json(path, dict(TINY_PARAMS, dilations=[1, 2], position_channels=2))
    return path


def flags(data_dir, params, logdir, num_steps, *extra):
    return train_flags(data_dir, logdir, num_steps, *(RUN_FLAGS + extra), params=params)


def up_to(logdir, step, copy):
    """A copy of `logdir` as a run stopped after its checkpoint of `step` left it."""
    newer = ['%s-%d.*' % (checkpoints.CHECKPOINT_PREFIX, checkpoints.step_of(prefix))
             for prefix in checkpoints.list_checkpoints(str(logdir))
             if checkpoints.step_of(prefix) > step]
    shutil.copytree(str(logdir), str(copy), ignore=shutil.ignore_patterns(*newer))
    return copy


def assert_same_run(first, second):
    """The variables of two checkpoints, optimizer slots included, agree to rounding."""
    first = checkpoint_values(first)
    assert any(name.endswith('/Adam') for name in first), 'no optimizer slots'
    assert_same_values(first, checkpoint_values(second), atol=1e-5)


def write_sparse_prepared(folder, num_images, side):
    """A prepared dataset of `num_images` black side x side images in a sparse file (no
    disk written for the pixels), with a small test split."""
    folder.mkdir()
    images = np.lib.format.open_memmap(str(folder / 'train_images.npy'), 'w+', np.uint8,
                                       (num_images, side, side, 1))
    del images  # all zeros: the file stays sparse
    np.save(folder / 'train_labels.npy', np.full(num_images, -1, np.int64))
    np.save(folder / 'test_images.npy', np.zeros((4, side, side, 1), np.uint8))
    np.save(folder / 'test_labels.npy', np.full(4, -1, np.int64))
    write_json(folder / prepared.INFO_FILE, {'image_size': [side, side], 'channels': 1,
                                            'classes': []})


@pytest.fixture(scope='module')
def one_device(data_dir, params, tmp_path_factory):
    """Six steps on one device, with and without class conditioning, dropout, shifts and
    symmetries, and of the CONDITIONED model (its params in conditioned.json)."""
    root = tmp_path_factory.mktemp('one_device')
    write_json(root / 'conditioned.json', CONDITIONED)
    for name, extra in (('plain', ()), ('classes', CLASSES)):
        run_main(train, flags(data_dir, params, root / name, 6, *extra))
    run_main(train, flags(data_dir, root / 'conditioned.json', root / 'conditioned', 6))
    return root


@pytest.fixture(scope='module')
def fresh_process(data_dir, params, one_device, tmp_path_factory):
    """The runs that need a process of their own, run in one: {name: (logdir, RUNNER
    result)}. Two replicas (first: once TensorFlow's devices are set, they stay): with class
    conditioning, dropout, shifts and symmetries from the start; resuming the plain one-device
    run from step 3; given a batch of 5; the CONDITIONED model. Then one device, on a prepared
    dataset of 64 images and on one of 1.7 million."""
    root = tmp_path_factory.mktemp('fresh_process')
    write_sparse_prepared(root / 'small', 64, 25)
    write_sparse_prepared(root / 'big', 1_700_000, 25)  # 1.06 GB of pixels
    two, conditioned = ('--cpu_replicas=2',), one_device / 'conditioned.json'
    runs = {'classes': (data_dir, params, 6) + two + CLASSES,
            'one_device_first': (data_dir, params, 6) + two,
            'unshared_batch': (data_dir, params, 6, '--batch_size=5') + two,
            'conditioned': (data_dir, conditioned, 6) + two,
            'small': (root / 'small', params, 2), 'big': (root / 'big', params, 2)}
    logdirs = {name: root / (name + '_run') for name in runs}
    up_to(one_device / 'plain', 3, logdirs['one_device_first'])
    results = run_in_one_process(*(flags(run[0], run[1], logdirs[name], *run[2:])
                                   for name, run in runs.items()))
    return {name: (logdirs[name], result) for name, result in zip(runs, results)}


def test_two_cpu_replicas_follow_one_device(one_device, fresh_process):
    """With class conditioning, dropout and shifts: each replica takes its rows of the
    batch, and their shifts and dropout masks (the plain model: next test)."""
    logdir, result = fresh_process['classes']
    assert result['error'] is None, result
    assert 'devices: 2 replicas: /cpu:0, /cpu:1' in result['stdout']
    assert_same_run(one_device / 'classes' / 'model.ckpt-6', logdir / 'model.ckpt-6')


def test_replicas_of_a_locally_conditioned_mixture_model_follow_one_device(one_device,
                                                                          fresh_process):
    """Each replica derives the condition of its rows and scores them with the mixture."""
    logdir, result = fresh_process['conditioned']
    assert result['error'] is None, result
    assert 'devices: 2 replicas' in result['stdout']
    assert_same_run(one_device / 'conditioned' / 'model.ckpt-6', logdir / 'model.ckpt-6')


def test_checkpoints_move_between_one_device_and_replicas(data_dir, params, one_device,
                                                          fresh_process, tmp_path, capsys):
    """Two replicas resume a one-device checkpoint, and one device a two-replica one; both
    go on as the one-device run."""
    logdir, result = fresh_process['one_device_first']
    assert result['error'] is None, result
    assert 'resumed from %s' % (logdir / 'model.ckpt-3') in result['stdout'], result
    assert 'devices: 2 replicas: /cpu:0, /cpu:1' in result['stdout']
    assert_same_run(one_device / 'plain' / 'model.ckpt-6', logdir / 'model.ckpt-6')
    logdir = up_to(fresh_process['classes'][0], 3, tmp_path / 'replicas_first')
    output = run_main(train, flags(data_dir, params, logdir, 6, *CLASSES), capsys).stdout
    assert 'resumed from %s' % (logdir / 'model.ckpt-3') in output
    assert 'devices: one device' in output
    assert_same_run(one_device / 'classes' / 'model.ckpt-6', logdir / 'model.ckpt-6')


def test_a_batch_the_replicas_cannot_share_is_refused_writing_nothing(fresh_process):
    logdir, result = fresh_process['unshared_batch']
    assert result['error'] == 'batch_size=5 cannot be split evenly between 2 replicas'
    assert not logdir.exists()


def test_a_task_index_without_its_cluster_is_refused(data_dir, tmp_path):
    assert error_of(train, ['--data_dir=%s' % data_dir, '--logdir=%s' % (tmp_path / 'run'),
                            '--task_index=1']) == ('a task index (1) needs the list of '
                                                   'worker hosts it indexes')
    assert not (tmp_path / 'run').exists()


def test_a_bad_cluster_is_refused_writing_nothing(data_dir, tmp_path, monkeypatch):
    logdir = tmp_path / 'run'
    run = ['--data_dir=%s' % data_dir, '--logdir=%s' % logdir]
    assert error_of(train, run + ['--worker_hosts=127.0.0.1:1,127.0.0.1:2', '--task_index=2']
                    ) == 'the task index must be from 0 to 1 (one per worker host), got 2'
    monkeypatch.setenv('TF_CONFIG', '{"cluster": {}}')
    message = error_of(train, run)
    assert message.startswith('TF_CONFIG must be JSON {"cluster"') and message.endswith(
        "(KeyError: 'task')"), message
    monkeypatch.setenv('TF_CONFIG', '{"cluster": {"worker": ["a:1"]}, "task": {"type": '
                                    '"worker", "index": 1}}')
    assert 'IndexError: task index 1 of 1 worker tasks' in error_of(train, run)
    assert not logdir.exists()


def test_worker_hosts_describe_the_cluster_in_tf_config_and_worker_0_is_the_chief():
    environ = distribution.cluster_environment({'HOME': '/h'}, ['a:1', 'b:2'], 1)
    assert environ['HOME'] == '/h'
    workers = {'worker': ['a:1', 'b:2']}
    assert distribution.read_cluster(environ) == (workers, {'type': 'worker', 'index': 1})
    assert distribution.read_cluster({}) is None
    assert distribution.is_chief(None)
    assert distribution.is_chief((workers, {'type': 'worker', 'index': 0}))
    assert not distribution.is_chief((workers, {'type': 'worker', 'index': 1}))
    with_chief = dict(workers, chief=['c:3'])
    assert distribution.is_chief((with_chief, {'type': 'chief', 'index': 0}))
    assert not distribution.is_chief((with_chief, {'type': 'worker', 'index': 0}))


# ----------------------------------------------------------------------------- clusters


def free_ports(count):
    """Ports on 127.0.0.1 that nothing listens on now."""
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(('127.0.0.1', 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


def start_worker(run, hosts, index, limit=None):
    """train.py with flags `run` as worker `index` of the cluster `hosts`; a Popen. `limit`
    caps the size of any file it writes (RLIMIT_FSIZE)."""
    return subprocess.Popen(
        [sys.executable, 'train.py'] + run + ['--worker_hosts=%s' % ','.join(hosts),
                                              '--task_index=%d' % index],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=None if limit is None else limit_file_size(limit))


def start_cluster(run, worker_limit=None):
    """Worker 1, then the chief (worker 0), of a two-worker cluster on 127.0.0.1; (chief,
    worker) Popen objects."""
    hosts = ['127.0.0.1:%d' % port for port in free_ports(2)]
    worker = start_worker(run, hosts, 1, worker_limit)
    return start_worker(run, hosts, 0), worker


def finish(process, timeout=TIMEOUT):
    """(exit status, stdout, stderr) of a process, killed when it outlives the timeout."""
    try:
        output, errors = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, errors = process.communicate()
        raise AssertionError('still running after %d s:\n%s\n%s' % (timeout, output, errors))
    return process.returncode, output, errors


def read_until(process, text):
    """Reads the process's stdout up to a line holding `text`; returns what it read."""
    lines = [process.stdout.readline()]
    while lines[-1] and text not in lines[-1]:
        lines.append(process.stdout.readline())
    if not lines[-1]:
        process.kill()
        raise AssertionError('never printed %r:\n%s%s' % (text, ''.join(lines),
                                                           process.communicate()[1]))
    return ''.join(lines)


def test_a_cluster_follows_one_device_stops_together_and_fails_together(data_dir, params,
                                                                         tmp_path):
    """Two workers on 127.0.0.1. Ctrl-C to the chief stops both after the same step, which the
    chief saves; started again, both resume from it and follow the one-device run; killed,
    the worker stops the chief with an error (at once: its connections close). The worker
    cannot write a file of more than 64 bytes (Python's start probes its temporary folder
    with 4): it writes no checkpoint, event, record or lock file, and runs to the end."""
    logdir = tmp_path / 'run'
    chief, worker = start_cluster(flags(data_dir, params, logdir, 100000, '--step_timeout=60'),
                                  worker_limit=64)
    chief_out = read_until(chief, 'step 3/')
    chief.send_signal(signal.SIGINT)
    (chief_code, rest, chief_err), (worker_code, worker_out, worker_err) = (
        finish(chief), finish(worker))
    chief_out += rest
    assert chief_code == 0, chief_err
    assert worker_code == 0, worker_err
    assert 'this is worker 0 (the chief)' in chief_out and 'this is worker 1' in worker_out
    step = int(chief_out.split('interrupted at step ')[1].split(';')[0])
    assert 'interrupted at step %d; checkpoint saved in %s' % (step, logdir) in chief_out
    assert 'interrupted at step %d; the chief saved it' % step in worker_out
    newest = checkpoints.newest_readable_checkpoint(str(logdir))[0]
    assert checkpoints.step_of(newest) == step
    assert (logdir / checkpoints.LOCK_FILE).read_text().strip() == str(chief.pid)

    saved = step + 3 - step % 3  # the first checkpoint after the one resumed
    # A resumed cluster's first step connects the workers: it may take seconds.
    chief, worker = start_cluster(flags(data_dir, params, logdir, 100000, '--step_timeout=20',
                                        '--max_checkpoints=1000'), worker_limit=64)
    chief_out = read_until(chief, 'step %d: saved' % saved)
    worker.kill()
    code, _, errors = finish(chief)
    assert code == 1, errors
    lines = [line for line in errors.splitlines() if line.startswith('error: ')]
    assert len(lines) == 1 and lines[0].startswith('error: the cluster lost a worker after '
                                                   'step '), errors
    assert "start them all again to resume from the chief's newest checkpoint" in lines[0]
    code, worker_out, _ = finish(worker)
    assert code == -signal.SIGKILL
    for output in (chief_out, worker_out):
        assert 'resumed from %s' % newest in output, output
    run_main(train, flags(data_dir, params, tmp_path / 'one_device', saved))
    assert_same_run(tmp_path / 'one_device' / ('model.ckpt-%d' % saved),
                    logdir / ('model.ckpt-%d' % saved))


def test_a_worker_that_never_starts_stops_the_chief_with_an_error(data_dir, params, tmp_path):
    """The chief's first step (the broadcast of the initial values) waits --step_timeout."""
    chief = start_worker(flags(data_dir, params, tmp_path / 'run', 6, '--step_timeout=1'),
                         ['127.0.0.1:%d' % port for port in free_ports(2)], 0)
    code, _, errors = finish(chief)
    assert code == 1, errors
    assert 'error: the cluster lost a worker after step 0' in errors


# ----------------------------------------------------------------------------- prepared data


def test_a_prepared_dataset_trains_and_scores_as_its_folder(data_dir, params, tmp_path,
                                                            capsys):
    run_main(prepare, ['--data_dir=%s' % data_dir, '--out=%s' % (tmp_path / 'prepared'),
                       '--validation_fraction=0.25', '--seed=3'])
    folder = reader.load_dataset(str(data_dir), validation_fraction=0.25, seed=3)
    dataset = reader.load_dataset(str(tmp_path / 'prepared'))
    assert isinstance(dataset.train.images, prepared.PreparedImages)
    assert dataset.classes == folder.classes == ('bright', 'dark')
    for mine, theirs in ((dataset.train, folder.train), (dataset.validation, folder.validation)):
        np.testing.assert_array_equal(np.asarray(mine.images), theirs.images)
        np.testing.assert_array_equal(mine.labels, theirs.labels)
    # The two runs see the same images in the same order, and score the same ones.
    outputs = [run_main(train, flags(source, params, tmp_path / name, 3, *CLASSES,
                                     '--validation_fraction=0.25'), capsys).stdout
               for name, source in (('from_folder', data_dir),
                                    ('from_prepared', tmp_path / 'prepared'))]
    assert_same_run(tmp_path / 'from_folder' / 'model.ckpt-3',
                    tmp_path / 'from_prepared' / 'model.ckpt-3')
    validations = [[line.split(', ')[-1] for line in output.splitlines()
                    if 'validation bits/dim' in line] for output in outputs]
    assert len(validations[0]) == 1 and validations[0] == validations[1], outputs


def test_a_prepared_dataset_larger_than_a_gigabyte_trains_in_little_memory(fresh_process):
    """The process's peak memory grows by less than 300 MiB from a run on 64 images to one on
    1.7 million (1.06 GB): the images are read memory-mapped, a batch at a time."""
    (_, small), (logdir, big) = fresh_process['small'], fresh_process['big']
    assert os.path.getsize(logdir.parent / 'big' / 'train_images.npy') > 10 ** 9
    assert small['error'] is None and big['error'] is None, (small, big)
    assert '1700000 training' in big['stdout'], big
    assert big['peak'] < small['peak'] + 300, (small['peak'], big['peak'])
