"""Local conditioning from the command line: training given a low-resolution or gray copy of
each image, generating given condition images, evaluating given the derived condition, and
every refusal (one line, nothing written)."""
import json
import os

import numpy as np
import pytest

import evaluate
import generate
import train
from conftest import (TINY_PARAMS, checkpoint_values, error_of, png_pixels, run_main,
                      snapshot, train_flags, write_json, write_png)
from datasets import colour_digits
from wavenet import errors, reader


@pytest.fixture(scope='module')
def lowres(data_dir, tiny_params, tmp_path_factory):
    """A lowres:2 model of the 8x8 digits-like data, trained for 30 steps."""
    logdir = tmp_path_factory.mktemp('lowres') / 'logdir'
    run_main(train, train_flags(data_dir, logdir, 30, '--local_condition=lowres:2',
                                '--checkpoint_every=30', params=tiny_params))
    return logdir


@pytest.fixture(scope='module')
def colour_dir(data_dir, tmp_path_factory):
    """The 8x8 data in colour (datasets/colour_digits.py): strokes and backgrounds of two
    random colours."""
    folder = tmp_path_factory.mktemp('colour') / 'colour'
    colour_digits.main(['--out=%s' % folder, '--digits=%s' % data_dir])
    return folder


def test_colour_digits_blend_two_colours_per_image(data_dir, colour_dir):
    gray_paths = reader.list_image_files(str(data_dir))
    assert len(reader.list_image_files(str(colour_dir))) == len(gray_paths) == 12
    for path in gray_paths[:3]:
        gray = reader.load_image(path).astype(float) / 255
        colour = reader.load_image(str(colour_dir / os.path.relpath(path, str(data_dir))),
                                   channels=3).astype(float)
        # Each channel is background + (stroke - background) * gray: affine in the gray level,
        # so its darkest and brightest pixels give every other (up to rounding).
        darkest, brightest = (np.unravel_index(index, gray.shape)
                              for index in (gray.argmin(), gray.argmax()))
        expected = colour[darkest] + (colour[brightest] - colour[darkest]) * (
            (gray - gray.min()) / (gray.max() - gray.min()))[..., None]
        np.testing.assert_allclose(colour, expected, atol=1.5)
    with pytest.raises(errors.Error, match='not an empty folder'):
        colour_digits.main(['--out=%s' % colour_dir, '--digits=%s' % data_dir])


def test_a_lowres_run_keeps_its_condition_and_shows_it_in_the_sample_grids(lowres, data_dir):
    run = json.loads((lowres / 'run.json').read_text())
    assert run['params']['local_condition'] == 'lowres:2'
    # Two triples side by side: the condition at full size, a sample, the source image.
    grid, _ = png_pixels(lowres / 'samples' / 'samples-30.png')
    assert grid.shape == (8, 6 * 8 + 5)
    condition = grid[:, :8].astype(int)
    np.testing.assert_array_equal(condition[::2, ::2], condition[1::2, 1::2])  # 2x2 blocks
    message = error_of(train, train_flags(data_dir, lowres, 40, '--local_condition=lowres:4'))
    assert 'in local_condition' in message, message


@pytest.mark.parametrize('flag, named', [
    ('--local_condition=lowres:3', 'divides the image sides (8x8)'),
    ('--local_condition=lowres:1', "local_condition must be"),
    ('--local_condition=gray', "needs 3 channels, not 1"),
    ('--local_condition=sepia', "local_condition must be")])
def test_bad_conditions_are_refused_before_anything_is_written(data_dir, tiny_params, tmp_path,
                                                               flag, named):
    message = error_of(train, train_flags(data_dir, tmp_path / 'run', 2, flag,
                                          params=tiny_params))
    assert named in message and '\n' not in message, message
    assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('params', [dict(TINY_PARAMS, local_condition='lowres:4'),
                                    dict(TINY_PARAMS, output='logistic_mixture')],
                         ids=['lowres', 'mixture'])
def test_a_resumed_run_ends_as_an_uninterrupted_one(data_dir, tmp_path, params):
    """Every variable, the moving averages and Adam's slots included."""
    path = tmp_path / 'params.json'
    write_json(path, params)
    flags = ('--augment_shift=1', '--dropout=0.2', '--num_samples=0', '--ema_decay=0.9',
             '--learning_rate_schedule=constant')  # the same rates whatever --num_steps
    run_main(train, train_flags(data_dir, tmp_path / 'straight', 4, *flags, params=path))
    run_main(train, train_flags(data_dir, tmp_path / 'resumed', 2, *flags, params=path))
    run_main(train, ['--data_dir=%s' % data_dir, '--logdir=%s' % (tmp_path / 'resumed'),
                     '--num_steps=4', '--xla=off'])
    straight, resumed = (checkpoint_values(tmp_path / name / 'model.ckpt-4')
                         for name in ('straight', 'resumed'))
    assert any(name.endswith('/ExponentialMovingAverage') for name in straight)
    assert sorted(straight) == sorted(resumed)
    for name, value in straight.items():
        np.testing.assert_allclose(resumed[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_generation_given_condition_images_of_either_size(lowres, data_dir, tmp_path,
                                                          capsys):
    folder = tmp_path / 'conditions'
    source = reader.load_image(str(data_dir / 'dark' / 'dark_01.png'))
    write_png(folder / 'full.png', source)
    write_png(folder / 'small.png', source[::2, ::2])
    out = tmp_path / 'grid.png'
    run_main(generate, ['--checkpoint=%s' % lowres, '--out=%s' % out, '--num_images=3',
                        '--condition_images=%s' % folder, '--seed=1'], capsys)
    grid, _ = png_pixels(out)
    # A row per condition image: the condition, 3 samples, and the source of the full one.
    assert grid.shape == (2 * 8 + 1, 5 * 8 + 4)
    full_condition = grid[:8, :8].astype(int)
    blocks = source.reshape(4, 2, 4, 2).mean(axis=(1, 3))
    np.testing.assert_array_equal(full_condition[::2, ::2], np.floor(blocks + 0.5))
    np.testing.assert_array_equal(grid[:8, 36:44], source)
    np.testing.assert_array_equal(grid[9:, 0:8], np.repeat(np.repeat(source[::2, ::2], 2, 0),
                                                           2, 1))
    assert not grid[9:, 36:].any()  # no source image for a condition given at its size
    out_dir = tmp_path / 'images'
    run_main(generate, ['--checkpoint=%s' % lowres, '--out_dir=%s' % out_dir,
                        '--num_images=2', '--condition_images=%s' % (folder / 'small.png')])
    assert sorted(os.listdir(out_dir)) == ['small_0.png', 'small_1.png']
    write_png(folder / 'sub' / 'small.png', source[::2, ::2])  # two images named small
    message = error_of(generate, ['--checkpoint=%s' % lowres, '--out_dir=%s' % out_dir,
                                  '--overwrite', '--condition_images=%s' % folder])
    assert 'two condition images in %s have one name' % out_dir in message, message


def test_generation_refuses_conditions_it_cannot_use(lowres, trained, data_dir, tmp_path):
    odd = tmp_path / 'odd.png'
    write_png(odd, np.zeros((6, 6)))
    cases = [([lowres, '--condition_images=%s' % odd], 'condition image %s is 6x6' % odd),
             ([lowres], 'this model is locally conditioned: give --condition_images'),
             ([trained.logdir, '--condition_images=%s' % odd], 'not locally conditioned')]
    for (checkpoint, *flags), named in cases:
        message = error_of(generate, ['--checkpoint=%s' % checkpoint,
                                      '--out=%s' % (tmp_path / 'x.png')] + flags)
        assert named in message, message
    assert os.listdir(tmp_path) == ['odd.png']


def test_evaluation_is_given_the_condition_of_each_image(lowres, data_dir, capsys):
    out = run_main(evaluate, ['--checkpoint=%s' % lowres, '--data_dir=%s' % data_dir],
                   capsys).stdout
    conditioned = float(out.split()[-1])
    assert 0 < conditioned < 8, out


def test_a_gray_model_of_colour_images(colour_dir, tiny_params, tmp_path, capsys):
    params = tmp_path / 'params.json'
    write_json(params, dict(TINY_PARAMS, position_channels=2))
    logdir = tmp_path / 'gray'
    run_main(train, train_flags(colour_dir, logdir, 2, '--channels=3', '--local_condition=gray',
                                params=params))
    out = tmp_path / 'coloured.png'
    before = snapshot(logdir)
    run_main(generate, ['--checkpoint=%s' % logdir, '--out=%s' % out, '--num_images=2',
                        '--condition_images=%s' % (colour_dir / 'dark' / 'dark_00.png')], capsys)
    grid, mode = png_pixels(out)
    assert mode == 'RGB' and grid.shape == (8, 4 * 8 + 3, 3)
    condition = grid[:, :8]
    assert (condition == condition[..., :1]).all()  # shown gray
    source = reader.load_image(str(colour_dir / 'dark' / 'dark_00.png'), channels=3).astype(int)
    luma = (299 * source[..., 0] + 587 * source[..., 1] + 114 * source[..., 2] + 500) // 1000
    np.testing.assert_array_equal(condition[..., 0], luma)
    assert snapshot(logdir) == before
