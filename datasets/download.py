"""Downloads MNIST, Fashion-MNIST or CIFAR-10 and writes them as a prepared dataset for train.py.

    python datasets/download.py mnist|fashion_mnist|cifar10 --out=DIR

The official archives go to `DIR/.downloads/`, this script's cache: a download resumes from
its `.part` file and gets its name only once its MD5 checksum matches. Each mirror is tried
in turn until one gives the right file; a mirror fails on a network or HTTP error, on more
bytes than the file's known size allows (1% and 64 KiB more), when the file is not complete
within --timeout, or on a checksum mismatch. The images become a prepared dataset (see
wavenet/prepared.py): `DIR/train_images.npy` and `DIR/test_images.npy` (uint8 [N, H, W, C];
MNIST and Fashion-MNIST: 28x28 grayscale; CIFAR-10: 32x32 RGB), `DIR/train_labels.npy` and
`DIR/test_labels.npy` (int64 [N]), and `DIR/dataset.json` (image size, channels, class names,
counts, and the source: dataset, mirrors, archives and their MD5s).

What the script wrote: `DIR/.download-manifest.json` says that the script owns the prepared
dataset's files in DIR (prepared.FILE_NAMES and their temporaries); it is written before the
first of them. A file of those names in DIR while no manifest claims them belongs to the
user: the script never removes or overwrites it, and stops before downloading anything,
naming it. The new arrays are written under temporary names and replace the old files only
once the new dataset is downloaded, verified and converted; `DIR/dataset.json` is written
last, and a DIR whose dataset.json is missing or damaged (or whose arrays do not match it)
never counts as a whole dataset. Files elsewhere in DIR (the PNG folders `train/` and
`test/` of an older version of this script, too) are never touched. Needs only the standard
library, numpy and the project's wavenet/prepared.py, wavenet/progress.py and
wavenet/files.py (which do not import TensorFlow).
"""
import collections
import gzip
import hashlib
import http.client
import json
import os
import re
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

# `python datasets/download.py` puts datasets/ first on sys.path, not the project root.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from wavenet import cli, prepared  # noqa: E402
from wavenet.files import write_json_atomic  # noqa: E402
from wavenet.progress import Progress, format_bytes  # noqa: E402

SPLITS = ('train', 'test')
MANIFEST = '.download-manifest.json'
DOWNLOAD_FOLDER = '.downloads'
CONVERT_CHUNK = 10000  # images written at a time
CHUNK_BYTES = 1 << 16
SIZE_MARGIN_BYTES = 64 << 10  # plus 1% of the known size: the most a mirror may send
DEFAULT_TIMEOUT = 600.0  # seconds for each whole file
STALL_SECONDS = 60.0  # the longest wait for a connection or a read, when --timeout is longer
IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
CIFAR_SIZE = 32
CIFAR_RECORD_BYTES = 1 + 3 * CIFAR_SIZE * CIFAR_SIZE
CIFAR_FOLDER = 'cifar-10-batches-bin'
CIFAR_MEMBERS = {
    'train': tuple('%s/data_batch_%d.bin' % (CIFAR_FOLDER, i) for i in range(1, 6)),
    'test': ('%s/test_batch.bin' % CIFAR_FOLDER,),
}
IDX_FILES = {  # split: (images file, labels file)
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}

Dataset = collections.namedtuple(
    'Dataset', 'name kind mirrors files classes image_shape counts')
# kind: 'idx' or 'cifar'; mirrors: base URLs tried in order; files: ((file name, md5, size in
# bytes), ...); image_shape: (height, width) or (height, width, 3); counts: (train, test).

# MD5 checksums. MNIST and Fashion-MNIST: the `resources` lists of torchvision's MNIST and
# FashionMNIST classes (pytorch/vision, torchvision/datasets/mnist.py), which also give the
# mirrors. CIFAR-10: torchvision only knows the python (pickle) archive, so the MD5 of the
# binary archive is the one published on the dataset's page,
# https://www.cs.toronto.edu/~kriz/cifar.html ("CIFAR-10 binary version"). Sizes: the byte
# counts that the torchvision, Keras and TensorFlow tutorial downloaders report for these files.
DATASETS = {
    'mnist': Dataset(
        name='mnist', kind='idx',
        mirrors=('http://yann.lecun.com/exdb/mnist/',
                 'https://ossci-datasets.s3.amazonaws.com/mnist/'),
        files=(('train-images-idx3-ubyte.gz', 'f68b3c2dcbeaaa9fbdd348bbdeb94873', 9912422),
               ('train-labels-idx1-ubyte.gz', 'd53e105ee54ea40749a09fcbcd1e9432', 28881),
               ('t10k-images-idx3-ubyte.gz', '9fb629c4189551a2d022fa330f9573f3', 1648877),
               ('t10k-labels-idx1-ubyte.gz', 'ec29112dd5afa0611ce80d1b7f02629c', 4542)),
        classes=tuple(str(digit) for digit in range(10)),
        image_shape=(28, 28), counts=(60000, 10000)),
    'fashion_mnist': Dataset(
        name='fashion_mnist', kind='idx',
        mirrors=('http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',),
        files=(('train-images-idx3-ubyte.gz', '8d4fb7e6c68d591d4c3dfef9ec88bf0d', 26421880),
               ('train-labels-idx1-ubyte.gz', '25c81989df183df01b3e8a0aad5dffbe', 29515),
               ('t10k-images-idx3-ubyte.gz', 'bef4ecab320f06d8554ea6380940ec79', 4422102),
               ('t10k-labels-idx1-ubyte.gz', 'bb300cfdad3c16e7a12a480ee83cd310', 5148)),
        classes=('t-shirt_top', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt',
                 'sneaker', 'bag', 'ankle_boot'),
        image_shape=(28, 28), counts=(60000, 10000)),
    'cifar10': Dataset(
        name='cifar10', kind='cifar',
        mirrors=('https://www.cs.toronto.edu/~kriz/',),
        files=(('cifar-10-binary.tar.gz', 'c32a1d4ab5d03f1284b67883e8d87530', 170052171),),
        classes=('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                 'ship', 'truck'),
        image_shape=(CIFAR_SIZE, CIFAR_SIZE, 3), counts=(50000, 10000)),
}


class DownloadError(Exception):
    """A file could not be fetched (network, HTTP status, short read, size, deadline)."""


class ChecksumError(DownloadError):
    """A downloaded file does not have the expected MD5 checksum."""


class OversizeError(DownloadError):
    """A server sent more bytes than the file may have."""


class FormatError(ValueError):
    """An archive or data file is not in the expected format."""


class DatasetError(Exception):
    """The output folder cannot be used (bad --out, foreign files, another dataset)."""


def md5_of(path):
    """Returns the hex MD5 digest of a file."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, 'rb') as data_file:
        for chunk in iter(lambda: data_file.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path, expected, name=None):
    """Raises ChecksumError (after deleting `path`) unless its MD5 equals `expected`."""
    actual = md5_of(path)
    if actual != expected.lower():
        os.remove(path)
        raise ChecksumError('checksum mismatch for %s: expected MD5 %s, got %s'
                            % (name or os.path.basename(path), expected.lower(), actual))


def max_bytes(size):
    """The most bytes accepted for a file known to have `size`: 1% and 64 KiB more."""
    return size + size // 100 + SIZE_MARGIN_BYTES


def _parse_content_range(value):
    """Returns the first byte of a 'bytes FIRST-LAST/TOTAL' header, or None."""
    match = re.match(r'\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*$', value or '')
    return int(match.group(1)) if match else None


def _content_length(response):
    """The Content-Length of `response` as an int, or None when absent or not a number."""
    value = (response.headers.get('Content-Length') or '').strip()
    return int(value) if value.isdigit() else None


def _open_from(url, part_path, wait):
    """Asks `url` for the bytes after `part_path`; returns (response, offset its body starts at).

    A 206 answer that starts at the size of the .part file resumes it; a 200 answer (the
    server ignores ranges) starts from zero; a 416 answer or a 206 at another offset (a
    changed file) deletes the .part file and asks again from zero. `wait` bounds the
    connection and every read of the response, in seconds.
    """
    start = os.path.getsize(part_path) if os.path.exists(part_path) else 0
    headers = {'User-Agent': 'image-wavenet-datasets/1.0'}
    if start:
        headers['Range'] = 'bytes=%d-' % start
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=wait)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 416 and start:
            os.remove(part_path)
            return _open_from(url, part_path, wait)
        raise DownloadError('HTTP %d %s' % (error.code, error.reason)) from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise DownloadError(_reason(error)) from None
    if response.status == 206 and start:
        if _parse_content_range(response.headers.get('Content-Range')) == start:
            return response, start
        response.close()
        os.remove(part_path)
        return _open_from(url, part_path, wait)
    if response.status != 200:
        response.close()
        raise DownloadError('unexpected HTTP status %d' % response.status)
    return response, 0


def _receive(response, part_file, size, limits, progress):
    """Appends the body of `response` to `part_file`; returns the file's size at the end.

    Args:
        response: the open HTTP response, read with read1 so that a trickle of bytes
            returns at once and the deadline is checked after each.
        part_file: the .part file, open for appending.
        size: bytes already in the file (a resumed download).
        limits: (the most bytes the file may have, the deadline on time.monotonic(), the
            timeout it came from, for the message).
        progress: the Progress bar to update.

    Raises:
        OversizeError: the file would grow past its limit (that chunk is not written).
        DownloadError: the deadline passed before the body ended.
    """
    limit, deadline, timeout = limits
    while True:
        chunk = response.read1(min(CHUNK_BYTES, limit + 1 - size))
        if not chunk:
            return size
        size += len(chunk)
        if size > limit:
            raise OversizeError('the server sent more than %s, the most this file may have'
                                % format_bytes(limit))
        part_file.write(chunk)
        progress.update(len(chunk))
        if time.monotonic() > deadline:
            raise DownloadError('not complete within --timeout=%g s (%s received)'
                                % (timeout, format_bytes(size)))


def download_file(url, part_path, limit, timeout=DEFAULT_TIMEOUT, stream=None):
    """Downloads `url` into `part_path`, resuming a partial file with an HTTP Range request.

    Args:
        url: the file to fetch.
        part_path: where it goes. It is kept on a network failure or at the deadline, so
            that the next try resumes; it is deleted when the file grows past `limit`.
        limit: the most bytes the file may have: a larger Content-Length fails at once, a
            body without one fails once it passes the limit.
        timeout: seconds the whole file may take; no connection or read may wait longer
            than min(timeout, STALL_SECONDS).
        stream: where the progress bar goes (default: stderr).

    Returns:
        The byte offset the download resumed from (0 when it started from the beginning).

    Raises:
        DownloadError: a network or HTTP failure, a short body, the size limit (then an
            OversizeError) or the deadline.
    """
    deadline = time.monotonic() + timeout
    if os.path.isfile(part_path) and os.path.getsize(part_path) > limit:
        os.remove(part_path)
    response, start = _open_from(url, part_path, min(timeout, STALL_SECONDS))
    with response:
        length = _content_length(response)
        if length is not None and start + length > limit:
            raise DownloadError('the server announces %s, more than the %s this file may have'
                                % (format_bytes(start + length), format_bytes(limit)))
        progress = Progress('downloading %s' % os.path.basename(url),
                            total=None if length is None else start + length,
                            unit='bytes', stream=stream, start=start)
        try:
            with open(part_path, 'ab' if start else 'wb') as part_file:
                size = _receive(response, part_file, start, (limit, deadline, timeout),
                                progress)
        except OversizeError:
            os.remove(part_path)
            raise
        except (OSError, http.client.HTTPException) as error:
            raise DownloadError('%s after %s' % (_reason(error), format_bytes(progress.count))
                                ) from None
        finally:
            progress.close()
    if length is not None and size < start + length:
        raise DownloadError('connection closed after %s of %s' % (
            format_bytes(size), format_bytes(start + length)))
    return start


def _reason(error):
    """A short one-line description of a network error."""
    if isinstance(error, urllib.error.URLError) and not isinstance(error.reason, str):
        error = error.reason
    text = str(error) or type(error).__name__
    return ' '.join(text.split())


def _fetch_from(url, part_path, md5, limit, timeout, stream, log):
    """Downloads `url` into `part_path` and checks its MD5 (see download_file).

    A mismatch after resuming a .part file (perhaps from another mirror or an older run)
    downloads the file once more from the start before the mirror counts as failed.
    """
    name = url.rsplit('/', 1)[-1]
    log('downloading %s' % url)
    resumed = download_file(url, part_path, limit, timeout=timeout, stream=stream)
    try:
        verify_md5(part_path, md5, name=name)
    except ChecksumError:
        if not resumed:
            raise
        log('  checksum mismatch after resuming at %s: downloading it again from the start'
            % format_bytes(resumed))
        download_file(url, part_path, limit, timeout=timeout, stream=stream)
        verify_md5(part_path, md5, name=name)


def fetch(name, md5, limit, base_urls, download_dir, timeout=DEFAULT_TIMEOUT, stream=None,
          log=print):
    """Returns the path of the verified file `name` in `download_dir`, downloading it if needed.

    An existing file with the right checksum is used as it is. Otherwise the base URLs are
    tried in order into `name.part`; the first file with the right MD5 is renamed to `name`
    (replacing one with a wrong checksum). Any failure of a mirror (network, HTTP status,
    more than `limit` bytes, the `timeout` deadline, checksum) moves on to the next one.
    Raises DownloadError, naming each mirror and its reason, when none worked.
    """
    path = os.path.join(download_dir, name)
    if os.path.exists(path):
        if md5_of(path) == md5.lower():
            log('%s: already downloaded and verified' % name)
            return path
        log('%s: wrong checksum, downloading it again' % name)
    part_path = path + '.part'
    failures = []
    for base_url in base_urls:
        url = base_url.rstrip('/') + '/' + name
        try:
            _fetch_from(url, part_path, md5, limit, timeout, stream, log)
        except DownloadError as error:
            log('  failed: %s' % error)
            failures.append('%s (%s)' % (url, error))
            continue
        os.replace(part_path, path)
        return path
    raise DownloadError('could not download %s from any mirror: %s'
                        % (name, '; '.join(failures)))


def read_idx(data, magic, ndim):
    """Parses an uncompressed IDX file of unsigned bytes; returns a uint8 array.

    The header is a big-endian int32 magic number (2051 for images, 2049 for labels) and
    `ndim` big-endian int32 dimensions; the data must be exactly their product in bytes.
    """
    header_bytes = 4 * (1 + ndim)
    if len(data) >= 4 and int.from_bytes(data[:4], 'big') != magic:
        raise FormatError('IDX magic number is %d, expected %d'
                          % (int.from_bytes(data[:4], 'big'), magic))
    if len(data) < header_bytes:
        raise FormatError('IDX file too short for its header (%d bytes)' % len(data))
    header = np.frombuffer(data, dtype='>u4', count=1 + ndim)
    shape = tuple(int(size) for size in header[1:])
    expected = header_bytes + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise FormatError('IDX file of shape %s should have %d bytes, has %d'
                          % (shape, expected, len(data)))
    return np.frombuffer(data, dtype=np.uint8, offset=header_bytes).reshape(shape)


def read_idx_images(data):
    """Parses IDX image data (magic 2051, N x rows x columns); returns uint8 [N, H, W]."""
    return read_idx(data, IDX_IMAGES_MAGIC, 3)


def read_idx_labels(data):
    """Parses IDX label data (magic 2049, N); returns uint8 [N]."""
    return read_idx(data, IDX_LABELS_MAGIC, 1)


def read_gzip(path):
    """Returns the decompressed bytes of a .gz file; FormatError when it is not valid gzip."""
    try:
        with gzip.open(path, 'rb') as gz_file:
            return gz_file.read()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise FormatError('%s is not a valid gzip file: %s'
                          % (os.path.basename(path), _reason(error))) from None


def read_cifar_binary(data):
    """Parses CIFAR-10 binary records; returns (images uint8 [N, 32, 32, 3], labels uint8 [N]).

    Each record is 1 label byte and 3072 pixel bytes: the red plane, then green, then blue,
    each 32x32 in row-major order.
    """
    if not data or len(data) % CIFAR_RECORD_BYTES:
        raise FormatError('CIFAR-10 binary data of %d bytes is not a whole number of '
                          '%d-byte records' % (len(data), CIFAR_RECORD_BYTES))
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR_RECORD_BYTES)
    labels = records[:, 0].copy()
    planes = records[:, 1:].reshape(-1, 3, CIFAR_SIZE, CIFAR_SIZE)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), labels


def read_cifar_archive(path):
    """Reads the six batch files of cifar-10-binary.tar.gz; returns {split: (images, labels)}.

    Only the expected member names are read, as bytes through extractfile: nothing in the
    archive is written to disk, so its paths do not matter.
    """
    wanted = {name for names in CIFAR_MEMBERS.values() for name in names}
    contents = {}
    try:
        with tarfile.open(path, 'r:gz') as archive:
            for member in archive:
                if member.name not in wanted:
                    continue
                if not member.isfile():
                    raise FormatError('%s in %s is not a regular file'
                                      % (member.name, os.path.basename(path)))
                contents[member.name] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise FormatError('%s is not a valid tar.gz archive: %s'
                          % (os.path.basename(path), _reason(error))) from None
    missing = sorted(wanted - set(contents))
    if missing:
        raise FormatError('%s lacks %s' % (os.path.basename(path), ', '.join(missing)))
    splits = {}
    for split, names in CIFAR_MEMBERS.items():
        parts = []
        for name in names:
            try:
                parts.append(read_cifar_binary(contents[name]))
            except FormatError as error:
                raise FormatError('%s: %s' % (name, error)) from None
        splits[split] = (np.concatenate([images for images, _ in parts]),
                         np.concatenate([labels for _, labels in parts]))
    return splits


def read_idx_splits(download_dir):
    """Reads the four IDX .gz files of MNIST or Fashion-MNIST; returns {split: (images, labels)}."""
    splits = {}
    for split, (images_name, labels_name) in IDX_FILES.items():
        try:
            images = read_idx_images(read_gzip(os.path.join(download_dir, images_name)))
        except FormatError as error:
            raise FormatError('%s: %s' % (images_name, error)) from None
        try:
            labels = read_idx_labels(read_gzip(os.path.join(download_dir, labels_name)))
        except FormatError as error:
            raise FormatError('%s: %s' % (labels_name, error)) from None
        if len(images) != len(labels):
            raise FormatError('%s has %d images but %s has %d labels'
                              % (images_name, len(images), labels_name, len(labels)))
        splits[split] = (images, labels)
    return splits


def check_split(split, images, labels, dataset):
    """Raises FormatError unless the images have the dataset's shape and the labels its classes."""
    if len(images) == 0:
        raise FormatError('the %s split has no images' % split)
    if tuple(images.shape[1:]) != tuple(dataset.image_shape):
        raise FormatError('%s images are %s, expected %s for %s' % (
            split, 'x'.join(map(str, images.shape[1:])),
            'x'.join(map(str, dataset.image_shape)), dataset.name))
    if labels.size and int(labels.max()) >= len(dataset.classes):
        raise FormatError('%s label %d is out of range (%d classes)'
                          % (split, labels.max(), len(dataset.classes)))


def read_manifest(out_dir):
    """Whether the manifest says this script writes the prepared dataset's files in `out_dir`.

    A missing, unreadable or malformed manifest (or one of an older version of this script,
    which listed PNG files) gives False: then no file of the format counts as its own.
    """
    try:
        with open(os.path.join(out_dir, MANIFEST), encoding='utf-8') as manifest_file:
            manifest = json.load(manifest_file)
        return sorted(manifest['files']) == sorted(prepared.FILE_NAMES)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def write_manifest(out_dir, dataset):
    """Writes the manifest (atomically): this script owns prepared.FILE_NAMES in `out_dir`."""
    write_json_atomic(os.path.join(out_dir, MANIFEST), {
        'written_by': 'datasets/download.py', 'dataset': dataset.name,
        'files': list(prepared.FILE_NAMES)})


def _check_out_dir(out_dir):
    """Raises DatasetError unless `out_dir` is (or can be created as) a folder; creates it."""
    if not out_dir:
        raise DatasetError('--out is empty')
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise DatasetError('--out=%s exists and is not a folder' % out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise DatasetError('cannot create --out=%s: %s' % (out_dir, _reason(error))) from None


def prepare_out_dir(out_dir, dataset, log=print):
    """Checks the output folder before anything is downloaded; creates it when missing.

    Returns:
        True when `out_dir` holds this dataset complete: a dataset.json this script wrote
        and files that match it.

    Raises:
        DatasetError: a bad --out, a complete dataset of another name, or a file of the
            prepared format (prepared.FILE_NAMES, or a temporary of one) that this script
            did not write.
    """
    _check_out_dir(out_dir)
    present = sorted(name for name in os.listdir(out_dir) if prepared.is_format_entry(name))
    if present and not read_manifest(out_dir):
        raise DatasetError('download.py did not write %s (%s does not list it), and it would '
                           'be in the way; it is never removed or overwritten: move it away '
                           'or choose an empty --out' % (os.path.join(out_dir, present[0]),
                                                         MANIFEST))
    old_splits = [split + '/' for split in SPLITS if os.path.isdir(os.path.join(out_dir, split))]
    if old_splits:
        old = ' and '.join(os.path.join(out_dir, folder) for folder in old_splits)
        log('%s is left as it is (not written by this version of download.py); train.py reads '
            'the prepared dataset instead' % old)
    info_path = os.path.join(out_dir, prepared.INFO_FILE)
    if not os.path.lexists(info_path):
        if present:
            log('%s holds a half dataset (%s without %s): converting again; its old files are '
                'replaced once the new ones are written'
                % (out_dir, ', '.join(present), prepared.INFO_FILE))
        return False
    try:
        name = _dataset_written(out_dir)
    except prepared.FormatError as error:
        log('%s is corrupt or damaged (%s): the dataset does not count as complete and is '
            'converted again' % (out_dir, error))
        return False
    if name != dataset.name:
        raise DatasetError('%s already holds the %s dataset; choose another --out'
                           % (out_dir, name))
    return True


def _dataset_written(out_dir):
    """The name of the dataset in `out_dir`, after checking every file of it.

    Raises:
        prepared.FormatError: dataset.json or a split's files are damaged, or dataset.json
            does not name the dataset in its source.
    """
    info = prepared.read_info(out_dir)
    name = info.source.get('dataset') if isinstance(info.source, dict) else None
    if not isinstance(name, str):
        raise prepared.FormatError('%s does not name its dataset in "source"'
                                   % os.path.join(out_dir, prepared.INFO_FILE))
    for split in info.counts:
        prepared.load_prepared(out_dir, split)
    return name


def read_dataset(dataset, download_dir):
    """Reads and checks the verified archives; returns {split: (images, labels)}."""
    if dataset.kind == 'cifar':
        splits = read_cifar_archive(os.path.join(download_dir, dataset.files[0][0]))
    else:
        splits = read_idx_splits(download_dir)
    for split, (images, labels) in splits.items():
        check_split(split, images, labels, dataset)
    return splits


def convert(dataset, download_dir, out_dir, source, stream=None):
    """Reads the verified archives and writes them as a prepared dataset; returns
    {split: count}.

    The manifest is written first (this script owns the format's files in `out_dir`). The
    arrays go to temporary files; only when both splits are complete do they replace the old
    ones, and dataset.json (with `source`) comes last (see prepared.PreparedWriter).
    """
    splits = read_dataset(dataset, download_dir)
    write_manifest(out_dir, dataset)
    progress = Progress('converting %s' % dataset.name, unit='images', stream=stream,
                        total=sum(len(images) for images, _ in splits.values()))
    channels = dataset.image_shape[2] if len(dataset.image_shape) == 3 else 1
    with prepared.PreparedWriter(out_dir, dataset.image_shape[:2], channels, dataset.classes,
                                 source) as writer:
        try:
            for split in SPLITS:
                images, labels = splits[split]
                for start in range(0, len(images), CONVERT_CHUNK):
                    writer.append_images(split, images[start:start + CONVERT_CHUNK])
                    progress.update(len(images[start:start + CONVERT_CHUNK]))
                writer.append_labels(split, labels)
        finally:
            progress.close()
        return writer.close()


def download_dataset(dataset, out_dir, base_urls=None, md5s=None, timeout=DEFAULT_TIMEOUT,
                     stream=None, log=print):
    """Downloads, verifies and converts `dataset` into `out_dir`; returns {split: count} or
    None when `out_dir` already holds it complete.

    `base_urls` overrides the dataset's mirrors; `md5s` ({file name: md5}) overrides the
    official checksums (for tests with small fake files). `timeout` is the deadline of each
    file on each mirror, in seconds.
    """
    if prepare_out_dir(out_dir, dataset, log=log):
        log('%s is already there (%s is complete); nothing to do'
            % (out_dir, os.path.join(out_dir, prepared.INFO_FILE)))
        return None
    download_dir = os.path.join(out_dir, DOWNLOAD_FOLDER)
    os.makedirs(download_dir, exist_ok=True)
    checksums = {name: md5 for name, md5, _ in dataset.files}
    checksums.update(md5s or {})
    for name, _, size in dataset.files:
        fetch(name, checksums[name], max_bytes(size), base_urls or dataset.mirrors,
              download_dir, timeout=timeout, stream=stream, log=log)
    source = {'written_by': 'datasets/download.py', 'dataset': dataset.name,
              'mirrors': list(base_urls or dataset.mirrors),
              'archives': [{'name': name, 'md5': checksums[name], 'bytes': os.path.getsize(
                  os.path.join(download_dir, name))} for name, _, _ in dataset.files]}
    counts = convert(dataset, download_dir, out_dir, source, stream=stream)
    log('wrote %d training and %d test images of %s to %s (archives kept in %s)'
        % (counts['train'], counts['test'], dataset.name, out_dir, download_dir))
    return counts


def build_parser():
    """Returns the command-line parser."""
    parser = cli.ArgumentParser(
        description='Download MNIST, Fashion-MNIST or CIFAR-10, verify the MD5 checksums '
                    'and write the images as a prepared dataset (DIR/dataset.json and '
                    'uint8 .npy arrays) for train.py --data_dir=DIR.')
    parser.add_argument('dataset', choices=sorted(DATASETS),
                        help='which dataset: mnist and fashion_mnist (28x28 grayscale), '
                             'cifar10 (32x32 RGB)')
    parser.add_argument('--out', required=True, metavar='DIR',
                        help='output folder (required; no default). Archives go to '
                             'DIR/.downloads/, the dataset to DIR/dataset.json, '
                             'DIR/train_images.npy, ... Files this script did not write are '
                             'never removed: if one has those names, it stops before '
                             'downloading')
    parser.add_argument('--base_url', action='append', metavar='URL',
                        help='base URL the archive names are appended to; repeat it to '
                             'give mirrors, each tried when the one before fails (default: '
                             'the official sources: '
                             + '; '.join('%s: %s' % (name, ' then '.join(d.mirrors))
                                         for name, d in sorted(DATASETS.items())) + ')')
    parser.add_argument('--timeout', type=cli.positive_float, default=DEFAULT_TIMEOUT,
                        metavar='SECONDS',
                        help='the longest one file may take from one mirror, in seconds; '
                             'a connection or read that waits min(SECONDS, %g) s fails '
                             'too (default: %%(default)s)' % STALL_SECONDS)
    return parser


def main(argv=None, md5s=None, stream=None):
    """Runs the command line; returns the exit status (0 done, 2 error, 130 interrupted).

    `md5s` ({file name: md5}) overrides the official checksums, for tests.
    """
    stream = sys.stderr if stream is None else stream
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return exit_.code
    for url in args.base_url or ():
        if urllib.parse.urlsplit(url).scheme not in ('http', 'https'):
            stream.write('error: --base_url=%s is not an http:// or https:// URL\n' % url)
            return 2
    try:
        download_dataset(DATASETS[args.dataset], args.out, base_urls=args.base_url,
                         md5s=md5s, timeout=args.timeout, stream=stream)
    except (DownloadError, FormatError, DatasetError, OSError) as error:
        message = ' '.join(str(error).split()) or type(error).__name__
        stream.write('error: %s\n' % message)
        return 2
    except KeyboardInterrupt:
        stream.write('\nerror: interrupted; run the same command again to resume\n')
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
