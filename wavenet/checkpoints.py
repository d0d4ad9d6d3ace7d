"""A training logdir's checkpoints: finding the newest readable one, its run record, restoring
it, and guarding the writes into the logdir.

A logdir holds `run.json` (the record.RunRecord), TensorFlow checkpoints `model.ckpt-STEP.*`
(every variable, and the record again as the string variable `run_spec`), TensorBoard events
and sample grids. Generation and evaluation rebuild the model from the record alone
(open_for_inference).
"""
import collections
import contextlib
import os
import re
import shutil
import stat

import tensorflow.compat.v1 as tf

from wavenet import files, record
from wavenet.errors import Error, reason
from wavenet.model import Mixture, WaveNetModel

CHECKPOINT_PREFIX = 'model.ckpt'
MODEL_SCOPE = 'wavenet'  # the variable scope of the model in the checkpoints of a run
RUN_SPEC_VARIABLE = 'run_spec'  # the run's record as JSON, in every checkpoint of the run
AVERAGE_SUFFIX = '/ExponentialMovingAverage'  # of a weight's moving average in a checkpoint
LOCK_FILE = 'train.lock'
SAMPLES_FOLDER = 'samples'  # the sample grids of a run
EVENT_FOLDERS = ('train', 'validation')
_CHECKPOINT_FILE = re.compile(r'^model\.ckpt-(\d+)\.(index|data-\d+-of-\d+)$')
_CHECKPOINT_TEMPORARY = re.compile(r'^model\.ckpt-\d+_temp')


class CheckpointError(Error):
    """A checkpoint or logdir that cannot be used, with a one-line reason."""


class WriteError(Error):
    """A write into the logdir failed (disk full, read-only, ...), with a one-line reason."""


def list_checkpoints(logdir):
    """The prefixes LOGDIR/model.ckpt-STEP of every checkpoint with a file in `logdir`, newest
    first; from the files, not TensorFlow's `checkpoint` index (a crash can leave it stale)."""
    steps = {int(match.group(1)) for match in map(_CHECKPOINT_FILE.match, os.listdir(logdir))
             if match}
    return [os.path.join(logdir, '%s-%d' % (CHECKPOINT_PREFIX, step))
            for step in sorted(steps, reverse=True)]


def step_of(prefix):
    """The global step in a checkpoint prefix LOGDIR/model.ckpt-STEP."""
    return int(prefix.rsplit('-', 1)[1])


def verify_checkpoint(prefix):
    """Raises CheckpointError with the reason unless every tensor of `prefix` can be read from
    regular files (TensorFlow would wait for ever on a FIFO)."""
    folder, name = os.path.split(prefix)
    for entry in [entry for entry in os.listdir(folder or '.') if entry.startswith(name + '.')]:
        try:
            regular = stat.S_ISREG(os.stat(os.path.join(folder, entry)).st_mode)
        except OSError as error:  # a dangling link, say
            raise CheckpointError('checkpoint %s cannot be read (%s: %s)' % (
                prefix, entry, reason(error))) from None
        if not regular:
            raise CheckpointError('checkpoint %s cannot be read (%s is not a regular file)'
                                  % (prefix, entry))
    # A damaged file makes the reader raise many types (DataLossError, OutOfRangeError,
    # IndexError, ValueError, ...): all mean unreadable.
    try:
        reader = tf.train.load_checkpoint(prefix)
        for tensor in reader.get_variable_to_shape_map():
            reader.get_tensor(tensor)
    except Exception as error:  # pylint: disable=broad-except
        raise CheckpointError('checkpoint %s cannot be read (%s: %s)' % (
            prefix, type(error).__name__, reason(error))) from None


def newest_readable_checkpoint(logdir):
    """(the newest checkpoint of `logdir` whose every tensor can be read, or None when it has no
    checkpoint file; [(prefix, reason)] of the newer ones skipped). CheckpointError when
    checkpoint files exist but none can be read."""
    skipped = []
    for prefix in list_checkpoints(logdir):
        try:
            verify_checkpoint(prefix)
            return prefix, skipped
        except CheckpointError as error:
            skipped.append((prefix, str(error)))
    if skipped:
        raise CheckpointError('no checkpoint in %s can be read: %s' % (
            logdir, '; '.join(why for _, why in skipped)))
    return None, skipped


def resolve_checkpoint(path):
    """(checkpoint prefix, its logdir, skipped as newest_readable_checkpoint says) of `path`, a
    logdir (its newest readable checkpoint) or a prefix."""
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


def read_record(checkpoint, logdir):
    """The RunRecord stored in `checkpoint` (run_spec); the logdir's run.json, where there is
    one, must say the same. CheckpointError naming the file and what is wrong or differs."""
    reader = tf.train.load_checkpoint(checkpoint)
    if not reader.has_tensor(RUN_SPEC_VARIABLE):
        raise CheckpointError('checkpoint %s holds no run record: it was written by an older '
                              'version of this project; train into a new logdir' % checkpoint)
    source = 'the run record of checkpoint %s' % checkpoint
    stored = record.RunRecord.from_dict(files.parse_json(
        reader.get_tensor(RUN_SPEC_VARIABLE), source), source)
    path = os.path.join(logdir, record.RUN_FILE)
    if os.path.lexists(path):
        written = record.RunRecord.from_dict(files.read_json(path, 'run file'), path)
        differences = written.differences(stored)
        if differences:
            raise CheckpointError(
                '%s does not match the run stored in checkpoint %s: they differ in %s; put '
                'back the run.json the run wrote (or delete it: the checkpoint holds the '
                'record), or train into a new logdir' % (path, checkpoint, ', '.join(differences)))
    return stored


def run_spec_variable(run):
    """A string variable holding the RunRecord's JSON, saved in every checkpoint of the run."""
    return tf.Variable(run.to_json(), trainable=False, name=RUN_SPEC_VARIABLE)


def restorer(checkpoint, variables):
    """A function restore(session) loading `variables`, {name in the checkpoint: variable},
    from `checkpoint`: checked and built now, before any session runs. A variable of a
    tf.distribute strategy (one copy per replica) under its own name gets the value in every
    copy. CheckpointError naming the variables that the checkpoint lacks or shapes otherwise."""
    stored = dict(tf.train.list_variables(checkpoint))
    problems = ['%s missing' % name if name not in stored else
                '%s has shape %s in the checkpoint, %s in the model'
                % (name, list(stored[name]), variable.shape.as_list())
                for name, variable in variables.items()
                if name not in stored or list(stored[name]) != variable.shape.as_list()]
    if problems:
        raise CheckpointError('checkpoint %s does not match the model built from its run '
                              'record (%d variables differ: %s%s)' % (
                                  checkpoint, len(problems), '; '.join(problems[:4]),
                                  '; ...' if len(problems) > 4 else ''))
    with tf.name_scope('restore'):
        own = all(name == variable.op.name for name, variable in variables.items())
        saver = tf.train.Saver(list(variables.values()) if own else variables)
    return lambda session: saver.restore(session, checkpoint)


def variables_by_name(scope=''):
    """{name in a checkpoint: variable} of the global variables under `scope`, or all."""
    return {variable.op.name: variable for variable in tf.global_variables(scope=scope or None)}


InferenceModels = collections.namedtuple('InferenceModels', [
    'mixture',      # the model.Mixture of the members (one member for one checkpoint)
    'record',       # the RunRecord of the first member
    'skipped',      # [(prefix, reason)] of newer checkpoints passed over as unreadable
    'restore',      # function(session) loading every member's variables
    'description',  # the checkpoint or 'the ensemble of A, B, ...', and which averages it uses
])


def open_for_inference(paths, use_averages=True):
    """The InferenceModels of the checkpoints of `paths` (logdirs or prefixes; several form an
    ensemble), each rebuilt from its run record under its own scope (`wavenet`, or
    `member0/wavenet`, `member1/wavenet`, ...) and loading the moving averages of its weights
    in their place where `use_averages` and its checkpoint holds them. CheckpointError when a
    path has no readable checkpoint, a checkpoint does not match its run.json, or the members
    cannot form an ensemble."""
    resolved = [resolve_checkpoint(path) for path in paths]
    records = [read_record(checkpoint, logdir) for checkpoint, logdir, _ in resolved]
    shared = [(run.image_size, run.channels, run.classes, run.params.quantization_channels,
               run.params.gc_channels > 0, run.params.local_condition, run.params.output)
              for run in records]
    for path, members_share in zip(paths[1:], shared[1:]):
        if members_share != shared[0]:
            raise CheckpointError(
                'cannot ensemble %s with %s: the members of an ensemble need the same image '
                'size, channels, classes, levels, class and local conditioning and output'
                % (path, paths[0]))
    models, restorers, averaged = [], [], 0
    for index, ((checkpoint, _, _), run) in enumerate(zip(resolved, records)):
        scope = MODEL_SCOPE if len(paths) == 1 else 'member%d/%s' % (index, MODEL_SCOPE)
        models.append(WaveNetModel(run.params, run.image_size, len(run.classes),
                                   run.channels, name=scope))
        stored = dict(tf.train.list_variables(checkpoint))
        names = {MODEL_SCOPE + name[len(scope):]: variable
                 for name, variable in variables_by_name(scope + '/').items()}
        has_averages = use_averages and all(name + AVERAGE_SUFFIX in stored for name in names)
        averaged += has_averages
        restorers.append(restorer(checkpoint, {
            name + (AVERAGE_SUFFIX if has_averages else ''): variable
            for name, variable in names.items()}))

    def restore(session):
        for restore_member in restorers:
            restore_member(session)
    checkpoints = [checkpoint for checkpoint, _, _ in resolved]
    description = (checkpoints[0] if len(checkpoints) == 1 else
                   'the ensemble of %s' % ', '.join(checkpoints))
    if averaged:
        description += (' with moving averages' if averaged == len(models) else ' with the '
                        'moving averages of %d of its %d members' % (averaged, len(models)))
    skipped = [skip for _, _, skipped_here in resolved for skip in skipped_here]
    return InferenceModels(Mixture(models), records[0], skipped, restore, description)


def check_not_in_use(logdir):
    """Raises CheckpointError, naming the PID, when a process holds the logdir's lock; writes
    nothing (a probe before the lock is taken, so that a second run is refused at once)."""
    holder = files.lock_holder(os.path.join(logdir, LOCK_FILE))
    if holder is not None:
        raise _in_use(logdir, holder)


def _in_use(logdir, holder):
    return CheckpointError('%s is in use by another training run (PID %s): wait for it to '
                           'end or stop it, or train into another logdir' % (logdir, holder))


def remove_stale_temporaries(logdir):
    """Removes what an interrupted writer of `logdir` left (half-written checkpoints' temporary
    folders, temporary files of atomic writes), returning their names; hold the lock."""
    removed = []
    samples = os.path.join(logdir, SAMPLES_FOLDER)
    names = os.listdir(logdir) + ([os.path.join(SAMPLES_FOLDER, name) for name in
                                   os.listdir(samples)] if os.path.isdir(samples) else [])
    for name in names:
        path = os.path.join(logdir, name)
        checkpoint_temporary = _CHECKPOINT_TEMPORARY.match(name)
        folder = os.path.isdir(path) and not os.path.islink(path)  # a symlink is never followed
        if checkpoint_temporary and folder:
            shutil.rmtree(path)
        elif (checkpoint_temporary or files.is_temporary(os.path.basename(name))) and not folder:
            os.remove(path)
        else:
            continue
        removed.append(name)
    return removed


@contextlib.contextmanager
def writing_into(logdir, resume_from):
    """The block in which a run writes into its logdir, yielding the names of the temporaries
    removed (remove_stale_temporaries). It holds the logdir's lock, refuses a symlink in the
    place of a folder the run writes into, checks that the newest readable checkpoint is still
    `resume_from`, and turns a failed write (disk full, read-only folder) into a WriteError
    naming the newest good checkpoint."""
    try:
        os.makedirs(logdir, exist_ok=True)
        with files.exclusive_lock(os.path.join(logdir, LOCK_FILE)):
            for name in (SAMPLES_FOLDER,) + EVENT_FOLDERS:
                path = os.path.join(logdir, name)
                if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
                    raise CheckpointError('%s is a symlink or not a folder: remove it (a run '
                                          'writes only into its logdir)' % path)
            removed = remove_stale_temporaries(logdir)
            if newest_readable_checkpoint(logdir)[0] != resume_from:
                raise CheckpointError('another run wrote into %s while this one started: run '
                                      'this command again' % logdir)
            try:
                yield removed
            except WriteError:
                remove_stale_temporaries(logdir)
                raise
    except files.LockedError as error:
        raise _in_use(logdir, error.holder) from None
    except (WriteError, OSError) as error:
        why = error if isinstance(error, WriteError) else reason(error)
        newest = newest_readable_checkpoint(logdir)[0] if os.path.isdir(logdir) else None
        raise WriteError('%s: free disk space or make %s writable, or train into another '
                         'logdir (newest good checkpoint: %s)' % (why, logdir, newest)) from None
