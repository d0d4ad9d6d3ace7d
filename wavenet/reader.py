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

Images are found by extension (`IMAGE_EXTENSIONS`, any letter case); hidden
files and folders are ignored and so are files with other extensions. A file
with an image extension that cannot be decoded (empty, truncated, not an
image, declaring more than `MAX_IMAGE_PIXELS`) is skipped and reported in
`Dataset.skipped`. Each file's header is read first, for its size, and its
pixels are decoded once.

Orientation: the EXIF orientation tag (in JPEG, PNG, WebP and TIFF files, or
an XMP `tiff:Orientation`, as Pillow reads them) is applied, so a photo taken
with a rotated phone is read upright. Sizes below are sizes after orientation:
a 90 or 270 degree rotation swaps width and height. (A PNG whose EXIF chunk
follows its pixel data is oriented when decoded but not in the header pass, so
it counts at its stored size.)

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
"""

import collections
import contextlib
import os
import warnings
from typing import NamedTuple

import numpy as np
from PIL import ExifTags, Image, ImageOps, TiffImagePlugin

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff',
                    '.webp')
# An image whose header declares more pixels (width * height) than this is
# refused before it is decoded.
MAX_IMAGE_PIXELS = 64 * 1024 * 1024

_TRAIN_FOLDER = 'train'
_VALIDATION_FOLDERS = ('test', 'val', 'validation')
_SIXTEEN_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N')
# EXIF orientations that turn the image by 90 or 270 degrees (5 and 7 also
# mirror it): width and height swap.
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
_TIFF_WIDTH_TAG, _TIFF_LENGTH_TAG = 256, 257
_EXPECTED_LAYOUT = (f'image files ({", ".join(IMAGE_EXTENSIONS)}), optionally '
                    'in class subfolders or in train/ and test/ split folders')


class DataError(Exception):
    """A data folder or file that cannot be used; the message says why."""


class ImageSet(NamedTuple):
    """Images of one split.

    Attributes:
      images: uint8 [num_images, height, width] (grayscale) or
        [num_images, height, width, 3] (RGB), levels 0..Q-1.
      labels: int32 [num_images], index into `Dataset.classes`, -1 for none.
      files: tuple of `num_images` str paths, in the same order.
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
      skipped: tuple of (path, reason) for each image file not read.
      split_source: 'folders' when the splits came from train/ and test/
        (or val/) folders, 'fraction' when a fraction was held out.
      size_counts: tuple of ((height, width), count), one per distinct size
        of the training files (after EXIF orientation, before resizing) whose
        header could be read; most common first, ties by smaller area, then
        smaller height. More than one entry means the training images are
        not all of one size.
    """
    train: ImageSet
    validation: ImageSet
    classes: tuple
    image_size: tuple
    skipped: tuple
    split_source: str
    size_counts: tuple


class _UnreadableImage(Exception):
    """An image file that cannot be decoded; the message is a short reason."""


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

    Only the first frame of an animated or multi-page file is read. For
    grayscale, colour is converted to luma (ITU-R 601-2); for RGB, grayscale
    data is repeated in the three channels. An alpha channel is dropped, not
    composited. 16-bit data is scaled by 1/257 (65535 -> 255); 32-bit integer
    data is read as 8-bit when no value exceeds 255 and as 16-bit otherwise;
    float data is scaled by 255 when no value exceeds 1 and read as 0..255
    otherwise. Values outside the range are clipped. The EXIF orientation is
    applied before resizing.

    Args:
      path: path of the image file.
      image_size: (height, width) to resize to with a Lanczos filter, or None
        to keep the size of the file.
      channels: 1 for grayscale, 3 for RGB.

    Returns:
      uint8 [height, width] (grayscale) or [height, width, 3] (RGB) array of
      intensities 0..255.

    Raises:
      DataError: the file cannot be decoded or declares more than
        MAX_IMAGE_PIXELS pixels.
    """
    if image_size is not None:
        image_size = _check_image_size(image_size)
    _check_channels(channels)
    try:
        return _read_image(path, image_size, channels)
    except _UnreadableImage as error:
        raise DataError(f'cannot read image {path}: {error}; replace or '
                        'remove the file') from error


def list_image_files(folder):
    """Lists the image files below a folder, recursively.

    Args:
      folder: path of the folder.

    Returns:
      Sorted list of str paths of the files whose extension is in
      IMAGE_EXTENSIONS (any letter case), hidden files and folders excluded.
    """
    paths = []
    for parent, folders, names in os.walk(os.fspath(folder)):
        folders[:] = [name for name in folders if not name.startswith('.')]
        paths.extend(os.path.join(parent, name) for name in names
                     if not name.startswith('.')
                     and name.lower().endswith(IMAGE_EXTENSIONS))
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
    train_root, validation_root = _split_folders(data_dir)
    if validation_root is None:
        validation_root = train_root
        train_files, validation_files = _split_by_fraction(
            _list_required(train_root), validation_fraction, seed)
        split_source = 'fraction'
    else:
        train_files = _list_required(train_root)
        validation_files = list_image_files(validation_root)
        split_source = 'folders'

    train, train_skipped, size_counts, image_size = _read_images(
        train_files, image_size, channels)
    validation, validation_skipped, _, _ = _read_images(
        validation_files, image_size, channels)
    skipped = tuple(train_skipped + validation_skipped)
    if not train:
        raise _no_readable_image(data_dir, skipped, 'training image')
    train_classes = _class_names(train, train_root)
    validation_classes = _class_names(validation, validation_root)
    classes = tuple(sorted(set(train_classes + validation_classes) - {None}))
    return Dataset(
        train=_image_set(train, train_classes, classes, image_size,
                         quantization_channels, channels),
        validation=_image_set(validation, validation_classes, classes,
                              image_size, quantization_channels, channels),
        classes=classes,
        image_size=image_size,
        skipped=skipped,
        split_source=split_source,
        size_counts=size_counts)


def load_folder(folder, image_size, quantization_channels, classes=None,
                channels=1):
    """Reads every image below a folder, e.g. to evaluate a model on it.

    Args:
      folder: path of the folder.
      image_size: (height, width) of the returned images, or None for the
        most common size of its images (see the module docstring).
      quantization_channels: number of levels Q, 2..256.
      classes: class names the labels index into, or None to label every
        image -1. An image in a first-level subfolder whose name is not in
        `classes`, or lying directly in `folder`, is labelled -1.
      channels: 1 for grayscale, 3 for RGB.

    Returns:
      (image_set, skipped): an ImageSet of the images that could be read, and
      a tuple of (path, reason) for each image file that could not.

    Raises:
      DataError: `folder` is missing, holds no image file, or none of its
        images can be read.
      ValueError: an argument is out of range.
    """
    folder, image_size = _check_arguments(folder, 'folder', image_size,
                                          quantization_channels, channels)
    images, skipped, _, image_size = _read_images(_list_required(folder),
                                                  image_size, channels)
    if not images:
        raise _no_readable_image(folder, skipped, 'image')
    image_set = _image_set(images, _class_names(images, folder),
                           tuple(classes or ()), image_size,
                           quantization_channels, channels)
    return image_set, tuple(skipped)


@contextlib.contextmanager
def _open_image(path):
    """Opens an image file, refusing it before decoding if it is too large.

    Args:
      path: path of the image file.

    Yields:
      The open PIL image, its pixels not yet decoded. Any error raised while
      the file is open, in the caller's block too, becomes _UnreadableImage.

    Raises:
      _UnreadableImage: with a short reason.
    """
    with warnings.catch_warnings():
        # PIL's warnings about malformed metadata are noise here; a file that
        # cannot be decoded is reported through the exception instead.
        warnings.simplefilter('ignore')
        warnings.simplefilter('error', Image.DecompressionBombWarning)
        # Decoders of malformed files raise many exception types (OSError,
        # SyntaxError, ValueError, struct.error, ...): all mean unreadable.
        try:
            if os.path.getsize(path) == 0:
                raise _UnreadableImage('empty file')
            # Through a file object, Pillow reads the pixels instead of
            # memory-mapping them; its map of an uncompressed TIFF turned by
            # 90 degrees garbles the pixels (Pillow 13).
            with open(path, 'rb') as file, Image.open(file) as image:
                width, height = image.size
                if not 0 < width * height <= MAX_IMAGE_PIXELS:
                    raise _UnreadableImage(
                        f'declares {width}x{height} pixels; 1 to '
                        f'{MAX_IMAGE_PIXELS} (MAX_IMAGE_PIXELS) are allowed')
                yield image
        except _UnreadableImage:
            raise
        except Exception as error:  # pylint: disable=broad-except
            raise _UnreadableImage(_reason(error)) from error


def _read_size(path):
    """Reads the size of one file from its header, without decoding pixels.

    Args:
      path: path of the image file.

    Returns:
      (height, width) after the EXIF orientation is applied.

    Raises:
      _UnreadableImage: with a short reason.
    """
    with _open_image(path) as image:
        width, height = _stored_size(image)
        # Image.getexif reads the metadata already parsed from the header;
        # PNG's override would decode the pixels to look for a later chunk.
        orientation = Image.Image.getexif(image).get(
            ExifTags.Base.Orientation, 1)
    if orientation in _SWAPPING_ORIENTATIONS:
        return width, height
    return height, width


def _stored_size(image):
    """(width, height) of an open image's pixels before EXIF orientation.

    Pillow 11 and later report a TIFF's size already oriented, so a TIFF's is
    read from its tags.
    """
    if isinstance(image, TiffImagePlugin.TiffImageFile):
        return image.tag_v2[_TIFF_WIDTH_TAG], image.tag_v2[_TIFF_LENGTH_TAG]
    return image.size


def _read_image(path, image_size, channels):
    """Decodes one file; see `load_image`.

    Args:
      path: path of the image file.
      image_size: (height, width) to resize to, or None.
      channels: 1 for grayscale, 3 for RGB.

    Returns:
      uint8 [height, width] or [height, width, 3] array of intensities.

    Raises:
      _UnreadableImage: with a short reason.
    """
    with _open_image(path) as image:
        ImageOps.exif_transpose(image, in_place=True)  # Decodes the pixels.
        pixels = _to_gray(image) if channels == 1 else _to_rgb(image)
    if image_size is not None and pixels.shape[:2] != image_size:
        height, width = image_size
        pixels = np.asarray(Image.fromarray(pixels).resize(
            (width, height), Image.Resampling.LANCZOS))
    return pixels


def _to_gray(image):
    """Converts a decoded PIL image to a uint8 [height, width] array."""
    if image.mode == 'L':
        return np.asarray(image, dtype=np.uint8)
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == 'I':
        values = np.asarray(image).astype(np.int64)
        if image.mode in _SIXTEEN_BIT_MODES or values.max() > 255:
            values = np.round(np.clip(values, 0, 65535) / 257)
        return np.clip(values, 0, 255).astype(np.uint8)
    if image.mode == 'F':
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        if values.max() <= 1:
            values = values * 255
        return np.round(np.clip(values, 0, 255)).astype(np.uint8)
    # Dropping the alpha band of RGBA keeps the colour under it.
    gray = image.convert('RGBA').convert('RGB').convert('L')
    return np.asarray(gray, dtype=np.uint8)


def _to_rgb(image):
    """Converts a decoded PIL image to a uint8 [height, width, 3] array."""
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ('I', 'F', 'L'):
        gray = _to_gray(image)
        return np.repeat(gray[:, :, None], 3, axis=2)
    # Dropping the alpha band of RGBA keeps the colour under it.
    return np.asarray(image.convert('RGBA').convert('RGB'), dtype=np.uint8)


def _reason(error):
    """A short reason for a decoding error."""
    if isinstance(error, Image.UnidentifiedImageError):
        return 'not a recognized image format'
    if isinstance(error, (Image.DecompressionBombError,
                          Image.DecompressionBombWarning)):
        return (f'declares more than {MAX_IMAGE_PIXELS} (MAX_IMAGE_PIXELS) '
                f'pixels: {error}')
    return f'{type(error).__name__}: {error}'


def _read_images(paths, image_size, channels):
    """Reads the sizes of files, then decodes them, skipping unreadable ones.

    Args:
      paths: paths of the image files.
      image_size: (height, width) to resize to, or None for the most common
        size (see `_count_sizes`).
      channels: 1 for grayscale, 3 for RGB.

    Returns:
      (images, skipped, size_counts, image_size): a list of (path, uint8
      pixels) for the files read, in order; a list of (path, reason) for the
      others, in path order; the `_count_sizes` of the files whose header was
      read; the image size used (None when no header was read).
    """
    sizes, skipped = {}, []
    for path in paths:
        try:
            sizes[path] = _read_size(path)
        except _UnreadableImage as error:
            skipped.append((path, str(error)))
    size_counts = _count_sizes(sizes.values())
    if image_size is None and size_counts:
        image_size = size_counts[0][0]
    images = []
    for path in sizes:
        try:
            images.append((path, _read_image(path, image_size, channels)))
        except _UnreadableImage as error:
            skipped.append((path, str(error)))
    return images, sorted(skipped), size_counts, image_size


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


def _image_set(images, class_names, classes, image_size,
               quantization_channels, channels):
    """Stacks decoded images into a quantized ImageSet.

    Args:
      images: list of (path, uint8 [height, width] pixels).
      class_names: class name (or None) of each image.
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
    for i, (_, image) in enumerate(images):
        pixels[i] = image
    labels = np.array([index.get(name, -1) for name in class_names], np.int32)
    return ImageSet(images=quantize(pixels, quantization_channels),
                    labels=labels,
                    files=tuple(path for path, _ in images))


def _class_names(images, root):
    """Class name of each image: its first folder below `root`, or None.

    Args:
      images: list of (path, pixels).
      root: the folder the paths lie below.

    Returns:
      List of str or None, one per image.
    """
    names = []
    for path, _ in images:
        parts = os.path.relpath(path, root).split(os.sep)
        names.append(parts[0] if len(parts) > 1 else None)
    return names


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
    """Holds out a seeded random fraction of the files.

    Args:
      files: sorted list of N paths.
      validation_fraction: fraction held out, in [0, 1).
      seed: seed of the permutation.

    Returns:
      (train_files, validation_files), both in sorted order: round(fraction *
      N) files are held out, at least 1 when the fraction is above 0 and
      N >= 2, and at most N - 1.
    """
    count = len(files)
    held_out = round(validation_fraction * count)
    if validation_fraction > 0 and count >= 2:
        held_out = max(held_out, 1)
    held_out = min(held_out, count - 1)
    permutation = np.random.default_rng(seed).permutation(count)
    validation = set(permutation[:held_out].tolist())
    return ([path for i, path in enumerate(files) if i not in validation],
            [path for i, path in enumerate(files) if i in validation])


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
