"""wavenet.ops against plain numpy references."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from wavenet import ops


def run(tensor, feed=None):
    with tf.Session() as session:
        return session.run(tensor, feed)


def numpy_causal_conv(inputs, filters, dilation):
    """Direct loops: out[b, t] = sum_i inputs[b, t - (w - 1 - i) * d] @ filters[i]."""
    batch, length, _ = inputs.shape
    width = filters.shape[0]
    outputs = np.zeros((batch, length, filters.shape[2]))
    for t in range(length):
        for i in range(width):
            source = t - (width - 1 - i) * dilation
            if source >= 0:
                outputs[:, t] += inputs[:, source] @ filters[i]
    return outputs


@pytest.mark.parametrize('width,dilation', [(1, 1), (2, 1), (2, 3), (3, 2), (4, 5)])
def test_causal_conv_matches_numpy(width, dilation):
    rng = np.random.default_rng(width * 10 + dilation)
    inputs = rng.normal(size=(2, 17, 3))
    filters = rng.normal(size=(width, 3, 4))
    biases = rng.normal(size=4)
    with tf.Graph().as_default():
        result = run(ops.causal_conv(tf.constant(inputs), tf.constant(filters), dilation,
                                     tf.constant(biases)))
    np.testing.assert_allclose(result, numpy_causal_conv(inputs, filters, dilation) + biases,
                               rtol=1e-10, atol=1e-10)


def test_causal_shift_delays_with_zeros():
    inputs = np.arange(2 * 5 * 1, dtype=np.float32).reshape(2, 5, 1) + 1
    with tf.Graph().as_default():
        shifted = run(ops.causal_shift(tf.constant(inputs), 2))
        too_far = run(ops.causal_shift(tf.constant(inputs), 9))
    assert shifted.shape == too_far.shape == inputs.shape
    np.testing.assert_array_equal(shifted[:, :2], 0)
    np.testing.assert_array_equal(shifted[:, 2:], inputs[:, :3])
    np.testing.assert_array_equal(too_far, 0)


def test_causal_shift_of_unknown_length_passes_gradients_back_in_time():
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(2, 6, 3)).astype(np.float32)
    upstream = rng.normal(size=(2, 6, 3)).astype(np.float32)
    with tf.Graph().as_default():
        placeholder = tf.placeholder(tf.float32, [None, None, 3])
        for shift in (0, 2, 6, 9):
            shifted = ops.causal_shift(placeholder, shift)
            assert shifted.shape.as_list() == [None, None, 3]
            gradient = tf.gradients(tf.reduce_sum(shifted * upstream), placeholder)[0]
            with tf.Session() as session:
                shifted, gradient = session.run([shifted, gradient], {placeholder: inputs})
            expected_shifted, expected_gradient = np.zeros_like(inputs), np.zeros_like(inputs)
            kept = max(6 - shift, 0)
            expected_shifted[:, 6 - kept:] = inputs[:, :kept]
            expected_gradient[:, :kept] = upstream[:, 6 - kept:]
            np.testing.assert_array_equal(shifted, expected_shifted)
            np.testing.assert_array_equal(gradient, expected_gradient)


def test_dense_matches_numpy_for_any_rank():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(3, 5))
    with tf.Graph().as_default():
        for shape in [(3,), (4, 3), (2, 4, 3)]:
            inputs = rng.normal(size=shape)
            np.testing.assert_allclose(run(ops.dense(tf.constant(inputs), tf.constant(weights))),
                                       inputs @ weights, rtol=1e-12)


@pytest.mark.parametrize('width', [1, 2, 4])
def test_embedding_conv_equals_one_hot_conv(width):
    """Table lookups give the same result as a convolution over one-hot vectors."""
    rng = np.random.default_rng(width)
    num_tokens, pad_token = 7, 6
    tokens = rng.integers(0, num_tokens, size=(3, 11))
    tables = rng.normal(size=(width, num_tokens, 5))
    padded = np.concatenate([np.full((3, width - 1), pad_token), tokens], axis=1)
    one_hot = np.eye(num_tokens)[padded]  # [B, T + width - 1, tokens]
    expected = numpy_causal_conv(one_hot, tables, 1)[:, width - 1:]
    with tf.Graph().as_default():
        result = run(ops.causal_embedding_conv(tf.constant(tokens), tf.constant(tables),
                                               pad_token))
    np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-10)


def test_shift_in_start_token():
    pixels = np.array([[5, 6, 7], [1, 2, 3]])
    with tf.Graph().as_default():
        placeholder = tf.placeholder(tf.int64, [2, None])
        shifted = ops.shift_in_start_token(placeholder, 256)
        np.testing.assert_array_equal(run(shifted, {placeholder: pixels}),
                                      [[256, 5, 6], [256, 1, 2]])
        assert run(shifted, {placeholder: np.zeros((2, 0))}).shape == (2, 0)


def test_nats_to_bits():
    with tf.Graph().as_default():
        assert run(ops.nats_to_bits(tf.constant(np.log(8.0)))) == pytest.approx(3.0)


def numpy_translate(images, offsets):
    """Loops: out[b, y, x] = images[b, clip(y - down), clip(x - right)]."""
    batch, height, width, _ = images.shape
    outputs = np.empty_like(images)
    for b in range(batch):
        down, right = offsets[b]
        for y in range(height):
            for x in range(width):
                outputs[b, y, x] = images[b, min(max(y - down, 0), height - 1),
                                          min(max(x - right, 0), width - 1)]
    return outputs


@pytest.mark.parametrize('num_levels,num_bumps', [(256, 32), (16, 2), (16, 16)])
def test_level_bumps_match_numpy(num_levels, num_bumps):
    with tf.Graph().as_default():
        bumps = run(ops.level_bumps(num_levels, num_bumps))
    spacing = (num_levels - 1) / (num_bumps - 1)
    levels = np.arange(num_levels)
    expected = np.stack([np.exp(-0.5 * ((levels - j * spacing) / spacing) ** 2)
                         for j in range(num_bumps)])
    np.testing.assert_allclose(bumps, expected, rtol=1e-5, atol=1e-7)
    # The first bump peaks at the lowest level, the last at the highest.
    assert bumps[0, 0] == bumps[-1, -1] == 1


@pytest.mark.parametrize('num_members', [1, 3])
def test_mixture_log_probabilities_match_numpy(num_members):
    rng = np.random.default_rng(num_members)
    member_logits = [20 * rng.normal(size=(2, 5, 7)) for _ in range(num_members)]
    with tf.Graph().as_default():
        result = run(ops.mixture_log_probabilities([tf.constant(logits, tf.float64)
                                                    for logits in member_logits]))
    probabilities = [np.exp(logits - logits.max(axis=-1, keepdims=True))
                     for logits in member_logits]
    mean = np.mean([p / p.sum(axis=-1, keepdims=True) for p in probabilities], axis=0)
    np.testing.assert_allclose(result, np.log(mean), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.exp(result).sum(axis=-1), 1, rtol=1e-9)


def test_translate_images_matches_numpy():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(4, 5, 7, 3)).astype(np.uint8)
    offsets = np.array([[0, 0], [2, -1], [-3, 4], [1, 1]], np.int32)
    with tf.Graph().as_default():
        result = run(ops.translate_images(tf.constant(images), tf.constant(offsets)))
    np.testing.assert_array_equal(result, numpy_translate(images, offsets))
    np.testing.assert_array_equal(result[0], images[0])


def test_random_offsets_are_bounded_repeatable_and_vary_with_the_step():
    with tf.Graph().as_default():
        step = tf.placeholder(tf.int64, [])
        offsets = ops.random_offsets(step, 500, 2, seed=7)
        with tf.Session() as session:
            first, again, later = (session.run(offsets, {step: value}) for value in (3, 3, 4))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, later)
    assert first.dtype == np.int32 and first.shape == (500, 2)
    assert set(np.unique(first)) == {-2, -1, 0, 1, 2}


def test_dropout_rows_of_a_slice_are_those_of_the_whole_batch():
    inputs = np.random.default_rng(3).normal(size=(6, 40, 5)).astype(np.float32)
    with tf.Graph().as_default():
        seed = tf.constant([4, 5], tf.int64)
        whole = ops.dropout_rows(tf.constant(inputs), 0.25, seed)
        pieces = [ops.dropout_rows(tf.constant(inputs[first:first + 2]), 0.25, seed, first, 6)
                  for first in (0, 2, 4)]
        whole_value, piece_values = run([whole, pieces])
    np.testing.assert_allclose(np.concatenate(piece_values), whole_value, rtol=1e-6)
    dropped = whole_value == 0
    assert 0.2 < dropped.mean() < 0.3, dropped.mean()
    np.testing.assert_allclose(whole_value[~dropped], inputs[~dropped] / 0.75, rtol=1e-6)
