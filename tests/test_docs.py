"""The README documents every flag, and CI runs the README's test command."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(name):
    with open(os.path.join(ROOT, name)) as text_file:
        return text_file.read()


@pytest.mark.parametrize('script, some_flags', [
    ('train.py', {'--data_dir', '--logdir', '--num_steps', '--seed'}),
    ('generate.py', {'--checkpoint', '--out', '--generation_state', '--temperature'}),
    ('evaluate.py', {'--checkpoint', '--data_dir', '--batch_size'}),
])
def test_readme_lists_every_flag(script, some_flags):
    help_text = subprocess.run([sys.executable, script, '--help'], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
    flags = set(re.findall(r'^  (--\w+)', help_text, re.M))
    assert some_flags <= flags, 'the --help parsing found only %s' % sorted(flags)
    readme = read('README.md')
    missing = sorted(flag for flag in flags if flag not in readme)
    assert not missing, 'README.md does not mention %s' % missing


def test_ci_runs_the_readme_test_command():
    command = 'pip install -r requirements-test.txt && python -m pytest -q'
    assert '```bash\n%s\n```' % command in read('README.md')
    assert command in read('.ci/run').splitlines()
