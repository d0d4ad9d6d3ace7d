"""Class conditioning and image completion from the command line.

The scripts run in this process (train.main and generate.main, each in a graph of its own)
on one class-conditional model trained once for the module; bad input raises
wavenet.errors.Error, which the scripts print as one `error:` line with exit status 2.
"""
import json
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import generate
import train
from wavenet import errors, reader

PARAMS = {'dilations': [1, 2, 4, 8, 16], 'residual_channels': 16, 'dilation_channels': 16,
          'skip_channels': 16, 'quantization_channels': 16, 'position_channels': 4}


def run_main(script, *flags):
    """script.main (train or generate) in a graph of its own (in this process)."""
    with tf.Graph().as_default():
        script.main([str(flag) for flag in flags])


def assert_usage_error(script, flags, *parts):
    """script.main(flags) raises a one-line errors.Error containing every part."""
    with pytest.raises(errors.Error) as error:
        run_main(script, *flags)
    message = str(error.value)
    assert '\n' not in message, message
    for part in parts:
        assert part in message, (part, message)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A class-conditional model trained on dark and bright 6x6 images."""
    folder = tmp_path_factory.mktemp('conditioning')
    rng = np.random.default_rng(0)
    for name, low, high in [('dark', 0, 60), ('bright', 190, 256)]:
        os.makedirs(folder / 'data' / name)
        for index in range(8):
            image = rng.integers(low, high, (6, 6)).astype(np.uint8)
            Image.fromarray(image).save(folder / 'data' / name / ('%d.png' % index))
    (folder / 'params.json').write_text(json.dumps(PARAMS))
    run_main(train, '--data_dir=%s' % (folder / 'data'), '--logdir=%s' % (folder / 'log'),
             '--wavenet_params=%s' % (folder / 'params.json'), '--gc_channels=4',
             '--num_steps=150', '--batch_size=8', '--learning_rate=0.01',
             '--validation_fraction=0', '--num_samples=2', '--checkpoint_every=150',
             '--xla=off')
    return folder


def generated_means(trained, tmp_path, class_name):
    out_dir = tmp_path / class_name
    run_main(generate, '--checkpoint=%s' % (trained / 'log'), '--out_dir=%s' % out_dir,
             '--class=%s' % class_name, '--num_images=6', '--seed=1')
    files = sorted(os.listdir(out_dir))
    assert len(files) == 6
    return [np.asarray(Image.open(out_dir / name)).mean() for name in files]


def test_generated_brightness_follows_the_requested_class(trained, tmp_path):
    with open(trained / 'log' / 'run.json') as data_file:
        assert json.load(data_file)['classes'] == ['bright', 'dark']
    dark, bright = generated_means(trained, tmp_path, 'dark'), generated_means(trained, tmp_path,
                                                                               'bright')
    assert max(dark) < 128 < min(bright), (dark, bright)


def test_class_all_gives_one_row_per_class(trained, tmp_path):
    out = tmp_path / 'grid.png'
    run_main(generate, '--checkpoint=%s' % (trained / 'log'), '--out=%s' % out, '--class=all',
             '--num_images=3', '--seed=2')
    assert Image.open(out).size == (3 * 6 + 2, 2 * 6 + 1)


@pytest.mark.parametrize('flags,message', [
    (['--class=medium'], 'unknown class medium; classes: bright, dark'),
    ([], 'class-conditional: give --class'),
])
def test_class_errors(trained, tmp_path, flags, message):
    assert_usage_error(generate, ['--checkpoint=%s' % (trained / 'log'),
                                  '--out=%s' % (tmp_path / 'x.png')] + flags, message)
    assert not (tmp_path / 'x.png').exists()


def test_unconditional_model_refuses_class(tmp_path):
    folder = tmp_path / 'data'
    os.makedirs(folder)
    for index in range(4):
        Image.fromarray(np.full((4, 4), index * 60, np.uint8)).save(folder / ('%d.png' % index))
    (tmp_path / 'params.json').write_text(json.dumps(dict(PARAMS, position_channels=0)))
    run_main(train, '--data_dir=%s' % folder, '--logdir=%s' % (tmp_path / 'log'),
             '--wavenet_params=%s' % (tmp_path / 'params.json'), '--num_steps=1',
             '--num_samples=0', '--xla=off')
    assert_usage_error(generate, ['--checkpoint=%s' % (tmp_path / 'log'), '--class=dark',
                                  '--out=%s' % (tmp_path / 'x.png')], 'not class-conditional')
    assert not (tmp_path / 'x.png').exists()
    # Class conditioning needs class folders.
    assert_usage_error(train, ['--data_dir=%s' % folder, '--logdir=%s' % (tmp_path / 'log2'),
                               '--wavenet_params=%s' % (tmp_path / 'params.json'),
                               '--gc_channels=3'], 'class folder')
    assert not (tmp_path / 'log2').exists()


def test_completion_keeps_the_seed_rows_exactly(trained, tmp_path):
    seed_path = tmp_path / 'seed.png'
    seed = np.random.default_rng(3).integers(0, 256, (12, 12)).astype(np.uint8)
    Image.fromarray(seed).save(seed_path)  # resized to 6x6 like training images
    expected = reader.dequantize(reader.quantize(reader.load_image(str(seed_path), (6, 6)), 16),
                                 16)
    out_dir = tmp_path / 'completions'
    run_main(generate, '--checkpoint=%s' % (trained / 'log'), '--out_dir=%s' % out_dir,
             '--class=dark', '--seed_image=%s' % seed_path, '--seed_rows=2', '--num_images=4',
             '--seed=4')
    completions = [np.asarray(Image.open(out_dir / name)) for name in sorted(os.listdir(out_dir))]
    assert len(completions) == 4
    for completion in completions:
        np.testing.assert_array_equal(completion[:2], expected[:2])
    assert any((completion[2:] != expected[2:]).any() for completion in completions)
    # The same with the FIFO queues and naive generation.
    for flag in ('--generation_state=queues', '--fast_generation=false'):
        other_dir = tmp_path / flag.split('=')[0].strip('-')
        run_main(generate, '--checkpoint=%s' % (trained / 'log'), '--out_dir=%s' % other_dir,
                 '--class=bright', '--seed_image=%s' % seed_path, '--seed_rows=3',
                 '--num_images=3', '--seed=4', flag)
        names = sorted(os.listdir(other_dir))
        assert len(names) == 3, names
        for name in names:
            np.testing.assert_array_equal(np.asarray(Image.open(other_dir / name))[:3],
                                          expected[:3])
    grid = tmp_path / 'grid.png'
    run_main(generate, '--checkpoint=%s' % (trained / 'log'), '--out=%s' % grid,
             '--class=bright', '--seed_image=%s' % seed_path, '--seed_rows=3', '--num_images=2',
             '--fast_generation=false', '--seed=4')
    image = np.asarray(Image.open(grid))
    assert image.shape == (6, 4 * 6 + 3)  # seed, kept rows, two completions
    np.testing.assert_array_equal(image[:, :6], expected)
    np.testing.assert_array_equal(image[:3, 7:13], expected[:3])
    np.testing.assert_array_equal(image[3:, 7:13], 0)
    np.testing.assert_array_equal(image[:3, 14:20], expected[:3])


def test_seed_rows_must_leave_rows_to_generate(trained, tmp_path):
    seed_path = tmp_path / 'seed.png'
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(seed_path)
    out = tmp_path / 'x.png'
    assert_usage_error(generate, ['--checkpoint=%s' % (trained / 'log'), '--class=dark',
                                  '--seed_image=%s' % seed_path, '--seed_rows=6',
                                  '--out=%s' % out], '--seed_rows=6')
    assert_usage_error(generate, ['--checkpoint=%s' % (trained / 'log'), '--class=dark',
                                  '--seed_image=%s' % (tmp_path / 'missing.png'),
                                  '--out=%s' % out], 'missing.png')
    assert not out.exists()
