"""Helpers shared by the command-line scripts: flag types, quiet TensorFlow, errors, signals."""
import argparse
import logging
import math
import os
import signal
import sys


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


def positive_float(text):
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not a number' % text) from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError('must be a positive number, got %s' % text)
    return value


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
    """Imports tensorflow.compat.v1 in graph mode, quiet unless `verbose`.

    Scripts call this after parsing their flags, so that --help does not wait for
    TensorFlow, and before importing the wavenet modules that use it. Quiet means
    TensorFlow's own switches: TF_CPP_MIN_LOG_LEVEL for its C++ logs (read when it loads,
    so a value the user set is kept) and its Python logger at ERROR.
    """
    if not verbose:
        os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    import tensorflow.compat.v1 as tf
    if not verbose:
        tf.get_logger().setLevel(logging.ERROR)
    tf.disable_v2_behavior()
    return tf


def run_main(main):
    """Calls main(); a UsageError becomes one line on stderr and exit code 2."""
    try:
        main()
    except UsageError as error:
        print('error: %s' % error, file=sys.stderr)
        sys.exit(2)


class StopRequest:
    """Turns the first SIGINT/SIGTERM into a request to stop after the current step.

    A second signal exits at once (exit status 128 + the signal number); checkpoint files
    are written under temporary names and renamed, so the last good checkpoint stays intact.
    """

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, _):
        if self.requested:
            print('\nsecond %s: exiting now; the last saved checkpoint is kept'
                  % signal.Signals(signum).name, file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.requested = True
        print('\n%s: finishing this step and saving (again to exit at once)'
              % signal.Signals(signum).name, file=sys.stderr, flush=True)
