"""datasets/download.py, offline: small fake archives in the official formats, served by a
local HTTP server on 127.0.0.1 (nothing here reaches the internet)."""
import functools
import gzip
import hashlib
import http.server
import io
import json
import os
import socket
import struct
import tarfile
import threading
import time

import numpy as np
import pytest

from conftest import assert_one_error_line, run_cli, run_script, snapshot, time_limit
from datasets import download
from wavenet import errors, prepared


# ----------------------------------------------------------------------------- fake files

def idx_images(images):
    """IDX image bytes: magic 2051, N, rows, columns (big-endian int32), then the pixels."""
    images = np.asarray(images, dtype=np.uint8)
    return struct.pack('>4i', 2051, *images.shape) + images.tobytes()


def idx_labels(labels):
    """IDX label bytes: magic 2049, N (big-endian int32), then the labels."""
    labels = np.asarray(labels, dtype=np.uint8)
    return struct.pack('>2i', 2049, len(labels)) + labels.tobytes()


def cifar_records(images, labels):
    """CIFAR-10 binary records: label byte, then the R, G and B planes of each image."""
    return b''.join(bytes([label]) + np.asarray(image, np.uint8).transpose(2, 0, 1).tobytes()
                    for image, label in zip(images, labels))


def md5(data):
    return hashlib.md5(data).hexdigest()


def make_mnist_files(folder, seed=0, num_train=13, num_test=6):
    """Writes the four gzipped IDX files; returns ({split: (images, labels)}, {name: md5})."""
    rng = np.random.default_rng(seed)
    splits = {}
    checksums = {}
    for split, count, prefix in (('train', num_train, 'train'), ('test', num_test, 't10k')):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = np.arange(count, dtype=np.uint8) % 10
        rng.shuffle(labels)
        splits[split] = (images, labels)
        for kind, data in (('images-idx3', idx_images(images)),
                           ('labels-idx1', idx_labels(labels))):
            name = '%s-%s-ubyte.gz' % (prefix, kind)
            payload = gzip.compress(data, mtime=0)
            with open(os.path.join(folder, name), 'wb') as out:
                out.write(payload)
            checksums[name] = md5(payload)
    return splits, checksums


def make_cifar_archive(folder, seed=1, per_batch=2, num_test=3, extra_members=()):
    """Writes cifar-10-binary.tar.gz; returns ({split: (images, labels)}, {name: md5})."""
    rng = np.random.default_rng(seed)
    members = []
    splits = {}
    for split, names, count in (
            ('train', ['data_batch_%d.bin' % i for i in range(1, 6)], per_batch),
            ('test', ['test_batch.bin'], num_test)):
        all_images, all_labels = [], []
        for name in names:
            images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
            labels = rng.integers(0, 10, size=count).astype(np.uint8)
            members.append(('cifar-10-batches-bin/' + name, cifar_records(images, labels)))
            all_images.append(images)
            all_labels.append(labels)
        splits[split] = (np.concatenate(all_images), np.concatenate(all_labels))
    members.append(('cifar-10-batches-bin/batches.meta.txt', b'airplane\nautomobile\n'))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w:gz') as archive:
        for name, data in list(members) + list(extra_members):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    payload = buffer.getvalue()
    with open(os.path.join(folder, 'cifar-10-binary.tar.gz'), 'wb') as out:
        out.write(payload)
    return splits, {'cifar-10-binary.tar.gz': md5(payload)}


def check_dataset(out_dir, splits, dataset='mnist'):
    """The prepared dataset holds exactly the expected pixels, labels, classes and source."""
    info = prepared.read_info(out_dir)
    shape = download.DATASETS[dataset].image_shape
    size, channels = shape[:2], (shape + (1,))[2]
    assert (info.image_size, info.channels) == (size, channels)
    assert info.classes == download.DATASETS[dataset].classes
    assert info.source['dataset'] == dataset
    assert info.source['written_by'] == 'datasets/download.py'
    for split, (images, labels) in splits.items():
        images_name, labels_name = prepared.ARRAY_FILES[split]
        stored = np.load(os.path.join(out_dir, images_name), allow_pickle=False)
        assert stored.dtype == np.uint8 and stored.shape == (len(images),) + size + (channels,)
        np.testing.assert_array_equal(stored.reshape(images.shape), images)
        stored_labels = np.load(os.path.join(out_dir, labels_name), allow_pickle=False)
        assert stored_labels.dtype == np.int64
        np.testing.assert_array_equal(stored_labels, labels)
        assert info.counts[split] == len(labels)
    assert not [name for name in os.listdir(out_dir) if '.tmp-' in name]


# ------------------------------------------------------------------------ local server

class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; answers Range requests with 206 unless the server ignores ranges.

    A path in `server.custom` is answered by that function of the handler instead.
    """

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get('Range')))
        if self.path in self.server.custom:
            try:
                self.server.custom[self.path](self)
            except OSError:  # the client hung up, as it should on a bad answer
                pass
            return
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, 'rb') as served:
            data = served.read()
        first = 0
        match = self.headers.get('Range')
        if match and self.server.ranges:
            first = int(match.split('=')[1].split('-')[0])
            if first >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header('Content-Range', 'bytes %d-%d/%d' % (first, len(data) - 1,
                                                                   len(data)))
        else:
            self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(data) - first))
        self.end_headers()
        self.wfile.write(data[first:])


@pytest.fixture
def serve(tmp_path):
    """Starts servers of folders on 127.0.0.1; returns (base URL, server); stops them after."""
    servers = []

    def start(folder, ranges=True):
        server = http.server.ThreadingHTTPServer(
            ('127.0.0.1', 0), functools.partial(Handler, directory=str(folder)))
        server.requests = []
        server.ranges = ranges
        server.custom = {}
        thread = threading.Thread(target=server.serve_forever, daemon=True,
                                  kwargs={'poll_interval': 0.05})  # quick shutdown
        thread.start()
        servers.append((server, thread))
        return 'http://127.0.0.1:%d/' % server.server_address[1], server

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    return 'http://127.0.0.1:%d/' % port


def interrupted_download(out):
    """`out` as a download interrupted before converting leaves it: dataset.json marked
    unfinished and the archives' folder."""
    with prepared.PreparedWriter(out, (28, 28), 1, (), {'written_by': 'datasets/download.py',
                                                        'dataset': 'mnist'}):
        (out / '.downloads').mkdir()


def run(argv, md5s, capsys):
    """python -m datasets.download ARGV, in this process: a conftest.Result."""
    return run_cli(lambda: download.main(argv, md5s=md5s), capsys)


@pytest.fixture
def mnist_server(tmp_path, serve):
    """Fake MNIST files served locally: (base URL, server, splits, md5s)."""
    files = tmp_path / 'served'
    files.mkdir()
    splits, checksums = make_mnist_files(str(files))
    url, server = serve(files)
    return url, server, splits, checksums


# ---------------------------------------------------------------------------- parsing

def test_read_idx_round_trip_and_validation():
    images = np.arange(2 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(2, 28, 28)
    np.testing.assert_array_equal(download.read_idx(idx_images(images), download.IDX_IMAGES),
                                  images)
    np.testing.assert_array_equal(download.read_idx(idx_labels([3, 7]), download.IDX_LABELS),
                                  [3, 7])
    for data, kind, message in (
            (idx_labels([3, 7]), download.IDX_IMAGES, 'magic number is 2049, expected 2051'),
            (idx_images(images)[:-1], download.IDX_IMAGES, 'should have'),
            (idx_labels([1, 2]) + b'\0', download.IDX_LABELS, 'should have'),
            (b'\0\0\x08', download.IDX_LABELS, 'too short')):
        with pytest.raises(errors.DataError, match=message):
            download.read_idx(data, kind)


def test_read_cifar_binary_channel_order():
    image = np.zeros((32, 32, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30  # R, G, B
    image[0, 1] = (200, 100, 50)
    record = bytes([7]) + bytes([10] * 1024) + bytes([20] * 1024) + bytes([30] * 1024)
    record = bytearray(record)
    record[1 + 1], record[1 + 1024 + 1], record[1 + 2048 + 1] = 200, 100, 50
    images, labels = download.read_cifar_binary(bytes(record))
    assert images.shape == (1, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[0], image)
    np.testing.assert_array_equal(labels, [7])
    with pytest.raises(errors.DataError, match='whole number'):
        download.read_cifar_binary(bytes(record)[:-1])


# ------------------------------------------------------------------------- full runs

def test_mnist_full_run(tmp_path, mnist_server, capsys):
    url, server, splits, checksums = mnist_server
    out = tmp_path / 'mnist'
    status, stdout, stderr = run(['mnist', '--out=%s' % out, '--base_url=%s' % url],
                                 checksums, capsys)
    assert status == 0, stderr
    check_dataset(out, splits)
    assert sorted(os.listdir(out / '.downloads')) == sorted(checksums)
    assert len(server.requests) == 4 and all(r is None for _, r in server.requests)
    assert 'converting mnist: 19 images' in stderr  # plain final progress line (not a tty)
    assert 'downloading train-images-idx3-ubyte.gz:' in stderr


def test_cifar10_full_run_rgb_order_and_safe_tar(tmp_path, serve, capsys):
    files = tmp_path / 'served'
    files.mkdir()
    evil = [('../escaped.bin', b'x' * 10), ('/tmp/absolute-escape.bin', b'y')]
    splits, checksums = make_cifar_archive(str(files), extra_members=evil)
    url, _ = serve(files)
    out = tmp_path / 'work' / 'cifar'
    status, _, stderr = run(['cifar10', '--out=%s' % out, '--base_url=%s' % url],
                            checksums, capsys)
    assert status == 0, stderr
    check_dataset(out, splits, 'cifar10')
    assert prepared.read_info(out).classes == ('airplane', 'automobile', 'bird', 'cat', 'deer',
                                               'dog', 'frog', 'horse', 'ship', 'truck')
    assert len(splits['train'][1]) == 10 and len(splits['test'][1]) == 3
    assert not (tmp_path / 'work' / 'escaped.bin').exists()
    assert not (out / 'escaped.bin').exists()
    assert sorted(os.listdir(out)) == ['.downloads', 'dataset.json', 'test_images.npy',
                                       'test_labels.npy', 'train_images.npy', 'train_labels.npy']
    archive = 'cifar-10-binary.tar.gz'
    assert info_source(out)['archives'] == [{'name': archive, 'md5': checksums[archive],
                                             'bytes': os.path.getsize(files / archive)}]
    assert info_source(out)['mirrors'] == [url]


def test_cifar_member_that_is_not_a_file_is_refused(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w:gz') as archive:
        info = tarfile.TarInfo('cifar-10-batches-bin/test_batch.bin')
        info.type = tarfile.SYMTYPE
        info.linkname = '/etc/passwd'
        archive.addfile(info)
    path = tmp_path / 'cifar-10-binary.tar.gz'
    path.write_bytes(buffer.getvalue())
    with pytest.raises(errors.DataError, match='not a regular file'):
        download.read_cifar_archive(str(path))


# ------------------------------------------------------------------- download behaviour

@pytest.mark.parametrize('name, part, ranges, again', [
    ('train-images-idx3-ubyte.gz', 'half', True, False),  # resumed with a Range request
    ('t10k-labels-idx1-ubyte.gz', b'garbage that is not the start', False, False),  # 200: anew
    ('train-images-idx3-ubyte.gz', b'not the start of the file', True, True),  # bad MD5: anew
], ids=['resumed', 'server without ranges', 'resumed wrong'])
def test_a_part_file_is_resumed_or_downloaded_again(tmp_path, mnist_server, capsys, name, part,
                                                    ranges, again):
    url, server, splits, checksums = mnist_server
    server.ranges = ranges
    data = (tmp_path / 'served' / name).read_bytes()
    part = data[:len(data) // 2] if part == 'half' else part
    out = tmp_path / 'mnist'
    interrupted_download(out)
    (out / '.downloads' / (name + '.part')).write_bytes(part)
    result = run(['mnist', '--out=%s' % out, '--base_url=%s' % url], checksums, capsys)
    assert result.returncode == 0, result.stderr
    asked = [first_byte for path, first_byte in server.requests if path == '/' + name]
    assert asked == ['bytes=%d-' % len(part)] + ([None] if again else [])
    assert ('from the start' in result.stdout) == again
    assert (out / '.downloads' / name).read_bytes() == data
    assert not (out / '.downloads' / (name + '.part')).exists()
    check_dataset(out, splits)


def test_checksum_mismatch(tmp_path, mnist_server, capsys):
    url, _, _, checksums = mnist_server
    name = 'train-labels-idx1-ubyte.gz'
    wrong = dict(checksums, **{name: '0' * 32})
    out = tmp_path / 'mnist'
    assert_one_error_line(run(['mnist', '--out=%s' % out, '--base_url=%s' % url], wrong, capsys),
                          name, '0' * 32, checksums[name])
    assert not (out / '.downloads' / name).exists()
    assert not (out / '.downloads' / (name + '.part')).exists()
    assert sorted(os.listdir(out)) == ['.downloads', 'dataset.json']  # marked unfinished
    with pytest.raises(errors.DataError, match='unfinished'):
        prepared.read_info(out)


def test_mirrors_tried_in_order(tmp_path, mnist_server, capsys):
    url, _, splits, checksums = mnist_server
    out = tmp_path / 'mnist'
    status, stdout, stderr = run(['mnist', '--out=%s' % out, '--base_url=%s' % closed_port_url(),
                                  '--base_url=%s' % url], checksums, capsys)
    assert status == 0, stderr
    assert 'failed:' in stdout
    check_dataset(out, splits)


def test_missing_file_on_server_is_an_error(tmp_path, serve, capsys):
    files = tmp_path / 'served'
    files.mkdir()
    url, _ = serve(files)
    result = run(['cifar10', '--out=%s' % (tmp_path / 'c'), '--base_url=%s' % url], None, capsys)
    assert assert_one_error_line(result, '404').startswith(
        'error: could not download cifar-10-binary')


def test_unreachable_url(tmp_path, capsys):
    out = tmp_path / 'mnist'
    result = run(['mnist', '--out=%s' % out, '--base_url=%s' % closed_port_url(), '--timeout=5'],
                 None, capsys)
    assert result.stderr.count('\n') == 1
    assert assert_one_error_line(result).startswith('error: could not download ')
    with pytest.raises(errors.DataError, match='unfinished'):  # never a complete dataset
        prepared.read_info(out)


# ------------------------------------------------------------------ output folder states

def mark_unfinished(out):
    """dataset.json as PreparedWriter.close() leaves it while it renames the arrays."""
    info = json.loads((out / 'dataset.json').read_text())
    (out / 'dataset.json').write_text(json.dumps({'format': info['format'], 'complete': False,
                                                  'source': info['source']}))


def interrupted_while_renaming(out):
    """dataset.json marked unfinished, the test images still a half-written temporary, the
    training images damaged."""
    mark_unfinished(out)
    os.rename(out / 'test_images.npy', out / '.test_images.npy.tmp-123-abcd')
    with open(out / '.test_images.npy.tmp-123-abcd', 'r+b') as half:
        half.truncate(200)
    (out / 'train_images.npy').write_bytes(b'damaged')


def truncate_test_images(out):
    with open(out / 'test_images.npy', 'r+b') as array:
        array.truncate(os.path.getsize(out / 'test_images.npy') - 1)


@pytest.mark.parametrize('damage, said', [
    (None, 'already there'),
    (interrupted_while_renaming, 'unfinished dataset'),
    (truncate_test_images, 'is damaged (cannot read %s'),
], ids=['complete', 'unfinished', 'damaged array'])
def test_a_second_run_converts_again_what_is_not_whole(tmp_path, mnist_server, capsys, damage,
                                                       said):
    """From the verified archives, without downloading them again; a complete, valid dataset
    is left as it is."""
    url, server, splits, checksums = mnist_server
    out = tmp_path / 'mnist'
    argv = ['mnist', '--out=%s' % out, '--base_url=%s' % url]
    assert run(argv, checksums, capsys).returncode == 0
    requests = len(server.requests)
    if damage:
        damage(out)
    before = snapshot(out)
    result = run(argv, checksums, capsys)
    assert result.returncode == 0, result.stderr
    assert (said % (out / 'test_images.npy') if '%' in said else said) in result.stdout
    assert len(server.requests) == requests
    assert (snapshot(out) == before) == (damage is None)
    check_dataset(out, splits)


def test_another_complete_dataset_is_refused(tmp_path, mnist_server, capsys):
    url, server, splits, checksums = mnist_server
    out = tmp_path / 'data'
    assert run(['mnist', '--out=%s' % out, '--base_url=%s' % url], checksums, capsys)[0] == 0
    requests = len(server.requests)
    assert_one_error_line(run(['fashion_mnist', '--out=%s' % out, '--base_url=%s' % url],
                              checksums, capsys), 'already holds the mnist dataset')
    assert len(server.requests) == requests
    check_dataset(out, splits)


def test_bad_out_and_unknown_dataset(tmp_path, capsys):
    a_file = tmp_path / 'file'
    a_file.write_text('x')
    for argv, part in ((['mnist', '--out=%s' % a_file], 'is not a folder'),
                       (['mnist', '--out=%s' % (a_file / 'sub')], 'Not a directory'),
                       (['svhn', '--out=%s' % tmp_path], 'svhn'),
                       (['mnist', '--out=x', '--base_url=ftp://example.invalid/'], 'ftp://'),
                       (['mnist', '--out='], '--out is empty')):
        result = run(argv, None, capsys)
        assert result.stderr.count('\n') == 1 and assert_one_error_line(result, part)


def test_command_line(tmp_path):
    """As `python -m datasets.download` from the repository root: --help, one error line."""
    help_text = run_script('-m', 'datasets.download', '--help').stdout
    assert 'https://ossci-datasets.s3.amazonaws.com/mnist/' in help_text.replace('\n', '').replace(
        ' ', '')
    result = run_script('-m', 'datasets.download', 'mnist', '--out=%s' % (tmp_path / 'm'),
                        '--base_url=%s' % closed_port_url())
    assert result.stderr.count('\n') == 1
    assert assert_one_error_line(result).startswith('error: could not ')


# -------------------------------------------------------------------- faults (issue 16)

def answer(data, length=True, pause=0.0):
    """A custom server answer: status 200 and `data`.

    Args:
        data: the body.
        length: True sends the true Content-Length, None none (the body ends when the
            connection closes), a number sends that number.
        pause: seconds to wait after each byte (a server that trickles).
    """
    def respond(handler):
        handler.send_response(200)
        if length is not None:
            handler.send_header('Content-Length', str(len(data) if length is True else length))
        handler.end_headers()
        if not pause:
            handler.wfile.write(data)
            return
        for index in range(len(data)):
            handler.wfile.write(data[index:index + 1])
            handler.wfile.flush()
            time.sleep(pause)
    return respond


def served_copy(tmp_path, name, source, corrupt=()):
    """Copies the served folder `source` to tmp_path/name, inverting the bytes of `corrupt`."""
    folder = tmp_path / name
    folder.mkdir()
    for entry in os.listdir(source):
        data = (source / entry).read_bytes()
        if entry in corrupt:
            data = bytes(255 - byte for byte in data)
        (folder / entry).write_bytes(data)
    return folder


def top_files(out):
    """{name: bytes} of every file directly in out (not in .downloads/)."""
    return {name: (out / name).read_bytes() for name in os.listdir(out)
            if (out / name).is_file()}


def info_source(out):
    """The "source" of out/dataset.json."""
    return json.loads((out / 'dataset.json').read_text())['source']


def user_prepared_dataset(out):
    """A prepared dataset written without a "source" naming these scripts."""
    with prepared.PreparedWriter(out, (2, 2), 1, ('a',), {'dataset': 'mnist'}) as writer:
        writer.append_images('train', np.zeros((1, 2, 2), np.uint8))
        writer.append_labels('train', [0])
        writer.close()


def FIFO(out):  # pylint: disable=invalid-name
    os.mkfifo(out / 'dataset.json')


@pytest.mark.parametrize('make', [
    lambda out: (out / 'train_images.npy').write_bytes(b'my own array'),
    lambda out: (out / '.test_images.npy.tmp-1-abcd').write_bytes(b'mine too'),
    lambda out: ((out / 'train' / '3').mkdir(parents=True),  # an older version's PNG folders
                 (out / 'train' / '3' / '00000.png').write_bytes(b'precious'),
                 (out / '.download-manifest.json').write_text('{"splits": {}}')),
    user_prepared_dataset,
    lambda out: (user_prepared_dataset(out), (out / 'dataset.json').write_bytes(b'')),
    lambda out: (out / 'dataset.json').write_bytes(b'{"source": {"written_by": "dat'),
    lambda out: (out / 'dataset.json').write_bytes(b'\xff\xfe'),
    lambda out: (out / 'dataset.json').write_text('[]'),
    lambda out: (out / 'dataset.json').write_text('{"source": {"written_by": "me"}}'),
    FIFO,
], ids=['array', 'temporary', 'old PNG folders', 'prepared', 'empty json', 'truncated json',
        'not utf-8', 'json list', 'other writer', 'fifo'])
def test_a_folder_these_scripts_did_not_write_is_refused_untouched(tmp_path, mnist_server,
                                                                   capsys, make):
    url, server, _, checksums = mnist_server
    out = tmp_path / 'mine'
    out.mkdir()
    make(out)
    before = sorted(os.listdir(out)), (None if make is FIFO else snapshot(out))
    with time_limit():
        result = run(['mnist', '--out=%s' % out, '--base_url=%s' % url], checksums, capsys)
    assert_one_error_line(result, '%s is not a prepared dataset these scripts wrote' % out)
    assert server.requests == []  # refused before downloading anything
    assert (sorted(os.listdir(out)), None if make is FIFO else snapshot(out)) == before


@pytest.mark.parametrize('fault', ['unreachable', 'bad data'])
def test_old_files_are_kept_until_new_data_is_verified(tmp_path, mnist_server, serve, capsys,
                                                       fault):
    url, _, _, checksums = mnist_server
    out = tmp_path / 'mnist'
    assert run(['mnist', '--out=%s' % out, '--base_url=%s' % url], checksums, capsys)[0] == 0
    mark_unfinished(out)  # replaced only by verified new data
    (out / 'notes.txt').write_text('mine')
    ours = top_files(out)
    name = 't10k-labels-idx1-ubyte.gz'
    (out / '.downloads' / name).unlink()
    if fault == 'unreachable':
        mirror = closed_port_url()
    else:  # the right checksum (for this test), but not an IDX file: conversion fails
        bad = served_copy(tmp_path, 'bad', tmp_path / 'served')
        (bad / name).write_bytes(gzip.compress(b'not an idx file', mtime=0))
        checksums = dict(checksums, **{name: md5((bad / name).read_bytes())})
        mirror = serve(bad)[0]
    assert_one_error_line(run(['mnist', '--out=%s' % out, '--base_url=%s' % mirror], checksums,
                              capsys))
    assert top_files(out) == ours


def test_checksum_mismatch_on_one_mirror_tries_the_next(tmp_path, mnist_server, serve, capsys):
    url, server, splits, checksums = mnist_server
    name = 't10k-images-idx3-ubyte.gz'
    bad_url, bad_server = serve(served_copy(tmp_path, 'bad', tmp_path / 'served', [name]))
    out = tmp_path / 'mnist'
    status, stdout, stderr = run(['mnist', '--out=%s' % out, '--base_url=%s' % bad_url,
                                  '--base_url=%s' % url], checksums, capsys)
    assert status == 0, stderr
    assert 'checksum mismatch for %s' % name in stdout
    assert ('/' + name, None) in bad_server.requests and ('/' + name, None) in server.requests
    check_dataset(out, splits)


def test_every_mirror_failing_is_named(tmp_path, mnist_server, serve, capsys):
    _, _, _, checksums = mnist_server
    name = 'train-images-idx3-ubyte.gz'  # the first file fetched
    bad_url, _ = serve(served_copy(tmp_path, 'bad', tmp_path / 'served', [name]))
    empty = tmp_path / 'empty'
    empty.mkdir()
    empty_url, _ = serve(empty)
    closed = closed_port_url()
    line = assert_one_error_line(run(['mnist', '--out=%s' % (tmp_path / 'm'),
                                      '--base_url=%s' % closed, '--base_url=%s' % bad_url,
                                      '--base_url=%s' % empty_url], checksums, capsys))
    assert line.startswith('error: could not download %s' % name)
    for mirror, reason in ((closed, 'refused'), (bad_url, 'checksum mismatch'),
                           (empty_url, '404')):
        assert mirror + name in line
        assert reason in line.split(mirror + name)[1].split(';')[0]


@pytest.mark.parametrize('length', [None, 10 ** 9], ids=['no length', 'length over the cap'])
def test_oversized_body_is_refused(tmp_path, mnist_server, capsys, length):
    url, server, _, checksums = mnist_server
    name = 't10k-labels-idx1-ubyte.gz'  # 4,542 bytes: at most 70,123 are accepted
    server.custom['/' + name] = answer(b'x' * (1 << 20), length=length)
    out = tmp_path / 'mnist'
    assert_one_error_line(run(['mnist', '--out=%s' % out, '--base_url=%s' % url], checksums,
                              capsys), name,
                          'sent more than 68.5 KiB' if length is None else 'announces 953.7 MiB')
    assert not (out / '.downloads' / name).exists()
    assert not (out / '.downloads' / (name + '.part')).exists()


@pytest.mark.parametrize('mirrors', ['slow only', 'slow then good'])
def test_trickling_mirror_fails_at_the_deadline(tmp_path, mnist_server, serve, capsys, mirrors):
    url, _, splits, checksums = mnist_server
    name = 'train-images-idx3-ubyte.gz'  # the first file fetched
    data = (tmp_path / 'served' / name).read_bytes()
    slow_url, slow_server = serve(tmp_path / 'served')
    # 20 bytes a second, each read well within --timeout=1, but 100 bytes take 5 s.
    slow_server.custom['/' + name] = answer(data[:100], length=len(data), pause=0.05)
    urls = [slow_url] + ([url] if mirrors == 'slow then good' else [])
    out = tmp_path / 'mnist'
    started = time.monotonic()
    result = run(['mnist', '--out=%s' % out, '--timeout=1'] + ['--base_url=%s' % u for u in urls],
                 checksums, capsys)
    assert time.monotonic() - started < 3.5
    assert 'not complete within --timeout=1 s' in result.stdout
    if mirrors == 'slow only':
        assert_one_error_line(result, 'not complete within --timeout=1 s')
        part = (out / '.downloads' / (name + '.part')).read_bytes()
        assert 0 < len(part) < 100 and data.startswith(part)  # kept: a later run resumes
    else:
        assert result.returncode == 0, result.stderr
        check_dataset(out, splits)
