"""Writing generated images: 8-bit grayscale or RGB PNG files and grids."""
import io
import os

import numpy as np
from PIL import Image


def as_images(sequences, image_size, channels):
    """Sequences back to images.

    Args:
        sequences: [num_images, height * width * channels] in raster order.
        image_size: (height, width).
        channels: 1 or 3.
    Returns:
        [num_images, height, width] for grayscale, [num_images, height, width, 3] for RGB.
    """
    height, width = image_size
    return np.asarray(sequences).reshape((-1, height, width) + ((channels,) if channels > 1
                                                                else ()))


def tile(images, columns, padding=1):
    """Lays images out in a grid.

    Args:
        images: uint8 [num_images, height, width] or [num_images, height, width, 3].
        columns: images per row.
        padding: pixels of black between images.
    Returns:
        uint8 [rows * (height + padding) - padding, columns * (width + padding) - padding]
        (and the trailing axis of 3 for RGB).
    """
    num_images, height, width = images.shape[:3]
    rows = -(-num_images // columns)
    grid = np.zeros((rows * (height + padding) - padding, columns * (width + padding) - padding)
                    + images.shape[3:], np.uint8)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = row * (height + padding), column * (width + padding)
        grid[top:top + height, left:left + width] = image
    return grid


def _to_pil(image):
    """uint8 [height, width] -> an 'L' image; uint8 [height, width, 3] -> an 'RGB' image."""
    image = np.asarray(image, np.uint8)
    return Image.fromarray(image, mode='RGB' if image.ndim == 3 else 'L')


def save_png(path, image):
    """Writes uint8 [height, width] (or [height, width, 3]) as an 8-bit grayscale (or RGB)
    PNG, creating its folder.

    The file is written under a temporary name and renamed, so a reader never sees half a PNG.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary_path = '%s.tmp-%d.png' % (path, os.getpid())
    _to_pil(image).save(temporary_path, format='PNG')
    os.replace(temporary_path, path)


def encode_png(image):
    """Returns the PNG bytes of a uint8 [height, width] or [height, width, 3] array."""
    buffer = io.BytesIO()
    _to_pil(image).save(buffer, format='PNG')
    return buffer.getvalue()
