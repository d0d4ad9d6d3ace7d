"""Trains an image WaveNet on a folder of images.

Usage: python train.py [--data_dir=DIR] [--logdir=DIR] [flags]
       python train.py --num_gpus=N | --cpu_replicas=N ...     (data-parallel, one machine)
       python train.py --worker_hosts=H:P,H:P,... --task_index=I ...   (a cluster; or TF_CONFIG)

With no --data_dir it trains on the bundled MNIST digits. A --logdir that holds a checkpoint
is resumed from its newest readable one, with the options its run keeps; --num_steps is the
run's total. Ctrl-C or SIGTERM finishes the current step, saves a checkpoint and exits.
"""
import contextlib
import os
import sys
import time

import numpy as np


from wavenet import cli, errors, hardware, record  # no TensorFlow at import: --help stays quick

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PARAMS = os.path.join(ROOT, 'wavenet_params.json')


def get_arguments(argv=None):
    """Parses the training flags."""
    parser = cli.ArgumentParser(
        description='Train a WaveNet image model (TensorFlow 1-style graph).')
    data = parser.add_argument_group('data')
    data.add_argument('--data_dir', default=os.path.join(ROOT, 'datasets', 'digits'),
                      help='folder of images (searched recursively; train/ and test/ (or '
                           'val/) subfolders are the splits, the folder level below names the '
                           'class), or a prepared dataset (datasets/prepare.py)')
    data.add_argument('--image_size', type=cli.checked(record.parse_image_size), default=None,
                      help='N or HxW every image is resized to, sides 1 to %d (default: the '
                           'most common size among the training images)'
                           % record.MAX_IMAGE_SIDE)
    data.add_argument('--channels', type=int, choices=(1, 3), default=None,
                      help="1: grayscale; 3: RGB, each pixel three sub-pixels R, G, B in the "
                           "sequence (default: the run's when resuming, else 1)")
    model = parser.add_argument_group('model and logdir')
    model.add_argument('--logdir', default=os.path.join(ROOT, 'logdir'),
                       help='where checkpoints, run.json and TensorBoard events go; resumed '
                            'when it holds a checkpoint; one run at a time')
    model.add_argument('--wavenet_params', default=None,
                       help="JSON file of model hyperparameters (default: the run's when "
                            'resuming, else %s)' % DEFAULT_PARAMS)
    model.add_argument('--gc_channels', type=cli.integer_range(0, 4096), default=None,
                       help='train a class-conditional model with a class embedding of this '
                            'size (classes are the subfolder names); overrides the params '
                            "file's; 0: unconditional")
    model.add_argument('--local_condition', default=None,
                       help="condition every image on an image derived from it: 'lowres:F' (F "
                            "divides the image sides: averaged over F x F blocks) or 'gray' (its "
                            "luminance, for --channels=3); 'none' for no condition; overrides "
                            "the params file's (default: the params file's)")
    kept = parser.add_argument_group(
        'training options', 'chosen when a run starts, kept in its record, and taken from '
        'there when it resumes (a value that differs is refused)')
    for name, field in record.OPTIONS.items():
        kept.add_argument('--' + name, default=None, choices=field.metadata['choices'],
                          type=cli.checked(lambda text, name=name: record.parse_option(name,
                                                                                       text)),
                          help="%s (default: %s; when resuming, the run's)"
                               % (field.metadata['help'], field.default))
    output = parser.add_argument_group('steps and output')
    output.add_argument('--checkpoint_every', type=cli.positive_int, default=1000,
                        help='steps between checkpoints (also validation and sample grids)')
    output.add_argument('--max_checkpoints', type=cli.positive_int, default=5,
                        help='checkpoints kept in the logdir')
    output.add_argument('--print_every', type=cli.positive_int, default=100,
                        help='steps between progress lines')
    output.add_argument('--summary_every', type=cli.positive_int, default=20,
                        help='steps between TensorBoard training summaries')
    output.add_argument('--num_samples', type=cli.integer_range(0, 1024), default=16,
                        help='images in the sample grid written at each checkpoint (0: none)')
    output.add_argument('--histograms', action='store_true',
                        help='also write histograms of every trainable variable to TensorBoard')
    devices = parser.add_argument_group('devices and machines')
    devices.add_argument('--num_gpus', type=cli.integer_range(0, 64), default=0,
                         help='train data-parallel on this many GPUs of this machine '
                              '(MirroredStrategy; untested here: no GPU was at hand); '
                              '--batch_size is split between them')
    devices.add_argument('--cpu_replicas', type=cli.integer_range(1, 64), default=1,
                         help='train data-parallel on this many logical devices of the CPU '
                              '(the same code path as --num_gpus, to try it without GPUs)')
    devices.add_argument('--worker_hosts', type=cli.host_list, default=None,
                         help='HOST:PORT,HOST:PORT,... of every worker of a cluster, the same '
                              'list on each; sets TF_CONFIG (default: TF_CONFIG as the '
                              'environment gives it, or one machine)')
    devices.add_argument('--task_index', type=cli.non_negative_int, default=0,
                         help="this worker's place in --worker_hosts; 0 is the chief, the "
                              'only one that writes the logdir')
    devices.add_argument('--step_timeout', type=cli.positive_float, default=600.0,
                         help='seconds a worker of a cluster waits for the others in a step '
                              'before it stops with an error (a worker died)')
    devices.add_argument('--xla', choices=hardware.XLA_CHOICES, default='auto',
                         help='compile the training step with XLA auto-clustering; auto: on '
                              'when training on the CPU, one device, at batches of %d or '
                              'more (measured faster there)' % hardware.XLA_MIN_BATCH)
    parser.add_argument('--verbose', action='store_true',
                        help="show TensorFlow's own log lines and warnings")
    return parser.parse_args(argv)


def read_data(args, run):
    """Reads the dataset of a run and prints what was found; returns the reader.Dataset and
    the run's record completed with the data's image size and classes."""
    from wavenet import reader, runs
    dataset = reader.load_dataset(args.data_dir, run.image_size,
                                  run.params.quantization_channels,
                                  run.training.validation_fraction, run.training.seed,
                                  run.channels)
    for path, why in dataset.skipped:
        cli.warn('skipped %s: %s' % (path, why))
    run = runs.with_data(run, dataset, args.data_dir)
    height, width = run.image_size
    split = {'folders': 'train/ and test/ folders', 'prepared': 'a prepared dataset'}.get(
        dataset.split_source, '%.0f%% held out' % (100 * run.training.validation_fraction))
    print('data: %s: %d training and %d validation images (%s), %dx%d %s, %d classes%s'
          % (args.data_dir, len(dataset.train.images), len(dataset.validation.images), split,
             height, width, 'RGB' if run.channels == 3 else 'grayscale', len(run.classes),
             ', %s skipped' % cli.count(len(dataset.skipped), 'file') if dataset.skipped
             else ''))
    if len(dataset.size_counts) > 1:
        print('the training images have %d sizes: %s; all are resized to %dx%d' % (
            len(dataset.size_counts), ', '.join('%dx%d (%d)' % (size + (count,))
                                                for size, count in dataset.size_counts),
            height, width))
    field, row = run.params.receptive_field, width * run.channels
    print('receptive field: %d %s (%.1f rows of %d)' % (
        field, 'sub-pixels' if run.channels > 1 else 'pixels', field / row, row))
    if field < row:
        cli.warn('the receptive field is shorter than one image row: pixels cannot see the '
                 'pixel above them; add dilations')
    return dataset, run


def build_graph(args, run, dataset, placement):
    """The model, its training step, the reporter, the initializer and the run_spec variable,
    in the default graph."""
    import tensorflow.compat.v1 as tf
    from wavenet import checkpoints, distribution, training
    from wavenet.model import WaveNetModel
    from wavenet.reporter import Reporter, ReportOptions
    tf.set_random_seed(run.training.seed)
    with distribution.scope(placement):
        model = WaveNetModel(run.params, run.image_size, len(run.classes), run.channels,
                             symmetries=run.training.augment_symmetries > 0)
        graph = training.build_training_graph(model, dataset.train.images,
                                              dataset.train.labels, run.training,
                                              run.training.num_steps, placement.strategy,
                                              args.histograms)
    run_spec = checkpoints.run_spec_variable(run)  # outside the strategy: no strings mirrored
    # Validation and samples with the weights' moving averages, where the run keeps them.
    reported = model.averaged(graph.averages) if graph.averages else model
    reporter = Reporter(reported, dataset.validation, ReportOptions(
        args.logdir, run.training.num_steps, run.training.batch_size, args.print_every,
        args.summary_every, args.checkpoint_every, args.max_checkpoints, args.num_samples),
        placement.is_chief, dataset.validation.images if len(dataset.validation.images)
        else dataset.train.images)
    with tf.name_scope('train/'):
        initialize = tf.global_variables_initializer()
    return graph, reporter, initialize, run_spec


def run_step(session, fetches, feed, timeout, step):
    """A step every worker runs; in a cluster (a timeout in seconds), a dead worker ends the
    run (exit 1) once the step has waited `timeout` for it, instead of a wait for ever."""
    import tensorflow.compat.v1 as tf
    if timeout is None:
        return session.run(fetches, feed)
    try:
        return session.run(fetches, feed, options=tf.RunOptions(timeout_in_ms=int(1000 * timeout)))
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError,
            tf.errors.AbortedError, tf.errors.CancelledError, tf.errors.InternalError) as error:
        print('error: the cluster lost a worker after step %d (%s: %s); every worker stops: '
              "start them all again to resume from the chief's newest checkpoint"
              % (step, type(error).__name__, errors.reason(error)), file=sys.stderr)
        sys.exit(1)


def train(session, graph, reporter, step, stop, timeout, args):
    """Runs training steps from global step `step` to --num_steps or a stop request; returns
    the global step reached.

    In a cluster every worker runs the same steps: a stop request (Ctrl-C or SIGTERM to any
    worker) travels with the step to all of them, and they end after that step, the chief
    saving it. A NaN or infinite loss ends the run with exit status 1, nothing saved after it.
    """
    from wavenet import checkpoints
    last_saved = step if step > 0 else None  # a new run saves even when stopped at once
    while step < reporter.options.num_steps and not (timeout is None and stop.requested):
        fetches = [graph.step, graph.loss, graph.stop_requested]
        if reporter.wants_summary(step + 1):
            fetches += [graph.learning_rate] + ([graph.histograms] if args.histograms else [])
        started = time.perf_counter()
        results = run_step(session, fetches, {graph.stop_request: float(stop.requested)},
                           timeout, step)
        seconds = time.perf_counter() - started
        step, loss, stop_requested = results[:3]
        if not np.isfinite(loss):
            reporter.close()
            print('error: the loss became %s at step %d; nothing saved after it (last good '
                  'checkpoint: %s); lower --learning_rate' % (loss, step, checkpoints.
                                                              newest_readable_checkpoint(
                                                                  args.logdir)[0]),
                  file=sys.stderr)
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


def run_settings(args, run):
    """What TensorBoard shows of the run: {group: {name: value}}."""
    data = {'data_dir': os.path.abspath(args.data_dir), 'image_size': '%dx%d' % run.image_size,
            'channels': run.channels, 'classes': ' '.join(run.classes)}
    return {'params': run.params.to_dict(), 'training': run.to_dict()['training'], 'data': data}


def main(argv=None):
    """Trains, checkpoints, validates and writes sample grids; see the module docstring."""
    args = get_arguments(argv)
    cli.import_tensorflow(args.verbose)
    import tensorflow.compat.v1 as tf
    from wavenet import checkpoints, distribution, files, reader, runs, training
    environ = distribution.cluster_environment(os.environ, args.worker_hosts, args.task_index)
    cluster = distribution.read_cluster(environ)
    if distribution.is_chief(cluster):
        checkpoints.check_not_in_use(args.logdir)
    options = {name: getattr(args, name) for name in record.OPTIONS
               if getattr(args, name) is not None}
    overrides = {name: value for name, value in (
        ('gc_channels', args.gc_channels),
        ('local_condition', {'none': ''}.get(args.local_condition, args.local_condition)))
        if value is not None}
    resolution = runs.resolve(args.logdir, args.data_dir, args.wavenet_params, DEFAULT_PARAMS,
                              overrides, options, args.image_size, args.channels)
    run, resume_from = resolution.record, resolution.resume_from
    for _, why in resolution.skipped:
        cli.warn('%s; skipped it' % why)
    if resolution.replaced:
        cli.warn('%s is the record of a run that saved no checkpoint; this run replaces it'
                 % resolution.replaced)
    xla = hardware.choose_xla(args.xla, not (args.num_gpus or args.cpu_replicas > 1 or
                                             cluster), run.training.batch_size)
    placement = distribution.place(args.num_gpus, args.cpu_replicas, environ)
    hardware.check_precision(run.training.precision, args.num_gpus, hardware.cpu_info())
    if run.training.batch_size % placement.replicas:
        raise errors.Error('batch_size=%d cannot be split evenly between %d replicas'
                           % (run.training.batch_size, placement.replicas))
    if run.image_size is not None and os.path.isdir(args.data_dir):
        training.check_fits(run, run.image_size, len(reader.list_image_files(args.data_dir)),
                            args.num_gpus > 0)
    dataset, run = read_data(args, run)
    training.check_fits(run, run.image_size, 0 if dataset.split_source == 'prepared'
                        else len(dataset.train.images), args.num_gpus > 0)
    print('arithmetic: %s, XLA %s%s' % (run.training.precision, 'on' if xla else 'off',
                                        ' (the default here)' if args.xla == 'auto' else ''))
    graph, reporter, initialize, run_spec = build_graph(args, run, dataset, placement)
    restore = (checkpoints.restorer(resume_from, checkpoints.variables_by_name())
               if resume_from else None)
    print('devices: %s' % placement.description)
    print('moving averages: %s' % ('decay %g, used by validation and samples'
                                    % run.training.ema_decay if graph.averages else 'off'))
    timeout = args.step_timeout if placement.workers > 1 else None
    config = hardware.session_config(placement.config, run.training.precision, xla)
    writing = (checkpoints.writing_into(args.logdir, resume_from) if placement.is_chief
               else contextlib.nullcontext([]))  # another worker writes nothing
    with writing as removed, tf.Session(placement.target, config=config) as session, \
            cli.StopRequest() as stop:
        for name in removed:
            cli.warn('removed %s, left by an interrupted run' % name)
        if resume_from:
            restore(session)
            session.run(run_spec.initializer)  # this version's record of the run
            print('resumed from %s' % resume_from)
        else:  # in a cluster, a broadcast of the chief's initial values: every worker joins
            run_step(session, initialize, None, timeout, 0)
        step = session.run(graph.global_step)
        if step >= run.training.num_steps:
            print('step %d already reached --num_steps=%d; nothing to train'
                  % (step, run.training.num_steps))
            return
        if placement.is_chief:
            files.write_atomic(os.path.join(args.logdir, record.RUN_FILE),
                               lambda stream: stream.write(run.to_json().encode()))
        reporter.open(session, step, run_settings(args, run),
                      [prefix for prefix in reversed(checkpoints.list_checkpoints(args.logdir))
                       if checkpoints.step_of(prefix) <= step])
        print('training from step %d to %d, batch %d' % (step, run.training.num_steps,
                                                         run.training.batch_size))
        step = train(session, graph, reporter, step, stop, timeout, args)
        reporter.close()
        if stop.requested:
            print('interrupted at step %d; %s' % (step, 'checkpoint saved in %s' % args.logdir
                                                  if placement.is_chief else 'the chief saved it'))


if __name__ == '__main__':
    cli.run_main(main)
