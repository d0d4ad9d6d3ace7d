"""How close the samples of a locally conditioned model keep to their condition (trains nothing).

    python -m benchmarks.conditioning --checkpoint=LOGDIR --data_dir=TEST_IMAGES [--grid=PNG]

Each test image gives a condition as in training (model.derive_condition: F x F block averages
rounded to levels for 'lowres:F', the luminance for 'gray'); samples are drawn given it. The
figure: the mean absolute difference, in levels, between what is derived so from a sample and
its condition, and, as a baseline, another image's: the images are taken evenly spaced over the
folder (a class-sorted folder gives each class its share) and image i is compared with image
i + N // 2's condition, N images in all (of another class in a class-sorted folder).
"""
import shlex
import sys

import numpy as np

from benchmarks import table
from wavenet import cli, errors, hardware

GRID_ROWS, GRID_SAMPLES, MAX_BATCH = 8, 4, 256


def mean_differences(sample_conditions, conditions):
    """(own, other): the mean |sample condition - condition| of sample_conditions int
    [N, S, h, w, c] (of S samples each) against the conditions int [N, h, w, c] they were
    drawn given, and against the conditions of the images N // 2 further (N >= 2)."""
    samples = np.asarray(sample_conditions, np.int64)
    conditions = np.asarray(conditions, np.int64)[:, None]  # [N, 1, h, w, c]
    return tuple(float(np.mean(np.abs(samples - given)))
                 for given in (conditions, np.roll(conditions, -(len(conditions) // 2), axis=0)))


def main(argv=None):
    """Derives the conditions, samples, prints the table and writes the grid."""
    parser = cli.ArgumentParser(prog='python -m benchmarks.conditioning',
                                description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', required=True,
                        help='a logdir (its newest readable checkpoint) or a checkpoint prefix '
                             'of a model trained with --local_condition (required)')
    parser.add_argument('--data_dir', required=True, help='folder of test images (required)')
    parser.add_argument('--num_images', type=cli.integer_range(2), default=100,
                        help='test images, evenly spaced over the folder, each giving a condition')
    parser.add_argument('--samples', type=cli.positive_int, default=4,
                        help='samples drawn given each condition')
    parser.add_argument('--temperature', type=cli.positive_float, default=1.0,
                        help='sampling temperature')
    parser.add_argument('--seed', type=cli.seed, default=0, help='random seed of the samples')
    parser.add_argument('--grid', default=None, metavar='PNG',
                        help='a picture of the first %d conditions, a row each: the condition at '
                             'full size, %d samples, the original' % (GRID_ROWS, GRID_SAMPLES))
    args = parser.parse_args(argv)
    tf = cli.import_tensorflow(verbose=False)
    from wavenet import generation, image_grid, reader
    if args.grid:
        image_grid.check_png_path(args.grid)
    tf.set_random_seed(args.seed)
    models = cli.open_checkpoints([args.checkpoint])
    run, mixture = models.record, models.mixture
    if not mixture.condition_shape:
        raise errors.Error('%s was trained without --local_condition' % models.description)
    levels, shape = run.params.quantization_channels, run.image_size + (run.channels,)
    test, _ = reader.load_folder(args.data_dir, run.image_size, levels, run.classes, run.channels)
    count = min(args.num_images, len(test.images))
    if count < 2 or (mixture.conditional and (test.labels < 0).any()):
        raise errors.Error('%s needs at least 2 images, in the class folders of training for a '
                           'class-conditional model' % args.data_dir)
    chosen = np.linspace(0, len(test.images) - 1, count).astype(int)
    images = np.asarray(test.images[chosen]).reshape((count,) + shape)
    labels = np.repeat(test.labels[chosen], args.samples) if mixture.conditional else None
    total = count * args.samples
    batch = -(-total // -(-total // MAX_BATCH))  # equal batches, as generate.py's
    sources = tf.placeholder(tf.int32, (None,) + shape)
    derived = mixture.derive_condition(sources)
    sampler = generation.build_sampler(mixture, batch)
    with tf.Session(config=sampler.config) as session:
        models.restore(session)
        conditions = session.run(derived, {sources: images})
        given = np.repeat(conditions, args.samples, axis=0)
        samples = np.concatenate([sampler.sample(
            session, min(batch, total - first), None if labels is None
            else labels[first:first + batch], condition=given[first:first + batch],
            temperature=args.temperature) for first in range(0, total, batch)])
        sample_conditions = session.run(derived, {sources: samples.reshape((total,) + shape)})
    own, other = mean_differences(
        sample_conditions.reshape((count, args.samples) + conditions.shape[1:]), conditions)
    condition = run.params.local_condition
    print('%s; `python -m benchmarks.conditioning %s`\n' % (
        hardware.cpu_info()[0], ' '.join(shlex.quote(arg) for arg in argv or sys.argv[1:])))
    print(table("model|images x samples|figure, in levels|own condition|another image's", [[
        '%s (%s)' % (models.description, condition),
        '%d x %d' % (count, args.samples), 'mean absolute difference of the %s'
        % ('luminance' if condition == 'gray' else 'block averages'), '%.2f' % own,
        '%.2f' % other]]))
    if args.grid:
        rows = np.linspace(0, count - 1, min(GRID_ROWS, count)).astype(int)  # spread out
        shown = min(args.samples, GRID_SAMPLES)
        pictures, originals = (image_grid.to_images(values, run.image_size, run.channels,
                                                    levels) for values in (samples, images))
        image_grid.save_png(args.grid, image_grid.grid([
            [condition_image] + list(pictures[row * args.samples:row * args.samples + shown])
            + [originals[row]] for row, condition_image in zip(rows, image_grid.condition_images(
                conditions[rows], run.image_size, run.channels, levels))]))
        print('\nwrote %s' % args.grid)


if __name__ == '__main__':
    cli.run_main(main)
