"""A training logdir and its checkpoints: the run files, finding checkpoints, opening them.

A logdir holds `params.json` (the WaveNetParams), `data.json` (image size, channels and
class names), TensorFlow checkpoints `model.ckpt-STEP.*` with their `checkpoint` index, and
TensorBoard events in `train/` and `validation/`. Generation and evaluation rebuild the model
from these files alone (open_for_inference).
"""
import collections
import contextlib
import json
import os
import re
import shutil

import tensorflow.compat.v1 as tf

from wavenet import cli, files
from wavenet.model import Mixture, WaveNetModel
from wavenet.params import ParamsError, load_params

PARAMS_FILE = 'params.json'
DATA_FILE = 'data.json'
TRAINING_FILE = 'training.json'  # the training options a run keeps
CHECKPOINT_PREFIX = 'model.ckpt'
MODEL_SCOPE = 'wavenet'  # the variable scope of the model in the checkpoints of a run
RUN_SPEC_VARIABLE = 'run_spec'  # the run's RunSpec as JSON, in every checkpoint of the run
LOCK_FILE = 'train.lock'
SAMPLES_FOLDER = 'samples'  # the sample grids of a run
_CHECKPOINT_FILE = re.compile(r'^model\.ckpt-(\d+)\.(index|data-\d+-of-\d+)$')
_CHECKPOINT_TEMPORARY = re.compile(r'^model\.ckpt-\d+_temp')

RunSpec = collections.namedtuple('RunSpec', [
    'params',      # WaveNetParams
    'image_size',  # (height, width)
    'classes',     # tuple of class names, () for none
    'channels',    # 1 (grayscale) or 3 (RGB)
    'training',    # {option: value} the run keeps (seed, batch size, ...), or None
], defaults=(None,))


class CheckpointError(Exception):
    """A checkpoint or logdir that cannot be used, with a one-line reason."""


def write_run_files(logdir, spec):
    """Writes params.json, data.json (and training.json) of a RunSpec into `logdir`, each
    atomically."""
    if spec.training is not None:
        files.write_json_atomic(os.path.join(logdir, TRAINING_FILE), spec.training)
    files.write_json_atomic(os.path.join(logdir, PARAMS_FILE), spec.params.to_dict())
    files.write_json_atomic(os.path.join(logdir, DATA_FILE), {
        'image_size': list(spec.image_size), 'classes': list(spec.classes),
        'channels': spec.channels})


def read_run_files(logdir):
    """Returns the RunSpec stored in `logdir`.

    Raises:
        CheckpointError: when a file is missing or malformed.
    """
    params_path, data_path = (os.path.join(logdir, name) for name in (PARAMS_FILE, DATA_FILE))
    for path in (params_path, data_path):
        if not os.path.exists(path):
            raise CheckpointError('%s has no %s (a logdir written by train.py has it)'
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
    return RunSpec(params, image_size, classes, channels, _read_training(logdir))


def _read_training(logdir):
    """The training options stored in the logdir, or None (a run written before they were)."""
    path = os.path.join(logdir, TRAINING_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as stream:
            training = json.load(stream)
    except (OSError, ValueError) as error:
        raise CheckpointError('%s is malformed (%s)' % (path, error)) from None
    if not isinstance(training, dict):
        raise CheckpointError('%s must hold a JSON object' % path)
    return training


def list_checkpoints(logdir):
    """Every checkpoint with at least one file in `logdir`, newest (highest step) first.

    The files are listed here, not read from TensorFlow's `checkpoint` index, which a crash or
    a cleanup can leave missing, stale or corrupt.

    Returns:
        a list of checkpoint prefixes (LOGDIR/model.ckpt-STEP).
    """
    steps = set()
    for name in os.listdir(logdir):
        match = _CHECKPOINT_FILE.match(name)
        if match:
            steps.add(int(match.group(1)))
    return [os.path.join(logdir, '%s-%d' % (CHECKPOINT_PREFIX, step))
            for step in sorted(steps, reverse=True)]


def step_of(prefix):
    """The global step in a checkpoint prefix LOGDIR/model.ckpt-STEP."""
    return int(prefix.rsplit('-', 1)[1])


def verify_checkpoint(prefix):
    """Raises CheckpointError with the reason unless every tensor of `prefix` can be read."""
    # A damaged file makes the reader raise many types (DataLossError, OutOfRangeError,
    # IndexError, ValueError, ...): all mean unreadable.
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as error:  # pylint: disable=broad-except
        raise CheckpointError('checkpoint %s cannot be read (%s: %s)' % (
            prefix, type(error).__name__, cli.error_reason(error))) from None


def newest_readable_checkpoint(logdir):
    """The newest checkpoint of `logdir` whose every tensor can be read.

    Returns:
        (checkpoint prefix, or None when the logdir holds no checkpoint file at all;
        [(prefix, reason)] of every newer checkpoint that was skipped).
    Raises:
        CheckpointError: when checkpoint files exist but none of them can be read.
    """
    skipped = []
    for prefix in list_checkpoints(logdir):
        try:
            verify_checkpoint(prefix)
        except CheckpointError as error:
            skipped.append((prefix, str(error)))
            continue
        return prefix, skipped
    if skipped:
        raise CheckpointError('no checkpoint in %s can be read: %s' % (
            logdir, '; '.join(reason for _, reason in skipped)))
    return None, skipped


def resolve_checkpoint(path):
    """Finds the checkpoint meant by `path`: a logdir (its newest readable) or a prefix.

    Returns:
        (checkpoint prefix, logdir holding it, [(prefix, reason)] of newer checkpoints of the
        logdir that were skipped because they cannot be read).
    Raises:
        CheckpointError: when there is no such checkpoint, or it cannot be read.
    """
    if os.path.isdir(path):
        checkpoint, skipped = newest_readable_checkpoint(path)
        if checkpoint is None:
            raise CheckpointError('no checkpoint in %s: train a model into it first' % path)
        return checkpoint, path, skipped
    if not os.path.exists(path + '.index'):
        raise CheckpointError('checkpoint %s does not exist (give a logdir or a prefix such '
                              'as LOGDIR/model.ckpt-1000)' % path)
    verify_checkpoint(path)
    return path, os.path.dirname(os.path.abspath(path)), []


def spec_to_json(spec):
    """The RunSpec as one JSON string (sorted keys), as the checkpoints of a run hold it."""
    content = {'params': spec.params.to_dict(), 'image_size': list(spec.image_size),
               'classes': list(spec.classes), 'channels': spec.channels}
    if spec.training is not None:
        content['training'] = spec.training
    return json.dumps(content, sort_keys=True)


def run_spec_variable(spec):
    """A string variable holding spec_to_json(spec), saved in every checkpoint of the run."""
    return tf.Variable(spec_to_json(spec), trainable=False, name=RUN_SPEC_VARIABLE)


def check_spec(checkpoint, spec, source):
    """Raises CheckpointError naming what differs between `spec` and the one `checkpoint` holds.

    Checkpoints written before the run's spec was stored in them pass unchecked.

    Args:
        checkpoint: a readable checkpoint prefix.
        spec: the RunSpec read from `source`.
        source: where `spec` comes from, for the message (plural: 'the run files of ...').
    """
    reader = tf.train.load_checkpoint(checkpoint)
    if not reader.has_tensor(RUN_SPEC_VARIABLE):
        return
    stored = json.loads(reader.get_tensor(RUN_SPEC_VARIABLE).decode('utf-8'))
    given = json.loads(spec_to_json(spec))
    differences = sorted(name for name in set(stored['params']) | set(given['params'])
                         if stored['params'].get(name) != given['params'].get(name))
    differences += [name for name in ('image_size', 'channels', 'classes')
                    if stored[name] != given[name]]
    if 'training' in stored and 'training' in given:
        # Options added to the project later are missing from older checkpoints.
        differences += sorted(name for name in set(stored['training']) & set(given['training'])
                              if stored['training'][name] != given['training'][name])
    if differences:
        raise CheckpointError(
            '%s do not match the run stored in checkpoint %s: they differ in %s; put back the '
            'files the run wrote, or train into a new logdir'
            % (source, checkpoint, ', '.join(differences)))


class WriteError(Exception):
    """A write into the logdir failed (disk full, read-only, ...), with a one-line reason."""


def check_not_in_use(logdir):
    """Raises CheckpointError, naming the PID, when a process holds the logdir's lock.

    Writes nothing: a probe before the lock is taken, so that a second run is refused at
    once.
    """
    holder = files.lock_holder(os.path.join(logdir, LOCK_FILE))
    if holder is not None:
        raise _in_use(logdir, holder)


def _in_use(logdir, holder):
    """The CheckpointError of a logdir whose lock `holder` holds."""
    return CheckpointError('%s is in use by another training run (PID %s): wait for it to '
                           'end or stop it, or train into another logdir' % (logdir, holder))


@contextlib.contextmanager
def lock_logdir(logdir):
    """Holds the logdir's lock (LOGDIR/train.lock) while in the block: one writer a logdir.

    Raises:
        CheckpointError: when another process holds it, naming its PID.
        OSError: when the logdir or the lock file cannot be created.
    """
    try:
        with files.exclusive_lock(os.path.join(logdir, LOCK_FILE)):
            yield
    except files.LockedError as error:
        raise _in_use(logdir, error.holder) from None


def remove_stale_temporaries(logdir):
    """Removes what an interrupted writer of `logdir` left: half-written checkpoints'
    temporary folders and temporary files of atomic writes. Call it holding the lock.

    Returns:
        the names removed.
    """
    removed = []
    samples = os.path.join(logdir, SAMPLES_FOLDER)
    names = os.listdir(logdir) + (
        [os.path.join(SAMPLES_FOLDER, name) for name in os.listdir(samples)]
        if os.path.isdir(samples) else [])
    for name in names:
        path = os.path.join(logdir, name)
        if _CHECKPOINT_TEMPORARY.match(name) and os.path.isdir(path):
            shutil.rmtree(path)
        elif files.is_temporary(os.path.basename(name)) and os.path.isfile(path):
            os.remove(path)
        else:
            continue
        removed.append(name)
    return removed


# Names under which earlier versions of this project stored some variables, newest first:
# the optimizer's name scope came later, and was 'optimizer_1' for a while.
_EARLIER_NAMES = {'optimizer/' + name: ('optimizer_1/' + name, name)
                  for name in ('beta1_power', 'beta2_power')}
# What a checkpoint written before it existed lacks; it keeps its initial value.
_ADDED_LATER = (RUN_SPEC_VARIABLE,)


def names_in_checkpoint(checkpoint, variables):
    """{name: the name it has in `checkpoint`} of the `variables` the checkpoint holds.

    A variable is found under its own name or an earlier one (_EARLIER_NAMES); one added to
    checkpoints later (the run's spec) may be missing.

    Args:
        checkpoint: a checkpoint prefix.
        variables: {name: graph variable}.
    Raises:
        CheckpointError: naming the variables that `checkpoint` lacks or shapes differently.
    """
    try:
        stored = dict(tf.train.list_variables(checkpoint))
    except (tf.errors.OpError, ValueError) as error:
        raise CheckpointError('cannot read checkpoint %s (%s)'
                              % (checkpoint, cli.error_reason(error))) from None
    found, problems = {}, []
    for name, variable in variables.items():
        shape = variable.shape.as_list()
        stored_name = next((candidate for candidate in (name,) + _EARLIER_NAMES.get(name, ())
                            if candidate in stored), None)
        if stored_name is None:
            if name not in _ADDED_LATER:
                problems.append('%s missing' % name)
        elif list(stored[stored_name]) != shape:
            problems.append('%s has shape %s in the checkpoint, %s in the params'
                            % (name, list(stored[stored_name]), shape))
        else:
            found[name] = stored_name
    if problems:
        shown = '; '.join(problems[:4]) + ('; ...' if len(problems) > 4 else '')
        raise CheckpointError('checkpoint %s does not match the model built from its params '
                              'or was trained with another optimizer (%d variables differ: '
                              '%s)' % (checkpoint, len(problems), shown))
    return found


def restorer(checkpoint, variables):
    """A function restore(session) that loads `variables` from `checkpoint`; built (and the
    checkpoint checked) now, before any session runs.

    What the checkpoint lacks (see names_in_checkpoint) is initialized instead.

    Args:
        checkpoint: a checkpoint prefix.
        variables: {name: graph variable}; a variable of a tf.distribute strategy (one copy
            per replica) gets the stored value in every copy.
    Raises:
        CheckpointError: as names_in_checkpoint.
    """
    stored_names = names_in_checkpoint(checkpoint, variables)
    # A Saver fills every copy of a distributed variable only when given the variable under
    # its own name; under another name, it fills one copy: one Saver per copy then.
    own = [variables[name] for name, stored in stored_names.items()
           if stored == variables[name].op.name]
    copies = collections.defaultdict(dict)  # copy index -> {name in checkpoint: copy}
    for name, stored in stored_names.items():
        if stored != variables[name].op.name:
            for index, copy in enumerate(getattr(variables[name], 'values', [variables[name]])):
                copies[index][stored] = copy
    with tf.name_scope('restore'):
        savers = [tf.train.Saver(own)] if own else []
        savers += [tf.train.Saver(renamed) for renamed in copies.values()]
        initializer = tf.variables_initializer([variable for name, variable
                                                in variables.items()
                                                if name not in stored_names])

    def restore(session):
        for saver in savers:
            saver.restore(session, checkpoint)
        session.run(initializer)
    return restore


def variables_by_name(scope=''):
    """{name in a checkpoint: variable} of the global variables under `scope`, or all."""
    return {variable.op.name: variable for variable in tf.global_variables(scope=scope or None)}


class InferenceModels:
    """One checkpoint or an ensemble of several, built in the current graph.

    Attributes:
        mixture: the model.Mixture of the members (one member for one checkpoint).
        spec: the RunSpec the members share (the first member's params).
        checkpoints: the checkpoint prefix of each member.
        skipped: [(prefix, reason)] of the newer checkpoints of the members' logdirs that
            were passed over because they cannot be read.
        description: the checkpoint, or 'the ensemble of A, B, ...', for messages.
    """

    def __init__(self, mixture, spec, checkpoints, skipped, restorers):
        self.mixture, self.spec, self.checkpoints = mixture, spec, checkpoints
        self.skipped = skipped
        self._restorers = restorers
        self.description = (checkpoints[0] if len(checkpoints) == 1 else
                            'the ensemble of %s' % ', '.join(checkpoints))

    def restore(self, session):
        """Loads every member's variables from its checkpoint into `session`."""
        for restore in self._restorers:
            restore(session)


def open_for_inference(paths):
    """Builds the models of one checkpoint, or the ensemble of several, and checks them.

    Each member is rebuilt from its logdir's run files, which must agree with the run spec
    its checkpoint holds, under its own variable scope (`wavenet` alone; `member0/wavenet`,
    `member1/wavenet`, ... for several), and is checked against its checkpoint before any
    session runs. A logdir stands for its newest readable checkpoint.

    Args:
        paths: a non-empty list of logdirs or checkpoint prefixes.
    Returns:
        an InferenceModels.
    Raises:
        CheckpointError: when a path has no readable checkpoint, a checkpoint does not match
            its run files, or the members differ in image size, channels, class names,
            levels or class conditioning.
    """
    resolved = [resolve_checkpoint(path) for path in paths]
    specs = []
    for checkpoint, run_dir, _ in resolved:
        specs.append(read_run_files(run_dir))
        check_spec(checkpoint, specs[-1], 'the run files of %s' % run_dir)
    for path, spec in zip(paths[1:], specs[1:]):
        if _shared_by_members(spec) != _shared_by_members(specs[0]):
            raise CheckpointError(
                'cannot ensemble %s with %s: the members of an ensemble need the same image '
                'size, channels, classes, quantization_channels and class conditioning'
                % (path, paths[0]))
    scopes = ([MODEL_SCOPE] if len(paths) == 1 else
              ['member%d/%s' % (index, MODEL_SCOPE) for index in range(len(paths))])
    models, restorers = [], []
    for (checkpoint, _, _), spec, scope in zip(resolved, specs, scopes):
        models.append(WaveNetModel(spec.params, spec.image_size, len(spec.classes),
                                   spec.channels, name=scope))
        # The names the member's variables have in its own checkpoint.
        variables = {MODEL_SCOPE + name[len(scope):]: variable
                     for name, variable in variables_by_name(scope + '/').items()}
        restorers.append(restorer(checkpoint, variables))
    return InferenceModels(Mixture(models), specs[0], [prefix for prefix, _, _ in resolved],
                           [skip for _, _, skipped in resolved for skip in skipped],
                           restorers)


def _shared_by_members(spec):
    """What the members of an ensemble must share."""
    return (tuple(spec.image_size), spec.channels, tuple(spec.classes),
            spec.params.quantization_channels, spec.params.gc_channels > 0)
