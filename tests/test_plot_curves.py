"""benchmarks/plot_curves.py: reading scalars from event files and drawing the curve PNG."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

from benchmarks import plot_curves
from wavenet import cli

TRAIN = plot_curves.TRAIN_TAG
VALIDATION = plot_curves.VALIDATION_TAG


def write_events(logdir, scalars, suffix=''):
    """Writes (tag, step, value) scalar summaries into a new event file in `logdir`."""
    writer = tf.summary.FileWriter(str(logdir), filename_suffix=suffix)
    for tag, step, value in scalars:
        writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag=tag, simple_value=value)]),
                           step)
    writer.close()


def expected(pairs):
    """(steps, float32-rounded values) arrays of (step, value) pairs, as the events hold them."""
    steps, values = zip(*pairs)
    return np.array(steps, dtype=np.float64), np.array(values, dtype=np.float32)


@pytest.fixture
def logdirs(tmp_path):
    """Two fake logdirs: `a` with 60 noisy training points and 4 validation points, written
    in two event files (a resumed run that logs steps 200 and 220 again), and `b`, shorter."""
    rng = np.random.RandomState(0)
    train_a = [(step, 6.0 / (1 + step / 50) + 1.0 + 0.05 * rng.randn())
               for step in range(20, 1201, 20)]
    validation_a = [(300, 2.5), (600, 1.75), (900, 1.5), (1200, 1.375)]
    train_b = [(step, 5.0 / (1 + step / 40) + 0.9 + 0.05 * rng.randn())
               for step in range(20, 601, 20)]
    validation_b = [(300, 2.25), (600, 1.625)]
    a, b = tmp_path / 'a', tmp_path / 'b'
    first = [pair for pair in train_a if pair[0] <= 220] + [(200, 9.0), (220, 9.0)]
    write_events(a, [(TRAIN, step, value) for step, value in first] +
                 [(VALIDATION, 300, 7.0), ('train/loss', 20, 123.0)], suffix='.1')
    write_events(a, [(TRAIN, step, value) for step, value in train_a if step >= 200] +
                 [(VALIDATION, step, value) for step, value in validation_a], suffix='.2')
    write_events(b, [(TRAIN, step, value) for step, value in train_b] +
                 [(VALIDATION, step, value) for step, value in validation_b])
    return {'a': (a, train_a, validation_a), 'b': (b, train_b, validation_b)}


def test_collects_the_written_series_and_draws_them(logdirs, tmp_path):
    runs = plot_curves.collect_runs(tf, [(label, str(logdir))
                                         for label, (logdir, _, _) in logdirs.items()])
    assert [run.label for run in runs] == ['a', 'b']
    assert len(plot_curves.event_files(str(logdirs['a'][0]))) == 2
    for run, (_, train, validation) in zip(runs, logdirs.values()):
        for series, pairs in ((run.train, train), (run.validation, validation)):
            steps, values = expected(pairs)  # the later file wins for the repeated steps
            np.testing.assert_array_equal(series.steps, steps)
            np.testing.assert_array_equal(series.values, values)

    out = tmp_path / 'figures' / 'curve.png'
    plot_curves.plot_curves(runs, str(out), title='test curves')
    image = Image.open(out)
    assert image.format == 'PNG' and image.size == plot_curves.SIZE
    pixels = np.asarray(image.convert('RGB')).reshape(-1, 3).astype(int)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    assert len(colours[counts >= 20]) >= 8, 'expected a drawing, not a blank image'
    assert (pixels == 255).all(axis=1).mean() > 0.5, 'expected a white background'
    for colour in plot_curves.PALETTE[:2]:  # both runs' validation colours show
        assert (np.abs(pixels - colour).sum(axis=1) < 30).sum() > 50


def test_main_prints_the_final_validation_bits(logdirs, tmp_path, capsys):
    out = tmp_path / 'curve.png'
    plot_curves.main(['--out=%s' % out, 'A=%s' % logdirs['a'][0], 'B=%s' % logdirs['b'][0],
                      '--title=two runs'])
    lines = capsys.readouterr().out.splitlines()
    assert lines == ['A: final validation bits/dim 1.3750 at step 1200',
                     'B: final validation bits/dim 1.6250 at step 600']
    assert Image.open(out).size == plot_curves.SIZE


def test_a_run_without_validation_still_draws(tmp_path):
    write_events(tmp_path, [(TRAIN, step, 3.0 - step / 100) for step in range(1, 40)])
    runs = plot_curves.collect_runs(tf, [('only', str(tmp_path))])
    assert len(runs[0].validation.steps) == 0 and plot_curves.final_validation(runs[0]) is None
    image = plot_curves.plot_curves(runs, str(tmp_path / 'curve.png'), title='train only')
    assert image.size == plot_curves.SIZE


def test_a_logdir_without_events_is_a_usage_error(tmp_path):
    with pytest.raises(cli.UsageError, match='no events.out.tfevents'):
        plot_curves.read_scalars(tf, str(tmp_path))


def test_moving_average_and_ticks():
    np.testing.assert_allclose(plot_curves.moving_average([1, 2, 3, 4, 5], 3),
                               [1.5, 2, 3, 4, 4.5])
    np.testing.assert_array_equal(plot_curves.moving_average([7.0], 25), [7.0])
    ticks, spacing = plot_curves.nice_ticks(0.87, 1.12, count=6)
    assert spacing == pytest.approx(0.05) and np.allclose(ticks, [0.9, 0.95, 1.0, 1.05, 1.1])
    assert plot_curves.format_tick(1.0, 0.05) == '1.00'
    assert plot_curves.format_tick(2000, 500) == '2000'
    assert plot_curves.format_tick(0.75, 0.25) == '0.75'


def series(pairs):
    """A Series of (step, value) pairs."""
    steps, values = zip(*pairs)
    return plot_curves.Series(np.array(steps, dtype=float), np.array(values, dtype=float))


@pytest.mark.parametrize('validation_values, expected_corner', [
    ((0.0, 0.0), 'top right'),      # nothing up there: the first choice
    ((9.0, 9.0), 'top left'),       # validation along the top right: the next choice
    ((9.0, 0.0), 'top right'),      # validation falls steeply below the top right corner
])
def test_the_legend_goes_where_it_hides_the_least_curve(validation_values, expected_corner):
    axes = plot_curves.Axes((0, 0, 1000, 500), xlim=(0, 100), ylim=(0, 10))
    train = series([(step, 5.0) for step in range(0, 101)])  # through the middle, not corners
    validation = series([(60, validation_values[0]), (100, validation_values[1])])
    runs = [plot_curves.Run('a', train, validation)]
    corners = {'top right': (790, 10), 'top left': (10, 10), 'bottom right': (790, 390),
               'bottom left': (10, 390)}
    assert plot_curves.legend_corner(axes, runs, (200, 100), margin=10) == \
        corners[expected_corner]


def test_curve_pixels_follow_the_drawn_length():
    axes = plot_curves.Axes((5, 7, 105, 107), xlim=(0, 10), ylim=(0, 10))
    pixels = plot_curves.curve_pixels(axes, series([(0, 0), (10, 0), (10, 10)]), spacing=2.0)
    assert len(pixels) == 101  # two 100-pixel segments, a point every 2 pixels, and the end
    assert pixels.min(axis=0).tolist() == [5, 7] and pixels.max(axis=0).tolist() == [105, 107]
