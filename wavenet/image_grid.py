"""Generated images as files: levels to 8-bit images, grids, and PNG files written safely."""
import io
import os
import stat

import numpy as np
from PIL import Image

from wavenet.errors import Error
from wavenet.files import write_atomic
from wavenet.reader import dequantize

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def to_images(sequences, image_size, channels, quantization_channels):
    """uint8 images [N, height, width] (grayscale) or [N, height, width, 3] (RGB) of
    sequences int [N, height * width * channels] of levels 0..quantization_channels-1."""
    shape = (-1, *image_size) + ((channels,) if channels > 1 else ())
    return dequantize(np.asarray(sequences).reshape(shape), quantization_channels)


def condition_images(conditions, image_size, channels, quantization_channels):
    """Conditions int [N, h, w, c] (model.derive_condition) shown as uint8 images of
    image_size and `channels` ([N, height, width](, 3)): upscaled, a gray one in RGB."""
    conditions = dequantize(np.asarray(conditions), quantization_channels)
    factor = image_size[0] // conditions.shape[1]
    shown = np.repeat(np.repeat(conditions, factor, axis=1), factor, axis=2)
    shown = np.repeat(shown, channels // shown.shape[-1], axis=-1)
    return shown[..., 0] if channels == 1 else shown


def grid(rows, padding=1):
    """One uint8 image of rows (lists, of any length) of uint8 images [height, width](, 3)
    of one size, `padding` pixels of black between them and in missing cells."""
    first = rows[0][0]
    height, width = first.shape[:2]
    columns = max(len(row) for row in rows)
    image = np.zeros((len(rows) * (height + padding) - padding,
                      columns * (width + padding) - padding) + first.shape[2:], np.uint8)
    for row_index, row in enumerate(rows):
        for column, cell in enumerate(row):
            top, left = row_index * (height + padding), column * (width + padding)
            image[top:top + height, left:left + width] = cell
    return image


def tile(images, columns, padding=1):
    """Images [N, height, width(, 3)] in rows of `columns`, as grid() lays them out."""
    return grid([list(images[start:start + columns])
                 for start in range(0, len(images), columns)], padding)


def upscale(image, factor):
    """Each pixel of uint8 [height, width(, 3)] as a factor x factor block."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def encode_png(image):
    """The PNG bytes of uint8 [height, width] (8-bit grayscale) or [height, width, 3] (RGB)."""
    image = np.asarray(image, np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image, mode='RGB' if image.ndim == 3 else 'L').save(buffer, format='PNG')
    return buffer.getvalue()


def check_png_path(path):
    """Refuses, before anything is generated, a PNG output that cannot or must not be written.

    `path` must name a .png file whose nearest existing folder can be written. Where a file
    is already there, it may be replaced only if it is a regular PNG file: a symlink, a
    device, a folder or a file of another kind is never written over. Error naming the path
    and why otherwise.
    """
    if not path.lower().endswith('.png') or path.endswith(os.sep):
        raise Error('%r is not a PNG file name: give one such as samples.png' % path)
    if os.path.lexists(path):
        mode = os.lstat(path).st_mode
        if stat.S_ISDIR(mode):
            raise Error('%s is a folder: give a file name such as %s' % (
                path, os.path.join(path, 'samples.png')))
        if not stat.S_ISREG(mode) or not _starts_as_png(path):
            raise Error('%s exists and is not a regular PNG file: it is never written over; '
                        'choose another name' % path)
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise Error('%s cannot be written: %s is read-only or not a folder' % (path, folder))


def _starts_as_png(path):
    try:
        with open(path, 'rb') as stream:
            return stream.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE
    except OSError as error:
        raise Error('%s exists and cannot be read (%s): choose another name'
                    % (path, error.strerror)) from None


def save_png(path, image):
    """Writes uint8 [height, width] (or [height, width, 3]) as a PNG file, atomically: an
    existing file is replaced by the new one, which keeps its permissions."""
    data = encode_png(image)
    existed = os.path.isfile(path)
    mode = stat.S_IMODE(os.stat(path).st_mode) if existed else 0o666
    write_atomic(path, lambda stream: stream.write(data), mode)
    if existed:  # past the umask
        os.chmod(path, mode)
