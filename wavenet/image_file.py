"""Decodes one image file into 8-bit grayscale or RGB pixels.

Only the first frame of an animated or multi-page file is read. The EXIF
orientation tag (in JPEG, PNG, WebP and TIFF files, or an XMP
`tiff:Orientation`, as Pillow reads them) is applied, so a photo taken with a
rotated phone is read upright; sizes are sizes after orientation. A file whose
header declares more than `MAX_IMAGE_PIXELS` pixels is refused before its
pixels are decoded. Every failure to read a file is an `UnreadableImage` with a
short reason; wavenet/reader.py decides what it means for a dataset.
"""

import contextlib
import os
import warnings

import numpy as np
from PIL import ExifTags, Image, ImageOps, TiffImagePlugin

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff',
                    '.webp')
# An image whose header declares more pixels (width * height) than this is
# refused before it is decoded.
MAX_IMAGE_PIXELS = 64 * 1024 * 1024

_SIXTEEN_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N')
# EXIF orientations that turn the image by 90 or 270 degrees (5 and 7 also
# mirror it): width and height swap.
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
_TIFF_WIDTH_TAG, _TIFF_LENGTH_TAG = 256, 257


class UnreadableImage(Exception):
    """An image file that cannot be decoded; the message is a short reason."""


@contextlib.contextmanager
def _open_image(path):
    """Opens an image file, refusing it before decoding if it is too large.

    Args:
      path: path of the image file.

    Yields:
      The open PIL image, its pixels not yet decoded. Any error raised while
      the file is open, in the caller's block too, becomes UnreadableImage.

    Raises:
      UnreadableImage: with a short reason.
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
                raise UnreadableImage('empty file')
            # Through a file object, Pillow reads the pixels instead of
            # memory-mapping them; its map of an uncompressed TIFF turned by
            # 90 degrees garbles the pixels (Pillow 13).
            with open(path, 'rb') as file, Image.open(file) as image:
                width, height = image.size
                if not 0 < width * height <= MAX_IMAGE_PIXELS:
                    raise UnreadableImage(
                        f'declares {width}x{height} pixels; 1 to '
                        f'{MAX_IMAGE_PIXELS} (MAX_IMAGE_PIXELS) are allowed')
                yield image
        except UnreadableImage:
            raise
        except Exception as error:  # pylint: disable=broad-except
            raise UnreadableImage(_reason(error)) from error


def read_size(path):
    """Reads the size of one file from its header, without decoding pixels.

    Args:
      path: path of the image file.

    Returns:
      (height, width) after the EXIF orientation is applied.

    Raises:
      UnreadableImage: with a short reason.
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


def read_pixels(path, image_size, channels):
    """Decodes one file as 8-bit grayscale or RGB.

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
      UnreadableImage: with a short reason.
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
