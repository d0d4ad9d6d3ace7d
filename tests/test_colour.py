"""Colour: RGB reading, interleaved sub-pixel sequences, RGB PNG output."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from wavenet import image_grid, reader
from wavenet.model import WaveNetModel
from wavenet.params import WaveNetParams

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARAMS = {'dilations': [1, 2, 4, 8, 16], 'residual_channels': 8, 'dilation_channels': 8,
          'skip_channels': 8, 'position_channels': 4}


def test_reader_keeps_rgb_and_expands_grayscale(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (4, 5, 3)).astype(np.uint8)
    Image.fromarray(rgb, 'RGB').save(tmp_path / 'rgb.png')
    rgba = np.concatenate([rgb, np.full((4, 5, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'rgba.png')
    gray = rgb[:, :, 0]
    Image.fromarray(gray, 'L').save(tmp_path / 'gray.png')
    np.testing.assert_array_equal(reader.load_image(str(tmp_path / 'rgb.png'), channels=3), rgb)
    np.testing.assert_array_equal(reader.load_image(str(tmp_path / 'rgba.png'), channels=3), rgb)
    np.testing.assert_array_equal(reader.load_image(str(tmp_path / 'gray.png'), channels=3),
                                  np.repeat(gray[:, :, None], 3, axis=2))
    dataset = reader.load_dataset(str(tmp_path), channels=3, validation_fraction=0)
    assert dataset.train.images.shape == (3, 4, 5, 3)
    with pytest.raises(ValueError, match='channels'):
        reader.load_image(str(tmp_path / 'rgb.png'), channels=2)


def test_tile_and_save_rgb(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (3, 2, 4, 3)).astype(np.uint8)
    grid = image_grid.tile(images, columns=2)
    assert grid.shape == (5, 9, 3)
    np.testing.assert_array_equal(grid[3:, 0:4], images[2])
    image_grid.save_png(str(tmp_path / 'grid.png'), grid)
    saved = Image.open(tmp_path / 'grid.png')
    assert saved.mode == 'RGB'
    np.testing.assert_array_equal(np.asarray(saved), grid)
    sequences = images.reshape(3, -1)  # R, G, B of each pixel next to each other
    np.testing.assert_array_equal(image_grid.to_images(sequences, (2, 4), 3, 256), images)
    # 4 levels: 0, 1, 2, 3 -> 0, 85, 170, 255.
    np.testing.assert_array_equal(image_grid.to_images(sequences % 4, (2, 4), 3, 4),
                                  (images % 4) * 85)


def test_colour_model_needs_position_conditioning():
    import tensorflow.compat.v1 as tf
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match='position_channels'):
            WaveNetModel(WaveNetParams(dilations=(1, 2)), (4, 4), channels=3)
        model = WaveNetModel(WaveNetParams(dilations=(1, 2), position_channels=2), (4, 5),
                             channels=3)
        assert model.sequence_length == 60


def run(script, *flags):
    return subprocess.run([sys.executable] + script + list(flags), capture_output=True,
                          text=True, timeout=300, cwd=ROOT)


def test_colour_training_generation_completion_and_evaluation(tmp_path):
    rng = np.random.default_rng(2)
    for index in range(6):
        os.makedirs(tmp_path / 'data', exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (6, 5, 3)).astype(np.uint8), 'RGB').save(
            tmp_path / 'data' / ('%d.png' % index))
    (tmp_path / 'params.json').write_text(json.dumps(PARAMS))
    logdir = tmp_path / 'log'
    trained = run(['train.py'], '--data_dir=%s' % (tmp_path / 'data'), '--logdir=%s' % logdir,
                  '--wavenet_params=%s' % (tmp_path / 'params.json'), '--channels=3',
                  '--num_steps=3', '--batch_size=2', '--num_samples=2')
    assert trained.returncode == 0, trained.stderr
    assert 'receptive field: 33 sub-pixels (2.2 rows of 15)' in trained.stdout
    assert json.loads((logdir / 'data.json').read_text())['channels'] == 3
    assert Image.open(logdir / 'samples' / 'samples-3.png').mode == 'RGB'

    out = tmp_path / 'one.png'
    generated = run(['generate.py'], '--checkpoint=%s' % logdir, '--out=%s' % out,
                    '--num_images=1', '--seed=1')
    assert generated.returncode == 0, generated.stderr
    image = Image.open(out)
    assert (image.mode, image.size) == ('RGB', (5, 6))

    seed = rng.integers(0, 256, (6, 5, 3)).astype(np.uint8)
    Image.fromarray(seed, 'RGB').save(tmp_path / 'seed.png')
    completions = tmp_path / 'completions'
    completed = run(['generate.py'], '--checkpoint=%s' % logdir, '--out_dir=%s' % completions,
                    '--seed_image=%s' % (tmp_path / 'seed.png'), '--seed_rows=2',
                    '--num_images=2', '--seed=3')
    assert completed.returncode == 0, completed.stderr
    for name in sorted(os.listdir(completions)):
        np.testing.assert_array_equal(np.asarray(Image.open(completions / name))[:2], seed[:2])

    evaluated = run(['evaluate.py'], '--checkpoint=%s' % logdir,
                    '--data_dir=%s' % (tmp_path / 'data'))
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stdout.strip().splitlines()[-1].startswith('bits/dim: ')

    refused = run(['train.py'], '--data_dir=%s' % (tmp_path / 'data'), '--logdir=%s' % logdir,
                  '--channels=1', '--num_steps=5')
    assert refused.returncode == 2 and '--channels=1 differs' in refused.stderr


def test_colour_without_position_conditioning_is_a_usage_error(tmp_path):
    os.makedirs(tmp_path / 'data')
    Image.fromarray(np.zeros((4, 4, 3), np.uint8), 'RGB').save(tmp_path / 'data' / 'a.png')
    (tmp_path / 'params.json').write_text(json.dumps(dict(PARAMS, position_channels=0)))
    result = run(['train.py'], '--data_dir=%s' % (tmp_path / 'data'),
                 '--logdir=%s' % (tmp_path / 'log'), '--channels=3',
                 '--wavenet_params=%s' % (tmp_path / 'params.json'))
    assert result.returncode == 2 and 'position_channels' in result.stderr
    assert 'Traceback' not in result.stderr
    assert not (tmp_path / 'log').exists()
