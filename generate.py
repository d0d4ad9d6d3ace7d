"""Generates images from a trained image WaveNet.

Usage: python generate.py --checkpoint=LOGDIR_OR_PREFIX --out=samples.png [flags]

The model is rebuilt from the params.json and data.json that train.py wrote into the logdir;
no training flag is repeated here.
"""
import argparse
import math
import os
import sys

import numpy as np

from wavenet import cli

ROOT = os.path.dirname(os.path.abspath(__file__))


def get_arguments(argv=None):
    """Parses the generation flags."""
    parser = argparse.ArgumentParser(
        description='Generate images with a trained WaveNet image model.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--checkpoint', default=os.path.join(ROOT, 'logdir'),
                        help='a training logdir (its latest checkpoint) or a checkpoint prefix '
                             'such as LOGDIR/model.ckpt-1000')
    parser.add_argument('--out', default='samples.png',
                        help='PNG file: one image, or a grid of all of them (folders are '
                             'created)')
    parser.add_argument('--out_dir', default=None,
                        help='write one PNG per image into this folder instead of --out')
    parser.add_argument('--num_images', type=cli.positive_int, default=16,
                        help='images to generate')
    parser.add_argument('--columns', type=cli.positive_int, default=None,
                        help='images per row of the grid (default: about the square root)')
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
                        help='incremental generation with per-layer queues; false runs the '
                             'whole network once per pixel (slow, for checking)')
    parser.add_argument('--save_every', type=cli.non_negative_int, default=0,
                        help='write the in-progress image to --out every N pixels (0: only '
                             'at the end)')
    parser.add_argument('--verbose', action='store_true',
                        help="show TensorFlow's own log lines and warnings")
    args = parser.parse_args(argv)
    if not math.isfinite(args.temperature) or args.temperature <= 0:
        parser.error('--temperature must be a positive number, got %s' % args.temperature)
    return args


def main(argv=None):
    """Restores a checkpoint, generates --num_images images and writes the PNG files."""
    args = get_arguments(argv)
    tf = cli.import_tensorflow(args.verbose)
    from wavenet import image_grid, logdir, reader
    from wavenet.generation import generate_fast, generate_naive
    from wavenet.model import WaveNetModel

    try:
        checkpoint, run_dir = logdir.resolve_checkpoint(args.checkpoint)
        params, (height, width), _ = logdir.read_run_files(run_dir)
    except logdir.CheckpointError as error:
        raise cli.UsageError(str(error)) from None
    num_pixels = height * width
    batch_size = min(args.batch_size, args.num_images)
    columns = args.columns or int(math.ceil(math.sqrt(args.num_images)))
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), 'little')

    def to_png(levels):
        """int [N, T] levels -> uint8 [N, height, width] 8-bit images."""
        return reader.dequantize(levels.reshape(-1, height, width).astype(np.uint8),
                                 params.quantization_channels)

    def write_output(images):
        if args.out_dir:
            for index, image in enumerate(images):
                image_grid.save_png(os.path.join(args.out_dir, 'image_%04d.png' % index), image)
        else:
            image_grid.save_png(args.out, images[0] if len(images) == 1
                                else image_grid.tile(images, columns))

    tf.set_random_seed(seed)
    model = WaveNetModel(params)
    if args.fast_generation:
        generator = model.fast_generator(batch_size)
    else:
        pixels_input = tf.placeholder(tf.int32, [batch_size, num_pixels])
        position = tf.placeholder(tf.int32, [])
        logits_at = model.logits(pixels_input)[:, position]
    variables = tf.global_variables()
    try:
        logdir.check_variables_match(checkpoint, variables)
    except logdir.CheckpointError as error:
        raise cli.UsageError(str(error)) from None

    print('generating %d images of %dx%d from %s (%s generation, temperature %g, seed %d)'
          % (args.num_images, height, width, checkpoint,
             'fast' if args.fast_generation else 'naive', args.temperature, seed))
    generated = np.zeros((args.num_images, num_pixels), np.int32)
    progress = cli.Progress(args.num_images * num_pixels, 'pixels')
    with tf.Session() as session:
        tf.train.Saver(variables).restore(session, checkpoint)
        for first in range(0, args.num_images, batch_size):
            count = min(batch_size, args.num_images - first)

            def on_progress(done, pixels_so_far):
                progress.update(first * num_pixels + count * done)
                if args.save_every and done % args.save_every == 0 and done < num_pixels:
                    partial = generated.copy()
                    partial[first:first + count, :done] = pixels_so_far[:count]
                    write_output(to_png(partial))

            try:
                if args.fast_generation:
                    # One session.run per image row, or per --save_every pixels.
                    pixels = generate_fast(session, generator, num_pixels,
                                           temperature=args.temperature, argmax=args.argmax,
                                           pixels_per_run=args.save_every or width,
                                           on_progress=on_progress)
                else:
                    pixels = generate_naive(session, pixels_input, logits_at, position,
                                            num_pixels, np.random.default_rng(seed + first),
                                            temperature=args.temperature, argmax=args.argmax,
                                            on_progress=on_progress)
            except tf.errors.InvalidArgumentError as error:
                raise cli.UsageError('the model in %s gives non-finite probabilities (%s): '
                                     'the checkpoint is corrupt or training diverged'
                                     % (checkpoint, error.message.splitlines()[0])) from None
            generated[first:first + count] = pixels[:count]
    progress.finish(args.num_images * num_pixels)
    write_output(to_png(generated))
    print('wrote %s' % (args.out_dir or args.out))


if __name__ == '__main__':
    cli.run_main(main)
