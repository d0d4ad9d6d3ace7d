"""Converts a folder of images into a prepared dataset for train.py and evaluate.py.

    python -m datasets.prepare --data_dir=SRC --out=DST [--image_size=N|HxW] [--channels=1|3]
        [--validation_fraction=F] [--seed=S] [--overwrite]

SRC is read as train.py reads it (wavenet/reader.py: layouts, size rule, conversions, splits and
classes): its training images become DST's train split and its validation images the test split,
decoded and written a chunk at a time, so SRC may be larger than memory. DST must be missing,
empty, or a dataset these scripts wrote (prepared.check_output); a complete one needs --overwrite.
"""
import os

import numpy as np

from wavenet import cli, errors, prepared, reader
from wavenet.progress import Progress, format_bytes

CHUNK_IMAGES = 1024  # files decoded before their images are written: bounds the memory


def parse_args(argv=None):
    parser = cli.ArgumentParser(
        prog='python -m datasets.prepare',
        description='Convert a folder of images into a prepared dataset (uint8 .npy files read '
                    'memory-mapped) for train.py --data_dir and evaluate.py --data_dir.')
    parser.add_argument('--data_dir', required=True, metavar='SRC',
                        help='folder of images, in any layout train.py reads (required)')
    parser.add_argument('--out', required=True, metavar='DST',
                        help='the prepared dataset\'s folder: missing, empty, or a dataset '
                             'these scripts wrote (then with --overwrite) (required)')
    parser.add_argument('--image_size', type=cli.image_size, default=None,
                        help='N or HxW every image is resized to (default: the most common '
                             'size among the training images)')
    parser.add_argument('--channels', type=int, choices=(1, 3), default=1,
                        help='1: grayscale; 3: RGB')
    parser.add_argument('--validation_fraction', type=cli.fraction, default=0.1,
                        help='share of the images held out as the test split when SRC has '
                             'no split folders, in [0, 1)')
    parser.add_argument('--seed', type=cli.seed, default=0, help='seed of the held-out choice')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the complete prepared dataset already in DST')
    return parser.parse_args(argv)


def write_dataset(args, plan, source):
    """Decodes the files of each split a chunk at a time into a PreparedWriter on args.out;
    returns ({split: count}, classes, skipped: (path, reason) of each file not read)."""
    progress = Progress('reading %s' % args.data_dir, unit='images',
                        total=len(plan.train.files) + len(plan.validation.files))
    names, skipped = {}, []
    shape = (-1,) + plan.image_size + ((3,) if args.channels == 3 else ())
    with prepared.PreparedWriter(args.out, plan.image_size, args.channels, (), source) as writer:
        try:
            for split, split_files in (('train', plan.train), ('test', plan.validation)):
                names[split], split_skipped = [], list(split_files.skipped)
                # At least one chunk: an empty split exists, with no image.
                for start in range(0, max(len(split_files.files), 1), CHUNK_IMAGES):
                    chunk = reader.SplitFiles(split_files.files[start:start + CHUNK_IMAGES], ())
                    images, chunk_skipped = reader.decode(chunk, plan.image_size, args.channels)
                    writer.append_images(split, np.array([pixels for _, _, pixels in images],
                                                         np.uint8).reshape(shape))
                    names[split] += [name for _, name, _ in images]
                    split_skipped += chunk_skipped
                    progress.update(len(chunk.files))
                skipped += sorted(split_skipped)
        finally:
            progress.close()
        if not names['train']:
            raise reader.no_readable_image(args.data_dir, skipped, 'training image')
        # As in reader.load_dataset, a class is a folder holding a readable image: the
        # classes are known once the images are read, so the labels are written last.
        writer.classes = tuple(sorted({name for split in names.values() for name in split}
                                      - {None}))
        for split, split_names in names.items():
            writer.append_labels(split, reader.class_indices(split_names, writer.classes))
        return writer.close(), writer.classes, skipped


def main(argv=None):
    """Runs the command line; raises errors.Error on bad input."""
    args = parse_args(argv)
    if prepared.is_prepared(args.data_dir):
        raise errors.Error('--data_dir=%s is already a prepared dataset: train on it as it is'
                           % args.data_dir)
    if os.path.abspath(args.out) == os.path.abspath(args.data_dir):
        raise errors.Error('--out must be another folder than --data_dir')
    existing = prepared.check_output(args.out)
    if existing and existing[1] and not args.overwrite:
        raise errors.Error('--out=%s already holds a prepared dataset: add --overwrite to '
                           'replace it' % args.out)
    plan = reader.plan_dataset(args.data_dir, args.image_size, args.validation_fraction, args.seed)
    if not plan.train.files:  # before anything is written
        raise reader.no_readable_image(args.data_dir, plan.train.skipped, 'training image')
    source = {'written_by': 'datasets/prepare.py', 'data_dir': os.path.abspath(args.data_dir),
              'split_source': plan.split_source}
    if plan.split_source == 'fraction':
        source.update(validation_fraction=args.validation_fraction, seed=args.seed)
    try:
        counts, classes, skipped = write_dataset(args, plan, source)
    except OSError as error:
        raise errors.Error('cannot write --out=%s: %s' % (args.out, errors.reason(error))) from None
    for path, reason in skipped:
        cli.warn('skipped %s: %s' % (path, reason))
    names = [name for split in counts for name in prepared.ARRAY_FILES[split]]
    size = sum(os.path.getsize(os.path.join(args.out, name)) for name in names)
    print('wrote %s: %s and %s, %dx%d %s, %d class%s (%s in %s and %s)' % (
        args.out, cli.count(counts['train'], 'training image'),
        cli.count(counts['test'], 'test image'), plan.image_size[0], plan.image_size[1],
        'RGB' if args.channels == 3 else 'grayscale', len(classes),
        '' if len(classes) == 1 else 'es', format_bytes(size), ', '.join(names),
        prepared.INFO_FILE))


if __name__ == '__main__':
    cli.run_main(main)
