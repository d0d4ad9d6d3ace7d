"""Reads a folder of images into quantized grayscale uint8 arrays.

Folder layout:
  * `data_dir/train/` next to `data_dir/test/` (or `val/`, or `validation/`,
    in that order of preference): those folders are the training and
    validation splits.
  * Otherwise every image below `data_dir` (below `data_dir/train/` when only
    that folder exists) is read, and a seeded fraction of the files is held
    out for validation.
  * Within a split (or the whole folder when there are no splits) the first
    folder level names the class; images lying directly in the split folder
    have no class (label -1).

Images are found by extension (`image_file.IMAGE_EXTENSIONS`, any letter
case); hidden files and folders are ignored and so are files with other
extensions. wavenet/image_file.py decodes each file. A file with an image
extension that cannot be decoded (empty, truncated, not an image, declaring
more than `image_file.MAX_IMAGE_PIXELS`) is skipped and reported in
`Dataset.skipped`. Each file's header is read first, for its size, and its
pixels are decoded once.

Orientation: the EXIF orientation is applied (see wavenet/image_file.py), so
a photo taken with a rotated phone is read upright. Sizes below are sizes
after orientation: a 90 or 270 degree rotation swaps width and height. (A PNG
whose EXIF chunk follows its pixel data is oriented when decoded but not in
the header pass, so it counts at its stored size.)

Image size rule: when no `image_size` is given, the most common size among the
training images is used (by `load_folder`: among all its images), as declared
by the headers of the files whose header can be read. Ties go to the smaller
area (height * width), then to the smaller height. A stray large file
therefore cannot set the size of a folder of small images. Every image of
another size is resized to it with an antialiasing Lanczos filter.
`Dataset.size_counts` lists the training sizes with their counts in this
order, so its first size is the one the rule picks.

Every image is converted to 8-bit grayscale, or to 8-bit RGB when
`channels=3` (see `load_image`), and then quantized to `quantization_channels`
levels (see `quantize`).

Prepared datasets: a folder holding `dataset.json` is read as a prepared
dataset (see wavenet/prepared.py): its `train` and `test` splits are the
training and validation splits (without a `test` split, a seeded fraction of
`train` is held out, as for a folder), memory-mapped: `ImageSet.images` is then
a `prepared.PreparedImages`, which reads and quantizes only the images indexed.
Its images are not resized or converted: asking for another size or channel
count than it holds is a DataError.
"""

import collections
import contextlib
import os
from typing import NamedTuple

import numpy as np
from wavenet import image_file, prepared

_TRAIN_FOLDER = 'train'
_VALIDATION_FOLDERS = ('test', 'val', 'validation')
_EXPECTED_LAYOUT = (f'image files ({", ".join(image_file.IMAGE_EXTENSIONS)}), '
                    'optionally in class subfolders or in train/ and test/ split folders')


class DataError(Exception):
    """A data folder or file that cannot be used; the message says why."""


class ImageSet(NamedTuple):
    """Images of one split.

    Attributes:
      images: uint8 [num_images, height, width] (grayscale) or
        [num_images, height, width, 3] (RGB), levels 0..Q-1: a numpy array, or
        for a prepared dataset a prepared.PreparedImages (an array-like that
        reads the images indexed from its memory-mapped file).
      labels: int32 [num_images], index into `Dataset.classes`, -1 for none.
      files: tuple of `num_images` str paths, in the same order; () for a
        prepared dataset.
    """
    images: np.ndarray
    labels: np.ndarray
    files: tuple


class Dataset(NamedTuple):
    """A training and a validation split read from one folder.

    Attributes:
      train: ImageSet of training images (at least one).
      validation: ImageSet of validation images, possibly empty.
      classes: sorted tuple of class names; () when there are no classes.
      image_size: (height, width) of every image.
      skipped: tuple of (path, reason) for each image file not read; () for
        a prepared dataset.
      split_source: 'folders' when the splits came from train/ and test/
        (or val/) folders, 'fraction' when a fraction of a folder was held
        out, 'prepared' for a prepared dataset (its train and test splits, or
        without a test split a fraction of train held out).
      size_counts: tuple of ((height, width), count), one per distinct size
        of the training files (after EXIF orientation, before resizing) whose
        header could be read; most common first, ties by smaller area, then
        smaller height. More than one entry means the training images are
        not all of one size. A prepared dataset has one entry.
    """
    train: ImageSet
    validation: ImageSet
    classes: tuple
    image_size: tuple
    skipped: tuple
    split_source: str
    size_counts: tuple


class SplitFiles(NamedTuple):
    """The image files of one split, after their headers were read.

    Attributes:
      files: tuple of (path, class name or None) of the files whose header
        could be read, in path order; the class is the file's first folder
        below the split's folder.
      skipped: tuple of (path, reason) of the files whose header could not.
    """
    files: tuple
    skipped: tuple


class FolderPlan(NamedTuple):
    """What `load_dataset` reads from a folder, found from file headers alone.

    Attributes:
      train: SplitFiles of the training split.
      validation: SplitFiles of the validation split.
      image_size: (height, width) the images are read at; None when no
        training file has a readable header.
      split_source: 'folders' or 'fraction', as in Dataset.
      size_counts: as in Dataset.
    """
    train: SplitFiles
    validation: SplitFiles
    image_size: tuple
    split_source: str
    size_counts: tuple


def quantize(pixels, quantization_channels):
    """Maps 8-bit intensities to quantization levels.

    Args:
      pixels: integer array of any shape with values 0..255.
      quantization_channels: Q, the number of levels, 2..256.

    Returns:
      uint8 array of the same shape, `(pixels * Q) // 256`, in 0..Q-1.
    """
    _check_quantization_channels(quantization_channels)
    pixels = _integer_array(pixels, 256, 'pixels')
    return (pixels * quantization_channels // 256).astype(np.uint8)


def dequantize(levels, quantization_channels):
    """Maps quantization levels back to 8-bit intensities.

    Args:
      levels: integer array of any shape with values 0..Q-1.
      quantization_channels: Q, the number of levels, 2..256.

    Returns:
      uint8 array of the same shape, `levels * 255 / (Q - 1)` rounded to the
      nearest integer (ties to even), in 0..255.
    """
    _check_quantization_channels(quantization_channels)
    levels = _integer_array(levels, quantization_channels, 'levels')
    restored = np.round(levels * 255 / (quantization_channels - 1))
    return restored.astype(np.uint8)


def load_image(path, image_size=None, channels=1):
    """Reads one image file as 8-bit grayscale or RGB.

    `image_file.read_pixels` (its arguments, conversions and uint8 [height,
    width] or [height, width, 3] result), with the arguments checked and an
    unreadable file reported as a DataError naming it. `image_size` defaults
    to the size of the file.

    Raises:
      DataError: the file cannot be decoded or declares more than
        image_file.MAX_IMAGE_PIXELS pixels.
    """
    if image_size is not None:
        image_size = _check_image_size(image_size)
    _check_channels(channels)
    try:
        return image_file.read_pixels(path, image_size, channels)
    except image_file.UnreadableImage as error:
        raise DataError(f'cannot read image {path}: {error}; replace or '
                        'remove the file') from error


def list_image_files(folder):
    """Lists the image files below a folder, recursively.

    Args:
      folder: path of the folder.

    Returns:
      Sorted list of str paths of the files whose extension is in
      image_file.IMAGE_EXTENSIONS (any letter case), hidden files and folders
      excluded.
    """
    paths = []
    for parent, folders, names in os.walk(os.fspath(folder)):
        folders[:] = [name for name in folders if not name.startswith('.')]
        paths.extend(os.path.join(parent, name) for name in names
                     if not name.startswith('.')
                     and name.lower().endswith(
                         image_file.IMAGE_EXTENSIONS))
    return sorted(paths)


def load_dataset(data_dir, image_size=None, quantization_channels=256,
                 validation_fraction=0.1, seed=0, channels=1):
    """Reads the training and validation images of a folder.

    See the module docstring for the folder layout and the image size rule.

    Args:
      data_dir: path of the folder.
      image_size: (height, width) of the returned images, or None for the
        most common size of the training images.
      quantization_channels: number of levels Q, 2..256.
      validation_fraction: fraction of the files held out for validation, in
        [0, 1), when the folder has no train/ and test/ (or val/) folders.
        When it is above 0, at least one file is held out, unless the folder
        holds a single file; at least one file is always kept for training.
      seed: seed of the permutation that picks the held-out files.
      channels: 1 for grayscale images [N, height, width], 3 for RGB images
        [N, height, width, 3].

    Returns:
      A Dataset.

    Raises:
      DataError: `data_dir` is missing, holds no image file, or no training
        image can be read.
      ValueError: an argument is out of range.
    """
    data_dir, image_size = _check_arguments(
        data_dir, 'data_dir', image_size, quantization_channels, channels,
        validation_fraction)
    if prepared.is_prepared(data_dir):
        return _prepared_dataset(data_dir, image_size, quantization_channels,
                                 validation_fraction, seed, channels)
    plan = _plan(data_dir, image_size, validation_fraction, seed)
    train, train_skipped = _decode_all(plan.train, plan.image_size, channels)
    validation, validation_skipped = _decode_all(plan.validation,
                                                 plan.image_size, channels)
    skipped = tuple(train_skipped + validation_skipped)
    if not train:
        raise _no_readable_image(data_dir, skipped, 'training image')
    classes = tuple(sorted({name for _, name, _ in train + validation} - {None}))
    return Dataset(
        train=_image_set(train, classes, plan.image_size,
                         quantization_channels, channels),
        validation=_image_set(validation, classes, plan.image_size,
                              quantization_channels, channels),
        classes=classes,
        image_size=plan.image_size,
        skipped=skipped,
        split_source=plan.split_source,
        size_counts=plan.size_counts)


def plan_dataset(data_dir, image_size=None, validation_fraction=0.1, seed=0):
    """Lists the files `load_dataset` reads and picks the image size.

    Reads file headers only, so that a caller (datasets/prepare.py) can then
    decode the images a few at a time with `decode_split`. The arguments are
    those of `load_dataset`; `data_dir` must be a folder of images, not a
    prepared dataset.

    Returns:
      A FolderPlan.

    Raises:
      DataError: `data_dir` is missing or holds no image file.
      ValueError: an argument is out of range.
    """
    data_dir, image_size = _check_arguments(
        data_dir, 'data_dir', image_size, 256, 1, validation_fraction)
    return _plan(data_dir, image_size, validation_fraction, seed)


def decode_split(split_files, image_size, channels=1):
    """Decodes the files of a split one at a time, in order.

    Args:
      split_files: a SplitFiles (from `plan_dataset`).
      image_size: (height, width) to resize to.
      channels: 1 for grayscale, 3 for RGB.

    Yields:
      (path, class name or None, pixels, reason) for each file: pixels is
      uint8 [height, width] or [height, width, 3] of intensities 0..255 and
      reason None when the file decodes; pixels is None and reason a short
      text when it does not.
    """
    for path, class_name in split_files.files:
        try:
            pixels = image_file.read_pixels(path, image_size, channels)
            yield path, class_name, pixels, None
        except image_file.UnreadableImage as error:
            yield path, class_name, None, str(error)


def load_folder(folder, image_size, quantization_channels, classes=None,
                channels=1, split='test'):
    """Reads every image below a folder, e.g. to evaluate a model on it.

    Args:
      folder: path of the folder, or of a prepared dataset.
      image_size: (height, width) of the returned images, or None for the
        most common size of its images (see the module docstring).
      quantization_channels: number of levels Q, 2..256.
      classes: class names the labels index into, or None to label every
        image -1. An image in a first-level subfolder whose name is not in
        `classes`, or lying directly in `folder`, is labelled -1; so is an
        image of a prepared dataset whose class is not in `classes`.
      channels: 1 for grayscale, 3 for RGB.
      split: the split read from a prepared dataset, 'test' or 'train'
        (ignored for a folder of images).

    Returns:
      (image_set, skipped): an ImageSet of the images that could be read, and
      a tuple of (path, reason) for each image file that could not (() for a
      prepared dataset).

    Raises:
      DataError: `folder` is missing, holds no image file, or none of its
        images can be read; a prepared dataset has no such split, is damaged,
        or holds another image size or channel count.
      ValueError: an argument is out of range.
    """
    folder, image_size = _check_arguments(folder, 'folder', image_size,
                                          quantization_channels, channels)
    classes = tuple(classes or ())
    if prepared.is_prepared(folder):
        with _prepared_errors():
            info = _prepared_info(folder, image_size, channels)
            image_set = _prepared_split(folder, split, quantization_channels,
                                        info.classes, classes)
        return image_set, ()
    split_files, sizes = _read_headers(_list_required(folder), folder)
    size_counts = _count_sizes(sizes)
    if image_size is None and size_counts:
        image_size = size_counts[0][0]
    images, skipped = _decode_all(split_files, image_size, channels)
    if not images:
        raise _no_readable_image(folder, skipped, 'image')
    image_set = _image_set(images, classes, image_size, quantization_channels,
                           channels)
    return image_set, tuple(skipped)


def _prepared_dataset(data_dir, image_size, quantization_channels,
                      validation_fraction, seed, channels):
    """load_dataset for a prepared dataset (see the module docstring)."""
    with _prepared_errors():
        info = _prepared_info(data_dir, image_size, channels)
        train = _prepared_split(data_dir, 'train', quantization_channels,
                                info.classes, info.classes)
        if 'test' in info.counts:
            validation = _prepared_split(data_dir, 'test', quantization_channels,
                                         info.classes, info.classes)
        else:
            train_rows, validation_rows = _held_out(len(train.labels),
                                                    validation_fraction, seed)
            train, validation = (_subset(train, rows)
                                 for rows in (train_rows, validation_rows))
    if not len(train.labels):
        raise DataError(f'no training image in {data_dir}: its train split is '
                        'empty; prepare it again from a folder of images')
    return Dataset(train=train, validation=validation, classes=info.classes,
                   image_size=info.image_size, skipped=(),
                   split_source='prepared',
                   size_counts=((info.image_size, len(train.labels)),))


@contextlib.contextmanager
def _prepared_errors():
    """Turns a prepared.FormatError raised in the block into a DataError."""
    try:
        yield
    except prepared.FormatError as error:
        raise DataError(str(error)) from None


def _prepared_info(path, image_size, channels):
    """The prepared.Info of a prepared dataset, checked against the request.

    Raises:
      DataError: it holds another image size (when `image_size` is not None)
        or another channel count than `channels`.
      prepared.FormatError: its dataset.json is damaged.
    """
    info = prepared.read_info(path)
    if (image_size is not None and image_size != info.image_size) or (
            channels != info.channels):
        height, width = info.image_size
        wanted = image_size or info.image_size
        raise DataError(
            f'{path} is a prepared dataset of {height}x{width} images with '
            f'{info.channels} channel{"s" if info.channels > 1 else ""}, not '
            f'{wanted[0]}x{wanted[1]} with {channels}: prepared images are not '
            'resized or converted when read; use it at its own size and channels, or '
            'prepare it again from the images')
    return info


def _prepared_split(path, split, quantization_channels, stored_classes,
                    classes):
    """One split of a prepared dataset as an ImageSet, images memory-mapped.

    Args:
      path: the prepared dataset's folder.
      split: 'train' or 'test'.
      quantization_channels: number of levels Q.
      stored_classes: the classes its labels index into.
      classes: the classes the returned labels index into; a stored class
        not among them gets -1.
    """
    levels = (None if quantization_channels == 256
              else quantize(np.arange(256), quantization_channels))
    images, stored_labels = prepared.load_prepared(path, split, levels)
    index = {name: i for i, name in enumerate(classes)}
    # The last entry maps the stored -1 (no class) to -1.
    relabel = np.array([index.get(name, -1) for name in stored_classes] + [-1],
                       np.int32)
    return ImageSet(images=images, labels=relabel[np.asarray(stored_labels)],
                    files=())


def _subset(image_set, rows):
    """The images `rows` (sorted int indices) of a prepared ImageSet."""
    return ImageSet(images=image_set.images.take(rows),
                    labels=image_set.labels[rows], files=())


def _plan(data_dir, image_size, validation_fraction, seed):
    """plan_dataset after its arguments were checked."""
    train_root, validation_root = _split_folders(data_dir)
    if validation_root is None:
        validation_root = train_root
        train_paths, validation_paths = _split_by_fraction(
            _list_required(train_root), validation_fraction, seed)
        split_source = 'fraction'
    else:
        train_paths = _list_required(train_root)
        validation_paths = list_image_files(validation_root)
        split_source = 'folders'
    train, sizes = _read_headers(train_paths, train_root)
    validation, _ = _read_headers(validation_paths, validation_root)
    size_counts = _count_sizes(sizes)
    if image_size is None and size_counts:
        image_size = size_counts[0][0]
    return FolderPlan(train, validation, image_size, split_source, size_counts)


def _read_headers(paths, root):
    """Reads the sizes of files from their headers, skipping unreadable ones.

    Args:
      paths: paths of the image files, in order.
      root: the folder the paths lie below; the first folder below it names
        a file's class.

    Returns:
      (split_files, sizes): a SplitFiles, and the (height, width) of each of
      its files.
    """
    files, sizes, skipped = [], [], []
    for path in paths:
        try:
            sizes.append(image_file.read_size(path))
        except image_file.UnreadableImage as error:
            skipped.append((path, str(error)))
            continue
        parts = os.path.relpath(path, root).split(os.sep)
        files.append((path, parts[0] if len(parts) > 1 else None))
    return SplitFiles(tuple(files), tuple(skipped)), sizes


def _decode_all(split_files, image_size, channels):
    """Decodes the files of a split, skipping unreadable ones.

    Returns:
      (images, skipped): a list of (path, class name, uint8 pixels) for the
      files read, in order; a list of (path, reason) for the others, their
      headers' and their pixels' failures together, in path order.
    """
    images, skipped = [], list(split_files.skipped)
    for path, class_name, pixels, reason in decode_split(
            split_files, image_size, channels):
        if pixels is None:
            skipped.append((path, reason))
        else:
            images.append((path, class_name, pixels))
    return images, sorted(skipped)


def _count_sizes(sizes):
    """Counts image sizes, most common first.

    Args:
      sizes: iterable of (height, width).

    Returns:
      Tuple of ((height, width), count), one per distinct size, ordered by
      count descending, then area ascending, then height ascending.
    """
    counts = collections.Counter(sizes)
    return tuple(sorted(
        counts.items(),
        key=lambda item: (-item[1], item[0][0] * item[0][1], item[0])))


def _image_set(images, classes, image_size, quantization_channels, channels):
    """Stacks decoded images into a quantized ImageSet.

    Args:
      images: list of (path, class name or None, uint8 pixels).
      classes: tuple of class names the labels index into.
      image_size: (height, width) of every image.
      quantization_channels: number of levels Q.
      channels: 1 for grayscale, 3 for RGB (a trailing axis of 3).

    Returns:
      An ImageSet; names not in `classes` get label -1.
    """
    index = {name: i for i, name in enumerate(classes)}
    shape = tuple(image_size) + ((channels,) if channels > 1 else ())
    pixels = np.zeros((len(images),) + shape, np.uint8)
    for i, (_, _, image) in enumerate(images):
        pixels[i] = image
    labels = np.array([index.get(name, -1) for _, name, _ in images], np.int32)
    return ImageSet(images=quantize(pixels, quantization_channels),
                    labels=labels,
                    files=tuple(path for path, _, _ in images))


def _split_folders(data_dir):
    """Finds the split folders of a data folder.

    Args:
      data_dir: path of the data folder.

    Returns:
      (train_root, validation_root): `data_dir/train` and the first of
      `data_dir/test`, `val`, `validation` when both exist; `data_dir/train`
      and None when only it exists; otherwise `data_dir` and None.
    """
    train_root = os.path.join(data_dir, _TRAIN_FOLDER)
    if not os.path.isdir(train_root):
        return data_dir, None
    for name in _VALIDATION_FOLDERS:
        validation_root = os.path.join(data_dir, name)
        if os.path.isdir(validation_root):
            return train_root, validation_root
    return train_root, None


def _split_by_fraction(files, validation_fraction, seed):
    """Holds out a seeded random fraction of the files (see `_held_out`).

    Args:
      files: sorted list of N paths.
      validation_fraction: fraction held out, in [0, 1).
      seed: seed of the permutation.

    Returns:
      (train_files, validation_files), both in sorted order.
    """
    train_rows, validation_rows = _held_out(len(files), validation_fraction,
                                            seed)
    return ([files[i] for i in train_rows], [files[i] for i in validation_rows])


def _held_out(count, validation_fraction, seed):
    """Picks a seeded random fraction of `count` items to hold out.

    Args:
      count: N, the number of items.
      validation_fraction: fraction held out, in [0, 1).
      seed: seed of the permutation.

    Returns:
      (train_rows, validation_rows): int64 arrays of indices into the N items,
      ascending. round(fraction * N) items are held out, at least 1 when the
      fraction is above 0 and N >= 2, and at most N - 1: the first ones of
      `np.random.default_rng(seed).permutation(N)`.
    """
    held_out = round(validation_fraction * count)
    if validation_fraction > 0 and count >= 2:
        held_out = max(held_out, 1)
    held_out = max(min(held_out, count - 1), 0)
    permutation = np.random.default_rng(seed).permutation(count)
    validation = np.zeros(count, bool)
    validation[permutation[:held_out]] = True
    return np.flatnonzero(~validation), np.flatnonzero(validation)


def _check_arguments(folder, name, image_size, quantization_channels,
                     channels, validation_fraction=0):
    """Checks the arguments that `load_dataset` and `load_folder` share.

    In this order, so that the first bad one is the one reported:
    quantization_channels, image_size, channels, validation_fraction
    (load_folder has none; the default 0 passes), then `folder` (called
    `name` in the messages). Raises ValueError or DataError; returns
    (folder as a str path, image_size as a tuple of ints or None).
    """
    _check_quantization_channels(quantization_channels)
    if image_size is not None:
        image_size = _check_image_size(image_size)
    _check_channels(channels)
    if not 0 <= validation_fraction < 1:
        raise ValueError('validation_fraction must be in [0, 1), got '
                         f'{validation_fraction}')
    folder = os.fspath(folder)
    _check_folder(folder, name)
    return folder, image_size


def _check_folder(folder, name):
    """Raises DataError unless `folder` is an existing directory."""
    if not os.path.exists(folder):
        raise DataError(f'{name} {folder} does not exist: point it at a '
                        f'folder of {_EXPECTED_LAYOUT}')
    if not os.path.isdir(folder):
        raise DataError(f'{name} {folder} is not a folder: point it at a '
                        f'folder of {_EXPECTED_LAYOUT}')


def _list_required(folder):
    """Lists the image files below `folder`; DataError when there is none."""
    files = list_image_files(folder)
    if not files:
        raise DataError(
            f'no image files found in {folder}: expected {_EXPECTED_LAYOUT}')
    return files


def _no_readable_image(folder, skipped, kind):
    """The DataError for a folder without a readable image of some kind."""
    path, reason = skipped[0]
    return DataError(
        f'no readable {kind} in {folder}: {len(skipped)} image files were '
        f'skipped (e.g. {path}: {reason}); replace them with valid images')


def _check_quantization_channels(quantization_channels):
    """Raises ValueError unless the level count is an int in 2..256."""
    if (isinstance(quantization_channels, bool)
            or not isinstance(quantization_channels, (int, np.integer))
            or not 2 <= quantization_channels <= 256):
        raise ValueError('quantization_channels must be an integer in '
                         f'2..256, got {quantization_channels!r}')


def _check_channels(channels):
    """Raises ValueError unless channels is 1 (grayscale) or 3 (RGB)."""
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f'channels must be 1 or 3, got {channels!r}')


def _check_image_size(image_size):
    """Returns image_size as an (height, width) tuple of positive ints."""
    size = tuple(image_size)
    if len(size) != 2 or not all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool)
            and n > 0 for n in size):
        raise ValueError('image_size must be (height, width) with positive '
                         f'integers, got {image_size!r}')
    return tuple(int(n) for n in size)


def _integer_array(values, limit, name):
    """Returns `values` as an int64 array, checking they lie in 0..limit-1."""
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f'{name} must be integers, got dtype {values.dtype}')
    if values.size and (values.min() < 0 or values.max() >= limit):
        raise ValueError(f'{name} must lie in 0..{limit - 1}')
    return values.astype(np.int64)
