"""Scaling out: CPU replicas, the time to the first step, an ImageNet 32x32 epoch.

    python -m benchmarks.scaling [--out=benchmarks/scaling.md] [--images=60000]

Every run is a train.py process with benchmarks/params/narrow32.json, batch 32, no dropout or
shifts: the median s/step with 1 and 2 logical CPU replicas; the seconds to the first step
from --images PNG files and from the same images prepared; the images/s of 32x32 RGB images,
and from it the hours of an ImageNet 32x32 epoch (benchmarks/README.md).
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from benchmarks import table
from benchmarks.flops import TRAINING_MULTIPLIER, flops_per_pixel
from wavenet import cli, hardware
from wavenet.params import load_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, 'datasets', 'digits')
PARAMS = os.path.join(ROOT, 'benchmarks', 'params', 'narrow32.json')
IMAGENET_IMAGES, BATCH = 1281167, 32
GPU_FLOPS = 20e12  # assumed: about 30% of an H100's 67 fp32 TFLOP/s (no GPU was measured)
STEP_LINE = re.compile(r'^step \d+/\d+  loss \S+  bits/dim \S+  (\S+) s/step', re.M)


def train(work, name, *flags):
    """Runs train.py into work/name: (its output, seconds from the start to its first step)."""
    started, first_step, lines = time.perf_counter(), None, []
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, 'train.py'), '--logdir=%s' % os.path.join(work, name),
         '--wavenet_params=%s' % PARAMS, '--dropout=0', '--augment_shift=0', '--num_samples=0',
         '--checkpoint_every=1000'] + list(flags), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        lines.append(line)
        if first_step is None and line.startswith('step '):
            first_step = time.perf_counter() - started
    if process.wait():
        raise RuntimeError('train.py %s failed:\n%s' % (' '.join(flags), process.stderr.read()))
    return ''.join(lines), first_step


def step_seconds(output):
    """The s/step of every progress line of train.py's output but the first (the warm-up)."""
    return [float(value) for value in STEP_LINE.findall(output)][1:]


def median_step(work, name, steps, *flags):
    """The median s/step of a train.py run of `steps` steps of batch BATCH."""
    output, _ = train(work, name, '--batch_size=%d' % BATCH, '--num_steps=%d' % steps,
                      '--print_every=10', *flags)
    return statistics.median(step_seconds(output))


def measure(images):
    """The three measurements, in a temporary folder: the results dict."""
    with tempfile.TemporaryDirectory(prefix='scaling-') as work:
        seconds = [median_step(work, 'replicas%d' % count, 40, '--cpu_replicas=%d' % count)
                   for count in (1, 2)]
        pngs, prepared, rgb = (os.path.join(work, name) for name in ('pngs', 'prepared', 'rgb'))
        digits = sorted((os.path.basename(root), os.path.join(root, file))
                        for root, _, files in os.walk(DIGITS) for file in files)
        for index in range(images):  # the digits, shifted a pixel further each round
            label, path = digits[index % len(digits)]
            os.makedirs(os.path.join(pngs, label), exist_ok=True)
            Image.fromarray(np.roll(np.asarray(Image.open(path)), index // len(digits), axis=1)
                            ).save(os.path.join(pngs, label, '%06d.png' % index))
        started = time.perf_counter()
        subprocess.run([sys.executable, '-m', 'datasets.prepare', '--data_dir=%s' % pngs,
                        '--out=%s' % prepared], cwd=ROOT, check=True, capture_output=True)
        first_step = [{'source': 'prepared once (python -m datasets.prepare)',
                       'seconds': time.perf_counter() - started}] + [
            {'source': source, 'seconds': train(work, source.split()[0], '--data_dir=%s' % data,
                                                '--num_steps=1', '--print_every=1')[1]}
            for source, data in (('PNG folder', pngs), ('prepared dataset', prepared))]
        os.makedirs(rgb)
        for index in range(64):
            Image.fromarray(np.random.default_rng(index).integers(0, 256, (32, 32, 3), np.uint8)
                            ).save(os.path.join(rgb, '%02d.png' % index))
        rate = BATCH / median_step(work, 'rgb_run', 30, '--data_dir=%s' % rgb, '--channels=3',
                                   '--validation_fraction=0')
    return {'cpu': hardware.cpu_info()[0], 'date': time.strftime('%Y-%m-%d'), 'images': images,
            'replicas': [{'replicas': count, 'batch': BATCH, 's_per_step': step,
                          'images_per_s': BATCH / step} for count, step in zip((1, 2), seconds)],
            'first_step': first_step, 'imagenet': {
                'batch': BATCH, 'images_per_s': rate, 'training_flops_per_image':
                TRAINING_MULTIPLIER * flops_per_pixel(load_params(PARAMS)) * 32 * 32 * 3}}


def report(results):
    """The markdown report of the three measurements."""
    epoch = results['imagenet']
    return '\n\n'.join([
        '# Scaling benchmarks', '%s, %d cores, `python -m benchmarks.scaling`, %s.' % (
            results['cpu'], len(os.sched_getaffinity(0)), results['date']),
        '## Replicas (narrow32 params, bundled digits)', table(
            'CPU replicas|global batch|s/step (median)|images/s', [(
                '%(replicas)d|%(batch)d|%(s_per_step).3f|%(images_per_s).1f' % row).split('|')
                for row in results['replicas']]),
        '## Time to the first training step ({:,} 28x28 images)'.format(results['images']),
        table('data|seconds', [[row['source'], '%.1f' % row['seconds']]
                               for row in results['first_step']]),
        '## ImageNet 32x32: one epoch, estimated',
        'Measured: %.1f images/s training 32x32 RGB images (batch %d) here; %.2f GFLOPs of '
        'training per image. For {:,} images, with perfect scaling, on devices as fast as this '
        'CPU and on GPUs each sustaining an assumed %.0f TFLOP/s:'.format(IMAGENET_IMAGES) % (
            epoch['images_per_s'], epoch['batch'], epoch['training_flops_per_image'] / 1e9,
            GPU_FLOPS / 1e12),
        table('devices|hours per epoch, this CPU|minutes per epoch, GPUs (assumed speed)', [
            ['%d' % devices, '%.1f' % (IMAGENET_IMAGES / epoch['images_per_s'] / devices / 3600),
             '%.1f' % (IMAGENET_IMAGES * epoch['training_flops_per_image'] / GPU_FLOPS / devices
                       / 60)] for devices in (1, 8, 64)])]) + '\n'


def main(argv=None):
    """Measures, prints and writes the report and the raw numbers."""
    parser = cli.ArgumentParser(prog='python -m benchmarks.scaling',
                                description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=os.path.join(ROOT, 'benchmarks', 'scaling.md'),
                        help='the markdown report; the raw numbers go to the same name .json')
    parser.add_argument('--images', type=cli.positive_int, default=60000,
                        help='images of the time-to-first-step measurement')
    args = parser.parse_args(argv)
    results = measure(args.images)
    with open(os.path.splitext(args.out)[0] + '.json', 'w') as stream:
        json.dump(results, stream, indent=2, sort_keys=True)
    with open(args.out, 'w') as stream:
        stream.write(report(results))
    print(report(results))


if __name__ == '__main__':
    cli.run_main(main)
