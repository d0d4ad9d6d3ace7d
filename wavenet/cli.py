"""What the command-line scripts share: flag types, quiet TensorFlow, the one error path, signals.

No module of the package imports this one: the arrows point from the scripts down.
"""
import argparse
import contextlib
import logging
import os
import signal
import sys
import tempfile

from wavenet import errors, record


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds '(default: ...)' to the help of every flag whose help does not name it already."""

    def _get_help_string(self, action):
        return action.help if 'default' in (action.help or '') else super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line, 'error: ... (hint)', and whose --help
    shows every default."""

    def __init__(self, **kwargs):
        super().__init__(formatter_class=HelpFormatter, **kwargs)

    def error(self, message):
        self.exit(2, 'error: %s (%s --help lists the flags)\n' % (errors.one_line(message),
                                                                   self.prog))


def checked(check):
    """An argparse type from a function check(text) -> value that raises errors.Error."""
    def parse(text):
        try:
            return check(text)
        except errors.Error as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return parse


def integer_range(minimum, maximum=None):
    """An argparse type: an integer from minimum to maximum (None: no upper bound)."""
    return checked(lambda text: record.parse_number(text, int, minimum, maximum))


positive_int = integer_range(1)
non_negative_int = integer_range(0)
seed = integer_range(0, record.MAX_SEED)
positive_float = checked(lambda text: record.parse_number(text, float, 0, above=True))
fraction = checked(lambda text: record.parse_number(text, float, 0, 1, below=True))
image_size = checked(record.parse_image_size)


def boolean(text):
    """argparse type: true/false, yes/no, 1/0."""
    lowered = text.lower()
    if lowered in ('true', 'yes', '1'):
        return True
    if lowered in ('false', 'no', '0'):
        return False
    raise argparse.ArgumentTypeError('expected true or false, got %r' % text)


class ReplaceDefaultAppend(argparse.Action):
    """A repeatable flag whose values replace its default list (action='append' extends it)."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = getattr(namespace, self.dest)
        setattr(namespace, self.dest, ([] if given is self.default else given) + [values])


def import_tensorflow(verbose):
    """Imports tensorflow.compat.v1 in graph mode (after the flags are parsed: --help does not
    wait for it), quiet unless `verbose`: TF_CPP_MIN_LOG_LEVEL 3 unless the user set it, its
    Python logger at ERROR, and what it writes to stderr while imported held back."""
    if verbose:
        import tensorflow.compat.v1 as tf
    else:
        os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
        with _stderr_held_back():
            import tensorflow.compat.v1 as tf
        tf.get_logger().setLevel(logging.ERROR)
    tf.disable_v2_behavior()
    return tf


@contextlib.contextmanager
def _stderr_held_back():
    """Holds back what is written to file descriptor 2 in the block, shown only if it raises:
    TensorFlow writes lines such as 'oneDNN custom operations are on' while it is imported,
    before TF_CPP_MIN_LOG_LEVEL applies."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode('utf-8', 'replace'))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def count(number, noun):
    """'1 image', '2 images': a number and a noun that takes an s in the plural."""
    return '%d %s%s' % (number, noun, '' if number == 1 else 's')


def warn(message):
    """Prints 'warning: MESSAGE' on one line of stderr."""
    print('warning: %s' % errors.one_line(message), file=sys.stderr, flush=True)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signum` says which."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum, _):
    raise Interrupted(signum)


def run_main(main):
    """Calls main() as the scripts' one error path: an errors.Error becomes one stderr line,
    'error: MESSAGE', and exit status 2; SIGINT and SIGTERM (unless handled otherwise) raise
    Interrupted, so that `finally` blocks clean up, and exit with 128 + the signal number."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        main()
    except errors.Error as error:
        sys.stdout.flush()
        print('error: %s' % errors.one_line(error), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as interrupt:
        signum = getattr(interrupt, 'signum', signal.SIGINT)
        print('\nerror: interrupted (%s)' % signal.Signals(signum).name, file=sys.stderr)
        sys.exit(128 + signum)


class StopRequest:
    """Turns the first SIGINT/SIGTERM into a request to stop at the next safe point (the end
    of a training step, of a run of pixels), saying what the process is `doing`; a second
    exits at once (128 + the signal), saying what is `kept`. (Raising in the signal handler
    could land inside TensorFlow's session.run, which does not survive it.)"""

    def __init__(self, doing='finishing this step and saving',
                 kept='the last saved checkpoint is kept'):
        self.requested, self.signum, self._previous = False, None, {}
        self._doing, self._kept = doing, kept

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, _):
        name = signal.Signals(signum).name
        if self.requested:
            print('\nsecond %s: exiting now; %s' % (name, self._kept), file=sys.stderr)
            os._exit(128 + signum)
        self.requested, self.signum = True, signum
        print('\n%s: %s (again to exit at once)' % (name, self._doing), file=sys.stderr)

    def raise_if_requested(self):
        """Raises Interrupted when a signal came: at a point where stopping is clean."""
        if self.requested:
            raise Interrupted(self.signum)


def host_list(text):
    """argparse type: HOST:PORT,HOST:PORT,... (a list of at least one)."""
    hosts = [host.strip() for host in text.split(',') if host.strip()]
    for host in hosts or [text]:
        name, _, port = host.rpartition(':')
        if not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise argparse.ArgumentTypeError('expected HOST:PORT,HOST:PORT,..., got %r' % host)
    return hosts


def open_checkpoints(paths, use_averages=True):
    """checkpoints.open_for_inference, warning of every newer checkpoint skipped as unreadable."""
    from wavenet import checkpoints
    models = checkpoints.open_for_inference(paths, use_averages)
    for _, why in models.skipped:
        warn('%s; skipped it' % why)
    return models
