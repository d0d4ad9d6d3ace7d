"""A run survives faults and hostile files: lost, damaged or edited checkpoints and run records,
logdirs of the previous version, a second run, full disks, read-only folders, kill -9 at chosen
moments, and FIFOs, devices, symlinks and malformed JSON where the project reads or writes.

Most tests call a script's main() in this process on a copy of the trained logdir; a read that
could hang runs under a time limit. What needs a process of its own (kill -9, a held lock, a
file-size limit) runs train.py as a subprocess.
"""
import contextlib
import glob
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

import evaluate
import generate
import train
from conftest import (CHECKPOINTS, EARLIER, LATEST, ROOT, STEPS, assert_one_error_line,
                      assert_same_values, checkpoint_values, describe, error_of,
                      limit_file_size, png_pixels, run_main, run_script, snapshot, tf,
                      time_limit, train_flags, write_file, write_json)
from wavenet import checkpoints, cli, errors, files, record, runs

RESUMED = STEPS + 2
# A resume two steps further, saving each step and keeping two checkpoints.
RESUME_FLAGS = ('--checkpoint_every=1', '--max_checkpoints=2', '--num_samples=0')
# A run record as the previous version of the project wrote it: no params added since, and
# the optimizer among the training options; the options added since hold what that version
# did (no moving averages of the weights, which its checkpoints do not hold).
PREVIOUS_PARAMS = ('filter_width', 'dilations', 'residual_channels', 'dilation_channels',
                   'skip_channels', 'quantization_channels', 'use_biases',
                   'initial_filter_width', 'gc_channels', 'position_channels', 'level_bumps')
PREVIOUS_TRAINING = ('batch_size', 'learning_rate', 'learning_rate_schedule',
                     'l2_regularization_strength', 'dropout', 'augment_shift', 'seed',
                     'validation_fraction', 'precision')
# The options added since, as that version trained.
ADDED_TRAINING = {'ema_decay': 0.0, 'num_steps': 4200, 'augment_symmetries': 0.0}


def files_of(prefix):
    return sorted(glob.glob(glob.escape(str(prefix)) + '.*'))


def rewrite_checkpoint(prefix, run_spec, keep=lambda name: True):
    """Writes checkpoint `prefix` again with the variables whose names `keep` accepts, as they
    were, but the run record: the text or bytes `run_spec`, or none at all (None)."""
    reader = tf.train.load_checkpoint(str(prefix))
    values = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
              if name != checkpoints.RUN_SPEC_VARIABLE and keep(name)}
    if run_spec is not None:
        values[checkpoints.RUN_SPEC_VARIABLE] = (run_spec.encode() if isinstance(run_spec, str)
                                                 else run_spec)
    for path in files_of(prefix):
        os.remove(path)
    names = sorted(values)
    with tf.Graph().as_default(), tf.Session() as session:
        session.run(tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names,
                                      shape_and_slices=[''] * len(names),
                                      tensors=[tf.constant(values[name]) for name in names]))


def stored_record(logdir):
    return json.loads((logdir / 'run.json').read_text())


def run_spec_of(prefix):
    return json.loads(tf.train.load_variable(str(prefix), checkpoints.RUN_SPEC_VARIABLE))


def global_step(prefix):
    return int(tf.train.load_variable(str(prefix), 'global_step'))


def steps_in(logdir):
    return [checkpoints.step_of(prefix) for prefix in checkpoints.list_checkpoints(str(logdir))]


def script_error_lines(main, argv, capsys):
    """The stderr lines of a script run through cli.run_main (the scripts' one error path) in
    this process, which must exit with status 2."""
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    capsys.readouterr()
    try:
        with tf.Graph().as_default(), pytest.raises(SystemExit) as exit_info:
            cli.run_main(lambda: main([str(arg) for arg in argv]))
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    captured = capsys.readouterr()
    assert exit_info.value.code == 2, captured
    return captured.err.splitlines()


def read_line_starting(process, start):
    """Reads the stdout of `process` up to a line starting with `start`; returns the lines."""
    lines = []
    while not lines or not lines[-1].startswith(start):
        line = process.stdout.readline()
        assert line, 'exited before %r: %s' % (start, ''.join(lines) + process.stderr.read())
        lines.append(line)
    return lines


@pytest.fixture(scope='module')
def resumed(trained, data_dir, tmp_path_factory):
    """A copy of the trained logdir resumed in this process to RESUMED with RESUME_FLAGS: the
    run that every other resume from the same checkpoint must equal, value for value;
    (logdir, stdout)."""
    logdir = tmp_path_factory.mktemp('resumed') / 'logdir'
    shutil.copytree(str(trained.logdir), str(logdir))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run_main(train, train_flags(data_dir, logdir, RESUMED, *RESUME_FLAGS))
    return logdir, printed.getvalue()


def assert_same_as_the_reference_resume(logdir, resumed):
    reference, _ = resumed
    name = 'model.ckpt-%d' % RESUMED
    assert_same_values(checkpoint_values(reference / name), checkpoint_values(logdir / name))
    assert (logdir / 'run.json').read_text() == (reference / 'run.json').read_text()
    assert run_spec_of(logdir / name) == stored_record(reference)


# ------------------------------------------------------------------- checkpoints and records


def test_a_resume_keeps_max_checkpoints_counting_the_old_ones(resumed):
    logdir, printed = resumed
    assert 'resumed from %s\n' % (logdir / LATEST) in printed, printed
    assert steps_in(logdir) == [RESUMED, RESUMED - 1]
    assert not files_of(logdir / LATEST) and not files_of(logdir / EARLIER)
    assert global_step(logdir / ('model.ckpt-%d' % RESUMED)) == RESUMED


@pytest.mark.parametrize('damage, expected', [
    ('newest deleted', EARLIER), ('index deleted', LATEST), ('index emptied', LATEST),
    ('index garbage', LATEST), ('index names the older', LATEST)])
def test_the_newest_checkpoint_file_is_resumed_whatever_the_index_says(logdir_copy, data_dir,
                                                                        damage, expected):
    index = logdir_copy / 'checkpoint'
    if damage == 'newest deleted':
        for path in files_of(logdir_copy / LATEST):
            os.remove(path)
    elif damage == 'index deleted':
        index.unlink()
    elif damage == 'index names the older':
        index.write_text('model_checkpoint_path: "%s"\n' % EARLIER)
    else:
        index.write_bytes(b'' if damage == 'index emptied' else b'\xff\xfe garbage {{{')
    resolution = runs.resolve(str(logdir_copy), str(data_dir), None, train.DEFAULT_PARAMS, {},
                              {})
    assert resolution.resume_from == str(logdir_copy / expected)
    assert resolution.skipped == [] and resolution.replaced is None


def test_a_garbled_index_and_a_deleted_run_json_resume_from_the_checkpoint_record(
        logdir_copy, data_dir, resumed, capsys):
    (logdir_copy / 'checkpoint').write_bytes(b'\xff\xfe garbage {{{')
    (logdir_copy / 'run.json').unlink()
    out = run_main(train, train_flags(data_dir, logdir_copy, RESUMED, *RESUME_FLAGS),
                   capsys).stdout
    assert 'resumed from %s\n' % (logdir_copy / LATEST) in out, out
    assert_same_as_the_reference_resume(logdir_copy, resumed)  # run.json written again


def test_damaged_newer_checkpoints_are_skipped_with_a_warning_by_train_and_generate(
        logdir_copy, data_dir, tmp_path, capsys):
    """Checkpoint 60 truncated, a copy of 30 as 90 zero-filled, and as 120 with a FIFO for
    its index: each is skipped with one warning line, and 30 is used."""
    data = '.data-00000-of-00001'
    for step in (90, 120):
        for suffix in ('.index', data):
            shutil.copy(str(logdir_copy / (EARLIER + suffix)),
                        str(logdir_copy / ('model.ckpt-%d%s' % (step, suffix))))
    with open(str(logdir_copy / (LATEST + data)), 'r+b') as stream:
        stream.truncate(os.path.getsize(str(logdir_copy / (LATEST + data))) // 2)
    zeroed = logdir_copy / ('model.ckpt-90' + data)
    zeroed.write_bytes(bytes(zeroed.stat().st_size))
    os.remove(str(logdir_copy / 'model.ckpt-120.index'))
    os.mkfifo(str(logdir_copy / 'model.ckpt-120.index'))

    def assert_skipped(err):
        lines = [line for line in err.splitlines() if not line.startswith('generating: ')]
        for step, why in ((120, r'model\.ckpt-120\.index is not a regular file'),
                          (90, r'\S.*'), (60, r'\S.*')):
            pattern = r'^warning: checkpoint %s cannot be read \(%s\); skipped it$' % (
                re.escape(str(logdir_copy / ('model.ckpt-%d' % step))), why)
            assert [line for line in lines if re.match(pattern, line)], (pattern, err)
        assert len(lines) == 3, err

    out = tmp_path / 'one.png'
    with time_limit(60):
        result = run_main(generate, ['--checkpoint=%s' % logdir_copy, '--out=%s' % out,
                                     '--num_images=1', '--seed=1'], capsys)
    assert_skipped(result.stderr)
    assert 'from %s ' % (logdir_copy / EARLIER) in result.stdout, result
    assert png_pixels(out)[0].shape == (8, 8)
    with time_limit(60):
        result = run_main(train, train_flags(data_dir, logdir_copy, CHECKPOINTS[0] + 1,
                                             '--num_samples=0'), capsys)
    assert_skipped(result.stderr)
    assert 'resumed from %s\n' % (logdir_copy / EARLIER) in result.stdout, result
    checkpoints.verify_checkpoint(str(logdir_copy / 'model.ckpt-31'))
    assert global_step(logdir_copy / 'model.ckpt-31') == 31


def test_no_readable_checkpoint_is_an_error_not_a_new_run(logdir_copy, data_dir, tmp_path):
    for name in os.listdir(str(logdir_copy)):
        if name.startswith('model.ckpt-'):
            (logdir_copy / name).write_bytes(b'garbage')
    before = snapshot(logdir_copy)
    for script, argv in ((train, train_flags(data_dir, logdir_copy, RESUMED)),
                         (generate, ['--checkpoint=%s' % logdir_copy,
                                     '--out=%s' % (tmp_path / 'x.png')])):
        message = error_of(script, argv)
        assert message.startswith('no checkpoint in %s can be read: checkpoint %s cannot be '
                                  'read (' % (logdir_copy, logdir_copy / LATEST)), message
        assert '\n' not in message
    assert snapshot(logdir_copy) == before


def test_a_garbled_run_json_is_refused_untouched_naming_it(logdir_copy, data_dir, tmp_path):
    (logdir_copy / 'run.json').write_text('{"params": {"dilations": [1, 2')
    before = snapshot(logdir_copy)
    for script, argv in ((train, train_flags(data_dir, logdir_copy, RESUMED)),
                         (generate, ['--checkpoint=%s' % logdir_copy,
                                     '--out=%s' % (tmp_path / 'x.png')])):
        message = error_of(script, argv)
        assert message.startswith('run file %s is not valid JSON' % (logdir_copy / 'run.json'))
    assert snapshot(logdir_copy) == before and not (tmp_path / 'x.png').exists()


def test_a_run_json_that_differs_from_the_checkpoint_is_refused_naming_what_differs(
        logdir_copy, data_dir, tmp_path):
    edited = stored_record(logdir_copy)
    edited['params'].update(dilations=[8, 4, 2, 1], position_channels=4)  # the same shapes
    edited['channels'] = 3
    write_json(logdir_copy / 'run.json', edited)
    before = snapshot(logdir_copy)
    for script, argv in ((train, train_flags(data_dir, logdir_copy, RESUMED)),
                         (generate, ['--checkpoint=%s' % logdir_copy,
                                     '--out=%s' % (tmp_path / 'x.png')]),
                         (evaluate, ['--checkpoint=%s' % logdir_copy,
                                     '--data_dir=%s' % data_dir])):
        message = error_of(script, argv)
        assert message.startswith('%s does not match the run stored in checkpoint %s: they '
                                  'differ in channels, dilations, position_channels; '
                                  % (logdir_copy / 'run.json', logdir_copy / LATEST)), message
    assert snapshot(logdir_copy) == before and not (tmp_path / 'x.png').exists()


def test_a_logdir_that_is_a_file_is_refused(data_dir, tmp_path):
    (tmp_path / 'run').write_text('notes')
    message = error_of(train, train_flags(data_dir, tmp_path / 'run'))
    assert message == 'the logdir %s is a file: give a folder' % (tmp_path / 'run')
    assert (tmp_path / 'run').read_text() == 'notes' and os.listdir(str(tmp_path)) == ['run']


# ------------------------------------------------------------------- the previous version


def as_previous_version(logdir, optimizer='adam'):
    """Makes `logdir` one that the previous version of the project wrote: params.json,
    data.json and training.json in place of run.json, and checkpoints without the moving
    averages, whose run record has no key added since and the optimizer among its options."""
    current = stored_record(logdir)
    assert sorted(current['training']) == sorted(PREVIOUS_TRAINING + tuple(ADDED_TRAINING))
    params = {name: current['params'][name] for name in PREVIOUS_PARAMS}
    training = {name: current['training'][name] for name in PREVIOUS_TRAINING}
    training.update(optimizer=optimizer, momentum=0.9)
    data = {'image_size': current['image_size'], 'classes': current['classes'],
            'channels': current['channels']}
    for prefix in (logdir / EARLIER, logdir / LATEST):
        rewrite_checkpoint(prefix, json.dumps(dict(data, params=params, training=training),
                                              sort_keys=True),
                           keep=lambda name: not name.endswith(checkpoints.AVERAGE_SUFFIX))
    (logdir / 'run.json').unlink()
    for name, content in (('params.json', params), ('data.json', data),
                          ('training.json', training)):
        write_json(logdir / name, content)


def test_a_logdir_of_the_previous_version_resumes_exactly(logdir_copy, data_dir, resumed,
                                                          capsys):
    """As the run that never stopped (the moving averages aside: the previous version had
    none, so the resumed run keeps none), with its record in run.json and the checkpoints."""
    as_previous_version(logdir_copy)
    out = run_main(train, train_flags(data_dir, logdir_copy, RESUMED, *RESUME_FLAGS),
                   capsys).stdout
    assert 'resumed from %s\n' % (logdir_copy / LATEST) in out, out
    reference, _ = resumed
    name = 'model.ckpt-%d' % RESUMED
    assert_same_values({key: value for key, value in checkpoint_values(reference / name).items()
                        if not key.endswith(checkpoints.AVERAGE_SUFFIX)},
                       checkpoint_values(logdir_copy / name))
    expected = stored_record(reference)
    expected['training'].update(ADDED_TRAINING, num_steps=RESUMED)
    assert stored_record(logdir_copy) == expected
    assert run_spec_of(logdir_copy / name) == expected  # the record as this version writes it


def test_a_previous_run_with_another_optimizer_than_adam_is_refused(logdir_copy, data_dir):
    as_previous_version(logdir_copy, optimizer='sgd')
    before = snapshot(logdir_copy)
    message = error_of(train, train_flags(data_dir, logdir_copy, RESUMED))
    assert message.startswith('the run record of checkpoint %s was trained with another '
                              'optimizer than Adam' % (logdir_copy / LATEST)), message
    assert '\n' not in message and snapshot(logdir_copy) == before


def test_a_checkpoint_without_a_run_record_is_refused(logdir_copy, data_dir, tmp_path):
    rewrite_checkpoint(logdir_copy / LATEST, None)
    before = snapshot(logdir_copy)
    for script, argv in ((train, train_flags(data_dir, logdir_copy, RESUMED)),
                         (generate, ['--checkpoint=%s' % logdir_copy,
                                     '--out=%s' % (tmp_path / 'x.png')])):
        message = error_of(script, argv)
        assert message.startswith('checkpoint %s holds no run record' % (logdir_copy / LATEST))
        assert 'train into a new logdir' in message and '\n' not in message, message
    assert snapshot(logdir_copy) == before


# ------------------------------------------------------------------- hostile run records


DELETE = object()
BAD_RECORDS = {  # name: (the keys to the value, the value or DELETE)
    'classes a string': (('classes',), '012'),
    'classes not names': (('classes',), ['dark', 1]),
    'classes repeated': (('classes',), ['dark', 'dark']),
    'image_size fractions': (('image_size',), [28.9, 28.2]),
    'image_size a float': (('image_size',), [8, 8.0]),
    'image_size one side': (('image_size',), [8]),
    'image_size zero': (('image_size',), [0, 8]),
    'image_size too large': (('image_size',), [8, 5000]),
    'image_size a boolean': (('image_size',), [True, 8]),
    'image_size text': (('image_size',), '88'),
    'channels 2': (('channels',), 2),
    'channels a boolean': (('channels',), True),
    'channels a float': (('channels',), 1.0),
    'classes null': (('classes',), None),
    'image_size null': (('image_size',), None),
    'image_size a number': (('image_size',), 8),
    'seed negative': (('training', 'seed'), -1),
    'seed too large': (('training', 'seed'), 2 ** 32),
    'seed text': (('training', 'seed'), '0'),
    'batch_size a boolean': (('training', 'batch_size'), True),
    'batch_size a float': (('training', 'batch_size'), 4.0),
    'learning_rate zero': (('training', 'learning_rate'), 0),
    'dropout one': (('training', 'dropout'), 1.0),
    'symmetries above one': (('training', 'augment_symmetries'), 1.5),
    'symmetries for every image': (('training', 'augment_symmetries'), 1.0),
    'precision unknown': (('training', 'precision'), 'fp16'),
    'training unknown key': (('training', 'momentum2'), 0.9),
    'training missing key': (('training', 'seed'), DELETE),
    'training not an object': (('training',), [1]),
    'params unknown key': (('params', 'skip_chanels'), 16),
    'params fraction': (('params', 'residual_channels'), 8.5),
    'params no dilations': (('params', 'dilations'), []),
    'unknown key': (('notes',), 'mine'),
    'missing key': (('channels',), DELETE),
    'not an object': ((), ['params']),
}


def changed(values, keys, value):
    """A copy of the JSON `values` with the value at `keys` replaced (or deleted)."""
    if not keys:
        return value
    values = json.loads(json.dumps(values))
    parent = values
    for key in keys[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[keys[-1]]
    else:
        parent[keys[-1]] = value
    return values


def test_a_run_record_round_trips(trained):
    text = (trained.logdir / 'run.json').read_text()
    parsed = record.RunRecord.from_dict(json.loads(text), 'run file')
    assert parsed.to_json() == text
    assert parsed.image_size == (8, 8) and parsed.classes == ('bright', 'dark')


def test_a_run_record_from_before_the_symmetries_reads_as_none(trained):
    values = stored_record(trained.logdir)
    del values['training']['augment_symmetries']
    parsed = record.RunRecord.from_dict(values, 'run file')
    assert parsed.training.augment_symmetries == 0
    assert parsed.to_json() == (trained.logdir / 'run.json').read_text()


@pytest.mark.parametrize('name', sorted(BAD_RECORDS))
def test_a_run_record_is_checked_as_strictly_as_the_flags(trained, name):
    values = changed(stored_record(trained.logdir), *BAD_RECORDS[name])
    with pytest.raises(errors.Error) as error:
        record.RunRecord.from_dict(values, 'run file /x/run.json')
    message = str(error.value)
    assert message.startswith('run file /x/run.json') and '\n' not in message, message
    if name.startswith('seed'):  # the range, exactly
        assert 'from 0 to 4294967295' in message, message


def test_a_class_conditional_record_needs_classes():
    from wavenet.params import WaveNetParams
    with pytest.raises(errors.Error, match='class-conditional model .* needs classes'):
        record.RunRecord(WaveNetParams(gc_channels=4), (8, 8), 1, (), record.TrainingOptions())


def original_text(logdir):
    return (logdir / 'run.json').read_text()


HOSTILE_RUN_JSON = {
    'nested 200,000 deep': lambda text: text.replace(
        '"dilations": [', '"dilations": ' + '[' * 200000 + ']' * 199999 + ', ', 1),
    'image_size Infinity': lambda text: json.dumps(dict(json.loads(text),
                                                        image_size=[float('inf'), 28])),
    'image_size fractions': lambda text: json.dumps(dict(json.loads(text),
                                                         image_size=[28.9, 28.2])),
    'classes a string': lambda text: json.dumps(dict(json.loads(text), classes='012')),
    'seed -1': lambda text: text.replace('"seed": 0', '"seed": -1'),
    'batch_size true': lambda text: text.replace('"batch_size": 4', '"batch_size": true'),
}


@pytest.mark.parametrize('case', sorted(HOSTILE_RUN_JSON))
def test_a_hostile_run_json_is_one_error_naming_it(logdir_copy, data_dir, tmp_path, case):
    content = HOSTILE_RUN_JSON[case](original_text(logdir_copy))
    assert content != original_text(logdir_copy)
    (logdir_copy / 'run.json').write_text(content)
    before = snapshot(logdir_copy)
    for script, argv in ((train, train_flags(data_dir, logdir_copy, RESUMED)),
                         (generate, ['--checkpoint=%s' % logdir_copy,
                                     '--out=%s' % (tmp_path / 'x.png')])):
        message = error_of(script, argv)
        assert str(logdir_copy / 'run.json') in message and '\n' not in message, message
        assert len(message) < 1000, message
    assert snapshot(logdir_copy) == before


HOSTILE_RUN_SPECS = {
    'not JSON': lambda values: b'{"params": {"dilations": [1, 2',
    'not UTF-8': lambda values: b'{"classes": ["\xff\xfe"]}',
    'no training options': lambda values: json.dumps(changed(values, ('training',), DELETE)),
    'image_size as text': lambda values: json.dumps(changed(values, ('image_size',),
                                                            ['8', '8'])),
}


@pytest.mark.parametrize('case', sorted(HOSTILE_RUN_SPECS))
def test_a_hostile_run_spec_is_one_error_naming_the_checkpoint(logdir_copy, data_dir, tmp_path,
                                                              case):
    rewrite_checkpoint(logdir_copy / LATEST,
                       HOSTILE_RUN_SPECS[case](stored_record(logdir_copy)))
    before = snapshot(logdir_copy)
    for script, argv in ((train, train_flags(data_dir, logdir_copy, RESUMED)),
                         (generate, ['--checkpoint=%s' % logdir_copy,
                                     '--out=%s' % (tmp_path / 'x.png')]),
                         (evaluate, ['--checkpoint=%s' % (logdir_copy / LATEST),
                                     '--data_dir=%s' % data_dir])):
        message = error_of(script, argv)
        assert re.match(r'the run record of checkpoint %s[ :]' % re.escape(
            str(logdir_copy / LATEST)), message), (script.__name__, message)
        assert '\n' not in message and len(message) < 1000, message
    assert snapshot(logdir_copy) == before and not (tmp_path / 'x.png').exists()


# ------------------------------------------------------------------- FIFOs, devices, symlinks


def replace_by_fifo(path):
    if os.path.lexists(str(path)):
        os.remove(str(path))
    os.mkfifo(str(path))


@pytest.mark.parametrize('target, script', [
    ('run.json', 'train'), ('run.json', 'generate'), ('run.json', 'evaluate'),
    ('train.lock', 'train'), ('params', 'train'),
    ('checkpoint index', 'generate'), ('checkpoint index', 'evaluate')])
def test_a_fifo_in_place_of_a_file_that_is_read_is_one_error_not_a_hang(
        logdir_copy, data_dir, tiny_params, tmp_path, target, script):
    fifo = {'run.json': logdir_copy / 'run.json', 'train.lock': logdir_copy / 'train.lock',
            'params': tmp_path / 'params.json',
            'checkpoint index': logdir_copy / (LATEST + '.index')}[target]
    replace_by_fifo(fifo)
    checkpoint = logdir_copy / LATEST if target == 'checkpoint index' else logdir_copy
    out = tmp_path / 'x.png'
    argv = {'train': train_flags(data_dir, tmp_path / 'new' if target == 'params'
                                 else logdir_copy, RESUMED, params=fifo if target == 'params'
                                 else None),
            'generate': ['--checkpoint=%s' % checkpoint, '--out=%s' % out],
            'evaluate': ['--checkpoint=%s' % checkpoint, '--data_dir=%s' % data_dir]}[script]
    with time_limit(20):
        message = error_of({'train': train, 'generate': generate,
                            'evaluate': evaluate}[script], argv)
    named = fifo.name if target == 'checkpoint index' else fifo
    assert '%s is not a regular file' % named in message and '\n' not in message, message
    if target == 'checkpoint index':
        assert message.startswith('checkpoint %s cannot be read' % checkpoint), message
    assert not out.exists() and not (tmp_path / 'new').exists()


@pytest.mark.parametrize('script', ['train', 'generate'])
def test_run_json_linked_to_dev_zero_is_one_error(logdir_copy, data_dir, tmp_path, script):
    os.remove(str(logdir_copy / 'run.json'))
    os.symlink('/dev/zero', str(logdir_copy / 'run.json'))
    argv = (train_flags(data_dir, logdir_copy, RESUMED) if script == 'train' else
            ['--checkpoint=%s' % logdir_copy, '--out=%s' % (tmp_path / 'x.png')])
    with time_limit(20):
        message = error_of(train if script == 'train' else generate, argv)
    assert message == 'run file %s is not a regular file: replace it with one' % (
        logdir_copy / 'run.json')
    assert os.readlink(str(logdir_copy / 'run.json')) == '/dev/zero'


@pytest.mark.parametrize('logdir', ['resumed', 'new'])
def test_a_symlinked_lock_is_refused_and_its_target_untouched(logdir_copy, data_dir,
                                                              tiny_params, tmp_path, logdir):
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious\n')
    os.utime(str(victim), ns=(10 ** 18, 10 ** 18))
    folder = logdir_copy if logdir == 'resumed' else tmp_path / 'new'
    folder.mkdir(exist_ok=True)
    lock = folder / 'train.lock'
    if os.path.lexists(str(lock)):
        os.remove(str(lock))
    os.symlink(str(victim), str(lock))
    before = snapshot(folder)
    message = error_of(train, train_flags(data_dir, folder, RESUMED, params=tiny_params))
    assert str(lock) in message and 'symlink' in message, message
    assert victim.read_text() == 'precious\n' and victim.stat().st_mtime_ns == 10 ** 18
    assert os.readlink(str(lock)) == str(victim) and snapshot(folder) == before


@pytest.mark.parametrize('planted', ['samples symlink', 'train file'])
def test_a_symlink_or_a_file_in_place_of_a_folder_it_writes_is_refused(logdir_copy, data_dir,
                                                                      tmp_path, planted):
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    name = planted.split()[0]
    shutil.rmtree(str(logdir_copy / name))
    if planted == 'samples symlink':
        os.symlink(str(elsewhere), str(logdir_copy / name))
    else:
        write_file(logdir_copy / name, 'notes')
    before = snapshot(logdir_copy)
    message = error_of(train, train_flags(data_dir, logdir_copy, RESUMED,
                                          '--checkpoint_every=1'))
    assert message.startswith('%s is a symlink or not a folder' % (logdir_copy / name)), message
    assert os.listdir(str(elsewhere)) == [] and snapshot(logdir_copy) == before
    assert steps_in(logdir_copy) == list(reversed(CHECKPOINTS))


def test_a_planted_checkpoint_temporary_is_removed_never_written_through(logdir_copy, data_dir,
                                                                         tmp_path):
    victim = tmp_path / 'victim'
    victim.mkdir()
    os.symlink(str(victim), str(logdir_copy / ('model.ckpt-%d_temp' % (STEPS + 1))))
    os.symlink(str(tmp_path / 'missing'), str(logdir_copy / ('model.ckpt-%d.index' % 99)))
    run_main(train, train_flags(data_dir, logdir_copy, STEPS + 1, '--checkpoint_every=1'))
    assert os.listdir(str(victim)) == []
    # A dangling link as a checkpoint's index: skipped as unreadable, never a traceback.
    newest, skipped = checkpoints.newest_readable_checkpoint(str(logdir_copy))
    assert newest == str(logdir_copy / ('model.ckpt-%d' % (STEPS + 1)))
    assert [prefix for prefix, _ in skipped] == [str(logdir_copy / 'model.ckpt-99')]


def test_a_newline_in_a_file_or_class_name_keeps_each_message_one_line(logdir_copy, data_dir,
                                                                        tmp_path, capsys):
    data = tmp_path / 'data\nset'
    shutil.copytree(str(data_dir), str(data))
    os.rename(str(data / 'dark'), str(data / 'da\nrk'))
    write_file(data / 'bright' / 'bro\nken.png', b'\x89PNG\r\n\x1a\ntruncated')
    lines = script_error_lines(train.main, train_flags(data, logdir_copy, RESUMED), capsys)
    assert len(lines) == 2, lines
    assert lines[0].startswith('warning: skipped %s: ' % str(data / 'bright' / 'bro\nken.png')
                               .replace('\n', '\\n')), lines
    assert lines[1].startswith('error: %s has classes ' % str(data).replace('\n', '\\n')), lines

    logdir = tmp_path / 'log\ndir'
    shutil.copytree(str(logdir_copy), str(logdir))
    os.remove(str(logdir / (LATEST + '.index')))
    folder = tmp_path / 'sam\nples.png'
    folder.mkdir()
    lines = script_error_lines(generate.main, ['--checkpoint=%s' % logdir, '--out=%s' % folder],
                               capsys)
    escaped = str(logdir).replace('\n', '\\n')
    assert len(lines) == 2, lines
    assert lines[0].startswith('warning: checkpoint %s/%s cannot be read' % (escaped, LATEST))
    assert lines[1].startswith('error: %s is a folder' % str(folder).replace('\n', '\\n'))


# ------------------------------------------------------------------- read-only folders


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


def test_a_read_only_logdir_is_one_line_and_nothing_trained(data_dir, tiny_params,
                                                           read_only_folder, capsys):
    capsys.readouterr()
    message = error_of(train, train_flags(data_dir, read_only_folder / 'run', 2,
                                          '--num_samples=0', params=tiny_params))
    assert str(read_only_folder / 'run') in message and 'another logdir' in message, message
    assert '\n' not in message
    assert 'training from step' not in capsys.readouterr().out
    assert os.listdir(str(read_only_folder)) == []


def test_generate_refuses_an_unwritable_output_before_generating(trained, read_only_folder,
                                                                  tmp_path, capsys):
    (tmp_path / 'folder.png').mkdir()
    for flag, message in (('--out=%s' % (tmp_path / 'folder.png'), 'is a folder'),
                          ('--out=%s' % (read_only_folder / 'x.png'), 'cannot be written'),
                          ('--out=%s' % (read_only_folder / 'new' / 'x.png'),
                           'cannot be written'),
                          ('--out_dir=%s' % (read_only_folder / 'images'),
                           'cannot be written')):
        capsys.readouterr()
        error = error_of(generate, ['--checkpoint=%s' % trained.logdir, flag, '--num_images=1'])
        assert message in error and flag.split('=', 1)[1] in error, error
        assert 'generating' not in capsys.readouterr().out
    assert os.listdir(str(read_only_folder)) == []
    assert os.listdir(str(tmp_path / 'folder.png')) == []


# ------------------------------------------------------------------- kill -9, a full disk


def test_kill_9_a_full_disk_and_a_half_written_save_never_lose_the_run(
        data_dir, tiny_params, trained, tmp_path, capsys):
    """A new run killed right after it saved a checkpoint (a second run refused while it
    trained), resumed on a full disk, then a save killed half-way (what it leaves, made by
    hand): each run starts from the newest complete checkpoint, and the last one completes
    and generates."""
    logdir = tmp_path / 'logdir'
    # A run.json left by a run killed before its first checkpoint: replaced with a warning.
    write_json(logdir / 'run.json', dict(stored_record(trained.logdir), classes=['x', 'y']))
    flags = train_flags(data_dir, logdir, 100000, '--num_samples=0', '--print_every=1000',
                        '--seed=3', params=tiny_params)

    # 1. kill -9 right after 'step 50: saved' (the next save is 50 steps later).
    first = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, 'train.py')] + flags + ['--checkpoint_every=50'],
        cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED='1'), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        lines = read_line_starting(first, 'training from step ')
        assert lines[-1] == 'training from step 0 to 100000, batch 4\n', lines
        message = error_of(train, train_flags(data_dir, logdir, 100000, params=tiny_params))
        assert message == ('%s is in use by another training run (PID %d): wait for it to end '
                           'or stop it, or train into another logdir' % (logdir, first.pid))
        read_line_starting(first, 'step 50: saved %s' % (logdir / 'model.ckpt-50'))
    finally:
        first.kill()
    _, errors_ = first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL, errors_
    assert errors_.splitlines() == ['warning: %s is the record of a run that saved no '
                                    'checkpoint; this run replaces it' % (logdir / 'run.json')]
    assert steps_in(logdir) == [50] and global_step(logdir / 'model.ckpt-50') == 50
    assert stored_record(logdir)['training']['seed'] == 3
    assert stored_record(logdir)['classes'] == ['bright', 'dark']

    # 2. Resumed on a disk too full for a checkpoint's data (a file-size limit): one line, the
    # newest checkpoint kept, nothing half-written left.
    limit = os.path.getsize(str(logdir / 'model.ckpt-50.data-00000-of-00001')) // 2
    kept = {path: open(path, 'rb').read() for path in files_of(logdir / 'model.ckpt-50')}
    result = run_script('train.py', *flags, '--checkpoint_every=1',
                        preexec_fn=limit_file_size(limit))
    assert 'resumed from %s\ntraining from step 50 to' % (logdir / 'model.ckpt-50') in (
        result.stdout), describe(result)
    line = assert_one_error_line(result, 'cannot save checkpoint 51', 'File too large',
                                 'newest good checkpoint: %s' % (logdir / 'model.ckpt-50'))
    assert 'free disk space' in line
    assert steps_in(logdir) == [50] and checkpoints.newest_readable_checkpoint(str(logdir)) == (
        str(logdir / 'model.ckpt-50'), [])
    assert {path: open(path, 'rb').read() for path in files_of(logdir / 'model.ckpt-50')} == kept
    assert not [name for name in os.listdir(str(logdir))
                if 'temp' in name or files.is_temporary(name)], os.listdir(str(logdir))

    # 3. A save of step 51 killed half-way, and an atomic write of run.json killed before
    # its rename, leave their temporaries: removed with a warning each.
    write_file(logdir / 'model.ckpt-51_temp' / 'part-00000-of-00001.data-00000-of-00001',
               b'half a checkpoint')
    temporary = '.run.json.tmp-%d-1f2e3d4c' % first.pid
    write_file(logdir / temporary, '{"params": {"dilat')
    write_file(logdir / 'samples' / '.samples-51.png.tmp-12-abcdef12', b'\x89PNG')
    result = run_main(train, train_flags(data_dir, logdir, 52, '--num_samples=0',
                                         params=tiny_params), capsys)
    assert sorted(result.stderr.splitlines()) == sorted(
        'warning: removed %s, left by an interrupted run' % name for name in (
            'model.ckpt-51_temp', temporary,
            os.path.join('samples', '.samples-51.png.tmp-12-abcdef12'))), result.stderr
    assert 'resumed from %s\ntraining from step 50 to 52' % (logdir / 'model.ckpt-50') in (
        result.stdout), result.stdout
    assert steps_in(logdir) == [52, 50] and global_step(logdir / 'model.ckpt-52') == 52
    assert not (logdir / 'model.ckpt-51_temp').exists() and not (logdir / temporary).exists()
    assert os.listdir(str(logdir / 'samples')) == []
    assert stored_record(logdir)['training']['seed'] == 3
    out = run_main(generate, ['--checkpoint=%s' % logdir, '--out=%s' % (tmp_path / 'one.png'),
                              '--num_images=1'], capsys).stdout
    assert 'from %s ' % (logdir / 'model.ckpt-52') in out, out
    assert png_pixels(tmp_path / 'one.png')[0].shape == (8, 8)
