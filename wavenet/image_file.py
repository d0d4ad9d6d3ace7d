"""Decodes one image file into 8-bit grayscale or RGB pixels.

Only the first frame of an animated or multi-page file is read. The EXIF orientation (in JPEG,
PNG, WebP and TIFF files, or an XMP tiff:Orientation, as Pillow reads them) is applied, so a
photo taken with a rotated phone is read upright, and sizes are sizes after orientation (a PNG
whose EXIF chunk follows its pixels is oriented when decoded, but counts at its stored size in
read_size). A file whose header declares more than MAX_IMAGE_PIXELS pixels is refused before
its pixels are decoded. Every failure is an UnreadableImage with a short reason.
"""
import contextlib
import os
import stat
import warnings

import numpy as np
from PIL import ExifTags, Image, ImageOps, TiffImagePlugin

from wavenet import errors

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff', '.webp')
MAX_IMAGE_PIXELS = 64 * 1024 * 1024  # width * height a header may declare
_SIXTEEN_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N')
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)  # turn by 90 or 270 degrees: width and height swap
_TIFF_WIDTH_TAG, _TIFF_LENGTH_TAG = 256, 257


class UnreadableImage(errors.DataError):
    """An image file that cannot be decoded; the message is a short reason."""


@contextlib.contextmanager
def _open_image(path):
    """Yields the open PIL image of a regular file, pixels not decoded, after refusing a size
    over MAX_IMAGE_PIXELS. Any error in the block, the caller's too, becomes UnreadableImage."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # malformed metadata: a failure raises instead
        warnings.simplefilter('error', Image.DecompressionBombWarning)
        # Decoders of malformed files raise many types (OSError, SyntaxError, ValueError,
        # struct.error, ...): all mean unreadable.
        try:
            status = os.stat(path)
            if not stat.S_ISREG(status.st_mode):
                raise UnreadableImage('not a regular file')
            if status.st_size == 0:
                raise UnreadableImage('empty file')
            # Through a file object, Pillow reads the pixels instead of memory-mapping them;
            # its map of an uncompressed TIFF turned by 90 degrees garbles them (Pillow 13).
            with open(path, 'rb') as file, Image.open(file) as image:
                width, height = image.size
                if not 0 < width * height <= MAX_IMAGE_PIXELS:
                    raise UnreadableImage('declares %dx%d pixels; 1 to %d (MAX_IMAGE_PIXELS) '
                                          'are allowed' % (width, height, MAX_IMAGE_PIXELS))
                yield image
        except UnreadableImage:
            raise
        except Exception as error:  # pylint: disable=broad-except
            raise UnreadableImage(_reason(error)) from error


def _reason(error):
    """A short reason for a decoding error."""
    if isinstance(error, Image.UnidentifiedImageError):
        return 'not a recognized image format'
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return 'declares more than %d (MAX_IMAGE_PIXELS) pixels: %s' % (
            MAX_IMAGE_PIXELS, errors.reason(error))
    return errors.reason(error)


def read_size(path):
    """(height, width) of an image file after EXIF orientation, from its header alone."""
    with _open_image(path) as image:
        if isinstance(image, TiffImagePlugin.TiffImageFile):
            # Pillow 11 and later report a TIFF's size already oriented: read its tags.
            width, height = image.tag_v2[_TIFF_WIDTH_TAG], image.tag_v2[_TIFF_LENGTH_TAG]
        else:
            width, height = image.size
        # Image.getexif reads the metadata parsed from the header; PNG's override would
        # decode the pixels to look for a later chunk.
        orientation = Image.Image.getexif(image).get(ExifTags.Base.Orientation, 1)
    return (width, height) if orientation in _SWAPPING_ORIENTATIONS else (height, width)


def read_pixels(path, image_size, channels):
    """Decodes one file as uint8 [height, width] (channels 1) or [height, width, 3] (channels 3).

    Colour becomes luma (ITU-R 601-2) for grayscale; grayscale is repeated for RGB; alpha is
    dropped, not composited. 16-bit data is scaled by 1/257; 32-bit integers are read as 8-bit
    when none exceeds 255, else as 16-bit; floats are scaled by 255 when none exceeds 1, else
    read as 0..255; values outside the range are clipped. The EXIF orientation is applied, then
    the image resized to `image_size` (height, width) with Lanczos unless it is None.
    """
    with _open_image(path) as image:
        ImageOps.exif_transpose(image, in_place=True)  # decodes the pixels
        pixels = _to_gray(image) if channels == 1 else _to_rgb(image)
    if image_size is not None and pixels.shape[:2] != tuple(image_size):
        height, width = image_size
        pixels = np.asarray(Image.fromarray(pixels).resize((width, height),
                                                           Image.Resampling.LANCZOS))
    return pixels


def _to_gray(image):
    """A decoded PIL image as uint8 [height, width]."""
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
    return np.asarray(image.convert('RGBA').convert('RGB').convert('L'), dtype=np.uint8)


def _to_rgb(image):
    """A decoded PIL image as uint8 [height, width, 3]."""
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ('I', 'F', 'L'):
        return np.repeat(_to_gray(image)[:, :, None], 3, axis=2)
    return np.asarray(image.convert('RGBA').convert('RGB'), dtype=np.uint8)
