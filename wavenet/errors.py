"""The errors a user can cause and fix, and their one-line messages.

Every error that bad input can cause (a missing or malformed file, a value out of range, a full
disk) derives from Error. The scripts catch it once (cli.run_main) and print `error: MESSAGE`
on one line with exit status 2. The package's messages name files and values, never flags.
"""


class Error(Exception):
    """Bad input, or a write that failed, that the user can fix; the message says how."""


class DataError(Error):
    """A data folder, image file or prepared dataset that cannot be used."""


_TENSORFLOW_ANNOTATIONS = ('[[', 'Node:', 'Detected at', 'File "', 'Graph execution error')


def one_line(text):
    """`text` with every character that would break the line or the terminal escaped (a file
    name that holds a newline stays on one line)."""
    return ''.join(char if char.isprintable() else repr(char)[1:-1] for char in str(text))


def reason(error):
    """A short one-line reason for any exception: of a TensorFlow OpError, the last line that
    is not an annotation (the node, the code that built it); of a URLError, what it wraps."""
    wrapped = getattr(error, 'reason', None)
    if isinstance(wrapped, BaseException):
        error = wrapped
    lines = [line.strip() for line in str(getattr(error, 'message', error)).splitlines()]
    reasons = [line for line in lines if line and not line.startswith(_TENSORFLOW_ANNOTATIONS)]
    return ' '.join(reasons[-1].split()) if reasons else type(error).__name__
