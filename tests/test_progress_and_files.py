"""wavenet/progress.py (the one-line progress bar) and wavenet/files.py (atomic writes)."""
import io
import json
import os
import types

import pytest

from wavenet import files, progress


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    """Replaces the time module of wavenet.progress by a clock moved by hand."""
    fake = types.SimpleNamespace(now=100.0)
    fake.monotonic = lambda: fake.now
    monkeypatch.setattr(progress, 'time', fake)
    return fake


# ------------------------------------------------------------------------------ progress

@pytest.mark.parametrize('count, text', [
    (0, '0 B'), (1023, '1023 B'), (1024, '1.0 KiB'), (1536, '1.5 KiB'),
    (int(9.5 * 2 ** 20), '9.5 MiB'), (3 * 2 ** 30, '3.0 GiB'), (2048 * 2 ** 30, '2048.0 GiB')])
def test_format_bytes(count, text):
    assert progress.format_bytes(count) == text


def test_plain_stream_gets_one_final_line(clock):
    stream = io.StringIO()
    bar = progress.Progress('downloading x.gz', total=4096, stream=stream)
    for _ in range(3):
        clock.now += 1.0
        bar.update(512)
    assert stream.getvalue() == ''  # nothing before close on a non-terminal
    bar.close()
    assert stream.getvalue() == 'downloading x.gz: 1.5 KiB in 3.0 s (512 B/s)\n'


def test_plain_stream_counts_items_and_a_resumed_start(clock):
    stream = io.StringIO()
    bar = progress.Progress('converting', unit='images', stream=stream, start=1000)
    clock.now += 2.0
    bar.update(1234)
    bar.close()
    # The count includes the start; the rate counts only what this bar saw.
    assert stream.getvalue() == 'converting: 2,234 images in 2.0 s (617 images/s)\n'


def test_terminal_redraws_with_carriage_return_and_percent(clock):
    stream = FakeTerminal()
    bar = progress.Progress('converting', total=200, unit='images', stream=stream)
    bar.update(100)
    first = stream.getvalue()
    assert first.startswith('\rconverting [')
    assert ' 50% 100 images / 200 images' in first
    assert first.endswith('\x1b[K') and '\n' not in first
    bar.update(50)  # within 1 / REDRAWS_PER_SECOND of the last draw: no redraw
    assert stream.getvalue() == first
    clock.now += 1.5 / progress.REDRAWS_PER_SECOND
    bar.update(50)
    assert stream.getvalue().count('\r') == 2
    bar.close()  # the final state, redrawn over the line and ended
    assert stream.getvalue().count('\r') == 3
    last = stream.getvalue().split('\r')[-1]
    assert last.count('\n') == 1
    assert last.startswith('converting [' + '#' * 30 + ']')
    assert '100% 200 images / 200 images' in last
    assert last.endswith('\x1b[K\n')


def test_terminal_without_total_shows_no_percent(clock):
    stream = FakeTerminal()
    bar = progress.Progress('downloading', stream=stream)
    bar.update(2048)
    clock.now += 1.0
    bar.close()
    text = stream.getvalue()
    assert text.startswith('\rdownloading 2.0 KiB')
    assert '%' not in text and '#' not in text and '/ ' not in text
    assert text.endswith('\x1b[K\n')


# --------------------------------------------------------------------------------- files

def test_write_atomic_writes_the_content(tmp_path):
    path = tmp_path / 'out.bin'
    path.write_bytes(b'old')
    files.write_atomic(str(path), lambda stream: stream.write(b'new \x00 content'))
    assert path.read_bytes() == b'new \x00 content'
    assert os.listdir(tmp_path) == ['out.bin']


def test_write_atomic_failure_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / 'out.bin'
    path.write_bytes(b'old content')

    def write(stream):
        stream.write(b'half of the new')
        raise RuntimeError('disk on fire')

    with pytest.raises(RuntimeError, match='disk on fire'):
        files.write_atomic(str(path), write)
    assert path.read_bytes() == b'old content'
    assert os.listdir(tmp_path) == ['out.bin']


def test_write_atomic_failure_on_a_new_file_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(str(tmp_path / 'new.txt'), _interrupt)
    assert os.listdir(tmp_path) == []


def _interrupt(stream):
    stream.write(b'partial')
    raise KeyboardInterrupt


def test_write_atomic_creates_missing_folders(tmp_path):
    path = tmp_path / 'a' / 'b' / 'out.txt'
    files.write_atomic(str(path), lambda stream: stream.write(b'x'))
    assert path.read_bytes() == b'x'


def test_write_json_atomic_is_sorted_and_indented(tmp_path):
    path = tmp_path / 'run' / 'config.json'
    files.write_json_atomic(str(path), {'b': [2, 3], 'a': {'z': 1, 'y': 'text'}})
    assert path.read_text() == (
        '{\n  "a": {\n    "y": "text",\n    "z": 1\n  },\n  "b": [\n    2,\n    3\n  ]\n}\n')
    assert json.loads(path.read_text()) == {'a': {'y': 'text', 'z': 1}, 'b': [2, 3]}
