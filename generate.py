"""Generates images from a trained image WaveNet.

Usage: python generate.py --checkpoint=LOGDIR_OR_PREFIX --out=samples.png [flags]
       python generate.py --checkpoint=RUN1 --checkpoint=RUN2 ...   (sample from an ensemble)
       python generate.py ... --class=3 --class=7      (class-conditional models; or --class=all)
       python generate.py ... --seed_image=digit.png --seed_rows=14   (complete an image)
       python generate.py ... --condition_images=DIR   (locally conditioned models)

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
    parser = cli.ArgumentParser(
        description='Generate images with a trained WaveNet image model.')
    add = parser.add_argument
    add('--checkpoint', action=cli.ReplaceDefaultAppend, default=[os.path.join(ROOT, 'logdir')],
        help='a training logdir (its newest readable checkpoint) or a checkpoint prefix such '
             'as LOGDIR/model.ckpt-1000; repeat it to sample from the ensemble of several '
             'models (at every pixel, the mean of their distributions)')
    add('--out', default='samples.png',
        help='PNG file: one image, or a grid of all of them (folders are created); an existing '
             'file is replaced only if it is a regular PNG file, atomically, keeping its mode')
    add('--out_dir', default=None,
        help='write one PNG per image into this folder instead of --out: image_0000.png, ... '
             '(NAME_0.png, ... for condition image NAME.png); files of those names are '
             'replaced only with --overwrite')
    add('--overwrite', action='store_true', help='let --out_dir replace its PNG files')
    add('--num_images', type=cli.integer_range(1, MAX_IMAGES), default=16,
        help='images to generate (per class, seed image and condition image); %d at most in '
             'all' % MAX_IMAGES)
    add('--columns', type=cli.positive_int, default=None,
        help='images per row of the grid (default: about the square root; one row per class, '
             'seed image or condition image)')
    add('--class', dest='classes', action='append', default=None, metavar='NAME',
        help='class to generate, for a class-conditional model; repeat it, or give "all"')
    add('--seed_image', action='append', default=None, metavar='PATH',
        help='image to complete: its first --seed_rows rows are kept (converted as in '
             'training) and the rest is generated; repeatable')
    add('--seed_rows', type=cli.positive_int, default=None,
        help='rows of --seed_image to keep (default: half the image)')
    add('--condition_images', default=None, metavar='PATH',
        help='for a locally conditioned model: an image file or a folder of them; each is '
             'made into the condition as in training (a low-resolution or gray copy; an image '
             'of the condition\'s size is taken as it is)')
    add('--batch_size', type=cli.integer_range(1, 4096), default=256,
        help='images generated at once, at most; memory depends on this, not on --num_images')
    add('--temperature', type=cli.positive_float, default=1.0,
        help='sampling temperature, > 0 (lower: smoother images): divides the softmax logits; '
             'for a logistic mixture, divides the component logits and scales the logistics')
    add('--argmax', action='store_true', help='take the likeliest level of every pixel')
    add('--seed', type=cli.seed, default=None,
        help='random seed, 0 to %d (default: a different run every time)' % cli.MAX_SEED)
    add('--no_ema', action='store_true',
        help='use the raw weights where a checkpoint also holds their moving averages (used '
             'by default)')
    add('--fast_generation', type=cli.boolean, default=True,
        help='incremental generation, one step through the layers per pixel; false runs the '
             'whole network once per pixel (slow, for checking)')
    add('--generation_state', choices=('ring', 'queues'), default='ring',
        help="where fast generation keeps each layer's recent inputs: one ring buffer for all "
             'layers, or FIFO queues')
    add('--lanes', type=cli.positive_int, default=None,
        help='independent groups of the batch for fast generation, one thread each (default: '
             'one per CPU core if each gets at least 16 images, else 1)')
    add('--save_every', type=cli.non_negative_int, default=0,
        help='every N pixels, write the grid so far to OUT.partial.png beside --out (removed '
             'at the end; --out itself is written once, at the end)')
    add('--verbose', action='store_true', help="show TensorFlow's own log lines and warnings")
    args = parser.parse_args(argv)
    if args.seed_rows is not None and args.seed_image is None:
        parser.error('--seed_rows needs --seed_image')
    if args.out_dir == '' or args.out == '':
        parser.error('--out and --out_dir need a name')
    if args.save_every and args.out_dir:
        parser.error('--save_every writes a grid beside --out: drop --out_dir')
    return args


def requested_labels(requested, classes, conditional):
    """Class indices to generate, one per grid row, or [None] for an unconditional model."""
    known = ', '.join(classes) or 'none'
    if not conditional:
        if requested:
            raise errors.Error('this model is not class-conditional: drop --class')
        return [None]
    if not requested:
        raise errors.Error('this model is class-conditional: give --class=NAME (repeatable) '
                           'or --class=all; classes: %s' % known)
    if 'all' in requested:
        return list(range(len(classes)))
    unknown = [name for name in requested if name not in classes]
    if unknown:
        raise errors.Error('unknown class %s; classes: %s' % (', '.join(unknown), known))
    return [classes.index(name) for name in requested]


Row = collections.namedtuple('Row', 'label seed condition')  # one grid row: the class, the
# seed levels [T] and the index of the condition image (each None where unused)
Conditions = collections.namedtuple('Conditions', 'names sources levels shown',
                                    defaults=(None,))  # per condition image: its name, its
# levels at full size (or None), its condition levels (None: to derive), and as shown


def plan_rows(args, run, condition_shape):
    """What to generate: every requested class with every seed and condition image, as Rows;
    the image rows kept from each seed (0: not completing); and the Conditions."""
    from wavenet import reader
    levels = run.params.quantization_channels
    labels = requested_labels(args.classes, run.classes, run.params.gc_channels > 0)
    seeds, seed_rows = [None], 0
    if args.seed_image:
        seed_rows = args.seed_rows if args.seed_rows is not None else run.image_size[0] // 2
        if seed_rows >= run.image_size[0]:
            raise errors.Error('--seed_rows=%d must be less than the image height %d'
                               % (seed_rows, run.image_size[0]))
        seeds = [reader.quantize(reader.load_image(path, run.image_size, run.channels),
                                 levels).reshape(-1) for path in args.seed_image]
    if bool(args.condition_images) != bool(condition_shape):
        raise errors.Error('this model is locally conditioned: give --condition_images'
                           if condition_shape else 'this model is not locally conditioned '
                           '(trained without --local_condition): drop --condition_images')
    conditions = Conditions([], [], [])
    if condition_shape:
        paths = ([args.condition_images] if os.path.isfile(args.condition_images)
                 else reader.list_image_files(args.condition_images))
        if not paths:
            raise errors.Error('no image files in --condition_images=%s' % args.condition_images)
        for path in paths:
            image = reader.quantize(reader.load_image(path, None, run.channels), levels)
            shaped = image.reshape(image.shape[:2] + (-1,))
            if shaped.shape[:2] == tuple(run.image_size):
                conditions.sources.append(shaped)
                conditions.levels.append(None)
            elif shaped.shape[:2] == condition_shape[:2]:
                conditions.sources.append(None)
                conditions.levels.append(shaped[..., :condition_shape[2]])
            else:
                raise errors.Error(
                    'condition image %s is %dx%d: give images of the model\'s size %dx%d or of '
                    'its condition\'s size %dx%d' % ((path,) + shaped.shape[:2] + tuple(
                        run.image_size) + condition_shape[:2]))
            conditions.names.append(os.path.splitext(os.path.basename(path))[0])
    rows = [Row(label, seed, condition) for label in labels for seed in seeds
            for condition in (range(len(conditions.names)) if condition_shape else [None])]
    return rows, seed_rows, conditions


def output_paths(args, rows, conditions):
    """The PNG files the command writes, checked before anything is generated."""
    from wavenet import image_grid
    total = len(rows) * args.num_images
    if total > MAX_IMAGES:
        raise errors.Error('%d images asked for (--num_images x classes x seed and condition '
                           'images); %d at most: lower --num_images' % (total, MAX_IMAGES))
    if args.columns is not None and args.columns > total:
        raise errors.Error('--columns=%d is more than the %s' % (args.columns,
                                                                 cli.count(total, 'image')))
    if not args.out_dir:
        paths = [args.out] + ([partial_path(args.out)] if args.save_every else [])
    else:
        if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
            raise errors.Error('--out_dir=%s is a file: give a folder' % args.out_dir)
        counts = collections.Counter()
        paths = []
        for row in rows:
            for _ in range(args.num_images):
                name = 'image_%04d' if row.condition is None else conditions.names[
                    row.condition] + '_%d'
                paths.append(os.path.join(args.out_dir, name % counts[row.condition] + '.png'))
                counts[row.condition] += 1
        existing = [path for path in paths if os.path.lexists(path)]
        if existing and not args.overwrite:
            raise errors.Error('%s exists (and %d more of the files to write): add --overwrite '
                               'to replace them, or choose another --out_dir'
                               % (existing[0], len(existing) - 1))
    for path in paths:
        image_grid.check_png_path(path)
    return paths


def partial_path(out):
    """Where --save_every writes the grid so far: OUT.partial.png beside OUT.png."""
    return out[:-len('.png')] + '.partial.png'


def layout(images, rows, seed_rows, conditions, args, run):
    """One image, or the grid: a row per class, seed and condition image, with the seed and
    its kept rows before the images, the condition before them and its source after."""
    from wavenet import image_grid
    if len(images) == 1 and not seed_rows and not conditions.names:
        return images[0]
    if len(rows) == 1 and not seed_rows and not conditions.names:
        return image_grid.tile(images, args.columns or int(math.ceil(math.sqrt(len(images)))))
    grid_rows = []
    for index, row in enumerate(rows):
        before, after = [], []
        if seed_rows:
            seed = image_grid.to_images(row.seed, run.image_size, run.channels,
                                        run.params.quantization_channels)[0]
            kept = seed.copy()
            kept[seed_rows:] = 0
            before += [seed, kept]
        if row.condition is not None:
            before.append(conditions.shown[row.condition])
            source = conditions.sources[row.condition]
            after = [] if source is None else [image_grid.to_images(
                source.reshape(1, -1), run.image_size, run.channels,
                run.params.quantization_channels)[0]]
        grid_rows.append(before + list(images[index * args.num_images:
                                              (index + 1) * args.num_images]) + after)
    return image_grid.grid(grid_rows)


def generate(args, session, sampler, rows, seed_rows, conditions, run, save_partial):
    """Samples every planned image, batch by batch, with a progress bar; returns int32 [N, T]
    levels. `save_partial(levels so far)` is called every --save_every pixels."""
    from wavenet.progress import Progress
    height, width = run.image_size
    per_image, count = height * width * run.channels, args.num_images
    labels = (None if rows[0].label is None else
              np.repeat(np.array([row.label for row in rows], np.int32), count))
    primes = (np.repeat(np.stack([row.seed[:seed_rows * width * run.channels] for row in rows]),
                        count, axis=0) if seed_rows else None)  # [N, P]
    condition = (None if rows[0].condition is None else np.repeat(np.stack(
        [conditions.levels[row.condition] for row in rows]), count, axis=0))  # [N, h, w, c]
    total = len(rows) * count
    generated = np.zeros((total, per_image), np.int32)
    progress = Progress('generating', total * per_image, 'pixels')
    for first in range(0, total, sampler.batch_size):
        last = min(first + sampler.batch_size, total)
        reported = 0

        def on_progress(done, pixels_so_far):
            nonlocal reported
            progress.update((last - first) * (done - reported))
            reported = done
            if args.save_every and done % args.save_every == 0 and done < per_image:
                generated[first:last, :done] = pixels_so_far
                save_partial(generated)

        def rows_of(values):
            return None if values is None else values[first:last]
        # One session.run per image row (for the progress bar), or per --save_every pixels.
        generated[first:last] = sampler.sample(
            session, last - first, rows_of(labels), rows_of(primes), rows_of(condition),
            args.temperature, args.argmax, args.save_every or width * run.channels, on_progress)
    progress.close()
    return generated


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
    total = len(rows) * args.num_images
    what = (cli.count(total, 'completion') + ' of %s (%d rows kept)'
            % (', '.join(args.seed_image), seed_rows) if seed_rows else cli.count(total, 'image'))
    print('generating %s of %dx%d from %s (%s generation, temperature %g, seed %d)'
          % (what, run.image_size[0], run.image_size[1], models.description,
             'fast' if args.fast_generation else 'naive', args.temperature, seed))
    batch_size = -(-total // -(-total // args.batch_size))  # equal batches, none padded much
    sampler = generation.build_sampler(mixture, batch_size, args.fast_generation,
                                       args.generation_state,
                                       args.lanes and min(args.lanes, batch_size))
    sources = tf.placeholder(tf.int32, (None,) + run.image_size + (run.channels,))
    derived = mixture.derive_condition(sources) if mixture.condition_shape else None

    def to_images(levels):
        return image_grid.to_images(levels, run.image_size, run.channels,
                                    run.params.quantization_channels)

    def write(levels, path):
        try:
            if args.out_dir:
                for image_path, image in zip(paths, to_images(levels)):
                    image_grid.save_png(image_path, image)
            else:
                image_grid.save_png(path, layout(to_images(levels), rows, seed_rows, conditions,
                                                 args, run))
        except OSError as error:
            raise errors.Error('cannot write %s (%s)' % (path, errors.reason(error))) from None
    try:
        with tf.Session(config=sampler.config) as session:
            models.restore(session)
            if conditions.names:
                levels = [given if given is not None else session.run(
                    derived, {sources: source[None]})[0]
                    for given, source in zip(conditions.levels, conditions.sources)]
                conditions = conditions._replace(levels=levels, shown=image_grid.condition_images(
                    np.stack(levels), run.image_size, run.channels,
                    run.params.quantization_channels))
            levels = generate(args, session, sampler, rows, seed_rows, conditions, run,
                              lambda partial: write(partial, paths[-1]))
        write(levels, args.out_dir or args.out)
    except tf.errors.InvalidArgumentError as error:
        raise errors.Error('the model in %s gives non-finite probabilities (%s): the '
                           'checkpoint is corrupt or training diverged'
                           % (models.description, errors.reason(error))) from None
    finally:
        if args.save_every:
            files.remove_quietly(partial_path(args.out))
    print('wrote %s' % (args.out_dir or args.out))


if __name__ == '__main__':
    cli.run_main(main)
