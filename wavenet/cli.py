"""Helpers shared by the command-line scripts: quiet TensorFlow, errors, progress, flags."""
import argparse
import logging
import os
import sys
import time
import warnings


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def _integer_at_least(minimum, requirement):
    """An argparse type: an integer >= minimum, else an error saying `requirement`."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError('%r is not an integer' % text) from None
        if value < minimum:
            raise argparse.ArgumentTypeError('%s, got %d' % (requirement, value))
        return value
    return parse


positive_int = _integer_at_least(1, 'must be a positive integer')
non_negative_int = _integer_at_least(0, 'must be zero or more')


def boolean(text):
    """argparse type: true/false, yes/no, 1/0."""
    lowered = text.lower()
    if lowered in ('true', 'yes', '1'):
        return True
    if lowered in ('false', 'no', '0'):
        return False
    raise argparse.ArgumentTypeError('expected true or false, got %r' % text)


def image_size(text):
    """argparse type: N (square) or HxW, each positive."""
    parts = text.lower().split('x')
    try:
        sizes = [int(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError('expected N or HxW, got %r' % text) from None
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise argparse.ArgumentTypeError('expected positive N or HxW, got %r' % text)
    return (sizes[0], sizes[-1])


class ReplaceDefaultAppend(argparse.Action):
    """A repeatable flag whose values replace its default list (action='append' extends it)."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = getattr(namespace, self.dest)
        setattr(namespace, self.dest, ([] if given is self.default else given) + [values])


def import_tensorflow(verbose):
    """Imports tensorflow.compat.v1 in graph mode, silencing its logs unless `verbose`.

    Scripts call this after parsing their flags, before importing the wavenet modules
    that use TensorFlow, so the C++ log level is set before TensorFlow loads.
    """
    if verbose:
        import tensorflow.compat.v1 as tf
    else:
        os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
        warnings.filterwarnings('ignore')
        # TensorFlow's C++ start-up lines bypass its log level: hide stderr while it loads.
        sys.stderr.flush()
        saved_stderr = os.dup(2)
        with open(os.devnull, 'w') as devnull:
            os.dup2(devnull.fileno(), 2)
        try:
            import tensorflow.compat.v1 as tf
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
    if not verbose:
        tf.get_logger().setLevel(logging.ERROR)
        logging.getLogger('absl').setLevel(logging.ERROR)
    tf.disable_v2_behavior()
    return tf


def run_main(main):
    """Calls main(); a UsageError becomes one line on stderr and exit code 2."""
    try:
        main()
    except UsageError as error:
        print('error: %s' % error, file=sys.stderr)
        sys.exit(2)


class Progress:
    """A one-line progress bar on stderr: done/total, percent, items per second."""

    def __init__(self, total, unit, stream=sys.stderr, width=30):
        self.total, self.unit, self.stream, self.width = total, unit, stream, width
        self.started = time.perf_counter()

    def update(self, done):
        """Redraws the bar for `done` items (only when the stream is a terminal)."""
        if self.stream.isatty():
            self.stream.write('\r' + self._line(done))
            self.stream.flush()

    def finish(self, done):
        """Draws the final state and ends the line."""
        self.stream.write(('\r' if self.stream.isatty() else '') + self._line(done) + '\n')
        self.stream.flush()

    def _line(self, done):
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        filled = int(self.width * done / max(self.total, 1))
        return '[%s%s] %d/%d %s, %.0f %s/s' % ('#' * filled, '.' * (self.width - filled), done,
                                              self.total, self.unit, done / elapsed, self.unit)
