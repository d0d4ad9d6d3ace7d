"""benchmarks/plot_curves.py: reading bits/dim curves from event files and drawing the PNG."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

from benchmarks import plot_curves

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# matplotlib's first two cycle colours (validation lines) and the same at alpha 0.45 on white
# (training lines).
VALIDATION_COLOURS = ((31, 119, 180), (255, 127, 14))
TRAIN_COLOURS = ((154, 194, 221), (255, 197, 147))


def write_events(logdir, scalars, suffix=''):
    """Writes (tag, step, value) scalar summaries into a new event file in `logdir`."""
    writer = tf.summary.FileWriter(str(logdir), filename_suffix=suffix)
    for tag, step, value in scalars:
        writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag=tag, simple_value=value)]),
                           step)
    writer.close()


def tagged(tag, pairs):
    """(tag, step, value) for each (step, value) of `pairs`."""
    return [(tag, step, value) for step, value in pairs]


def assert_series(series, pairs):
    """`series` holds exactly the steps of `pairs` (int64) and their values as float32."""
    steps, values = zip(*pairs)
    assert series.steps.dtype == np.int64 and series.values.dtype == np.float32
    np.testing.assert_array_equal(series.steps, np.array(steps, dtype=np.int64))
    np.testing.assert_array_equal(series.values, np.array(values, dtype=np.float32))


def make_curves(seed, last_step, scale):
    """(train, validation) lists of (step, bits/dim): noisy decay every 20 steps, validation
    every 300; values that float32 cannot hold exactly, so that a float64 reader would fail."""
    rng = np.random.RandomState(seed)
    train = [(step, scale / (1 + step / 50) + 1.0 + 0.05 * rng.randn())
             for step in range(20, last_step + 1, 20)]
    validation = [(step, 1.0 + scale / (1 + step / 300) + 0.01 * rng.randn())
                  for step in range(300, last_step + 1, 300)]
    return train, validation


@pytest.fixture
def new_logdir(tmp_path):
    """A logdir of the new layout (train/ and validation/), resumed at step 200: the first
    train event file has other values at steps 200 and 220, which the second file logs again.
    Returns (logdir, train pairs, validation pairs)."""
    train, validation = make_curves(0, 1200, 6.0)
    logdir = tmp_path / 'new'
    first = [pair for pair in train if pair[0] < 200] + [(200, 9.0), (220, 9.0)]
    write_events(logdir / 'train', tagged('bits_per_dim', first) + [('loss', 20, 123.0),
                 ('learning_rate', 40, 0.001)], suffix='.1')
    write_events(logdir / 'train', tagged('bits_per_dim', [p for p in train if p[0] >= 200]) +
                 [('bits_per_dim', 1240, float('nan'))], suffix='.2')
    write_events(logdir / 'validation', tagged('bits_per_dim', validation))
    return logdir, train, validation


@pytest.fixture
def old_logdir(tmp_path):
    """A logdir of the earlier layout (every event in LOGDIR, tags train/... and validation/...),
    resumed in a second event file that logs steps 100 to 120 and validation at 300 again."""
    train, validation = make_curves(1, 600, 5.0)
    logdir = tmp_path / 'old'
    first = [pair for pair in train if pair[0] < 100] + [(100, 8.0), (120, 8.0)]
    write_events(logdir, tagged('train/bits_per_dim', first) + [('train/loss', 20, 99.0),
                 ('validation/bits_per_dim', 300, 7.0)], suffix='.1')
    write_events(logdir, tagged('train/bits_per_dim', [p for p in train if p[0] >= 100]) +
                 tagged('validation/bits_per_dim', validation), suffix='.2')
    return logdir, train, validation


def test_reads_the_new_layout_and_the_later_value_of_a_repeated_step(new_logdir):
    logdir, train, validation = new_logdir
    run = plot_curves.read_run(tf, 'new', str(logdir))
    assert run.label == 'new'
    assert_series(run.train, train)  # not the loss, the learning rate, 9.0 or NaN
    assert_series(run.validation, validation)


def test_reads_the_old_layout(old_logdir):
    logdir, train, validation = old_logdir
    run = plot_curves.read_run(tf, 'old', str(logdir))
    assert_series(run.train, train)
    assert_series(run.validation, validation)


def test_the_new_layout_wins_over_the_old_one_in_a_logdir_holding_both(tmp_path):
    write_events(tmp_path, [('train/bits_per_dim', 100, 3.0), ('train/bits_per_dim', 200, 2.0),
                            ('validation/bits_per_dim', 200, 2.5)])
    write_events(tmp_path / 'train', [('bits_per_dim', 200, 1.75), ('bits_per_dim', 300, 1.5)])
    write_events(tmp_path / 'validation', [('bits_per_dim', 300, 1.625)])
    run = plot_curves.read_run(tf, 'both', str(tmp_path))
    assert_series(run.train, [(100, 3.0), (200, 1.75), (300, 1.5)])
    assert_series(run.validation, [(200, 2.5), (300, 1.625)])


def test_a_truncated_last_record_keeps_the_records_before_it(tmp_path):
    write_events(tmp_path / 'train', [('bits_per_dim', step, 1.0 / step) for step in (1, 2, 3)])
    [path] = (tmp_path / 'train').iterdir()
    data = path.read_bytes()
    path.write_bytes(data[:-5])  # as a file still being written
    run = plot_curves.read_run(tf, 'cut', str(tmp_path))
    assert_series(run.train, [(1, 1.0), (2, 0.5)])


def test_a_logdir_without_event_files_is_an_error(tmp_path, capsys):
    (tmp_path / 'train').mkdir()
    with pytest.raises(FileNotFoundError, match='no events.out.tfevents'):
        plot_curves.read_run(tf, 'empty', str(tmp_path))
    out = tmp_path / 'curve.png'
    assert plot_curves.main(['--out=%s' % out, 'empty=%s' % tmp_path]) == 2
    assert 'error: no events.out.tfevents' in capsys.readouterr().err
    assert not out.exists()


def test_an_argument_without_label_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        plot_curves.main(['/some/logdir'])
    assert exit_info.value.code == 2
    assert 'expected LABEL=LOGDIR' in capsys.readouterr().err


def read_png(path, size):
    """The RGB pixels of the PNG at `path`, [pixels, 3] ints, checking it is a whole PNG of
    `size` that is not blank: mostly white, with some hundred other colours."""
    with open(path, 'rb') as stream:
        assert stream.read(8) == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()  # checks the chunks and their checksums
    with Image.open(path) as image:
        assert image.format == 'PNG' and image.size == size
        pixels = np.asarray(image.convert('RGB')).reshape(-1, 3).astype(int)
    assert (pixels == 255).all(axis=1).mean() > 0.5, 'expected a white background'
    assert len(np.unique(pixels, axis=0)) > 100, 'expected a drawing, not a blank image'
    return pixels


def count_near(pixels, colour, tolerance=24):
    """How many of `pixels` are within `tolerance` (summed over channels) of `colour`."""
    return int((np.abs(pixels - colour).sum(axis=1) <= tolerance).sum())


def test_draws_each_run_in_its_colour_at_the_requested_size(new_logdir, old_logdir, tmp_path):
    runs = [plot_curves.read_run(tf, label, str(logdir))
            for label, (logdir, _, _) in (('new', new_logdir), ('old', old_logdir))]
    out = tmp_path / 'figures' / 'curve.png'  # a folder that does not exist yet
    plot_curves.plot_curves(runs, str(out), title='test curves', size=(640, 400))
    pixels = read_png(out, (640, 400))
    for colour in VALIDATION_COLOURS + TRAIN_COLOURS:
        assert count_near(pixels, colour) > 100, colour


def test_main_prints_the_final_validation_bits_and_writes_the_png(new_logdir, old_logdir,
                                                                  tmp_path, capsys):
    out = tmp_path / 'curve.png'
    assert plot_curves.main(['--out=%s' % out, 'A=%s' % new_logdir[0],
                             'B, old=%s' % old_logdir[0], '--title=two runs']) == 0
    printed = capsys.readouterr()
    (step_a, value_a), (step_b, value_b) = new_logdir[2][-1], old_logdir[2][-1]
    assert printed.out.splitlines() == [
        'A: final validation bits/dim %.4f at step %d' % (value_a, step_a),
        'B, old: final validation bits/dim %.4f at step %d' % (value_b, step_b)]
    assert step_a == 1200 and step_b == 600
    assert 'wrote %s' % out in printed.err
    read_png(out, plot_curves.SIZE)


def test_a_run_without_validation_still_draws(tmp_path, capsys):
    write_events(tmp_path / 'only' / 'train',
                 [('bits_per_dim', step, 3.0 - step / 100) for step in range(1, 40)])
    out = tmp_path / 'curve.png'
    assert plot_curves.main(['--out=%s' % out, 'only=%s' % (tmp_path / 'only')]) == 0
    assert capsys.readouterr().out == 'only: no validation bits/dim\n'
    pixels = read_png(out, plot_curves.SIZE)
    assert count_near(pixels, TRAIN_COLOURS[0]) > 100


def test_the_y_axis_follows_the_validation_not_the_first_training_losses():
    train = [np.array([9.0, 4.0, 1.0]), np.array([8.0, 1.5])]
    low, high = plot_curves.y_limits(train, [np.array([2.0, 1.5]), np.array([1.75])])
    assert (low, high) == pytest.approx((1.0 - 0.06, 2.0 + 0.06))
    low, high = plot_curves.y_limits(train, [])  # the 98th percentile of the training values
    top = np.percentile([9.0, 4.0, 1.0, 8.0, 1.5], 98)
    assert (low, high) == pytest.approx((1.0 - 0.06 * (top - 1.0), top + 0.06 * (top - 1.0)))


def test_moving_average():
    np.testing.assert_allclose(plot_curves.moving_average([1, 2, 3, 4, 5], 3),
                               [1.5, 2, 3, 4, 4.5])
    np.testing.assert_array_equal(plot_curves.moving_average([7.0], 25), [7.0])


def test_the_script_runs_from_the_command_line(new_logdir, tmp_path):
    out = tmp_path / 'cli.png'
    script = os.path.join(os.path.dirname(plot_curves.__file__), 'plot_curves.py')
    result = subprocess.run([sys.executable, script, '--out=%s' % out, 'run=%s' % new_logdir[0]],
                            capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, TF_ENABLE_ONEDNN_OPTS='1'))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('run: final validation bits/dim ')
    assert result.stderr == 'wrote %s\n' % out  # TensorFlow's start-up and deprecation logs hidden
    read_png(out, plot_curves.SIZE)
