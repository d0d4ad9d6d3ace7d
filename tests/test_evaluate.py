"""bits_per_dim: the exact mean of -log2 p over every pixel, computed independently."""
import numpy as np
import tensorflow.compat.v1 as tf

from wavenet.evaluation import bits_per_dim
from wavenet.model import WaveNetModel
from wavenet.params import WaveNetParams


def test_bits_per_dim_equals_mean_of_per_pixel_log2_probabilities():
    params = WaveNetParams(dilations=(1, 2, 4), residual_channels=8, dilation_channels=8,
                           skip_channels=8, quantization_channels=32)
    images = np.random.default_rng(0).integers(0, 32, size=(7, 5, 6)).astype(np.uint8)
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        model = WaveNetModel(params, (5, 6))
        pixels = tf.placeholder(tf.int32, [None, 30])
        nats = model.nats_per_image(pixels)
        logits = model.logits(pixels)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            # batch size 3 does not divide 7: the last partial batch must count exactly once
            result = bits_per_dim(session, nats, pixels, images, batch_size=3)
            all_logits = session.run(logits, {pixels: images.reshape(7, 30)}).astype(np.float64)
    log_probabilities = all_logits - np.log(np.exp(all_logits).sum(axis=-1, keepdims=True))
    targets = images.reshape(7, 30)
    chosen = np.take_along_axis(log_probabilities, targets[..., None].astype(int), axis=-1)
    expected = -chosen.mean() / np.log(2)
    assert abs(result - expected) < 1e-5, (result, expected)
