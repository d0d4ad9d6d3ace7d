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
import math
import os
import secrets
import stat

from wavenet.errors import Error

TEMPORARY_MARK = '.tmp-'  # in the names of temporary files: .NAME.tmp-PID-RANDOM
JSON_LIMIT = 1 << 20  # bytes: the largest settings file read


def read_regular(path, limit, what='file'):
    """The bytes of the regular file `path`; Error naming it when it is missing, not a regular
    file (a folder, FIFO, device or socket), larger than `limit` bytes or unreadable."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            raise Error('%s %s is not a regular file: replace it with one' % (what, path))
        with os.fdopen(descriptor, 'rb') as stream:
            content = stream.read(limit + 1)
    except FileNotFoundError:
        raise Error('%s %s does not exist' % (what, path)) from None
    except OSError as error:
        raise Error('cannot read %s %s (%s)' % (what, path, error.strerror)) from None
    if len(content) > limit:
        raise Error('%s %s is larger than %d bytes: it is not a file this project wrote'
                    % (what, path, limit))
    return content


def _finite(text):
    """float(text) for a JSON number or constant, refusing NaN, Infinity and overflow."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError('%s is not a finite number' % text)
    return value


def parse_json(text, source):
    """JSON text (str or bytes) as Python values; Error naming `source` for anything that is
    not plain, finite JSON (NaN, Infinity, numbers out of range, nesting too deep)."""
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_finite)
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
    """Writes `path` (its folder created when missing, `mode` less the umask) by calling
    write(binary file) on a temporary file beside it, then renaming; when either fails the
    temporary is removed and `path` keeps what it held."""
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
    if os.path.islink(path):
        raise Error('%s is a symlink: remove it (a lock file is never followed)' % path)
    if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
        raise Error('%s is not a regular file: remove it' % path)
    descriptor = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):  # replaced since the check
        os.close(descriptor)
        raise Error('%s is not a regular file: remove it' % path)
    return descriptor


@contextlib.contextmanager
def exclusive_lock(path):
    """Holds an exclusive flock on the file `path` (created with its folder when missing), holding
    this process's PID, in the block; the OS releases it when the block ends or the process dies.
    LockedError when another process holds it; Error for a symlink or not a regular file."""
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
    Error when `path` is a symlink or not a regular file."""
    if not os.path.lexists(path):
        return None
    try:
        descriptor = _open_lock(path, os.O_RDONLY)
    except OSError as error:  # another user's lock, say
        raise Error('cannot read the lock %s (%s): remove it, or train into another logdir'
                    % (path, error.strerror)) from None
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
