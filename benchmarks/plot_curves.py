"""Draws training curves (bits/dim against training step) from TensorBoard event files.

Usage: python benchmarks/plot_curves.py --out=images/training_curve.png LABEL=LOGDIR
           [LABEL=LOGDIR ...] [--title=...]

Each LOGDIR is a training logdir written by train.py. Every events.out.tfevents* file in it
is read in name order (a resumed run has several; a step logged twice keeps its later value)
for the scalars train/bits_per_dim and validation/bits_per_dim. Per run, the validation curve
is a solid line with dots and the training curve a thin, lighter moving average of the same
hue. The y range follows the validation values, so the huge losses of the first steps do not
squash the plot; lines are clipped at its border. The figure is drawn with Pillow and numpy
only (no matplotlib), at twice its size and scaled down for anti-aliasing. The final
validation bits/dim of every run is printed.
"""
import argparse
import collections
import glob
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from wavenet import cli  # noqa: E402

TRAIN_TAG = 'train/bits_per_dim'
VALIDATION_TAG = 'validation/bits_per_dim'
EVENT_PATTERN = 'events.out.tfevents*'
SMOOTHING_WINDOW = 25
SIZE = (900, 560)
SUPERSAMPLE = 2
FONT_NAMES = ('DejaVuSans.ttf', '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf')
PALETTE = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
INK = (30, 30, 30)
GRID = (225, 225, 225)
FRAME = (120, 120, 120)
WHITE = (255, 255, 255)

Series = collections.namedtuple('Series', ['steps', 'values'])
Run = collections.namedtuple('Run', ['label', 'train', 'validation'])


def event_files(logdir):
    """Returns the sorted paths of the TensorBoard event files in `logdir`."""
    return sorted(glob.glob(os.path.join(logdir, EVENT_PATTERN)))


def read_scalars(tf, logdir, tags=(TRAIN_TAG, VALIDATION_TAG)):
    """Reads scalar summaries from every event file of `logdir`.

    Args:
        tf: the tensorflow.compat.v1 module.
        logdir: a folder holding events.out.tfevents* files.
        tags: the scalar tags to collect.

    Returns:
        {tag: Series(steps, values)} for every tag in `tags`, as float64 arrays sorted by
        step (empty when the tag was never written). A step written twice (a resumed run
        logs again the steps after its last checkpoint) keeps the value of the later file.

    Raises:
        cli.UsageError: `logdir` has no event files.
    """
    paths = event_files(logdir)
    if not paths:
        raise cli.UsageError('no %s files in %s' % (EVENT_PATTERN, logdir))
    by_tag = {tag: {} for tag in tags}
    for path in paths:
        try:
            for event in tf.train.summary_iterator(path):
                for value in event.summary.value:
                    if value.tag in by_tag:
                        by_tag[value.tag][event.step] = value.simple_value
        except tf.errors.DataLossError:
            pass  # the last record of a file that is still being written: keep what came before
    series = {}
    for tag, values in by_tag.items():
        steps = sorted(values)
        series[tag] = Series(np.array(steps, dtype=np.float64),
                             np.array([values[step] for step in steps], dtype=np.float64))
    return series


def collect_runs(tf, labelled_logdirs):
    """Reads the train and validation bits/dim of each (label, logdir) into a list of Runs."""
    runs = []
    for label, logdir in labelled_logdirs:
        scalars = read_scalars(tf, logdir)
        runs.append(Run(label, scalars[TRAIN_TAG], scalars[VALIDATION_TAG]))
    return runs


def moving_average(values, window=SMOOTHING_WINDOW):
    """Centred moving average of `values`; the window shrinks at both ends."""
    values = np.asarray(values, dtype=np.float64)
    window = max(1, min(window, len(values)))
    if window == 1:
        return values.copy()
    kernel = np.ones(window)
    totals = np.convolve(values, kernel, mode='same')
    counts = np.convolve(np.ones_like(values), kernel, mode='same')
    return totals / counts


def smoothed(series, window=SMOOTHING_WINDOW):
    """The series with its non-finite values dropped and the rest moving-averaged."""
    finite = np.isfinite(series.values)
    return Series(series.steps[finite], moving_average(series.values[finite], window))


def nice_ticks(low, high, count=6):
    """Round tick positions (1, 2, 2.5 or 5 times a power of ten apart) within [low, high].

    Returns:
        (ticks, spacing): a list of floats and the distance between neighbours.
    """
    span = high - low
    if span <= 0:
        return [low], 1.0
    rough = span / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(rough))
    spacing = next(power * factor for factor in (1, 2, 2.5, 5, 10)
                   if power * factor >= rough * (1 - 1e-9))
    first = math.ceil(low / spacing - 1e-9)
    last = math.floor(high / spacing + 1e-9)
    return [index * spacing for index in range(first, last + 1)], spacing


def format_tick(value, spacing):
    """Formats a tick label with just enough decimals to tell neighbouring ticks apart."""
    decimals = max(0, -int(math.floor(math.log10(spacing) + 1e-9)))
    scaled = spacing * 10 ** decimals
    if abs(scaled - round(scaled)) > 1e-6:  # e.g. a spacing of 0.25 needs 2 decimals
        decimals += 1
    return '%.*f' % (decimals, value)


def y_range(runs, upper_percentile=98, margin=0.06):
    """Chooses (low, high) of the bits/dim axis from the data.

    The bottom is the minimum over all drawn curves, the top the `upper_percentile` of the
    validation values (of the smoothed training values where no run has validation), so the
    early huge training losses do not squash the plot; both get a `margin` of the span.
    """
    curves = [smoothed(run.train).values for run in runs]
    validation = [run.validation.values[np.isfinite(run.validation.values)] for run in runs]
    everything = np.concatenate(curves + validation + [np.zeros(0)])
    if not everything.size:
        return 0.0, 1.0
    low = float(everything.min())
    top_values = np.concatenate(validation)
    if not top_values.size:
        top_values = everything
    high = max(float(np.percentile(top_values, upper_percentile)), low)
    span = high - low
    if span < 1e-6:
        span = max(abs(low) * 0.1, 0.1)
    return low - margin * span, high + margin * span


def x_range(runs, margin=0.02):
    """(low, high) of the step axis: from 0 (or the first step) to the last step of any run.

    The top gets a `margin` of the span, so the dot of the last validation value shows whole.
    """
    steps = np.concatenate([run.train.steps for run in runs] +
                           [run.validation.steps for run in runs] + [np.zeros(0)])
    if not steps.size:
        return 0.0, 1.0
    low, high = min(0.0, float(steps.min())), float(steps.max())
    if high <= low:
        return low, low + 1.0
    return low, high + margin * (high - low)


def lighter(colour, amount=0.5):
    """Mixes `colour` with white: amount 0 keeps it, 1 gives white."""
    return tuple(int(round(channel + (255 - channel) * amount)) for channel in colour)


def load_font(size):
    """DejaVuSans at `size` pixels when available, else Pillow's default font at that size."""
    for name in FONT_NAMES:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def text_size(draw, text, font):
    """(width, height) of `text` drawn in `font`."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


class Axes:
    """Maps data coordinates (step, bits/dim) to pixels of the plot area of the canvas."""

    def __init__(self, box, xlim, ylim):
        """box: (left, top, right, bottom) in pixels; xlim, ylim: (low, high) in data units."""
        self.box, self.xlim, self.ylim = box, xlim, ylim

    def x(self, value):
        """Pixel column of step `value`."""
        left, _, right, _ = self.box
        return left + (value - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * (right - left)

    def y(self, value):
        """Pixel row of bits/dim `value`."""
        _, top, _, bottom = self.box
        return bottom - (value - self.ylim[0]) / (self.ylim[1] - self.ylim[0]) * (bottom - top)

    def points(self, series):
        """Pixel (x, y) of every finite point of `series`, relative to the plot area."""
        finite = np.isfinite(series.values)
        left, top = self.box[:2]
        return [(self.x(step) - left, self.y(value) - top)
                for step, value in zip(series.steps[finite], series.values[finite])]


def draw_curves(canvas, axes, runs, scale):
    """Draws every run's curves into the plot area, clipped at its border."""
    left, top, right, bottom = axes.box
    layer = Image.new('RGBA', (right - left, bottom - top), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for index, run in enumerate(runs):
        colour = PALETTE[index % len(PALETTE)]
        train = axes.points(smoothed(run.train))
        if len(train) > 1:
            draw.line(train, fill=lighter(colour, 0.45), width=int(1.5 * scale), joint='curve')
    for index, run in enumerate(runs):  # validation above every training curve
        colour = PALETTE[index % len(PALETTE)]
        validation = axes.points(run.validation)
        if len(validation) > 1:
            draw.line(validation, fill=colour, width=int(2.5 * scale), joint='curve')
        radius = 3.5 * scale
        for x, y in validation:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour,
                         outline=WHITE, width=max(1, int(scale)))
    canvas.paste(layer, (left, top), layer)


def draw_axes(draw, axes, fonts, scale):
    """Draws the grid, the frame, the ticks with their numbers and the axis labels."""
    left, top, right, bottom = axes.box
    tick = 5 * scale
    xticks, xspacing = nice_ticks(*axes.xlim, count=8)
    yticks, yspacing = nice_ticks(*axes.ylim, count=7)
    for value in xticks:
        x = axes.x(value)
        draw.line([(x, top), (x, bottom)], fill=GRID, width=scale)
        draw.line([(x, bottom), (x, bottom + tick)], fill=FRAME, width=scale)
        label = format_tick(value, xspacing)
        width, _ = text_size(draw, label, fonts['tick'])
        draw.text((x - width / 2, bottom + tick + 4 * scale), label, fill=INK, font=fonts['tick'])
    for value in yticks:
        y = axes.y(value)
        draw.line([(left, y), (right, y)], fill=GRID, width=scale)
        draw.line([(left - tick, y), (left, y)], fill=FRAME, width=scale)
        label = format_tick(value, yspacing)
        width, _ = text_size(draw, label, fonts['tick'])
        draw.text((left - tick - 5 * scale - width, y), label, fill=INK, font=fonts['tick'],
                  anchor='lm')
    draw.rectangle(axes.box, outline=FRAME, width=scale)
    label = 'training step'
    width, _ = text_size(draw, label, fonts['label'])
    draw.text(((left + right) / 2 - width / 2, bottom + 30 * scale), label, fill=INK,
              font=fonts['label'])
    draw_vertical_text(draw, 'bits/dim', (left - 62 * scale, (top + bottom) / 2), fonts['label'])


def draw_vertical_text(draw, text, centre, font):
    """Draws `text` rotated 90 degrees counter-clockwise, centred at `centre`."""
    width, height = text_size(draw, text, font)
    layer = Image.new('L', (width + 4, 2 * height + 4), 0)
    ImageDraw.Draw(layer).text((2, 2), text, fill=255, font=font)
    layer = layer.rotate(90, expand=True)
    x, y = int(centre[0] - layer.width / 2), int(centre[1] - layer.height / 2)
    draw.bitmap((x, y), layer, fill=INK)


def curve_pixels(axes, series, spacing):
    """Pixels along the polyline of `series`, about `spacing` pixels apart, in canvas
    coordinates: [points, 2]. A curve's count is thus proportional to its drawn length."""
    points = np.array(axes.points(series), dtype=float).reshape(-1, 2) + axes.box[:2]
    pixels = [points[-1:]]
    for start, end in zip(points[:-1], points[1:]):
        count = max(1, int(np.ceil(np.hypot(*(end - start)) / spacing)))
        fractions = np.arange(count)[:, None] / count
        pixels.append(start + fractions * (end - start))
    return np.concatenate(pixels)


def legend_corner(axes, runs, size, margin, validation_weight=10):
    """(left, top) of a `size` (width, height) legend in the corner of the plot area that hides
    the least curve length, validation counted `validation_weight` times; ties go to the top
    right, then the top left, the bottom right and the bottom left."""
    width, height = size
    left, top, right, bottom = axes.box
    corners = [(right - margin - width, top + margin), (left + margin, top + margin),
               (right - margin - width, bottom - margin - height),
               (left + margin, bottom - margin - height)]
    weighted = []
    for run in runs:
        weighted.append((curve_pixels(axes, smoothed(run.train), spacing=2.0), 1))
        weighted.append((curve_pixels(axes, run.validation, spacing=2.0), validation_weight))

    def hidden(corner):
        x, y = corner
        return sum(weight * int(np.sum((pixels[:, 0] >= x) & (pixels[:, 0] <= x + width) &
                                       (pixels[:, 1] >= y) & (pixels[:, 1] <= y + height)))
                   for pixels, weight in weighted)
    return min(corners, key=hidden)


def draw_legend(draw, axes, runs, font, scale):
    """Draws a boxed legend (label + validation/train per run) in the plot corner where it hides
    the least of the curves."""
    entries = []
    for index, run in enumerate(runs):
        colour = PALETTE[index % len(PALETTE)]
        if len(run.validation.steps):
            entries.append(('%s validation' % run.label, colour, 2.5, True))
        if len(run.train.steps):
            entries.append(('%s train' % run.label, lighter(colour, 0.45), 1.5, False))
    if not entries:
        return
    sample, gap, pad = 28 * scale, 8 * scale, 8 * scale
    line_height = max(text_size(draw, label, font)[1] for label, *_ in entries) + 8 * scale
    text_width = max(text_size(draw, label, font)[0] for label, *_ in entries)
    width = pad * 2 + sample + gap + text_width
    height = pad * 2 + line_height * len(entries)
    left, top = legend_corner(axes, runs, (width, height), margin=10 * scale)
    right = left + width
    draw.rectangle((left, top, right, top + height), fill=WHITE, outline=(200, 200, 200),
                   width=scale)
    for row, (label, colour, line_width, marker) in enumerate(entries):
        y = top + pad + line_height * (row + 0.5)
        draw.line([(left + pad, y), (left + pad + sample, y)], fill=colour,
                  width=int(line_width * scale))
        if marker:
            x, radius = left + pad + sample / 2, 3.5 * scale
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour,
                         outline=WHITE, width=max(1, int(scale)))
        draw.text((left + pad + sample + gap, y), label, fill=INK, font=font, anchor='lm')


def render(runs, title, size=SIZE, supersample=SUPERSAMPLE):
    """Draws the bits/dim curves of `runs` and returns a `size` RGB PIL image."""
    scale = supersample
    width, height = size[0] * scale, size[1] * scale
    canvas = Image.new('RGB', (width, height), WHITE)
    draw = ImageDraw.Draw(canvas)
    fonts = {'title': load_font(17 * scale), 'label': load_font(14 * scale),
             'tick': load_font(12 * scale), 'legend': load_font(12 * scale)}
    box = (84 * scale, 46 * scale, width - 24 * scale, height - 62 * scale)
    axes = Axes(box, x_range(runs), y_range(runs))
    draw_axes(draw, axes, fonts, scale)
    draw_curves(canvas, axes, runs, scale)
    draw = ImageDraw.Draw(canvas)
    draw_legend(draw, axes, runs, fonts['legend'], scale)
    title_width, _ = text_size(draw, title, fonts['title'])
    draw.text(((box[0] + box[2]) / 2 - title_width / 2, 14 * scale), title, fill=INK,
              font=fonts['title'])
    return canvas.resize(size, Image.LANCZOS) if scale > 1 else canvas


def plot_curves(runs, out_path, title='Training curves', size=SIZE):
    """Renders `runs` into a PNG at `out_path` (creating its folder) and returns the image."""
    image = render(runs, title, size)
    folder = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(folder, exist_ok=True)
    image.save(out_path, optimize=True)
    return image


def final_validation(run):
    """(step, bits/dim) of the last finite validation value of `run`, or None."""
    finite = np.flatnonzero(np.isfinite(run.validation.values))
    if not finite.size:
        return None
    return int(run.validation.steps[finite[-1]]), float(run.validation.values[finite[-1]])


def labelled_logdir(text):
    """argparse type: LABEL=LOGDIR -> (label, logdir)."""
    label, separator, logdir = text.partition('=')
    if not separator or not label or not logdir:
        raise argparse.ArgumentTypeError('expected LABEL=LOGDIR, got %r' % text)
    return label, logdir


def parse_arguments(argv=None):
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        description='Plots train and validation bits/dim against training step for one or '
                    'more training logdirs.')
    parser.add_argument('runs', nargs='+', type=labelled_logdir, metavar='LABEL=LOGDIR',
                        help='a curve label and the training logdir to read its events from')
    parser.add_argument('--out', default=os.path.join(ROOT, 'images', 'training_curve.png'),
                        help='the PNG to write (default: images/training_curve.png)')
    parser.add_argument('--title', default='Training curves', help='the title of the figure')
    return parser.parse_args(argv)


def main(argv=None):
    """Reads the logdirs, writes the PNG and prints each run's final validation bits/dim."""
    args = parse_arguments(argv)
    tf = cli.import_tensorflow(verbose=False)
    runs = collect_runs(tf, args.runs)
    plot_curves(runs, args.out, args.title)
    for run in runs:
        final = final_validation(run)
        if final is None:
            print('%s: no validation bits/dim' % run.label)
        else:
            print('%s: final validation bits/dim %.4f at step %d' % (run.label, final[1],
                                                                      final[0]))
    print('wrote %s' % args.out, file=sys.stderr)


if __name__ == '__main__':
    cli.run_main(main)
