"""Trains an image WaveNet on a folder of images.

Usage: python train.py [--data_dir=DIR] [--logdir=DIR] [flags]

With no --data_dir it trains on the bundled MNIST digits. A --logdir that holds a checkpoint
is resumed: --num_steps is the run's total, so a resumed run stops at that global step.
Ctrl-C or SIGTERM finishes the current step, saves a checkpoint and exits.
"""
import contextlib
import dataclasses
import os
import sys
import time

import numpy as np

from wavenet import cli

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA_DIR = os.path.join(ROOT, 'datasets', 'digits')
DEFAULT_PARAMS = os.path.join(ROOT, 'wavenet_params.json')
OPTIMIZERS = ('adam', 'sgd', 'rmsprop')
MAX_SAMPLES = 1024


def get_arguments(argv=None):
    """Parses the training flags."""
    parser = cli.ArgumentParser(
        description='Train a WaveNet image model (TensorFlow 1-style graph).')
    # Data.
    parser.add_argument('--data_dir', default=DEFAULT_DATA_DIR,
                        help='folder of images (searched recursively); train/ and test/ (or '
                             'val/) subfolders are the splits, the folder level below names '
                             'the class')
    parser.add_argument('--image_size', type=cli.image_size, default=None,
                        help='N or HxW every image is resized to, sides 1 to %d (default: '
                             'the most common size among the training images)'
                             % cli.MAX_IMAGE_SIDE)
    parser.add_argument('--channels', type=int, choices=(1, 3), default=None,
                        help='1: grayscale; 3: RGB, each pixel three sub-pixels R, G, B in the '
                             'sequence (default: the logdir\'s when resuming, else 1)')
    parser.add_argument('--validation_fraction', type=cli.fraction, default=0.1,
                        help='share of the images held out when data_dir has no split '
                             'folders, in [0, 1)')
    # Model and logdir.
    parser.add_argument('--logdir', default=os.path.join(ROOT, 'logdir'),
                        help='where checkpoints, params.json and TensorBoard events go; '
                             'resumed when it holds a checkpoint; one run at a time')
    parser.add_argument('--wavenet_params', default=None,
                        help='JSON file of model hyperparameters (default: the logdir\'s '
                             'params.json when resuming, else %s)' % DEFAULT_PARAMS)
    parser.add_argument('--gc_channels', type=cli.integer_range(0, 4096), default=None,
                        help='train a class-conditional model with a class embedding of this '
                             'size (classes are the subfolder names); overrides gc_channels '
                             'of the params file; 0: unconditional')
    # Optimization.
    parser.add_argument('--batch_size', type=cli.positive_int, default=16,
                        help='images per training step (refused when the run would not fit '
                             'in memory)')
    parser.add_argument('--num_steps', type=cli.positive_int, default=4000,
                        help='global step at which training stops')
    parser.add_argument('--learning_rate', type=cli.positive_float, default=2e-3,
                        help='initial learning rate')
    parser.add_argument('--learning_rate_schedule', choices=('constant', 'cosine'),
                        default='cosine',
                        help='constant, or cosine decay to zero at --num_steps')
    parser.add_argument('--optimizer', choices=OPTIMIZERS, default='adam',
                        help='optimizer')
    parser.add_argument('--momentum', type=cli.non_negative_float, default=0.9,
                        help='momentum of sgd and rmsprop, >= 0')
    parser.add_argument('--l2_regularization_strength', type=cli.non_negative_float,
                        default=5e-5,
                        help='weight of the L2 penalty on all weights (not biases); 0 for none')
    parser.add_argument('--dropout', type=cli.fraction, default=0.0,
                        help='share of every layer\'s gated activations dropped in training '
                             '(not in validation or generation), in [0, 1); 0: none')
    parser.add_argument('--augment_shift', type=cli.non_negative_int, default=0,
                        help='translate each training image by a random whole number of '
                             'pixels, up to this many in each direction (edge pixels '
                             'repeated), less than the image side; 0: no augmentation')
    parser.add_argument('--seed', type=cli.seed, default=0,
                        help='seed of the initialization, the data order and the split, '
                             '0 to %d' % cli.MAX_SEED)
    # Output.
    parser.add_argument('--checkpoint_every', type=cli.positive_int, default=500,
                        help='steps between checkpoints (also validation and sample grids)')
    parser.add_argument('--max_checkpoints', type=cli.positive_int, default=5,
                        help='checkpoints kept in the logdir')
    parser.add_argument('--print_every', type=cli.positive_int, default=100,
                        help='steps between progress lines')
    parser.add_argument('--summary_every', type=cli.positive_int, default=20,
                        help='steps between TensorBoard training summaries')
    parser.add_argument('--num_samples', type=cli.integer_range(0, MAX_SAMPLES), default=16,
                        help='images in the sample grid written at each checkpoint (0: none)')
    parser.add_argument('--histograms', action='store_true',
                        help='also write histograms of every variable to TensorBoard')
    parser.add_argument('--verbose', action='store_true',
                        help="show TensorFlow's own log lines and warnings")
    return parser.parse_args(argv)


def read_stored_run(logdir):
    """The RunSpec a logdir's run files hold, or None for a logdir without checkpoints or
    params.json (a new run).

    Raises:
        cli.UsageError: when the logdir holds checkpoints but its run files are missing or
            unreadable (nothing is written then).
    """
    from wavenet import checkpoints
    found = checkpoints.list_checkpoints(logdir) if os.path.isdir(logdir) else []
    if not found and not os.path.exists(os.path.join(logdir, checkpoints.PARAMS_FILE)):
        return None
    try:
        return checkpoints.read_run_files(logdir)
    except checkpoints.CheckpointError as error:
        raise cli.UsageError(
            '%s holds checkpoints up to %s but its run files cannot be read (%s): put back '
            'the params.json and data.json that its run wrote, or train into a new --logdir'
            % (logdir, found[0], error)) from None


def resolve_run(args):
    """Decides the run's spec from the flags and any earlier run in the logdir.

    Returns:
        (checkpoints.RunSpec, the newest readable checkpoint to resume or None). A new run's
        spec has image_size None (or --image_size) and classes None: the data decides them.
    Raises:
        cli.UsageError: for bad params, or params that differ from the logdir's.
    """
    from wavenet import checkpoints
    from wavenet.params import ParamsError, load_params
    stored = read_stored_run(args.logdir)
    try:
        requested = (load_params(args.wavenet_params or DEFAULT_PARAMS)
                     if args.wavenet_params or stored is None else None)
    except ParamsError as error:
        raise cli.UsageError(str(error)) from None
    if args.gc_channels is not None:
        requested = dataclasses.replace(requested or stored.params, gc_channels=args.gc_channels)
    if stored is None:
        return checkpoints.RunSpec(requested, args.image_size, None, args.channels or 1), None
    differences = stored.params.diff(requested) if requested is not None else []
    if differences:
        raise cli.UsageError(
            'the requested params differ from %s in %s: resume without --wavenet_params and '
            '--gc_channels, or train into a new --logdir'
            % (os.path.join(args.logdir, checkpoints.PARAMS_FILE), ', '.join(differences)))
    for flag, given, kept in (('--image_size', args.image_size, stored.image_size),
                              ('--channels', args.channels, stored.channels)):
        if given is not None and given != kept:
            raise cli.UsageError('%s=%s differs from %s stored in %s: resume without %s, or '
                                 'train into a new --logdir' % (flag, given, kept, args.logdir,
                                                                flag))
    return stored, newest_checkpoint(args.logdir, stored)


def newest_checkpoint(logdir, spec):
    """The newest readable checkpoint of a logdir (warning about each one skipped), checked
    against the run files' spec; None when the logdir holds no checkpoint file."""
    from wavenet import checkpoints
    try:
        checkpoint, skipped = checkpoints.newest_readable_checkpoint(logdir)
        for _, reason in skipped:
            print('warning: %s; skipped it' % reason, file=sys.stderr)
        if checkpoint is not None:
            checkpoints.check_spec(checkpoint, spec, 'the run files of %s' % logdir)
    except checkpoints.CheckpointError as error:
        raise cli.UsageError(str(error)) from None
    return checkpoint


def load_data(args, spec):
    """Reads the dataset and prints what was found; raises cli.UsageError on bad data."""
    from wavenet import reader
    try:
        dataset = reader.load_dataset(args.data_dir, spec.image_size,
                                      spec.params.quantization_channels,
                                      args.validation_fraction, args.seed, spec.channels)
    except reader.DataError as error:
        raise cli.UsageError(str(error)) from None
    for path, reason in dataset.skipped:
        print('warning: skipped %s: %s' % (path, reason), file=sys.stderr)
    if spec.params.gc_channels:
        unlabelled = [path for image_set in (dataset.train, dataset.validation)
                      for path, label in zip(image_set.files, image_set.labels) if label < 0]
        if unlabelled:
            raise cli.UsageError('class conditioning needs every image in a class folder, '
                                 'but %s is not (and %d more): put images in DIR/<class>/ '
                                 'or train without --gc_channels'
                                 % (unlabelled[0], len(unlabelled) - 1))
    if spec.classes is not None and tuple(dataset.classes) != tuple(spec.classes):
        raise cli.UsageError('%s has classes %s but %s was trained on %s: train into a new '
                             '--logdir' % (args.data_dir, list(dataset.classes), args.logdir,
                                           list(spec.classes)))
    height, width = dataset.image_size
    split = ('train/ and test/ folders' if dataset.split_source == 'folders'
             else '%.0f%% held out' % (100 * args.validation_fraction))
    print('data: %s: %d training and %d validation images (%s), %dx%d %s, %d classes%s'
          % (args.data_dir, len(dataset.train.images), len(dataset.validation.images), split,
             height, width, 'RGB' if spec.channels == 3 else 'grayscale', len(dataset.classes),
             ', %s skipped' % cli.count(len(dataset.skipped), 'file') if dataset.skipped
             else ''))
    if len(dataset.size_counts) > 1:
        print('the training images have %d sizes: %s; all are resized to %dx%d'
              % (len(dataset.size_counts), ', '.join('%dx%d (%d)' % (size + (count,))
                                                     for size, count in dataset.size_counts),
                 height, width))
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


def build_graph(args, spec, dataset):
    """The model, its training step and the reporter, in the default graph.

    Returns:
        (training.TrainingGraph, reporter.Reporter).
    """
    import tensorflow.compat.v1 as tf
    from wavenet import checkpoints, training
    from wavenet.model import WaveNetModel
    from wavenet.reporter import Reporter, ReportOptions
    tf.set_random_seed(args.seed)
    try:
        model = WaveNetModel(spec.params, spec.image_size, len(spec.classes), spec.channels)
    except ValueError as error:
        raise cli.UsageError('%s (in the params of --wavenet_params)' % error) from None
    optimization = training.Optimization(
        args.batch_size, args.num_steps, args.learning_rate, args.learning_rate_schedule,
        args.optimizer, args.momentum, args.l2_regularization_strength, args.dropout,
        args.augment_shift, args.seed)
    graph = training.build_training_graph(model, dataset.train.images, dataset.train.labels,
                                          optimization, args.histograms)
    checkpoints.run_spec_variable(spec)  # the run's identity, in every checkpoint
    reporter = Reporter(model, dataset.validation, ReportOptions(
        args.logdir, args.num_steps, args.batch_size, args.print_every, args.summary_every,
        args.checkpoint_every, args.max_checkpoints, args.num_samples))
    return graph, reporter


def train(session, graph, reporter, step, num_steps, stop):
    """Runs training steps from global step `step` to num_steps or a stop request.

    Returns:
        the global step reached.
    Raises:
        SystemExit(1) when the loss becomes NaN or infinite (nothing saved after it).
    """
    from wavenet import checkpoints
    last_saved = step if step > 0 else None  # a new run saves even when stopped at once
    while step < num_steps and not stop.requested:
        fetches = [graph.train_op, graph.loss, graph.global_step]
        if reporter.wants_summary(step + 1):
            fetches.append(graph.learning_rate)
            if graph.histograms is not None:
                fetches.append(graph.histograms)
        started = time.perf_counter()
        results = session.run(fetches)
        seconds = time.perf_counter() - started
        loss, step = results[1], results[2]
        if not np.isfinite(loss):
            reporter.close()
            print('error: the loss became %s at step %d; nothing saved after it (last good '
                  'checkpoint: %s); lower --learning_rate'
                  % (loss, step, checkpoints.newest_readable_checkpoint(
                      reporter.options.logdir)[0]), file=sys.stderr)
            sys.exit(1)
        if len(results) > 3:
            reporter.write_summary(step, loss, *results[3:])
        reporter.step_done(step, loss, seconds)
        if reporter.checkpoint_due(step):
            reporter.save(step)
            last_saved = step
    if step != last_saved:
        reporter.save(step)
    return step


def check_fits(args, spec, num_images):
    """Refuses a run that cannot fit in this machine's memory, or shifts too large.

    Args:
        args: the flags.
        spec: the RunSpec (image_size known).
        num_images: the training images (or the image files, before they are read).
    Raises:
        cli.UsageError: naming what to lower.
    """
    from wavenet import training
    height, width = spec.image_size
    if args.augment_shift >= min(height, width):
        raise cli.UsageError('--augment_shift=%d must be less than the image side (%dx%d)'
                             % (args.augment_shift, height, width))
    needed = training.estimate_memory(spec.params, height * width * spec.channels,
                                      args.batch_size, num_images)
    available = training.physical_memory()
    if needed > available:
        raise cli.UsageError(
            'a run of %d images of %dx%d in batches of %d needs about %.1f GiB, and this '
            'machine has %.1f GiB: lower --batch_size or --image_size, or use smaller params'
            % (num_images, height, width, args.batch_size, needed / 2 ** 30,
               available / 2 ** 30))


@contextlib.contextmanager
def writing_into(logdir, resume_from):
    """The block in which a run writes into its logdir: holding its lock, with failed writes
    (disk full, read-only folder) turned into one-line errors.

    Under the lock, what an interrupted writer left is removed, and the newest readable
    checkpoint must still be the one the run resumes from.
    """
    from wavenet import checkpoints
    try:
        with checkpoints.lock_logdir(logdir):
            for name in checkpoints.remove_stale_temporaries(logdir):
                print('removed %s, left by an interrupted run' % name, file=sys.stderr)
            if checkpoints.newest_readable_checkpoint(logdir)[0] != resume_from:
                raise cli.UsageError('another run wrote into %s while this one started: run '
                                     'this command again' % logdir)
            try:
                yield
            except checkpoints.WriteError:
                checkpoints.remove_stale_temporaries(logdir)
                raise
    except checkpoints.CheckpointError as error:
        raise cli.UsageError(str(error)) from None
    except (checkpoints.WriteError, OSError) as error:
        newest = checkpoints.newest_readable_checkpoint(logdir)[0] if os.path.isdir(
            logdir) else None
        raise cli.UsageError('%s: free disk space or make %s writable, or train into another '
                             '--logdir (newest good checkpoint: %s)'
                             % (error, logdir, newest)) from None


def run_session(args, spec, graph, reporter, resume_from):
    """Starts or resumes the session, trains and saves; see the module docstring."""
    import tensorflow.compat.v1 as tf
    from wavenet import checkpoints
    with tf.Session() as session, cli.StopRequest() as stop:
        session.run(graph.data_initializer, graph.data_feed)
        if resume_from:
            reporter.saver.restore(session, resume_from)
            print('resumed from %s' % resume_from)
        else:
            session.run(tf.global_variables_initializer())
        step = session.run(graph.global_step)
        if step >= args.num_steps:
            print('step %d already reached --num_steps=%d; nothing to train'
                  % (step, args.num_steps))
            return
        checkpoints.write_run_files(args.logdir, spec)
        kept = checkpoints.list_checkpoints(args.logdir)
        reporter.open(session, [prefix for prefix in reversed(kept)
                                if checkpoints.step_of(prefix) <= step])
        print('training from step %d to %d, batch %d, %s' % (step, args.num_steps,
                                                             args.batch_size, args.optimizer))
        step = train(session, graph, reporter, step, args.num_steps, stop)
        reporter.close()
        if stop.requested:
            print('interrupted at step %d; checkpoint saved in %s' % (step, args.logdir))


def main(argv=None):
    """Trains, checkpoints, validates and writes sample grids; see the module docstring."""
    args = get_arguments(argv)
    cli.import_tensorflow(args.verbose)
    from wavenet import checkpoints, reader
    try:
        checkpoints.check_not_in_use(args.logdir)
    except checkpoints.CheckpointError as error:
        raise cli.UsageError(str(error)) from None
    spec, resume_from = resolve_run(args)
    if spec.image_size is not None and os.path.isdir(args.data_dir):
        check_fits(args, spec, len(reader.list_image_files(args.data_dir)))
    dataset = load_data(args, spec)
    spec = spec._replace(image_size=dataset.image_size, classes=dataset.classes)
    check_fits(args, spec, len(dataset.train.images))
    describe_receptive_field(spec.params, spec.image_size[1], spec.channels)
    graph, reporter = build_graph(args, spec, dataset)
    if resume_from:
        try:
            checkpoints.check_variables_match(resume_from, checkpoints.variables_by_name())
        except checkpoints.CheckpointError as error:
            raise cli.UsageError('%s (or another --optimizer)' % error) from None
    with writing_into(args.logdir, resume_from):
        run_session(args, spec, graph, reporter, resume_from)


if __name__ == '__main__':
    cli.run_main(main)
