"""WaveNetParams: JSON round trip, unknown keys and invalid values rejected."""
import glob
import json
import os

import pytest

from wavenet.files import write_json_atomic
from wavenet.params import ParamsError, WaveNetParams, load_params


def write(tmp_path, content):
    path = tmp_path / 'params.json'
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_round_trip_through_json(tmp_path):
    params = WaveNetParams(dilations=(1, 2, 4), skip_channels=7, use_biases=False)
    path = str(tmp_path / 'params.json')
    write_json_atomic(path, params.to_dict())
    assert load_params(path) == params
    assert list(tmp_path.iterdir()) == [tmp_path / 'params.json']  # no temporary file left


def test_unknown_keys_are_named(tmp_path):
    path = write(tmp_path, {'dilations': [1, 2], 'sample_rate': 16000, 'bogus': 1})
    with pytest.raises(ParamsError, match='unknown keys bogus, sample_rate') as error:
        load_params(path)
    assert path in str(error.value)


@pytest.mark.parametrize('fields,message', [
    ({'dilations': []}, 'dilations'),
    ({'dilations': [1, 0]}, 'dilations'),
    ({'dilations': 4}, 'dilations'),
    ({'filter_width': 0}, 'filter_width'),
    ({'residual_channels': 2.5}, 'residual_channels'),
    ({'quantization_channels': 257}, 'quantization_channels'),
    ({'quantization_channels': 1}, 'quantization_channels'),
    ({'use_biases': 'yes'}, 'use_biases'),
    ({'level_bumps': 1}, 'level_bumps'),
    ({'level_bumps': -2}, 'level_bumps'),
    ({'quantization_channels': 16, 'level_bumps': 17}, 'level_bumps'),
])
def test_invalid_values_are_rejected(tmp_path, fields, message):
    with pytest.raises(ParamsError, match=message):
        load_params(write(tmp_path, fields))


def test_malformed_and_missing_files(tmp_path):
    with pytest.raises(ParamsError, match='not valid JSON'):
        load_params(write(tmp_path, '{"dilations": [1, 2'))
    with pytest.raises(ParamsError, match='JSON object'):
        load_params(write(tmp_path, '[1, 2]'))
    with pytest.raises(ParamsError, match='does not exist'):
        load_params(str(tmp_path / 'missing.json'))


def test_diff_names_changed_fields():
    base = WaveNetParams()
    changed = WaveNetParams(residual_channels=64, dilations=(1, 2))
    assert base.diff(changed) == ['dilations', 'residual_channels']
    assert base.diff(WaveNetParams()) == []


def test_receptive_field():
    params = WaveNetParams(filter_width=2, initial_filter_width=3, dilations=(1, 2, 4))
    assert params.receptive_field == 2 + 7 + 1


def test_shipped_default_params_load_and_span_several_rows():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    params = load_params(os.path.join(root, 'wavenet_params.json'))
    assert params.receptive_field >= 5 * 28


def test_every_params_file_in_the_repository_loads():
    """The default params and the ones the tuning log and benchmarks name are valid."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [os.path.join(root, 'wavenet_params.json')] + sorted(
        glob.glob(os.path.join(root, 'benchmarks', 'params', '*.json')))
    assert len(paths) >= 4
    for path in paths:
        assert load_params(path).receptive_field >= 28, path
