"""Colour: RGB reading, interleaved sub-pixel sequences, RGB PNG output.

The scripts run in this process (train.main, generate.main, evaluate.main, each in a graph
of its own) on one colour model trained once for the module.
"""
import collections
import contextlib
import io
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import evaluate
import generate
import train
from wavenet import errors, image_grid, reader
from wavenet.model import WaveNetModel
from wavenet.params import WaveNetParams

PARAMS = {'dilations': [1, 2, 4, 8, 16], 'residual_channels': 8, 'dilation_channels': 8,
          'skip_channels': 8, 'position_channels': 4}
Trained = collections.namedtuple('Trained', 'folder logdir stdout')


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
    with pytest.raises((ValueError, errors.Error), match='channels'):
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
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match='position_channels'):
            WaveNetModel(WaveNetParams(dilations=(1, 2)), (4, 4), channels=3)
        model = WaveNetModel(WaveNetParams(dilations=(1, 2), position_channels=2), (4, 5),
                             channels=3)
        assert model.sequence_length == 60


def run_main(script, *flags):
    """script.main (train, generate or evaluate) in a graph of its own (in this process)."""
    with tf.Graph().as_default():
        script.main([str(flag) for flag in flags])


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A colour model trained for 3 steps on six random 6x5 RGB images: its folder (data/,
    params.json, log/) and what training printed."""
    folder = tmp_path_factory.mktemp('colour')
    rng = np.random.default_rng(2)
    os.makedirs(folder / 'data')
    for index in range(6):
        Image.fromarray(rng.integers(0, 256, (6, 5, 3)).astype(np.uint8), 'RGB').save(
            folder / 'data' / ('%d.png' % index))
    (folder / 'params.json').write_text(json.dumps(PARAMS))
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        run_main(train, '--data_dir=%s' % (folder / 'data'), '--logdir=%s' % (folder / 'log'),
                 '--wavenet_params=%s' % (folder / 'params.json'), '--channels=3',
                 '--num_steps=3', '--batch_size=2', '--num_samples=2', '--xla=off')
    return Trained(folder, folder / 'log', output.getvalue())


def test_colour_training_writes_rgb_run_files_and_samples(trained):
    assert 'receptive field: 33 sub-pixels (2.2 rows of 15)' in trained.stdout
    assert json.loads((trained.logdir / 'run.json').read_text())['channels'] == 3
    assert Image.open(trained.logdir / 'samples' / 'samples-3.png').mode == 'RGB'


def test_colour_generation_writes_an_rgb_image(trained, tmp_path):
    out = tmp_path / 'one.png'
    run_main(generate, '--checkpoint=%s' % trained.logdir, '--out=%s' % out, '--num_images=1',
             '--seed=1')
    image = Image.open(out)
    assert (image.mode, image.size) == ('RGB', (5, 6))


def test_colour_completion_keeps_the_seed_rows(trained, tmp_path):
    seed = np.random.default_rng(3).integers(0, 256, (6, 5, 3)).astype(np.uint8)
    Image.fromarray(seed, 'RGB').save(tmp_path / 'seed.png')
    completions = tmp_path / 'completions'
    run_main(generate, '--checkpoint=%s' % trained.logdir, '--out_dir=%s' % completions,
             '--seed_image=%s' % (tmp_path / 'seed.png'), '--seed_rows=2', '--num_images=2',
             '--seed=3')
    names = sorted(os.listdir(completions))
    assert len(names) == 2, names
    for name in names:
        np.testing.assert_array_equal(np.asarray(Image.open(completions / name))[:2], seed[:2])


def test_colour_evaluation_prints_bits_per_dim(trained, capsys):
    run_main(evaluate, '--checkpoint=%s' % trained.logdir,
             '--data_dir=%s' % (trained.folder / 'data'))
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith('bits/dim: ')


def test_a_colour_logdir_refuses_one_channel(trained, tmp_path):
    logdir = tmp_path / 'log'
    shutil.copytree(trained.logdir, logdir)
    before = sorted(os.listdir(logdir))
    with pytest.raises(errors.Error, match='channels=1 differs'):
        run_main(train, '--data_dir=%s' % (trained.folder / 'data'), '--logdir=%s' % logdir,
                 '--channels=1', '--num_steps=5', '--xla=off')
    assert sorted(os.listdir(logdir)) == before


def test_colour_without_position_conditioning_is_a_usage_error(tmp_path):
    os.makedirs(tmp_path / 'data')
    Image.fromarray(np.zeros((4, 4, 3), np.uint8), 'RGB').save(tmp_path / 'data' / 'a.png')
    (tmp_path / 'params.json').write_text(json.dumps(dict(PARAMS, position_channels=0)))
    with pytest.raises(errors.Error, match='position_channels'):
        run_main(train, '--data_dir=%s' % (tmp_path / 'data'), '--logdir=%s' % (tmp_path / 'log'),
                 '--channels=3', '--wavenet_params=%s' % (tmp_path / 'params.json'))
    assert not (tmp_path / 'log').exists()
