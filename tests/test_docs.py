"""--help is the flag reference: every flag has help and a default, without TensorFlow; the
commands in the README and docs/ use flags that exist; CI runs the README's test command."""
import glob
import os
import re

import pytest

from conftest import ROOT, run_script

SCRIPTS = {'train.py': 'train.py', 'generate.py': 'generate.py', 'evaluate.py': 'evaluate.py',
           'datasets.prepare': '-m datasets.prepare', 'datasets.download': '-m datasets.download',
           'datasets.make_digits': '-m datasets.make_digits',
           'datasets.colour_digits': '-m datasets.colour_digits'}
SCRIPTS.update({'benchmarks.' + name: '-m benchmarks.' + name
                for name in ('run', 'scaling', 'plot_curves', 'conditioning')})


def read(name):
    with open(os.path.join(ROOT, name)) as text_file:
        return text_file.read()


def option_blocks(help_text):
    """{'--flag': its help text on one line} parsed from argparse --help output."""
    blocks, current = {}, None
    for line in help_text.splitlines():
        match = re.match(r'^  (-[^\s,]+)', line)
        if match:
            current = match.group(1)
            blocks[current] = line[len(match.group(0)):]
        elif current is not None and line.startswith('   '):
            blocks[current] += ' ' + line
        else:
            current = None
    return {flag: ' '.join(text.split()) for flag, text in blocks.items()}


@pytest.fixture(scope='module')
def helps():
    """{script: {flag: help}} of every script's --help, checked to import no TensorFlow."""
    found = {}
    for name, command in SCRIPTS.items():
        result = run_script('-X', 'importtime', *command.split(), '--help')
        assert result.returncode == 0, result
        assert re.search(r'\|\s*wavenet\.cli$', result.stderr, re.M), 'no import times'
        assert not re.search(r'\|\s*tensorflow\b', result.stderr), (name, 'imports tensorflow')
        found[name] = option_blocks(result.stdout)
    return found


def test_every_flag_has_help_with_its_default_or_says_it_is_required(helps):
    for name, blocks in helps.items():
        assert len(blocks) >= 2, (name, blocks)
        for flag, text in blocks.items():
            if flag != '-h':
                assert re.search(r'\w{3,}.*\((default: |required)', text), (name, flag, text)


def test_commands_in_the_readme_and_docs_use_flags_that_exist(helps):
    pages = ['README.md'] + sorted(os.path.relpath(path, ROOT) for path in glob.glob(
        os.path.join(ROOT, 'docs', '*.md')))
    used = 0
    for page in pages:
        for line in read(page).splitlines():
            for match in re.finditer(
                    r'python (?:-m )?([\w./]+?)(?:\.py)? ((?:[^`|;&]*?))(?:$|[`|;&])', line):
                script = match.group(1).replace('/', '.')
                script = script + '.py' if script + '.py' in helps else script
                if script not in helps:
                    continue
                for flag in set(re.findall(r'(--\w+)', match.group(2))) - {'--help'}:
                    used += 1
                    assert flag in helps[script], '%s: %s has no %s' % (page, script, flag)
    assert used > 20, 'found only %d flags in commands' % used


def test_the_readme_is_a_short_guide_and_ci_runs_its_test_command():
    readme = read('README.md')
    assert len(readme.splitlines()) <= 250
    command = 'pip install -r requirements-test.txt && python -m pytest -q'
    assert '```bash\n%s\n```' % command in readme
    assert command in read('.ci/run').splitlines()
    layout = readme.split('## Layout', 1)[1]
    modules = [os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, 'wavenet',
                                                                            '[!_]*.py'))]
    assert modules and [name for name in modules if '`%s`' % name not in layout] == []
