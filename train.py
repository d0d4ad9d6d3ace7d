"""Trains an image WaveNet on a folder of images.

Usage: python train.py [--data_dir=DIR] [--logdir=DIR] [flags]
       python train.py --num_gpus=N | --cpu_replicas=N ...     (data-parallel, one machine)
       python train.py --worker_hosts=H:P,H:P,... --task_index=I ...   (a cluster; or TF_CONFIG)

With no --data_dir it trains on the bundled MNIST digits. A --logdir that holds a checkpoint
is resumed from its newest readable one: --num_steps is the run's total, so a resumed run
stops at that global step. Ctrl-C or SIGTERM finishes the current step, saves a checkpoint
and exits. One run at a time writes a logdir.
"""
import contextlib
import dataclasses
import os
import sys
import time

import numpy as np

from wavenet import cli, hardware  # no TensorFlow at import: --help stays quick

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA_DIR = os.path.join(ROOT, 'datasets', 'digits')
DEFAULT_PARAMS = os.path.join(ROOT, 'wavenet_params.json')
OPTIMIZERS = ('adam', 'sgd', 'rmsprop')
MAX_SAMPLES = 1024
# What a run keeps from start to end: chosen when it starts (these defaults where no flag is
# given), stored in LOGDIR/training.json, taken from there when it resumes. A flag that
# differs from the stored value is refused: a resumed run goes on exactly where it stopped.
RUN_OPTIONS = {'batch_size': 8, 'learning_rate': 6e-3, 'learning_rate_schedule': 'cosine',
               'optimizer': 'adam', 'momentum': 0.9, 'l2_regularization_strength': 5e-5,
               'dropout': 0.0, 'augment_shift': 0, 'seed': 0, 'validation_fraction': 0.1,
               'precision': 'fp32'}


def kept_default(name):
    """The help text's default of a run option."""
    return ' (default: %s; when resuming, the run\'s)' % RUN_OPTIONS[name]


def add_data_flags(group):
    """The data flags."""
    group.add_argument('--data_dir', default=DEFAULT_DATA_DIR,
                       help='folder of images (searched recursively; train/ and test/ (or '
                            'val/) subfolders are the splits, the folder level below names '
                            'the class), or a prepared dataset (datasets/prepare.py), read '
                            'memory-mapped')
    group.add_argument('--image_size', type=cli.image_size, default=None,
                       help='N or HxW every image is resized to, sides 1 to %d (default: '
                            'the most common size among the training images)'
                            % cli.MAX_IMAGE_SIDE)
    group.add_argument('--channels', type=int, choices=(1, 3), default=None,
                       help='1: grayscale; 3: RGB, each pixel three sub-pixels R, G, B in the '
                            'sequence (default: the logdir\'s when resuming, else 1)')
    group.add_argument('--validation_fraction', type=cli.fraction, default=None,
                       help='share of the images held out when data_dir has no split '
                            'folders, in [0, 1)' + kept_default('validation_fraction'))


def add_model_flags(group):
    """The model and logdir flags."""
    group.add_argument('--logdir', default=os.path.join(ROOT, 'logdir'),
                       help='where checkpoints, params.json and TensorBoard events go; '
                            'resumed when it holds a checkpoint; one run at a time')
    group.add_argument('--wavenet_params', default=None,
                       help='JSON file of model hyperparameters (default: the logdir\'s '
                            'params.json when resuming, else %s)' % DEFAULT_PARAMS)
    group.add_argument('--gc_channels', type=cli.integer_range(0, 4096), default=None,
                       help='train a class-conditional model with a class embedding of this '
                            'size (classes are the subfolder names); overrides gc_channels '
                            'of the params file; 0: unconditional')


def add_optimization_flags(group):
    """The optimization flags."""
    group.add_argument('--batch_size', type=cli.positive_int, default=None,
                       help='images per training step, split between the replicas (refused '
                            'when the run would not fit in memory)' + kept_default('batch_size'))
    group.add_argument('--num_steps', type=cli.positive_int, default=4200,
                       help='global step at which training stops')
    group.add_argument('--learning_rate', type=cli.positive_float, default=None,
                       help='initial learning rate' + kept_default('learning_rate'))
    group.add_argument('--learning_rate_schedule', choices=('constant', 'cosine'),
                       default=None,
                       help='constant, or cosine decay to zero at --num_steps'
                            + kept_default('learning_rate_schedule'))
    group.add_argument('--optimizer', choices=OPTIMIZERS, default=None,
                       help='optimizer' + kept_default('optimizer'))
    group.add_argument('--momentum', type=cli.non_negative_float, default=None,
                       help='momentum of sgd and rmsprop, >= 0' + kept_default('momentum'))
    group.add_argument('--l2_regularization_strength', type=cli.non_negative_float,
                       default=None,
                       help='weight of the L2 penalty on all weights (not biases); 0 for none'
                            + kept_default('l2_regularization_strength'))
    group.add_argument('--dropout', type=cli.fraction, default=None,
                       help='share of every layer\'s gated activations dropped in training '
                            '(not in validation or generation), in [0, 1); 0: none'
                            + kept_default('dropout'))
    group.add_argument('--augment_shift', type=cli.non_negative_int, default=None,
                       help='translate each training image by a random whole number of '
                            'pixels, up to this many in each direction (edge pixels '
                            'repeated), less than the image side; 0: no augmentation'
                            + kept_default('augment_shift'))
    group.add_argument('--seed', type=cli.seed, default=None,
                       help='seed of the initialization, the data order and the split, '
                            '0 to %d' % cli.MAX_SEED + kept_default('seed'))


def add_output_flags(group):
    """The output flags."""
    group.add_argument('--checkpoint_every', type=cli.positive_int, default=1000,
                       help='steps between checkpoints (also validation and sample grids)')
    group.add_argument('--max_checkpoints', type=cli.positive_int, default=5,
                       help='checkpoints kept in the logdir')
    group.add_argument('--print_every', type=cli.positive_int, default=100,
                       help='steps between progress lines')
    group.add_argument('--summary_every', type=cli.positive_int, default=20,
                       help='steps between TensorBoard training summaries')
    group.add_argument('--num_samples', type=cli.integer_range(0, MAX_SAMPLES), default=16,
                       help='images in the sample grid written at each checkpoint (0: none)')
    group.add_argument('--histograms', action='store_true',
                       help='also write histograms of every variable to TensorBoard')


def add_devices_flags(group):
    """The devices and machines flags."""
    group.add_argument('--num_gpus', type=cli.integer_range(0, 64), default=0,
                       help='train data-parallel on this many GPUs of this machine '
                            '(MirroredStrategy); --batch_size is split between them')
    group.add_argument('--cpu_replicas', type=cli.integer_range(1, 64), default=1,
                       help='train data-parallel on this many logical devices of the CPU '
                            '(the same code path as --num_gpus, to try it without GPUs)')
    group.add_argument('--worker_hosts', type=cli.host_list, default=None,
                       help='HOST:PORT,HOST:PORT,... of every worker of a cluster, the same '
                            'list on each; sets TF_CONFIG (default: TF_CONFIG as the '
                            'environment gives it, or one machine)')
    group.add_argument('--task_index', type=cli.non_negative_int, default=0,
                       help='this worker\'s place in --worker_hosts; 0 is the chief, the '
                            'only one that writes the logdir')
    group.add_argument('--step_timeout', type=cli.positive_float, default=600.0,
                       help='seconds a worker of a cluster waits for the others in a step '
                            'before it stops with an error (a worker died); longer than the '
                            'chief\'s checkpoint, validation and samples take')


def add_arithmetic_flags(group):
    """The precision and compilation flags."""
    group.add_argument('--precision', choices=hardware.PRECISIONS, default=None,
                       help='fp32, or bf16 mixed precision (matrix products in bfloat16; '
                            'variables, optimizer state and loss in float32) on a CPU with '
                            'bf16 units (AVX512-BF16 or AMX); refused on other machines'
                            + kept_default('precision'))
    group.add_argument('--xla', choices=('auto', 'on', 'off'), default='auto',
                       help='compile the training step with XLA auto-clustering; auto: on '
                            'when training on the CPU, one device, at batches of 32 or more '
                            '(measured faster there); off at smaller batches, and on GPUs, '
                            'logical CPU replicas and clusters')


def get_arguments(argv=None):
    """Parses the training flags."""
    parser = cli.ArgumentParser(
        description='Train a WaveNet image model (TensorFlow 1-style graph).')
    add_data_flags(parser.add_argument_group('data'))
    add_model_flags(parser.add_argument_group('model and logdir'))
    add_optimization_flags(parser.add_argument_group('optimization'))
    add_output_flags(parser.add_argument_group('output'))
    add_devices_flags(parser.add_argument_group('devices and machines'))
    add_arithmetic_flags(parser.add_argument_group('precision and compilation'))
    parser.add_argument('--verbose', action='store_true',
                        help="show TensorFlow's own log lines and warnings")
    return parser.parse_args(argv)


def read_stored_run(logdir):
    """The RunSpec of the run a logdir holds, or None for a logdir without checkpoints (a new
    run; run files of a run that saved no checkpoint are replaced, with a warning).

    Raises:
        cli.UsageError: when the logdir holds checkpoints but its run files are missing or
            unreadable (nothing is written then).
    """
    from wavenet import checkpoints
    found = checkpoints.list_checkpoints(logdir) if os.path.isdir(logdir) else []
    if not found:
        if os.path.exists(os.path.join(logdir, checkpoints.PARAMS_FILE)):
            print('warning: %s holds the run files of a run that saved no checkpoint; this '
                  'run replaces them' % logdir, file=sys.stderr)
        return None
    try:
        return checkpoints.read_run_files(logdir)
    except checkpoints.CheckpointError as error:
        raise cli.UsageError(
            '%s holds checkpoints up to %s but its run files cannot be read (%s): put back '
            'the params.json and data.json that its run wrote, or train into a new --logdir'
            % (logdir, found[0], error)) from None


def resolve_options(args, stored):
    """Sets every run option of `args` (RUN_OPTIONS) that no flag gave: the stored run's
    value when resuming, else the default.

    Returns:
        {option: value} of the run.
    Raises:
        cli.UsageError: when a flag differs from what the resumed run keeps.
    """
    kept = (stored.training or {}) if stored else {}
    for name, default in RUN_OPTIONS.items():
        given = getattr(args, name)
        if name in kept and given is not None and given != kept[name]:
            raise cli.UsageError('--%s=%s differs from %s, which the run in %s keeps (in '
                                 'training.json): resume without --%s, or train into a new '
                                 '--logdir' % (name, given, kept[name], args.logdir, name))
        setattr(args, name, kept.get(name, default) if given is None else given)
    return {name: getattr(args, name) for name in RUN_OPTIONS}


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
    options = resolve_options(args, stored)
    try:
        requested = (load_params(args.wavenet_params or DEFAULT_PARAMS)
                     if args.wavenet_params or stored is None else None)
    except ParamsError as error:
        raise cli.UsageError(str(error)) from None
    if args.gc_channels is not None:
        requested = dataclasses.replace(requested or stored.params, gc_channels=args.gc_channels)
    if stored is None:
        return checkpoints.RunSpec(requested, args.image_size, None,
                                   args.channels or prepared_channels(args.data_dir),
                                   options), None
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
    return stored._replace(training=options), newest_checkpoint(args.logdir, stored)


def prepared_channels(data_dir):
    """The channels of a prepared dataset (1 for a folder of images, or when unreadable)."""
    from wavenet import prepared
    try:
        return prepared.read_info(data_dir).channels if prepared.is_prepared(data_dir) else 1
    except prepared.FormatError:
        return 1  # load_data reports what is wrong with it


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
        check_labelled(dataset)
    if spec.classes is not None and tuple(dataset.classes) != tuple(spec.classes):
        raise cli.UsageError('%s has classes %s but %s was trained on %s: train into a new '
                             '--logdir' % (args.data_dir, list(dataset.classes), args.logdir,
                                           list(spec.classes)))
    height, width = dataset.image_size
    split = {'folders': 'train/ and test/ folders',
             'prepared': 'a prepared dataset'}.get(
                 dataset.split_source, '%.0f%% held out' % (100 * args.validation_fraction))
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


def check_labelled(dataset):
    """Refuses images without a class for class conditioning (cli.UsageError)."""
    for image_set in (dataset.train, dataset.validation):
        unlabelled = np.flatnonzero(np.asarray(image_set.labels) < 0)
        if len(unlabelled):
            first = (image_set.files[unlabelled[0]] if image_set.files
                     else 'image %d of the prepared dataset' % unlabelled[0])
            raise cli.UsageError('class conditioning needs every image in a class folder, '
                                 'but %s is not (and %d more): put images in DIR/<class>/ '
                                 'or train without --gc_channels'
                                 % (first, len(unlabelled) - 1))


def describe_receptive_field(params, image_width, channels):
    """Prints the receptive field; warns when it is shorter than one image row."""
    field = params.receptive_field
    row = image_width * channels
    unit = 'sub-pixels' if channels > 1 else 'pixels'
    print('receptive field: %d %s (%.1f rows of %d)' % (field, unit, field / row, row))
    if field < row:
        print('warning: the receptive field is shorter than one image row: pixels cannot see '
              'the pixel above them; add dilations', file=sys.stderr)


def build_graph(args, spec, dataset, placement):
    """The model, its training step and the reporter, in the default graph.

    Returns:
        (training.TrainingGraph, a reporter.Reporter on the chief, else a WorkerReporter).
    """
    import tensorflow.compat.v1 as tf
    from wavenet import checkpoints, distribution, training
    from wavenet.model import WaveNetModel
    from wavenet.reporter import Reporter, ReportOptions, WorkerReporter
    tf.set_random_seed(args.seed)
    optimization = training.Optimization(
        args.batch_size, args.num_steps, args.learning_rate, args.learning_rate_schedule,
        args.optimizer, args.momentum, args.l2_regularization_strength, args.dropout,
        args.augment_shift, args.seed)
    with distribution.scope(placement):
        try:
            model = WaveNetModel(spec.params, spec.image_size, len(spec.classes),
                                 spec.channels)
        except ValueError as error:
            raise cli.UsageError('%s (in the params of --wavenet_params)' % error) from None
        graph = training.build_training_graph(model, dataset.train.images,
                                              dataset.train.labels, optimization,
                                              placement.strategy, args.histograms)
    # The run's identity, in every checkpoint; outside the strategy, which mirrors no strings.
    checkpoints.run_spec_variable(spec)
    options = ReportOptions(args.logdir, args.num_steps, args.batch_size, args.print_every,
                            args.summary_every, args.checkpoint_every, args.max_checkpoints,
                            args.num_samples)
    if not placement.is_chief:
        return graph, WorkerReporter(options, model.sequence_length)
    return graph, Reporter(model, dataset.validation, options)


def train(session, graph, reporter, step, stop, workers, args):
    """Runs training steps from global step `step` to --num_steps or a stop request.

    In a cluster (workers > 1) every worker runs the same steps: a stop request (Ctrl-C or
    SIGTERM to any worker) travels with the step to all of them, and they all end after that
    step, the chief saving it. A step that waits longer than --step_timeout for another
    worker ends the run.

    Returns:
        the global step reached.
    Raises:
        SystemExit(1) when the loss becomes NaN or infinite (nothing saved after it), or a
        worker of the cluster stopped answering.
    """
    from wavenet import checkpoints
    last_saved = step if step > 0 else None  # a new run saves even when stopped at once
    timeout = args.step_timeout if workers > 1 else None
    while step < args.num_steps and not (workers == 1 and stop.requested):
        fetches = [graph.step, graph.loss, graph.stop_requested]
        if reporter.wants_summary(step + 1):
            fetches.append(graph.learning_rate)
            if graph.histograms is not None:
                fetches.append(graph.histograms)
        started = time.perf_counter()
        results = run_step(session, fetches, {graph.stop_request: float(stop.requested)},
                           timeout, step)
        seconds = time.perf_counter() - started
        step, loss, stop_requested = results[:3]
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
        if reporter.checkpoint_due(step) or stop_requested > 0:
            reporter.save(step)
            last_saved = step
        if stop_requested > 0:
            stop.requested = True
            break
    if step != last_saved:
        reporter.save(step)
    return step


def run_step(session, fetches, feed, timeout, step):
    """A step every worker runs (a training step after global step `step`, or the
    initialization); in a cluster (a timeout in seconds, not None), a dead worker is an
    error (exit 1) once the step has waited `timeout` for it, instead of a wait forever."""
    import tensorflow.compat.v1 as tf
    if timeout is None:
        return session.run(fetches, feed)
    try:
        return session.run(fetches, feed,
                           options=tf.RunOptions(timeout_in_ms=int(1000 * timeout)))
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError,
            tf.errors.AbortedError, tf.errors.CancelledError, tf.errors.InternalError) as error:
        print('error: the cluster lost a worker after step %d (%s: %s); every worker stops: '
              'start them all again to resume from the chief\'s newest checkpoint'
              % (step, type(error).__name__, cli.error_reason(error)), file=sys.stderr)
        sys.exit(1)


def switch_xla(args, clustered):
    """Whether the run compiles with XLA (--xla, or its default for the devices and the
    batch size: call it after resolve_run). When it does, lets XLA reach the CPU: call it
    before anything touches TensorFlow's devices, which read TF_XLA_FLAGS once."""
    on_one_cpu = not (args.num_gpus or args.cpu_replicas > 1 or clustered)
    on = args.xla == 'on' or (args.xla == 'auto' and
                              hardware.xla_by_default(on_one_cpu, args.batch_size))
    if on:
        os.environ['TF_XLA_FLAGS'] = hardware.xla_environment(os.environ.get('TF_XLA_FLAGS'))
    return on


def session_config(config, args, xla):
    """A copy of the placement's tf.ConfigProto with the run's precision and XLA."""
    import tensorflow.compat.v1 as tf
    copy = tf.ConfigProto()
    copy.CopyFrom(config)
    return hardware.use_xla(hardware.use_precision(copy, args.precision), xla)


def check_precision(args, resume_from):
    """Refuses a precision this machine cannot train in."""
    try:
        hardware.check_precision(args.precision, args.num_gpus, hardware.cpu_info())
    except hardware.PrecisionError as error:
        raise cli.UsageError('--precision=%s: %s; %s' % (
            args.precision, error,
            'resume the run on a machine that has them' if resume_from
            else 'train with --precision=fp32')) from None


def check_fits(args, spec, num_images):
    """Refuses a run that cannot fit in this machine's memory, or shifts too large.

    The memory is that of the CPU: with --num_gpus the activations live on the GPUs, whose
    memory TensorFlow reports when it runs out.

    Args:
        args: the flags.
        spec: the RunSpec (image_size known).
        num_images: the training images held in memory (or the image files, before they are
            read; 0 for a memory-mapped prepared dataset).
    Raises:
        cli.UsageError: naming what to lower.
    """
    from wavenet import training
    height, width = spec.image_size
    if args.augment_shift >= min(height, width):
        raise cli.UsageError('--augment_shift=%d must be less than the image side (%dx%d)'
                             % (args.augment_shift, height, width))
    needed = training.estimate_memory(spec.params, height * width * spec.channels,
                                      0 if args.num_gpus else args.batch_size, num_images)
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


def read_cluster(args):
    """(os.environ with the cluster of the flags or TF_CONFIG, distribution.read_cluster's
    (cluster, task) or None without one).

    Raises:
        cli.UsageError: for a bad cluster.
    """
    from wavenet import distribution
    if args.task_index and not args.worker_hosts:
        raise cli.UsageError('--task_index=%d needs --worker_hosts (the cluster it indexes)'
                             % args.task_index)
    try:
        environ = os.environ
        if args.worker_hosts:
            environ = dict(os.environ, TF_CONFIG=distribution.cluster_config(
                args.worker_hosts, args.task_index))
        return environ, distribution.read_cluster(environ)
    except distribution.DistributionError as error:
        raise cli.UsageError('%s (see --worker_hosts, --task_index)' % error) from None


def place(args, environ):
    """The devices (and cluster) of the run, from the flags and `environ`'s TF_CONFIG (checked
    by read_cluster).

    Returns:
        a distribution.Placement.
    Raises:
        cli.UsageError: for devices this machine lacks, or logical CPU devices in a cluster.
    """
    from wavenet import distribution
    try:
        return distribution.place(args.num_gpus, args.cpu_replicas, environ)
    except distribution.DistributionError as error:
        raise cli.UsageError('%s (see --num_gpus, --cpu_replicas, --worker_hosts)'
                             % error) from None


def run_session(args, spec, graph, reporter, resume, placement):
    """Starts or resumes the session, trains and saves; see the module docstring.

    Every worker of a cluster initializes (a broadcast from the chief) or restores the
    same checkpoint from the shared logdir; only the chief writes into it.

    Args:
        resume: (checkpoint prefix, its checkpoints.restorer), or (None, None) for a new run.
    """
    import tensorflow.compat.v1 as tf
    from wavenet import checkpoints
    with tf.name_scope('train/'):
        initialize = tf.global_variables_initializer()
    with tf.Session(placement.target, config=placement.config) as session, \
            cli.StopRequest() as stop:
        timeout = args.step_timeout if placement.workers > 1 else None
        resume_from, restore = resume
        if resume_from:
            restore(session)
            print('resumed from %s' % resume_from)
        else:
            # In a cluster, a broadcast of the chief's initial values: every worker joins.
            run_step(session, initialize, None, timeout, 0)
        step = session.run(graph.global_step)
        if step >= args.num_steps:
            print('step %d already reached --num_steps=%d; nothing to train'
                  % (step, args.num_steps))
            return
        if placement.is_chief:
            checkpoints.write_run_files(args.logdir, spec)
            kept = checkpoints.list_checkpoints(args.logdir)
            reporter.open(session, step, run_settings(args, spec),
                          [prefix for prefix in reversed(kept)
                           if checkpoints.step_of(prefix) <= step])
        print('training from step %d to %d, batch %d, %s' % (step, args.num_steps,
                                                             args.batch_size, args.optimizer))
        step = train(session, graph, reporter, step, stop, placement.workers, args)
        reporter.close()
        if stop.requested:
            print('interrupted at step %d; %s' % (step, 'checkpoint saved in %s' % args.logdir
                                                  if placement.is_chief
                                                  else 'the chief saved it'))


def run_settings(args, spec):
    """What TensorBoard shows of the run: {group: {name: value}}."""
    height, width = spec.image_size
    return {'params': spec.params.to_dict(), 'training': dict(spec.training,
                                                            num_steps=args.num_steps),
            'data': {'data_dir': os.path.abspath(args.data_dir),
                     'image_size': '%dx%d' % (height, width), 'channels': spec.channels,
                     'classes': ' '.join(spec.classes)}}


def main(argv=None):
    """Trains, checkpoints, validates and writes sample grids; see the module docstring."""
    args = get_arguments(argv)
    if os.path.exists(args.logdir) and not os.path.isdir(args.logdir):
        raise cli.UsageError('--logdir=%s is a file: give a folder' % args.logdir)
    cli.import_tensorflow(args.verbose)
    from wavenet import checkpoints, distribution, reader
    environ, cluster = read_cluster(args)
    try:
        if distribution.is_chief(cluster):
            checkpoints.check_not_in_use(args.logdir)
    except checkpoints.CheckpointError as error:
        raise cli.UsageError(str(error)) from None
    spec, resume_from = resolve_run(args)
    xla = switch_xla(args, cluster is not None)  # before place() touches the devices
    placement = place(args, environ)
    check_precision(args, resume_from)
    if args.batch_size % placement.replicas:
        raise cli.UsageError('--batch_size=%d cannot be split evenly between %d replicas'
                             % (args.batch_size, placement.replicas))
    if spec.image_size is not None and os.path.isdir(args.data_dir):
        check_fits(args, spec, len(reader.list_image_files(args.data_dir)))
    dataset = load_data(args, spec)
    spec = spec._replace(image_size=dataset.image_size, classes=dataset.classes)
    check_fits(args, spec, 0 if dataset.split_source == 'prepared' else len(dataset.train.images))
    describe_receptive_field(spec.params, spec.image_size[1], spec.channels)
    print('arithmetic: %s, XLA %s%s' % (args.precision, 'on' if xla else 'off',
                                        ' (the default here)' if args.xla == 'auto' else ''))
    graph, reporter = build_graph(args, spec, dataset, placement)
    try:
        restore = (checkpoints.restorer(resume_from, checkpoints.variables_by_name())
                   if resume_from else None)
    except checkpoints.CheckpointError as error:
        raise cli.UsageError(str(error)) from None
    print('devices: %s' % placement.description)
    with writing_into(args.logdir, resume_from) if placement.is_chief else \
            contextlib.nullcontext():
        run_session(args, spec, graph, reporter, (resume_from, restore),
                    placement._replace(config=session_config(placement.config, args, xla)))


if __name__ == '__main__':
    cli.run_main(main)
