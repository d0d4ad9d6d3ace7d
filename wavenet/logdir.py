"""What a training logdir holds besides checkpoints, and finding checkpoints in it.

A logdir holds `params.json` (the WaveNetParams), `data.json` (image size, channels and
class names),
TensorFlow checkpoints `model.ckpt-STEP.*` with their `checkpoint` index, and event files.
Generation and evaluation rebuild the model from these files alone.
"""
import json
import os

import tensorflow.compat.v1 as tf

from wavenet.params import ParamsError, load_params, write_json_atomic

PARAMS_FILE = 'params.json'
DATA_FILE = 'data.json'
CHECKPOINT_PREFIX = 'model.ckpt'


class CheckpointError(Exception):
    """A checkpoint or logdir that cannot be used, with a one-line reason."""


def write_run_files(logdir, params, image_size, classes, channels):
    """Writes params.json and data.json into `logdir` (each atomically)."""
    os.makedirs(logdir, exist_ok=True)
    write_json_atomic(os.path.join(logdir, PARAMS_FILE), params.to_dict())
    write_json_atomic(os.path.join(logdir, DATA_FILE),
                      {'image_size': list(image_size), 'classes': list(classes),
                       'channels': channels})


def read_run_files(logdir):
    """Returns (params, image_size, classes, channels) stored in `logdir`.

    Raises:
        CheckpointError: when a file is missing or malformed.
    """
    params_path = os.path.join(logdir, PARAMS_FILE)
    if not os.path.exists(params_path):
        raise CheckpointError('%s has no %s: point at a logdir written by train.py'
                              % (logdir, PARAMS_FILE))
    try:
        params = load_params(params_path)
    except ParamsError as error:
        raise CheckpointError(str(error)) from None
    data_path = os.path.join(logdir, DATA_FILE)
    try:
        with open(data_path) as data_file:
            data = json.load(data_file)
        image_size = tuple(int(size) for size in data['image_size'])
        classes = tuple(str(name) for name in data['classes'])
        channels = int(data.get('channels', 1))  # logdirs written before colour: grayscale
    except FileNotFoundError:
        raise CheckpointError('%s has no %s: point at a logdir written by train.py'
                              % (logdir, DATA_FILE)) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError('%s is malformed (%s)' % (data_path, error)) from None
    if len(image_size) != 2 or min(image_size) < 1:
        raise CheckpointError('%s has an invalid image_size %r' % (data_path, image_size))
    if channels not in (1, 3):
        raise CheckpointError('%s has an invalid channels %r (1 or 3)' % (data_path, channels))
    return params, image_size, classes, channels


def resolve_checkpoint(path):
    """Finds the checkpoint meant by `path`: a logdir (its latest) or a checkpoint prefix.

    Returns:
        (checkpoint prefix, logdir holding it).
    Raises:
        CheckpointError: when there is no such checkpoint.
    """
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise CheckpointError('no checkpoint in %s: train with train.py --logdir=%s first'
                                  % (path, path))
        return latest, path
    if not os.path.exists(path + '.index'):
        raise CheckpointError('checkpoint %s does not exist (give a logdir or a prefix such '
                              'as LOGDIR/model.ckpt-1000)' % path)
    return path, os.path.dirname(os.path.abspath(path))


def open_run(path):
    """The checkpoint meant by `path` and the run files of its logdir.

    Returns:
        (checkpoint prefix, params, image_size, classes, channels).
    Raises:
        CheckpointError: when there is no such checkpoint or its logdir lacks its files.
    """
    checkpoint, run_dir = resolve_checkpoint(path)
    return (checkpoint,) + read_run_files(run_dir)


def check_variables_match(checkpoint, variables):
    """Raises CheckpointError naming the variables that `checkpoint` lacks or shapes differently.

    Args:
        checkpoint: a checkpoint prefix.
        variables: the graph variables a Saver would restore (under their own names), or
            {name in the checkpoint: variable}.
    """
    try:
        stored = dict(tf.train.list_variables(checkpoint))
    except (tf.errors.OpError, ValueError) as error:
        raise CheckpointError('cannot read checkpoint %s (%s)'
                              % (checkpoint, str(error).splitlines()[0])) from None
    if not isinstance(variables, dict):
        variables = {variable.op.name: variable for variable in variables}
    problems = []
    for name, variable in variables.items():
        shape = variable.shape.as_list()
        if name not in stored:
            problems.append('%s missing' % name)
        elif list(stored[name]) != shape:
            problems.append('%s has shape %s in the checkpoint, %s in the params'
                            % (name, list(stored[name]), shape))
    if problems:
        shown = '; '.join(problems[:4]) + ('; ...' if len(problems) > 4 else '')
        raise CheckpointError('checkpoint %s does not match the model built from its params '
                              '(or the --optimizer) (%d variables differ: %s)'
                              % (checkpoint, len(problems), shown))
