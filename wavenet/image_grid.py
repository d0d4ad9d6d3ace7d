"""Generated images as files: levels to 8-bit images, grids, PNG files and bytes."""
import io

import numpy as np
from PIL import Image

from wavenet.files import write_atomic
from wavenet.reader import dequantize


def to_images(sequences, image_size, channels, quantization_channels):
    """Sequences of levels back to 8-bit images.

    Args:
        sequences: int [num_images, height * width * channels] levels in raster order.
        image_size: (height, width).
        channels: 1 or 3.
        quantization_channels: Q, the number of levels.
    Returns:
        uint8 [num_images, height, width] for grayscale, [num_images, height, width, 3] for
        RGB, intensities 0..255.
    """
    height, width = image_size
    shape = (-1, height, width) + ((channels,) if channels > 1 else ())
    return dequantize(np.asarray(sequences).reshape(shape), quantization_channels)


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


def upscale(image, factor):
    """Each pixel of uint8 [height, width(, 3)] as a factor x factor block (nearest neighbour)."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def encode_png(image):
    """The PNG bytes of uint8 [height, width] (8-bit grayscale) or [height, width, 3] (RGB)."""
    image = np.asarray(image, np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image, mode='RGB' if image.ndim == 3 else 'L').save(buffer, format='PNG')
    return buffer.getvalue()


def save_png(path, image):
    """Writes uint8 [height, width] (or [height, width, 3]) as a PNG file, atomically."""
    data = encode_png(image)
    write_atomic(path, lambda stream: stream.write(data))
