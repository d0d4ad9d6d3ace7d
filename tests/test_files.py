"""wavenet/files.py (reading settings files, atomic writes, the lock), wavenet/errors.py (one-line
messages, reasons) and wavenet/progress.py (the one-line progress bar)."""
import io
import os
import stat
import subprocess
import sys
import types
import urllib.error

import pytest

from conftest import ROOT, tf, time_limit, write_file
from wavenet import errors, files, progress


def lines_of(text):
    return str(text).splitlines()


# ------------------------------------------------------------------------------ reading

def test_read_regular_reads_a_file_up_to_the_limit(tmp_path):
    path = tmp_path / 'settings.json'
    write_file(path, b'0123456789')
    assert files.read_regular(str(path), 10) == b'0123456789'
    with pytest.raises(errors.Error) as error:
        files.read_regular(str(path), 9)
    assert str(error.value) == ('file %s is larger than 9 bytes: it is not a file this project '
                                'wrote' % path)


def test_read_regular_refuses_a_fifo_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / 'run.json'
    os.mkfifo(str(fifo))
    with time_limit(5), pytest.raises(errors.Error) as error:
        files.read_regular(str(fifo), 100, 'run file')
    assert str(error.value) == 'run file %s is not a regular file: replace it with one' % fifo


@pytest.mark.parametrize('kind', ['device', 'symlink to a device', 'folder'])
def test_read_regular_refuses_devices_and_folders(tmp_path, kind):
    path = {'device': '/dev/zero', 'symlink to a device': str(tmp_path / 'zero.json'),
            'folder': str(tmp_path)}[kind]
    if kind == 'symlink to a device':
        os.symlink('/dev/zero', path)
    with time_limit(5), pytest.raises(errors.Error) as error:
        files.read_regular(path, 1 << 20, 'params file')
    assert str(error.value) == 'params file %s is not a regular file: replace it with one' % path


def test_read_regular_names_a_missing_file(tmp_path):
    with pytest.raises(errors.Error) as error:
        files.read_regular(str(tmp_path / 'gone.json'), 100, 'run file')
    assert str(error.value) == 'run file %s does not exist' % (tmp_path / 'gone.json')


@pytest.mark.parametrize('text, problem', [
    ('{"a": NaN}', 'not valid JSON'), ('{"a": Infinity}', 'not valid JSON'),
    ('[-Infinity]', 'not valid JSON'), ('{"image_size": [1e400, 28]}', 'not valid JSON'),
    ('[' * 200000 + ']' * 200000, 'nested too deeply'),
    ('{"a": ' * 100000 + '1' + '}' * 100000, 'nested too deeply'),
    (b'{"classes": ["\xff\xfe"]}', 'not valid JSON'), ('{"a": [1, 2', 'not valid JSON'),
    ('', 'not valid JSON'), ('{"a": 1}\n\x00', 'not valid JSON'),
], ids=['NaN', 'Infinity', '-Infinity', '1e400', 'deep lists', 'deep objects', 'not UTF-8',
        'cut short', 'empty', 'NUL after'])
def test_parse_json_refuses_what_is_not_plain_finite_json_naming_the_source(text, problem):
    with pytest.raises(errors.Error) as error:
        files.parse_json(text, 'run file /x/run.json')
    message = str(error.value)
    assert message.startswith('run file /x/run.json ') and problem in message, message
    assert len(lines_of(message)) == 1 and len(message) < 400, message


def test_parse_json_reads_plain_json_from_text_and_utf8_bytes():
    assert files.parse_json('{"a": [1, 2.5, -3e2, true, null], "b": "x"}', 'f') == {
        'a': [1, 2.5, -300.0, True, None], 'b': 'x'}
    assert files.parse_json('{"classes": ["é", "\\n"]}'.encode(), 'f') == {
        'classes': ['é', '\n']}
    assert files.parse_json('[' * 500 + ']' * 500, 'f') is not None  # deep, but not too deep


def test_read_json_names_the_file_and_what_it_is(tmp_path):
    path = tmp_path / 'params.json'
    write_file(path, '{"dilations": [1, 2, 4]}')
    assert files.read_json(str(path), 'params file') == {'dilations': [1, 2, 4]}
    write_file(path, '{"dilations": [1, Infinity]}')
    with pytest.raises(errors.Error, match='^params file %s is not valid JSON' % path):
        files.read_json(str(path), 'params file')
    write_file(path, '[' + ' ' * 100 + ']')
    with pytest.raises(errors.Error, match='^params file %s is larger than 50 bytes' % path):
        files.read_json(str(path), 'params file', limit=50)


# ------------------------------------------------------------------------------ writing

def test_write_atomic_writes_the_content(tmp_path):
    path = tmp_path / 'out.bin'
    path.write_bytes(b'old')
    files.write_atomic(str(path), lambda stream: stream.write(b'new \x00 content'))
    assert path.read_bytes() == b'new \x00 content'
    assert os.listdir(str(tmp_path)) == ['out.bin']


def test_write_atomic_failure_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / 'out.bin'
    path.write_bytes(b'old content')
    seen = []

    def write(stream):
        stream.write(b'half of the new')
        seen.extend(os.listdir(str(tmp_path)))  # the temporary, beside the file
        raise RuntimeError('disk on fire')

    with pytest.raises(RuntimeError, match='disk on fire'):
        files.write_atomic(str(path), write)
    assert path.read_bytes() == b'old content'
    assert os.listdir(str(tmp_path)) == ['out.bin']
    temporary = [name for name in seen if name != 'out.bin']
    assert len(temporary) == 1 and files.is_temporary(temporary[0]), seen
    assert temporary[0].startswith('.out.bin.tmp-%d-' % os.getpid()), seen


def test_write_atomic_interrupted_on_a_new_file_leaves_nothing(tmp_path):
    def interrupted(stream):
        stream.write(b'partial')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(str(tmp_path / 'new.txt'), interrupted)
    assert os.listdir(str(tmp_path)) == []


def test_write_atomic_creates_missing_folders(tmp_path):
    path = tmp_path / 'a' / 'b' / 'out.txt'
    files.write_atomic(str(path), lambda stream: stream.write(b'x'))
    assert path.read_bytes() == b'x'


@pytest.mark.parametrize('mode, expected', [(0o666, 0o644), (0o600, 0o600), (0o640, 0o640)],
                         ids=['default', '0600', '0640'])
def test_write_atomic_gives_the_mode_less_the_umask(tmp_path, mode, expected):
    previous = os.umask(0o022)
    try:
        if mode == 0o666:
            files.write_atomic(str(tmp_path / 'out'), lambda stream: stream.write(b'x'))
        else:
            files.write_atomic(str(tmp_path / 'out'), lambda stream: stream.write(b'x'), mode)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(str(tmp_path / 'out')).st_mode) == expected


def test_write_atomic_replaces_a_symlink_and_never_writes_through_it(tmp_path):
    victim, link = tmp_path / 'victim.txt', tmp_path / 'run.json'
    victim.write_text('precious')
    before = os.stat(str(victim)).st_mtime_ns
    os.symlink(str(victim), str(link))
    files.write_atomic(str(link), lambda stream: stream.write(b'{}'))
    assert not os.path.islink(str(link)) and link.read_bytes() == b'{}'
    assert victim.read_text() == 'precious' and os.stat(str(victim)).st_mtime_ns == before


def test_write_json_atomic_is_sorted_and_indented(tmp_path):
    path = tmp_path / 'run' / 'config.json'
    files.write_json_atomic(str(path), {'b': [2, 3], 'a': {'z': 1, 'y': 'text'}})
    assert path.read_text() == (
        '{\n  "a": {\n    "y": "text",\n    "z": 1\n  },\n  "b": [\n    2,\n    3\n  ]\n}\n')


def test_temporary_names_are_new_hidden_and_recognized(tmp_path):
    first, second = (files.temporary_path(str(tmp_path / 'run.json')) for _ in range(2))
    assert first != second and os.path.dirname(first) == str(tmp_path)
    assert all(files.is_temporary(os.path.basename(path)) for path in (first, second))
    assert not any(files.is_temporary(name) for name in ('run.json', 'model.ckpt-6.index',
                                                         '.hidden', 'x.tmp-1-ab'))


# ------------------------------------------------------------------------------ the lock

HOLD_LOCK = ('import sys; sys.path.insert(0, %r); from wavenet import files\n'
             'with files.exclusive_lock(sys.argv[1]):\n'
             '    print("locked", flush=True); sys.stdin.read()' % ROOT)


def test_a_held_lock_names_its_pid_and_goes_with_its_process(tmp_path):
    path = str(tmp_path / 'logdir' / 'train.lock')
    holder = subprocess.Popen([sys.executable, '-c', HOLD_LOCK, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == 'locked\n'
        with open(path) as stream:
            assert stream.read() == '%d\n' % holder.pid
        assert files.lock_holder(path) == str(holder.pid)
        with pytest.raises(files.LockedError) as error:
            with files.exclusive_lock(path):
                pass
        assert error.value.holder == str(holder.pid)
        assert str(error.value) == '%s is held by another process (PID %d)' % (path, holder.pid)
        with open(path) as stream:
            assert stream.read() == '%d\n' % holder.pid  # the refused writer wrote nothing
    finally:
        holder.communicate('', timeout=60)
    assert files.lock_holder(path) is None
    with files.exclusive_lock(path):
        with open(path) as stream:
            assert stream.read() == '%d\n' % os.getpid()
    assert files.lock_holder(path) is None


def test_lock_holder_of_a_missing_or_free_lock_writes_nothing(tmp_path):
    assert files.lock_holder(str(tmp_path / 'train.lock')) is None
    assert os.listdir(str(tmp_path)) == []
    write_file(tmp_path / 'train.lock', '123\n')
    assert files.lock_holder(str(tmp_path / 'train.lock')) is None
    assert (tmp_path / 'train.lock').read_text() == '123\n'


@pytest.mark.parametrize('use', ['exclusive_lock', 'lock_holder'])
@pytest.mark.parametrize('kind', ['symlink', 'dangling symlink', 'fifo', 'folder'])
def test_the_lock_refuses_what_is_not_a_regular_file_and_never_writes_through_a_link(
        tmp_path, use, kind):
    victim, path = tmp_path / 'victim.txt', tmp_path / 'logdir' / 'train.lock'
    victim.write_text('precious')
    before = os.stat(str(victim)).st_mtime_ns
    path.parent.mkdir()
    if kind == 'symlink':
        os.symlink(str(victim), str(path))
    elif kind == 'dangling symlink':
        os.symlink(str(tmp_path / 'created_through_the_link'), str(path))
    elif kind == 'fifo':
        os.mkfifo(str(path))
    else:
        path.mkdir()
    with time_limit(5), pytest.raises(errors.Error) as error:
        if use == 'lock_holder':
            files.lock_holder(str(path))
        else:
            with files.exclusive_lock(str(path)):
                pass
    message = str(error.value)
    assert str(path) in message and ('symlink' in message or 'not a regular file' in message)
    assert not isinstance(error.value, files.LockedError)
    assert victim.read_text() == 'precious' and os.stat(str(victim)).st_mtime_ns == before
    assert not (tmp_path / 'created_through_the_link').exists()
    assert sorted(os.listdir(str(tmp_path))) == ['logdir', 'victim.txt']


# ------------------------------------------------------------------------------ errors

@pytest.mark.parametrize('text, expected', [
    ('plain text, é and ü', 'plain text, é and ü'),
    ('/data/da\nrk/x.png: bad', '/data/da\\nrk/x.png: bad'),
    ('a\r\nb\tc', 'a\\r\\nb\\tc'),
    ('\x1b[2Jcleared', '\\x1b[2Jcleared'),
    ('line\u2028separator\x00', 'line\\u2028separator\\x00'),
])
def test_one_line_escapes_what_would_break_the_line_or_the_terminal(text, expected):
    assert errors.one_line(text) == expected
    assert errors.one_line(errors.Error(text)) == expected


def test_reason_is_the_reason_line_of_a_tensorflow_error():
    with tf.Graph().as_default(), tf.Session() as session:
        with pytest.raises(tf.errors.NotFoundError) as error:
            session.run(tf.io.read_file('/nonexistent/run.json'))
    assert 'Node:' in str(error.value) and '[[' in str(error.value)  # the annotations
    assert errors.reason(error.value) == '/nonexistent/run.json; No such file or directory'
    saved = tf.errors.ResourceExhaustedError(None, None, (
        'Graph execution error:\n\nDetected at node \'save/SaveV2\' defined at (most recent '
        'call last):\n    File "train.py", line 300, in <module>\nNode: \'save/SaveV2\'\n'
        '/logdir/model.ckpt-6_temp/part-00000-of-00001.data-00000-of-00001.tempstate1;   File '
        'too large\n\t [[{{node save/SaveV2}}]]\n'))
    assert errors.reason(saved) == ('/logdir/model.ckpt-6_temp/part-00000-of-00001.data-00000-'
                                    'of-00001.tempstate1; File too large')


def test_reason_unwraps_a_url_error_and_names_an_empty_one():
    refused = urllib.error.URLError(ConnectionRefusedError(111, 'Connection refused'))
    assert errors.reason(refused) == '[Errno 111] Connection refused'
    assert errors.reason(OSError(28, 'No space left on device')) == (
        '[Errno 28] No space left on device')
    assert errors.reason(ValueError()) == 'ValueError'
    assert errors.reason(ValueError('first\n\n  second   line  ')) == 'second line'


# ------------------------------------------------------------------------------ progress

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
