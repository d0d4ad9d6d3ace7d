"""Prepared datasets: wavenet/prepared.py, reader.py reading them, datasets/prepare.py."""
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import (ROOT, assert_one_error_line, limit_file_size, run_cli,
                      run_script, snapshot, time_limit, write_png)
from datasets import prepare
from wavenet import errors, prepared, reader


def _gray_folder(root):
    """train/ and test/ split folders, classes cat and dog, a loose image (no class), an image
    of another size (resized) and an unreadable file (skipped)."""
    rng = np.random.default_rng(0)
    for split, count in (('train', 5), ('test', 2)):
        for name in ('cat', 'dog'):
            for i in range(count):
                write_png(root / split / name / ('%d.png' % i),
                      rng.integers(0, 256, (7, 5), dtype=np.uint8))
    write_png(root / 'train' / 'loose.png', rng.integers(0, 256, (7, 5), dtype=np.uint8))
    write_png(root / 'train' / 'dog' / 'big.png', rng.integers(0, 256, (14, 9), dtype=np.uint8))
    (root / 'train' / 'cat' / 'broken.png').write_bytes(b'not a png')
    return root


def _rgb_folder(root):
    """RGB images in class folders, no split folders."""
    rng = np.random.default_rng(1)
    for i in range(12):
        write_png(root / ('class%d' % (i % 3)) / ('%02d.png' % i),
              rng.integers(0, 256, (4, 6, 3), dtype=np.uint8))
    return root


def _run_prepare(*flags):
    """prepare.main in this process."""
    prepare.main([str(flag) for flag in flags])


def _assert_same(folder_set, prepared_set):
    """Two ImageSets hold the same images and labels; the prepared one is memory-mapped."""
    assert isinstance(prepared_set.images, prepared.PreparedImages)
    assert isinstance(prepared_set.images.base, np.memmap)
    assert prepared_set.images.shape == folder_set.images.shape
    assert len(prepared_set.images) == len(folder_set.images)
    assert prepared_set.images.dtype == np.uint8
    images = prepared_set.images[:]
    assert type(images) is np.ndarray and images.dtype == np.uint8
    np.testing.assert_array_equal(images, folder_set.images)
    assert prepared_set.labels.dtype == np.int32
    np.testing.assert_array_equal(prepared_set.labels, folder_set.labels)
    assert prepared_set.files == ()


@pytest.mark.parametrize('levels', [256, 16])
def test_grayscale_splits_equal_the_folder(tmp_path, levels):
    src, dst = _gray_folder(tmp_path / 'src'), tmp_path / 'dst'
    _run_prepare('--data_dir', src, '--out', dst)
    folder = reader.load_dataset(src, quantization_channels=levels)
    ready = reader.load_dataset(dst, quantization_channels=levels)
    assert folder.classes == ready.classes == ('cat', 'dog')
    assert folder.image_size == ready.image_size == (7, 5)
    assert len(folder.skipped) == 1 and ready.skipped == ()
    assert (folder.split_source, ready.split_source) == ('folders', 'prepared')
    assert ready.size_counts == (((7, 5), 12),)
    assert -1 in folder.train.labels  # the loose image
    _assert_same(folder.train, ready.train)
    _assert_same(folder.validation, ready.validation)
    assert int(ready.train.images[:].max()) <= levels - 1


def test_rgb_fraction_split_equals_the_folder(tmp_path):
    src, dst = _rgb_folder(tmp_path / 'src'), tmp_path / 'dst'
    _run_prepare('--data_dir', src, '--out', dst, '--channels', 3, '--validation_fraction',
                 0.25, '--seed', 3, '--image_size', '2x3')
    folder = reader.load_dataset(src, (2, 3), 8, validation_fraction=0.25, seed=3, channels=3)
    ready = reader.load_dataset(dst, (2, 3), 8, validation_fraction=0.5, seed=9, channels=3)
    assert ready.split_source == 'prepared'  # the held-out images are its test split
    assert len(ready.validation.labels) == 3
    assert ready.classes == folder.classes == ('class0', 'class1', 'class2')
    _assert_same(folder.train, ready.train)
    _assert_same(folder.validation, ready.validation)
    info = json.loads((dst / 'dataset.json').read_text())
    assert info['source']['validation_fraction'] == 0.25 and info['source']['seed'] == 3


def _write(out, images, labels, classes=('a', 'b'), test=(None, None)):
    """A prepared dataset of uint8 [N, H, W, C] images; test: (images, labels), or Nones."""
    with prepared.PreparedWriter(out, images.shape[1:3], images.shape[3], classes) as writer:
        for split, (split_images, split_labels) in (('train', (images, labels)),
                                                    ('test', test)):
            if split_images is not None:
                writer.append_images(split, split_images)
                writer.append_labels(split, split_labels)
        return writer.close()


def test_held_out_fraction_of_a_train_only_dataset_equals_the_folder(tmp_path):
    src = _rgb_folder(tmp_path / 'src')
    whole = reader.load_dataset(src, validation_fraction=0, channels=3)
    _write(tmp_path / 'dst', whole.train.images, whole.train.labels, whole.classes)
    folder = reader.load_dataset(src, quantization_channels=4, validation_fraction=0.25,
                                 seed=5, channels=3)
    ready = reader.load_dataset(tmp_path / 'dst', quantization_channels=4,
                                validation_fraction=0.25, seed=5, channels=3)
    assert (folder.split_source, ready.split_source) == ('fraction', 'prepared')
    assert ready.train.images.rows is not None  # an index array into the file, not a copy
    _assert_same(folder.train, ready.train)
    _assert_same(folder.validation, ready.validation)


def test_prepared_images_index_like_an_array(tmp_path):
    pixels = np.arange(6 * 2 * 3, dtype=np.uint8).reshape(6, 2, 3, 1) * 3
    _write(tmp_path / 'd', pixels, [0, 1, -1, 0, 1, 0])
    levels = reader.quantize(np.arange(256), 4)
    images, _ = prepared.load_prepared(tmp_path / 'd', 'train', levels)
    expected = reader.quantize(pixels[..., 0], 4)
    assert images.shape == (6, 2, 3) and images.ndim == 3 and len(images) == 6
    mask = np.array([True, False, False, True, True, False])
    for key in (slice(1, 5), slice(None, None, -2), np.array([4, 0, 4, 2]), [5], [-6, -1], -1,
                2, np.array([], np.int64), mask):
        np.testing.assert_array_equal(images[key], expected[key])
    for key in ([6], -7, [[0, 1]], [0.5], (0, 1)):
        with pytest.raises(IndexError):
            images[key]  # pylint: disable=pointless-statement
    subset = images.take([1, 3, 5])
    assert subset.shape == (3, 2, 3)
    np.testing.assert_array_equal(subset[[2, 0]], expected[[5, 1]])
    np.testing.assert_array_equal(np.asarray(subset), expected[[1, 3, 5]])


def test_load_folder_reads_a_split_with_the_callers_classes(tmp_path):
    src, dst = _gray_folder(tmp_path / 'src'), tmp_path / 'dst'
    _run_prepare('--data_dir', src, '--out', dst)
    folder, skipped = reader.load_folder(src / 'test', None, 32, classes=('dog', 'emu'))
    ready, ready_skipped = reader.load_folder(dst, None, 32, classes=('dog', 'emu'))
    assert skipped == ready_skipped == ()
    assert folder.labels.tolist() == [-1, -1, 0, 0]  # cat is not among the classes
    _assert_same(folder, ready)
    train, _ = reader.load_folder(dst, (7, 5), 32, split='train')
    assert len(train.labels) == 12 and set(train.labels.tolist()) == {-1}


def test_other_size_or_channels_is_refused(tmp_path):
    _write(tmp_path / 'd', np.zeros((2, 4, 5, 1), np.uint8), [0, 1])
    with pytest.raises(errors.DataError, match=r'prepared dataset of 4x5 images with 1 '
                                               r'channel, not 8x8 with 1.*use it at its own '
                                               r'size and channels, or prepare it again') as e:
        reader.load_dataset(tmp_path / 'd', image_size=(8, 8))
    assert '--' not in str(e.value)  # the package names no script flags
    with pytest.raises(errors.DataError, match='not 4x5 with 3: prepared images are not'):
        reader.load_folder(tmp_path / 'd', None, 256, channels=3, split='train')
    with pytest.raises(errors.DataError, match='has no test split'):
        reader.load_folder(tmp_path / 'd', None, 256)


def _truncate(path):
    with open(path, 'r+b') as data:
        data.truncate(os.path.getsize(path) - 3)


def _rewrite_info(path, change):
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))


def _replace_info(folder, text):
    (folder / 'dataset.json').write_text(text.replace(
        'NESTED', '[' * 200000 + ']' * 200000).replace('SIZE', '"image_size": '))


@pytest.mark.parametrize('damage, file_name, message', [
    (lambda d: _truncate(d / 'train_images.npy'), 'train_images.npy', 'cannot read'),
    (lambda d: np.save(d / 'test_images.npy', np.zeros((2, 4, 5, 1), np.float32)),
     'test_images.npy', 'holds float32'),
    (lambda d: np.save(d / 'train_labels.npy', np.zeros(2, np.int32)), 'train_labels.npy',
     'holds int32'),
    (lambda d: np.save(d / 'train_images.npy', np.zeros((2, 4, 6, 1), np.uint8)),
     'train_images.npy', r'\[2, 4, 6, 1\], expected uint8 \[N, 4, 5, 1\]'),
    (lambda d: np.save(d / 'train_labels.npy', np.zeros(2, np.int64)), 'train_images.npy',
     'holds 3 images but .* 2 labels'),
    (lambda d: np.save(d / 'train_labels.npy', np.array([0, 2, 1])), 'train_labels.npy',
     r'label 2, outside -1..1'),
    (lambda d: np.save(d / 'test_labels.npy', np.array([-2, 0])), 'test_labels.npy',
     'label -2'),
    (lambda d: _rewrite_info(d / 'dataset.json', lambda info: info.pop('channels')),
     'dataset.json', 'lacks "channels"'),
    (lambda d: _rewrite_info(d / 'dataset.json', lambda info: info.update(channels=True)),
     'dataset.json', 'channels must be 1 or 3, got True'),
    (lambda d: _rewrite_info(d / 'dataset.json', lambda info: info.update(classes='012')),
     'dataset.json', "classes must be a list of distinct names, got '012'"),
    (lambda d: _rewrite_info(d / 'dataset.json', lambda info: info.update(classes=['a', 'a'])),
     'dataset.json', 'classes must be a list of distinct names'),
    (lambda d: _rewrite_info(d / 'dataset.json', lambda info: info['splits'].update(train=4)),
     'train_images.npy', r'dataset.json says 4'),
    (lambda d: _rewrite_info(d / 'dataset.json', lambda info: info['splits'].update(train=3.0)),
     'dataset.json', 'splits must be'),
    (lambda d: _rewrite_info(d / 'dataset.json', lambda info: info.update(complete=False)),
     'dataset.json', 'unfinished'),
    (lambda d: _rewrite_info(d / 'dataset.json', lambda info: info.update(image_size=[28.9, 28])),
     'dataset.json', r'image_size must be \[height, width\] with positive integers, got \[28.9'),
    (lambda d: _replace_info(d, '{SIZE[Infinity, 5], "channels": 1, "classes": []}'),
     'dataset.json', 'not valid JSON'),
    (lambda d: _replace_info(d, '{SIZE[4, 1e999], "channels": 1, "classes": []}'),
     'dataset.json', 'not valid JSON'),
    (lambda d: _replace_info(d, '{SIZE NESTED, "channels": 1, "classes": []}'),
     'dataset.json', 'nested too deeply'),
    (lambda d: _replace_info(d, '{"image_size": '), 'dataset.json', 'not valid JSON'),
    (lambda d: (os.remove(d / 'dataset.json'), os.mkfifo(d / 'dataset.json')), 'dataset.json',
     'not a regular file'),
    (lambda d: (os.remove(d / 'dataset.json'), os.symlink('/dev/zero', d / 'dataset.json')),
     'dataset.json', 'not a regular file'),
    (lambda d: (os.remove(d / 'train_images.npy'), os.mkfifo(d / 'train_images.npy')),
     'train_images.npy', 'not a regular file'),
    (lambda d: (os.remove(d / 'test_labels.npy'), os.symlink('/dev/zero', d / 'test_labels.npy')),
     'test_labels.npy', 'not a regular file'),
    (lambda d: os.remove(d / 'test_labels.npy'), 'test_labels.npy', 'is missing'),
    (lambda d: np.save(d / 'train_labels.npy', np.array([0, 1, None]), allow_pickle=True),
     'train_labels.npy', 'cannot read'),
])
def test_damaged_files_are_refused_naming_the_file(tmp_path, damage, file_name, message):
    """Each damaged or hostile file (a FIFO, /dev/zero, deep or non-finite JSON, values of the
    wrong type) is one DataError naming it, within a time limit: nothing hangs."""
    folder = tmp_path / 'd'
    _write(folder, np.zeros((3, 4, 5, 1), np.uint8), [0, 1, -1],
           test=(np.zeros((2, 4, 5, 1), np.uint8), [1, 1]))
    reader.load_dataset(folder)  # intact: loads
    damage(folder)
    with time_limit(), pytest.raises(errors.DataError) as error:
        reader.load_dataset(folder)
    text = str(error.value)
    assert str(folder / file_name) in text and 'prepare it again' in text, text
    assert '\n' not in text
    assert re.search(message, text), text


def test_large_labels_are_checked_a_chunk_at_a_time(tmp_path, monkeypatch):
    labels = np.zeros(10, np.int64)
    labels[7] = 5
    _write(tmp_path / 'd', np.zeros((10, 1, 1, 1), np.uint8), np.zeros(10, np.int64))
    np.save(tmp_path / 'd' / 'train_labels.npy', labels)
    monkeypatch.setattr(prepared, '_CHECK_ROWS', 3)
    with pytest.raises(errors.DataError, match='label 5'):
        prepared.load_prepared(tmp_path / 'd', 'train')


def test_writer_streams_chunks_and_leaves_the_old_dataset_on_failure(tmp_path):
    out = tmp_path / 'd'
    old = np.full((2, 3, 3, 3), 7, np.uint8)
    assert _write(out, old, [0, 1], test=(old[:1], [1])) == {'train': 2, 'test': 1}
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    with pytest.raises(RuntimeError):
        with prepared.PreparedWriter(out, (3, 3), 3, ('a',)) as writer:
            writer.append_images('train', np.zeros((4, 3, 3, 3), np.uint8))
            raise RuntimeError('interrupted')
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    with prepared.PreparedWriter(out, (3, 3), 3, ('a',)) as writer:
        for start in range(0, 5, 2):  # three chunks, no test split this time
            writer.append_images('train', np.full((min(2, 5 - start), 3, 3, 3), start,
                                                  np.uint8))
        writer.append_labels('train', [0, -1, 0, 0, -1])
        with pytest.raises(ValueError, match='labels must lie in -1..0'):
            writer.append_labels('train', [1])
        assert writer.close() == {'train': 5}
    assert sorted(os.listdir(out)) == ['dataset.json', 'train_images.npy', 'train_labels.npy']
    images, labels = prepared.load_prepared(out, 'train')
    assert images[:].reshape(5, -1)[:, 0].tolist() == [0, 0, 2, 2, 4]
    assert labels.tolist() == [0, -1, 0, 0, -1]


def test_prepare_in_chunks_equals_one_chunk(tmp_path, monkeypatch):
    src = _gray_folder(tmp_path / 'src')
    _run_prepare('--data_dir', src, '--out', tmp_path / 'one')
    monkeypatch.setattr(prepare, 'CHUNK_IMAGES', 2)
    _run_prepare('--data_dir', src, '--out', tmp_path / 'many')
    for name in prepared.FILE_NAMES[1:]:
        assert (tmp_path / 'one' / name).read_bytes() == (tmp_path / 'many' / name).read_bytes()


def _prepare(capsys, *flags):
    """python -m datasets.prepare FLAGS, in this process: a Result."""
    return run_cli(lambda: prepare.main([str(flag) for flag in flags]), capsys)


def test_command_line(tmp_path, capsys):
    src, dst = _gray_folder(tmp_path / 'src'), tmp_path / 'dst'
    (src / 'train' / 'evil\nname.png').write_bytes(b'not a png either')
    result = _prepare(capsys, '--data_dir=%s' % src, '--out=%s' % dst)
    assert result.returncode == 0, result.stderr
    assert 'wrote %s: 12 training images and 4 test images, 7x5 grayscale, 2 classes' % dst \
        in result.stdout
    lines = result.stderr.splitlines()  # the progress line and one line a skipped file
    assert len(lines) == 3 and lines[1:] == [
        'warning: skipped %s: not a recognized image format' % path
        for path in (src / 'train' / 'cat' / 'broken.png', str(src / 'train' / 'evil\\nname.png'))]
    assert sorted(os.listdir(dst)) == sorted(prepared.FILE_NAMES)

    assert_one_error_line(_prepare(capsys, '--data_dir=%s' % src, '--out=%s' % dst),
                          'add --overwrite to replace it')
    (dst / 'notes.txt').write_text('mine')
    result = _prepare(capsys, '--data_dir=%s' % src, '--out=%s' % dst, '--overwrite',
                      '--channels=3')
    assert result.returncode == 0, result.stderr
    assert prepared.read_info(dst).channels == 3 and (dst / 'notes.txt').read_text() == 'mine'

    foreign = tmp_path / 'foreign'
    (foreign / 'mine').mkdir(parents=True)
    (foreign / 'mine' / 'photo.png').write_bytes(b'precious')
    theirs = tmp_path / 'theirs'  # a prepared dataset these scripts did not write
    _write(theirs, np.zeros((2, 7, 5, 1), np.uint8), [0, 1])
    fifo = tmp_path / 'fifo'
    fifo.mkdir()
    os.mkfifo(fifo / 'dataset.json')
    for out in (foreign, theirs, fifo):
        before = sorted(os.listdir(out)), (snapshot(out) if out != fifo else None)
        for flags in ([], ['--overwrite']):
            with time_limit():
                result = _prepare(capsys, '--data_dir=%s' % src, '--out=%s' % out, *flags)
            assert_one_error_line(result, '%s is not a prepared dataset these scripts wrote' % out)
        assert (sorted(os.listdir(out)), snapshot(out) if out != fifo else None) == before

    for flags, text in ((['--data_dir=%s' % dst, '--out=%s' % (tmp_path / 'x')], 'already a'),
                        (['--data_dir=%s' % src, '--out=%s' % (tmp_path / 'z'), '--channels=2'],
                         'invalid choice')):
        assert_one_error_line(_prepare(capsys, *flags), text)
    result = run_script('-m', 'datasets.prepare', '--data_dir=%s' % (tmp_path / 'none'),
                        '--out=%s' % (tmp_path / 'y'))
    assert result.stderr.count('\n') == 1 and assert_one_error_line(result, 'does not exist')


def test_check_output_is_the_one_rule(tmp_path, capsys):
    """Whose folder it is, for prepare.py and download.py alike."""
    assert prepared.check_output(tmp_path / 'missing') is None
    (tmp_path / 'empty').mkdir()
    assert prepared.check_output(tmp_path / 'empty') is None
    src, dst = _gray_folder(tmp_path / 'src'), tmp_path / 'dst'
    assert _prepare(capsys, '--data_dir=%s' % src, '--out=%s' % dst)[0] == 0
    source, complete = prepared.check_output(dst)
    assert source['written_by'] == 'datasets/prepare.py' and complete
    _rewrite_info(dst / 'dataset.json', lambda info: info.update(complete=False))
    assert prepared.check_output(dst)[1] is False
    (tmp_path / 'file').write_text('x')
    with pytest.raises(errors.DataError, match='is not a folder'):
        prepared.check_output(tmp_path / 'file')
    from datasets import download  # pylint: disable=import-outside-toplevel
    _rewrite_info(dst / 'dataset.json', lambda info: info.update(complete=True))
    with pytest.raises(errors.Error, match='already holds a dataset from datasets/prepare.py'):
        download.download_dataset(download.DATASETS['mnist'], dst, ['http://127.0.0.1:9/'])


def _gray_images(root, count, side):
    rng = np.random.default_rng(2)
    for index in range(count):
        write_png(root / ('%02d.png' % index), rng.integers(0, 256, (side, side), np.uint8))
    return root


def test_a_full_disk_leaves_no_temporary_and_the_next_run_works(tmp_path, capsys):
    src, dst = _gray_images(tmp_path / 'src', 30, 16), tmp_path / 'dst'
    # Files of the process cannot grow past 2,000 bytes (EFBIG), as on a full disk:
    # dataset.json fits, 27 training images of 16x16 do not.
    result = run_script('-m', 'datasets.prepare', '--data_dir=%s' % src, '--out=%s' % dst,
                        preexec_fn=limit_file_size(2000))
    assert_one_error_line(result, 'cannot write --out=%s' % dst, 'File too large')
    assert os.listdir(dst) == ['dataset.json']  # marked unfinished, no temporary left
    result = _prepare(capsys, '--data_dir=%s' % src, '--out=%s' % dst)
    assert result.returncode == 0, result.stderr
    assert len(reader.load_dataset(dst).train.labels) == 27


STOP_AFTER_THE_FIRST_CHUNK = """
import sys, time
from datasets import prepare
from wavenet import cli, prepared
append = prepared.PreparedWriter.append_images
def append_and_wait(writer, split, images):
    append(writer, split, images)
    print('appended', flush=True)
    time.sleep(60)
prepared.PreparedWriter.append_images = append_and_wait
cli.run_main(lambda: prepare.main(sys.argv[1:]))
"""


def test_sigterm_while_writing_removes_the_temporaries(tmp_path, capsys):
    """SIGTERM once the first chunk is in a temporary file: the temporaries go, and the
    dataset that was there stays whole."""
    src, dst = _gray_folder(tmp_path / 'src'), tmp_path / 'dst'
    assert _prepare(capsys, '--data_dir=%s' % src, '--out=%s' % dst)[0] == 0
    before = {name: (dst / name).read_bytes() for name in os.listdir(dst)}
    process = subprocess.Popen(
        [sys.executable, '-c', STOP_AFTER_THE_FIRST_CHUNK, '--data_dir=%s' % src,
         '--out=%s' % dst, '--overwrite', '--channels=3'], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with time_limit(60):
            assert process.stdout.readline() == 'appended\n', process.stderr.read()
        assert [name for name in os.listdir(dst) if name.startswith('.train_images.npy.tmp-')]
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 128 + signal.SIGTERM and 'interrupted (SIGTERM)' in stderr
    assert {name: (dst / name).read_bytes() for name in os.listdir(dst)} == before


def test_an_empty_split_of_a_colour_dataset(tmp_path, capsys):
    """--validation_fraction=0 on a folder without split folders: an empty test split, which
    trains without validation and cannot be evaluated on."""
    src, dst = tmp_path / 'src', tmp_path / 'dst'
    src.mkdir()
    for index in range(3):
        Image.fromarray(np.full((4, 5, 3), 40 * index, np.uint8), 'RGB').save(
            src / ('%d.png' % index))
    assert _prepare(capsys, '--data_dir', src, '--out', dst, '--channels=3',
                    '--validation_fraction=0')[0] == 0
    dataset = reader.load_dataset(dst, channels=3)
    assert dataset.train.images.shape == (3, 4, 5, 3) and len(dataset.validation.images) == 0
    with pytest.raises(errors.DataError, match='the test split of the prepared dataset %s holds '
                                               'no image' % re.escape(str(dst))):
        reader.load_folder(dst, None, 256, channels=3)
