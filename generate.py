"""Generates images from a trained image WaveNet.

Usage: python generate.py --checkpoint=LOGDIR_OR_PREFIX --out=samples.png [flags]
       python generate.py --checkpoint=RUN1 --checkpoint=RUN2 ...   (sample from an ensemble)
The model is rebuilt from the run record of its checkpoint; no training flag is repeated here.
"""
import collections
import math
import os

import numpy as np

from wavenet import cli, errors

ROOT = os.path.dirname(os.path.abspath(__file__))
MAX_IMAGES = 100000  # images of one command, all rows together


def get_arguments(argv=None):
    """Parses the generation flags."""
    parser = cli.ArgumentParser(description='Generate images with a trained WaveNet model.')
    add = parser.add_argument
    add('--checkpoint', action=cli.ReplaceDefaultAppend, default=[os.path.join(ROOT, 'logdir')],
        help='a training logdir (its newest readable checkpoint) or a checkpoint prefix; repeat '
             'it for an ensemble (at every pixel, the mean of the distributions)')
    add('--out', default='samples.png',
        help='PNG file: one image, or a grid of all of them (folders are created); an existing '
             'file is replaced only if it is a regular PNG file, atomically, keeping its mode')
    add('--out_dir', default=None, help='write one PNG per image into this folder: '
        'image_0000.png, ... (NAME_0.png, ... for condition image NAME.png)')
    add('--overwrite', action='store_true', help='let --out_dir replace its PNG files')
    add('--num_images', type=cli.integer_range(1, MAX_IMAGES), default=16, help='images per '
        'class, seed and condition image; %d at most in all' % MAX_IMAGES)
    add('--columns', type=cli.positive_int, default=None, help='images per row of the grid '
        '(default: about the square root; one row per class, seed or condition image)')
    add('--class', dest='classes', action='append', default=None, metavar='NAME',
        help='class to generate, for a class-conditional model; repeat it, or give "all"')
    add('--seed_image', action='append', default=None, metavar='PATH',
        help='image to complete from its first --seed_rows rows; repeatable')
    add('--seed_rows', type=cli.positive_int, default=None, help='rows of --seed_image to keep '
        '(default: half the image)')
    add('--condition_images', default=None, metavar='PATH',
        help='for a locally conditioned model: an image file or a folder of them, each of the '
             "model's size (made into its condition as in training) or of the condition's")
    add('--batch_size', type=cli.integer_range(1, 4096), default=256,
        help='images generated at once, at most; memory depends on this, not on --num_images')
    add('--temperature', type=cli.positive_float, default=1.0,
        help='sampling temperature, > 0 (lower: smoother images): divides the softmax logits; '
             'for a logistic mixture, divides the component logits and scales the logistics')
    add('--argmax', action='store_true', help='take the likeliest level of every pixel')
    add('--seed', type=cli.seed, default=None, help='random seed (default: a new one each time)')
    add('--no_ema', action='store_true',
        help='use the raw weights, not their moving averages, where a checkpoint holds both')
    add('--fast_generation', type=cli.boolean, default=True,
        help='one step through the layers per pixel; false: the whole network per pixel')
    add('--generation_state', choices=('ring', 'queues'), default='ring',
        help="the store of each layer's recent inputs in fast generation")
    add('--lanes', type=cli.positive_int, default=None, help='independent groups of the batch, '
        'one thread each (default: one per CPU core if each gets at least 16 images)')
    add('--save_every', type=cli.non_negative_int, default=0,
        help='every N pixels, write the grid so far to OUT.partial.png beside --out (removed '
             'at the end; --out itself is written once, at the end)')
    add('--verbose', action='store_true', help="show TensorFlow's own log lines and warnings")
    args = parser.parse_args(argv)
    for wrong, message in ((args.seed_rows is not None and not args.seed_image,
                            '--seed_rows needs --seed_image'),
                           ('' in (args.out_dir, args.out), '--out and --out_dir need a name'),
                           (args.save_every and args.out_dir,
                            '--save_every writes a grid beside --out: drop --out_dir')):
        if wrong:
            parser.error(message)
    return args


def requested_labels(requested, classes, conditional):
    """Class indices to generate, one per grid row, or [None] for an unconditional model."""
    known = ', '.join(classes) or 'none'
    if not conditional and requested:
        raise errors.Error('this model is not class-conditional: drop --class')
    if conditional and not requested:
        raise errors.Error('this model is class-conditional: give --class=NAME (repeatable) '
                           'or --class=all; classes: %s' % known)
    unknown = [name for name in requested or () if name not in classes + ('all',)]
    if unknown:
        raise errors.Error('unknown class %s; classes: %s' % (', '.join(unknown), known))
    return ([None] if not conditional else list(range(len(classes))) if 'all' in requested
            else [classes.index(name) for name in requested])


# One grid row: its class, seed levels [T] and condition index (each None where unused).
Row = collections.namedtuple('Row', 'label seed condition')


def plan_rows(args, run, condition_shape):
    """(Rows: every class with every seed and condition image; seed rows kept; Conditions)."""
    from wavenet import generation, reader
    labels = requested_labels(args.classes, run.classes, run.params.gc_channels > 0)
    seeds, seed_rows, conditions = [None], 0, []
    if args.seed_image:
        seed_rows = args.seed_rows if args.seed_rows is not None else run.image_size[0] // 2
        if seed_rows >= run.image_size[0]:
            raise errors.Error('--seed_rows=%d must be less than the image height %d'
                               % (seed_rows, run.image_size[0]))
        seeds = [reader.quantize(reader.load_image(path, run.image_size, run.channels),
                                 run.params.quantization_channels).reshape(-1)
                 for path in args.seed_image]
    if bool(args.condition_images) != bool(condition_shape):
        raise errors.Error('this model is %slocally conditioned: %s --condition_images' % (
            ('', 'give') if condition_shape else ('not ', 'drop')))
    if condition_shape:
        conditions = generation.read_condition_images(
            args.condition_images, run.image_size, run.channels, condition_shape,
            run.params.quantization_channels)
    rows = [Row(label, seed, condition) for label in labels for seed in seeds
            for condition in (range(len(conditions)) if conditions else [None])]
    return rows, seed_rows, conditions


def output_paths(args, rows, conditions):
    """The PNG files the command writes, checked before anything is generated."""
    from wavenet import image_grid
    total = len(rows) * args.num_images
    if total > MAX_IMAGES:
        raise errors.Error('%d images asked for (--num_images x classes x seed and condition '
                           'images); %d at most: lower --num_images' % (total, MAX_IMAGES))
    if args.columns is not None and args.columns > total:
        raise errors.Error('--columns=%d is more than the %s'
                           % (args.columns, cli.count(total, 'image')))
    # --save_every's grid so far goes beside --out: OUT.partial.png, a new file.
    paths = [args.out] + ([args.out[:-len('.png')] + '.partial.png'] if args.save_every else [])
    if args.save_every and os.path.lexists(paths[-1]):
        raise errors.Error('%s exists: move it away, or drop --save_every' % paths[-1])
    if args.out_dir:
        if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
            raise errors.Error('--out_dir=%s is a file: give a folder' % args.out_dir)
        counts, names = collections.Counter(), []
        for row in rows:  # in the order of the images
            for _ in range(args.num_images):
                names.append('image_%04d' % len(names) if row.condition is None else
                             '%s_%d' % (conditions[row.condition].name, counts[row.condition]))
                counts[row.condition] += 1
        paths = [os.path.join(args.out_dir, name + '.png') for name in names]
        if len(set(paths)) < len(paths):
            raise errors.Error('two condition images in %s have one name' % args.out_dir)
        existing = [path for path in paths if os.path.lexists(path)]
        if existing and not args.overwrite:
            raise errors.Error('%s exists (and %d more of the files to write): add --overwrite '
                               'to replace them, or choose another --out_dir'
                               % (existing[0], len(existing) - 1))
    for path in paths:
        image_grid.check_png_path(path)
    return paths


def layout(images, rows, seed_rows, shown, args, to_images):
    """One image, or the grid of uint8 images [N, ...]: a row per class, seed and condition
    image, the seed and its kept rows first, or the condition first and its source (if any) last."""
    from wavenet import image_grid
    if len(rows) == 1 and not (seed_rows or shown):
        return images[0] if len(images) == 1 else image_grid.tile(
            images, args.columns or int(math.ceil(math.sqrt(len(images)))))
    grid_rows = []
    for index, row in enumerate(rows):
        samples = list(images[index * args.num_images:(index + 1) * args.num_images])
        if seed_rows:
            seed = to_images(row.seed[None])[0]
            kept = seed.copy()
            kept[seed_rows:] = 0
            samples = [seed, kept] + samples
        if row.condition is not None:
            condition, source = shown[row.condition]
            samples = [condition] + samples + ([] if source is None else [source])
        grid_rows.append(samples)
    return image_grid.grid(grid_rows)


def main(argv=None):
    """Restores a checkpoint (or several), generates the images and writes the PNG files."""
    args = get_arguments(argv)
    tf = cli.import_tensorflow(args.verbose)
    from wavenet import files, generation, image_grid
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), 'little')
    tf.set_random_seed(seed)
    models = cli.open_checkpoints(args.checkpoint, not args.no_ema)
    run, mixture = models.record, models.mixture
    rows, seed_rows, conditions = plan_rows(args, run, mixture.condition_shape)
    paths = output_paths(args, rows, conditions)
    total, (height, width) = len(rows) * args.num_images, run.image_size
    what = ('%s of %s (%d rows kept)' % (cli.count(total, 'completion'), ', '.join(
        args.seed_image), seed_rows) if seed_rows else cli.count(total, 'image'))
    print('generating %s of %dx%d from %s (%s generation, temperature %g, seed %d)' % (
        what, height, width, models.description,
        'fast' if args.fast_generation else 'naive', args.temperature, seed))
    batch_size = -(-total // -(-total // args.batch_size))  # equal batches, none padded much
    sampler = generation.build_sampler(mixture, batch_size, args.fast_generation,
                                       args.generation_state,
                                       args.lanes and min(args.lanes, batch_size))
    levels_count = run.params.quantization_channels
    sources = tf.placeholder(tf.int32, (None,) + run.image_size + (run.channels,))
    derived = mixture.derive_condition(sources) if conditions else None

    def to_images(levels):
        return image_grid.to_images(levels, run.image_size, run.channels, levels_count)

    def write(levels, path):
        try:
            if args.out_dir:
                for image_path, image in zip(paths, to_images(levels)):
                    image_grid.save_png(image_path, image)
            else:
                image_grid.save_png(path, layout(to_images(levels), rows, seed_rows, shown,
                                                 args, to_images))
        except OSError as error:
            raise errors.Error('cannot write %s (%s)' % (path, errors.reason(error))) from None
    labels = None if rows[0].label is None else np.array([row.label for row in rows])
    primes = (np.stack([row.seed[:seed_rows * width * run.channels] for row in rows])
              if seed_rows else None)  # [R, P]
    try:
        with tf.Session(config=sampler.config) as session, cli.StopRequest(
                'stopping after this run of pixels', 'files written before are kept') as stop:
            models.restore(session)
            shown, condition = [], None
            if conditions:  # derived as in training, where given at the image's size
                levels = np.stack([given if given is not None else session.run(
                    derived, {sources: source[None]})[0] for _, source, given in conditions])
                shown = list(zip(image_grid.condition_images(
                    levels, run.image_size, run.channels, levels_count),
                    [None if source is None else to_images(source.reshape(1, -1))[0]
                     for _, source, _ in conditions]))
                condition = levels[[row.condition for row in rows]]  # [R, h, w, c]
            generated = generation.sample_rows(
                session, sampler, len(rows), args.num_images, labels, primes, condition,
                args.temperature, args.argmax, args.save_every or width * run.channels,
                (lambda partial: write(partial, paths[-1])) if args.save_every else None,
                stop.raise_if_requested)
        write(generated, args.out_dir or args.out)
    except tf.errors.InvalidArgumentError as error:
        raise errors.Error('the model in %s gives non-finite probabilities (%s): the '
                           'checkpoint is corrupt or training diverged'
                           % (models.description, errors.reason(error))) from None
    finally:
        if args.save_every:
            files.remove_quietly(paths[-1])
    print('wrote %s' % (args.out_dir or args.out))


if __name__ == '__main__':
    cli.run_main(main)
