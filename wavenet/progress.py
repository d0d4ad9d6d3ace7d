"""A one-line progress bar on stderr."""
import sys
import time

REDRAWS_PER_SECOND = 10


def format_bytes(count):
    """A byte count as text with a binary unit, e.g. '9.5 MiB'."""
    value = float(count)
    for unit in ('B', 'KiB', 'MiB'):
        if value < 1024:
            return ('%d %s' % (value, unit)) if unit == 'B' else ('%.1f %s' % (value, unit))
        value /= 1024
    return '%.1f GiB' % value


class Progress:
    """Counts work done and shows it as one line: label, bar, percent, count and rate.

    On a terminal the line is redrawn at most REDRAWS_PER_SECOND times a second; on anything
    else (a file, a pipe, a test) only one plain final line is written, by close().

    Args:
        label: what is being done, e.g. 'generating'.
        total: the count at completion, or None when unknown (no bar, no percent).
        unit: 'bytes' (counts shown as KiB, MiB, ...) or the name of the items counted.
        stream: where the line goes (default: stderr).
        start: the count already done before this bar started (a resumed download).
    """

    def __init__(self, label, total=None, unit='bytes', stream=None, start=0):
        self.label, self.total, self.unit = label, total, unit
        self.stream = sys.stderr if stream is None else stream
        self.count = self._start_count = start
        self._started = time.monotonic()
        self._last_draw = 0.0
        isatty = getattr(self.stream, 'isatty', None)
        self._interactive = bool(isatty and isatty())

    def update(self, amount):
        """Adds `amount` to the count; redraws the line on a terminal."""
        self.count += amount
        now = time.monotonic()
        if self._interactive and now - self._last_draw >= 1 / REDRAWS_PER_SECOND:
            self._last_draw = now
            self.stream.write('\r' + self._line() + '\x1b[K')
            self.stream.flush()

    def close(self):
        """Draws the final state and ends the line."""
        if self._interactive:
            self.stream.write('\r' + self._line() + '\x1b[K\n')
        else:
            self.stream.write('%s: %s in %.1f s (%s)\n' % (
                self.label, self._amount(self.count), time.monotonic() - self._started,
                self._rate()))
        self.stream.flush()

    def _amount(self, count):
        return format_bytes(count) if self.unit == 'bytes' else '{:,} {}'.format(count, self.unit)

    def _rate(self):
        rate = (self.count - self._start_count) / max(time.monotonic() - self._started, 1e-6)
        if self.unit == 'bytes':
            return '%s/s' % format_bytes(rate)
        return '{:,.0f} {}/s'.format(rate, self.unit)

    def _line(self, width=30):
        if not self.total:
            return '%s %s  %s' % (self.label, self._amount(self.count), self._rate())
        fraction = min(self.count / self.total, 1.0)
        filled = int(round(fraction * width))
        return '%s [%s%s] %3d%% %s / %s  %s' % (
            self.label, '#' * filled, '.' * (width - filled), fraction * 100,
            self._amount(self.count), self._amount(self.total), self._rate())
