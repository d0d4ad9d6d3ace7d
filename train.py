"""Trains an image WaveNet on a folder of images.

Usage: python train.py [--data_dir=DIR] [--logdir=DIR] [flags]

With no --data_dir it trains on the bundled MNIST digits. A --logdir that holds a checkpoint
is resumed: --num_steps is the run's total, so a resumed run stops at that global step.
Ctrl-C or SIGTERM finishes the current step, saves a checkpoint and exits.
"""
import argparse
import dataclasses
import math
import os
import signal
import sys
import time

import numpy as np

from wavenet import cli

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA_DIR = os.path.join(ROOT, 'datasets', 'digits')
DEFAULT_PARAMS = os.path.join(ROOT, 'wavenet_params.json')
OPTIMIZERS = ('adam', 'sgd', 'rmsprop')


def get_arguments(argv=None):
    """Parses the training flags."""
    parser = argparse.ArgumentParser(
        description='Train a WaveNet image model (TensorFlow 1-style graph).',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # Data.
    parser.add_argument('--data_dir', default=DEFAULT_DATA_DIR,
                        help='folder of images (searched recursively); train/ and test/ (or '
                             'val/) subfolders are the splits, the folder level below names '
                             'the class')
    parser.add_argument('--image_size', type=cli.image_size, default=None,
                        help='N or HxW every image is resized to (default: the size of the '
                             'first training image)')
    parser.add_argument('--channels', type=int, choices=(1, 3), default=None,
                        help='1: grayscale; 3: RGB, each pixel three sub-pixels R, G, B in the '
                             'sequence (default: the logdir\'s when resuming, else 1)')
    parser.add_argument('--validation_fraction', type=float, default=0.1,
                        help='share of the images held out when data_dir has no split folders')
    # Model and logdir.
    parser.add_argument('--logdir', default=os.path.join(ROOT, 'logdir'),
                        help='where checkpoints, params.json and TensorBoard events go; '
                             'resumed when it holds a checkpoint')
    parser.add_argument('--wavenet_params', default=None,
                        help='JSON file of model hyperparameters (default: the logdir\'s '
                             'params.json when resuming, else %s)' % DEFAULT_PARAMS)
    parser.add_argument('--gc_channels', type=cli.non_negative_int, default=None,
                        help='train a class-conditional model with a class embedding of this '
                             'size (classes are the subfolder names); overrides gc_channels '
                             'of the params file; 0: unconditional')
    # Optimization.
    parser.add_argument('--batch_size', type=cli.positive_int, default=16,
                        help='images per training step')
    parser.add_argument('--num_steps', type=cli.positive_int, default=4000,
                        help='global step at which training stops')
    parser.add_argument('--learning_rate', type=float, default=2e-3,
                        help='initial learning rate')
    parser.add_argument('--learning_rate_schedule', choices=('constant', 'cosine'),
                        default='cosine',
                        help='constant, or cosine decay to zero at --num_steps')
    parser.add_argument('--optimizer', choices=OPTIMIZERS, default='adam',
                        help='optimizer')
    parser.add_argument('--momentum', type=float, default=0.9,
                        help='momentum of sgd and rmsprop')
    parser.add_argument('--l2_regularization_strength', type=float, default=5e-5,
                        help='weight of the L2 penalty on all weights (not biases); 0 for none')
    parser.add_argument('--dropout', type=float, default=0.0,
                        help='share of every layer\'s gated activations dropped in training '
                             '(not in validation or generation); 0: none')
    parser.add_argument('--augment_shift', type=cli.non_negative_int, default=0,
                        help='translate each training image by a random whole number of '
                             'pixels, up to this many in each direction (edge pixels '
                             'repeated); 0: no augmentation')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the initialization, the data order and the split')
    # Output.
    parser.add_argument('--checkpoint_every', type=cli.positive_int, default=500,
                        help='steps between checkpoints (also validation and sample grids)')
    parser.add_argument('--max_checkpoints', type=cli.positive_int, default=5,
                        help='checkpoints kept in the logdir')
    parser.add_argument('--print_every', type=cli.positive_int, default=100,
                        help='steps between progress lines')
    parser.add_argument('--summary_every', type=cli.positive_int, default=20,
                        help='steps between TensorBoard training summaries')
    parser.add_argument('--num_samples', type=cli.non_negative_int, default=16,
                        help='images in the sample grid written at each checkpoint (0: none)')
    parser.add_argument('--histograms', action='store_true',
                        help='also write histograms of every variable to TensorBoard')
    parser.add_argument('--verbose', action='store_true',
                        help="show TensorFlow's own log lines and warnings")
    args = parser.parse_args(argv)
    if args.learning_rate <= 0 or not math.isfinite(args.learning_rate):
        parser.error('--learning_rate must be a positive number')
    if not 0 <= args.dropout < 1:
        parser.error('--dropout must be in [0, 1)')
    if not 0 <= args.validation_fraction < 1:
        parser.error('--validation_fraction must be in [0, 1)')
    return args


class StopRequest:
    """Turns the first SIGINT/SIGTERM into a request to stop after the current step.

    A second signal exits at once; checkpoint files are written under temporary names and
    renamed, so the last good checkpoint stays intact.
    """

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, _):
        if self.requested:
            print('\nsecond %s: exiting now; the last saved checkpoint is kept'
                  % signal.Signals(signum).name, file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.requested = True
        print('\n%s: finishing this step and saving (again to exit at once)'
              % signal.Signals(signum).name, file=sys.stderr, flush=True)


def resolve_run(args, tf):
    """Decides params and image size from the flags and any earlier run in the logdir.

    Returns:
        (params, image_size or None, stored classes or None, channels, checkpoint to resume
        or None).
    Raises:
        cli.UsageError: for bad params, or params that differ from the logdir's.
    """
    from wavenet import logdir
    from wavenet.params import ParamsError, load_params
    stored_path = os.path.join(args.logdir, logdir.PARAMS_FILE)
    resuming = os.path.exists(stored_path)
    try:
        requested = (load_params(args.wavenet_params or DEFAULT_PARAMS)
                     if args.wavenet_params or not resuming else None)
        if resuming:
            params, image_size, classes, channels = logdir.read_run_files(args.logdir)
    except (ParamsError, logdir.CheckpointError) as error:
        raise cli.UsageError(str(error)) from None
    if args.gc_channels is not None:
        requested = dataclasses.replace(requested or params, gc_channels=args.gc_channels)
    if not resuming:
        return requested, args.image_size, None, args.channels or 1, None
    if requested is not None and params.diff(requested):
        raise cli.UsageError(
            'the requested params differ from %s in %s: resume without --wavenet_params and '
            '--gc_channels, or train into a new --logdir'
            % (stored_path, ', '.join(params.diff(requested))))
    if args.image_size is not None and tuple(args.image_size) != image_size:
        raise cli.UsageError('--image_size=%dx%d differs from %dx%d stored in %s: resume '
                             'without --image_size, or train into a new --logdir'
                             % (args.image_size + image_size + (args.logdir,)))
    if args.channels is not None and args.channels != channels:
        raise cli.UsageError('--channels=%d differs from %d stored in %s: resume without '
                             '--channels, or train into a new --logdir'
                             % (args.channels, channels, args.logdir))
    return params, image_size, classes, channels, tf.train.latest_checkpoint(args.logdir)


def load_data(args, params, image_size, stored_classes, channels):
    """Reads the dataset and prints what was found; raises cli.UsageError on bad data."""
    from wavenet import reader
    try:
        dataset = reader.load_dataset(args.data_dir, image_size, params.quantization_channels,
                                      args.validation_fraction, args.seed, channels)
    except reader.DataError as error:
        raise cli.UsageError(str(error)) from None
    for path, reason in dataset.skipped:
        print('warning: skipped %s: %s' % (path, reason), file=sys.stderr)
    if params.gc_channels:
        for image_set in (dataset.train, dataset.validation):
            unlabelled = [path for path, label in zip(image_set.files, image_set.labels)
                          if label < 0]
            if unlabelled:
                raise cli.UsageError('class conditioning needs every image in a class folder, '
                                     'but %s is not (and %d more): put images in DIR/<class>/ '
                                     'or train without --gc_channels'
                                     % (unlabelled[0], len(unlabelled) - 1))
    if stored_classes is not None and tuple(dataset.classes) != tuple(stored_classes):
        raise cli.UsageError('%s has classes %s but %s was trained on %s: train into a new '
                             '--logdir' % (args.data_dir, list(dataset.classes), args.logdir,
                                           list(stored_classes)))
    height, width = dataset.image_size
    split = ('train/ and %s/ folders' % 'test' if dataset.split_source == 'folders'
             else '%.0f%% held out' % (100 * args.validation_fraction))
    print('data: %s: %d training and %d validation images (%s), %dx%d %s, %d classes%s'
          % (args.data_dir, len(dataset.train.images), len(dataset.validation.images), split,
             height, width, 'RGB' if channels == 3 else 'grayscale', len(dataset.classes),
             ', %d files skipped' % len(dataset.skipped) if dataset.skipped else ''))
    return dataset


def describe_receptive_field(params, image_width, channels):
    """Prints the receptive field; warns when it is shorter than one image row."""
    field = params.receptive_field
    row = image_width * channels
    unit = 'sub-pixels' if channels > 1 else 'pixels'
    print('receptive field: %d %s (%.1f rows of %d)' % (field, unit, field / row, row))
    if field < row:
        print('warning: the receptive field is shorter than one image row: pixels cannot see '
              'the pixel above them; add dilations', file=sys.stderr)


def make_optimizer(tf, name, learning_rate, momentum):
    """Returns the tf.train optimizer called `name`."""
    if name == 'adam':
        return tf.train.AdamOptimizer(learning_rate)
    if name == 'sgd':
        return tf.train.MomentumOptimizer(learning_rate, momentum)
    return tf.train.RMSPropOptimizer(learning_rate, momentum=momentum, epsilon=1e-5)


def main(argv=None):
    """Trains, checkpoints, validates and writes sample grids; see the module docstring."""
    args = get_arguments(argv)
    tf = cli.import_tensorflow(args.verbose)
    from wavenet import image_grid, logdir, ops, reader
    from wavenet.evaluate import bits_per_dim
    from wavenet.generation import generate_fast
    from wavenet.model import Dropout, WaveNetModel

    params, image_size, stored_classes, channels, resume_from = resolve_run(args, tf)
    dataset = load_data(args, params, image_size, stored_classes, channels)
    height, width = dataset.image_size
    num_pixels = height * width * channels  # sub-pixels per image sequence
    describe_receptive_field(params, width, channels)
    # [N, T]: raster order, the channels of each pixel next to each other.
    train_images = dataset.train.images.reshape(len(dataset.train.images), num_pixels)

    tf.set_random_seed(args.seed)
    try:
        model = WaveNetModel(params, dataset.image_size, len(dataset.classes), channels)
    except ValueError as error:
        raise cli.UsageError('%s (in the params of --wavenet_params)' % error) from None
    global_step = tf.train.get_or_create_global_step()
    images_input = tf.placeholder(tf.uint8, train_images.shape, name='images_input')
    labels_input = tf.placeholder(tf.int32, [len(train_images)], name='labels_input')
    # The training set lives in the graph; the batch is a function of the global step.
    data_variables = [tf.Variable(initial, trainable=False, name=name,
                                  collections=[tf.GraphKeys.LOCAL_VARIABLES])
                      for initial, name in [(images_input, 'train_images'),
                                            (labels_input, 'train_labels')]]
    batch_indices = ops.shuffled_batch_indices(global_step, len(train_images), args.batch_size,
                                               args.seed)
    batch = tf.gather(data_variables[0], batch_indices)  # [B, T] uint8
    if args.augment_shift:
        offsets = ops.random_offsets(global_step, args.batch_size, args.augment_shift, args.seed)
        images = tf.reshape(batch, [args.batch_size, height, width, channels])
        batch = tf.reshape(ops.translate_images(images, offsets), [args.batch_size, num_pixels])
    batch_labels = tf.gather(data_variables[1], batch_indices) if model.conditional else None
    # Dropout masks, like the batch, are a function of the seed and the step: exact resume.
    dropout = Dropout(args.dropout, ops.stateless_seed(args.seed, global_step))
    loss = model.loss(tf.cast(batch, tf.int32), batch_labels, dropout)
    if args.learning_rate_schedule == 'cosine':
        learning_rate = tf.train.cosine_decay(args.learning_rate, global_step, args.num_steps)
    else:
        learning_rate = tf.constant(args.learning_rate)
    objective = loss
    if args.l2_regularization_strength > 0:
        objective += args.l2_regularization_strength * tf.add_n(
            [tf.nn.l2_loss(weight) for weight in model.weights()])
    optimizer = make_optimizer(tf, args.optimizer, learning_rate, args.momentum)
    train_op = optimizer.minimize(objective, global_step=global_step)

    bits = ops.nats_to_bits(loss)
    summaries = [tf.summary.scalar('train/loss', loss),
                 tf.summary.scalar('train/bits_per_dim', bits),
                 tf.summary.scalar('train/learning_rate', learning_rate)]
    if args.histograms:
        summaries += [tf.summary.histogram('histograms/' + variable.op.name, variable)
                      for variable in tf.trainable_variables()]
    summary_op = tf.summary.merge(summaries)

    eval_input = tf.placeholder(tf.int32, [None, num_pixels], name='eval_pixels')
    eval_labels = tf.placeholder(tf.int32, [None], name='eval_labels') if model.conditional \
        else None
    eval_nats = model.nats_per_image(eval_input, eval_labels)
    generator = model.fast_generator(args.num_samples) if args.num_samples else None
    # A conditional model's sample grid cycles through the classes.
    sample_labels = (np.arange(args.num_samples) % len(dataset.classes) if model.conditional
                     else None)

    # Relative paths in the `checkpoint` index: a moved or copied logdir still resumes.
    saver = tf.train.Saver(tf.global_variables(), max_to_keep=args.max_checkpoints,
                           save_relative_paths=True)
    if resume_from:
        try:
            logdir.check_variables_match(resume_from, tf.global_variables())
        except logdir.CheckpointError as error:
            raise cli.UsageError(str(error)) from None

    with tf.Session() as session, StopRequest() as stop:
        session.run([variable.initializer for variable in data_variables],
                    {images_input: train_images, labels_input: dataset.train.labels})
        if resume_from:
            saver.restore(session, resume_from)
            print('resumed from %s' % resume_from)
        else:
            session.run(tf.global_variables_initializer())
        step = session.run(global_step)
        if step >= args.num_steps:
            print('step %d already reached --num_steps=%d; nothing to train' % (step,
                                                                                args.num_steps))
            return
        logdir.write_run_files(args.logdir, params, dataset.image_size, dataset.classes,
                               channels)
        writer = tf.summary.FileWriter(args.logdir, session.graph)

        def save_checkpoint(step):
            path = saver.save(session, os.path.join(args.logdir, logdir.CHECKPOINT_PREFIX),
                              global_step=step, write_meta_graph=False)
            report = ['saved %s' % path]
            if len(dataset.validation.images):
                validation_bits = bits_per_dim(session, eval_nats, eval_input,
                                               dataset.validation.images, 100, eval_labels,
                                               dataset.validation.labels)
                writer.add_summary(tf.Summary(value=[tf.Summary.Value(
                    tag='validation/bits_per_dim', simple_value=validation_bits)]), step)
                report.append('validation bits/dim %.4f' % validation_bits)
            if generator is not None:
                samples = generate_fast(session, generator, num_pixels, sample_labels)
                levels = image_grid.as_images(samples, dataset.image_size, channels)
                grid = image_grid.tile(reader.dequantize(levels, params.quantization_channels),
                                       columns=int(math.ceil(math.sqrt(len(levels)))))
                image_grid.save_png(os.path.join(args.logdir, 'samples',
                                                 'samples-%d.png' % step), grid)
                writer.add_summary(tf.Summary(value=[tf.Summary.Value(
                    tag='samples', image=tf.Summary.Image(
                        height=grid.shape[0], width=grid.shape[1], colorspace=channels,
                        encoded_image_string=image_grid.encode_png(grid)))]), step)
            writer.flush()
            print('step %d: %s' % (step, ', '.join(report)), flush=True)

        print('training from step %d to %d, batch %d, %s' % (step, args.num_steps,
                                                             args.batch_size, args.optimizer))
        last_saved = step if resume_from else None
        interval_losses, interval_seconds = [], 0.0
        while step < args.num_steps and not stop.requested:
            fetches = [train_op, loss, global_step]
            write_summary = (step + 1) % args.summary_every == 0
            if write_summary:
                fetches.append(summary_op)
            step_start = time.perf_counter()
            results = session.run(fetches)
            interval_seconds += time.perf_counter() - step_start
            loss_value, step = results[1], results[2]
            if not np.isfinite(loss_value):
                writer.close()
                last = tf.train.latest_checkpoint(args.logdir)
                print('error: the loss became %s at step %d; nothing saved after it (last good '
                      'checkpoint: %s); lower --learning_rate' % (loss_value, step, last),
                      file=sys.stderr)
                sys.exit(1)
            if write_summary:
                writer.add_summary(results[3], step)
            interval_losses.append(loss_value)
            if step % args.print_every == 0 or step == args.num_steps:
                seconds_per_step = interval_seconds / len(interval_losses)
                mean_loss = float(np.mean(interval_losses))
                print('step %d/%d  loss %.4f  bits/dim %.4f  %.3f s/step  %.0f pixels/s'
                      % (step, args.num_steps, mean_loss, mean_loss / math.log(2),
                         seconds_per_step, args.batch_size * num_pixels / seconds_per_step),
                      flush=True)
                interval_losses, interval_seconds = [], 0.0
            if step % args.checkpoint_every == 0 or step == args.num_steps:
                save_checkpoint(step)
                last_saved = step
        if step != last_saved:
            save_checkpoint(step)
        writer.close()
        if stop.requested:
            print('interrupted at step %d; checkpoint saved in %s' % (step, args.logdir))


if __name__ == '__main__':
    cli.run_main(main)
