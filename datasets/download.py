"""Downloads MNIST, Fashion-MNIST or CIFAR-10 and writes it as a prepared dataset for train.py.

    python -m datasets.download mnist|fashion_mnist|cifar10 --out=DIR

The archives go to DIR/.downloads/, each resumed from its .part file (HTTP Range) and verified
(MD5), from each mirror in turn. DIR follows prepared.check_output. Needs only the standard
library, numpy and wavenet/ (no TensorFlow). datasets/README.md has more.
"""
import collections
import gzip
import hashlib
import http.client
import os
import re
import stat
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from wavenet import cli, errors, prepared
from wavenet.progress import Progress, format_bytes

WRITTEN_BY = 'datasets/download.py'
DOWNLOAD_FOLDER = '.downloads'
CHUNK_BYTES = 1 << 16
SIZE_MARGIN_BYTES = 64 << 10  # plus 1% of the known size: the most a mirror may send
DEFAULT_TIMEOUT = 600.0  # seconds for each whole file
STALL_SECONDS = 60.0  # the longest wait for a connection or a read, when --timeout is longer
IDX_IMAGES, IDX_LABELS = (2051, 3), (2049, 1)  # magic number, dimensions (unsigned bytes)
IDX_FILES = {'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
             'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')}
CIFAR_SIZE = 32
CIFAR_RECORD_BYTES = 1 + 3 * CIFAR_SIZE * CIFAR_SIZE
CIFAR_MEMBERS = {'train': tuple('cifar-10-batches-bin/data_batch_%d.bin' % i for i in range(1, 6)),
                 'test': ('cifar-10-batches-bin/test_batch.bin',)}

# kind: 'idx' or 'cifar'; mirrors: base URLs tried in order; files: ((name, md5, bytes), ...);
# image_shape: (height, width) or (height, width, 3).
Dataset = collections.namedtuple('Dataset', 'name kind mirrors files classes image_shape')

# MD5s and mirrors: MNIST and Fashion-MNIST, the `resources` of torchvision's datasets/mnist.py;
# CIFAR-10 binary, https://www.cs.toronto.edu/~kriz/cifar.html. Sizes: as the torchvision,
# Keras and TensorFlow downloaders report them.
DATASETS = {
    'mnist': Dataset(
        name='mnist', kind='idx',
        mirrors=('http://yann.lecun.com/exdb/mnist/',
                 'https://ossci-datasets.s3.amazonaws.com/mnist/'),
        files=(('train-images-idx3-ubyte.gz', 'f68b3c2dcbeaaa9fbdd348bbdeb94873', 9912422),
               ('train-labels-idx1-ubyte.gz', 'd53e105ee54ea40749a09fcbcd1e9432', 28881),
               ('t10k-images-idx3-ubyte.gz', '9fb629c4189551a2d022fa330f9573f3', 1648877),
               ('t10k-labels-idx1-ubyte.gz', 'ec29112dd5afa0611ce80d1b7f02629c', 4542)),
        classes=tuple(str(digit) for digit in range(10)), image_shape=(28, 28)),
    'fashion_mnist': Dataset(
        name='fashion_mnist', kind='idx',
        mirrors=('http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',),
        files=(('train-images-idx3-ubyte.gz', '8d4fb7e6c68d591d4c3dfef9ec88bf0d', 26421880),
               ('train-labels-idx1-ubyte.gz', '25c81989df183df01b3e8a0aad5dffbe', 29515),
               ('t10k-images-idx3-ubyte.gz', 'bef4ecab320f06d8554ea6380940ec79', 4422102),
               ('t10k-labels-idx1-ubyte.gz', 'bb300cfdad3c16e7a12a480ee83cd310', 5148)),
        classes=('t-shirt_top', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt',
                 'sneaker', 'bag', 'ankle_boot'), image_shape=(28, 28)),
    'cifar10': Dataset(
        name='cifar10', kind='cifar',
        mirrors=('https://www.cs.toronto.edu/~kriz/',),
        files=(('cifar-10-binary.tar.gz', 'c32a1d4ab5d03f1284b67883e8d87530', 170052171),),
        classes=('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                 'ship', 'truck'), image_shape=(CIFAR_SIZE, CIFAR_SIZE, 3)),
}


class MirrorError(Exception):
    """A mirror did not give a file (network, HTTP status, size, deadline, checksum)."""


def md5_of(path):
    """The hex MD5 digest of a file."""
    with open(path, 'rb') as data_file:
        return hashlib.file_digest(data_file, lambda: hashlib.md5(usedforsecurity=False)
                                   ).hexdigest()


def _open_from(url, part_path, wait):
    """(response, offset of its body) for `url` after the bytes of `part_path`, waiting at most
    `wait` s to connect or read: a 206 there resumes, a 200 starts from zero; a 416, or a 206
    elsewhere (a changed file), deletes the .part file and asks again from zero."""
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
        raise MirrorError('HTTP %d %s' % (error.code, error.reason)) from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise MirrorError(errors.reason(error)) from None
    if response.status == 206 and start:
        match = re.match(r'\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*$',
                         response.headers.get('Content-Range') or '')
        if match and int(match.group(1)) == start:
            return response, start
        response.close()
        os.remove(part_path)
        return _open_from(url, part_path, wait)
    if response.status != 200:
        response.close()
        raise MirrorError('unexpected HTTP status %d' % response.status)
    return response, 0


def download_file(url, part_path, limit, timeout=DEFAULT_TIMEOUT):
    """Downloads `url` into `part_path`, resuming it; the offset resumed from (0: the start).
    MirrorError when it fails: the .part file is kept on a network failure or after `timeout`
    s (to resume), deleted past `limit` bytes; a read may wait min(timeout, STALL_SECONDS)."""
    deadline = time.monotonic() + timeout
    if os.path.lexists(part_path) and (not stat.S_ISREG(os.lstat(part_path).st_mode)
                                       or os.path.getsize(part_path) > limit):
        os.remove(part_path)  # never appended to through a link, nor blocked on a FIFO
    response, start = _open_from(url, part_path, min(timeout, STALL_SECONDS))
    with response:
        value = (response.headers.get('Content-Length') or '').strip()
        length = start + int(value) if value.isdigit() else None
        if length is not None and length > limit:
            raise MirrorError('the server announces %s, more than the %s this file may have'
                              % (format_bytes(length), format_bytes(limit)))
        progress = Progress('downloading %s' % os.path.basename(url), total=length, start=start)
        size = start
        try:
            with open(part_path, 'ab' if start else 'wb') as part_file:
                # read1: a trickle of bytes returns at once, and the deadline is checked.
                while chunk := response.read1(min(CHUNK_BYTES, limit + 1 - size)):
                    size += len(chunk)
                    if size > limit:
                        os.remove(part_path)
                        raise MirrorError('the server sent more than %s, the most this file '
                                          'may have' % format_bytes(limit))
                    part_file.write(chunk)
                    progress.update(len(chunk))
                    if time.monotonic() > deadline:
                        raise MirrorError('not complete within --timeout=%g s (%s received)'
                                          % (timeout, format_bytes(size)))
        except (OSError, http.client.HTTPException) as error:
            raise MirrorError('%s after %s' % (errors.reason(error), format_bytes(size))) from None
        finally:
            progress.close()
    if length is not None and size < length:
        raise MirrorError('connection closed after %s of %s' % (format_bytes(size),
                                                                format_bytes(length)))
    return start


def fetch(name, md5, limit, base_urls, download_dir, timeout=DEFAULT_TIMEOUT):
    """The path of the verified file `name` in `download_dir`, downloaded when needed into
    NAME.part from each base URL in turn, renamed once its MD5 is right (a mismatch after
    resuming downloads it again from the start first); Error naming each mirror's failure."""
    path, md5, failures = os.path.join(download_dir, name), md5.lower(), []
    part = path + '.part'
    if os.path.isfile(path):
        if md5_of(path) == md5:
            print('%s: already downloaded and verified' % name)
            return path
        print('%s: wrong checksum, downloading it again' % name)
    for base_url in base_urls:
        url = base_url.rstrip('/') + '/' + name
        print('downloading %s' % url)
        try:
            resumed = download_file(url, part, limit, timeout)
            if resumed and md5_of(part) != md5:
                print('  checksum mismatch after resuming at %s: downloading it again from '
                      'the start' % format_bytes(resumed))
                os.remove(part)
                download_file(url, part, limit, timeout)
            actual = md5_of(part)
            if actual != md5:
                os.remove(part)
                raise MirrorError('checksum mismatch for %s: expected MD5 %s, got %s'
                                  % (name, md5, actual))
        except MirrorError as error:
            print('  failed: %s' % error)
            failures.append('%s (%s)' % (url, error))
            continue
        os.replace(part, path)
        return path
    raise errors.Error('could not download %s from any mirror: %s' % (name, '; '.join(failures)))


def read_idx(data, magic_and_ndim, name='IDX data'):
    """A uint8 array from uncompressed IDX bytes: a big-endian int32 magic number (IDX_IMAGES
    or IDX_LABELS), ndim dimensions, then exactly their product in bytes; else DataError."""
    magic, ndim = magic_and_ndim
    header_bytes, found = 4 * (1 + ndim), int.from_bytes(data[:4], 'big')
    if len(data) >= 4 and found != magic:
        raise errors.DataError('%s: IDX magic number is %d, expected %d' % (name, found, magic))
    if len(data) < header_bytes:
        raise errors.DataError('%s: too short for an IDX header (%d bytes)' % (name, len(data)))
    shape = tuple(int(size) for size in np.frombuffer(data, '>u4', count=1 + ndim)[1:])
    expected = header_bytes + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise errors.DataError('%s: IDX data of shape %s should have %d bytes, has %d'
                               % (name, shape, expected, len(data)))
    return np.frombuffer(data, dtype=np.uint8, offset=header_bytes).reshape(shape)


def read_cifar_binary(data, name='CIFAR-10 data'):
    """(images uint8 [N, 32, 32, 3], labels uint8 [N]) of CIFAR-10 binary records: a label
    byte, then the red, green and blue planes, each 32x32 in row-major order."""
    if not data or len(data) % CIFAR_RECORD_BYTES:
        raise errors.DataError('%s: %d bytes are not a whole number of %d-byte CIFAR-10 '
                               'records' % (name, len(data), CIFAR_RECORD_BYTES))
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR_RECORD_BYTES)
    planes = records[:, 1:].reshape(-1, 3, CIFAR_SIZE, CIFAR_SIZE)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), records[:, 0].copy()


def read_cifar_archive(path):
    """{member name: bytes} of the batch files of cifar-10-binary.tar.gz, read through
    extractfile: nothing in the archive is written to disk, so its paths do not matter."""
    wanted = {name for names in CIFAR_MEMBERS.values() for name in names}
    contents, name = {}, os.path.basename(path)
    try:
        with tarfile.open(path, 'r:gz') as archive:
            for member in archive:
                if member.name in wanted:
                    if not member.isfile():
                        raise errors.DataError('%s in %s is not a regular file'
                                               % (member.name, name))
                    contents[member.name] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise errors.DataError('%s is not a valid tar.gz archive: %s'
                               % (name, errors.reason(error))) from None
    if wanted - set(contents):
        raise errors.DataError('%s lacks %s' % (name, ', '.join(sorted(wanted - set(contents)))))
    return contents


def _gunzip(download_dir, name):
    """The uncompressed bytes of the file `name`; DataError naming it."""
    try:
        with gzip.open(os.path.join(download_dir, name), 'rb') as gz_file:
            return gz_file.read()
    except (OSError, EOFError) as error:
        raise errors.DataError('%s: not a valid gzip file (%s)' % (name, errors.reason(error))
                               ) from None


def read_dataset(dataset, download_dir):
    """{split: (images uint8 [N, H, W(, 3)], labels uint8 [N])} of the verified archives,
    checked against the dataset's image shape and classes; DataError otherwise."""
    contents = (read_cifar_archive(os.path.join(download_dir, dataset.files[0][0]))
                if dataset.kind == 'cifar' else None)
    splits = {}
    for split in prepared.SPLITS:
        if contents is not None:  # (images, labels) of each batch file
            images, labels = map(np.concatenate, zip(*(
                read_cifar_binary(contents[name], name) for name in CIFAR_MEMBERS[split])))
        else:  # a gzipped images file and labels file
            images, labels = (read_idx(_gunzip(download_dir, name), kind, name)
                              for name, kind in zip(IDX_FILES[split], (IDX_IMAGES, IDX_LABELS)))
        if (not len(images) or len(images) != len(labels) or images.shape[1:] != dataset.image_shape
                or int(labels.max()) >= len(dataset.classes)):
            raise errors.DataError(
                'the %s split of %s holds %d images of %s and %d labels up to %d; expected images '
                'of %s and as many labels below %d' % (
                    split, dataset.name, len(images), list(images.shape[1:]), len(labels),
                    labels.max(initial=0), list(dataset.image_shape), len(dataset.classes)))
        splits[split] = images, labels
    return splits


def download_dataset(dataset, out_dir, base_urls=None, md5s=None, timeout=DEFAULT_TIMEOUT):
    """Downloads, verifies and converts a Dataset into `out_dir` from `base_urls` (None: its
    mirrors), `md5s` ({name: md5}, tests) replacing its checksums; {split: count}, None when
    `out_dir` holds it whole. Error for another `out_dir` or dataset, or a file no mirror gave."""
    existing = prepared.check_output(out_dir)
    if existing and existing[1]:
        name, writer = existing[0].get('dataset'), existing[0].get('written_by')
        if writer != WRITTEN_BY or name != dataset.name:
            raise errors.Error('%s already holds %s; choose another --out' % (out_dir, (
                'the %s dataset' % name) if writer == WRITTEN_BY else 'a dataset from ' + writer))
        try:
            for split in prepared.read_info(out_dir).counts:
                prepared.load_prepared(out_dir, split)
            print('%s: %s is already there, complete; nothing to do' % (out_dir, dataset.name))
            return None
        except errors.DataError as error:
            print('%s is damaged (%s): converting it again' % (out_dir, error))
    elif existing:
        print('%s holds an unfinished dataset: converting again; its old files are replaced '
              'once the new ones are written' % out_dir)
    source = {'written_by': WRITTEN_BY, 'dataset': dataset.name,
              'mirrors': list(base_urls or dataset.mirrors)}
    checksums = dict({name: md5 for name, md5, _ in dataset.files}, **(md5s or {}))
    download_dir = os.path.join(out_dir, DOWNLOAD_FOLDER)
    channels = dataset.image_shape[2] if len(dataset.image_shape) == 3 else 1
    with prepared.PreparedWriter(out_dir, dataset.image_shape[:2], channels, dataset.classes,
                                 source) as writer:
        os.makedirs(download_dir, exist_ok=True)
        for name, _, size in dataset.files:
            fetch(name, checksums[name], size + size // 100 + SIZE_MARGIN_BYTES,
                  source['mirrors'], download_dir, timeout)
        splits = read_dataset(dataset, download_dir)
        source['archives'] = [{'name': name, 'md5': checksums[name], 'bytes': os.path.getsize(
            os.path.join(download_dir, name))} for name, _, _ in dataset.files]
        progress = Progress('converting %s' % dataset.name, unit='images',
                            total=sum(len(images) for images, _ in splits.values()))
        try:
            for split, (images, labels) in splits.items():
                writer.append_images(split, images)
                writer.append_labels(split, labels)
                progress.update(len(images))
        finally:
            progress.close()
        counts = writer.close()
    print('wrote %d training and %d test images of %s to %s (archives kept in %s)'
          % (counts['train'], counts['test'], dataset.name, out_dir, download_dir))
    return counts


def main(argv=None, md5s=None):
    """Runs the command line; raises errors.Error on bad input. `md5s` ({file name: md5})
    replaces the official checksums, for tests."""
    parser = cli.ArgumentParser(
        prog='python -m datasets.download',
        description='Download MNIST, Fashion-MNIST or CIFAR-10, verify its MD5 checksums and '
                    'write it as a prepared dataset for train.py --data_dir=DIR.')
    parser.add_argument('dataset', choices=sorted(DATASETS),
                        help='mnist and fashion_mnist (28x28 grayscale), cifar10 (32x32 RGB)')
    parser.add_argument('--out', required=True, metavar='DIR',
                        help='output folder: missing, empty, or a dataset these scripts wrote '
                             '(required); the archives go to DIR/.downloads/')
    parser.add_argument('--base_url', action='append', metavar='URL',
                        help='base URL the archive names are appended to; repeat it to give '
                             'mirrors, each tried when the one before fails (default: the '
                             'official sources: ' + '; '.join(
                                 '%s: %s' % (name, ' then '.join(dataset.mirrors))
                                 for name, dataset in sorted(DATASETS.items())) + ')')
    parser.add_argument('--timeout', type=cli.positive_float, default=DEFAULT_TIMEOUT,
                        metavar='SECONDS',
                        help='the longest one file may take from one mirror; a connection or '
                             'read that waits min(SECONDS, %g) fails too' % STALL_SECONDS)
    args = parser.parse_args(argv)
    for url in args.base_url or ():
        if urllib.parse.urlsplit(url).scheme not in ('http', 'https'):
            raise errors.Error('--base_url=%s is not an http:// or https:// URL' % url)
    if not args.out:
        raise errors.Error('--out is empty')
    try:
        download_dataset(DATASETS[args.dataset], args.out, args.base_url, md5s, args.timeout)
    except OSError as error:
        raise errors.Error('--out=%s: %s' % (args.out, errors.reason(error))) from None


if __name__ == '__main__':
    cli.run_main(main)
