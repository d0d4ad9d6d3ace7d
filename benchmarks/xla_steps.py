"""Training steps with XLA off and on, paired: one process, one training graph (as train.py
builds it, over random images), two sessions, alternating steps. Time drifts on shared
machines; pairing the steps keeps the drift out of the ratio.

    python benchmarks/xla_steps.py [--params=wavenet_params.json] [--batch_sizes=16,32]
"""
import argparse
import os
import statistics
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
    parser.add_argument('--steps', type=int, default=40,
                        help='timed steps per session and batch size, after %d' % WARMUP_STEPS)
    parser.add_argument('--image_side', type=int, default=28, help='images are square')
    return parser.parse_args(argv)


def paired_steps(tf, params, batch, steps, side):
    """Median seconds per step of the same training graph without and with XLA."""
    from wavenet import training
    from wavenet.model import WaveNetModel
    rng = np.random.default_rng(0)
    images = rng.integers(0, params.quantization_channels, (512, side, side, 1), np.uint8)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        model = WaveNetModel(params, (side, side), 0, 1)
        optimization = training.Optimization(batch, 1000, 2e-3, 'cosine', 'adam', 0.9, 5e-5,
                                             0.0, 0, 0)
        graph = training.build_training_graph(model, images, np.zeros(512, np.int32),
                                              optimization)
        initialize = tf.global_variables_initializer()
        sessions = {xla: tf.Session(config=hardware.use_xla(tf.ConfigProto(), xla))
                    for xla in (False, True)}
        seconds = {False: [], True: []}
        for session in sessions.values():
            session.run(initialize)
        for step in range(WARMUP_STEPS + steps):
            for xla in (False, True) if step % 2 else (True, False):
                started = time.perf_counter()
                sessions[xla].run(graph.step)
                if step >= WARMUP_STEPS:
                    seconds[xla].append(time.perf_counter() - started)
        for session in sessions.values():
            session.close()
    return statistics.median(seconds[False]), statistics.median(seconds[True])


def main(argv=None):
    args = parse_arguments(argv)
    os.environ['TF_XLA_FLAGS'] = hardware.xla_environment(os.environ.get('TF_XLA_FLAGS'))
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    import tensorflow.compat.v1 as tf
    from wavenet.params import load_params
    tf.disable_eager_execution()
    params = load_params(args.params)
    print('%s, %d cores; %s; %dx%d images, median of %d steps' % (
        hardware.cpu_info()[0], len(os.sched_getaffinity(0)), os.path.basename(args.params),
        args.image_side, args.image_side, args.steps))
    print('| batch | XLA off (ms/step) | XLA on (ms/step) | speed-up |')
    print('|---|---|---|---|')
    for batch in [int(text) for text in args.batch_sizes.split(',')]:
        off, on = paired_steps(tf, params, batch, args.steps, args.image_side)
        print('| %d | %.0f | %.0f | %.2fx |' % (batch, 1000 * off, 1000 * on, off / on),
              flush=True)


if __name__ == '__main__':
    main()
