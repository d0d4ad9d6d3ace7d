"""Prepared datasets: each split's images in one uint8 .npy file, read memory-mapped.

    dataset.json      {"image_size": [H, W], "channels": C, "classes": [names], "complete": true,
                       "splits": {"train": N, "test": M}, "format": ..., "source": {...}}
    train_images.npy  uint8 [N, H, W, C], C = 1 (grayscale) or 3 (RGB), intensities 0..255
    train_labels.npy  int64 [N]: an index into "classes", -1 for an image without a class
    test_images.npy, test_labels.npy: the same for the test split, which may be missing

Every value and array is checked when read (regular files only, no pickles); "complete": false
marks a dataset being written, refused. Writing (PreparedWriter) and whose folder it is
(check_output) are described there. No TensorFlow here.
"""
import contextlib
import os
import stat
from typing import NamedTuple

import numpy as np

from wavenet import files
from wavenet.errors import DataError, Error, reason

INFO_FILE = 'dataset.json'
SPLITS = ('train', 'test')
ARRAY_FILES = {split: ('%s_images.npy' % split, '%s_labels.npy' % split) for split in SPLITS}
FILE_NAMES = (INFO_FILE,) + ARRAY_FILES['train'] + ARRAY_FILES['test']  # all a dataset holds
FORMAT = 'image-wavenet prepared dataset 1'
WRITERS = ('datasets/prepare.py', 'datasets/download.py')  # "source": {"written_by": ...}
REPAIR = 'prepare it again (python -m datasets.prepare or datasets.download)'
_CHECK_ROWS = 1 << 20  # labels checked this many at a time, so a large file is not loaded


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _require(valid, name, allowed, value):
    if not valid:
        raise Error('%s must be %s, got %s' % (name, allowed, repr(value)[:100]))


def check_image_size(image_size):
    """`image_size` as a (height, width) tuple of positive ints; Error for anything else."""
    size = tuple(image_size) if isinstance(image_size, (list, tuple)) else ()
    _require(len(size) == 2 and all(_is_int(side) and side > 0 for side in size), 'image_size',
             '[height, width] with positive integers', image_size)
    return tuple(int(side) for side in size)


def check_channels(channels):
    """`channels` if it is 1 (grayscale) or 3 (RGB); Error otherwise."""
    _require(_is_int(channels) and channels in (1, 3), 'channels', '1 or 3', channels)
    return int(channels)


def check_levels(quantization_channels):
    """`quantization_channels`, the number of levels Q, if it is an integer 2..256."""
    _require(_is_int(quantization_channels) and 2 <= quantization_channels <= 256,
             'quantization_channels', 'an integer from 2 to 256', quantization_channels)
    return int(quantization_channels)


def check_classes(classes):
    """`classes` as a tuple if it is a list of distinct strings; Error otherwise."""
    _require(isinstance(classes, (list, tuple)) and all(isinstance(name, str) for name in classes)
             and len(set(classes)) == len(classes), 'classes', 'a list of distinct names', classes)
    return tuple(classes)


class Info(NamedTuple):
    """dataset.json; `counts`: {split whose files exist: its count in "splits", or None}."""
    image_size: tuple  # (height, width)
    channels: int
    classes: tuple
    counts: dict
    source: object  # any JSON value, None when not given


def is_prepared(path):
    """Whether the folder `path` has an entry named dataset.json (read_info checks it)."""
    return os.path.lexists(os.path.join(os.fspath(path), INFO_FILE))


def _read_json(path):
    """(path of dataset.json in the folder `path`, its content: a dict); Error naming it."""
    info_path = os.path.join(path, INFO_FILE)
    content = files.read_json(info_path, 'prepared dataset file')
    if not isinstance(content, dict):
        raise Error('%s is not a JSON object' % info_path)
    return info_path, content


def read_info(path):
    """The Info of a prepared dataset; DataError naming the file for a bad dataset.json (or
    "splits" naming other splits), or a missing file of the train split or of a present one."""
    path = os.fspath(path)
    try:
        info_path, content = _read_json(path)
    except Error as error:
        raise DataError('%s; %s' % (error, REPAIR)) from None
    counts = content.get('splits')
    try:
        if content.get('complete', True) is not True:
            raise Error('marks an unfinished dataset (its writer was stopped)')
        for key in ('image_size', 'channels', 'classes'):
            if key not in content:
                raise Error('lacks "%s"' % key)
        _require(counts is None or isinstance(counts, dict) and set(counts) <= set(SPLITS)
                 and all(_is_int(n) and n >= 0 for n in counts.values()), 'splits',
                 'train and test mapped to image counts', counts)
        info = Info(check_image_size(content['image_size']), check_channels(content['channels']),
                    check_classes(content['classes']), counts, content.get('source'))
    except Error as error:
        raise DataError('%s: %s; %s' % (info_path, error, REPAIR)) from None
    present = []
    for split in SPLITS:
        exists = [os.path.lexists(os.path.join(path, name)) for name in ARRAY_FILES[split]]
        if not all(exists) and (any(exists) or split == 'train'):
            raise DataError('%s is missing; %s' % (os.path.join(
                path, ARRAY_FILES[split][exists.index(False)]), REPAIR))
        present += [split] if all(exists) else []
    if counts is not None and set(counts) != set(present):
        raise DataError('%s lists the splits %s but the folder has files for %s; %s' % (
            info_path, sorted(counts), present, REPAIR))
    return info._replace(counts={split: (counts or {}).get(split) for split in present})


def load_prepared(path, split, levels=None):
    """(images, labels) of one split, memory-mapped, checked against dataset.json: labels int64
    [N] in -1..len(classes)-1; images a PreparedImages of uint8 [N, H, W(, 3)] mapped by
    `levels` (uint8 [256], intensity to level; None: intensities). DataError for a bad file."""
    path = os.fspath(path)
    info = read_info(path)
    if split not in info.counts:
        raise DataError('%s has no %s split (its files %s are missing); it has: %s' % (
            path, split, ' and '.join(ARRAY_FILES[split]), ', '.join(sorted(info.counts))))
    images_path, labels_path = (os.path.join(path, name) for name in ARRAY_FILES[split])
    pixels = _open_array(images_path, np.uint8, (None,) + info.image_size + (info.channels,))
    labels = _open_array(labels_path, np.int64, (None,))
    expected = info.counts[split]
    if len(labels) != len(pixels) or expected not in (None, len(pixels)):
        raise DataError('%s holds %d images but %s %d labels%s; %s' % (
            images_path, len(pixels), labels_path, len(labels),
            '' if expected is None else ' (%s says %d)' % (INFO_FILE, expected), REPAIR))
    for start in range(0, len(labels), _CHECK_ROWS):
        chunk = np.asarray(labels[start:start + _CHECK_ROWS])
        low, high = int(chunk.min()), int(chunk.max())
        if low < -1 or high >= len(info.classes):
            raise DataError('%s holds label %d, outside -1..%d (%d classes in %s); %s' % (
                labels_path, low if low < -1 else high, len(info.classes) - 1,
                len(info.classes), INFO_FILE, REPAIR))
    return PreparedImages(pixels, levels), labels


def _open_array(path, dtype, shape):
    """np.load(path, mmap_mode='r') of a regular file of `dtype` and `shape` (None: any)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # np.load would block on a FIFO
            raise DataError('%s is not a regular file; %s' % (path, REPAIR))
        array = np.load(path, mmap_mode='r', allow_pickle=False)
    except (OSError, ValueError, EOFError, SyntaxError) as error:
        raise DataError('cannot read %s as a .npy file (%s); %s'
                        % (path, reason(error), REPAIR)) from None
    if array.dtype != dtype or len(array.shape) != len(shape) or any(
            want is not None and have != want for have, want in zip(array.shape, shape)):
        wanted = ', '.join('N' if side is None else str(side) for side in shape)
        raise DataError('%s holds %s %s, expected %s [%s] as %s says; %s' % (
            path, array.dtype, list(array.shape), np.dtype(dtype), wanted, INFO_FILE, REPAIR))
    return array


def check_output(out_dir):
    """Whether a script may write a prepared dataset into `out_dir` (only FILE_NAMES and their
    temporaries): None for a missing or empty folder, (source, complete) of a dataset.json one
    of WRITERS wrote (arrays unchecked); DataError for anything else. Writes nothing."""
    out_dir = os.fspath(out_dir)
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise DataError('%s exists and is not a folder' % out_dir)
    entries = sorted(os.listdir(out_dir)) if os.path.lexists(out_dir) else []
    if not entries:
        return None
    if INFO_FILE not in entries:
        why = 'it holds %s but no %s' % (entries[0], INFO_FILE)
    else:
        try:
            info_path, content = _read_json(out_dir)
            source = content.get('source')
            if isinstance(source, dict) and source.get('written_by') in WRITERS:
                return source, content.get('complete', True) is True
            why = '%s does not say that %s wrote it' % (info_path, ' or '.join(WRITERS))
        except Error as error:
            why = str(error)
    raise DataError('%s is not a prepared dataset these scripts wrote (%s): nothing there is '
                    'touched; choose a new or empty folder' % (out_dir, why))


class PreparedImages:
    """The images `rows` (int [n], None: all) of `base` (memmap uint8 [N, H, W, C]) mapped by
    `levels` (uint8 [256] or None), read on demand. Array-like: an integer, a slice, a 1-D
    integer array or a boolean mask reads those images only, uint8 [k, H, W] or [k, H, W, 3]."""

    dtype = np.dtype(np.uint8)

    def __init__(self, base, levels=None, rows=None):
        self.base = base
        self.levels = None if levels is None else np.asarray(levels, np.uint8)
        self.rows = None if rows is None else np.asarray(rows, np.int64)
        height, width, channels = base.shape[1:]
        self.shape = (len(self), height, width) + ((channels,) if channels > 1 else ())
        self.ndim = len(self.shape)

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
            positions = np.arange(len(self))[key]  # numpy checks the key
            if positions.ndim != 1:
                raise IndexError('PreparedImages takes an integer, a slice, a 1-D integer '
                                 'array or a boolean mask, got %r' % (key,))
            rows = positions if self.rows is None else self.rows[positions]
            # Each row read once, in file order, then put in the order asked.
            unique, order = np.unique(rows, return_inverse=True)
            pixels = np.asarray(self.base[unique])[order]
        if pixels.shape[-1] == 1:
            pixels = pixels[..., 0]  # [k, H, W]: grayscale, as folder datasets are
        return np.array(pixels) if self.levels is None else self.levels[pixels]

    def __array__(self, dtype=None, copy=None):
        return self[:] if dtype is None else self[:].astype(dtype)


class _GrowingArray:
    """An .npy file of `dtype` rows of `row_shape` growing under a temporary name beside `path`;
    finish() writes the row count into the version 1.0 header, which leaves room for it."""

    def __init__(self, path, dtype, row_shape):
        self.path, self.dtype, self.row_shape = path, np.dtype(dtype), tuple(row_shape)
        self.temporary, self.rows = files.temporary_path(path), 0
        self.file = open(self.temporary, 'xb')
        self.header_bytes = self.write_header()

    def write_header(self):
        self.file.seek(0)
        np.lib.format.write_array_header_1_0(self.file, {
            'descr': np.lib.format.dtype_to_descr(self.dtype), 'fortran_order': False,
            'shape': (self.rows,) + self.row_shape})
        return self.file.tell()

    def append(self, block):
        self.file.seek(0, os.SEEK_END)
        self.file.write(np.ascontiguousarray(block, self.dtype).data)
        self.rows += len(block)

    def finish(self):
        """Writes the final header and closes the file, flushed to the disk."""
        if self.write_header() != self.header_bytes:
            raise ValueError('%d rows do not fit in the .npy header of %s' % (self.rows, self.path))
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


class PreparedWriter:
    """Writes a prepared dataset into `out_dir` (created when missing), a chunk at a time, in a
    `with` block; `classes` and `source` ({"written_by": ...}) may change until used.

    A folder without dataset.json gets one marked incomplete first (the writer's from then on).
    close() renames the finished arrays into place between two writes of dataset.json, marked
    incomplete then complete (never a mix that looks whole), and removes the arrays of a split
    not written and stale temporaries. Leaving the block without close() (an error, SIGINT or
    SIGTERM under cli.run_main) deletes the temporaries, even on a full disk.
    """

    def __init__(self, out_dir, image_size, channels, classes, source=None):
        self.out_dir = os.fspath(out_dir)
        self.image_size, self.channels = check_image_size(image_size), check_channels(channels)
        self.classes, self.source = check_classes(tuple(classes)), source
        self._arrays = {}  # (split, 0 for images or 1 for labels) -> _GrowingArray
        os.makedirs(self.out_dir, exist_ok=True)
        if not os.path.lexists(os.path.join(self.out_dir, INFO_FILE)):
            self._write_info(None)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):  # the temporaries left (none after close())
        for array in self._arrays.values():
            with contextlib.suppress(OSError):
                array.file.close()
            files.remove_quietly(array.temporary)

    def _write_info(self, counts):
        """dataset.json, complete with `counts` ({split: count}) or incomplete for None."""
        content = {'format': FORMAT, 'complete': counts is not None, 'source': self.source}
        if counts is not None:
            content.update(image_size=list(self.image_size), channels=self.channels,
                           classes=list(self.classes), splits=counts)
        files.write_json_atomic(os.path.join(self.out_dir, INFO_FILE), content)

    def _append(self, split, kind, block):
        if split not in SPLITS:
            raise ValueError('split must be one of %s, got %r' % (SPLITS, split))
        if (split, kind) not in self._arrays:
            self._arrays[split, kind] = _GrowingArray(
                os.path.join(self.out_dir, ARRAY_FILES[split][kind]), block.dtype, block.shape[1:])
        self._arrays[split, kind].append(block)

    def append_images(self, split, images):
        """Appends uint8 intensities [k, H, W, C] (or [k, H, W] when C is 1)."""
        images, row_shape = np.asarray(images), self.image_size + (self.channels,)
        if images.dtype != np.uint8 or images.shape[1:] not in (
                row_shape, row_shape[:2] if self.channels == 1 else None):
            raise ValueError('%s images must be uint8 [k, %d, %d(, %d)], got %s %s' % (
                split, *row_shape, images.dtype, list(images.shape)))
        self._append(split, 0, images.reshape((-1,) + row_shape))

    def append_labels(self, split, labels):
        """Appends integer labels [k], each -1 (no class) or an index into the classes."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or not (labels.size == 0 or np.issubdtype(labels.dtype, np.integer)):
            raise ValueError('%s labels must be integers [k], got %s %s'
                             % (split, labels.dtype, list(labels.shape)))
        if labels.size and not -1 <= labels.min() <= labels.max() < len(self.classes):
            raise ValueError('%s labels must lie in -1..%d' % (split, len(self.classes) - 1))
        self._append(split, 1, labels.astype(np.int64))

    def close(self):
        """Finishes the dataset; returns {split: number of images}."""
        rows = {key: array.rows for key, array in self._arrays.items()}
        for split in SPLITS:
            if rows.get((split, 0)) != rows.get((split, 1)):
                raise ValueError('the %s split has %s images but %s labels'
                                 % (split, rows.get((split, 0)), rows.get((split, 1))))
        counts = {split: rows[split, 0] for split in SPLITS if (split, 0) in rows}
        if 'train' not in counts:
            raise ValueError('a prepared dataset needs a train split')
        for array in self._arrays.values():
            array.finish()
        self._write_info(None)
        for split in SPLITS:
            for kind, name in enumerate(ARRAY_FILES[split]):
                path = os.path.join(self.out_dir, name)
                if split in counts:
                    os.replace(self._arrays[split, kind].temporary, path)
                elif os.path.lexists(path):
                    os.remove(path)
        self._write_info(counts)
        for name in os.listdir(self.out_dir):  # of FILE_NAMES, left by interrupted writers
            if files.is_temporary(name) and name[1:name.rfind(files.TEMPORARY_MARK)] in FILE_NAMES:
                files.remove_quietly(os.path.join(self.out_dir, name))
        return counts
