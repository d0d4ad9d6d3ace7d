"""A training logdir and its checkpoints: the run files, finding checkpoints, opening them.

A logdir holds `params.json` (the WaveNetParams), `data.json` (image size, channels and
class names), TensorFlow checkpoints `model.ckpt-STEP.*` with their `checkpoint` index, and
TensorBoard events in `train/` and `validation/`. Generation and evaluation rebuild the model
from these files alone (open_for_inference).
"""
import collections
import json
import os

import tensorflow.compat.v1 as tf

from wavenet.files import write_json_atomic
from wavenet.model import Mixture, WaveNetModel
from wavenet.params import ParamsError, load_params

PARAMS_FILE = 'params.json'
DATA_FILE = 'data.json'
CHECKPOINT_PREFIX = 'model.ckpt'
MODEL_SCOPE = 'wavenet'  # the variable scope of the model in the checkpoints of a run

RunSpec = collections.namedtuple('RunSpec', [
    'params',      # WaveNetParams
    'image_size',  # (height, width)
    'classes',     # tuple of class names, () for none
    'channels',    # 1 (grayscale) or 3 (RGB)
])


class CheckpointError(Exception):
    """A checkpoint or logdir that cannot be used, with a one-line reason."""


def write_run_files(logdir, spec):
    """Writes params.json and data.json of a RunSpec into `logdir` (each atomically)."""
    write_json_atomic(os.path.join(logdir, PARAMS_FILE), spec.params.to_dict())
    write_json_atomic(os.path.join(logdir, DATA_FILE),
                      {'image_size': list(spec.image_size), 'classes': list(spec.classes),
                       'channels': spec.channels})


def read_run_files(logdir):
    """Returns the RunSpec stored in `logdir`.

    Raises:
        CheckpointError: when a file is missing or malformed.
    """
    params_path, data_path = (os.path.join(logdir, name) for name in (PARAMS_FILE, DATA_FILE))
    for path in (params_path, data_path):
        if not os.path.exists(path):
            raise CheckpointError('%s has no %s: point at a logdir written by train.py'
                                  % (logdir, os.path.basename(path)))
    try:
        params = load_params(params_path)
    except ParamsError as error:
        raise CheckpointError(str(error)) from None
    try:
        with open(data_path) as data_file:
            data = json.load(data_file)
        image_size = tuple(int(size) for size in data['image_size'])
        classes = tuple(str(name) for name in data['classes'])
        channels = int(data.get('channels', 1))  # logdirs written before colour: grayscale
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError('%s is malformed (%s)' % (data_path, error)) from None
    if len(image_size) != 2 or min(image_size) < 1:
        raise CheckpointError('%s has an invalid image_size %r' % (data_path, image_size))
    if channels not in (1, 3):
        raise CheckpointError('%s has an invalid channels %r (1 or 3)' % (data_path, channels))
    return RunSpec(params, image_size, classes, channels)


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
            raise CheckpointError('no checkpoint in %s: train a model into it first' % path)
        return latest, path
    if not os.path.exists(path + '.index'):
        raise CheckpointError('checkpoint %s does not exist (give a logdir or a prefix such '
                              'as LOGDIR/model.ckpt-1000)' % path)
    return path, os.path.dirname(os.path.abspath(path))


def check_variables_match(checkpoint, variables):
    """Raises CheckpointError naming the variables that `checkpoint` lacks or shapes differently.

    Args:
        checkpoint: a checkpoint prefix.
        variables: {name in the checkpoint: graph variable}.
    """
    try:
        stored = dict(tf.train.list_variables(checkpoint))
    except (tf.errors.OpError, ValueError) as error:
        raise CheckpointError('cannot read checkpoint %s (%s)'
                              % (checkpoint, str(error).splitlines()[0])) from None
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
                              '(or was trained with another optimizer) (%d variables differ: '
                              '%s)' % (checkpoint, len(problems), shown))


def variables_by_name(scope=''):
    """{name in a checkpoint: variable} of the global variables under `scope`, or all."""
    return {variable.op.name: variable for variable in tf.global_variables(scope=scope or None)}


class InferenceModels:
    """One checkpoint or an ensemble of several, built in the current graph.

    Attributes:
        mixture: the model.Mixture of the members (one member for one checkpoint).
        spec: the RunSpec the members share (the first member's params).
        checkpoints: the checkpoint prefix of each member.
        description: the checkpoint, or 'the ensemble of A, B, ...', for messages.
    """

    def __init__(self, mixture, spec, checkpoints, member_variables):
        self.mixture, self.spec, self.checkpoints = mixture, spec, checkpoints
        self._member_variables = member_variables
        self.description = (checkpoints[0] if len(checkpoints) == 1 else
                            'the ensemble of %s' % ', '.join(checkpoints))

    def restore(self, session):
        """Loads every member's variables from its checkpoint into `session`."""
        for checkpoint, variables in zip(self.checkpoints, self._member_variables):
            tf.train.Saver(variables).restore(session, checkpoint)


def open_for_inference(paths):
    """Builds the models of one checkpoint, or the ensemble of several, and checks them.

    Each member is rebuilt from its logdir's run files, under its own variable scope
    (`wavenet` alone; `member0/wavenet`, `member1/wavenet`, ... for several), and is checked
    against its checkpoint before any session runs.

    Args:
        paths: a non-empty list of logdirs or checkpoint prefixes.
    Returns:
        an InferenceModels.
    Raises:
        CheckpointError: when a path has no usable checkpoint, a checkpoint does not match
            its params, or the members differ in image size, channels, class names, levels
            or class conditioning.
    """
    resolved = [resolve_checkpoint(path) for path in paths]
    specs = [read_run_files(run_dir) for _, run_dir in resolved]
    for path, spec in zip(paths[1:], specs[1:]):
        if _shared_by_members(spec) != _shared_by_members(specs[0]):
            raise CheckpointError(
                'cannot ensemble %s with %s: the members of an ensemble need the same image '
                'size, channels, classes, quantization_channels and class conditioning'
                % (path, paths[0]))
    scopes = ([MODEL_SCOPE] if len(paths) == 1 else
              ['member%d/%s' % (index, MODEL_SCOPE) for index in range(len(paths))])
    models, member_variables = [], []
    for (checkpoint, _), spec, scope in zip(resolved, specs, scopes):
        models.append(WaveNetModel(spec.params, spec.image_size, len(spec.classes),
                                   spec.channels, name=scope))
        # The names the member's variables have in its own checkpoint.
        variables = {MODEL_SCOPE + name[len(scope):]: variable
                     for name, variable in variables_by_name(scope + '/').items()}
        check_variables_match(checkpoint, variables)
        member_variables.append(variables)
    return InferenceModels(Mixture(models), specs[0], [checkpoint for checkpoint, _ in resolved],
                           member_variables)


def _shared_by_members(spec):
    """What the members of an ensemble must share."""
    return (tuple(spec.image_size), spec.channels, tuple(spec.classes),
            spec.params.quantization_channels, spec.params.gc_channels > 0)
