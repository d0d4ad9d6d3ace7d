"""Prepared datasets: each split's images in one uint8 .npy file, read memory-mapped.

A prepared dataset is a folder holding:

    dataset.json        {"image_size": [H, W], "channels": C, "classes": [names],
                         "splits": {"train": N, "test": M}, "format": ..., "source": ...}
    train_images.npy    uint8 [N, H, W, C], C = 1 (grayscale) or 3 (RGB), intensities 0..255
    train_labels.npy    int64 [N]: an index into "classes", -1 for an image without a class
    test_images.npy     the same for the test split, which may be missing
    test_labels.npy

"image_size", "channels" and "classes" are required; "splits" (the image count of each
split) is checked when present; other keys ("format", "source") are information only.

dataset.json is written last and marks the dataset complete: a folder holding one is read as
a prepared dataset (`is_prepared`). PreparedWriter writes the .npy files under temporary
names as the images arrive, a chunk at a time, and renames them only once every split is
written: a crash before then leaves the folder's old files as they were (and temporaries,
removed by the next writer's close), a crash while renaming leaves no dataset.json; never a
dataset that looks complete but is not. One writer per folder at a time.

Reading (`load_prepared`) maps the files into memory (`np.load(mmap_mode='r')`, pickles
refused) after checking them against dataset.json, so a dataset larger than memory can be
used: the pixels are read only for the images indexed (`PreparedImages`). No TensorFlow here.
"""
import json
import os
import secrets
from typing import NamedTuple

import numpy as np

from wavenet.files import TEMPORARY_MARK, write_json_atomic

INFO_FILE = 'dataset.json'
SPLITS = ('train', 'test')
FORMAT = 'image-wavenet prepared dataset 1'
REPAIR = 'prepare it again (datasets/prepare.py or datasets/download.py)'
_CHECK_ROWS = 1 << 20  # labels checked this many at a time, so a large file is not loaded
_NO_CLASS = -1


class FormatError(Exception):
    """A prepared dataset whose files cannot be used; the message names the file and why."""


class Info(NamedTuple):
    """What dataset.json says about a prepared dataset.

    Attributes:
        image_size: (height, width) of every image.
        channels: 1 (grayscale) or 3 (RGB).
        classes: tuple of class names the labels index into.
        counts: {split: number of images as "splits" gives it, or None}, one entry for each
            split whose files exist.
        source: where the data came from (any JSON value), None when not given.
    """
    image_size: tuple
    channels: int
    classes: tuple
    counts: dict
    source: object


class Split(NamedTuple):
    """One split of a prepared dataset, memory-mapped.

    Attributes:
        images: PreparedImages: uint8 [N, H, W] or [N, H, W, 3] levels, read on indexing.
        labels: np.memmap int64 [N], -1..len(classes)-1.
    """
    images: object
    labels: np.ndarray


def file_names(split):
    """(images file, labels file) of a split, e.g. ('train_images.npy', 'train_labels.npy')."""
    return '%s_images.npy' % split, '%s_labels.npy' % split


FILE_NAMES = (INFO_FILE,) + tuple(name for split in SPLITS for name in file_names(split))


def is_format_entry(name):
    """Whether a folder entry's name is one of FILE_NAMES or a writer's temporary of one."""
    return name in FILE_NAMES or any(name.startswith('.%s%s' % (known, TEMPORARY_MARK))
                                     for known in FILE_NAMES)


def is_prepared(path):
    """Whether `path` is a folder holding dataset.json (complete or not: see read_info)."""
    return os.path.isfile(os.path.join(os.fspath(path), INFO_FILE))


def read_info(path):
    """Reads and checks dataset.json and which splits have files.

    Args:
        path: the prepared dataset's folder.

    Returns:
        An Info whose `counts` lists exactly the splits whose .npy files exist (their sizes
        are checked by load_prepared).

    Raises:
        FormatError: dataset.json is missing, not JSON, lacks a key or has a bad value; the
            train split's files are missing; a split has one file of its two; "splits"
            names other splits than those with files.
    """
    info_path = os.path.join(os.fspath(path), INFO_FILE)
    try:
        with open(info_path, encoding='utf-8') as info_file:
            content = json.load(info_file)
    except (OSError, ValueError) as error:
        raise FormatError('cannot read %s (%s); %s' % (info_path, _reason(error), REPAIR)
                          ) from None
    if not isinstance(content, dict):
        raise FormatError('%s is not a JSON object; %s' % (info_path, REPAIR))
    info = Info(image_size=_image_size(content, info_path),
                channels=_channels(content, info_path),
                classes=_classes(content, info_path),
                counts=_counts(content, info_path),
                source=content.get('source'))
    present = _present_splits(os.fspath(path))
    if info.counts is not None and sorted(info.counts) != sorted(present):
        raise FormatError('%s lists the splits %s but the folder has files for %s; %s' % (
            info_path, sorted(info.counts), sorted(present), REPAIR))
    return info._replace(counts={split: (info.counts or {}).get(split) for split in present})


def _required(content, key, info_path):
    """content[key]; FormatError naming the file when the key is missing."""
    if key not in content:
        raise FormatError('%s lacks "%s"; %s' % (info_path, key, REPAIR))
    return content[key]


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _image_size(content, info_path):
    """dataset.json's "image_size" as an (height, width) tuple of positive ints."""
    size = _required(content, 'image_size', info_path)
    if not (isinstance(size, list) and len(size) == 2
            and all(_is_int(side) and side > 0 for side in size)):
        raise FormatError('%s: "image_size" must be [height, width] with positive integers, '
                          'got %s; %s' % (info_path, json.dumps(size), REPAIR))
    return tuple(size)


def _channels(content, info_path):
    """dataset.json's "channels": 1 or 3."""
    channels = _required(content, 'channels', info_path)
    if not _is_int(channels) or channels not in (1, 3):
        raise FormatError('%s: "channels" must be 1 or 3, got %s; %s'
                          % (info_path, json.dumps(channels), REPAIR))
    return channels


def _classes(content, info_path):
    """dataset.json's "classes" as a tuple of distinct strings."""
    classes = _required(content, 'classes', info_path)
    if not (isinstance(classes, list) and all(isinstance(name, str) for name in classes)
            and len(set(classes)) == len(classes)):
        raise FormatError('%s: "classes" must be a list of distinct names, got %s; %s'
                          % (info_path, json.dumps(classes)[:200], REPAIR))
    return tuple(classes)


def _counts(content, info_path):
    """dataset.json's optional "splits": {split: count}, or None when absent."""
    if 'splits' not in content:
        return None
    counts = content['splits']
    if not (isinstance(counts, dict) and set(counts) <= set(SPLITS)
            and all(_is_int(count) and count >= 0 for count in counts.values())):
        raise FormatError('%s: "splits" must map %s to image counts, got %s; %s' % (
            info_path, ' and '.join(SPLITS), json.dumps(counts)[:200], REPAIR))
    return dict(counts)


def _present_splits(path):
    """The splits whose two files exist; FormatError for half a split or no train split."""
    present = []
    for split in SPLITS:
        exists = [os.path.isfile(os.path.join(path, name)) for name in file_names(split)]
        if any(exists) and not all(exists):
            missing = file_names(split)[exists.index(False)]
            raise FormatError('%s is missing; %s' % (os.path.join(path, missing), REPAIR))
        if all(exists):
            present.append(split)
    if 'train' not in present:
        raise FormatError('%s is missing; %s'
                          % (os.path.join(path, file_names('train')[0]), REPAIR))
    return present


def load_prepared(path, split, levels=None):
    """Opens one split of a prepared dataset, memory-mapped, after checking its files.

    Checked against dataset.json: the images are uint8 [N, H, W, C] with its image size and
    channels, the labels int64 [N] (the same N, and the count in "splits" if given), every
    label in -1..len(classes)-1 (read a chunk at a time).

    Args:
        path: the prepared dataset's folder.
        split: 'train' or 'test'.
        levels: uint8 [256] table mapping each intensity to its quantization level (e.g.
            reader.quantize(np.arange(256), Q)), or None to keep intensities 0..255.

    Returns:
        A Split.

    Raises:
        FormatError: as read_info, the split has no files, or a file does not match.
    """
    path = os.fspath(path)
    info = read_info(path)
    if split not in info.counts:
        raise FormatError('%s has no %s split (its files %s are missing); it has: %s' % (
            path, split, ' and '.join(file_names(split)), ', '.join(sorted(info.counts))))
    images_path, labels_path = (os.path.join(path, name) for name in file_names(split))
    pixels = _open_array(images_path, np.uint8,
                         (None,) + info.image_size + (info.channels,))
    labels = _open_array(labels_path, np.int64, (None,))
    expected = info.counts[split]
    if len(labels) != len(pixels) or expected not in (None, len(pixels)):
        raise FormatError('%s holds %d images but %s %d labels%s; %s' % (
            images_path, len(pixels), labels_path, len(labels),
            '' if expected is None else ' (%s says %d)' % (INFO_FILE, expected), REPAIR))
    _check_labels(labels, len(info.classes), labels_path)
    return Split(PreparedImages(pixels, levels), labels)


def _open_array(path, dtype, shape):
    """np.load(path, mmap_mode='r') checked to have `dtype` and `shape` (None: any size)."""
    try:
        array = np.load(path, mmap_mode='r', allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise FormatError('cannot read %s as a .npy file (%s); %s'
                          % (path, _reason(error), REPAIR)) from None
    if array.dtype != dtype or len(array.shape) != len(shape) or any(
            want is not None and have != want for have, want in zip(array.shape, shape)):
        wanted = ', '.join('N' if side is None else str(side) for side in shape)
        raise FormatError('%s holds %s %s, expected %s [%s] as dataset.json says; %s' % (
            path, array.dtype, list(array.shape), np.dtype(dtype), wanted, REPAIR))
    return array


def _check_labels(labels, num_classes, path):
    """FormatError unless every label lies in -1..num_classes-1; reads a chunk at a time."""
    for start in range(0, len(labels), _CHECK_ROWS):
        chunk = np.asarray(labels[start:start + _CHECK_ROWS])
        low, high = int(chunk.min()), int(chunk.max())
        if low < _NO_CLASS or high >= num_classes:
            bad = low if low < _NO_CLASS else high
            raise FormatError('%s holds label %d, outside -1..%d (%d classes in %s); %s'
                              % (path, bad, num_classes - 1, num_classes, INFO_FILE, REPAIR))


def _reason(error):
    """A short one-line reason for an exception."""
    return ' '.join(str(error).split()) or type(error).__name__


class PreparedImages:
    """The quantized images of a prepared split, read from its memory-mapped file on demand.

    An array-like: `len`, `shape`, `dtype`, `ndim`, and indexing with an integer, a slice, a
    1-D integer index array (any order, repeats allowed) or a boolean mask reads those images
    only and gives a numpy uint8 array of levels, [k, H, W] for grayscale (the channel axis of
    the file dropped) or [k, H, W, 3] for RGB ([H, W](, 3) for an integer). np.asarray(images)
    reads every image.

    Args:
        base: np.memmap (or array) uint8 [N, H, W, C] of intensities 0..255, C = 1 or 3.
        levels: uint8 [256] table from intensity to level, or None for intensities as they
            are.
        rows: int [n] indices into `base` of the images, in order, or None for all N.
    """

    dtype = np.dtype(np.uint8)

    def __init__(self, base, levels=None, rows=None):
        self.base = base
        self.levels = None if levels is None else np.asarray(levels, np.uint8)
        self.rows = None if rows is None else np.asarray(rows, np.int64)
        height, width, channels = base.shape[1:]
        self.shape = (len(self), height, width) + ((channels,) if channels > 1 else ())

    @property
    def ndim(self):
        return len(self.shape)

    def __len__(self):
        return len(self.base) if self.rows is None else len(self.rows)

    def take(self, rows):
        """The images `rows` (int [n] indices into these images) as a new PreparedImages."""
        rows = np.asarray(rows, np.int64)
        return PreparedImages(self.base, self.levels,
                              rows if self.rows is None else self.rows[rows])

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        if isinstance(key, slice) and self.rows is None and key.step in (None, 1):
            pixels = self.base[key]  # contiguous rows: one read
        else:
            positions = self._positions(key)
            rows = positions if self.rows is None else self.rows[positions]
            # Read each row once, in file order, then put them in the order asked.
            unique, order = np.unique(rows, return_inverse=True)
            pixels = np.asarray(self.base[unique])[order]
        if pixels.shape[-1] == 1:
            pixels = pixels[..., 0]  # [k, H, W]: grayscale, as folder datasets are
        if self.levels is None:
            return np.array(pixels)  # a copy in memory, not a view of the file
        return self.levels[pixels]

    def _positions(self, key):
        """int64 [k] positions among these images of a slice, index array or boolean mask."""
        count = len(self)
        if isinstance(key, slice):
            return np.arange(*key.indices(count))
        if isinstance(key, tuple):
            raise IndexError('PreparedImages is indexed along its first axis only, got %r'
                             % (key,))
        key = np.asarray(key)
        if key.dtype == bool and key.shape == (count,):
            return np.flatnonzero(key)
        if key.ndim != 1 or not (key.size == 0 or np.issubdtype(key.dtype, np.integer)):
            raise IndexError('PreparedImages takes an integer, a slice, a 1-D integer array '
                             'or a boolean mask of %d, got %r' % (count, key))
        if key.size and (key.min() < -count or key.max() >= count):
            raise IndexError('index out of range for %d images' % count)
        return key.astype(np.int64) % max(count, 1)

    def __array__(self, dtype=None, copy=None):
        """Every image (all of them in memory), as numpy asks for."""
        images = self[:]
        return images if dtype is None else images.astype(dtype)


class _GrowingArray:
    """An .npy file written a block of rows at a time under a temporary name.

    The header is rewritten with the final row count by finish(); numpy's version 1.0
    header leaves room for the first axis to grow, so the data never moves.

    Args:
        path: the file's final name.
        dtype: the array's dtype.
        row_shape: the shape of one row.
    """

    def __init__(self, path, dtype, row_shape):
        self.path, self.dtype, self.row_shape = path, np.dtype(dtype), tuple(row_shape)
        folder, name = os.path.split(path)
        self.temporary_path = os.path.join(folder, '.%s%s%d-%s' % (
            name, TEMPORARY_MARK, os.getpid(), secrets.token_hex(4)))
        self.rows = 0
        self._file = open(self.temporary_path, 'xb')
        self._header_bytes = self._write_header()

    def _write_header(self):
        """Writes the header for the rows so far at the start; returns its length."""
        self._file.seek(0)
        np.lib.format.write_array_header_1_0(self._file, {
            'descr': np.lib.format.dtype_to_descr(self.dtype), 'fortran_order': False,
            'shape': (self.rows,) + self.row_shape})
        return self._file.tell()

    def append(self, block):
        """Appends rows: `block` is [k] + row_shape, of this dtype."""
        block = np.ascontiguousarray(block, self.dtype)
        self._file.seek(0, os.SEEK_END)
        self._file.write(block.data)
        self.rows += len(block)

    def finish(self):
        """Writes the final header and closes the file, flushed to the disk."""
        if self._write_header() != self._header_bytes:
            raise ValueError('%d rows do not fit in the .npy header of %s'
                             % (self.rows, self.path))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def discard(self):
        """Closes and deletes the temporary file."""
        self._file.close()
        if os.path.exists(self.temporary_path):
            os.remove(self.temporary_path)


class PreparedWriter:
    """Writes a prepared dataset into a folder, a chunk of images at a time.

    Use it as a context manager and call close() at the end of the block:

        with PreparedWriter(out_dir, (28, 28), 1, classes, source) as writer:
            writer.append_images('train', images)  # as many chunks as needed
            writer.append_labels('train', labels)  # in any order with the images
            writer.close()

    Each file is written under a temporary name in `out_dir`. close() checks that every
    split has as many labels as images, gives the files their names (removing dataset.json
    first, so a crash in between leaves no completion mark) and writes dataset.json last.
    Leaving the block without close() (an exception) deletes the temporaries; files already
    in the folder stay as they were. Format files of a split not written are removed at
    close(): the caller owns FILE_NAMES in `out_dir`; nothing else there is touched.

    Args:
        out_dir: the folder (created when missing).
        image_size: (height, width) of every image.
        channels: 1 (grayscale) or 3 (RGB).
        classes: the class names labels index into; the attribute `classes` may be set
            later, before the labels are appended (by a caller that learns the classes
            while reading the images).
        source: JSON value stored as dataset.json's "source" (where the data came from).
    """

    def __init__(self, out_dir, image_size, channels, classes, source=None):
        if channels not in (1, 3):
            raise ValueError('channels must be 1 or 3, got %r' % (channels,))
        if len(set(classes)) != len(classes):
            raise ValueError('class names must be distinct, got %r' % (classes,))
        self.out_dir = os.fspath(out_dir)
        self.image_size, self.channels = tuple(int(side) for side in image_size), channels
        self.classes, self.source = tuple(classes), source
        self._arrays = {}  # (split, 'images' or 'labels') -> _GrowingArray
        self._closed = False
        os.makedirs(self.out_dir, exist_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if not self._closed:
            self.abort()

    def _array(self, split, kind):
        """The growing file of a split's images or labels, started on first use."""
        if split not in SPLITS:
            raise ValueError('split must be one of %s, got %r' % (SPLITS, split))
        if (split, kind) not in self._arrays:
            images_name, labels_name = file_names(split)
            name, dtype, row_shape = (
                (images_name, np.uint8, self.image_size + (self.channels,))
                if kind == 'images' else (labels_name, np.int64, ()))
            self._arrays[split, kind] = _GrowingArray(
                os.path.join(self.out_dir, name), dtype, row_shape)
        return self._arrays[split, kind]

    def append_images(self, split, images):
        """Appends uint8 images [k, H, W, C] (or [k, H, W] when C is 1) of intensities."""
        images = np.asarray(images)
        shape = (len(images),) + self.image_size
        if images.dtype != np.uint8 or images.shape not in (
                shape + (self.channels,), shape if self.channels == 1 else None):
            raise ValueError('%s images must be uint8 %s(, %d), got %s %s' % (
                split, list(shape), self.channels, images.dtype, list(images.shape)))
        self._array(split, 'images').append(images.reshape(shape + (self.channels,)))

    def append_labels(self, split, labels):
        """Appends integer labels [k], each -1 (no class) or an index into the classes."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or not (labels.size == 0 or np.issubdtype(labels.dtype, np.integer)):
            raise ValueError('%s labels must be integers [k], got %s %s'
                             % (split, labels.dtype, list(labels.shape)))
        if labels.size and not (_NO_CLASS <= labels.min() and labels.max() < len(self.classes)):
            raise ValueError('%s labels must lie in -1..%d' % (split, len(self.classes) - 1))
        self._array(split, 'labels').append(labels.astype(np.int64))

    def close(self):
        """Finishes the files, gives them their names and writes dataset.json last.

        Returns:
            {split: number of images}.
        """
        counts = self._counts()
        for array in self._arrays.values():
            array.finish()
        info_path = os.path.join(self.out_dir, INFO_FILE)
        if os.path.lexists(info_path):
            os.remove(info_path)
        for split in SPLITS:
            for kind, name in zip(('images', 'labels'), file_names(split)):
                path = os.path.join(self.out_dir, name)
                if split in counts:
                    os.replace(self._arrays[split, kind].temporary_path, path)
                elif os.path.lexists(path):
                    os.remove(path)
        write_json_atomic(info_path, {
            'format': FORMAT, 'image_size': list(self.image_size), 'channels': self.channels,
            'classes': list(self.classes), 'splits': counts, 'source': self.source})
        self._closed = True
        self._remove_stale_temporaries()
        return counts

    def _remove_stale_temporaries(self):
        """Deletes temporaries of FILE_NAMES left in the folder by an interrupted writer."""
        for name in os.listdir(self.out_dir):
            if is_format_entry(name) and name not in FILE_NAMES:
                os.remove(os.path.join(self.out_dir, name))

    def _counts(self):
        """{split: count} of the splits written; ValueError when they do not add up."""
        counts = {}
        for split in SPLITS:
            rows = {kind: self._arrays[split, kind].rows if (split, kind) in self._arrays
                    else None for kind in ('images', 'labels')}
            if rows['images'] != rows['labels']:
                raise ValueError('the %s split has %s images but %s labels'
                                 % (split, rows['images'], rows['labels']))
            if rows['images'] is not None:
                counts[split] = rows['images']
        if 'train' not in counts:
            raise ValueError('a prepared dataset needs a train split')
        return counts

    def abort(self):
        """Deletes the temporary files; the folder keeps what it held before."""
        for array in self._arrays.values():
            array.discard()
        self._arrays.clear()
        self._closed = True
