"""evaluate.py and the Scorer: the exact mean of -log2 p over every sub-pixel, of one model
or an ensemble."""
import shutil

import numpy as np
import pytest

import evaluate
import train
from conftest import (EARLIER, LATEST, STEPS, describe, error_of, flag_error, run_main,
                      run_script, tf, train_flags)
from wavenet import reader
from wavenet.evaluation import Scorer
from wavenet.model import Mixture, WaveNetModel
from wavenet.params import WaveNetParams


def scored(checkpoints, data, capsys, *flags):
    """(bits/dim, stdout) of evaluate.main, whose last line must read `bits/dim: X.XXXX`."""
    out = run_main(evaluate, ['--checkpoint=%s' % path for path in checkpoints]
                   + ['--data_dir=%s' % data] + list(flags), capsys).stdout
    last = out.splitlines()[-1]
    assert last.startswith('bits/dim: ') and len(last.split('.')[-1]) == 4, out
    return float(last.split()[-1]), out


def test_the_scorer_is_the_mean_of_every_pixels_log2_probability():
    params = WaveNetParams(dilations=(1, 2, 4), residual_channels=8, dilation_channels=8,
                           skip_channels=8, quantization_channels=32)
    images = np.random.default_rng(0).integers(0, 32, size=(7, 5, 6)).astype(np.uint8)
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        model = WaveNetModel(params, (5, 6))
        scorer = Scorer(Mixture([model]))
        pixels = tf.placeholder(tf.int32, [None, 30])
        logits = model.logits(pixels)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            # batch size 3 does not divide 7: the last partial batch must count exactly once
            result = scorer.bits_per_dim(session, images, batch_size=3)
            all_logits = session.run(logits, {pixels: images.reshape(7, 30)}).astype(np.float64)
            with pytest.raises(Exception, match='no image to score'):
                scorer.bits_per_dim(session, images[:0])
    log_probabilities = all_logits - np.log(np.exp(all_logits).sum(axis=-1, keepdims=True))
    chosen = np.take_along_axis(log_probabilities, images.reshape(7, 30, 1).astype(int), -1)
    assert result == pytest.approx(-chosen.mean() / np.log(2), abs=1e-5)


def test_the_script_scores_what_validation_reported(trained, data_dir, tmp_path):
    validation = reader.load_dataset(str(data_dir)).validation.files
    assert len(validation) == 1, validation
    folder = tmp_path / 'validation'
    folder.mkdir()
    shutil.copy(validation[0], str(folder))
    result = run_script('evaluate.py', '--checkpoint=%s' % trained.logdir,
                        '--data_dir=%s' % folder)
    assert result.returncode == 0, describe(result)
    assert result.stderr.startswith('evaluating: 1 images') and len(
        result.stderr.splitlines()) == 1, describe(result)
    assert result.stdout.splitlines()[0] == (
        'evaluating %s with moving averages on 1 image of 8x8 from %s' % (
            trained.logdir / LATEST, folder)), describe(result)
    reported = float(trained.result.stdout.split('step %d: saved' % STEPS)[1].split(
        'validation bits/dim ')[1].split()[0])
    assert float(result.stdout.split()[-1]) == pytest.approx(reported, abs=1.5e-4)


def test_every_image_counts_once(trained, data_dir, capsys):
    whole, out = scored([trained.logdir], data_dir, capsys, '--batch_size=5')
    assert 'on 12 images of 8x8 from %s' % data_dir in out, out
    halves = [scored([trained.logdir], data_dir / name, capsys)[0] for name in ('dark', 'bright')]
    assert abs(halves[0] - halves[1]) > 1e-3, halves
    assert whole == pytest.approx(np.mean(halves), abs=1.5e-4), (whole, halves)


def test_an_ensemble_scores_as_the_mixture_of_its_members(trained, data_dir, capsys):
    """A model with itself scores as the model alone; two checkpoints no worse than the mean
    of their scores (the mixture's log-likelihood is at least the mean of the members')."""
    latest, earlier = trained.logdir / LATEST, trained.logdir / EARLIER
    single = scored([trained.logdir], data_dir, capsys)[0]
    itself = scored([trained.logdir, trained.logdir], data_dir, capsys)[0]
    first = scored([earlier], data_dir, capsys)[0]
    pair, out = scored([trained.logdir, earlier], data_dir, capsys)
    assert itself == single and pair not in (single, first) and single != first
    assert pair <= (single + first) / 2 + 1e-4, (pair, single, first)
    assert 'evaluating the ensemble of %s, %s with moving averages on 12 images' % (
        latest, earlier) in out, out


def test_an_ensemble_of_different_image_sizes_is_refused(trained, data_dir, tiny_params,
                                                         tmp_path):
    other = tmp_path / 'logdir_6x5'
    run_main(train, train_flags(data_dir, other, 1, '--image_size=6x5', '--num_samples=0',
                                params=tiny_params))
    message = error_of(evaluate, ['--checkpoint=%s' % trained.logdir, '--checkpoint=%s' % other,
                                  '--data_dir=%s' % data_dir])
    assert 'cannot ensemble %s with %s' % (other, trained.logdir) in message, message
    assert 'image size' in message, message


def test_a_missing_folder_or_an_empty_prepared_split_is_one_error(trained, data_dir, tmp_path):
    missing = tmp_path / 'no_such_data'
    message = error_of(evaluate, ['--checkpoint=%s' % trained.logdir,
                                  '--data_dir=%s' % missing])
    assert str(missing) in message and 'does not exist' in message, message
    result = run_script('-m', 'datasets.prepare', '--data_dir=%s' % (data_dir / 'dark'),
                        '--out=%s' % (tmp_path / 'prepared'), '--validation_fraction=0')
    assert result.returncode == 0, describe(result)
    message = error_of(evaluate, ['--checkpoint=%s' % trained.logdir,
                                  '--data_dir=%s' % (tmp_path / 'prepared')])
    assert str(tmp_path / 'prepared') in message and 'test' in message, message


@pytest.mark.parametrize('args, flag', [
    (['--checkpoint=logdir'], '--data_dir'), (['--data_dir=data'], '--checkpoint'),
    (['--checkpoint=logdir', '--data_dir=data', '--batch_size=0'], '--batch_size')])
def test_bad_flags(args, flag, capsys):
    assert flag in flag_error(evaluate, args, capsys)
