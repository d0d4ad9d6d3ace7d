"""datasets/download.py, offline: small fake archives in the official formats, served by a
local HTTP server on 127.0.0.1 (nothing here reaches the internet)."""
import functools
import gzip
import hashlib
import http.server
import importlib.util
import io
import json
import os
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import time

import numpy as np
import pytest

from wavenet import prepared

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'datasets', 'download.py')


def _load_module():
    spec = importlib.util.spec_from_file_location('datasets_download', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


download = _load_module()


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


def check_output(out_dir, splits, classes, channels, size, dataset='mnist'):
    """The prepared dataset holds exactly the expected pixels, labels, classes and source."""
    info = prepared.read_info(out_dir)
    assert (info.image_size, info.channels, info.classes) == (size, channels, tuple(classes))
    assert info.source['dataset'] == dataset
    assert info.source['written_by'] == 'datasets/download.py'
    for split, (images, labels) in splits.items():
        images_name, labels_name = prepared.file_names(split)
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


def run(argv, md5s, capsys):
    """Runs main() in this process; returns (status, stdout, stderr)."""
    status = download.main(argv, md5s=md5s)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


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
    np.testing.assert_array_equal(download.read_idx_images(idx_images(images)), images)
    np.testing.assert_array_equal(download.read_idx_labels(idx_labels([3, 7])), [3, 7])
    with pytest.raises(download.FormatError, match='magic number is 2049, expected 2051'):
        download.read_idx_images(idx_labels([3, 7]))
    with pytest.raises(download.FormatError, match='should have'):
        download.read_idx_images(idx_images(images)[:-1])
    with pytest.raises(download.FormatError, match='should have'):
        download.read_idx_labels(idx_labels([1, 2]) + b'\0')
    with pytest.raises(download.FormatError, match='too short'):
        download.read_idx_labels(b'\0\0\x08')


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
    with pytest.raises(download.FormatError, match='whole number'):
        download.read_cifar_binary(bytes(record)[:-1])


# ------------------------------------------------------------------------- full runs

def test_mnist_full_run(tmp_path, mnist_server, capsys):
    url, server, splits, checksums = mnist_server
    out = tmp_path / 'mnist'
    status, stdout, stderr = run(['mnist', '--out=%s' % out, '--base_url=%s' % url],
                                 checksums, capsys)
    assert status == 0, stderr
    check_output(str(out), splits, download.DATASETS['mnist'].classes, 1, (28, 28))
    assert sorted(os.listdir(out / '.downloads')) == sorted(checksums)
    assert len(server.requests) == 4 and all(r is None for _, r in server.requests)
    assert 'converting mnist: 19 images' in stderr  # plain final progress line (not a tty)
    assert 'downloading train-images-idx3-ubyte.gz:' in stderr


def test_fashion_mnist_class_names(tmp_path, mnist_server, capsys):
    url, _, splits, checksums = mnist_server
    out = tmp_path / 'fashion'
    status, _, stderr = run(['fashion_mnist', '--out', str(out), '--base_url', url],
                            checksums, capsys)
    assert status == 0, stderr
    classes = ('t-shirt_top', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt',
               'sneaker', 'bag', 'ankle_boot')
    assert download.DATASETS['fashion_mnist'].classes == classes
    check_output(str(out), splits, classes, 1, (28, 28), dataset='fashion_mnist')


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
    classes = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
               'ship', 'truck')
    check_output(str(out), splits, classes, 3, (32, 32), dataset='cifar10')
    assert len(splits['train'][1]) == 10 and len(splits['test'][1]) == 3
    assert not (tmp_path / 'work' / 'escaped.bin').exists()
    assert not (out / 'escaped.bin').exists()
    assert sorted(os.listdir(out)) == ['.download-manifest.json', '.downloads', 'dataset.json',
                                       'test_images.npy', 'test_labels.npy', 'train_images.npy',
                                       'train_labels.npy']
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
    with pytest.raises(download.FormatError, match='not a regular file'):
        download.read_cifar_archive(str(path))


# ------------------------------------------------------------------- download behaviour

def test_resume_with_range(tmp_path, mnist_server, capsys):
    url, server, splits, checksums = mnist_server
    out = tmp_path / 'mnist'
    name = 'train-images-idx3-ubyte.gz'
    data = (tmp_path / 'served' / name).read_bytes()
    half = len(data) // 2
    (out / '.downloads').mkdir(parents=True)
    (out / '.downloads' / (name + '.part')).write_bytes(data[:half])
    status, _, stderr = run(['mnist', '--out=%s' % out, '--base_url=%s' % url],
                            checksums, capsys)
    assert status == 0, stderr
    assert ('/' + name, 'bytes=%d-' % half) in server.requests
    assert (out / '.downloads' / name).read_bytes() == data
    assert not (out / '.downloads' / (name + '.part')).exists()
    check_output(str(out), splits, download.DATASETS['mnist'].classes, 1, (28, 28))


def test_server_without_ranges_restarts_from_zero(tmp_path, serve, capsys):
    files = tmp_path / 'served'
    files.mkdir()
    splits, checksums = make_mnist_files(str(files))
    url, server = serve(files, ranges=False)
    out = tmp_path / 'mnist'
    name = 't10k-labels-idx1-ubyte.gz'
    (out / '.downloads').mkdir(parents=True)
    (out / '.downloads' / (name + '.part')).write_bytes(b'garbage that is not the start')
    status, _, stderr = run(['mnist', '--out=%s' % out, '--base_url=%s' % url],
                            checksums, capsys)
    assert status == 0, stderr
    assert ('/' + name, 'bytes=29-') in server.requests  # asked, got 200, started over
    assert (out / '.downloads' / name).read_bytes() == (files / name).read_bytes()
    check_output(str(out), splits, download.DATASETS['mnist'].classes, 1, (28, 28))


def test_checksum_mismatch(tmp_path, mnist_server, capsys):
    url, _, _, checksums = mnist_server
    name = 'train-labels-idx1-ubyte.gz'
    wrong = dict(checksums, **{name: '0' * 32})
    out = tmp_path / 'mnist'
    status, _, stderr = run(['mnist', '--out=%s' % out, '--base_url=%s' % url], wrong, capsys)
    assert status == 2
    error = [line for line in stderr.splitlines() if line.startswith('error:')]
    assert len(error) == 1 and stderr.rstrip().splitlines()[-1] == error[0]
    assert name in error[0] and '0' * 32 in error[0] and checksums[name] in error[0]
    assert 'Traceback' not in stderr
    assert not (out / '.downloads' / name).exists()
    assert not (out / '.downloads' / (name + '.part')).exists()
    assert os.listdir(out) == ['.downloads']


def test_mirrors_tried_in_order(tmp_path, mnist_server, capsys):
    url, _, splits, checksums = mnist_server
    out = tmp_path / 'mnist'
    status, stdout, stderr = run(['mnist', '--out=%s' % out, '--base_url=%s' % closed_port_url(),
                                  '--base_url=%s' % url], checksums, capsys)
    assert status == 0, stderr
    assert 'failed:' in stdout
    check_output(str(out), splits, download.DATASETS['mnist'].classes, 1, (28, 28))


def test_missing_file_on_server_is_an_error(tmp_path, serve, capsys):
    files = tmp_path / 'served'
    files.mkdir()
    url, _ = serve(files)
    status, _, stderr = run(['cifar10', '--out=%s' % (tmp_path / 'c'), '--base_url=%s' % url],
                            None, capsys)
    assert status == 2
    assert stderr.splitlines()[-1].startswith('error: could not download cifar-10-binary')
    assert '404' in stderr.splitlines()[-1]


def test_unreachable_url(tmp_path, capsys):
    out = tmp_path / 'mnist'
    status, _, stderr = run(['mnist', '--out=%s' % out, '--base_url=%s' % closed_port_url(),
                             '--timeout=5'], None, capsys)
    assert status == 2
    assert stderr.count('\n') == 1 and stderr.startswith('error: could not download ')
    assert 'Traceback' not in stderr
    assert not (out / 'dataset.json').exists()


# ------------------------------------------------------------------ output folder states

def test_half_dataset_is_rebuilt_without_downloading_again(tmp_path, mnist_server, capsys):
    url, server, splits, checksums = mnist_server
    out = tmp_path / 'mnist'
    argv = ['mnist', '--out=%s' % out, '--base_url=%s' % url]
    assert run(argv, checksums, capsys)[0] == 0
    requests = len(server.requests)
    # As if interrupted while moving the arrays into place: no dataset.json, the test images
    # still a half-written temporary, the training images damaged.
    os.remove(out / 'dataset.json')
    os.rename(out / 'test_images.npy', out / '.test_images.npy.tmp-123-abcd')
    with open(out / '.test_images.npy.tmp-123-abcd', 'r+b') as half:
        half.truncate(200)
    (out / 'train_images.npy').write_bytes(b'damaged')
    status, stdout, stderr = run(argv, checksums, capsys)
    assert status == 0, stderr
    assert 'half dataset' in stdout
    assert 'already downloaded and verified' in stdout
    assert len(server.requests) == requests  # the verified archives were reused
    check_output(str(out), splits, download.DATASETS['mnist'].classes, 1, (28, 28))


def test_complete_dataset_is_left_alone(tmp_path, mnist_server, capsys):
    url, server, _, checksums = mnist_server
    out = tmp_path / 'mnist'
    argv = ['mnist', '--out=%s' % out, '--base_url=%s' % url]
    assert run(argv, checksums, capsys)[0] == 0
    requests = len(server.requests)
    before = {name: os.stat(out / name).st_mtime_ns for name in prepared.FILE_NAMES}
    status, stdout, _ = run(argv, checksums, capsys)
    assert status == 0
    assert 'already there' in stdout
    assert len(server.requests) == requests
    assert {name: os.stat(out / name).st_mtime_ns for name in prepared.FILE_NAMES} == before


def test_damaged_array_under_a_valid_dataset_json_is_converted_again(tmp_path, mnist_server,
                                                                    capsys):
    url, server, splits, checksums = mnist_server
    out = tmp_path / 'mnist'
    argv = ['mnist', '--out=%s' % out, '--base_url=%s' % url]
    assert run(argv, checksums, capsys)[0] == 0
    requests = len(server.requests)
    with open(out / 'test_images.npy', 'r+b') as array:
        array.truncate(os.path.getsize(out / 'test_images.npy') - 1)
    status, stdout, stderr = run(argv, checksums, capsys)
    assert status == 0, stderr
    assert 'already there' not in stdout and 'test_images.npy' in stdout
    assert len(server.requests) == requests
    check_output(str(out), splits, download.DATASETS['mnist'].classes, 1, (28, 28))


def test_another_complete_dataset_is_refused(tmp_path, mnist_server, capsys):
    url, server, splits, checksums = mnist_server
    out = tmp_path / 'data'
    assert run(['mnist', '--out=%s' % out, '--base_url=%s' % url], checksums, capsys)[0] == 0
    requests = len(server.requests)
    status, _, stderr = run(['fashion_mnist', '--out=%s' % out, '--base_url=%s' % url],
                            checksums, capsys)
    assert status == 2
    assert 'already holds the mnist dataset' in error_line(stderr)
    assert len(server.requests) == requests
    check_output(str(out), splits, download.DATASETS['mnist'].classes, 1, (28, 28))


def test_old_png_folders_are_left_alone(tmp_path, mnist_server, capsys):
    """A DIR from the version that wrote PNG files: its folders are not touched."""
    url, _, splits, checksums = mnist_server
    out = tmp_path / 'mnist'
    (out / 'train' / '3').mkdir(parents=True)
    (out / 'train' / '3' / '00000.png').write_bytes(b'precious')
    (out / '.download-manifest.json').write_text(json.dumps(
        {'splits': {'train': {'3': ['00000.png']}}}))
    status, stdout, stderr = run(['mnist', '--out=%s' % out, '--base_url=%s' % url], checksums,
                                 capsys)
    assert status == 0, stderr
    assert 'left as it is' in stdout
    assert (out / 'train' / '3' / '00000.png').read_bytes() == b'precious'
    check_output(str(out), splits, download.DATASETS['mnist'].classes, 1, (28, 28))


def test_bad_out_and_unknown_dataset(tmp_path, capsys):
    a_file = tmp_path / 'file'
    a_file.write_text('x')
    status, _, stderr = run(['mnist', '--out=%s' % a_file], None, capsys)
    assert status == 2 and stderr.startswith('error: ') and stderr.count('\n') == 1
    status, _, stderr = run(['mnist', '--out=%s' % (a_file / 'sub')], None, capsys)
    assert status == 2 and stderr.startswith('error: ') and stderr.count('\n') == 1
    status, _, stderr = run(['svhn', '--out=%s' % tmp_path], None, capsys)
    assert status == 2 and stderr.startswith('error: ') and stderr.count('\n') == 1
    assert 'svhn' in stderr
    status, _, stderr = run(['mnist', '--out=x', '--base_url=ftp://example.invalid/'],
                            None, capsys)
    assert status == 2 and stderr.startswith('error: ') and stderr.count('\n') == 1


def test_command_line(tmp_path):
    """As a subprocess: --help documents every flag with defaults; errors are one line."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1')
    help_text = subprocess.run([sys.executable, SCRIPT, '--help'], capture_output=True,
                               text=True, check=True, env=env).stdout
    for flag in ('--out', '--base_url', '--timeout'):
        assert flag in help_text
    assert 'default' in help_text and 'https://ossci-datasets.s3.amazonaws.com/mnist/' \
        in help_text.replace('\n', '').replace(' ', '')
    for name in ('mnist', 'fashion_mnist', 'cifar10'):
        assert name in help_text
    result = subprocess.run(
        [sys.executable, SCRIPT, 'mnist', '--out=%s' % (tmp_path / 'm'),
         '--base_url=%s' % closed_port_url()], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert result.stderr.count('\n') == 1 and result.stderr.startswith('error: ')



# -------------------------------------------------------------------- faults (issue 16)

def error_line(stderr):
    """Returns the one `error:` line, which must be stderr's last line, with no traceback."""
    lines = stderr.rstrip('\n').splitlines()
    errors = [line for line in lines if line.startswith('error:')]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    assert 'Traceback' not in stderr
    return errors[0]


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


def test_user_file_survives_an_unreachable_mirror(tmp_path, capsys):
    out = tmp_path / 'mine'
    out.mkdir()
    mine = out / 'train_images.npy'
    mine.write_bytes(b'my own array')
    status, stdout, stderr = run(['mnist', '--out=%s' % out,
                                  '--base_url=%s' % closed_port_url()], None, capsys)
    assert status == 2
    line = error_line(stderr)
    assert str(mine) in line and 'empty --out' in line and 'did not write' in line
    assert mine.read_bytes() == b'my own array'
    assert os.listdir(out) == ['train_images.npy']


def test_users_prepared_dataset_is_refused_before_downloading(tmp_path, mnist_server, capsys):
    """A prepared dataset this script did not write (no manifest claims it) is never replaced,
    nor a temporary of its files."""
    url, server, _, checksums = mnist_server
    out = tmp_path / 'mine'
    with prepared.PreparedWriter(out, (2, 2), 1, ('a',), {'dataset': 'mnist'}) as writer:
        writer.append_images('train', np.zeros((1, 2, 2), np.uint8))
        writer.append_labels('train', [0])
        writer.close()
    (out / '.test_images.npy.tmp-1-abcd').write_bytes(b'mine too')
    ours = top_files(out)
    for leave in ('dataset.json', '.test_images.npy.tmp-1-abcd'):
        status, _, stderr = run(['mnist', '--out=%s' % out, '--base_url=%s' % url], checksums,
                                capsys)
        assert status == 2
        line = error_line(stderr)
        assert 'did not write' in line and 'manifest' in line
        assert server.requests == []  # refused before downloading anything
        assert top_files(out) == ours
        os.remove(out / leave)
        del ours[leave]


@pytest.mark.parametrize('fault', ['unreachable', 'bad data'])
def test_old_files_are_kept_until_new_data_is_verified(tmp_path, mnist_server, serve, capsys,
                                                       fault):
    url, _, _, checksums = mnist_server
    out = tmp_path / 'mnist'
    assert run(['mnist', '--out=%s' % out, '--base_url=%s' % url], checksums, capsys)[0] == 0
    os.remove(out / 'dataset.json')  # a half dataset: replaced only by verified new data
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
    status, _, stderr = run(['mnist', '--out=%s' % out, '--base_url=%s' % mirror], checksums,
                            capsys)
    assert status == 2
    error_line(stderr)
    assert top_files(out) == ours
    assert not (out / 'dataset.json').exists()


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
    check_output(str(out), splits, download.DATASETS['mnist'].classes, 1, (28, 28))


def test_every_mirror_failing_is_named(tmp_path, mnist_server, serve, capsys):
    _, _, _, checksums = mnist_server
    name = 'train-images-idx3-ubyte.gz'  # the first file fetched
    bad_url, _ = serve(served_copy(tmp_path, 'bad', tmp_path / 'served', [name]))
    empty = tmp_path / 'empty'
    empty.mkdir()
    empty_url, _ = serve(empty)
    closed = closed_port_url()
    status, _, stderr = run(['mnist', '--out=%s' % (tmp_path / 'm'), '--base_url=%s' % closed,
                             '--base_url=%s' % bad_url, '--base_url=%s' % empty_url],
                            checksums, capsys)
    assert status == 2
    line = error_line(stderr)
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
    status, _, stderr = run(['mnist', '--out=%s' % out, '--base_url=%s' % url], checksums,
                            capsys)
    assert status == 2
    line = error_line(stderr)
    assert name in line
    assert ('sent more than 68.5 KiB' if length is None else 'announces 953.7 MiB') in line
    assert not (out / '.downloads' / name).exists()
    assert not (out / '.downloads' / (name + '.part')).exists()


NO_SOURCE = json.dumps({'image_size': [28, 28], 'channels': 1,
                        'classes': [str(digit) for digit in range(10)]}).encode()


@pytest.mark.parametrize('info', [b'', b'{"image_size": [28', b'[]', b'{"dataset": "mnist"}',
                                  b'\xff\xfe', NO_SOURCE])
def test_corrupt_dataset_json_means_incomplete(tmp_path, mnist_server, capsys, info):
    url, server, splits, checksums = mnist_server
    out = tmp_path / 'mnist'
    argv = ['mnist', '--out=%s' % out, '--base_url=%s' % url]
    assert run(argv, checksums, capsys)[0] == 0
    requests = len(server.requests)
    (out / 'dataset.json').write_bytes(info)
    (out / 'test_images.npy').write_bytes(b'damaged')
    status, stdout, stderr = run(argv, checksums, capsys)
    assert status == 0, stderr
    assert 'already there' not in stdout and 'corrupt' in stdout
    assert len(server.requests) == requests  # the verified archives were reused
    check_output(str(out), splits, download.DATASETS['mnist'].classes, 1, (28, 28))


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
    status, stdout, stderr = run(['mnist', '--out=%s' % out, '--timeout=1']
                                 + ['--base_url=%s' % u for u in urls], checksums, capsys)
    assert time.monotonic() - started < 3.5
    assert 'not complete within --timeout=1 s' in stdout
    if mirrors == 'slow only':
        assert status == 2
        assert 'not complete within --timeout=1 s' in error_line(stderr)
        part = (out / '.downloads' / (name + '.part')).read_bytes()
        assert 0 < len(part) < 100 and data.startswith(part)  # kept: a later run resumes
    else:
        assert status == 0, stderr
        check_output(str(out), splits, download.DATASETS['mnist'].classes, 1, (28, 28))


def test_resumed_part_that_does_not_match_is_downloaded_again(tmp_path, mnist_server, capsys):
    url, server, splits, checksums = mnist_server
    out = tmp_path / 'mnist'
    name = 'train-images-idx3-ubyte.gz'
    (out / '.downloads').mkdir(parents=True)
    (out / '.downloads' / (name + '.part')).write_bytes(b'not the start of the file')
    status, stdout, stderr = run(['mnist', '--out=%s' % out, '--base_url=%s' % url],
                                 checksums, capsys)
    assert status == 0, stderr
    assert server.requests.count(('/' + name, 'bytes=25-')) == 1
    assert server.requests.count(('/' + name, None)) == 1
    assert 'from the start' in stdout
    check_output(str(out), splits, download.DATASETS['mnist'].classes, 1, (28, 28))
