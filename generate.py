"""Generates images from a trained image WaveNet.

Usage: python generate.py --checkpoint=LOGDIR_OR_PREFIX --out=samples.png [flags]
       python generate.py --checkpoint=RUN1 --checkpoint=RUN2 ...   (sample from an ensemble)
       python generate.py ... --class=3 --class=7      (class-conditional models; or --class=all)
       python generate.py ... --seed_image=digit.png --seed_rows=14   (complete an image)

The model is rebuilt from the params.json and data.json that train.py wrote into the logdir;
no training flag is repeated here.
"""
import argparse
import math
import os

import numpy as np

from wavenet import cli

ROOT = os.path.dirname(os.path.abspath(__file__))


def get_arguments(argv=None):
    """Parses the generation flags."""
    parser = argparse.ArgumentParser(
        description='Generate images with a trained WaveNet image model.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    parser.add_argument('--num_images', type=cli.positive_int, default=16,
                        help='images to generate (per class with --class, per seed with '
                             '--seed_image)')
    parser.add_argument('--columns', type=cli.positive_int, default=None,
                        help='images per row of the grid (default: about the square root; one '
                             'row per class with --class or --seed_image)')
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
    parser.add_argument('--batch_size', type=cli.positive_int, default=64,
                        help='images generated at once; memory depends on this, not on '
                             '--num_images')
    parser.add_argument('--temperature', type=float, default=1.0,
                        help='softmax temperature of sampling, > 0 (lower: smoother images)')
    parser.add_argument('--argmax', action='store_true',
                        help='take the likeliest level of every pixel instead of sampling')
    parser.add_argument('--seed', type=int, default=None,
                        help='random seed (default: a different run every time)')
    parser.add_argument('--fast_generation', type=cli.boolean, default=True,
                        help='incremental generation, one step through the layers per pixel; '
                             'false runs the whole network once per pixel (slow, for checking)')
    parser.add_argument('--generation_state', choices=('ring', 'queues', 'arrays'),
                        default='ring',
                        help='where fast generation keeps each layer\'s recent inputs: one '
                             'ring buffer for all layers (one read and one write per pixel), '
                             'FIFO queues (both: one session.run per row, progress and '
                             '--save_every) or TensorArrays (one run per batch, more memory)')
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
    if not math.isfinite(args.temperature) or args.temperature <= 0:
        parser.error('--temperature must be a positive number, got %s' % args.temperature)
    if args.save_every and args.generation_state == 'arrays':
        parser.error('--save_every needs --generation_state=ring or queues')
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


def main(argv=None):
    """Restores a checkpoint, generates the images and writes the PNG files."""
    args = get_arguments(argv)
    tf = cli.import_tensorflow(args.verbose)
    from wavenet import ensemble, generation, image_grid, logdir, reader

    try:
        checkpoints, member_params, image_size, classes, channels = ensemble.open_runs(
            args.checkpoint)
    except logdir.CheckpointError as error:
        raise cli.UsageError(str(error)) from None
    params = member_params[0]  # the members share levels and class conditioning
    source = ensemble.describe(checkpoints)
    height, width = image_size
    num_pixels = height * width * channels  # sub-pixels per image sequence
    row_labels = requested_labels(args.classes, classes, params.gc_channels > 0)
    seeds, seed_rows = load_seeds(args, image_size, params.quantization_channels, channels)
    completing = args.seed_image is not None
    # Grid rows: every requested class with every seed image; --num_images images per row.
    rows = [(label, seed) for label in row_labels for seed in seeds]
    total = len(rows) * args.num_images
    labels = (None if row_labels == [None] else
              np.repeat(np.array([label for label, _ in rows], np.int32), args.num_images))
    primes = (np.repeat(np.stack([seed[:seed_rows * width * channels] for _, seed in rows]),
                        args.num_images, axis=0) if completing else None)  # [total, P]
    batch_size = min(args.batch_size, total)
    lanes = min(args.lanes or generation.lanes_for(batch_size, generation.available_cores()),
                batch_size)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), 'little')

    def to_images(levels):
        """int levels [N, T] -> uint8 [N, height, width(, 3)] 8-bit images."""
        return reader.dequantize(image_grid.as_images(levels, image_size, channels).astype(
            np.uint8), params.quantization_channels)

    def write_output(levels):
        images = to_images(levels)
        if args.out_dir:
            for index, image in enumerate(images):
                image_grid.save_png(os.path.join(args.out_dir, 'image_%04d.png' % index), image)
            return
        if total == 1 and not completing:
            image_grid.save_png(args.out, images[0])
            return
        columns = args.num_images if len(rows) > 1 else (
            args.columns or int(math.ceil(math.sqrt(total))))
        if completing:
            # Each row: the seed image, its kept rows, then the completions.
            seed_images = to_images(np.stack([seed for _, seed in rows]))
            kept = seed_images.copy()
            kept[:, seed_rows:] = 0
            images = np.concatenate([
                np.concatenate([[seed_image, kept_rows], row_images])
                for seed_image, kept_rows, row_images in zip(
                    seed_images, kept,
                    images.reshape((len(rows), args.num_images) + images.shape[1:]))])
            columns = args.num_images + 2
        image_grid.save_png(args.out, image_grid.tile(images, columns))

    tf.set_random_seed(seed)
    model = ensemble.Ensemble(checkpoints, member_params, image_size, len(classes), channels)
    if args.fast_generation:
        generator = model.fast_generator(batch_size, state=args.generation_state, lanes=lanes)
    else:
        pixels_input = tf.placeholder(tf.int32, [batch_size, num_pixels])
        labels_input = tf.placeholder(tf.int32, [batch_size]) if model.conditional else None
        position = tf.placeholder(tf.int32, [])
        logits_at = model.logits(pixels_input, labels_input)[:, position]
    try:
        model.check_checkpoints()
    except logdir.CheckpointError as error:
        raise cli.UsageError(str(error)) from None

    what = ('completions of %s (%d rows kept)' % (', '.join(args.seed_image), seed_rows)
            if completing else 'images')
    print('generating %d %s of %dx%d from %s (%s generation, temperature %g, seed %d)'
          % (total, what, height, width, source,
             'fast' if args.fast_generation else 'naive', args.temperature, seed))
    generated = np.zeros((total, num_pixels), np.int32)
    progress = cli.Progress(total * num_pixels, 'pixels')
    config = (tf.ConfigProto(**generation.thread_options(lanes)) if args.fast_generation
              else None)
    with tf.Session(config=config) as session:
        model.restore(session)
        for first in range(0, total, batch_size):
            count = min(batch_size, total - first)
            # A last, smaller batch is padded to the generator's batch size.
            batch_labels = (None if labels is None
                            else np.resize(labels[first:first + count], batch_size))
            batch_primes = (None if primes is None
                            else np.resize(primes[first:first + count],
                                           (batch_size, primes.shape[1])))

            def on_progress(done, pixels_so_far):
                progress.update(first * num_pixels + count * done)
                if args.save_every and done % args.save_every == 0 and done < num_pixels:
                    partial = generated.copy()
                    partial[first:first + count, :done] = pixels_so_far[:count]
                    write_output(partial)

            try:
                if args.fast_generation:
                    # One session.run per image row, or per --save_every pixels.
                    pixels = generation.generate_fast(
                        session, generator, num_pixels, batch_labels, batch_primes,
                        temperature=args.temperature, argmax=args.argmax,
                        pixels_per_run=args.save_every or width, on_progress=on_progress)
                else:
                    pixels = generation.generate_naive(
                        session, pixels_input, logits_at, position, num_pixels,
                        np.random.default_rng(seed + first), labels_input, batch_labels,
                        batch_primes, temperature=args.temperature, argmax=args.argmax,
                        on_progress=on_progress)
            except tf.errors.InvalidArgumentError as error:
                raise cli.UsageError('the model in %s gives non-finite probabilities (%s): '
                                     'the checkpoint is corrupt or training diverged'
                                     % (source, error.message.splitlines()[0])) from None
            generated[first:first + count] = pixels[:count]
    progress.finish(total * num_pixels)
    write_output(generated)
    print('wrote %s' % (args.out_dir or args.out))


if __name__ == '__main__':
    cli.run_main(main)
