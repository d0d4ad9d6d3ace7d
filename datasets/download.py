"""Downloads MNIST, Fashion-MNIST or CIFAR-10 and writes them as PNG files for train.py.

    python datasets/download.py mnist|fashion_mnist|cifar10 --out=DIR

The official archives go to `DIR/.downloads/` (a download resumes from its `.part` file
and is kept only once its MD5 checksum matches); the images become 8-bit PNG files in
`DIR/train/<class>/00042.png` and `DIR/test/<class>/...` (MNIST and Fashion-MNIST: 28x28
grayscale; CIFAR-10: 32x32 RGB). `DIR/.complete` is written last: a DIR without it never
counts as a whole dataset. Needs only the standard library, numpy, Pillow and the
project's wavenet/progress.py and wavenet/files.py (which do not import TensorFlow).
"""
import argparse
import collections
import gzip
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
from PIL import Image

# `python datasets/download.py` puts datasets/ first on sys.path, not the project root.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from wavenet.files import write_atomic  # noqa: E402
from wavenet.progress import Progress, format_bytes  # noqa: E402

SPLITS = ('train', 'test')
COMPLETE_MARKER = '.complete'
DOWNLOAD_FOLDER = '.downloads'
CHUNK_BYTES = 1 << 16
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
# kind: 'idx' or 'cifar'; mirrors: base URLs tried in order; files: ((file name, md5), ...);
# image_shape: (height, width) or (height, width, 3); counts: (train, test) of the real data.

# MD5 checksums. MNIST and Fashion-MNIST: the `resources` lists of torchvision's MNIST and
# FashionMNIST classes (pytorch/vision, torchvision/datasets/mnist.py), which also give the
# mirrors. CIFAR-10: torchvision only knows the python (pickle) archive, so the MD5 of the
# binary archive is the one published on the dataset's page,
# https://www.cs.toronto.edu/~kriz/cifar.html ("CIFAR-10 binary version").
DATASETS = {
    'mnist': Dataset(
        name='mnist', kind='idx',
        mirrors=('http://yann.lecun.com/exdb/mnist/',
                 'https://ossci-datasets.s3.amazonaws.com/mnist/'),
        files=(('train-images-idx3-ubyte.gz', 'f68b3c2dcbeaaa9fbdd348bbdeb94873'),
               ('train-labels-idx1-ubyte.gz', 'd53e105ee54ea40749a09fcbcd1e9432'),
               ('t10k-images-idx3-ubyte.gz', '9fb629c4189551a2d022fa330f9573f3'),
               ('t10k-labels-idx1-ubyte.gz', 'ec29112dd5afa0611ce80d1b7f02629c')),
        classes=tuple(str(digit) for digit in range(10)),
        image_shape=(28, 28), counts=(60000, 10000)),
    'fashion_mnist': Dataset(
        name='fashion_mnist', kind='idx',
        mirrors=('http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',),
        files=(('train-images-idx3-ubyte.gz', '8d4fb7e6c68d591d4c3dfef9ec88bf0d'),
               ('train-labels-idx1-ubyte.gz', '25c81989df183df01b3e8a0aad5dffbe'),
               ('t10k-images-idx3-ubyte.gz', 'bef4ecab320f06d8554ea6380940ec79'),
               ('t10k-labels-idx1-ubyte.gz', 'bb300cfdad3c16e7a12a480ee83cd310')),
        classes=('t-shirt_top', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt',
                 'sneaker', 'bag', 'ankle_boot'),
        image_shape=(28, 28), counts=(60000, 10000)),
    'cifar10': Dataset(
        name='cifar10', kind='cifar',
        mirrors=('https://www.cs.toronto.edu/~kriz/',),
        files=(('cifar-10-binary.tar.gz', 'c32a1d4ab5d03f1284b67883e8d87530'),),
        classes=('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                 'ship', 'truck'),
        image_shape=(CIFAR_SIZE, CIFAR_SIZE, 3), counts=(50000, 10000)),
}


class DownloadError(Exception):
    """A file could not be fetched (network, HTTP status, short read)."""


class ChecksumError(DownloadError):
    """A downloaded file does not have the expected MD5 checksum."""


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
        raise ChecksumError('checksum mismatch for %s: expected MD5 %s, got %s '
                            '(the file was deleted; run again to download it again)'
                            % (name or os.path.basename(path), expected.lower(), actual))


def _parse_content_range(value):
    """Returns the first byte of a 'bytes FIRST-LAST/TOTAL' header, or None."""
    match = re.match(r'\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*$', value or '')
    return int(match.group(1)) if match else None


def download_file(url, part_path, timeout=60.0, stream=None):
    """Downloads `url` into `part_path`, resuming a partial file with an HTTP Range request.

    When `part_path` exists, asks for the bytes after it: a 206 answer is appended, a 200
    answer (the server ignores ranges) restarts from zero, and a 416 answer (nothing left
    or a changed file) restarts from zero once. The .part file is kept on failure so that
    the next run resumes. Raises DownloadError on any network or HTTP failure.
    """
    start = os.path.getsize(part_path) if os.path.exists(part_path) else 0
    headers = {'User-Agent': 'image-wavenet-datasets/1.0'}
    if start:
        headers['Range'] = 'bytes=%d-' % start
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:
            os.remove(part_path)
            return download_file(url, part_path, timeout, stream)
        raise DownloadError('HTTP %d %s' % (error.code, error.reason)) from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise DownloadError(_reason(error)) from None
    with response:
        mode = 'wb'
        if response.status == 206 and start:
            if _parse_content_range(response.headers.get('Content-Range')) == start:
                mode = 'ab'
            else:
                response.close()
                os.remove(part_path)
                return download_file(url, part_path, timeout, stream)
        elif response.status != 200:
            raise DownloadError('unexpected HTTP status %d' % response.status)
        if mode == 'wb':
            start = 0
        length = response.headers.get('Content-Length')
        length = int(length) if length and length.isdigit() else None
        progress = Progress('downloading %s' % os.path.basename(url),
                            total=None if length is None else start + length,
                            unit='bytes', stream=stream, start=start)
        received = 0
        try:
            with open(part_path, mode) as part_file:
                while True:
                    chunk = response.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    part_file.write(chunk)
                    received += len(chunk)
                    progress.update(len(chunk))
        except (OSError, http.client.HTTPException) as error:
            raise DownloadError('%s after %s' % (_reason(error), format_bytes(start + received))
                                ) from None
        finally:
            progress.close()
        if length is not None and received < length:
            raise DownloadError('connection closed after %s of %s' % (
                format_bytes(start + received), format_bytes(start + length)))
    return part_path


def _reason(error):
    """A short one-line description of a network error."""
    if isinstance(error, urllib.error.URLError) and not isinstance(error.reason, str):
        error = error.reason
    text = str(error) or type(error).__name__
    return ' '.join(text.split())


def fetch(name, md5, base_urls, download_dir, timeout=60.0, stream=None, log=print):
    """Returns the path of the verified file `name` in `download_dir`, downloading it if needed.

    An existing file with the right checksum is used as it is. Otherwise the base URLs are
    tried in order into `name.part`, which is renamed to `name` only once its MD5 matches.
    Raises ChecksumError on a mismatch (the bad file is deleted) and DownloadError when no
    base URL worked.
    """
    path = os.path.join(download_dir, name)
    if os.path.exists(path):
        if md5_of(path) == md5.lower():
            log('%s: already downloaded and verified' % name)
            return path
        log('%s: wrong checksum, downloading it again' % name)
        os.remove(path)
    part_path = path + '.part'
    failures = []
    for base_url in base_urls:
        url = base_url.rstrip('/') + '/' + name
        log('downloading %s' % url)
        try:
            download_file(url, part_path, timeout=timeout, stream=stream)
        except DownloadError as error:
            log('  failed: %s' % error)
            failures.append('%s (%s)' % (url, error))
            continue
        verify_md5(part_path, md5, name=name)
        os.replace(part_path, path)
        return path
    raise DownloadError('could not download %s: %s' % (name, '; '.join(failures)))


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


def write_split(images, labels, class_names, folder, progress=None):
    """Writes images[i] as `folder/<class_names[labels[i]]>/%05d.png` (i: index in the split).

    Images [N, H, W] become 8-bit grayscale ('L') PNGs, [N, H, W, 3] RGB. Every class gets
    a folder, even an empty one. Returns the number of files written.
    """
    for name in class_names:
        os.makedirs(os.path.join(folder, name), exist_ok=True)
    digits = max(5, len(str(len(images) - 1)))
    for index, (image, label) in enumerate(zip(images, labels)):
        path = os.path.join(folder, class_names[int(label)], '%0*d.png' % (digits, index))
        Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(path)
        if progress is not None:
            progress.update(1)
    return len(images)


def _is_our_split(folder, class_names):
    """True when `folder` holds only class folders of `class_names` with NNNNN.png files."""
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name not in class_names or os.path.islink(path) or not os.path.isdir(path):
            return False
        for file_name in os.listdir(path):
            if not re.fullmatch(r'\d{5,}\.png', file_name):
                return False
    return True


def prepare_out_dir(out_dir, dataset, log=print):
    """Checks the output folder; returns True when it already holds the complete dataset.

    Creates the folder when missing. A train/ or test/ without `.complete` is a half
    dataset from an interrupted run: it is removed (it is converted again). Folders this
    script did not write, or a complete dataset of another name, raise DatasetError.
    """
    if not out_dir:
        raise DatasetError('--out is empty')
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise DatasetError('--out=%s exists and is not a folder' % out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise DatasetError('cannot create --out=%s: %s' % (out_dir, _reason(error))) from None
    marker = os.path.join(out_dir, COMPLETE_MARKER)
    if os.path.isfile(marker):
        try:
            with open(marker) as marker_file:
                name = json.load(marker_file).get('dataset')
        except (OSError, ValueError, AttributeError):
            name = None
        if name not in (None, dataset.name):
            raise DatasetError('%s already holds the %s dataset; choose another --out'
                               % (out_dir, name))
        return True
    for split in SPLITS:
        temporary = os.path.join(out_dir, '.tmp-' + split)
        if os.path.isdir(temporary):
            shutil.rmtree(temporary)
    present = [split for split in SPLITS if os.path.lexists(os.path.join(out_dir, split))]
    for split in present:
        folder = os.path.join(out_dir, split)
        if os.path.islink(folder) or not os.path.isdir(folder) \
                or not _is_our_split(folder, dataset.classes):
            raise DatasetError('%s holds files this script did not write (no %s marker); '
                               'remove it or choose another --out' % (folder, COMPLETE_MARKER))
    if present:
        log('%s holds a half dataset (%s without %s): removing it and converting again'
            % (out_dir, ' and '.join(s + '/' for s in present), COMPLETE_MARKER))
        for split in present:
            shutil.rmtree(os.path.join(out_dir, split))
    return False


def convert(dataset, download_dir, out_dir, stream=None):
    """Reads the verified archives and writes both splits as PNG files, then `.complete`.

    Each split is written into `out_dir/.tmp-SPLIT` and renamed into place once both are
    written; the `.complete` marker (with the counts) comes last. Returns {split: count}.
    """
    if dataset.kind == 'cifar':
        splits = read_cifar_archive(os.path.join(download_dir, dataset.files[0][0]))
    else:
        splits = read_idx_splits(download_dir)
    for split, (images, labels) in splits.items():
        check_split(split, images, labels, dataset)
    total = sum(len(images) for images, _ in splits.values())
    progress = Progress('converting %s' % dataset.name, total=total, unit='images',
                        stream=stream)
    counts = {}
    try:
        for split in SPLITS:
            images, labels = splits[split]
            counts[split] = write_split(images, labels, dataset.classes,
                                        os.path.join(out_dir, '.tmp-' + split), progress)
    finally:
        progress.close()
    for split in SPLITS:
        os.replace(os.path.join(out_dir, '.tmp-' + split), os.path.join(out_dir, split))
    marker = {'dataset': dataset.name, 'image_shape': list(dataset.image_shape),
              'classes': list(dataset.classes), 'train': counts['train'],
              'test': counts['test']}
    text = json.dumps(marker, indent=1) + '\n'
    write_atomic(os.path.join(out_dir, COMPLETE_MARKER),
                 lambda marker_file: marker_file.write(text.encode('utf-8')))
    return counts


def download_dataset(dataset, out_dir, base_urls=None, md5s=None, timeout=60.0,
                     stream=None, log=print):
    """Downloads, verifies and converts `dataset` into `out_dir`; returns {split: count} or
    None when `out_dir` already holds it complete.

    `base_urls` overrides the dataset's mirrors; `md5s` ({file name: md5}) overrides the
    official checksums (for tests with small fake files).
    """
    if prepare_out_dir(out_dir, dataset, log=log):
        log('%s is already there (%s exists); nothing to do'
            % (out_dir, os.path.join(out_dir, COMPLETE_MARKER)))
        return None
    download_dir = os.path.join(out_dir, DOWNLOAD_FOLDER)
    os.makedirs(download_dir, exist_ok=True)
    checksums = dict(dataset.files)
    checksums.update(md5s or {})
    for name, _ in dataset.files:
        fetch(name, checksums[name], base_urls or dataset.mirrors, download_dir,
              timeout=timeout, stream=stream, log=log)
    counts = convert(dataset, download_dir, out_dir, stream=stream)
    log('wrote %d training and %d test images of %s to %s (archives kept in %s)'
        % (counts['train'], counts['test'], dataset.name, out_dir, download_dir))
    return counts


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: 'error: ...'."""

    def error(self, message):
        self.exit(2, 'error: %s (see --help)\n' % message)


def build_parser():
    """Returns the command-line parser."""
    parser = _Parser(
        description='Download MNIST, Fashion-MNIST or CIFAR-10, verify the MD5 checksums '
                    'and write the images as PNG files in DIR/train/<class>/ and '
                    'DIR/test/<class>/ for train.py --data_dir=DIR.')
    parser.add_argument('dataset', choices=sorted(DATASETS),
                        help='which dataset: mnist and fashion_mnist (28x28 grayscale), '
                             'cifar10 (32x32 RGB)')
    parser.add_argument('--out', required=True, metavar='DIR',
                        help='output folder (required; no default). Archives go to '
                             'DIR/.downloads/, images to DIR/train/ and DIR/test/')
    parser.add_argument('--base_url', action='append', metavar='URL',
                        help='base URL the archive names are appended to; repeat it to '
                             'give mirrors tried in order (default: the official sources: '
                             + '; '.join('%s: %s' % (name, ' then '.join(d.mirrors))
                                         for name, d in sorted(DATASETS.items())) + ')')
    parser.add_argument('--timeout', type=float, default=60.0, metavar='SECONDS',
                        help='network timeout of each connection and read, in seconds '
                             '(default: %(default)s)')
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
    if not args.timeout > 0:
        stream.write('error: --timeout must be positive\n')
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
