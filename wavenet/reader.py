"""Reads a folder of images, or a prepared dataset, into quantized uint8 arrays.

Folder layout: `train/` beside `test/` (or `val/`, `validation/`) are the two splits; otherwise
a seeded fraction of the images below the folder (or below `train/`) is held out. In a split the
first folder level names the class. A file that cannot be decoded is skipped and reported. The
size rule: without `image_size`, the most common size of the readable training headers, ties to
the smaller area, then height; other sizes are resized (Lanczos). A folder holding dataset.json
is a prepared dataset (prepared.py), memory-mapped, never resized.
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
    """One split: `images` uint8 [N, H, W] or [N, H, W, 3] of levels 0..Q-1 (an array or a
    prepared.PreparedImages); `labels` int32 [N] into the classes, -1 for none."""
    images: np.ndarray
    labels: np.ndarray
    files: tuple  # the N paths, () for a prepared dataset


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
    files: tuple  # (path, class name or None) of the readable headers of a split, in order
    skipped: tuple  # (path, reason) of the others


class FolderPlan(NamedTuple):
    """A Dataset to decode, from the headers alone (image_size None: no readable one)."""
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
    """One image file as uint8 [H, W] (channels 1) or [H, W, 3] intensities, at its own size or
    resized to `image_size` (height, width); DataError naming the file when it is unreadable."""
    image_size = None if image_size is None else prepared.check_image_size(image_size)
    try:
        return image_file.read_pixels(path, image_size, prepared.check_channels(channels))
    except image_file.UnreadableImage as error:
        raise DataError('cannot read image %s: %s; replace or remove the file'
                        % (path, error)) from None


def list_image_files(folder, required=False):
    """Sorted paths of the image files below `folder`, recursively, hidden ones excluded;
    DataError when there is none and they are `required`."""
    paths = []
    for parent, folders, names in os.walk(os.fspath(folder)):
        folders[:] = [name for name in folders if not name.startswith('.')]
        paths.extend(os.path.join(parent, name) for name in names if not name.startswith('.')
                     and name.lower().endswith(image_file.IMAGE_EXTENSIONS))
    if required and not paths:
        raise DataError('no image files found in %s: expected %s' % (folder, _EXPECTED))
    return sorted(paths)


def load_dataset(data_dir, image_size=None, quantization_channels=256, validation_fraction=0.1,
                 seed=0, channels=1):
    """The Dataset of a folder or prepared dataset: images at `image_size` (height, width;
    None: the size rule) of Q = `quantization_channels` levels (2..256), `channels` 1 ([N, H,
    W]) or 3 ([N, H, W, 3]); without split folders `validation_fraction` (in [0, 1)) of the
    files held out with `seed`. DataError for a folder without a readable training image or a
    bad prepared dataset; Error for an argument out of range."""
    data_dir, image_size = _check(data_dir, image_size, quantization_channels, channels,
                                  validation_fraction)
    if prepared.is_prepared(data_dir):
        train, info = _prepared_split(data_dir, 'train', image_size, channels,
                                      quantization_channels)
        if 'test' in info.counts:
            validation, _ = _prepared_split(data_dir, 'test', image_size, channels,
                                            quantization_channels, may_be_empty=True)
        else:  # the held-out images: an index array into the file, not a copy
            train, validation = (ImageSet(train.images.take(rows), train.labels[rows], ())
                                 for rows in _held_out(len(train.labels), validation_fraction,
                                                       seed))
        return Dataset(train, validation, info.classes, info.image_size, (), 'prepared',
                       ((info.image_size, len(train.labels)),))
    plan = plan_dataset(data_dir, image_size, validation_fraction, seed)
    train, train_skipped = decode(plan.train, plan.image_size, channels)
    validation, validation_skipped = decode(plan.validation, plan.image_size, channels)
    skipped = tuple(train_skipped + validation_skipped)
    if not train:
        raise no_readable_image(data_dir, skipped, 'training image')
    # A class is a folder holding a readable image.
    classes = tuple(sorted({name for _, name, _ in train + validation} - {None}))
    train, validation = (_image_set(images, classes, plan.image_size, quantization_channels,
                                    channels) for images in (train, validation))
    return Dataset(train, validation, classes, plan.image_size, skipped, plan.split_source,
                   plan.size_counts)


def plan_dataset(data_dir, image_size=None, validation_fraction=0.1, seed=0):
    """The FolderPlan of a folder of images (not a prepared dataset) from the headers only, for
    a caller that decodes a few images at a time (decode). As load_dataset."""
    data_dir, image_size = _check(data_dir, image_size, 256, 1, validation_fraction)
    train_root = os.path.join(data_dir, 'train')
    validation_roots = [os.path.join(data_dir, name) for name in _VALIDATION_FOLDERS]
    if not os.path.isdir(train_root):
        train_root, validation_roots = data_dir, []
    validation_root = next((root for root in validation_roots if os.path.isdir(root)), None)
    train_paths = list_image_files(train_root, required=True)
    if validation_root is None:  # held out of the training files
        validation_root, split_source = train_root, 'fraction'
        train_paths, validation_paths = ([train_paths[i] for i in rows] for rows in _held_out(
            len(train_paths), validation_fraction, seed))
    else:
        split_source, validation_paths = 'folders', list_image_files(validation_root)
    train, size_counts = _read_headers(train_paths, train_root)
    validation, _ = _read_headers(validation_paths, validation_root)
    image_size = image_size or (size_counts[0][0] if size_counts else None)
    return FolderPlan(train, validation, image_size, split_source, size_counts)


def decode(split_files, image_size, channels=1):
    """Decodes a SplitFiles at `image_size`: ([(path, class name, uint8 [H, W(, 3)])] of the
    files read, in order; sorted [(path, reason)] of the others, header failures included)."""
    images, skipped = [], list(split_files.skipped)
    for path, class_name in split_files.files:
        try:
            images.append((path, class_name, image_file.read_pixels(path, image_size, channels)))
        except image_file.UnreadableImage as error:
            skipped.append((path, str(error)))
    return images, sorted(skipped)


def load_folder(folder, image_size, quantization_channels, classes=None, channels=1, split='test'):
    """(ImageSet, skipped (path, reason)) of every image below a folder (the size rule over all
    of them), or of the `split` ('test' or 'train') of a prepared dataset; labels index into
    `classes` (None: none), -1 for another class or none. Arguments and errors as load_dataset's."""
    folder, image_size = _check(folder, image_size, quantization_channels, channels)
    classes = tuple(classes or ())
    if prepared.is_prepared(folder):
        return _prepared_split(folder, split, image_size, channels, quantization_channels,
                               classes)[0], ()
    split_files, size_counts = _read_headers(list_image_files(folder, required=True), folder)
    image_size = image_size or (size_counts[0][0] if size_counts else None)
    images, skipped = decode(split_files, image_size, channels)
    if not images:
        raise no_readable_image(folder, skipped, 'image')
    return _image_set(images, classes, image_size, quantization_channels, channels), tuple(skipped)


def class_indices(names, classes):
    """int32 [N]: the index in `classes` of each of the N class names, -1 for None or another."""
    index = {name: i for i, name in enumerate(classes)}
    return np.array([index.get(name, -1) for name in names], np.int32)


def no_readable_image(folder, skipped, kind):
    """The DataError for a folder whose files of `kind` were all skipped ((path, reason))."""
    path, reason = skipped[0]
    return DataError('no readable %s in %s: %d image files were skipped (e.g. %s: %s); replace '
                     'them with valid images' % (kind, folder, len(skipped), path, reason))


def _check(folder, image_size, quantization_channels, channels, validation_fraction=0.0):
    """(folder as a str, image_size as a tuple or None) of checked arguments."""
    prepared.check_levels(quantization_channels)
    image_size = None if image_size is None else prepared.check_image_size(image_size)
    prepared.check_channels(channels)
    if not 0 <= validation_fraction < 1:
        raise Error('validation_fraction must be in [0, 1), got %r' % (validation_fraction,))
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DataError('folder %s %s: point it at a folder of %s' % (
            folder, 'is not a folder' if os.path.exists(folder) else 'does not exist', _EXPECTED))
    return folder, image_size


def _held_out(count, validation_fraction, seed):
    """(train rows, validation rows), ascending: the first round(fraction * count) of
    default_rng(seed).permutation(count) held out, >= 1 if fraction > 0, <= count - 1."""
    held_out = max(round(validation_fraction * count), 1 if validation_fraction > 0 else 0)
    held_out = max(min(held_out, count - 1), 0)
    validation = np.zeros(count, bool)
    validation[np.random.default_rng(seed).permutation(count)[:held_out]] = True
    return np.flatnonzero(~validation), np.flatnonzero(validation)


def _read_headers(paths, root):
    """(SplitFiles of `paths`, classes named by the folder below `root`; ((height, width), count)
    of the readable ones, in the order of the size rule)."""
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


def _image_set(images, classes, image_size, quantization_channels, channels):
    """The ImageSet of decoded (path, class name, pixels)."""
    shape = (len(images),) + tuple(image_size) + ((3,) if channels == 3 else ())
    pixels = np.array([image for _, _, image in images], np.uint8).reshape(shape)
    return ImageSet(quantize(pixels, quantization_channels),
                    class_indices([name for _, name, _ in images], classes),
                    tuple(path for path, _, _ in images))


def _prepared_split(path, split, image_size, channels, quantization_channels, classes=None,
                    may_be_empty=False):
    """(ImageSet of a split of a prepared dataset, memory-mapped, labels into `classes` (None:
    its own; -1 for one not among them), its prepared.Info); DataError unless it holds
    `image_size` (None: any) and `channels`, or when it is empty (unless `may_be_empty`)."""
    info = prepared.read_info(path)
    if image_size not in (None, info.image_size) or channels != info.channels:
        wanted = image_size or info.image_size
        raise DataError(
            '%s is a prepared dataset of %dx%d images with %d channel%s, not %dx%d with %d: '
            'prepared images are not resized or converted when read; use it at its own size '
            'and channels, or prepare it again from the images' % (
                path, info.image_size[0], info.image_size[1], info.channels,
                '' if info.channels == 1 else 's', wanted[0], wanted[1], channels))
    levels = (None if quantization_channels == 256
              else quantize(np.arange(256), quantization_channels))
    images, stored = prepared.load_prepared(path, split, levels)
    if not len(stored) and not may_be_empty:
        raise DataError('the %s split of the prepared dataset %s holds no image; use another '
                        'split, or prepare it again with images in this one' % (split, path))
    relabel = class_indices(info.classes + (None,), info.classes if classes is None else classes)
    return ImageSet(images, relabel[np.asarray(stored)], ()), info  # relabel[-1]: no class
