"""Tests of wavenet.reader on small images written into tmp_path."""

import io
import os
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from conftest import time_limit
from wavenet import errors, reader


def _pattern(height=8, width=6, seed=0):
    """Random uint8 [height, width] intensities."""
    return np.random.default_rng(seed).integers(
        0, 256, (height, width), dtype=np.uint8)


def _save(path, pixels, **options):
    """Writes a uint8 [height, width] array as an 'L' image; returns path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path, **options)
    return str(path)


def _png_bytes(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, 'PNG')
    return buffer.getvalue()


def _with_declared_size(png, width, height):
    """PNG bytes with the IHDR width and height replaced, CRC recomputed."""
    header = bytearray(png)
    assert header[12:16] == b'IHDR'
    header[16:24] = struct.pack('>II', width, height)
    header[29:33] = struct.pack('>I', zlib.crc32(bytes(header[12:29])))
    return bytes(header)


# load_image: formats and modes.

@pytest.mark.parametrize('name, options', [
    ('image.png', {}),
    ('image.bmp', {}),
    ('image.tif', {}),
    ('image.TIFF', {}),
    ('image.webp', {'lossless': True}),
    ('image.gif', {}),
])
def test_lossless_formats_round_trip(tmp_path, name, options):
    pixels = _pattern()
    path = _save(tmp_path / name, pixels, **options)
    loaded = reader.load_image(path)
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, pixels)


def test_jpeg_round_trip_within_tolerance(tmp_path):
    rows, cols = np.mgrid[0:32, 0:32]
    pixels = (rows * 4 + cols * 3).astype(np.uint8)
    path = _save(tmp_path / 'image.jpg', pixels, quality=95)
    loaded = reader.load_image(path)
    assert loaded.shape == (32, 32) and loaded.dtype == np.uint8
    assert np.abs(loaded.astype(int) - pixels).max() <= 8


def test_rgba_png_drops_alpha(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = 200, 100, 50
    rgba[:, :2, 3] = 0      # transparent pixels keep their colour
    rgba[:, 2:, 3] = 255
    path = str(tmp_path / 'rgba.png')
    Image.fromarray(rgba, 'RGBA').save(path)
    expected = np.asarray(Image.fromarray(rgba[..., :3], 'RGB').convert('L'))
    np.testing.assert_array_equal(reader.load_image(path), expected)
    assert len(np.unique(expected)) == 1


def test_palette_gif_reads_first_frame(tmp_path):
    first = np.tile(np.array([0, 85, 170, 255], np.uint8), (3, 2))
    second = np.full_like(first, 40)
    path = str(tmp_path / 'anim.gif')
    frames = [Image.fromarray(first).convert('P'),
              Image.fromarray(second).convert('P')]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with Image.open(path) as image:
        assert image.mode == 'P' and image.n_frames == 2
    np.testing.assert_array_equal(reader.load_image(path), first)


def test_sixteen_bit_png_scales_by_257(tmp_path):
    levels = np.arange(0, 256, 17)
    values = np.concatenate([levels * 257, [0, 65535, 128, 129]])
    path = str(tmp_path / 'deep.png')
    Image.fromarray(values.reshape(2, -1).astype(np.uint16)).save(path)
    with Image.open(path) as image:
        assert image.mode == 'I;16'
    expected = np.concatenate([levels, [0, 255, 0, 1]]).reshape(2, -1)
    np.testing.assert_array_equal(reader.load_image(path), expected)


def test_float_tiff(tmp_path):
    unit = np.array([[0.0, 0.5, 1.0], [-0.5, 0.25, 0.999]], np.float32)
    path = str(tmp_path / 'unit.tif')
    Image.fromarray(unit).save(path)
    with Image.open(path) as image:
        assert image.mode == 'F'
    np.testing.assert_array_equal(reader.load_image(path),
                                  [[0, 128, 255], [0, 64, 255]])

    wide = np.array([[-3.0, 2.0, 127.6], [255.0, 300.0, 10.2]], np.float32)
    path = str(tmp_path / 'wide.tiff')
    Image.fromarray(wide).save(path)
    np.testing.assert_array_equal(reader.load_image(path),
                                  [[0, 2, 128], [255, 255, 10]])


def test_integer_tiff(tmp_path):
    path = str(tmp_path / 'small.tif')
    Image.fromarray(np.array([[0, 100, 255]], np.int32)).save(path)
    with Image.open(path) as image:
        assert image.mode == 'I'
    np.testing.assert_array_equal(reader.load_image(path), [[0, 100, 255]])

    path = str(tmp_path / 'wide.tif')
    Image.fromarray(np.array([[-5, 257 * 3, 65535, 70000]], np.int32)).save(
        path)
    np.testing.assert_array_equal(reader.load_image(path), [[0, 3, 255, 255]])


def test_bilevel_png(tmp_path):
    bits = _pattern() > 127
    path = str(tmp_path / 'bits.png')
    Image.fromarray(bits).save(path)
    np.testing.assert_array_equal(reader.load_image(path), bits * 255)


def test_resize_uses_lanczos(tmp_path):
    pixels = _pattern(12, 10)
    path = _save(tmp_path / 'image.png', pixels)
    loaded = reader.load_image(path, image_size=(6, 4))
    expected = Image.fromarray(pixels).resize((4, 6), Image.Resampling.LANCZOS)
    assert loaded.shape == (6, 4)
    np.testing.assert_array_equal(loaded, np.asarray(expected))
    np.testing.assert_array_equal(reader.load_image(path, (12, 10)), pixels)


def test_load_image_raises_data_error_naming_file(tmp_path):
    path = tmp_path / 'text.png'
    path.write_text('not an image')
    with pytest.raises(errors.DataError, match='text.png'):
        reader.load_image(str(path))


def test_declared_size_is_refused_before_decoding(tmp_path):
    png = _png_bytes(_pattern(4, 4))
    # Above MAX_IMAGE_PIXELS but below PIL's own limit, and far above both.
    for width, height, message in [
            (9000, 9000, 'declares 9000x9000 pixels'),
            (100000, 100000, 'declares more than 67108864 .*10000000000')]:
        path = tmp_path / f'bomb{width}.png'
        path.write_bytes(_with_declared_size(png, width, height))
        start = time.perf_counter()
        with pytest.raises(errors.DataError, match=message):
            reader.load_image(str(path))
        assert time.perf_counter() - start < 1


# quantize and dequantize.

def test_quantize_matches_numpy_reference():
    pixels = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(reader.quantize(pixels, 256), pixels)
    np.testing.assert_array_equal(reader.dequantize(pixels, 256), pixels)
    np.testing.assert_array_equal(
        reader.quantize(np.array([0, 63, 64, 127, 128, 191, 192, 255]), 4),
        [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(
        reader.dequantize(np.array([0, 1, 2, 3]), 4), [0, 85, 170, 255])
    for channels in [2, 3, 4, 7, 16, 100, 255, 256]:
        levels = reader.quantize(pixels, channels)
        assert levels.dtype == np.uint8
        np.testing.assert_array_equal(
            levels, (pixels.astype(int) * channels) // 256)
        assert levels.min() == 0 and levels.max() == channels - 1
        restored = reader.dequantize(levels, channels)
        assert restored.dtype == np.uint8
        np.testing.assert_array_equal(
            restored, np.round(levels.astype(int) * 255 / (channels - 1)))
        assert np.abs(restored.astype(int) - pixels).max() <= 256 / channels


def test_quantize_rejects_bad_arguments():
    for channels in [1, 257, 0, 2.0, True]:
        with pytest.raises(errors.Error, match='quantization_channels'):
            reader.quantize(np.zeros(3, np.uint8), channels)
    with pytest.raises(ValueError):
        reader.quantize(np.array([256]), 256)
    with pytest.raises(ValueError):
        reader.dequantize(np.array([4]), 4)
    with pytest.raises(ValueError):
        reader.dequantize(np.array([0.5]), 4)


# Listing, classes and splits.

def test_list_image_files_recursive_and_case_insensitive(tmp_path):
    for name in ['b.png', 'A.PNG', 'sub/c.JpEg', 'sub/deeper/d.webp',
                 'notes.txt', '.hidden.png', '.cache/e.png', 'sub/f.tiff']:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b'')
    expected = sorted(str(tmp_path / name) for name in [
        'b.png', 'A.PNG', 'sub/c.JpEg', 'sub/deeper/d.webp', 'sub/f.tiff'])
    assert reader.list_image_files(tmp_path) == expected


def test_classes_from_subfolders(tmp_path):
    _save(tmp_path / 'cat' / 'a.png', _pattern(seed=1))
    _save(tmp_path / 'cat' / 'deep' / 'b.png', _pattern(seed=2))
    _save(tmp_path / 'dog' / 'c.png', _pattern(seed=3))
    _save(tmp_path / 'loose.png', _pattern(seed=4))
    data = reader.load_dataset(tmp_path, validation_fraction=0)
    assert data.classes == ('cat', 'dog')
    assert data.split_source == 'fraction'
    labels = dict(zip(data.train.files, data.train.labels.tolist()))
    assert labels == {str(tmp_path / 'cat' / 'a.png'): 0,
                      str(tmp_path / 'cat' / 'deep' / 'b.png'): 0,
                      str(tmp_path / 'dog' / 'c.png'): 1,
                      str(tmp_path / 'loose.png'): -1}
    assert data.train.labels.dtype == np.int32
    assert data.validation.images.shape == (0, 8, 6)
    assert data.validation.labels.shape == (0,)
    np.testing.assert_array_equal(data.train.images[0], _pattern(seed=1))


def test_train_and_test_folders(tmp_path):
    _save(tmp_path / 'train' / 'cat' / 'a.png', _pattern(seed=1))
    _save(tmp_path / 'train' / 'dog' / 'b.png', _pattern(seed=2))
    _save(tmp_path / 'train' / 'loose.png', _pattern(seed=3))
    _save(tmp_path / 'test' / 'bird' / 'c.png', _pattern(seed=4))
    _save(tmp_path / 'test' / 'dog' / 'd.png', _pattern(seed=5))
    _save(tmp_path / 'val' / 'cat' / 'ignored.png', _pattern(seed=6))
    data = reader.load_dataset(tmp_path, quantization_channels=16)
    assert data.split_source == 'folders'
    assert data.classes == ('bird', 'cat', 'dog')
    assert data.train.labels.tolist() == [1, 2, -1]
    assert data.validation.labels.tolist() == [0, 2]
    assert data.validation.files == (str(tmp_path / 'test' / 'bird' / 'c.png'),
                                      str(tmp_path / 'test' / 'dog' / 'd.png'))
    np.testing.assert_array_equal(data.validation.images[1],
                                  reader.quantize(_pattern(seed=5), 16))


@pytest.mark.parametrize('name', ['val', 'validation'])
def test_val_folder_names(tmp_path, name):
    _save(tmp_path / 'train' / 'a.png', _pattern(seed=1))
    _save(tmp_path / name / 'b.png', _pattern(seed=2))
    data = reader.load_dataset(tmp_path)
    assert data.split_source == 'folders'
    assert data.validation.files == (str(tmp_path / name / 'b.png'),)


def test_train_folder_alone_is_split_by_fraction(tmp_path):
    for i in range(4):
        _save(tmp_path / 'train' / 'cat' / f'{i}.png', _pattern(seed=i))
    data = reader.load_dataset(tmp_path, validation_fraction=0.25)
    assert data.split_source == 'fraction'
    assert data.classes == ('cat',)
    assert len(data.train.files) == 3 and len(data.validation.files) == 1


def test_fraction_split_is_seeded(tmp_path):
    paths = [_save(tmp_path / f'{i:02d}.png', _pattern(seed=i))
             for i in range(20)]
    first = reader.load_dataset(tmp_path, validation_fraction=0.25, seed=3)
    again = reader.load_dataset(tmp_path, validation_fraction=0.25, seed=3)
    other = reader.load_dataset(tmp_path, validation_fraction=0.25, seed=4)
    assert len(first.validation.files) == 5 and len(first.train.files) == 15
    assert sorted(first.train.files + first.validation.files) == paths
    assert list(first.train.files) == sorted(first.train.files)
    assert first.validation.files == again.validation.files
    assert first.validation.files != other.validation.files
    order = np.random.default_rng(3).permutation(20)[:5]
    assert first.validation.files == tuple(paths[i] for i in sorted(order))
    for files, images in [(first.train.files, first.train.images),
                          (first.validation.files, first.validation.images)]:
        for path, image in zip(files, images):
            np.testing.assert_array_equal(image, _pattern(seed=int(
                os.path.basename(path)[:2])))


@pytest.mark.parametrize('count, fraction, held_out', [
    (1, 0.5, 0), (2, 0.1, 1), (2, 0.9, 1), (10, 0.0, 0), (10, 0.14, 1),
    (10, 0.16, 2)])
def test_fraction_split_sizes(tmp_path, count, fraction, held_out):
    for i in range(count):
        _save(tmp_path / f'{i}.png', _pattern(seed=i))
    data = reader.load_dataset(tmp_path, validation_fraction=fraction)
    assert len(data.validation.files) == held_out
    assert len(data.train.files) == count - held_out


def test_most_common_size_beats_a_large_stray_file_sorted_first(tmp_path):
    stray = _save(tmp_path / 'a_stray.png', np.zeros((3000, 3000), np.uint8))
    for i in range(5):
        _save(tmp_path / f'b{i}.png', _pattern(7, 5, seed=i))
    data = reader.load_dataset(tmp_path, validation_fraction=0)
    assert data.image_size == (7, 5)
    assert data.size_counts == (((7, 5), 5), ((3000, 3000), 1))
    assert data.train.images.shape == (6, 7, 5)
    assert data.train.files[0] == stray
    np.testing.assert_array_equal(data.train.images[0],
                                  reader.load_image(stray, (7, 5)))
    np.testing.assert_array_equal(data.train.images[1], _pattern(7, 5))

    images, _ = reader.load_folder(tmp_path, None, 256)
    assert images.images.shape == (6, 7, 5)


def test_size_counts_cover_training_images_only(tmp_path):
    _save(tmp_path / 'train' / 'a.png', _pattern(4, 6, seed=1))
    _save(tmp_path / 'train' / 'b.png', _pattern(4, 6, seed=2))
    _save(tmp_path / 'train' / 'c.png', _pattern(9, 9, seed=3))
    _save(tmp_path / 'test' / 'd.png', _pattern(9, 9, seed=4))
    _save(tmp_path / 'test' / 'e.png', _pattern(9, 9, seed=5))
    _save(tmp_path / 'test' / 'f.png', _pattern(9, 9, seed=6))
    data = reader.load_dataset(tmp_path)
    assert data.image_size == (4, 6)
    assert data.size_counts == (((4, 6), 2), ((9, 9), 1))
    assert data.validation.images.shape == (3, 4, 6)


def test_size_tie_goes_to_smaller_area_then_smaller_height(tmp_path):
    (tmp_path / 'a0.png').write_bytes(b'')
    _save(tmp_path / 'a1.png', _pattern(10, 12))
    _save(tmp_path / 'b.png', _pattern(6, 8))
    data = reader.load_dataset(tmp_path, validation_fraction=0)
    assert data.image_size == (6, 8)
    assert data.size_counts == (((6, 8), 1), ((10, 12), 1))
    assert data.train.images.shape == (2, 6, 8)
    np.testing.assert_array_equal(
        data.train.images[0],
        reader.load_image(str(tmp_path / 'a1.png'), (6, 8)))
    np.testing.assert_array_equal(data.train.images[1], _pattern(6, 8))

    data = reader.load_dataset(tmp_path, image_size=(3, 5),
                               validation_fraction=0)
    assert data.image_size == (3, 5)
    assert data.size_counts == (((6, 8), 1), ((10, 12), 1))
    assert data.train.images.shape == (2, 3, 5)

    same_area = tmp_path / 'same_area'
    _save(same_area / 'a.png', _pattern(6, 4))
    _save(same_area / 'b.png', _pattern(4, 6))
    data = reader.load_dataset(same_area, validation_fraction=0)
    assert data.image_size == (4, 6)
    assert data.size_counts == (((4, 6), 1), ((6, 4), 1))


def test_each_file_is_decoded_once(tmp_path, monkeypatch):
    for i in range(3):
        _save(tmp_path / f'{i}.png', _pattern(seed=i))
    _save(tmp_path / '3.jpg', _pattern(), exif=_orientation_exif(6))
    _save(tmp_path / '4.png', _pattern(), exif=_orientation_exif(6))
    loads = []
    load = ImageFile.ImageFile.load

    def counting_load(image):
        if image.tile:  # Pixels not decoded yet.
            loads.append(image.fp.name)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, 'load', counting_load)
    data = reader.load_dataset(tmp_path, validation_fraction=0)
    assert len(data.train.files) == 5
    assert sorted(loads) == sorted(data.train.files)


def test_unreadable_header_is_skipped_and_not_counted(tmp_path):
    _save(tmp_path / 'b.png', _pattern(4, 4))
    (tmp_path / 'a.png').write_bytes(b'\x89PNG\r\n\x1a\n not a header')
    (tmp_path / 'c.jpg').write_bytes(b'\xff\xd8\xff' + b'\x00' * 40)
    data = reader.load_dataset(tmp_path, validation_fraction=0)
    assert data.train.files == (str(tmp_path / 'b.png'),)
    assert data.size_counts == (((4, 4), 1),)
    assert [path for path, _ in data.skipped] == [str(tmp_path / 'a.png'),
                                                   str(tmp_path / 'c.jpg')]
    assert data.skipped[0][1] == 'not a recognized image format'
    assert data.skipped[1][1]


# EXIF orientation.

def _orientation_exif(orientation):
    """An Exif block holding only an orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


@pytest.mark.parametrize('orientation, turn', [
    (1, lambda p: p),
    (2, lambda p: p[:, ::-1]),
    (3, lambda p: p[::-1, ::-1]),
    (4, lambda p: p[::-1]),
    (5, lambda p: p.T),
    (6, lambda p: np.rot90(p, -1)),   # 90 degrees clockwise
    (7, lambda p: p[::-1, ::-1].T),
    (8, lambda p: np.rot90(p)),
])
def test_exif_orientation_is_applied(tmp_path, orientation, turn):
    pixels = _pattern(5, 8)
    path = _save(tmp_path / 'image.png', pixels,
                 exif=_orientation_exif(orientation))
    np.testing.assert_array_equal(reader.load_image(path), turn(pixels))
    np.testing.assert_array_equal(reader.load_image(path, channels=3),
                                  np.stack([turn(pixels)] * 3, axis=2))


@pytest.mark.parametrize('name, options', [
    ('image.webp', {'lossless': True}),
    ('image.tif', {}),
    ('image.tif', {'compression': 'tiff_deflate'}),
])
def test_exif_rotation_in_other_lossless_formats(tmp_path, name, options):
    pixels = _pattern(5, 8)
    path = _save(tmp_path / name, pixels, exif=_orientation_exif(6),
                 **options)
    np.testing.assert_array_equal(reader.load_image(path),
                                  np.rot90(pixels, -1))


def test_exif_rotation_in_jpeg(tmp_path):
    # 8x8 blocks of distinct flat intensities survive JPEG almost exactly.
    blocks = np.array([[0, 60, 120], [180, 240, 30]], np.uint8)
    pixels = np.kron(blocks, np.ones((8, 8), np.uint8))
    path = _save(tmp_path / 'photo.jpg', pixels, exif=_orientation_exif(6),
                 quality=95)
    with Image.open(path) as image:
        stored = np.asarray(image)  # Pillow leaves a JPEG as stored.
    loaded = reader.load_image(path)
    assert loaded.shape == (24, 16)
    np.testing.assert_array_equal(loaded, np.rot90(stored, -1))
    assert np.abs(loaded.astype(int) - np.rot90(pixels, -1)).max() <= 8


@pytest.mark.parametrize('name, options', [
    ('a_photo.jpg', {'quality': 95}),
    ('a_image.png', {}),
    ('a_image.webp', {'lossless': True}),
    ('a_image.tif', {}),
])
def test_rotated_image_counts_at_its_rotated_size(tmp_path, name, options):
    # Stored 16 high and 24 wide, it is 24 high and 16 wide once turned.
    photo = _save(tmp_path / name, _pattern(16, 24),
                  exif=_orientation_exif(6), **options)
    _save(tmp_path / 'b.png', _pattern(24, 16, seed=1))
    _save(tmp_path / 'c.png', _pattern(16, 24, seed=2))
    data = reader.load_dataset(tmp_path, validation_fraction=0)
    assert data.size_counts == (((24, 16), 2), ((16, 24), 1))
    assert data.image_size == (24, 16)
    assert data.train.files[0] == photo
    np.testing.assert_array_equal(data.train.images[0],
                                  reader.load_image(photo))


def test_load_folder_labels(tmp_path):
    _save(tmp_path / 'cat' / 'a.png', _pattern(seed=1))
    _save(tmp_path / 'emu' / 'b.png', _pattern(seed=2))
    _save(tmp_path / 'c.png', _pattern(seed=3))
    (tmp_path / 'd.png').write_bytes(b'junk')
    images, skipped = reader.load_folder(tmp_path, (4, 3), 4,
                                         classes=('ant', 'cat'))
    assert images.images.shape == (3, 4, 3)
    assert images.images.max() <= 3
    assert images.files == tuple(str(tmp_path / name) for name in [
        'c.png', 'cat/a.png', 'emu/b.png'])
    assert images.labels.tolist() == [-1, 1, -1]
    assert skipped == ((str(tmp_path / 'd.png'), skipped[0][1]),)
    images, _ = reader.load_folder(tmp_path, None, 256)
    assert images.labels.tolist() == [-1, -1, -1]
    assert images.images.shape == (3, 8, 6)


# Invalid files and folders.

def test_invalid_files_are_skipped(tmp_path):
    valid = _save(tmp_path / 'valid.png', _pattern())
    real = _png_bytes(_pattern(64, 64))
    broken = {
        'empty.png': b'',
        'truncated.png': real[:len(real) // 2],
        'random.jpg': np.random.default_rng(0).bytes(500),
        'text.png': b'hello, this is text',
        'bomb.png': _with_declared_size(real, 100000, 100000),
    }
    for name, content in broken.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / 'notes.txt').write_text('ignored')
    data = reader.load_dataset(tmp_path, validation_fraction=0)
    assert data.train.files == (valid,)
    reasons = dict(data.skipped)
    assert sorted(reasons) == sorted(str(tmp_path / n) for n in broken)
    assert all(reasons.values())
    assert 'empty' in reasons[str(tmp_path / 'empty.png')]
    assert 'truncated' in reasons[str(tmp_path / 'truncated.png')]
    assert '10000000000 pixels' in reasons[str(tmp_path / 'bomb.png')]


def test_all_invalid_folder_raises(tmp_path):
    for name in ['a.png', 'b.jpg']:
        (tmp_path / name).write_bytes(b'garbage')
    with pytest.raises(errors.DataError,
                       match=f'{tmp_path}: 2 image files were skipped'):
        reader.load_dataset(tmp_path)
    with pytest.raises(errors.DataError,
                       match=f'{tmp_path}: 2 image files were skipped'):
        reader.load_folder(tmp_path, None, 256)


def test_unreadable_training_folder_raises(tmp_path):
    (tmp_path / 'train').mkdir()
    (tmp_path / 'train' / 'a.png').write_bytes(b'garbage')
    _save(tmp_path / 'test' / 'b.png', _pattern())
    with pytest.raises(errors.DataError, match='no readable training image'):
        reader.load_dataset(tmp_path)


def test_bad_data_dir_raises(tmp_path):
    with pytest.raises(errors.DataError, match='does not exist'):
        reader.load_dataset(tmp_path / 'missing')
    (tmp_path / 'file.png').write_bytes(b'')
    with pytest.raises(errors.DataError, match='not a folder'):
        reader.load_dataset(tmp_path / 'file.png')
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('no images here')
    with pytest.raises(errors.DataError,
                       match=f'no image files found in {empty}'):
        reader.load_dataset(empty)
    with pytest.raises(errors.DataError, match='does not exist'):
        reader.load_folder(tmp_path / 'missing', None, 256)


def test_load_dataset_rejects_bad_arguments(tmp_path):
    _save(tmp_path / 'a.png', _pattern())
    for kwargs in [{'quantization_channels': 1},
                   {'quantization_channels': 300},
                   {'image_size': (0, 4)}, {'image_size': (4,)},
                   {'image_size': (2.5, 4)}, {'validation_fraction': 1.0},
                   {'validation_fraction': -0.1}, {'channels': 2}, {'channels': True}]:
        with pytest.raises(errors.Error, match=list(kwargs)[0]):
            reader.load_dataset(tmp_path, **kwargs)


def _mutate(content, rng):
    """Flips, truncates or inserts bytes, or replaces everything."""
    data = bytearray(content)
    kind = rng.integers(5)
    if kind == 0:
        for position in rng.integers(0, len(data), rng.integers(1, 9)):
            data[position] ^= int(rng.integers(1, 256))
    elif kind == 1:
        del data[rng.integers(0, len(data)):]
    elif kind == 2:
        position = rng.integers(0, len(data) + 1)
        data[position:position] = rng.bytes(int(rng.integers(1, 64)))
    elif kind == 3:
        data = bytearray(rng.bytes(int(rng.integers(0, 300))))
    return bytes(data)


def test_fuzzed_files_load_or_are_skipped(tmp_path):
    rng = np.random.default_rng(2024)
    originals = {}
    for extension, image_format in [('png', 'PNG'), ('jpg', 'JPEG'),
                                    ('gif', 'GIF'), ('bmp', 'BMP'),
                                    ('tif', 'TIFF'), ('webp', 'WEBP')]:
        buffer = io.BytesIO()
        Image.fromarray(_pattern(16, 16)).save(buffer, image_format)
        originals[extension] = buffer.getvalue()
    # Sorted last; the 16x16 fuzzed files outnumber other declared sizes.
    valid = _save(tmp_path / 'valid.png', _pattern(16, 16))
    paths = {valid}
    for i in range(200):
        extension = list(originals)[i % len(originals)]
        path = tmp_path / f'{i:03d}_fuzz.{extension}'
        path.write_bytes(_mutate(originals[extension], rng))
        paths.add(str(path))
    for path in sorted(paths):
        try:
            image = reader.load_image(path)
        except errors.DataError:
            continue
        assert image.dtype == np.uint8 and image.ndim == 2

    data = reader.load_dataset(tmp_path, quantization_channels=16,
                               validation_fraction=0)
    loaded = set(data.train.files)
    skipped = {path for path, _ in data.skipped}
    assert valid in loaded
    assert loaded | skipped == paths and not loaded & skipped
    assert data.train.images.dtype == np.uint8
    assert data.train.images.shape == (len(loaded),) + data.image_size
    assert data.train.images.max() < 16
    assert 0 < len(skipped) < 200


def test_fifo_and_device_named_as_images_are_skipped_without_blocking(tmp_path):
    _save(tmp_path / 'a.png', _pattern())
    os.mkfifo(tmp_path / 'fifo.png')
    os.symlink('/dev/zero', tmp_path / 'zero.png')
    with time_limit():
        data = reader.load_dataset(tmp_path, validation_fraction=0)
    assert data.train.files == (str(tmp_path / 'a.png'),)
    assert dict(data.skipped) == {str(tmp_path / 'fifo.png'): 'not a regular file',
                                  str(tmp_path / 'zero.png'): 'not a regular file'}
