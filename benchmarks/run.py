"""Benchmarks training and generation of 28x28 images; prints and writes a markdown report.

Usage: python benchmarks/run.py [--configs default,anchor] [--quick] [--out=benchmarks/results.md]

Each (measurement, config, batch size) runs in its own subprocess (this script with the
hidden --measure flag, which prints one JSON line), so the peak RSS it reports belongs to
that batch size alone. The report goes to stdout and to --out; the raw numbers go to a
JSON file next to it. See benchmarks/README.md for what each number means.
"""
import argparse
import dataclasses
import datetime
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from benchmarks.flops import TRAINING_MULTIPLIER, flops_per_pixel  # noqa: E402
from benchmarks.peak import MATMUL_SIZE, matmul_gflops  # noqa: E402
from wavenet import cli, hardware  # noqa: E402
from wavenet.params import load_params  # noqa: E402

# The stores of fast generation (wavenet.fast_generation.STATES, named here so that the
# parent process, which only plans and reports, does not import TensorFlow); the first is
# the default.
GENERATION_STATES = ('ring', 'queues')
MIN_IMAGES_PER_LANE = 16  # wavenet.MIN_IMAGES_PER_LANE, for the report
IMAGE_SIZE = 28
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE
CONFIGS = types.MappingProxyType({
    'default': os.path.join(ROOT, 'wavenet_params.json'),
    'anchor': os.path.join(ROOT, 'benchmarks', 'params', 'anchor.json'),
})
# Training variants, at the largest training batch: compiled with XLA, and bf16 mixed
# precision (only on CPUs with bf16 units).
TRAINING_VARIANTS = {'train': 'fp32', 'train_xla': 'fp32 + XLA', 'train_bf16': 'bf16'}
# Fast generation is measured once per generation state; the first state is the default.
KINDS = tuple(TRAINING_VARIANTS) + GENERATION_STATES + ('naive', 'prime')
DEFAULT_STATE = GENERATION_STATES[0]
NUM_CLASSES = 10  # random labels for class-conditional params (gc_channels > 0), as the digits
LEARNING_RATE = 1e-3
SEED = 0


@dataclasses.dataclass(frozen=True)
class Settings:
    """What to measure and how often.

    Attributes:
        train_batches: batch sizes of the training measurements.
        train_warmup_steps: untimed training steps before the timed ones.
        train_timed_steps: timed training steps; their median is reported.
        fast_batches: batch sizes of fast generation.
        fast_repeats: timed full images after one warm-up image; their median is reported.
        naive_batches: batch sizes of naive generation.
        naive_pixels: pixels timed per naive measurement, extrapolated to a whole image.
        prime_batches: batch sizes of the priming measurement (image completion).
        prime_rows: seed rows primed in that measurement.
        processes: processes each training and fast-generation measurement runs in, one
            round of every measurement after another; the process with the median result is
            reported (naive generation and priming run in one process each).
    """
    train_batches: tuple = (1, 8, 32)
    train_warmup_steps: int = 3
    train_timed_steps: int = 10
    fast_batches: tuple = (1, 16, 64, 256)
    fast_repeats: int = 3
    naive_batches: tuple = (1, 16)
    naive_pixels: int = 4 * IMAGE_SIZE
    prime_batches: tuple = (16,)
    prime_rows: int = IMAGE_SIZE // 2
    processes: int = 3


QUICK = Settings(train_batches=(1, 8), train_warmup_steps=1, train_timed_steps=1,
                 fast_batches=(1, 8), fast_repeats=1, naive_batches=(1, 8),
                 naive_pixels=IMAGE_SIZE, prime_batches=(2,), prime_rows=2, processes=1)


def make_settings(quick, naive_pixels=None):
    """Returns the full or quick Settings, with naive_pixels overridden when given."""
    settings = QUICK if quick else Settings()
    if naive_pixels is not None:
        settings = dataclasses.replace(settings, naive_pixels=naive_pixels)
    return settings


def parse_measure(text):
    """argparse type of --measure: KIND:CONFIG:BATCH -> (kind, config, batch)."""
    parts = text.split(':')
    if len(parts) != 3 or parts[0] not in KINDS or parts[1] not in CONFIGS:
        raise argparse.ArgumentTypeError('expected KIND:CONFIG:BATCH with KIND in %s and '
                                         'CONFIG in %s, got %r' % (KINDS, tuple(CONFIGS), text))
    return parts[0], parts[1], cli.positive_int(parts[2])


def parse_configs(text):
    """argparse type of --configs: comma-separated names from CONFIGS."""
    names = [name.strip() for name in text.split(',') if name.strip()]
    unknown = [name for name in names if name not in CONFIGS]
    if not names or unknown:
        raise argparse.ArgumentTypeError('expected names from %s, got %r'
                                         % (', '.join(CONFIGS), text))
    return names


def parse_arguments(argv=None):
    """Parses the flags."""
    parser = argparse.ArgumentParser(
        description='Benchmark training and generation of 28x28 images.')
    parser.add_argument('--configs', type=parse_configs, default=list(CONFIGS),
                        help='comma-separated configs: default = wavenet_params.json, '
                             'anchor = benchmarks/params/anchor.json (default: both)')
    parser.add_argument('--quick', action='store_true',
                        help='smoke test: batch sizes 1 and 8, one repeat, 28 naive pixels')
    parser.add_argument('--naive_pixels', type=cli.positive_int, default=None,
                        help='pixels timed per naive-generation measurement (default: 112, '
                             'or 28 with --quick)')
    parser.add_argument('--out', default=os.path.join(ROOT, 'benchmarks', 'results.md'),
                        help='markdown report; the raw numbers go to the same name with .json '
                             '(default: benchmarks/results.md)')
    parser.add_argument('--measure', type=parse_measure, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.naive_pixels is not None and args.naive_pixels >= NUM_PIXELS:
        parser.error('--naive_pixels must be less than %d' % NUM_PIXELS)
    return args


def peak_rss_mib():
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_pixels(rng, batch, length, levels):
    """Random pixel levels, int32 [batch, length]."""
    return rng.integers(0, levels, size=(batch, length), dtype=np.int32)


def build_mixture(params):
    """The model for 28x28 images (with NUM_CLASSES classes if params condition on one)."""
    from wavenet.model import Mixture, WaveNetModel
    return Mixture([WaveNetModel(params, (IMAGE_SIZE, IMAGE_SIZE), num_classes=NUM_CLASSES)])


def random_labels(rng, conditional, batch):
    """Random classes int32 [batch] for a conditional model, else None."""
    return rng.integers(0, NUM_CLASSES, size=batch, dtype=np.int32) if conditional else None


def measure_training(tf, params, batch, settings, xla=False, precision='fp32'):
    """Times Adam steps on model.loss alone (no L2 penalty, no batch gather), over random
    images fed each step, in a session with train.py's XLA and precision settings.

    Returns:
        dict with the median ms per step, pixels per second and every timed step.
    """
    rng = np.random.default_rng(SEED)
    with tf.Graph().as_default():
        tf.set_random_seed(SEED)
        model = build_mixture(params).models[0]
        labels = tf.placeholder(tf.int32, [batch], name='labels') if model.conditional else None
        global_step = tf.train.get_or_create_global_step()
        pixels = tf.placeholder(tf.int32, [batch, NUM_PIXELS], name='pixels')
        loss, _ = model.loss(pixels, labels)
        train_op = tf.train.AdamOptimizer(LEARNING_RATE).minimize(loss, global_step=global_step)
        config = hardware.use_xla(hardware.use_precision(tf.ConfigProto(), precision), xla)
        with tf.Session(config=config) as session:
            session.run(tf.global_variables_initializer())
            step_seconds = []
            for step in range(settings.train_warmup_steps + settings.train_timed_steps):
                feed = {pixels: random_pixels(rng, batch, NUM_PIXELS,
                                              params.quantization_channels)}
                if labels is not None:
                    feed[labels] = random_labels(rng, True, batch)
                started = time.perf_counter()
                session.run([train_op, loss], feed)
                if step >= settings.train_warmup_steps:
                    step_seconds.append(time.perf_counter() - started)
    seconds = statistics.median(step_seconds)
    return {'ms_per_step': 1000 * seconds, 'pixels_per_s': batch * NUM_PIXELS / seconds,
            'step_seconds': step_seconds}


def time_sampling(tf, params, batch, repeats, prime_length, fast=True, state=DEFAULT_STATE):
    """Times whole batches drawn by generation.build_sampler, as generate.py draws them.

    The lanes and threads are those of generate.py (generation.lanes_for, session_config).
    The first `prime_length` pixels of each image are random known pixels.

    Returns:
        (the sampler, the seconds of each timed batch after one warm-up batch).
    """
    from wavenet.generation import build_sampler
    rng = np.random.default_rng(SEED)
    with tf.Graph().as_default():
        tf.set_random_seed(SEED)
        mixture = build_mixture(params)
        sampler = build_sampler(mixture, batch, fast=fast, state=state)
        with tf.Session(config=sampler.config) as session:
            session.run(tf.global_variables_initializer())
            seconds = []
            for _ in range(1 + repeats):
                prime = random_pixels(rng, batch, prime_length, params.quantization_channels)
                started = time.perf_counter()
                sampler.sample(session, random_labels(rng, mixture.conditional, batch), prime)
                seconds.append(time.perf_counter() - started)
    return sampler, seconds[1:]


def measure_fast_generation(tf, params, batch, settings, state=DEFAULT_STATE):
    """Times whole images from the fast sampler with `state`, one session.run per image.

    Returns:
        dict with the median seconds per batch of images, images and pixels per second.
    """
    sampler, image_seconds = time_sampling(tf, params, batch, settings.fast_repeats, 0,
                                           state=state)
    seconds = statistics.median(image_seconds)
    return {'lanes': sampler.config.inter_op_parallelism_threads, 'seconds_per_batch': seconds,
            'images_per_s': batch / seconds, 'pixels_per_s': batch * NUM_PIXELS / seconds,
            'image_seconds': image_seconds}


def measure_naive_generation(tf, params, batch, settings):
    """Times settings.naive_pixels pixels of naive generation and extrapolates to an image.

    Each naive pixel runs the full network over all NUM_PIXELS positions, so its cost does
    not depend on its position: the timed pixels are the last naive_pixels of the image,
    the ones before them primed with random levels.

    Returns:
        dict with pixels per second and the extrapolated seconds per batch and per image.
    """
    _, timed = time_sampling(tf, params, batch, 1, NUM_PIXELS - settings.naive_pixels,
                             fast=False)
    seconds_per_pixel_step = timed[0] / settings.naive_pixels
    return {'timed_pixels': settings.naive_pixels, 'timed_seconds': timed[0],
            'pixels_per_s': batch / seconds_per_pixel_step,
            'seconds_per_batch_extrapolated': NUM_PIXELS * seconds_per_pixel_step,
            'seconds_per_image_extrapolated': NUM_PIXELS * seconds_per_pixel_step / batch}


def measure_priming(tf, params, batch, settings):
    """Times priming the default store from seed rows in one pass against stepping.

    Stepping a known pixel through the store costs one generation step (the same layers run
    once), so the stepped time is the time to generate as many pixels.

    Returns:
        dict with the median seconds of one-pass priming and of stepping, and their ratio.
    """
    from wavenet.generation import build_sampler
    rng = np.random.default_rng(SEED)
    seed_pixels = settings.prime_rows * IMAGE_SIZE
    with tf.Graph().as_default():
        tf.set_random_seed(SEED)
        mixture = build_mixture(params)
        sampler = build_sampler(mixture, batch)
        generator = sampler.generator
        with tf.Session(config=sampler.config) as session:
            session.run(tf.global_variables_initializer())
            labels = random_labels(rng, mixture.conditional, batch)
            label_feed = {} if labels is None else {generator.labels: labels}
            one_pass, stepped = [], []
            for repeat in range(1 + settings.fast_repeats):
                prime = random_pixels(rng, batch, seed_pixels, params.quantization_channels)
                started = time.perf_counter()
                session.run(generator.prime, {generator.prime_pixels: prime, **label_feed})
                primed = time.perf_counter()
                session.run(generator.pixels, {
                    generator.start: 0, generator.num_steps: seed_pixels,
                    generator.previous_pixel: np.zeros(batch, np.int32), **label_feed})
                if repeat:  # the first round is the warm-up
                    one_pass.append(primed - started)
                    stepped.append(time.perf_counter() - primed)
    return {'seed_pixels': seed_pixels, 'one_pass_seconds': statistics.median(one_pass),
            'stepped_seconds': statistics.median(stepped),
            'speedup': statistics.median(stepped) / statistics.median(one_pass)}


def run_measurement(kind, config, batch, settings):
    """Runs one measurement in this process; returns its numbers with the peak RSS."""
    tf = cli.import_tensorflow(verbose=False)
    measures = {'train': measure_training, 'naive': measure_naive_generation,
                'prime': measure_priming,
                'train_xla': functools.partial(measure_training, xla=True),
                'train_bf16': functools.partial(measure_training, precision='bf16')}
    measures.update({state: functools.partial(measure_fast_generation, state=state)
                     for state in GENERATION_STATES})
    measure = measures[kind]
    result = measure(tf, load_params(CONFIGS[config]), batch, settings)
    result.update(kind=kind, config=config, batch=batch, peak_rss_mib=peak_rss_mib())
    return result


def measure_in_subprocess(kind, config, batch, quick, naive_pixels):
    """Runs one measurement in a fresh Python process and returns its JSON result."""
    command = [sys.executable, os.path.abspath(__file__),
               '--measure=%s:%s:%d' % (kind, config, batch), '--naive_pixels=%d' % naive_pixels]
    if quick:
        command.append('--quick')
    environ = dict(os.environ)
    if kind == 'train_xla':  # read once, when TensorFlow starts
        environ['TF_XLA_FLAGS'] = hardware.xla_environment(environ.get('TF_XLA_FLAGS'))
    completed = subprocess.run(command, capture_output=True, text=True, check=False,
                               env=environ)
    if completed.returncode != 0:
        raise RuntimeError('%s failed with exit code %d:\n%s'
                           % (' '.join(command), completed.returncode, completed.stderr))
    return json.loads(completed.stdout.strip().splitlines()[-1])


# The result a measurement is judged by, to pick the median of its processes.
PRIMARY_METRIC = {'naive': 'pixels_per_s', 'prime': 'speedup',
                  **{variant: 'pixels_per_s' for variant in TRAINING_VARIANTS},
                  **{state: 'images_per_s' for state in GENERATION_STATES}}


def measure_all(configs, settings, quick, bf16_units):
    """Runs every measurement of every config, each in its own subprocesses.

    Training and fast generation run settings.processes times, in rounds (every measurement
    once, then again), so that a slow spell of the machine does not hit one of them only.

    bf16 training is measured only when `bf16_units` (the CPU has them).

    Returns:
        list of result dicts, one per measurement: the process with the median primary
        metric, with 'processes' holding that metric of every process.
    """
    variants = ['train_xla'] + (['train_bf16'] if bf16_units else [])
    plan = [(kind, config, batch) for config in configs
            for kind, batches in ((('train', settings.train_batches),)
                                  + tuple((variant, (max(settings.train_batches),))
                                          for variant in variants)
                                  + tuple((state, settings.fast_batches)
                                          for state in GENERATION_STATES)
                                  + (('naive', settings.naive_batches),
                                     ('prime', settings.prime_batches)))
            for batch in batches]
    runs = {measurement: [] for measurement in plan}
    rounds = [[measurement for measurement in plan
               if round_index == 0 or measurement[0] not in ('naive', 'prime')]
              for round_index in range(settings.processes)]
    total, done = sum(len(measurements) for measurements in rounds), 0
    for measurements in rounds:
        for kind, config, batch in measurements:
            done += 1
            print('[%d/%d] %s %s batch %d' % (done, total, kind, config, batch),
                  file=sys.stderr, flush=True)
            runs[kind, config, batch].append(measure_in_subprocess(
                kind, config, batch, quick, settings.naive_pixels))
    results = []
    for (kind, config, batch), measured in runs.items():
        metric = PRIMARY_METRIC[kind]
        ranked = sorted(measured, key=lambda result: result[metric])
        median = dict(ranked[(len(ranked) - 1) // 2])
        median['processes'] = [result[metric] for result in measured]
        results.append(median)
    return results


def describe_machine(tf, load_average_at_start):
    """CPU model, cores, measured fp32 and bf16 peaks, versions, load and date, as a dict.

    Call it after the measurements: a child process's peak RSS starts from its parent's
    resident memory when it was started (Linux), and the peak's large matrices would raise
    that of every measurement.
    """
    name, flags = hardware.cpu_info()
    return {'cpu': name, 'cores': len(os.sched_getaffinity(0)),
            'bf16_units': hardware.has_bf16_units(flags),
            'peak': {'fp32_gflops': matmul_gflops(tf, tf.float32),
                     'bf16_gflops': matmul_gflops(tf, tf.bfloat16), 'size': MATMUL_SIZE},
            'tensorflow': tf.__version__, 'numpy': np.__version__,
            'python': platform.python_version(),
            'load_average_at_start': load_average_at_start,
            'date': datetime.datetime.now().astimezone().isoformat(timespec='seconds')}


def markdown_table(header, rows):
    """A markdown table from a header list and rows of strings."""
    lines = ['| %s |' % ' | '.join(header), '|%s|' % '|'.join('---' for _ in header)]
    lines += ['| %s |' % ' | '.join(row) for row in rows]
    return '\n'.join(lines)


def find(results, kind, config, batch):
    """The result of one measurement, or None if it was not run."""
    for result in results:
        if (result['kind'], result['config'], result['batch']) == (kind, config, batch):
            return result
    return None


def percent_of_peak(gflops, peak):
    """'12.3%' of the peak, or 'n/a' when the peak is unknown."""
    return '%.1f%%' % (100 * gflops / peak) if peak else 'n/a'


def format_number(value, decimals=0):
    """A number with thousands separators."""
    return '{:,.{}f}'.format(value, decimals)


def value_range(values, decimals=0):
    """'low-high' of the values, with thousands separators."""
    return '%s-%s' % (format_number(min(values), decimals), format_number(max(values), decimals))


def machine_section(machine, configs):
    """Markdown list: CPU, cores, measured peaks, versions, load, date."""
    peak = machine['peak']
    return '\n'.join([
        '- CPU: %s, %d cores (os.sched_getaffinity), %s'
        % (machine['cpu'], machine['cores'],
           'bf16 units' if machine['bf16_units'] else 'no bf16 units'),
        '- measured peak (one %dx%d matrix product through TensorFlow, `benchmarks/peak.py`): '
        'fp32 %s GFLOP/s, bf16 %s GFLOP/s%s'
        % (peak['size'], peak['size'], format_number(peak['fp32_gflops'], 1),
           format_number(peak['bf16_gflops'], 1),
           '' if machine['bf16_units'] else ' (converted: no bf16 units)'),
        '- TensorFlow %s, numpy %s, Python %s' % (machine['tensorflow'], machine['numpy'],
                                                  machine['python']),
        '- date %s, load average at start %s' % (
            machine['date'], ', '.join('%.2f' % load for load in
                                       machine['load_average_at_start'])),
        '- configs: %s' % ', '.join('%s = %s' % (config, os.path.relpath(CONFIGS[config], ROOT))
                                    for config in configs)])


def training_section(settings, results):
    """Markdown: ms/step, pixels/s and peak RSS of every training measurement."""
    return ('## Training\n\nAdam on `model.loss` (as train.py); median of %d timed step(s) '
            'after %d warm-up step(s), in each of %d process(es); the process with the median '
            'pixels/s is shown, with the range over all of them; peak RSS of a process doing '
            'only this.\n\n'
            % (settings.train_timed_steps, settings.train_warmup_steps, settings.processes)
            + 'At the largest batch also compiled with XLA (train.py --xla=on) and, on CPUs '
            'with bf16 units, in bf16 mixed precision (train.py --precision=bf16).\n\n'
            + markdown_table(
                ['config', 'arithmetic', 'batch', 'ms/step', 'pixels/s', 'range of pixels/s',
                 'peak RSS (MiB)'],
                [[r['config'], TRAINING_VARIANTS[r['kind']], str(r['batch']),
                  format_number(r['ms_per_step'], 1), format_number(r['pixels_per_s']),
                  value_range(r['processes']), format_number(r['peak_rss_mib'])]
                 for r in results if r['kind'] in TRAINING_VARIANTS]))


def fast_section(settings, results):
    """Markdown: seconds per batch, images/s, pixels/s and peak RSS of fast generation."""
    return ('## Fast generation\n\n`generation.build_sampler(mixture, B, state=STATE)` + '
            '`sampler.sample(...)`, %d pixels per session.run; median of %d whole image(s) '
            'after one warm-up image, in each of %d process(es); the process with the median '
            'images/s is shown, with the range over all of them. Where each layer\'s recent '
            'inputs wait: `ring`, one ring buffer for all layers (the default); `queues`, FIFO '
            'queues. Lanes and threads as generate.py chooses them: the batch split into one '
            'lane per core when each lane gets at least %d images, else one lane; one thread '
            'per lane and per op.\n\n'
            % (NUM_PIXELS, settings.fast_repeats, settings.processes,
               MIN_IMAGES_PER_LANE)
            + markdown_table(
                ['config', 'state', 'batch', 'lanes', 's/batch', 'images/s',
                 'range of images/s', 'pixels/s', 'peak RSS (MiB)'],
                [[r['config'], r['kind'], str(r['batch']), str(r['lanes']),
                  '%.2f' % r['seconds_per_batch'], format_number(r['images_per_s'], 2),
                  value_range(r['processes'], 1),
                  format_number(r['pixels_per_s']), format_number(r['peak_rss_mib'])]
                 for r in results if r['kind'] in GENERATION_STATES]))


def priming_section(settings, results):
    """Markdown: one-pass priming of seed rows against stepping through them."""
    return ('## Priming for image completion\n\nThe generation state (`%s`) of every layer '
            'is filled from %d seed rows (%d pixels) in one pass of the full network, against '
            'stepping the same pixels through it one at a time (as many generation steps); '
            'median of %d.\n\n' % (DEFAULT_STATE, settings.prime_rows,
                                    settings.prime_rows * IMAGE_SIZE, settings.fast_repeats)
            + markdown_table(
                ['config', 'batch', 'one pass (s)', 'stepped (s)', 'speedup'],
                [[r['config'], str(r['batch']), '%.3f' % r['one_pass_seconds'],
                  '%.3f' % r['stepped_seconds'], '%.1fx' % r['speedup']]
                 for r in results if r['kind'] == 'prime']))


def naive_section(settings, results):
    """Markdown: pixels/s and extrapolated seconds of naive generation."""
    return ('## Naive generation\n\n`generation.build_sampler(mixture, B, fast=False)`: '
            'every pixel runs the full network over all %d positions, so its '
            'cost does not depend on the position. Only %d pixels are timed (the last %d, the '
            'rest primed with random levels); seconds per batch and per image are '
            '**extrapolated** to %d pixels.\n\n'
            % (NUM_PIXELS, settings.naive_pixels, settings.naive_pixels, NUM_PIXELS)
            + markdown_table(
                ['config', 'batch', 'pixels/s', 's/batch (extrapolated)',
                 's/image (extrapolated)', 'peak RSS (MiB)'],
                [[r['config'], str(r['batch']), format_number(r['pixels_per_s'], 1),
                  format_number(r['seconds_per_batch_extrapolated'], 1),
                  '%.2f' % r['seconds_per_image_extrapolated'],
                  format_number(r['peak_rss_mib'])]
                 for r in results if r['kind'] == 'naive']))


def speedup_section(configs, settings, results):
    """Markdown: fast over naive pixels/s at each batch size both were measured at."""
    rows = []
    for config in configs:
        for batch in settings.naive_batches:
            fast, naive = (find(results, DEFAULT_STATE, config, batch),
                           find(results, 'naive', config, batch))
            if fast and naive:
                rows.append([config, str(batch), format_number(fast['pixels_per_s']),
                             format_number(naive['pixels_per_s'], 1),
                             '%.0fx' % (fast['pixels_per_s'] / naive['pixels_per_s'])])
    return ('## Speedup of fast over naive generation\n\nRatio of pixels/s at the same batch '
            'size (fast with the default state, `%s`; naive extrapolated as above).\n\n'
            % DEFAULT_STATE
            + markdown_table(['config', 'batch', 'fast pixels/s', 'naive pixels/s', 'speedup'],
                             rows))


def efficiency_section(configs, settings, results, peak_gflops):
    """Markdown: FLOPs per pixel and achieved GFLOP/s of training and fast generation.

    Training is taken at the largest training batch, generation at the largest fast batch.
    """
    train_batch, fast_batch = max(settings.train_batches), max(settings.fast_batches)
    rows = []
    for config in configs:
        forward = flops_per_pixel(load_params(CONFIGS[config]))
        training = TRAINING_MULTIPLIER * forward
        train_gflops, xla_gflops = (
            training * find(results, kind, config, train_batch)['pixels_per_s'] / 1e9
            for kind in ('train', 'train_xla'))
        fast_gflops = forward * find(results, DEFAULT_STATE, config,
                                     fast_batch)['pixels_per_s'] / 1e9
        rows.append([config, format_number(forward), format_number(training),
                     format_number(train_gflops, 1), percent_of_peak(train_gflops, peak_gflops),
                     format_number(xla_gflops, 1), percent_of_peak(xla_gflops, peak_gflops),
                     format_number(fast_gflops, 1), percent_of_peak(fast_gflops, peak_gflops)])
    return ('## Efficiency\n\nFLOPs per pixel counted from the params (`benchmarks/flops.py`; '
            'multiply-add = 2 FLOPs; the input convolution as table lookups plus their '
            'additions; elementwise ops such as biases, tanh, sigmoid, gating, residual adds, '
            'ReLU, softmax and the loss are ignored, and so are class and position '
            'conditioning). Training FLOPs per pixel are taken as %dx the forward pass. '
            'Achieved GFLOP/s = FLOPs per pixel x pixels/s, for training at batch %d and fast '
            'generation at batch %d, against the measured fp32 peak of %s GFLOP/s.\n\n'
            % (TRAINING_MULTIPLIER, train_batch, fast_batch,
               format_number(peak_gflops, 1) if peak_gflops else 'n/a')
            + markdown_table(
                ['config', 'forward FLOPs/pixel', 'training FLOPs/pixel',
                 'training GFLOP/s (batch %d)' % train_batch, '% of peak',
                 'with XLA', '% of peak',
                 'generation GFLOP/s (batch %d)' % fast_batch, '% of peak'], rows))


def format_report(machine, settings, quick, configs, results):
    """The markdown report: machine, training, generation, speedup and efficiency sections."""
    sections = ['# WaveNet benchmarks: %dx%d images (%d pixels), random pixel levels'
                % (IMAGE_SIZE, IMAGE_SIZE, NUM_PIXELS)]
    if quick:
        sections.append('**Quick smoke test** (`--quick`: batch sizes %s, %d repeat, %d naive '
                        'pixels): these numbers only show that the suite runs; do not report '
                        'them.' % (' and '.join(map(str, settings.train_batches)),
                                   settings.fast_repeats, settings.naive_pixels))
    sections += [machine_section(machine, configs), training_section(settings, results),
                 fast_section(settings, results), naive_section(settings, results),
                 speedup_section(configs, settings, results), priming_section(settings, results),
                 efficiency_section(configs, settings, results, machine['peak']['fp32_gflops'])]
    return '\n\n'.join(sections) + '\n'


def write_outputs(out, markdown, raw):
    """Writes the markdown report to `out` and the raw numbers to the .json beside it."""
    directory = os.path.dirname(os.path.abspath(out))
    os.makedirs(directory, exist_ok=True)
    with open(out, 'w') as report:
        report.write(markdown)
    json_path = os.path.splitext(out)[0] + '.json'
    with open(json_path, 'w') as raw_file:
        json.dump(raw, raw_file, indent=2, sort_keys=True)
        raw_file.write('\n')
    return json_path


def main(argv=None):
    """Runs one hidden --measure measurement, or the whole suite and its report."""
    args = parse_arguments(argv)
    settings = make_settings(args.quick, args.naive_pixels)
    if args.measure:
        print(json.dumps(run_measurement(*args.measure, settings)), flush=True)
        return
    tf = cli.import_tensorflow(verbose=False)
    load_average = os.getloadavg()
    results = measure_all(args.configs, settings, args.quick,
                          hardware.has_bf16_units(hardware.cpu_info()[1]))
    machine = describe_machine(tf, load_average)
    markdown = format_report(machine, settings, args.quick, args.configs, results)
    print(markdown)
    json_path = write_outputs(args.out, markdown, {
        'machine': machine, 'settings': dataclasses.asdict(settings), 'quick': args.quick,
        'flops_per_pixel': {config: flops_per_pixel(load_params(CONFIGS[config]))
                            for config in args.configs},
        'training_flops_multiplier': TRAINING_MULTIPLIER, 'results': results})
    print('wrote %s and %s' % (args.out, json_path), file=sys.stderr)


if __name__ == '__main__':
    main()
