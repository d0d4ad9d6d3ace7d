"""Benchmarks of scaling out: replicas, the time to the first step, an ImageNet 32x32 epoch.

Usage: python benchmarks/scaling.py [--out=benchmarks/scaling.md] [--images=60000]

1. Training step time and images/s with 1 and 2 logical CPU replicas (train.py
   --cpu_replicas), the same global batch, on the bundled digits.
2. Time from starting train.py to its first training step, for a folder of --images 28x28 PNG
   files (made here from the bundled digits) against the same images prepared
   (datasets/prepare.py).
3. Training images/s of 32x32 RGB images on one device, and from it (and from the FLOPs per
   image of benchmarks/flops.py) an estimate of an ImageNet 32x32 epoch (1,281,167 images)
   on 1, 8 and 64 devices.
Every run is a train.py subprocess with the 32-channel params of benchmarks/params/narrow32.json
(the default params when the stored report was measured) and without dropout or shifts; the
report names the CPU.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.flops import TRAINING_MULTIPLIER, flops_per_pixel  # noqa: E402
from wavenet import hardware  # noqa: E402
from wavenet.params import load_params  # noqa: E402

DIGITS = os.path.join(ROOT, 'datasets', 'digits')
PARAMS = os.path.join(ROOT, 'benchmarks', 'params', 'narrow32.json')
IMAGENET_IMAGES = 1281167
# An assumed sustained training speed of one GPU on this model, for the paper estimate: about
# 30% of the 67 fp32 TFLOP/s of an H100 SXM (no GPU was measured here).
GPU_SUSTAINED_FLOPS = 20e12
STEP_LINE = re.compile(r'^step \d+/\d+  loss \S+  bits/dim \S+  (\S+) s/step', re.M)


def train(logdir, *flags):
    """Runs train.py; returns (stdout, seconds from the start to the 'training from' line
    and to the end)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'train.py'),
                                '--logdir=%s' % logdir, '--wavenet_params=%s' % PARAMS,
                                '--dropout=0', '--augment_shift=0', '--num_samples=0']
                               + list(flags),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, first_step = [], None
    for line in process.stdout:
        lines.append(line)
        if first_step is None and line.startswith('step '):
            first_step = time.perf_counter() - started
    errors = process.stderr.read()
    if process.wait() != 0:
        raise RuntimeError('train.py %s failed:\n%s' % (' '.join(flags), errors))
    return ''.join(lines), first_step, time.perf_counter() - started


def step_seconds(output):
    """The s/step of every progress line but the first (which holds the warm-up)."""
    return [float(value) for value in STEP_LINE.findall(output)][1:]


def measure_replicas(work, batch, steps):
    """Median s/step and images/s with 1 and 2 logical CPU replicas."""
    rows = []
    for replicas in (1, 2):
        output, _, _ = train(os.path.join(work, 'replicas%d' % replicas),
                             '--cpu_replicas=%d' % replicas, '--batch_size=%d' % batch,
                             '--num_steps=%d' % steps, '--print_every=10',
                             '--checkpoint_every=%d' % steps)
        seconds = statistics.median(step_seconds(output))
        rows.append({'replicas': replicas, 'batch': batch, 's_per_step': seconds,
                     'images_per_s': batch / seconds})
    return rows


def write_png_folder(folder, count):
    """`count` 28x28 PNG files in class folders, the bundled digits shifted round by round."""
    sources = []
    for split in ('train', 'test'):
        for name in sorted(os.listdir(os.path.join(DIGITS, split))):
            path = os.path.join(DIGITS, split, name)
            sources += [(name, os.path.join(path, file)) for file in sorted(os.listdir(path))]
    for index in range(count):
        label, path = sources[index % len(sources)]
        image = np.roll(np.asarray(Image.open(path)), index // len(sources), axis=1)
        os.makedirs(os.path.join(folder, label), exist_ok=True)
        Image.fromarray(image).save(os.path.join(folder, label, '%06d.png' % index))


def measure_first_step(work, count):
    """Seconds to the first step from a PNG folder and from the prepared dataset."""
    folder, prepared = os.path.join(work, 'pngs'), os.path.join(work, 'prepared')
    write_png_folder(folder, count)
    started = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(ROOT, 'datasets', 'prepare.py'),
                    '--data_dir=%s' % folder, '--out=%s' % prepared], check=True,
                   capture_output=True)
    preparing = time.perf_counter() - started
    rows = [{'source': 'prepared once (datasets/prepare.py)', 'seconds': preparing}]
    for name, data_dir in (('PNG folder', folder), ('prepared dataset', prepared)):
        _, first_step, _ = train(os.path.join(work, 'first_' + name.split()[0]),
                                 '--data_dir=%s' % data_dir, '--num_steps=1',
                                 '--checkpoint_every=1', '--print_every=1')
        rows.append({'source': name, 'seconds': first_step})
    return rows


def write_rgb_folder(folder, count):
    """`count` random 32x32 RGB PNG files."""
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)).save(
            os.path.join(folder, '%03d.png' % index))


def measure_imagenet_epoch(work, batch, steps):
    """Images/s of 32x32 RGB training on one device, and epoch estimates."""
    folder = os.path.join(work, 'rgb')
    write_rgb_folder(folder, 64)
    output, _, _ = train(os.path.join(work, 'rgb_run'), '--data_dir=%s' % folder,
                         '--channels=3', '--batch_size=%d' % batch,
                         '--num_steps=%d' % steps, '--print_every=10',
                         '--checkpoint_every=%d' % steps, '--validation_fraction=0')
    images_per_s = batch / statistics.median(step_seconds(output))
    flops = TRAINING_MULTIPLIER * flops_per_pixel(load_params(PARAMS)) * 32 * 32 * 3
    return {'batch': batch, 'images_per_s': images_per_s, 'training_flops_per_image': flops,
            'epoch_hours': {devices: IMAGENET_IMAGES / images_per_s / devices / 3600
                            for devices in (1, 8, 64)},
            'gpu_epoch_hours': {devices: IMAGENET_IMAGES * flops / GPU_SUSTAINED_FLOPS
                                / devices / 3600 for devices in (1, 8, 64)}}


def measure(images):
    """Every measurement, in a temporary folder: the results dict."""
    work = tempfile.mkdtemp(prefix='scaling-')
    try:
        return {'cpu': hardware.cpu_info()[0], 'date': time.strftime('%Y-%m-%d'), 'images': images,
                'replicas': measure_replicas(work, 32, 40),
                'first_step': measure_first_step(work, images),
                'imagenet': measure_imagenet_epoch(work, 32, 30)}
    finally:
        shutil.rmtree(work)


def report(results):
    """The markdown report of the three measurements."""
    lines = ['# Scaling benchmarks', '',
             '%s, %d cores, `python benchmarks/scaling.py`, %s.'
             % (results['cpu'], len(os.sched_getaffinity(0)), results['date']), '',
             '## Replicas (narrow32 params, bundled digits)', '',
             '| CPU replicas | global batch | s/step (median) | images/s |', '|---|---|---|---|']
    lines += ['| %d | %d | %.3f | %.1f |'
              % (row['replicas'], row['batch'], row['s_per_step'], row['images_per_s'])
              for row in results['replicas']]
    lines += ['', '## Time to the first training step (%s 28x28 images)' % format(
        results['images'], ','), '', '| data | seconds |', '|---|---|']
    lines += ['| %s | %.1f |' % (row['source'], row['seconds'])
              for row in results['first_step']]
    epoch = results['imagenet']
    lines += ['', '## ImageNet 32x32: one epoch, estimated', '',
              'Measured: %.1f images/s training 32x32 RGB images (narrow32 params, batch %d) on '
              'this CPU; %.2f GFLOPs of training per image (benchmarks/flops.py). For %s '
              'images, with perfect scaling: devices as fast as this CPU, and GPUs each '
              'sustaining an assumed %.0f TFLOP/s (no GPU was measured):'
              % (epoch['images_per_s'], epoch['batch'],
                 epoch['training_flops_per_image'] / 1e9, format(IMAGENET_IMAGES, ','),
                 GPU_SUSTAINED_FLOPS / 1e12), '',
              '| devices | hours per epoch, this CPU | minutes per epoch, GPUs (assumed speed) |',
              '|---|---|---|']
    lines += ['| %s | %.1f | %.1f |' % (devices, hours, 60 * epoch['gpu_epoch_hours'][devices])
              for devices, hours in sorted(epoch['epoch_hours'].items(), key=lambda item:
                                           int(item[0]))]
    return '\n'.join(lines) + '\n'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=os.path.join(ROOT, 'benchmarks', 'scaling.md'))
    parser.add_argument('--images', type=int, default=60000,
                        help='images of the time-to-first-step measurement')
    parser.add_argument('--report_only', action='store_true',
                        help='write the report again from the .json beside --out')
    args = parser.parse_args()
    if args.report_only:
        with open(os.path.splitext(args.out)[0] + '.json') as stream:
            results = json.load(stream)
    else:
        results = measure(args.images)
    markdown = report(results)
    print(markdown)
    with open(args.out, 'w') as stream:
        stream.write(markdown)
    with open(os.path.splitext(args.out)[0] + '.json', 'w') as stream:
        json.dump(results, stream, indent=2, sort_keys=True)


if __name__ == '__main__':
    main()
