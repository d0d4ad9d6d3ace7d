"""Training steps with XLA off and on, each in its own process, alternating: the same
training graph as train.py builds it (over random images), one session per process, the
processes run in turns (off, on, on, off, ...) so that a drifting machine affects both
settings alike. Only the XLA process gets TF_XLA_FLAGS=--tf_xla_cpu_global_jit, as in
train.py: the flag alone slows a session without XLA, so a comparison inside one process
(both sessions under the flag) favours XLA.

    python benchmarks/xla_steps.py [--params=wavenet_params.json] [--batch_sizes=16,32]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from wavenet import hardware  # noqa: E402  (no TensorFlow yet)

WARMUP_STEPS = 5  # the first steps compile


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--params', default=os.path.join(ROOT, 'wavenet_params.json'),
                        help='model hyperparameters (JSON)')
    parser.add_argument('--batch_sizes', default='16,32',
                        help='comma-separated batch sizes')
    parser.add_argument('--steps', type=int, default=30,
                        help='timed steps per process, after %d' % WARMUP_STEPS)
    parser.add_argument('--rounds', type=int, default=3,
                        help='processes per setting and batch size')
    parser.add_argument('--image_side', type=int, default=28, help='images are square')
    parser.add_argument('--measure', choices=('off', 'on'), default=None,
                        help=argparse.SUPPRESS)  # one process's side: prints its step times
    parser.add_argument('--batch_size', type=int, default=16, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def step_seconds(params_path, xla, batch, steps, side):
    """Seconds of each timed training step in this process, XLA `xla` (a bool)."""
    import tensorflow.compat.v1 as tf
    from wavenet import training
    from wavenet.model import WaveNetModel
    from wavenet.params import load_params
    tf.disable_eager_execution()
    params = load_params(params_path)
    rng = np.random.default_rng(0)
    images = rng.integers(0, params.quantization_channels, (512, side, side, 1), np.uint8)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        model = WaveNetModel(params, (side, side), 0, 1)
        optimization = training.Optimization(batch, 1000, 2e-3, 'cosine', 'adam', 0.9, 5e-5,
                                             0.0, 0, 0)
        graph = training.build_training_graph(model, images, np.zeros(512, np.int32),
                                              optimization)
        config = hardware.use_xla(tf.ConfigProto(), xla)
        seconds = []
        with tf.Session(config=config) as session:
            session.run(tf.global_variables_initializer())
            for step in range(WARMUP_STEPS + steps):
                started = time.perf_counter()
                session.run(graph.step)
                if step >= WARMUP_STEPS:
                    seconds.append(time.perf_counter() - started)
    return seconds


def process_environment(xla):
    """os.environ for a measuring process: TF_XLA_FLAGS with the CPU flag when `xla`, without
    it otherwise."""
    environment = dict(os.environ)
    environment.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    flags = [flag for flag in environment.pop('TF_XLA_FLAGS', '').split()
             if flag != hardware.XLA_FLAGS]
    if xla:
        flags.append(hardware.XLA_FLAGS)
    if flags:
        environment['TF_XLA_FLAGS'] = ' '.join(flags)
    return environment


def median_in_process(args, xla, batch):
    """Median seconds per step of a fresh process with XLA `xla`, batch `batch`."""
    command = [sys.executable, os.path.abspath(__file__), '--measure', 'on' if xla else 'off',
               '--params', args.params, '--batch_size', str(batch), '--steps', str(args.steps),
               '--image_side', str(args.image_side)]
    output = subprocess.run(command, env=process_environment(xla), check=True,
                            stdout=subprocess.PIPE, text=True).stdout
    return statistics.median(json.loads(output.strip().splitlines()[-1]))


def alternating_medians(args, batch):
    """({False: [...], True: [...]}) medians per process, the settings in turns."""
    medians = {False: [], True: []}
    for round_index in range(args.rounds):
        for xla in (False, True) if round_index % 2 == 0 else (True, False):
            medians[xla].append(median_in_process(args, xla, batch))
    return medians


def main(argv=None):
    args = parse_arguments(argv)
    if args.measure:
        print(json.dumps(step_seconds(args.params, args.measure == 'on', args.batch_size,
                                      args.steps, args.image_side)))
        return
    print('%s, %d cores; %s; %dx%d images; per process the median of %d steps, %d processes '
          'per setting' % (hardware.cpu_info()[0], len(os.sched_getaffinity(0)),
                           os.path.basename(args.params), args.image_side, args.image_side,
                           args.steps, args.rounds))
    print('| batch | XLA off (ms/step, per process) | XLA on (ms/step, per process) '
          '| speed-up (median off / median on) |')
    print('|---|---|---|---|')
    for batch in [int(text) for text in args.batch_sizes.split(',')]:
        medians = alternating_medians(args, batch)
        off, on = statistics.median(medians[False]), statistics.median(medians[True])
        print('| %d | %s | %s | %.2fx |' % (
            batch, ', '.join('%.0f' % (1000 * value) for value in medians[False]),
            ', '.join('%.0f' % (1000 * value) for value in medians[True]), off / on),
            flush=True)


if __name__ == '__main__':
    main()
