"""Plots training and validation bits/dim against step from TensorBoard event files.

Usage: python benchmarks/plot_curves.py [--out=PNG] [--title=TITLE] LABEL=LOGDIR [...]

Reads the scalar bits_per_dim of LOGDIR/train and LOGDIR/validation (after train/bits_per_dim
and validation/bits_per_dim in LOGDIR, as older runs wrote them) from their event files, in name
order: a step logged twice (a resumed run) keeps its later value.
"""
import argparse
import collections
import glob
import os
import sys

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVENT_PATTERN = 'events.out.tfevents*'
# {folder inside the logdir: {tag: curve}}, the earlier layout first so that the new one wins.
LAYOUT = {'': {'train/bits_per_dim': 'train', 'validation/bits_per_dim': 'validation'},
          'train': {'bits_per_dim': 'train'}, 'validation': {'bits_per_dim': 'validation'}}
CURVES = ('train', 'validation')
STYLES = {'train': dict(alpha=0.45, linewidth=1.2),
          'validation': dict(marker='o', markersize=4, linewidth=2, zorder=3)}
SIZE, DPI = (900, 560), 100  # the PNG's pixels, and pixels per inch

Series = collections.namedtuple('Series', ['steps', 'values'])  # int64 and float32 arrays
Run = collections.namedtuple('Run', ['label', 'train', 'validation'])


def scalars(tf, path, tags):
    """Yields (tag, step, value) of the finite scalars of event file `path` whose tag is in
    `tags`. A truncated last record (a file still being written) ends the file quietly."""
    try:
        for event in tf.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag in tags and np.isfinite(value.simple_value):
                    yield value.tag, event.step, value.simple_value
    except tf.errors.DataLossError:
        return


def read_run(tf, label, logdir):
    """The Run of `logdir` in either event layout, its Series sorted by step. Raises
    FileNotFoundError when neither LOGDIR nor its train/ and validation/ hold event files."""
    curves = {name: {} for name in CURVES}
    paths = {folder: sorted(glob.glob(os.path.join(logdir, folder, EVENT_PATTERN)))
             for folder in LAYOUT}
    if not any(paths.values()):
        raise FileNotFoundError('no %s files in %s or its train/ and validation/ folders'
                                % (EVENT_PATTERN, logdir))
    for folder, tags in LAYOUT.items():
        for path in paths[folder]:
            for tag, step, value in scalars(tf, path, tags):
                curves[tags[tag]][step] = value
    return Run(label, *(Series(np.array(sorted(curves[name]), dtype=np.int64),
                               np.array([value for _, value in sorted(curves[name].items())],
                                        dtype=np.float32)) for name in CURVES))


def moving_average(values, window=25):
    """Centred moving average of `values`; the window shrinks at both ends."""
    values = np.asarray(values, dtype=np.float64)
    kernel = np.ones(max(1, min(window, len(values))))
    return (np.convolve(values, kernel, mode='same') /
            np.convolve(np.ones_like(values), kernel, mode='same'))


def y_limits(train, validation, margin=0.06):
    """(bottom, top) of the bits/dim axis for lists of drawn curves: the least value to the top
    validation value (else the 98th percentile of training), above the huge first losses."""
    low = float(np.min(np.concatenate(train + validation)))
    high = float(np.max(np.concatenate(validation)) if validation else
                 np.percentile(np.concatenate(train), 98))
    span = max(high - low, 0.01)
    return low - margin * span, high + margin * span


def plot_curves(runs, out_path, title='Training curves', size=SIZE, dpi=DPI):
    """Draws the bits/dim of `runs` against step into a PNG of `size` pixels at `out_path`:
    per run, training as a thin, lighter moving average, validation as a line with dots."""
    figure, axes = plt.subplots(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    drawn = {name: [] for name in CURVES}
    for index, run in enumerate(runs):
        for name, series in zip(CURVES, (run.train, run.validation)):
            if len(series.steps):
                values = moving_average(series.values) if name == 'train' else series.values
                drawn[name].append(values)
                axes.plot(series.steps, values, color='C%d' % (index % 10),
                          label='%s %s' % (run.label, name), **STYLES[name])
    if drawn['train'] or drawn['validation']:
        axes.set_ylim(*y_limits(drawn['train'], drawn['validation']))
        axes.legend(loc='best', fontsize='small')
    axes.set(xlabel='step', ylabel='bits/dim', title=title)
    axes.grid(True, color='0.9')
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    figure.savefig(out_path, dpi=dpi)
    plt.close(figure)


def labelled_logdir(text):
    """argparse type: LABEL=LOGDIR -> (label, logdir)."""
    label, separator, logdir = text.partition('=')
    if not separator or not label or not logdir:
        raise argparse.ArgumentTypeError('expected LABEL=LOGDIR, got %r' % text)
    return label, logdir


def parse_arguments(argv=None):
    """Parses the command line."""
    parser = argparse.ArgumentParser(description='Plots train and validation bits/dim against '
                                     'training step for one or more training logdirs.')
    parser.add_argument('runs', nargs='+', type=labelled_logdir, metavar='LABEL=LOGDIR',
                        help='a curve label and the training logdir to read its events from')
    parser.add_argument('--out', default=os.path.join(ROOT, 'images', 'training_curve.png'),
                        help='the PNG to write (default: images/training_curve.png)')
    parser.add_argument('--title', default='Training curves', help='the title of the figure')
    return parser.parse_args(argv)


def main(argv=None):
    """Writes the PNG, prints each run's final validation bits/dim; returns the exit status."""
    args = parse_arguments(argv)
    sys.path.insert(0, ROOT)
    from wavenet import cli
    tf = cli.import_tensorflow(verbose=False)  # not the deprecation of tf_record_iterator
    try:
        runs = [read_run(tf, label, logdir) for label, logdir in args.runs]
    except FileNotFoundError as error:
        print('error: %s' % error, file=sys.stderr)
        return 2
    plot_curves(runs, args.out, args.title)
    for label, _, (steps, values) in runs:
        print('%s: final validation bits/dim %.4f at step %d' % (label, values[-1], steps[-1])
              if len(steps) else '%s: no validation bits/dim' % label)
    print('wrote %s' % args.out, file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
