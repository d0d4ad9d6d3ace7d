"""Decodes one image file (its first frame) into 8-bit grayscale or RGB pixels, upright.

The EXIF orientation (as Pillow reads it) is applied, and sizes are sizes after it (a PNG whose
EXIF chunk follows its pixels counts at its stored size in read_size). A header declaring more
than MAX_IMAGE_PIXELS pixels is refused before decoding. Every failure is an UnreadableImage.
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


class UnreadableImage(errors.DataError):
    """An image file that cannot be decoded; the message is a short reason."""


@contextlib.contextmanager
def _open_image(path):
    """Yields the PIL image of a regular file, pixels not decoded, of 1..MAX_IMAGE_PIXELS
    pixels. Any error in the block, the caller's too, becomes UnreadableImage."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # malformed metadata: a failure raises instead
        warnings.simplefilter('error', Image.DecompressionBombWarning)
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
        # Decoders of malformed files raise many types (OSError, SyntaxError, struct.error...).
        except Image.UnidentifiedImageError:
            raise UnreadableImage('not a recognized image format') from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise UnreadableImage('declares more than %d (MAX_IMAGE_PIXELS) pixels: %s'
                                  % (MAX_IMAGE_PIXELS, errors.reason(error))) from None
        except Exception as error:  # pylint: disable=broad-except
            raise UnreadableImage(errors.reason(error)) from error


def read_size(path):
    """(height, width) of an image file after EXIF orientation, from its header alone."""
    with _open_image(path) as image:
        # Pillow 11+ reports a TIFF's size already oriented: read its ImageWidth, ImageLength.
        width, height = ((image.tag_v2[256], image.tag_v2[257])
                         if isinstance(image, TiffImagePlugin.TiffImageFile) else image.size)
        # Image.getexif reads the metadata parsed from the header; PNG's override would
        # decode the pixels to look for a later chunk.
        orientation = Image.Image.getexif(image).get(ExifTags.Base.Orientation, 1)
    return (width, height) if orientation in _SWAPPING_ORIENTATIONS else (height, width)


def read_pixels(path, image_size, channels):
    """One file as uint8 [height, width] (channels 1) or [height, width, 3] (channels 3),
    oriented, then resized with Lanczos to `image_size` (height, width) unless it is None.
    Colour becomes luma (ITU-R 601-2), gray is repeated for RGB, alpha dropped (not composited);
    16-bit data is scaled by 1/257, 32-bit integers too when one exceeds 255, floats by 255 when
    none exceeds 1; the rest is clipped."""
    with _open_image(path) as image:
        ImageOps.exif_transpose(image, in_place=True)  # decodes the pixels
        if image.mode in _SIXTEEN_BIT_MODES or image.mode == 'I':
            values = np.asarray(image).astype(np.int64)
            if image.mode in _SIXTEEN_BIT_MODES or values.max() > 255:
                values = np.round(np.clip(values, 0, 65535) / 257)
            pixels = np.clip(values, 0, 255).astype(np.uint8)
        elif image.mode == 'F':
            values = np.nan_to_num(np.asarray(image, dtype=np.float64))
            values = values * 255 if values.max() <= 1 else values
            pixels = np.round(np.clip(values, 0, 255)).astype(np.uint8)
        elif image.mode == 'L':
            pixels = np.asarray(image, dtype=np.uint8)
        else:  # dropping the alpha band of RGBA keeps the colour under it
            rgb = image.convert('RGBA').convert('RGB')
            pixels = np.asarray(rgb if channels == 3 else rgb.convert('L'), dtype=np.uint8)
    if channels == 3 and pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    if image_size is not None and pixels.shape[:2] != tuple(image_size):
        height, width = image_size
        pixels = np.asarray(Image.fromarray(pixels).resize((width, height),
                                                           Image.Resampling.LANCZOS))
    return pixels
