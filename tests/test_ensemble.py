"""Ensembles: exact mixture likelihood, fast mixture sampling, restoring each member."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from wavenet import checkpoints as checkpoints_module
from wavenet.checkpoints import open_for_inference, run_spec_variable
from wavenet.fast_generation import build_fast_generator
from wavenet.model import WaveNetModel
from wavenet.params import WaveNetParams
from wavenet.record import RunRecord, TrainingOptions

IMAGE_SIZE = (4, 6)  # 24 pixels
LEVELS = 16
MEMBER_PARAMS = [
    WaveNetParams(dilations=(1, 2, 4), residual_channels=8, dilation_channels=6,
                  skip_channels=10, quantization_channels=LEVELS, position_channels=3),
    WaveNetParams(dilations=(1, 3), filter_width=3, residual_channels=5, dilation_channels=4,
                  skip_channels=7, quantization_channels=LEVELS, level_bumps=4),
]
SEQUENCES = np.random.default_rng(9).integers(0, LEVELS, size=(2, 24))


def save_members(tmp_path):
    """Trains nothing: saves each member with random weights (biases too) and its run record
    as train.py would, each in its own logdir.

    Returns (checkpoint prefixes, each member's logits float64 [2, 24, LEVELS] of `SEQUENCES`).
    """
    checkpoints, member_logits = [], []
    for index, params in enumerate(MEMBER_PARAMS):
        with tf.Graph().as_default():
            tf.set_random_seed(index)
            model = WaveNetModel(params, IMAGE_SIZE)
            pixels = tf.placeholder(tf.int32, [None, None])
            logits = model.logits(pixels)
            run_spec_variable(RunRecord(params, IMAGE_SIZE, 1, (), TrainingOptions()))
            with tf.Session() as session:
                session.run(tf.global_variables_initializer())
                rng = np.random.default_rng(index)
                for variable in tf.trainable_variables():
                    value = session.run(variable)
                    variable.load(value + 0.3 * rng.normal(size=value.shape), session)
                member_logits.append(session.run(logits, {pixels: SEQUENCES}).astype(np.float64))
                logdir = str(tmp_path / ('member%d' % index))
                checkpoints.append(tf.train.Saver().save(
                    session, logdir + '/model.ckpt', global_step=1))
    return checkpoints, member_logits



def numpy_log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def test_ensemble_likelihood_is_the_mixture_of_the_members(tmp_path):
    checkpoints, member_logits = save_members(tmp_path)
    with tf.Graph().as_default():
        models = open_for_inference(checkpoints)
        pixels = tf.placeholder(tf.int32, [None, 24])
        nats = models.mixture.nats_per_image(pixels)
        with tf.Session() as session:
            models.restore(session)
            result = session.run(nats, {pixels: SEQUENCES})
    member_probabilities = [np.exp(numpy_log_softmax(logits)) for logits in member_logits]
    mixture = np.mean(member_probabilities, axis=0)  # [2, 24, LEVELS]
    chosen = np.take_along_axis(mixture, SEQUENCES[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(result, -np.log(chosen).sum(axis=1), rtol=1e-5)


def test_ensemble_of_one_is_the_model_under_its_own_names(tmp_path):
    checkpoints, member_logits = save_members(tmp_path)
    with tf.Graph().as_default():
        models = open_for_inference(checkpoints[:1])
        assert all(variable.op.name.startswith('wavenet/') for variable in tf.global_variables())
        assert models.description == checkpoints[0]
        pixels = tf.placeholder(tf.int32, [None, 24])
        logits = models.mixture.logits(pixels)
        with tf.Session() as session:
            models.restore(session)
            np.testing.assert_allclose(session.run(logits, {pixels: SEQUENCES}),
                                       member_logits[0], atol=1e-5)


def test_member_whose_run_json_does_not_match_its_checkpoint_is_named(tmp_path):
    checkpoints, _ = save_members(tmp_path)
    (tmp_path / 'member1' / 'run.json').write_text(RunRecord(
        MEMBER_PARAMS[0], IMAGE_SIZE, 1, (), TrainingOptions()).to_json())
    with tf.Graph().as_default():
        with pytest.raises(checkpoints_module.CheckpointError,
                           match=r'run.json does not match the run stored in checkpoint %s: '
                                 r'they differ in dilation_channels, dilations, filter_width'
                           % checkpoints[1]):
            open_for_inference(checkpoints)


@pytest.mark.parametrize('state,lanes', [('ring', 2), ('queues', 1)])
def test_fast_ensemble_generation_samples_the_mixture(tmp_path, state, lanes):
    """Every step's distribution is the members' mean given the pixels generated so far."""
    checkpoints, _ = save_members(tmp_path)
    batch_size, known = 3, 5
    with tf.Graph().as_default():
        models = open_for_inference(checkpoints)
        generator = build_fast_generator(models.mixture, batch_size, with_probabilities=True,
                                         state=state, lanes=lanes)
        pixels = tf.placeholder(tf.int32, [None, 24])
        probabilities = tf.nn.softmax(models.mixture.logits(pixels))
        with tf.Session() as session:
            models.restore(session)
            prime = SEQUENCES[[0, 1, 0], :known].astype(np.int32)
            session.run(generator.prime, {generator.prime_pixels: prime})
            generated, fast = session.run(
                [generator.pixels, generator.probabilities],
                {generator.prime_pixels: prime, generator.start: known,
                 generator.num_steps: 24 - known, generator.previous_pixel: prime[:, -1]})
            completed = np.concatenate([prime, generated], axis=1)
            naive = session.run(probabilities, {pixels: completed})
    np.testing.assert_allclose(fast, naive[:, known:], atol=1e-5, rtol=0)
