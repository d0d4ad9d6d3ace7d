"""Generates images from a trained image WaveNet.

Usage: python generate.py --checkpoint=LOGDIR_OR_PREFIX --out=samples.png [flags]
       python generate.py --checkpoint=RUN1 --checkpoint=RUN2 ...   (sample from an ensemble)
       python generate.py ... --class=3 --class=7      (class-conditional models; or --class=all)
       python generate.py ... --seed_image=digit.png --seed_rows=14   (complete an image)

The model is rebuilt from the params.json and data.json that train.py wrote into the logdir;
no training flag is repeated here.
"""
import collections
import math
import os

import numpy as np

from wavenet import cli

ROOT = os.path.dirname(os.path.abspath(__file__))
MAX_IMAGES = 100000  # images of one command, all rows together
MAX_BATCH = 4096


def get_arguments(argv=None):
    """Parses the generation flags."""
    parser = cli.ArgumentParser(
        description='Generate images with a trained WaveNet image model.')
    parser.add_argument('--checkpoint', action=cli.ReplaceDefaultAppend,
                        default=[os.path.join(ROOT, 'logdir')],
                        help='a training logdir (its latest checkpoint) or a checkpoint prefix '
                             'such as LOGDIR/model.ckpt-1000; repeat it to sample from the '
                             'ensemble of several models (at every pixel, the mean of their '
                             'distributions)')
    parser.add_argument('--out', default='samples.png',
                        help='PNG file: one image, or a grid of all of them (folders are '
                             'created)')
    parser.add_argument('--out_dir', default=None,
                        help='write one PNG per generated image into this folder instead of '
                             '--out')
    parser.add_argument('--num_images', type=cli.integer_range(1, MAX_IMAGES), default=16,
                        help='images to generate (per class with --class, per seed with '
                             '--seed_image); %d at most in all' % MAX_IMAGES)
    parser.add_argument('--columns', type=cli.positive_int, default=None,
                        help='images per row of the grid, at most the number of images '
                             '(default: about the square root; one row per class with --class '
                             'or --seed_image)')
    parser.add_argument('--class', dest='classes', action='append', default=None,
                        metavar='NAME',
                        help='class to generate, for a class-conditional model; repeat it for '
                             'several, or give "all" for one row per class')
    parser.add_argument('--seed_image', action='append', default=None, metavar='PATH',
                        help='image to complete: its first --seed_rows rows are kept (after '
                             'the same conversion as in training) and the rest is generated; '
                             'repeat it for one grid row per image')
    parser.add_argument('--seed_rows', type=cli.positive_int, default=None,
                        help='rows of --seed_image to keep (default: half the image)')
    parser.add_argument('--batch_size', type=cli.integer_range(1, MAX_BATCH), default=256,
                        help='images generated at once, at most (the images are split into '
                             'equal batches); memory depends on this, not on --num_images')
    parser.add_argument('--temperature', type=cli.positive_float, default=1.0,
                        help='softmax temperature of sampling, > 0 (lower: smoother images)')
    parser.add_argument('--argmax', action='store_true',
                        help='take the likeliest level of every pixel instead of sampling')
    parser.add_argument('--seed', type=cli.seed, default=None,
                        help='random seed, 0 to %d (default: a different run every time)'
                             % cli.MAX_SEED)
    parser.add_argument('--fast_generation', type=cli.boolean, default=True,
                        help='incremental generation, one step through the layers per pixel; '
                             'false runs the whole network once per pixel (slow, for checking)')
    parser.add_argument('--generation_state', choices=('ring', 'queues'), default='ring',
                        help='where fast generation keeps each layer\'s recent inputs: one '
                             'ring buffer for all layers (one read and one write per pixel) '
                             'or FIFO queues (one dequeue and enqueue per queue)')
    parser.add_argument('--lanes', type=cli.positive_int, default=None,
                        help='independent groups the batch is split into for fast generation, '
                             'each on one thread (default: one per CPU core if each gets at '
                             'least 16 images, else 1)')
    parser.add_argument('--save_every', type=cli.non_negative_int, default=0,
                        help='write the in-progress image to --out every N pixels (0: only '
                             'at the end)')
    parser.add_argument('--verbose', action='store_true',
                        help="show TensorFlow's own log lines and warnings")
    args = parser.parse_args(argv)
    if args.seed_rows is not None and args.seed_image is None:
        parser.error('--seed_rows needs --seed_image')
    return args


def requested_labels(requested, classes, conditional):
    """Class indices to generate, one per grid row, or [None] for an unconditional model.

    Raises:
        cli.UsageError: when --class and the model disagree, or a class name is unknown.
    """
    known = ', '.join(classes) or 'none'
    if not conditional:
        if requested:
            raise cli.UsageError('this model is not class-conditional (trained without '
                                 '--gc_channels): drop --class')
        return [None]
    if not requested:
        raise cli.UsageError('this model is class-conditional: give --class=NAME (repeatable) '
                             'or --class=all; classes: %s' % known)
    if 'all' in requested:
        return list(range(len(classes)))
    unknown = [name for name in requested if name not in classes]
    if unknown:
        raise cli.UsageError('unknown class %s; classes: %s' % (', '.join(unknown), known))
    return [classes.index(name) for name in requested]


def load_seeds(args, image_size, quantization_channels, channels):
    """The seed images as levels [num_seeds, height * width * channels] and the rows to keep.

    Returns:
        ([None], 0) without --seed_image, else (list of int arrays, rows kept).
    """
    from wavenet import reader
    if args.seed_image is None:
        return [None], 0
    height = image_size[0]
    seed_rows = args.seed_rows if args.seed_rows is not None else height // 2
    if seed_rows >= height:
        raise cli.UsageError('--seed_rows=%d must be less than the image height %d'
                             % (seed_rows, height))
    seeds = []
    for path in args.seed_image:
        try:
            pixels = reader.load_image(path, image_size, channels)
        except reader.DataError as error:
            raise cli.UsageError(str(error)) from None
        seeds.append(reader.quantize(pixels, quantization_channels).reshape(-1))
    return seeds, seed_rows


Plan = collections.namedtuple('Plan', [
    'rows',       # grid rows: (class index or None, seed levels or None) each
    'per_row',    # images per grid row
    'labels',     # int32 [total] classes, or None (unconditional)
    'primes',     # int32 [total, P] known first pixels, or None (not completing)
    'seed_rows',  # image rows kept from each seed image (0: not completing)
])


def plan_images(args, spec):
    """What to generate: every requested class with every seed image, per_row images each."""
    width, channels = spec.image_size[1], spec.channels
    row_labels = requested_labels(args.classes, spec.classes, spec.params.gc_channels > 0)
    seeds, seed_rows = load_seeds(args, spec.image_size, spec.params.quantization_channels,
                                  channels)
    rows = [(label, seed) for label in row_labels for seed in seeds]
    labels = (None if row_labels == [None] else
              np.repeat(np.array([label for label, _ in rows], np.int32), args.num_images))
    primes = (np.repeat(np.stack([seed[:seed_rows * width * channels] for _, seed in rows]),
                        args.num_images, axis=0) if seed_rows else None)  # [total, P]
    return Plan(rows, args.num_images, labels, primes, seed_rows)


def write_output(args, plan, spec, levels):
    """Writes the generated levels [N, T] as --out_dir files, one image or a grid in --out."""
    from wavenet import image_grid

    def to_images(sequences):
        return image_grid.to_images(sequences, spec.image_size, spec.channels,
                                    spec.params.quantization_channels)
    images = to_images(levels)
    if args.out_dir:
        for index, image in enumerate(images):
            image_grid.save_png(os.path.join(args.out_dir, 'image_%04d.png' % index), image)
        return
    if len(images) == 1 and not plan.seed_rows:
        image_grid.save_png(args.out, images[0])
        return
    columns = plan.per_row if len(plan.rows) > 1 else (
        args.columns or int(math.ceil(math.sqrt(len(images)))))
    if plan.seed_rows:
        # Each row: the seed image, its kept rows, then the completions.
        seed_images = to_images(np.stack([seed for _, seed in plan.rows]))
        kept = seed_images.copy()
        kept[:, plan.seed_rows:] = 0
        row_images = images.reshape((len(plan.rows), plan.per_row) + images.shape[1:])
        images = np.concatenate([np.concatenate([[seed, kept_rows], completions])
                                 for seed, kept_rows, completions
                                 in zip(seed_images, kept, row_images)])
        columns = plan.per_row + 2
    image_grid.save_png(args.out, image_grid.tile(images, columns))


def pad_to_batch(values, first, count, batch_size):
    """values[first:first + count] repeated up to batch_size rows (None stays None)."""
    if values is None:
        return None
    return np.resize(values[first:first + count], (batch_size,) + values.shape[1:])


def generate_batches(args, session, sampler, plan, spec):
    """Samples every planned image, batch by batch, with a progress bar.

    Returns:
        int32 [total, T] levels.
    """
    from wavenet.progress import Progress
    total, batch_size = len(plan.rows) * plan.per_row, sampler.batch_size
    num_pixels = spec.image_size[0] * spec.image_size[1] * spec.channels
    generated = np.zeros((total, num_pixels), np.int32)
    progress = Progress('generating', total * num_pixels, 'pixels')
    for first in range(0, total, batch_size):
        count = min(batch_size, total - first)
        reported = 0

        def on_progress(done, pixels_so_far):
            nonlocal reported
            progress.update(count * (done - reported))
            reported = done
            if args.save_every and done % args.save_every == 0 and done < num_pixels:
                partial = generated.copy()
                partial[first:first + count, :done] = pixels_so_far[:count]
                write_output(args, plan, spec, partial)

        # One session.run per image row (for the progress bar), or per --save_every pixels.
        pixels = sampler.sample(
            session, pad_to_batch(plan.labels, first, count, batch_size),
            pad_to_batch(plan.primes, first, count, batch_size), args.temperature, args.argmax,
            args.save_every or spec.image_size[1] * spec.channels, on_progress)
        generated[first:first + count] = pixels[:count]
    progress.close()
    return generated


def check_output(args, total):
    """Refuses, before any generating, an output that cannot be written or a grid that
    cannot be laid out (cli.UsageError)."""
    flag, path = ('--out_dir', args.out_dir) if args.out_dir else ('--out', args.out)
    if args.out_dir and os.path.exists(path) and not os.path.isdir(path):
        raise cli.UsageError('--out_dir=%s is a file: give a folder' % path)
    if not args.out_dir and os.path.isdir(path):
        raise cli.UsageError('--out=%s is a folder: give a file name such as %s, or use '
                             '--out_dir' % (path, os.path.join(path, 'samples.png')))
    folder = os.path.abspath(path if args.out_dir else os.path.dirname(os.path.abspath(path)))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise cli.UsageError('%s=%s cannot be written: %s is read-only or not a folder'
                             % (flag, path, folder))
    if total > MAX_IMAGES:
        raise cli.UsageError('%d images asked for (--num_images x classes x seed images); '
                             '%d at most: lower --num_images' % (total, MAX_IMAGES))
    if args.columns is not None and args.columns > total:
        raise cli.UsageError('--columns=%d is more than the %s'
                             % (args.columns, cli.count(total, 'image')))


def sample_all(args, models, plan):
    """Builds the sampler, restores the models and samples every planned image."""
    import tensorflow.compat.v1 as tf
    from wavenet import generation
    total = len(plan.rows) * plan.per_row
    batch_size = -(-total // -(-total // args.batch_size))  # equal batches, none padded much
    sampler = generation.build_sampler(models.mixture, batch_size, args.fast_generation,
                                       args.generation_state,
                                       args.lanes and min(args.lanes, batch_size))
    with tf.Session(config=sampler.config) as session:
        models.restore(session)
        try:
            return generate_batches(args, session, sampler, plan, models.spec)
        except tf.errors.InvalidArgumentError as error:
            raise cli.UsageError('the model in %s gives non-finite probabilities (%s): the '
                                 'checkpoint is corrupt or training diverged'
                                 % (models.description, cli.error_reason(error))) from None


def main(argv=None):
    """Restores a checkpoint (or several), generates the images and writes the PNG files."""
    args = get_arguments(argv)
    tf = cli.import_tensorflow(args.verbose)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), 'little')
    tf.set_random_seed(seed)
    models = cli.open_checkpoints(args.checkpoint)
    spec = models.spec
    plan = plan_images(args, spec)
    total = len(plan.rows) * plan.per_row
    check_output(args, total)
    what = (cli.count(total, 'completion') + ' of %s (%d rows kept)'
            % (', '.join(args.seed_image), plan.seed_rows) if plan.seed_rows
            else cli.count(total, 'image'))
    print('generating %s of %dx%d from %s (%s generation, temperature %g, seed %d)'
          % (what, spec.image_size[0], spec.image_size[1], models.description,
             'fast' if args.fast_generation else 'naive', args.temperature, seed))
    generated = sample_all(args, models, plan)
    try:
        write_output(args, plan, spec, generated)
    except OSError as error:
        raise cli.UsageError('cannot write %s (%s)' % (args.out_dir or args.out, error)) from None
    print('wrote %s' % (args.out_dir or args.out))


if __name__ == '__main__':
    cli.run_main(main)
