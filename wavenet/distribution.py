"""Where training runs: one device, several devices of one machine, or several machines.

- One device: TensorFlow's default strategy (no distribution).
- Several GPUs, or the CPU split into logical devices (to try and test the same code path
  without GPUs): tf.distribute.MirroredStrategy, one replica per device.
- Several machines: the cluster that the environment variable TF_CONFIG describes (the
  convention of Kubernetes TF jobs and cloud trainers); MultiWorkerMirroredStrategy over
  every worker's GPUs (or its CPU), in graph mode: a tf.distribute.Server per worker and the
  session opened on its target. Worker 0 (or the task of type 'chief') is the chief.

In every case the model and its training step are built once under scope(placement).
"""
import collections
import contextlib
import json
import os

import tensorflow.compat.v1 as tf

from wavenet import files
from wavenet.errors import Error, reason

Placement = collections.namedtuple('Placement', [
    'strategy',     # a tf.distribute strategy, or None for one device
    'target',       # the session target: '' in this process, a server's for a cluster
    'config',       # the tf.ConfigProto of the session
    'replicas',     # replicas in sync, over every worker
    'workers',      # processes of the run (1 without a cluster)
    'is_chief',     # whether this process writes the logdir
    'description',  # e.g. '2 replicas: /cpu:0, /cpu:1', for the log
])


class DistributionError(Error):
    """A device or cluster setting that cannot be used, with a one-line reason."""


def cluster_environment(environ, worker_hosts=None, task_index=0):
    """`environ` with TF_CONFIG describing worker `task_index` of the cluster of workers
    `worker_hosts` (HOST:PORT each), or `environ` itself without worker_hosts."""
    if not worker_hosts:
        if task_index:
            raise DistributionError('a task index (%d) needs the list of worker hosts it '
                                    'indexes' % task_index)
        return environ
    if not 0 <= task_index < len(worker_hosts):
        raise DistributionError('the task index must be from 0 to %d (one per worker host), '
                                'got %d' % (len(worker_hosts) - 1, task_index))
    return dict(environ, TF_CONFIG=json.dumps({'cluster': {'worker': list(worker_hosts)},
                                               'task': {'type': 'worker', 'index': task_index}}))


def read_cluster(environ):
    """The (cluster dict, task dict) of TF_CONFIG in `environ`, or None when it is unset;
    DistributionError when it is not a JSON object with a cluster and a task."""
    text = environ.get('TF_CONFIG', '').strip()
    if not text:
        return None
    value = files.parse_json(text, 'TF_CONFIG')
    try:
        cluster, task = value['cluster'], value['task']
        if not all(isinstance(hosts, list) and all(isinstance(host, str) for host in hosts)
                   for hosts in cluster.values()):
            raise TypeError('every job must list its hosts as strings')
        task_type, index = str(task['type']), int(task['index'])
        if not 0 <= index < len(cluster[task_type]):
            raise IndexError('task index %d of %d %s tasks' % (index, len(cluster[task_type]),
                                                               task_type))
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise DistributionError('TF_CONFIG must be JSON {"cluster": {"worker": [HOST:PORT, '
                                '...]}, "task": {"type": "worker", "index": I}} (%s: %s)'
                                % (type(error).__name__, error)) from None
    return cluster, {'type': task_type, 'index': index}


def is_chief(cluster):
    """Whether this process writes the logdir, from read_cluster's (cluster, task) or None."""
    if cluster is None:
        return True
    cluster, task = cluster
    return (task['type'] == 'chief' or
            ('chief' not in cluster and task['type'] == 'worker' and task['index'] == 0))


def place(num_gpus=0, cpu_replicas=1, environ=None):
    """The Placement of a training run on `num_gpus` GPUs of this machine (0: none), or on
    `cpu_replicas` logical CPU devices (1: plain CPU), or on the cluster of TF_CONFIG in `environ`
    (default: os.environ). Call it before anything else touches TensorFlow's devices (the CPU
    can be split only then). DistributionError for devices this machine lacks, or a bad cluster."""
    cluster = read_cluster(os.environ if environ is None else environ)
    if num_gpus and cpu_replicas > 1:
        raise DistributionError('train on GPUs or on logical CPU devices, not both')
    found = len(tf.config.list_physical_devices('GPU'))
    if num_gpus > found:
        raise DistributionError('%d GPUs asked for, %d found' % (num_gpus, found))
    if cluster is not None:
        if cpu_replicas > 1:
            raise DistributionError('a cluster trains on every worker\'s GPUs or its CPU; '
                                    'logical CPU devices are for one process')
        return _cluster_placement(*cluster)
    if num_gpus > 1 or cpu_replicas > 1:
        return _mirrored_placement(num_gpus, cpu_replicas)
    return Placement(None, '', tf.ConfigProto(allow_soft_placement=True), 1, 1, True,
                     'one device (%s)' % ('/gpu:0' if found else 'the CPU'))


def _mirrored_placement(num_gpus, cpu_replicas):
    """MirroredStrategy over num_gpus GPUs, or over cpu_replicas logical CPU devices."""
    if num_gpus:
        devices = ['/gpu:%d' % index for index in range(num_gpus)]
        config = tf.ConfigProto(allow_soft_placement=True)
    else:
        cpu = tf.config.list_physical_devices('CPU')[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        except RuntimeError as error:  # the devices of this process are already in use
            raise DistributionError('cannot split the CPU into %d logical devices (%s)'
                                    % (cpu_replicas, error)) from None
        devices = ['/cpu:%d' % index for index in range(cpu_replicas)]
        # Without device_count a session sees one CPU device only.
        config = tf.ConfigProto(device_count={'CPU': cpu_replicas})
    strategy = tf.distribute.MirroredStrategy(devices)
    return Placement(strategy, '', config, len(devices), 1, True,
                     '%d replicas: %s' % (len(devices), ', '.join(devices)))


def _cluster_placement(cluster, task):
    """MultiWorkerMirroredStrategy over the cluster, with this task's server."""
    spec = tf.train.ClusterSpec(cluster)
    strategy = tf.distribute.experimental.MultiWorkerMirroredStrategy(
        cluster_resolver=tf.distribute.cluster_resolver.SimpleClusterResolver(
            spec, task_type=task['type'], task_id=task['index'], rpc_layer='grpc'))
    config = strategy.update_config_proto(tf.ConfigProto(allow_soft_placement=True))
    try:
        server = tf.distribute.Server(spec, job_name=task['type'], task_index=task['index'],
                                      config=config, protocol='grpc')
    except (tf.errors.OpError, ValueError) as error:  # the port is taken, say
        raise DistributionError('cannot start the server of %s %d (%s)' % (
            task['type'], task['index'], reason(error))) from None
    workers = sum(len(cluster.get(job, ())) for job in ('chief', 'worker'))
    chief = is_chief((cluster, task))
    return Placement(strategy, server.target, config, strategy.num_replicas_in_sync, workers,
                     chief, '%d replicas on %d workers; this is %s %d%s' % (
                         strategy.num_replicas_in_sync, workers, task['type'], task['index'],
                         ' (the chief)' if chief else ''))


def scope(placement):
    """The context to build the model and its training step in."""
    return placement.strategy.scope() if placement.strategy else contextlib.nullcontext()
