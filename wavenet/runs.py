"""Deciding what a training run is: a new run, or the one its logdir holds, resumed.

A logdir without checkpoint files starts a new run from the given params and options (their
defaults where none is given). A logdir with checkpoints is resumed from its newest readable
one, whose run record (checkpoints.read_record) decides the params, the data's shape and the
training options: a value given that differs from the record is refused, so a resumed run
goes on exactly as it began, and a run never silently starts over.
"""
import collections
import dataclasses
import os

import numpy as np

from wavenet import checkpoints, prepared, record
from wavenet.errors import Error
from wavenet.params import load_params

Resolution = collections.namedtuple('Resolution', [
    'record',       # the RunRecord; a new run's image_size and classes may be None (data decides)
    'resume_from',  # the checkpoint to resume from, or None for a new run
    'skipped',      # [(prefix, reason)] of newer checkpoints that cannot be read
    'replaced',     # the run.json of a run that saved no checkpoint, which this one replaces
])


def resolve(logdir, data_dir, params_path, default_params_path, param_overrides, options,
            image_size=None, channels=None):
    """The Resolution of the run to train in `logdir`.

    Args:
        params_path: a params JSON file, or None: the run's when resuming, else
            default_params_path.
        param_overrides: {params field: value} that replace those of the params file.
        options: {training option: value} given; the others are the defaults or the run's.
        image_size, channels: (height, width) and 1 or 3 asked for, or None; a new run's
            channels are else those of a prepared dataset at `data_dir`, or 1.
    Raises:
        Error: for bad params or options, a logdir whose checkpoints or record cannot be
            used, or a value that differs from what the resumed run keeps.
    """
    if os.path.exists(logdir) and not os.path.isdir(logdir):
        raise Error('the logdir %s is a file: give a folder' % logdir)
    found = checkpoints.list_checkpoints(logdir) if os.path.isdir(logdir) else []
    if not found:
        params = dataclasses.replace(load_params(params_path or default_params_path),
                                     **param_overrides)
        run_file = os.path.join(logdir, record.RUN_FILE)
        return Resolution(record.RunRecord(
            params, image_size, channels or _prepared_channels(data_dir), None,
            record.TrainingOptions(**options)), None, [],
            run_file if os.path.lexists(run_file) else None)
    checkpoint, skipped = checkpoints.newest_readable_checkpoint(logdir)
    stored = checkpoints.read_record(checkpoint, logdir)
    if 'num_steps' in options:  # the one option a resumed run may change
        stored = dataclasses.replace(stored, training=dataclasses.replace(
            stored.training, num_steps=options.pop('num_steps')))
    given = dict(options, image_size=image_size and tuple(image_size), channels=channels)
    kept = dict(dataclasses.asdict(stored.training), image_size=stored.image_size,
                channels=stored.channels)
    for name, value in given.items():
        if value is not None and value != kept[name]:
            raise Error('%s=%s differs from %s, which the run in %s keeps: resume without '
                        'it, or train into a new logdir' % (name, value, kept[name], logdir))
    if params_path or param_overrides:
        requested = dataclasses.replace(load_params(params_path) if params_path
                                        else stored.params, **param_overrides)
        differences = stored.params.diff(requested)
        if differences:
            raise Error('the requested params differ from those of the run in %s in %s: '
                        'resume without them, or train into a new logdir'
                        % (logdir, ', '.join(differences)))
    return Resolution(stored, checkpoint, skipped, None)


def _prepared_channels(data_dir):
    """The channels of a prepared dataset (1 for a folder of images, or when unreadable)."""
    try:
        return prepared.read_info(data_dir).channels if prepared.is_prepared(data_dir) else 1
    except Error:
        return 1  # reading the data reports what is wrong with it


def with_data(run, dataset, data_dir):
    """The record of a run completed with the image size and classes of its data; Error when
    the data's classes differ from those the resumed run was trained on, a class-conditional
    run has images without a class, or the record does not fit the data."""
    if run.classes is not None and tuple(dataset.classes) != run.classes:
        raise Error('%s has classes %s but the run was trained on %s: train into a new logdir'
                    % (data_dir, list(dataset.classes), list(run.classes)))
    if run.params.gc_channels:
        for image_set in (dataset.train, dataset.validation):
            unlabelled = np.flatnonzero(np.asarray(image_set.labels) < 0)
            if len(unlabelled):
                first = (image_set.files[unlabelled[0]] if image_set.files
                         else 'image %d of the prepared dataset' % unlabelled[0])
                raise Error('class conditioning needs every image in a class folder, but %s '
                            'is not (and %d more): put the images in DATA/CLASS/ folders, or '
                            'train an unconditional model (gc_channels 0)'
                            % (first, len(unlabelled) - 1))
    return dataclasses.replace(run, image_size=tuple(dataset.image_size),
                               classes=tuple(dataset.classes))
