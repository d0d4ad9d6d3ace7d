"""Writing generated images: quantized levels to 8-bit PNG files and grids."""
import io
import os

import numpy as np
from PIL import Image


def tile(images, columns, padding=1):
    """Lays images out in a grid.

    Args:
        images: uint8 [num_images, height, width].
        columns: images per row.
        padding: pixels of black between images.
    Returns:
        uint8 [rows * (height + padding) - padding, columns * (width + padding) - padding].
    """
    num_images, height, width = images.shape
    rows = -(-num_images // columns)
    grid = np.zeros((rows * (height + padding) - padding, columns * (width + padding) - padding),
                    np.uint8)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = row * (height + padding), column * (width + padding)
        grid[top:top + height, left:left + width] = image
    return grid


def save_png(path, image):
    """Writes a uint8 [height, width] array as an 8-bit grayscale PNG, creating its folder.

    The file is written under a temporary name and renamed, so a reader never sees half a PNG.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary_path = '%s.tmp-%d.png' % (path, os.getpid())
    Image.fromarray(np.asarray(image, np.uint8), mode='L').save(temporary_path, format='PNG')
    os.replace(temporary_path, path)


def encode_png(image):
    """Returns the PNG bytes of a uint8 [height, width] array."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8), mode='L').save(buffer, format='PNG')
    return buffer.getvalue()
