"""benchmarks/xla_steps.py: only its XLA process gets the CPU's XLA flag, and one process's
side times real training steps."""
import json

from benchmarks import xla_steps


def test_only_the_xla_process_gets_the_cpu_flag(monkeypatch):
    monkeypatch.setenv('TF_XLA_FLAGS', '--tf_xla_cpu_global_jit --xla_dump_to=/tmp/x')
    assert xla_steps.process_environment(False)['TF_XLA_FLAGS'] == '--xla_dump_to=/tmp/x'
    assert xla_steps.process_environment(True)['TF_XLA_FLAGS'] == (
        '--xla_dump_to=/tmp/x --tf_xla_cpu_global_jit')
    monkeypatch.setenv('TF_XLA_FLAGS', '--tf_xla_cpu_global_jit')
    assert 'TF_XLA_FLAGS' not in xla_steps.process_environment(False)
    monkeypatch.delenv('TF_XLA_FLAGS')
    assert 'TF_XLA_FLAGS' not in xla_steps.process_environment(False)
    assert xla_steps.process_environment(True)['TF_XLA_FLAGS'] == '--tf_xla_cpu_global_jit'


def test_a_measuring_process_prints_the_seconds_of_its_timed_steps(capsys):
    xla_steps.main(['--measure=off', '--batch_size=2', '--steps=3', '--image_side=4'])
    seconds = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(seconds) == 3 and all(0 < value < 60 for value in seconds)
