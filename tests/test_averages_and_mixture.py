"""Polyak-averaged weights and the logistic-mixture output, from the training graph to
evaluate.py and generate.py."""
import json

import numpy as np
import pytest

import evaluate
import generate
import train
from conftest import TINY_PARAMS, error_of, run_main, tf, train_flags, write_json
from wavenet import training
from wavenet.model import WaveNetModel
from wavenet.params import WaveNetParams
from wavenet.record import TrainingOptions


def test_the_averages_follow_the_moving_average_recurrence():
    """After each step, average = d average + (1 - d) weight with d = min(D, (1 + step) /
    (10 + step)), from the initial weights; one update per step."""
    images = np.random.default_rng(0).integers(0, 16, (6, 4, 4)).astype(np.uint8)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        model = WaveNetModel(WaveNetParams(dilations=(1, 2), residual_channels=4,
                                           dilation_channels=4, skip_channels=4,
                                           quantization_channels=16), (4, 4))
        graph = training.build_training_graph(model, images, np.zeros(6, np.int32),
                                              TrainingOptions(batch_size=2, ema_decay=0.6,
                                                              learning_rate=0.05), 10)
        weights = model.trainable_variables
        shadows = [graph.averages.average(weight) for weight in weights]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            expected = session.run(weights)
            for actual, value in zip(session.run(shadows), expected):
                np.testing.assert_array_equal(actual, value)
            for step in range(1, 5):
                assert session.run(graph.step) == step
                decay = min(0.6, (1 + step) / (10 + step))
                expected = [decay * average + (1 - decay) * weight
                            for average, weight in zip(expected, session.run(weights))]
                for actual, value in zip(session.run(shadows), expected):
                    np.testing.assert_allclose(actual, value, rtol=1e-5, atol=1e-7)


def test_evaluate_and_generate_use_the_averages_and_say_so(trained, data_dir, tmp_path,
                                                           capsys):
    stored = json.loads((trained.logdir / 'run.json').read_text())['training']['ema_decay']
    assert stored > 0  # the default
    averaged = run_main(evaluate, ['--checkpoint=%s' % trained.logdir,
                                   '--data_dir=%s' % data_dir], capsys).stdout
    raw = run_main(evaluate, ['--checkpoint=%s' % trained.logdir, '--data_dir=%s' % data_dir,
                              '--no_ema'], capsys).stdout
    assert ' with moving averages on 12 images' in averaged.splitlines()[0], averaged
    assert 'moving averages' not in raw
    assert averaged.split()[-1] != raw.split()[-1]  # (validation scored the averages too:
    # test_evaluate.py)
    for flags in ([], ['--no_ema']):
        out = run_main(generate, ['--checkpoint=%s' % trained.logdir, '--num_images=1',
                                  '--out=%s' % (tmp_path / 'one.png')] + flags, capsys).stdout
        assert ('with moving averages (fast generation' in out) == (not flags), out


def test_a_run_without_averages_generates_from_its_weights(data_dir, tiny_params, tmp_path,
                                                           capsys, trained):
    logdir = tmp_path / 'plain'
    printed = run_main(train, train_flags(data_dir, logdir, 2, '--ema_decay=0',
                                          params=tiny_params), capsys).stdout
    assert 'moving averages: off\n' in printed, printed
    names = [name for name, _ in tf.train.list_variables(str(logdir))]
    assert names and not [name for name in names if 'ExponentialMovingAverage' in name]
    out = run_main(generate, ['--checkpoint=%s' % logdir, '--num_images=1',
                              '--out=%s' % (tmp_path / 'one.png')], capsys).stdout
    assert 'moving averages' not in out and (tmp_path / 'one.png').exists()
    mixed = run_main(evaluate, ['--checkpoint=%s' % trained.logdir, '--checkpoint=%s' % logdir,
                                '--data_dir=%s' % data_dir], capsys).stdout
    assert ' with the moving averages of 1 of its 2 members on 12 images' in mixed, mixed


@pytest.fixture(scope='module')
def mixture(data_dir, tmp_path_factory):
    """A logistic-mixture model of the 8x8 data, trained for 30 steps."""
    root = tmp_path_factory.mktemp('mixture')
    write_json(root / 'params.json', dict(TINY_PARAMS, output='logistic_mixture',
                                          mixture_components=3))
    run_main(train, train_flags(data_dir, root / 'logdir', 30, '--checkpoint_every=15',
                                params=root / 'params.json'))
    return root / 'logdir'


def test_a_mixture_model_learns_and_evaluates_as_validation_reported(mixture, data_dir,
                                                                     capsys):
    validation = [event.summary.value[0].simple_value
                  for event in tf.train.summary_iterator(str(next(
                      (mixture / 'validation').glob('events.out.tfevents*'))))
                  if event.HasField('summary')]
    assert len(validation) == 2 and validation[1] < validation[0] < 8
    folder = data_dir / 'dark'
    scored = float(run_main(evaluate, ['--checkpoint=%s' % mixture, '--data_dir=%s' % folder],
                            capsys).stdout.split()[-1])
    assert 0 < scored < 8


def test_ensembles_need_members_of_one_output(mixture, trained, data_dir, tmp_path, capsys):
    message = error_of(evaluate, ['--checkpoint=%s' % mixture, '--checkpoint=%s' % trained.logdir,
                                  '--data_dir=%s' % data_dir])
    assert 'cannot ensemble' in message and 'output' in message, message
    single = float(run_main(evaluate, ['--checkpoint=%s' % mixture, '--data_dir=%s' % data_dir],
                            capsys).stdout.split()[-1])
    itself = float(run_main(evaluate, ['--checkpoint=%s' % mixture, '--checkpoint=%s' % mixture,
                                       '--data_dir=%s' % data_dir], capsys).stdout.split()[-1])
    assert itself == pytest.approx(single, abs=2e-4)
    run_main(generate, ['--checkpoint=%s' % mixture, '--num_images=2',
                        '--checkpoint=%s' % (mixture / 'model.ckpt-15'),
                        '--out=%s' % (tmp_path / 'pair.png')])
    assert (tmp_path / 'pair.png').exists()
