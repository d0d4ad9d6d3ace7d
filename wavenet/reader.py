"""Reads a folder of images, or a prepared dataset, into quantized uint8 arrays.

Folder layout: `train/` beside `test/` (or `val/`, or `validation/`) are the training and
validation splits; otherwise every image below the folder (below `train/` when only it exists)
is read and a seeded fraction of the files is held out. Within a split the first folder level
names the class; images lying directly in the split folder have none (label -1). Images are
found by extension (any case), hidden files and folders ignored; a file that cannot be decoded
is skipped and reported. Headers are read first, for the sizes; the pixels are decoded once,
the EXIF orientation applied (image_file).

Image size rule: without `image_size`, the most common size among the readable headers of the
training images (for load_folder, of all its images); ties go to the smaller area, then the
smaller height, so that a stray large file cannot set the size. Other sizes are resized with
Lanczos. Every image becomes 8-bit grayscale (or RGB), then Q levels (quantize).

A folder holding dataset.json is a prepared dataset (wavenet/prepared.py): its train and test
splits are the training and validation splits (without a test split, a seeded fraction of train
is held out), memory-mapped: ImageSet.images is a prepared.PreparedImages. Its images are never
resized or converted: another size or channel count is a DataError.
"""
import collections
import os
from typing import NamedTuple

import numpy as np

from wavenet import image_file, prepared
from wavenet.errors import DataError, Error

_VALIDATION_FOLDERS = ('test', 'val', 'validation')
_EXPECTED = ('image files (%s), optionally in class subfolders or in train/ and test/ split '
             'folders' % ', '.join(image_file.IMAGE_EXTENSIONS))


class ImageSet(NamedTuple):
    """Images of one split: `images` uint8 [N, H, W] (grayscale) or [N, H, W, 3] (RGB) of
    levels 0..Q-1 (a numpy array, or a prepared.PreparedImages); `labels` int32 [N], indices
    into the classes, -1 for none; `files` the N paths in order (() for a prepared dataset)."""
    images: np.ndarray
    labels: np.ndarray
    files: tuple


class Dataset(NamedTuple):
    """The training split (at least one image) and the validation split (maybe empty)."""
    train: ImageSet
    validation: ImageSet
    classes: tuple  # sorted class names, () for none
    image_size: tuple  # (height, width)
    skipped: tuple  # (path, reason) of each image file not read
    split_source: str  # 'folders' (train/ and test/), 'fraction' (held out) or 'prepared'
    size_counts: tuple  # ((height, width), count) of the training files by the size rule


class SplitFiles(NamedTuple):
    """The files of a split whose header could be read, in path order, and the others."""
    files: tuple  # (path, class name or None)
    skipped: tuple  # (path, reason)


class FolderPlan(NamedTuple):
    """What load_dataset reads from a folder, from the headers alone (as in Dataset;
    image_size None when no training header is readable)."""
    train: SplitFiles
    validation: SplitFiles
    image_size: tuple
    split_source: str
    size_counts: tuple


def quantize(pixels, quantization_channels):
    """uint8 levels (pixels * Q) // 256, in 0..Q-1, of integer intensities 0..255 (any shape)."""
    count = prepared.check_levels(quantization_channels)
    return (_integers(pixels, 256, 'pixels') * count // 256).astype(np.uint8)


def dequantize(levels, quantization_channels):
    """uint8 intensities round(levels * 255 / (Q - 1)) (ties to even) of levels 0..Q-1."""
    count = prepared.check_levels(quantization_channels)
    return np.round(_integers(levels, count, 'levels') * 255 / (count - 1)).astype(np.uint8)


def _integers(values, limit, name):
    """`values` as int64; ValueError unless they are integers in 0..limit-1."""
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError('%s must be integers, got dtype %s' % (name, values.dtype))
    if values.size and (values.min() < 0 or values.max() >= limit):
        raise ValueError('%s must lie in 0..%d' % (name, limit - 1))
    return values.astype(np.int64)


def load_image(path, image_size=None, channels=1):
    """One image file as uint8 [H, W] (channels 1) or [H, W, 3] (channels 3) intensities, at
    its own size or resized to `image_size` (height, width) (image_file.read_pixels); DataError
    naming the file when it cannot be decoded."""
    image_size = None if image_size is None else prepared.check_image_size(image_size)
    try:
        return image_file.read_pixels(path, image_size, prepared.check_channels(channels))
    except image_file.UnreadableImage as error:
        raise DataError('cannot read image %s: %s; replace or remove the file'
                        % (path, error)) from None


def list_image_files(folder):
    """Sorted paths of the image files below `folder`, recursively, hidden ones excluded."""
    paths = []
    for parent, folders, names in os.walk(os.fspath(folder)):
        folders[:] = [name for name in folders if not name.startswith('.')]
        paths.extend(os.path.join(parent, name) for name in names if not name.startswith('.')
                     and name.lower().endswith(image_file.IMAGE_EXTENSIONS))
    return sorted(paths)


def load_dataset(data_dir, image_size=None, quantization_channels=256, validation_fraction=0.1,
                 seed=0, channels=1):
    """The Dataset of a folder or prepared dataset (module docstring): images at `image_size`
    (height, width; None: the size rule), of Q = `quantization_channels` levels (2..256), with
    `channels` 1 (grayscale, [N, H, W]) or 3 (RGB, [N, H, W, 3]). Without split folders,
    `validation_fraction` (in [0, 1)) of the files is held out, picked with `seed`: above 0 at
    least one unless there is only one file, and never every file.

    Raises DataError for a missing folder, one without image files or a readable training
    image, a damaged prepared dataset or one of another size or channels; Error for an
    argument out of range.
    """
    data_dir, image_size = _check(data_dir, image_size, quantization_channels, channels,
                                  validation_fraction)
    if prepared.is_prepared(data_dir):
        return _prepared_dataset(data_dir, image_size, quantization_channels,
                                 validation_fraction, seed, channels)
    plan = plan_dataset(data_dir, image_size, validation_fraction, seed)
    train, train_skipped = _decode_all(plan.train, plan.image_size, channels)
    validation, validation_skipped = _decode_all(plan.validation, plan.image_size, channels)
    skipped = tuple(train_skipped + validation_skipped)
    if not train:
        raise no_readable_image(data_dir, skipped, 'training image')
    classes = tuple(sorted({name for _, name, _ in train + validation} - {None}))
    train, validation = (_image_set(images, classes, plan.image_size, quantization_channels,
                                    channels) for images in (train, validation))
    return Dataset(train, validation, classes, plan.image_size, skipped, plan.split_source,
                   plan.size_counts)


def plan_dataset(data_dir, image_size=None, validation_fraction=0.1, seed=0):
    """The FolderPlan of a folder of images (not a prepared dataset), from the file headers
    only, so that a caller (datasets/prepare.py) can decode the images a few at a time with
    decode_split. Arguments and errors as load_dataset's."""
    data_dir, image_size = _check(data_dir, image_size, 256, 1, validation_fraction)
    train_root, validation_root, split_source = os.path.join(data_dir, 'train'), None, 'folders'
    if os.path.isdir(train_root):
        validation_root = next((os.path.join(data_dir, name) for name in _VALIDATION_FOLDERS
                                if os.path.isdir(os.path.join(data_dir, name))), None)
    else:
        train_root = data_dir
    if validation_root is None:
        validation_root, split_source = train_root, 'fraction'
        files = _list_required(train_root)
        train_rows, validation_rows = _held_out(len(files), validation_fraction, seed)
        train_paths, validation_paths = ([files[i] for i in rows]
                                         for rows in (train_rows, validation_rows))
    else:
        train_paths = _list_required(train_root)
        validation_paths = list_image_files(validation_root)
    train, size_counts = _read_headers(train_paths, train_root)
    validation, _ = _read_headers(validation_paths, validation_root)
    if image_size is None and size_counts:
        image_size = size_counts[0][0]
    return FolderPlan(train, validation, image_size, split_source, size_counts)


def decode_split(split_files, image_size, channels=1):
    """Decodes the files of a SplitFiles one at a time, in order, at `image_size`; yields
    (path, class name or None, pixels, reason): uint8 [H, W(, 3)] intensities and None, or None
    and a short reason when the file cannot be read."""
    for path, class_name in split_files.files:
        try:
            yield path, class_name, image_file.read_pixels(path, image_size, channels), None
        except image_file.UnreadableImage as error:
            yield path, class_name, None, str(error)


def load_folder(folder, image_size, quantization_channels, classes=None, channels=1,
                split='test'):
    """(ImageSet, skipped) of every image below a folder, or of the `split` ('test' or
    'train') of a prepared dataset, e.g. to evaluate on. Arguments as load_dataset's (the size
    rule over all the images); labels index into `classes` (None: all -1), -1 for an image
    without a class or of another. skipped: (path, reason) of each file not read.

    Raises DataError for a missing folder, one without image files or none readable, a
    prepared dataset without images in that split, damaged or of another size or channels;
    Error for an argument out of range.
    """
    folder, image_size = _check(folder, image_size, quantization_channels, channels)
    classes = tuple(classes or ())
    if prepared.is_prepared(folder):
        info = _prepared_info(folder, image_size, channels)
        return _prepared_split(folder, split, quantization_channels, info.classes, classes), ()
    split_files, size_counts = _read_headers(_list_required(folder), folder)
    if image_size is None and size_counts:
        image_size = size_counts[0][0]
    images, skipped = _decode_all(split_files, image_size, channels)
    if not images:
        raise no_readable_image(folder, skipped, 'image')
    return (_image_set(images, classes, image_size, quantization_channels, channels),
            tuple(skipped))


def _prepared_dataset(path, image_size, quantization_channels, validation_fraction, seed,
                      channels):
    """load_dataset of a prepared dataset."""
    info = _prepared_info(path, image_size, channels)
    train = _prepared_split(path, 'train', quantization_channels, info.classes, info.classes)
    if 'test' in info.counts:
        validation = _prepared_split(path, 'test', quantization_channels, info.classes,
                                     info.classes, may_be_empty=True)
    else:
        train, validation = (ImageSet(train.images.take(rows), train.labels[rows], ())
                             for rows in _held_out(len(train.labels), validation_fraction, seed))
    return Dataset(train, validation, info.classes, info.image_size, (), 'prepared',
                   ((info.image_size, len(train.labels)),))


def _prepared_info(path, image_size, channels):
    """The prepared.Info of a prepared dataset; DataError unless it holds `image_size` (when
    not None) and `channels`."""
    info = prepared.read_info(path)
    if image_size not in (None, info.image_size) or channels != info.channels:
        wanted = image_size or info.image_size
        raise DataError(
            '%s is a prepared dataset of %dx%d images with %d channel%s, not %dx%d with %d: '
            'prepared images are not resized or converted when read; use it at its own size '
            'and channels, or prepare it again from the images' % (
                path, info.image_size[0], info.image_size[1], info.channels,
                '' if info.channels == 1 else 's', wanted[0], wanted[1], channels))
    return info


def _prepared_split(path, split, quantization_channels, stored_classes, classes,
                    may_be_empty=False):
    """A split of a prepared dataset as an ImageSet with labels into `classes` (a stored class
    not among them gets -1), images memory-mapped; DataError when it holds no image (unless
    `may_be_empty`)."""
    levels = (None if quantization_channels == 256
              else quantize(np.arange(256), quantization_channels))
    images, labels = prepared.load_prepared(path, split, levels)
    if not len(labels) and not may_be_empty:
        raise DataError('the %s split of the prepared dataset %s holds no image; use another '
                        'split, or prepare it again with images in this one' % (split, path))
    index = {name: i for i, name in enumerate(classes)}
    relabel = np.array([index.get(name, -1) for name in stored_classes] + [-1], np.int32)
    return ImageSet(images, relabel[np.asarray(labels)], ())  # relabel[-1]: no class


def _read_headers(paths, root):
    """(SplitFiles of `paths`, the size_counts of the readable ones); the first folder below
    `root` names a file's class. Size counts: most common first, then smaller area, height."""
    files, sizes, skipped = [], [], []
    for path in paths:
        try:
            sizes.append(image_file.read_size(path))
        except image_file.UnreadableImage as error:
            skipped.append((path, str(error)))
            continue
        parts = os.path.relpath(path, root).split(os.sep)
        files.append((path, parts[0] if len(parts) > 1 else None))
    counts = sorted(collections.Counter(sizes).items(),
                    key=lambda item: (-item[1], item[0][0] * item[0][1], item[0]))
    return SplitFiles(tuple(files), tuple(skipped)), tuple(counts)


def _decode_all(split_files, image_size, channels):
    """([(path, class name, uint8 pixels)] of the files read, in order; [(path, reason)] of
    the others, header and pixel failures together, in path order)."""
    images, skipped = [], list(split_files.skipped)
    for path, class_name, pixels, reason in decode_split(split_files, image_size, channels):
        if pixels is None:
            skipped.append((path, reason))
        else:
            images.append((path, class_name, pixels))
    return images, sorted(skipped)


def _image_set(images, classes, image_size, quantization_channels, channels):
    """The ImageSet of decoded (path, class name, pixels); names not in `classes` get -1."""
    index = {name: i for i, name in enumerate(classes)}
    pixels = np.zeros((len(images),) + tuple(image_size) + ((3,) if channels == 3 else ()),
                      np.uint8)
    for i, (_, _, image) in enumerate(images):
        pixels[i] = image
    return ImageSet(quantize(pixels, quantization_channels),
                    np.array([index.get(name, -1) for _, name, _ in images], np.int32),
                    tuple(path for path, _, _ in images))


def _held_out(count, validation_fraction, seed):
    """(train_rows, validation_rows): ascending int64 indices into `count` items, the
    validation rows the first round(fraction * count) of np.random.default_rng(seed)
    .permutation(count), at least 1 when the fraction is above 0 and count >= 2, at most
    count - 1."""
    held_out = round(validation_fraction * count)
    if validation_fraction > 0 and count >= 2:
        held_out = max(held_out, 1)
    held_out = max(min(held_out, count - 1), 0)
    validation = np.zeros(count, bool)
    validation[np.random.default_rng(seed).permutation(count)[:held_out]] = True
    return np.flatnonzero(~validation), np.flatnonzero(validation)


def _check(folder, image_size, quantization_channels, channels, validation_fraction=0.0):
    """(folder as a str, image_size as a tuple or None) after checking the arguments that
    load_dataset and load_folder share: Error for a value out of range, DataError for a
    folder that is missing."""
    prepared.check_levels(quantization_channels)
    image_size = None if image_size is None else prepared.check_image_size(image_size)
    prepared.check_channels(channels)
    if not 0 <= validation_fraction < 1:
        raise Error('validation_fraction must be in [0, 1), got %r' % (validation_fraction,))
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DataError('folder %s %s: point it at a folder of %s' % (
            folder, 'is not a folder' if os.path.exists(folder) else 'does not exist',
            _EXPECTED))
    return folder, image_size


def _list_required(folder):
    """list_image_files(folder); DataError when there is none."""
    files = list_image_files(folder)
    if not files:
        raise DataError('no image files found in %s: expected %s' % (folder, _EXPECTED))
    return files


def no_readable_image(folder, skipped, kind):
    """The DataError for a folder whose files of `kind` were all skipped ((path, reason))."""
    path, reason = skipped[0]
    return DataError('no readable %s in %s: %d image files were skipped (e.g. %s: %s); replace '
                     'them with valid images' % (kind, folder, len(skipped), path, reason))
