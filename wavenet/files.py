"""Files the project reads as settings and writes as results, safely on a shared file system.

- Reading: only regular files (a FIFO, device or socket in a file's place is refused without
  blocking), at most a size limit, JSON parsed so that no content raises anything but an
  errors.Error naming the file.
- Writing: atomically, through a temporary file in the same folder and a rename (readers see
  the old content or the new, never half a file, and a symlink in the file's place is replaced,
  never followed).
- Locking: one writer a folder, under an OS lock on a regular file that is never a symlink.
"""
import contextlib
import fcntl
import json
import os
import secrets
import stat

from wavenet.errors import Error

TEMPORARY_MARK = '.tmp-'  # in the names of temporary files: .NAME.tmp-PID-RANDOM
JSON_LIMIT = 1 << 20  # bytes: the largest settings file read


def read_regular(path, limit, what='file'):
    """The bytes of the regular file `path`, of at most `limit` bytes.

    Raises:
        Error: naming the path, when it is missing, not a regular file (a folder, FIFO,
            device or socket), larger than `limit` or unreadable.
    """
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise Error('%s %s does not exist' % (what, path)) from None
    except OSError as error:
        raise Error('cannot read %s %s (%s)' % (what, path, error.strerror)) from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise Error('%s %s is not a regular file: replace it with one' % (what, path))
        content = os.read(descriptor, limit + 1)
        while len(content) <= limit:
            chunk = os.read(descriptor, limit + 1 - len(content))
            if not chunk:
                break
            content += chunk
    except OSError as error:
        raise Error('cannot read %s %s (%s)' % (what, path, error.strerror)) from None
    finally:
        os.close(descriptor)
    if len(content) > limit:
        raise Error('%s %s is larger than %d bytes: it is not a file this project wrote'
                    % (what, path, limit))
    return content


def _finite(text):
    value = float(text)
    if value in (float('inf'), float('-inf')):
        raise ValueError('number %s out of range' % text)
    return value


def _no_constant(name):
    raise ValueError('%s is not a JSON number' % name)


def parse_json(text, source):
    """JSON text (str or bytes) as Python values; Error naming `source` for anything that is
    not plain, finite JSON (NaN, Infinity, numbers out of range, nesting too deep)."""
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise Error('%s is nested too deeply to be a file this project wrote' % source) from None
    except (ValueError, TypeError) as error:  # UnicodeDecodeError is a ValueError
        raise Error('%s is not valid JSON (%s)' % (source, ' '.join(str(error).split())[:200])
                    ) from None


def read_json(path, what='file', limit=JSON_LIMIT):
    """The JSON content of a regular file of at most `limit` bytes (read_regular, parse_json)."""
    return parse_json(read_regular(path, limit, what), '%s %s' % (what, path))


def temporary_path(path):
    """A new temporary name beside `path`: FOLDER/.NAME.tmp-PID-RANDOM."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, '.%s%s%d-%s' % (name, TEMPORARY_MARK, os.getpid(),
                                                secrets.token_hex(4)))


def is_temporary(name):
    """Whether a file name is that of a temporary_path."""
    return name.startswith('.') and TEMPORARY_MARK in name


def remove_quietly(path):
    """Removes a file if it is there; a file that cannot be removed stays."""
    with contextlib.suppress(OSError):
        os.remove(path)


def write_atomic(path, write, mode=0o666):
    """Writes a file through a temporary file in the same folder and a rename.

    The folder is created when missing. The file gets `mode` less the umask. The temporary
    file is removed when `write` (or the rename) fails, and `path` keeps what it held before.

    Args:
        path: the file to write.
        write: function(binary file object) that writes the content.
        mode: the permissions of the new file (before the umask).
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = temporary_path(path)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, 'wb') as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        remove_quietly(temporary)
        raise


def write_json_atomic(path, content):
    """Writes `content` as indented, key-sorted JSON to `path` (see write_atomic)."""
    text = json.dumps(content, indent=2, sort_keys=True) + '\n'
    write_atomic(path, lambda stream: stream.write(text.encode('utf-8')))


class LockedError(Error):
    """The lock is held by another process; `holder` is its PID as text."""

    def __init__(self, path, holder):
        super().__init__('%s is held by another process (PID %s)' % (path, holder))
        self.holder = holder


def _open_lock(path, flags):
    """A descriptor of the lock file, refusing a symlink or anything but a regular file."""
    try:
        descriptor = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as error:
        if os.path.islink(path):
            raise Error('%s is a symlink: remove it (a lock file is never followed)'
                        % path) from None
        raise
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise Error('%s is not a regular file: remove it' % path)
    return descriptor


@contextlib.contextmanager
def exclusive_lock(path):
    """Holds an exclusive flock on the file `path` (created with its folder when missing)
    while in the block, with this process's PID written in it.

    The OS releases the lock when the block ends or the process dies, however it dies.

    Raises:
        LockedError: when another process holds the lock.
        Error: when `path` is a symlink or not a regular file.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    descriptor = _open_lock(path, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(path, _recorded_pid(descriptor)) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, b'%d\n' % os.getpid())
        yield
    finally:
        os.close(descriptor)


def lock_holder(path):
    """The PID (text) of the process holding the lock on `path`, or None; writes nothing.

    Raises:
        Error: when `path` is a symlink or not a regular file.
    """
    if not os.path.lexists(path):
        return None
    descriptor = _open_lock(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _recorded_pid(descriptor)
    finally:
        os.close(descriptor)


def _recorded_pid(descriptor):
    """The PID written in a lock file, as text ('unknown' when empty)."""
    os.lseek(descriptor, 0, os.SEEK_SET)
    text = os.read(descriptor, 32).decode('ascii', 'replace').strip()
    return text if text.isdigit() else 'unknown'
