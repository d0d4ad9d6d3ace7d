"""Converts a folder of images into a prepared dataset for train.py and evaluate.py.

    python datasets/prepare.py --data_dir=SRC --out=DST [--image_size=N|HxW] [--channels=1|3]
        [--validation_fraction=F] [--seed=S] [--overwrite]

SRC is read as train.py reads it (wavenet/reader.py: any layout it accepts, the same image
size rule, conversions, splits and classes); its training images become DST's `train` split
and its validation images (its test/ or val/ folder, or the held-out fraction) the `test`
split, as 8-bit intensities (wavenet/prepared.py describes the files). The images are decoded
and written a chunk at a time, so SRC may be larger than memory.

DST must be missing, empty or a prepared dataset: anything else is refused and never
touched. Replacing a prepared dataset needs --overwrite; only the dataset's own files are
replaced, and only once the new ones are complete (dataset.json comes last).
"""
import os
import sys

# `python datasets/prepare.py` puts datasets/ first on sys.path, not the project root.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from wavenet import cli, prepared, reader  # noqa: E402
from wavenet.progress import Progress, format_bytes  # noqa: E402

CHUNK_IMAGES = 1024  # images decoded before they are written: bounds the memory used
SPLITS = (('train', 'train'), ('validation', 'test'))  # FolderPlan field, prepared split


def parse_args(argv=None):
    """Parses the flags."""
    parser = cli.ArgumentParser(
        description='Convert a folder of images into a prepared dataset (uint8 .npy files '
                    'read memory-mapped) for train.py --data_dir and evaluate.py --data_dir.')
    parser.add_argument('--data_dir', required=True, metavar='SRC',
                        help='folder of images, in any layout train.py reads (required)')
    parser.add_argument('--out', required=True, metavar='DST',
                        help='the prepared dataset\'s folder: missing, empty or a prepared '
                             'dataset (then with --overwrite) (required)')
    parser.add_argument('--image_size', type=cli.image_size, default=None,
                        help='N or HxW every image is resized to, sides 1 to %d (default: '
                             'the most common size among the training images)'
                             % cli.MAX_IMAGE_SIDE)
    parser.add_argument('--channels', type=int, choices=(1, 3), default=1,
                        help='1: grayscale; 3: RGB')
    parser.add_argument('--validation_fraction', type=cli.fraction, default=0.1,
                        help='share of the images held out as the test split when SRC has '
                             'no split folders, in [0, 1)')
    parser.add_argument('--seed', type=cli.seed, default=0,
                        help='seed of the held-out choice')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the prepared dataset already in DST')
    return parser.parse_args(argv)


def check_out(out, overwrite):
    """Raises cli.UsageError unless DST may be written: missing, empty, or a prepared
    dataset (complete or half written) and --overwrite."""
    if not os.path.lexists(out):
        return
    if not os.path.isdir(out):
        raise cli.UsageError('--out=%s exists and is not a folder' % out)
    entries = sorted(os.listdir(out))
    if not entries:
        return
    ours = [name for name in entries if prepared.is_format_entry(name)]
    if not prepared.is_prepared(out) and len(ours) < len(entries):
        foreign = [name for name in entries if not prepared.is_format_entry(name)]
        raise cli.UsageError('--out=%s is not empty and not a prepared dataset (it holds %s): '
                             'nothing there is touched; choose a new or empty folder'
                             % (out, os.path.join(out, foreign[0])))
    if not overwrite:
        raise cli.UsageError('--out=%s already holds a prepared dataset%s: add --overwrite to '
                             'replace it' % (out, '' if prepared.is_prepared(out)
                                             else ' (half written)'))


def write_split(writer, split, split_files, image_size, channels, progress):
    """Decodes a split's files a chunk at a time and appends their pixels to `writer`.

    Returns:
        (class names, skipped): the class name (or None) of each image written, in order;
        (path, reason) of each file that could not be read.
    """
    names, skipped, chunk = [], list(split_files.skipped), []
    decoded = reader.decode_split(split_files, image_size, channels)
    for path, class_name, pixels, reason in decoded:
        progress.update(1)
        if pixels is None:
            skipped.append((path, reason))
            continue
        names.append(class_name)
        chunk.append(pixels)
        if len(chunk) == CHUNK_IMAGES:
            writer.append_images(split, np.stack(chunk))
            chunk = []
    writer.append_images(split, np.stack(chunk) if chunk
                         else np.zeros((0,) + tuple(image_size) + (channels,), np.uint8))
    return names, skipped


def write_dataset(args, plan, source):
    """Writes DST from the FolderPlan of SRC; returns (counts, classes, skipped)."""
    if not plan.train.files:
        raise no_training_image(args.data_dir, plan.train.skipped)
    total = sum(len(getattr(plan, field).files) for field, _ in SPLITS)
    progress = Progress('reading %s' % args.data_dir, total=total, unit='images')
    names, skipped = {}, []
    with prepared.PreparedWriter(args.out, plan.image_size, args.channels, (), source) as writer:
        try:
            for field, split in SPLITS:
                names[split], split_skipped = write_split(
                    writer, split, getattr(plan, field), plan.image_size, args.channels,
                    progress)
                skipped += sorted(split_skipped)
        finally:
            progress.close()
        if not names['train']:
            raise no_training_image(args.data_dir, skipped)
        # Like reader.load_dataset, a class is a folder holding a readable image: the
        # classes are known once the images are read, so the labels are written last.
        writer.classes = tuple(sorted({name for split in names.values() for name in split}
                                      - {None}))
        index = {name: i for i, name in enumerate(writer.classes)}
        for split, split_names in names.items():
            writer.append_labels(split, np.array([index.get(name, -1) for name in split_names],
                                                 np.int64))
        counts = writer.close()
    return counts, writer.classes, skipped


def no_training_image(data_dir, skipped):
    """The UsageError for a SRC none of whose training images can be read."""
    return cli.UsageError('no readable training image in %s: %d image files were skipped '
                          '(e.g. %s: %s); replace them with valid images'
                          % ((data_dir, len(skipped)) + tuple(skipped[0])))


def describe(out, counts, classes, image_size, channels):
    """One line saying what DST now holds."""
    names = [name for split in counts for name in prepared.file_names(split)]
    sizes = sum(os.path.getsize(os.path.join(out, name)) for name in names)
    return 'wrote %s: %s and %s, %dx%d %s, %d class%s (%s in %s and dataset.json)' % (
        out, cli.count(counts['train'], 'training image'), cli.count(counts['test'], 'test image'),
        image_size[0], image_size[1], 'RGB' if channels == 3 else 'grayscale',
        len(classes), '' if len(classes) == 1 else 'es', format_bytes(sizes), ', '.join(names))


def main(argv=None):
    """Runs the command line; raises cli.UsageError on bad input."""
    args = parse_args(argv)
    if prepared.is_prepared(args.data_dir):
        raise cli.UsageError('--data_dir=%s is already a prepared dataset: train on it as it '
                             'is' % args.data_dir)
    if os.path.abspath(args.out) == os.path.abspath(args.data_dir):
        raise cli.UsageError('--out must be another folder than --data_dir')
    check_out(args.out, args.overwrite)
    try:
        plan = reader.plan_dataset(args.data_dir, args.image_size, args.validation_fraction,
                                   args.seed)
    except reader.DataError as error:
        raise cli.UsageError(str(error)) from None
    source = {'written_by': 'datasets/prepare.py', 'data_dir': os.path.abspath(args.data_dir),
              'split_source': plan.split_source}
    if plan.split_source == 'fraction':
        source.update(validation_fraction=args.validation_fraction, seed=args.seed)
    try:
        counts, classes, skipped = write_dataset(args, plan, source)
    except OSError as error:
        raise cli.UsageError('cannot write --out=%s: %s' % (args.out, cli.error_reason(error))
                             ) from None
    for path, reason in skipped:
        print('warning: skipped %s: %s' % (path, reason), file=sys.stderr)
    print(describe(args.out, counts, classes, plan.image_size, args.channels))


if __name__ == '__main__':
    cli.run_main(main)
