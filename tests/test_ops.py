"""wavenet.ops against plain numpy references."""
from fractions import Fraction
import math

import numpy as np
import pytest
from scipy import stats
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


def test_apply_symmetries_gives_the_eight_symmetries_of_the_square():
    images = np.random.default_rng(4).integers(0, 256, size=(8, 5, 5, 2)).astype(np.uint8)
    with tf.Graph().as_default():
        result = run(ops.apply_symmetries(tf.constant(images), tf.range(8)))
    for symmetry in range(8):
        image = images[symmetry] if symmetry < 4 else images[symmetry].transpose(1, 0, 2)
        np.testing.assert_array_equal(result[symmetry], np.rot90(image, symmetry % 4))
    with tf.Graph().as_default():
        turned = run(ops.apply_symmetries(tf.constant(np.repeat(images[:1], 8, 0)), tf.range(8)))
    assert len({image.tobytes() for image in turned}) == 8


def test_random_symmetries_turn_their_share_evenly_and_follow_seed_and_step():
    with tf.Graph().as_default():
        step = tf.placeholder(tf.int64, [])
        draws = [ops.random_symmetries(step, 70000, share, seed=7) for share in (0.5, 0, 1)]
        with tf.Session() as session:
            (first, none, every), again, later = (session.run(draws, {step: value})
                                                  for value in (3, 3, 4))
    np.testing.assert_array_equal(first, again[0])
    assert not np.array_equal(first, later[0])
    assert first.dtype == np.int32 and not none.any() and every.all()
    shares = np.bincount(first, minlength=8) / len(first)
    np.testing.assert_allclose(shares, [0.5] + [0.5 / 7] * 7, atol=0.01)


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


def numpy_discretized_logistic_mixture(parameters, num_levels, min_log_scale=-7.0):
    """Plain float64 formulas; returns the levels' log-probabilities and where bins fall back."""
    logits, means, log_scales = np.split(np.asarray(parameters, np.float64), 3, axis=-1)
    means = means[..., None, :]  # [..., 1, K]
    log_scales = np.maximum(log_scales, min_log_scale)[..., None, :]
    scales = np.exp(log_scales)
    half_bin = 1 / (num_levels - 1)
    centres = np.linspace(-1, 1, num_levels)[:, None]  # [L, 1]
    with np.errstate(over='ignore', divide='ignore'):
        upper_cdf = 1 / (1 + np.exp(-(centres + half_bin - means) / scales))
        lower_cdf = 1 / (1 + np.exp(-(centres - half_bin - means) / scales))
        fallback = upper_cdf - lower_cdf < 1e-5
        distance = np.abs(centres - means) / scales
        log_density = -distance - 2 * np.log1p(np.exp(-distance)) - log_scales
        log_bins = np.where(fallback, log_density + np.log(2 * half_bin),
                            np.log(upper_cdf - lower_cdf))
    # log CDF(z) = -log(1 + exp(-z)) and log(1 - CDF(z)) = -log(1 + exp(z)), without underflow.
    log_bins[..., 0, :] = -np.logaddexp(0, -(-1 + half_bin - means[..., 0, :]) / scales[..., 0, :])
    log_bins[..., -1, :] = -np.logaddexp(0, (1 - half_bin - means[..., 0, :]) / scales[..., 0, :])
    fallback[..., [0, -1], :] = False
    log_weights = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    return np.logaddexp.reduce(log_bins + log_weights[..., None, :], axis=-1), fallback


def random_mixture_parameters(rng, shape, num_components):
    """Mixture parameters [*shape, 3K] in float32: half of them ordinary, half extreme."""
    size = tuple(shape) + (num_components,)
    logits = 3 * rng.normal(size=size)
    means = np.where(rng.random(size) < 0.5, rng.uniform(-1.5, 1.5, size),
                     rng.uniform(-20, 20, size))
    log_scales = np.where(rng.random(size) < 0.5, rng.uniform(-8, 1, size),
                          rng.uniform(-20, 10, size))
    return np.concatenate([logits, means, log_scales], axis=-1).astype(np.float32)


@pytest.mark.parametrize('num_components,num_levels', [(1, 256), (5, 256), (1, 7), (5, 7)])
def test_logistic_mixture_log_probabilities_match_numpy(num_components, num_levels):
    rng = np.random.default_rng(num_components * 1000 + num_levels)
    parameters = random_mixture_parameters(rng, (16, 8), num_components)
    # Three single logistics: at the floor of the scales, far outside [-1, 1], very wide.
    for position, (mean, log_scale) in enumerate([(0.0, -7.0), (20.0, -20.0), (0.3, 10.0)]):
        parameters[0, position, num_components:] = np.repeat([mean, log_scale], num_components)
    expected, fallback = numpy_discretized_logistic_mixture(parameters, num_levels)
    assert fallback.any() and not fallback.all()
    with tf.Graph().as_default(), tf.Session() as session:
        inputs = tf.constant(parameters.astype(np.float64))  # cast to float32 inside
        log_probabilities = ops.logistic_mixture_log_probabilities(inputs, num_levels)
        assert log_probabilities.dtype == tf.float32
        gradient = tf.gradients(tf.reduce_sum(log_probabilities * rng.normal(size=num_levels)),
                                inputs)[0]
        result, gradient = session.run([log_probabilities, gradient])
    assert result.shape == (16, 8, num_levels)
    assert np.isfinite(result).all() and np.isfinite(gradient).all()
    # float32 arguments (x_l - mean) / s carry an absolute error up to about 1e-7 / s, 1e-4 at
    # the floor of the scales, and a relative one of about 1e-7 in the far tails.
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-4)
    # The fall-back underestimates bins of mass < 1e-5 in the tails, where masses fall
    # geometrically: a sweep of means and log-scales put the deficit of a whole distribution
    # below 2e-5, for 256 levels and for 7; float32 adds about 1e-6.
    np.testing.assert_allclose(np.exp(result).sum(axis=-1), 1, rtol=0, atol=5e-5)


def test_logistic_mixture_loss_is_minus_log_probability():
    """Cross entropy with the log-probabilities as logits, and the log-likelihood alone."""
    rng = np.random.default_rng(4)
    parameters = random_mixture_parameters(rng, (6, 50), 3)
    pixels = rng.integers(0, 256, size=(6, 50)).astype(np.uint8)
    pixels[:, :5] = [0, 255, 1, 254, 128]
    expected, _ = numpy_discretized_logistic_mixture(parameters, 256)
    with tf.Graph().as_default(), tf.Session() as session:
        log_probabilities = ops.logistic_mixture_log_probabilities(tf.constant(parameters), 256)
        cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.constant(pixels, tf.int32), logits=log_probabilities)
        log_likelihood = ops.logistic_mixture_log_likelihood(
            tf.constant(parameters.astype(np.float64)), tf.constant(pixels), 256)
        assert log_likelihood.dtype == tf.float32
        cross_entropy, log_likelihood = session.run([cross_entropy, log_likelihood])
    minus_log_p = -np.take_along_axis(expected, pixels[..., None], axis=-1)[..., 0]
    # As in the test above; the softmax also renormalizes the fall-back's deficit (< 5e-5).
    np.testing.assert_allclose(cross_entropy, minus_log_p, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(-log_likelihood, minus_log_p, rtol=1e-5, atol=1e-4)


SAMPLED_MIXTURE = [0.5, 0.0, -1.0,  # logits
                   -0.9, 0.1, 1.2,  # means: mass on both edge levels
                   -2.0, -20.0, -1.5]  # log-scales, the second floored to -3.5


@pytest.mark.parametrize('num_levels', [256, 7])
def test_sample_logistic_mixture_follows_the_probabilities(num_levels):
    num_draws = 50000
    with tf.Graph().as_default(), tf.Session() as session:
        tf.set_random_seed(1)
        parameters = tf.tile(tf.constant([SAMPLED_MIXTURE]), [num_draws, 1])  # [N, 3K]
        draws, log_probabilities = session.run([
            ops.sample_logistic_mixture(parameters, num_levels, 1.0, min_log_scale=-3.5),
            ops.logistic_mixture_log_probabilities(parameters[0], num_levels, -3.5)])
    assert draws.dtype == np.int32 and draws.shape == (num_draws,)
    observed = np.bincount(draws, minlength=num_levels)
    assert observed.size == num_levels
    assert observed[0] > 1000 and observed[-1] > 1000  # both edge levels are exercised
    expected = np.exp(log_probabilities.astype(np.float64))
    expected *= num_draws / expected.sum()  # float32 rounding: chisquare wants equal totals
    rare = expected < 5  # merged into one bin
    if rare.any():
        observed = np.append(observed[~rare], observed[rare].sum())
        expected = np.append(expected[~rare], expected[rare].sum())
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_sample_logistic_mixture_concentrates_at_low_temperature_and_repeats():
    # Two components 128 levels apart: both the logits and the scales must be tempered.
    parameters = np.tile([[1.0, 0.0, -0.5, 0.5, -2.0, -2.0]], [20000, 1]).astype(np.float32)
    with tf.Graph().as_default():
        tf.set_random_seed(2)
        temperature = tf.placeholder(tf.float32, [])
        draws = ops.sample_logistic_mixture(tf.constant(parameters), 256, temperature)
        runs = []
        for _ in range(2):
            with tf.Session() as session:
                runs.append([session.run(draws, {temperature: value}) for value in (0.05, 1)])
    (cold, warm), (cold_again, _) = runs
    np.testing.assert_array_equal(cold, cold_again)
    assert cold.std() < 0.1 * warm.std(), (cold.std(), warm.std())
    # The first component, at level (-0.5 + 1) / 2 * 255 = 63.75.
    assert abs(np.median(cold) - 63.75) < 1
    assert 0.1 < np.mean(warm > 127) < 0.4  # softmax([1, 0])[1] = 0.27 at temperature 1


@pytest.mark.parametrize('num_components', [[3], [1, 2, 4]])
def test_merge_logistic_mixtures_averages_the_members(num_components):
    rng = np.random.default_rng(len(num_components))
    members = [random_mixture_parameters(rng, (3, 5), k) for k in num_components]
    for offset, member in enumerate(members):
        member[..., :num_components[offset]] += 10 * offset  # logits need not be normalized
    with tf.Graph().as_default(), tf.Session() as session:
        merged = ops.merge_logistic_mixtures([tf.constant(member) for member in members])
        merged_log_probabilities = ops.logistic_mixture_log_probabilities(merged, 256)
        mean_log_probabilities = ops.mixture_log_probabilities([
            ops.logistic_mixture_log_probabilities(tf.constant(member), 256)
            for member in members])
        merged, result, expected = session.run(
            [merged, merged_log_probabilities, mean_log_probabilities])
    total = sum(num_components)
    assert merged.shape == (3, 5, 3 * total)
    # The merged logits are log-weights: each member holds 1 / M of the mixture.
    np.testing.assert_allclose(np.logaddexp.reduce(merged[..., :total], axis=-1), 0, atol=1e-5)
    np.testing.assert_array_equal(merged[..., total:], np.concatenate(
        [np.concatenate([member[..., k:2 * k] for member, k in zip(members, num_components)],
                        axis=-1),
         np.concatenate([member[..., 2 * k:] for member, k in zip(members, num_components)],
                        axis=-1)], axis=-1))
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)


def numpy_block_average(images, factor):
    """Each block's mean, rounded half up (float64 means of small integers are exact)."""
    batch, height, width, channels = images.shape
    blocks = images.reshape(batch, height // factor, factor, width // factor, factor, channels)
    return np.floor(blocks.mean(axis=(2, 4)) + 0.5)


@pytest.mark.parametrize('factor', [2, 3])
def test_block_average_matches_numpy(factor):
    rng = np.random.default_rng(factor)
    images = rng.integers(0, 256, size=(3, 2 * factor, 4 * factor, 2)).astype(np.uint8)
    images[0, :factor, :factor] = 255
    images[0, :factor, factor:2 * factor] = 0
    with tf.Graph().as_default(), tf.Session() as session:
        placeholder = tf.placeholder(tf.uint8, [None, 2 * factor, 4 * factor, 2])
        averaged = ops.block_average(placeholder, factor)
        assert averaged.shape.as_list() == [None, 2, 4, 2] and averaged.dtype == tf.int32
        result = session.run(averaged, {placeholder: images})
    np.testing.assert_array_equal(result, numpy_block_average(images, factor))
    assert (result[0, 0, 0] == 255).all() and (result[0, 0, 1] == 0).all()


def test_block_average_by_hand():
    two = np.array([[0, 1, 0, 1, 255, 254],
                    [1, 1, 0, 1, 254, 254]])[None, :, :, None]
    three = np.array([[0, 0, 0], [0, 0, 0], [0, 1, 4]])[None, :, :, None]
    with tf.Graph().as_default(), tf.Session() as session:
        halves, ninths = session.run([ops.block_average(tf.constant(two), 2),
                                      ops.block_average(tf.constant(three), 3)])
    # 3 / 4 = 0.75 -> 1; 2 / 4 = 0.5 -> 1 (half up); 1017 / 4 = 254.25 -> 254; 5 / 9 -> 1.
    np.testing.assert_array_equal(halves[0, :, :, 0], [[1, 1, 254]])
    np.testing.assert_array_equal(ninths[0, :, :, 0], [[1]])


def numpy_luminance(images):
    """Exact decimal weights (float64 misrounds a quarter of the ties), rounded half up."""
    weights = [Fraction('0.299'), Fraction('0.587'), Fraction('0.114')]
    luma = images.astype(object) @ np.array(weights, dtype=object)
    return np.vectorize(lambda value: math.floor(value + Fraction(1, 2)))(luma)[..., None]


def test_luminance_matches_numpy_and_hand_checked_colours():
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(2, 5, 7, 3)).astype(np.uint8)
    colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0],
               [0, 0, 250], [0, 12, 4]]  # the last two have luma 28.5 and 7.5
    images[0, 0] = colours
    # Ties that floating-point weights (float32 or float64) round down: 81.5, 52.5, 61.5.
    images[0, 1, :3] = [[14, 122, 50], [26, 76, 1], [28, 74, 85]]
    with tf.Graph().as_default(), tf.Session() as session:
        placeholder = tf.placeholder(tf.uint8, [None, 5, 7, 3])
        luma = ops.luminance(placeholder)
        assert luma.shape.as_list() == [None, 5, 7, 1] and luma.dtype == tf.int32
        result = session.run(luma, {placeholder: images})
    np.testing.assert_array_equal(result, numpy_luminance(images))
    # 76.245, 149.685, 29.07, 255, 0, 28.5 and 7.5, rounded half up.
    np.testing.assert_array_equal(result[0, 0, :, 0], [76, 150, 29, 255, 0, 29, 8])
    np.testing.assert_array_equal(result[0, 1, :3, 0], [82, 53, 62])
