"""Scaling out: data-parallel replicas and workers follow the single-device run, a cluster
stops and fails together, and prepared datasets are read memory-mapped.

Every run here is a train.py subprocess: logical CPU devices must be set before TensorFlow
starts, and a cluster is several processes. The model and the images are tiny.
"""
import json
import os
import resource
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import train as train_script
from test_faults import rewrite_as_an_earlier_version
from wavenet import checkpoints, cli, distribution, prepared, reader

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARAMS = {'dilations': [1, 2, 4], 'residual_channels': 4, 'dilation_channels': 4,
          'skip_channels': 8, 'position_channels': 2}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Sixteen random 5x5 images in two classes, and the tiny params file."""
    root = tmp_path_factory.mktemp('distributed')
    rng = np.random.default_rng(0)
    for index in range(16):
        folder = root / 'images' / ('ab'[index % 2])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (5, 5)).astype(np.uint8)).save(
            folder / ('%d.png' % index))
    (root / 'params.json').write_text(json.dumps(PARAMS))
    return root


def train_command(data, logdir, *flags):
    return [sys.executable, 'train.py', '--data_dir=%s' % (data / 'images'),
            '--logdir=%s' % logdir, '--wavenet_params=%s' % (data / 'params.json'),
            '--batch_size=4', '--num_samples=0', '--checkpoint_every=3', '--print_every=1',
            '--learning_rate=0.01', '--learning_rate_schedule=constant', '--seed=3',
            '--xla=off'] + list(flags)


def train(data, logdir, *flags, **kwargs):
    """train.py in a process of its own (needed for logical CPU devices); its result."""
    result = subprocess.run(train_command(data, logdir, *flags), cwd=ROOT, capture_output=True,
                            text=True, timeout=300, **kwargs)
    assert result.returncode == 0, result.stderr
    return result


def train_here(data, logdir, capsys, *flags):
    """train.main on one device in this process (quicker); its stdout."""
    with tf.Graph().as_default():
        train_script.main(train_command(data, logdir, *flags)[2:])
    return capsys.readouterr().out


def variables(checkpoint):
    """{name: value} of every variable of a checkpoint but the run's spec."""
    stored = tf.train.load_checkpoint(str(checkpoint))
    return {name: stored.get_tensor(name) for name in stored.get_variable_to_shape_map()
            if name != checkpoints.RUN_SPEC_VARIABLE}


def assert_same_variables(first, second):
    first, second = variables(first), variables(second)
    assert sorted(first) == sorted(second)
    assert any(name.endswith('/Adam') for name in first), 'no optimizer slots'
    for name, value in first.items():
        np.testing.assert_allclose(second[name], value, rtol=0, atol=1e-5, err_msg=name)


@pytest.fixture(scope='module')
def single(data, tmp_path_factory):
    """Six steps on one device, with and without class conditioning (in this process)."""
    root = tmp_path_factory.mktemp('single')
    for name, flags in (('plain', ()), ('classes', ('--gc_channels=3', '--dropout=0.2',
                                                    '--augment_shift=1'))):
        with tf.Graph().as_default():
            train_script.main(train_command(data, root / name, '--num_steps=6', *flags)[2:])
    return root


@pytest.mark.parametrize('name, flags', [
    ('plain', ()), ('classes', ('--gc_channels=3', '--dropout=0.2', '--augment_shift=1'))])
def test_two_cpu_replicas_follow_one_device(data, single, tmp_path, name, flags):
    result = train(data, tmp_path / 'run', '--num_steps=6', '--cpu_replicas=2', *flags)
    assert 'devices: 2 replicas: /cpu:0, /cpu:1' in result.stdout
    assert_same_variables(single / name / 'model.ckpt-6', tmp_path / 'run' / 'model.ckpt-6')


def test_checkpoints_move_between_one_device_and_replicas(data, single, tmp_path, capsys):
    """A two-replica run resumes a one-device checkpoint (of an earlier version), and the
    other way around."""
    one_first, replicas_first = tmp_path / 'one_first', tmp_path / 'replicas_first'
    train_here(data, one_first, capsys, '--num_steps=3')
    # As an earlier version wrote it: each replica's copy of Adam's beta powers, stored
    # under another name, is restored too.
    rewrite_as_an_earlier_version(one_first / 'model.ckpt-3', 'optimizer_1/')
    resumed = train(data, one_first, '--num_steps=6', '--cpu_replicas=2').stdout
    assert 'resumed from %s' % (one_first / 'model.ckpt-3') in resumed
    train(data, replicas_first, '--num_steps=3', '--cpu_replicas=2')
    resumed = train_here(data, replicas_first, capsys, '--num_steps=6')
    assert 'resumed from %s' % (replicas_first / 'model.ckpt-3') in resumed
    for logdir in (one_first, replicas_first):
        assert_same_variables(single / 'plain' / 'model.ckpt-6', logdir / 'model.ckpt-6')


def test_a_batch_the_replicas_cannot_share_is_refused(data, tmp_path):
    result = subprocess.run(train_command(data, tmp_path / 'run', '--batch_size=5',
                                          '--cpu_replicas=2'),
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert 'error: --batch_size=5 cannot be split evenly between 2 replicas' in result.stderr
    assert not (tmp_path / 'run').exists()


def test_a_task_index_without_its_cluster_is_refused(data, tmp_path):
    with pytest.raises(cli.UsageError, match='--task_index=1 needs --worker_hosts'):
        train_script.main(['--data_dir=%s' % data, '--logdir=%s' % (tmp_path / 'run'),
                           '--task_index=1'])
    assert not (tmp_path / 'run').exists()


def test_a_bad_cluster_is_refused_naming_its_flag_and_writing_nothing(
        data, tmp_path, monkeypatch):
    logdir = tmp_path / 'run'
    flags = ['--data_dir=%s' % data, '--logdir=%s' % logdir]
    with pytest.raises(cli.UsageError, match=r'task index must be from 0 to 1.*--worker_hosts'):
        train_script.main(flags + ['--worker_hosts=127.0.0.1:1,127.0.0.1:2', '--task_index=2'])
    monkeypatch.setenv('TF_CONFIG', '{"cluster": {}}')
    with pytest.raises(cli.UsageError, match=r'TF_CONFIG must be JSON .*KeyError'):
        train_script.main(flags)
    assert not logdir.exists()


def test_the_chief_is_worker_0_or_the_task_of_type_chief():
    workers = {'worker': ['a:1', 'b:2']}
    assert distribution.is_chief(None)
    assert distribution.is_chief((workers, {'type': 'worker', 'index': 0}))
    assert not distribution.is_chief((workers, {'type': 'worker', 'index': 1}))
    with_chief = dict(workers, chief=['c:3'])
    assert distribution.is_chief((with_chief, {'type': 'chief', 'index': 0}))
    assert not distribution.is_chief((with_chief, {'type': 'worker', 'index': 0}))


def free_ports(count):
    """Ports on 127.0.0.1 that nothing listens on now."""
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(('127.0.0.1', 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


def start_cluster(data, logdir, *flags, worker_limit=None):
    """Starts worker 1, then the chief (worker 0), of a two-worker cluster on 127.0.0.1.

    Returns (chief, worker) Popen objects. `worker_limit` caps the size of any file the
    worker writes (RLIMIT_FSIZE).
    """
    hosts = ','.join('127.0.0.1:%d' % port for port in free_ports(2))
    processes = []
    for index in (1, 0):
        limit = worker_limit if index else None
        processes.append(subprocess.Popen(
            train_command(data, logdir, '--worker_hosts=%s' % hosts, '--task_index=%d' % index,
                          *flags),
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=None if limit is None else (
                lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))))
    worker, chief = processes
    return chief, worker


def finish(process, timeout=120):
    """(exit status, stdout, stderr) of a process, killed when it outlives the timeout."""
    try:
        output, errors = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, errors = process.communicate()
        raise AssertionError('still running after %d s:\n%s' % (timeout, errors))
    return process.returncode, output, errors


def test_two_workers_follow_one_device_and_only_the_chief_writes(data, single, tmp_path):
    """The worker cannot write a file of more than 64 bytes (RLIMIT_FSIZE; Python's start
    probes its temporary folder with 4), so it writes no checkpoint, event, run or sample
    file, and it runs to the end; the lock file holds the chief's PID."""
    chief, worker = start_cluster(data, tmp_path / 'run', '--num_steps=6', worker_limit=64)
    for process, who in ((chief, 'this is worker 0 (the chief)'), (worker, 'this is worker 1')):
        code, output, errors = finish(process)
        assert code == 0, errors
        assert who in output and 'step 6/6' in output, output
    assert (tmp_path / 'run' / 'train.lock').read_text().strip() == str(chief.pid)
    assert_same_variables(single / 'plain' / 'model.ckpt-6', tmp_path / 'run' / 'model.ckpt-6')


def wait_for(process, text):
    """Reads the process's stdout until a line holding `text`."""
    line = process.stdout.readline()
    while line and text not in line:
        line = process.stdout.readline()
    assert line, 'never printed %r' % text


def test_ctrl_c_to_the_chief_stops_both_after_its_save(data, tmp_path):
    chief, worker = start_cluster(data, tmp_path / 'run', '--num_steps=100000',
                                  '--step_timeout=60')
    wait_for(chief, 'training from step')
    wait_for(chief, 'step 10/')
    chief.send_signal(signal.SIGINT)
    (chief_code, chief_out, chief_err), (worker_code, worker_out, _) = (
        finish(chief), finish(worker))
    assert chief_code == 0 and worker_code == 0, chief_err
    step = int(chief_out.split('interrupted at step ')[1].split(';')[0])
    assert 'interrupted at step %d; the chief saved it' % step in worker_out
    newest = checkpoints.newest_readable_checkpoint(str(tmp_path / 'run'))[0]
    assert checkpoints.step_of(newest) == step
    # Started again, the cluster resumes from the chief's checkpoint, every worker from it.
    for process in start_cluster(data, tmp_path / 'run', '--num_steps=%d' % (step + 2)):
        code, output, errors = finish(process)
        assert code == 0, errors
        assert 'resumed from %s' % newest in output and 'step %d/' % (step + 2) in output


def test_a_worker_that_never_starts_stops_the_chief_with_an_error(data, tmp_path):
    """The chief's first step (the broadcast of the initial values) waits --step_timeout."""
    hosts = ','.join('127.0.0.1:%d' % port for port in free_ports(2))
    chief = subprocess.Popen(train_command(data, tmp_path / 'run', '--worker_hosts=%s' % hosts,
                                           '--task_index=0', '--step_timeout=3'),
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    code, _, errors = finish(chief, timeout=90)
    assert code == 1 and 'error: the cluster lost a worker' in errors, errors


def test_a_dead_worker_stops_the_chief_with_an_error(data, tmp_path):
    chief, worker = start_cluster(data, tmp_path / 'run', '--num_steps=100000',
                                  '--step_timeout=5')
    wait_for(chief, 'training from step')
    wait_for(chief, 'step 10/')
    worker.kill()
    code, _, errors = finish(chief, timeout=60)
    assert code == 1, errors
    assert 'error: the cluster lost a worker after step' in errors
    assert 'start them all again' in errors
    finish(worker)


# ----------------------------------------------------------------------------- prepared data


def test_a_prepared_dataset_trains_and_scores_as_its_folder(data, tmp_path, capsys):
    prepare = subprocess.run([sys.executable, 'datasets/prepare.py',
                              '--data_dir=%s' % (data / 'images'), '--out=%s' % (tmp_path / 'p'),
                              '--validation_fraction=0.25', '--seed=3'],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert prepare.returncode == 0, prepare.stderr
    folder = reader.load_dataset(str(data / 'images'), validation_fraction=0.25, seed=3)
    dataset = reader.load_dataset(str(tmp_path / 'p'))
    for mine, theirs in ((dataset.train, folder.train), (dataset.validation, folder.validation)):
        np.testing.assert_array_equal(np.asarray(mine.images), theirs.images)
        np.testing.assert_array_equal(mine.labels, theirs.labels)
    assert isinstance(dataset.train.images, prepared.PreparedImages)
    # The folder's and the prepared dataset's runs see the same images in the same order.
    outputs = [train_here(data, tmp_path / name, capsys, '--num_steps=3',
                          '--validation_fraction=0.25', '--data_dir=%s' % source)
               for name, source in (('from_folder', data / 'images'),
                                    ('from_prepared', tmp_path / 'p'))]
    assert_same_variables(tmp_path / 'from_folder' / 'model.ckpt-3',
                          tmp_path / 'from_prepared' / 'model.ckpt-3')
    validations = [[line for line in output.splitlines() if 'validation bits/dim' in line]
                   for output in outputs]
    assert validations[0] and validations[0] == [line.replace('from_prepared', 'from_folder')
                                                 for line in validations[1]]


def peak_rss_of_training(data, dataset, logdir):
    """The peak RSS (MiB) of a train.py run of a few steps on `dataset`."""
    command = train_command(data, logdir, '--num_steps=2', '--data_dir=%s' % dataset)
    probe = ('import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, '
             'capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN)'
             '.ru_maxrss)')
    result = subprocess.run([sys.executable, '-c', probe] + command, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1]) / 1024


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
    (folder / 'dataset.json').write_text(json.dumps(
        {'image_size': [side, side], 'channels': 1, 'classes': []}))


def test_a_prepared_dataset_larger_than_a_gigabyte_trains_in_little_memory(data, tmp_path):
    big, small = tmp_path / 'big', tmp_path / 'small'
    write_sparse_prepared(big, 1_700_000, 25)  # 1.06 GB of pixels
    write_sparse_prepared(small, 64, 25)
    assert os.path.getsize(big / 'train_images.npy') > 10 ** 9
    small_rss = peak_rss_of_training(data, small, tmp_path / 'small_run')
    big_rss = peak_rss_of_training(data, big, tmp_path / 'big_run')
    assert big_rss < small_rss + 300, (small_rss, big_rss)
