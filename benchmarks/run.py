"""Speed, memory and efficiency of training and generating 28x28 images on this machine.

    python -m benchmarks.run [--configs=default,anchor,mixture] [--quick] [--out=PATH.md]

Each measurement runs in a fresh process (this module with the hidden --measure flag), so its
peak RSS is its own; only XLA training gets TF_XLA_FLAGS. The method: benchmarks/README.md.
"""
import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

from benchmarks import table
from benchmarks.flops import TRAINING_MULTIPLIER, flops_per_pixel
from wavenet import cli, hardware
from wavenet.params import load_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDE, PIXELS = 28, 28 * 28
CONFIGS = {name: os.path.join(ROOT, path) for name, path in (
    ('default', 'wavenet_params.json'), ('anchor', 'benchmarks/params/anchor.json'),
    ('mixture', 'benchmarks/params/mixture.json'))}
FULL = ('default', 'anchor')  # also XLA, bf16, the queues, naive generation and priming
TRAINING = {'train': 'fp32', 'train_xla': 'fp32 + XLA', 'train_bf16': 'bf16'}
STATES = ('ring', 'queues')  # fast_generation.STATES (the default first), without TensorFlow
METRIC = dict({kind: 'pixels_per_s' for kind in TRAINING}, ring='images_per_s',
              queues='images_per_s', naive='pixels_per_s', prime='speedup')
NUM_CLASSES, TRAIN_IMAGES, SEED, MATMUL_SIZE = 10, 256, 0, 2048


@dataclasses.dataclass(frozen=True)
class Settings:
    """What is measured, and in how many processes."""
    train_batches: tuple = (1, 8, 32)
    warmup_steps: int = 3
    timed_steps: int = 10
    fast_batches: tuple = (1, 16, 64, 256)
    fast_repeats: int = 3  # whole images timed after one warm-up image
    naive_batches: tuple = (1, 16)  # also fast batches: the speed-up compares them
    naive_pixels: int = 4 * SIDE  # timed, then extrapolated to the image
    prime_batch: int = 16
    prime_rows: int = SIDE // 2
    rounds: int = 3  # processes, taking turns, of training and of the default store ...
    repeated: tuple = (8, 16, 32, 256)  # ... at these batch sizes; one process elsewhere


QUICK = Settings(train_batches=(8,), warmup_steps=1, timed_steps=1, fast_batches=(8,),
                 fast_repeats=1, naive_batches=(8,), naive_pixels=SIDE, prime_batch=2,
                 prime_rows=2, rounds=1)


def timed(run, warmup, repeats):
    """Seconds of each of `repeats` calls of run() after `warmup` untimed ones."""
    seconds = []
    for index in range(warmup + repeats):
        started = time.perf_counter()
        run()
        if index >= warmup:
            seconds.append(time.perf_counter() - started)
    return seconds


def measure_training(tf, params, batch, settings, kind):
    """Median ms per step and pixels/s of train.py's training graph (build_training_graph
    with train.py's default options) and session, over random images."""
    from wavenet import distribution, record, training
    from wavenet.model import WaveNetModel
    rng = np.random.default_rng(SEED)
    images = rng.integers(0, params.quantization_channels, (TRAIN_IMAGES, SIDE, SIDE), np.uint8)
    labels = rng.integers(0, NUM_CLASSES, TRAIN_IMAGES, np.int32)
    options = record.TrainingOptions(batch_size=batch,
                                     precision='bf16' if kind == 'train_bf16' else 'fp32')
    tf.set_random_seed(options.seed)
    model = WaveNetModel(params, (SIDE, SIDE), NUM_CLASSES)
    step = training.build_training_graph(model, images, labels, options, 10 ** 6).step
    config = hardware.session_config(distribution.place(0, 1, {}).config, options.precision,
                                     kind == 'train_xla')  # train.py's session on one device
    with tf.Session(config=config) as session:
        session.run(tf.global_variables_initializer())
        seconds = timed(lambda: session.run(step), settings.warmup_steps, settings.timed_steps)
    median = statistics.median(seconds)
    return {'ms_per_step': 1000 * median, 'pixels_per_s': batch * PIXELS / median,
            'seconds': seconds}


def measure_generation(tf, params, batch, settings, kind):
    """Times generation.build_sampler as generate.py runs it: whole fast images ('ring',
    'queues'); the last naive_pixels after random known pixels, extrapolated to the image
    ('naive'); the default store filled from seed rows at once, against stepping ('prime')."""
    from wavenet.generation import build_sampler
    from wavenet.model import Mixture, WaveNetModel
    rng = np.random.default_rng(SEED)
    lengths = {'naive': PIXELS - settings.naive_pixels, 'prime': settings.prime_rows * SIDE}
    known = rng.integers(0, params.quantization_channels, (batch, lengths.get(kind, 0)), np.int32)
    tf.set_random_seed(SEED)
    mixture = Mixture([WaveNetModel(params, (SIDE, SIDE), NUM_CLASSES)])
    labels = rng.integers(0, NUM_CLASSES, batch, np.int32) if mixture.conditional else None
    sampler = build_sampler(mixture, batch, kind != 'naive', kind if kind in STATES else STATES[0])
    with tf.Session(config=sampler.config) as session:
        session.run(tf.global_variables_initializer())
        if kind in STATES:
            seconds = timed(lambda: sampler.sample(session, batch, labels), 1,
                            settings.fast_repeats)
            median = statistics.median(seconds)
            return {'lanes': sampler.config.inter_op_parallelism_threads, 's_per_batch': median,
                    'images_per_s': batch / median, 'pixels_per_s': batch * PIXELS / median,
                    'seconds': seconds}
        if kind == 'naive':  # the warm-up: one pixel
            sampler.sample(session, batch, labels, np.resize(known, (batch, PIXELS - 1)))
            [seconds] = timed(lambda: sampler.sample(session, batch, labels, known), 0, 1)
            per_pixel = seconds / settings.naive_pixels
            return {'pixels_per_s': batch / per_pixel, 's_per_batch': PIXELS * per_pixel,
                    's_per_image': PIXELS * per_pixel / batch}
        generator = sampler.generator
        feed = {} if labels is None else {generator.labels: labels}
        one_pass, stepped = (statistics.median(timed(lambda: session.run(*run), 1,
                                                     settings.fast_repeats)) for run in (
            (generator.prime, {generator.prime_pixels: known, **feed}),
            (generator.pixels, {generator.start: 0, generator.num_steps: known.shape[1],
                                generator.previous_pixel: known[:, 0], **feed})))
        return {'one_pass_s': one_pass, 'stepped_s': stepped, 'speedup': stepped / one_pass}


def measure(tf, kind, params, batch, settings):
    """One measurement in a graph of its own: its numbers and the process's peak RSS in MiB."""
    with tf.Graph().as_default():
        result = (measure_training if kind in TRAINING else measure_generation)(
            tf, params, batch, settings, kind)
    return dict(result, peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def process_environment(kind, environ):
    """A measuring process's environment: XLA's CPU flag for XLA training only."""
    flags = ' '.join(flag for flag in environ.get('TF_XLA_FLAGS', '').split()
                     if flag != hardware.XLA_FLAGS)
    flags = hardware.xla_environment(flags) if kind == 'train_xla' else flags
    environ = {name: value for name, value in environ.items() if name != 'TF_XLA_FLAGS'}
    return dict(environ, TF_XLA_FLAGS=flags) if flags else environ


def in_subprocess(kind, config, batch, quick):
    """measure() in a fresh `python -m benchmarks.run --measure=...` process."""
    command = [sys.executable, '-m', 'benchmarks.run',
               '--measure=%s:%s:%d' % (kind, config, batch)] + ['--quick'] * quick
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False,
                          env=process_environment(kind, os.environ))
    if done.returncode:
        raise RuntimeError('%s failed:\n%s' % (' '.join(command), done.stderr))
    return json.loads(done.stdout.splitlines()[-1])


def measure_all(configs, settings, bf16_units, run_one):
    """Runs each measurement with run_one(kind, config, batch) -> numbers; training and the
    default store at settings.repeated batch sizes in every round, odd rounds reversed (XLA
    off and on take turns). Per measurement: the median process, every metric in 'processes'."""
    runs, largest = {}, max(settings.train_batches)
    for config in configs:
        full = config in FULL
        runs.update({(kind, config, batch): [] for kind, batches in (
            ('train', settings.train_batches), ('train_xla', (largest,) * full),
            ('train_bf16', (largest,) * (full and bf16_units)), (STATES[0], settings.fast_batches),
            (STATES[1], settings.fast_batches * full), ('naive', settings.naive_batches * full),
            ('prime', (settings.prime_batch,) * full)) for batch in batches})
    for round_index in range(settings.rounds):
        for kind, config, batch in list(runs)[::-1 if round_index % 2 else 1]:
            if round_index == 0 or ((kind in TRAINING or kind == STATES[0])
                                    and batch in settings.repeated):
                print('round %d: %s %s batch %d' % (round_index + 1, kind, config, batch),
                      file=sys.stderr, flush=True)
                runs[kind, config, batch].append(run_one(kind, config, batch))
    return [dict(sorted(measured, key=lambda result: result[METRIC[kind]])[
        (len(measured) - 1) // 2], kind=kind, config=config, batch=batch,
        processes=[result[METRIC[kind]] for result in measured])
        for (kind, config, batch), measured in runs.items()]


def matmul_gflops(tf, dtype, size=MATMUL_SIZE, repeats=5):
    """The peak: GFLOP/s of a product of two [size, size] variables in `dtype` (median)."""
    rng = np.random.default_rng(SEED)
    with tf.Graph().as_default():
        left, right = (tf.Variable(tf.cast(rng.standard_normal((size, size)).astype(np.float32),
                                           dtype)) for _ in range(2))
        product = tf.reduce_sum(tf.cast(tf.matmul(left, right), tf.float32))  # a small fetch
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            seconds = timed(lambda: session.run(product), 1, repeats)
    return 2 * size ** 3 / statistics.median(seconds) / 1e9


def describe_machine(tf, load_average):
    """CPU, cores, peaks, versions, date; called last (a child's peak RSS starts from ours)."""
    name, flags = hardware.cpu_info()
    return {'cpu': name, 'cores': len(os.sched_getaffinity(0)), 'matmul_size': MATMUL_SIZE,
            'bf16_units': hardware.has_bf16_units(flags), 'tensorflow': tf.__version__,
            'fp32_gflops': matmul_gflops(tf, tf.float32), 'numpy': np.__version__,
            'bf16_gflops': matmul_gflops(tf, tf.bfloat16), 'python': sys.version.split()[0],
            'load_average': '%.2f, %.2f, %.2f' % load_average, 'date': time.strftime('%F %R %Z')}


# Per table: title, kinds of measurement, a sentence, the columns as 'header:format of a result'.
TABLES = (
    ('Training', TRAINING, "train.py's graph and session; per process the median of "
     '{timed_steps} steps after {warmup_steps}.', 'config:{config}|arithmetic:{arithmetic}|'
     'batch:{batch}|ms/step:{ms_per_step:,.1f}|pixels/s:{pixels_per_s:,.0f}|'
     'range of pixels/s:{range}|GFLOP/s:{gflops:.3g}|% of peak:{share:.1f}|'
     'peak RSS (MiB):{peak_rss_mib:,.0f}'),
    ('Fast generation', STATES, 'Per process the median of {fast_repeats} whole images after '
     'one.', 'config:{config}|state:{kind}|batch:{batch}|lanes:{lanes}|s/batch:{s_per_batch:.3g}|'
     'images/s:{images_per_s:,.2f}|range of images/s:{range}|pixels/s:{pixels_per_s:,.0f}|'
     'GFLOP/s:{gflops:.3g}|% of peak:{share:.1f}|peak RSS (MiB):{peak_rss_mib:,.0f}'),
    ('Naive generation', ('naive',), '{naive_pixels} pixels timed, **extrapolated** to the '
     'image; the speed-up of fast generation (ring).', 'config:{config}|batch:{batch}|'
     'pixels/s:{pixels_per_s:,.1f}|s/batch (extrapolated):{s_per_batch:,.3g}|'
     's/image (extrapolated):{s_per_image:.3g}|peak RSS (MiB):{peak_rss_mib:,.0f}|'
     'fast pixels/s:{fast:,.0f}|speed-up:{speedup:.0f}x'),
    ('Priming for image completion', ('prime',), '{prime_rows} seed rows at once, against '
     'stepping through them.', 'config:{config}|batch:{batch}|one pass (s):{one_pass_s:.3g}|'
     'stepped (s):{stepped_s:.3g}|speed-up:{speedup:.1f}x'))


def format_report(machine, settings, quick, configs, results):
    """The markdown report: the machine and the FLOPs, then a table per kind of measurement."""
    flops = {config: flops_per_pixel(load_params(CONFIGS[config])) for config in configs}
    found = {(r['kind'], r['config'], r['batch']): dict(r, arithmetic=TRAINING.get(r['kind']),
             range='-'.join('{:,.{}f}'.format(f(r['processes']), int(r['kind'] in STATES))
                            for f in (min, max))) for r in results}
    for (kind, config, batch), result in found.items():
        if kind in TRAINING or kind in STATES:
            gflops = (flops[config] * result['pixels_per_s'] / 1e9
                      * (TRAINING_MULTIPLIER if kind in TRAINING else 1))
            result.update(gflops=gflops, share=100 * gflops / machine[
                'bf16_gflops' if kind == 'train_bf16' else 'fp32_gflops'])
        elif kind == 'naive':
            fast = found[STATES[0], config, batch]['pixels_per_s']
            result.update(fast=fast, speedup=fast / result['pixels_per_s'])
    lines = ['# WaveNet benchmarks: 28x28 images, random pixel levels', ''] + [
        '**Quick smoke test** (`--quick`): these numbers only show that it runs.', ''] * quick
    lines += ['- %s: %s' % item for item in (
        ('CPU', '%(cpu)s, %(cores)d cores, bf16 units: %(bf16_units)s' % machine),
        ('measured peak', 'fp32 %(fp32_gflops).1f GFLOP/s, bf16 %(bf16_gflops).1f GFLOP/s (a '
         '%(matmul_size)dx%(matmul_size)d matrix product)' % machine),
        ('versions', 'TensorFlow %(tensorflow)s, numpy %(numpy)s, Python %(python)s' % machine),
        ('date', '%(date)s, load average at the start %(load_average)s' % machine),
        ('forward FLOPs per pixel', '%s (`benchmarks/flops.py`; training %dx)' % (', '.join(
            '{} ({}) {:,}'.format(config, os.path.relpath(CONFIGS[config], ROOT),
                                  flops[config]) for config in configs), TRAINING_MULTIPLIER)),
        ('command', '`python -m benchmarks.run%s`' % (' --quick' * quick)))]
    for title, kinds, text, columns in TABLES:
        columns = [column.partition(':') for column in columns.split('|')]
        lines += ['', '## ' + title, '', text.format(**dataclasses.asdict(settings)), '', table(
            '|'.join(header for header, _, _ in columns), [
                [form.format(**r) for _, _, form in columns] for r in found.values()
                if r['kind'] in kinds])]
    return '\n'.join(lines) + '\n'


def main(argv=None):
    """One hidden --measure measurement, or every one and the report."""
    parser = cli.ArgumentParser(prog='python -m benchmarks.run',
                                description=__doc__.split('\n')[0])
    parser.add_argument('--configs', type=lambda text: text.split(','), default=None,
                        help='comma-separated, from %s (default: all; with --quick, default)'
                             % ', '.join(CONFIGS))
    parser.add_argument('--quick', action='store_true',
                        help='smoke test: batch 8, one step or image, one process but XLA')
    parser.add_argument('--out', default=os.path.join(ROOT, 'benchmarks', 'results.md'),
                        help='the markdown report; the raw numbers go to the same name .json')
    parser.add_argument('--measure', default=None, help=argparse.SUPPRESS)  # KIND:CONFIG:BATCH
    args = parser.parse_args(argv)
    args.configs = args.configs or (['default'] if args.quick else list(CONFIGS))
    if set(args.configs) - set(CONFIGS):
        parser.error('--configs: expected names from %s' % ', '.join(CONFIGS))
    settings = QUICK if args.quick else Settings()
    if args.measure:
        kind, config, batch = args.measure.split(':')
        tf = cli.import_tensorflow(verbose=False)
        print(json.dumps(measure(tf, kind, load_params(CONFIGS[config]), int(batch), settings)))
        return
    load_average = os.getloadavg()
    tf = cli.import_tensorflow(verbose=False) if args.quick else None

    def run_one(kind, config, batch):
        if args.quick and kind != 'train_xla':  # in this process: quick
            return measure(tf, kind, load_params(CONFIGS[config]), batch, settings)
        return in_subprocess(kind, config, batch, args.quick)
    results = measure_all(args.configs, settings,
                          hardware.has_bf16_units(hardware.cpu_info()[1]), run_one)
    machine = describe_machine(cli.import_tensorflow(verbose=False), load_average)
    report = format_report(machine, settings, args.quick, args.configs, results)
    print(report)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as stream:
        stream.write(report)
    with open(os.path.splitext(args.out)[0] + '.json', 'w') as stream:
        json.dump({'machine': machine, 'settings': dataclasses.asdict(settings),
                   'results': results}, stream, indent=2, sort_keys=True)


if __name__ == '__main__':
    cli.run_main(main)
