"""Writing files: atomically (readers see the old content or the new, never half a file),
and under an exclusive OS lock (one writer)."""
import contextlib
import fcntl
import json
import os
import secrets

TEMPORARY_MARK = '.tmp-'  # in the names of temporary files: .NAME.tmp-PID-RANDOM


def is_temporary(name):
    """Whether a file name is that of a temporary file of write_atomic."""
    return name.startswith('.') and TEMPORARY_MARK in name


def write_atomic(path, write):
    """Writes a file through a temporary file in the same folder and a rename.

    The folder is created when missing. The file gets the permissions a plain open() would
    give it (0666 less the umask). The temporary file is removed when `write` (or the rename)
    fails, and `path` keeps whatever it held before.

    Args:
        path: the file to write.
        write: function(binary file object) that writes the content.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary_path = os.path.join(folder, '.%s%s%d-%s' % (
        os.path.basename(path), TEMPORARY_MARK, os.getpid(), secrets.token_hex(4)))
    descriptor = os.open(temporary_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, 'wb') as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary_path, path)
    except BaseException:
        if os.path.exists(temporary_path):
            os.remove(temporary_path)
        raise


def write_json_atomic(path, content):
    """Writes `content` as indented, key-sorted JSON to `path` (see write_atomic)."""
    text = json.dumps(content, indent=2, sort_keys=True) + '\n'
    write_atomic(path, lambda stream: stream.write(text.encode('utf-8')))


class LockedError(Exception):
    """The lock is held by another process; `holder` is its PID as text ('unknown' if not
    recorded)."""

    def __init__(self, holder):
        super().__init__('locked by PID %s' % holder)
        self.holder = holder


@contextlib.contextmanager
def exclusive_lock(path):
    """Holds an exclusive flock on the file `path` (created with its folder when missing)
    while in the block, with this process's PID written in it.

    The OS releases the lock when the block ends or the process dies, however it dies.

    Raises:
        LockedError: when another process holds the lock.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(_recorded_pid(descriptor)) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, b'%d\n' % os.getpid())
        yield
    finally:
        os.close(descriptor)


def lock_holder(path):
    """The PID (text) of the process holding the lock on `path`, or None; writes nothing."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return None
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
    return os.read(descriptor, 32).decode('ascii', 'replace').strip() or 'unknown'
