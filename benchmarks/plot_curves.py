"""Plots training and validation bits/dim against step from the event files of training runs.

    python -m benchmarks.plot_curves [--out=PNG] [--title=TITLE] LABEL=LOGDIR [...]
"""
import collections
import glob
import os

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from wavenet import cli, errors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVENTS = 'events.out.tfevents*'
CURVES = ('train', 'validation')  # the folders of a logdir, each with its bits_per_dim
STYLES = {'train': dict(alpha=0.45, linewidth=1.2), 'validation': dict(marker='o', markersize=4,
                                                                      linewidth=2, zorder=3)}

Series = collections.namedtuple('Series', 'steps values')  # int64 and float32 arrays
Run = collections.namedtuple('Run', 'label train validation')


def read_run(tf, label, logdir):
    """The Run of `logdir`: bits_per_dim of its train/ and validation/ event files by step, a
    step logged twice (a resumed run) at its later value; errors.Error without events."""
    curves = {name: {} for name in CURVES}
    paths = [(name, path) for name in CURVES
             for path in sorted(glob.glob(os.path.join(logdir, name, EVENTS)))]
    if not paths:
        raise errors.Error('no %s files in %s/train or %s/validation' % (EVENTS, logdir, logdir))
    for name, path in paths:
        try:
            for event in tf.train.summary_iterator(path):
                for value in event.summary.value:
                    if value.tag == 'bits_per_dim' and np.isfinite(value.simple_value):
                        curves[name][event.step] = value.simple_value
        except tf.errors.DataLossError:  # a truncated last record: a file being written
            pass
    return Run(label, *(Series(np.array(sorted(curves[name]), np.int64), np.array(
        [value for _, value in sorted(curves[name].items())], np.float32)) for name in CURVES))


def moving_average(values, window=25):
    """Centred moving average of `values`; the window shrinks at both ends."""
    kernel = np.ones(max(1, min(window, len(values))))
    return np.convolve(values, kernel, 'same') / np.convolve(np.ones(len(values)), kernel, 'same')


def y_limits(train, validation, margin=0.06):
    """(bottom, top) of the bits/dim axis: the least value to the top validation value (else
    training's 98th percentile), cutting off the first, huge losses."""
    low = float(np.min(np.concatenate(train + validation)))
    high = float(np.max(np.concatenate(validation)) if validation
                 else np.percentile(np.concatenate(train), 98))
    span = max(high - low, 0.01)
    return low - margin * span, high + margin * span


def plot_curves(runs, out_path, title='Training curves', size=(900, 560), dpi=100):
    """Draws the Runs into a PNG of `size` pixels: training as a lighter moving average,
    validation as a line with dots, a colour per run. Returns {line label: points drawn}."""
    figure, axes = plt.subplots(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    drawn = {name: [] for name in CURVES}
    for index, run in enumerate(runs):
        for name, (steps, values) in zip(CURVES, run[1:]):
            if len(steps):
                drawn[name].append(moving_average(values) if name == 'train' else values)
                axes.plot(steps, drawn[name][-1], color='C%d' % (index % 10),
                          label='%s %s' % (run.label, name), **STYLES[name])
    if axes.lines:
        axes.set_ylim(*y_limits(drawn['train'], drawn['validation']))
        axes.legend(loc='best', fontsize='small')
    axes.set(xlabel='step', ylabel='bits/dim', title=title)
    axes.grid(True, color='0.9')
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    figure.savefig(out_path, dpi=dpi)
    plt.close(figure)
    return {line.get_label(): len(line.get_xdata()) for line in axes.lines}


def main(argv=None):
    """Writes the PNG and prints each run's last validation bits/dim."""
    parser = cli.ArgumentParser(prog='python -m benchmarks.plot_curves',
                                description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='+', metavar='LABEL=LOGDIR',
                        help='a curve label and the training logdir to read its events from')
    parser.add_argument('--out', default=os.path.join(ROOT, 'images', 'training_curve.png'),
                        help='the PNG to write')
    parser.add_argument('--title', default='Training curves', help='the title of the figure')
    args = parser.parse_args(argv)
    labelled = [text.partition('=') for text in args.runs]
    if not all(label and logdir for label, _, logdir in labelled):
        parser.error('expected LABEL=LOGDIR, got %s' % ' '.join(args.runs))
    tf = cli.import_tensorflow(verbose=False)
    runs = [read_run(tf, label, logdir) for label, _, logdir in labelled]
    plot_curves(runs, args.out, args.title)
    for label, _, (steps, values) in runs:
        print('%s: final validation bits/dim %.4f at step %d' % (label, values[-1], steps[-1])
              if len(steps) else '%s: no validation bits/dim' % label)
    print('wrote %s' % args.out)


if __name__ == '__main__':
    cli.run_main(main)
