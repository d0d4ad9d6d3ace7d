"""Writing files atomically: readers see the old content or the new, never half a file."""
import json
import os
import secrets


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
    temporary_path = os.path.join(folder, '.%s.tmp-%d-%s' % (
        os.path.basename(path), os.getpid(), secrets.token_hex(4)))
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
