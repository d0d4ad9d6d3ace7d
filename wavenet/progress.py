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

    On a terminal the line is redrawn at most REDRAWS_PER_SECOND times a second; elsewhere (a
    file, a pipe) close() writes one plain line. `total`: the final count, or None (no bar);
    `unit`: 'bytes' (shown as KiB, MiB...) or the name of the items; `start`: the count done
    before (a resumed download), not counted in the rate.
    """

    def __init__(self, label, total=None, unit='bytes', stream=None, start=0):
        self.label, self.total, self.unit = label, total, unit
        self.stream = sys.stderr if stream is None else stream
        self.count = self._start_count = start
        self._started, self._last_draw = time.monotonic(), 0.0
        self._interactive = bool(getattr(self.stream, 'isatty', lambda: False)())

    def update(self, amount):
        """Adds `amount` to the count; redraws the line on a terminal."""
        self.count += amount
        now = time.monotonic()
        if self._interactive and now - self._last_draw >= 1 / REDRAWS_PER_SECOND:
            self._last_draw = now
            self._draw('')

    def close(self):
        """Draws the final state and ends the line."""
        if self._interactive:
            self._draw('\n')
        else:
            self.stream.write('%s: %s in %.1f s (%s)\n' % (
                self.label, self._amount(self.count), time.monotonic() - self._started,
                self._rate()))
            self.stream.flush()

    def _amount(self, count, per=''):
        if self.unit == 'bytes':
            return format_bytes(count) + per
        return '%s %s%s' % (format(count, ',.0f'), self.unit, per)

    def _rate(self):
        seconds = max(time.monotonic() - self._started, 1e-6)
        return self._amount((self.count - self._start_count) / seconds, '/s')

    def _draw(self, end, width=30):
        line = '%s %s' % (self.label, self._amount(self.count))
        if self.total:
            fraction = min(self.count / self.total, 1.0)
            filled = int(round(fraction * width))
            line = '%s [%s%s] %3d%% %s / %s' % (
                self.label, '#' * filled, '.' * (width - filled), fraction * 100,
                self._amount(self.count), self._amount(self.total))
        self.stream.write('\r%s  %s\x1b[K%s' % (line, self._rate(), end))
        self.stream.flush()
