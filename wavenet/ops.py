"""Pure tensor functions: causal (dilated) convolutions, shifts, dropout, losses.

Every function here builds graph ops from its arguments only; none creates variables.
Shapes use B = batch, T = time (pixels in raster order), C = channels.
"""
import math

import tensorflow.compat.v1 as tf


def dense(inputs, weights, biases=None):
    """A 1x1 convolution: a matrix product over the last axis.

    Args:
        inputs: float [..., in_channels].
        weights: float [in_channels, out_channels].
        biases: optional float [out_channels].
    Returns:
        float [..., out_channels].
    """
    if inputs.shape.ndims == 2:
        outputs = tf.matmul(inputs, weights)
    else:
        leading = tf.shape(inputs)[:-1]
        flat = tf.reshape(inputs, [-1, weights.shape[0]])  # [product of leading, in]
        outputs = tf.reshape(tf.matmul(flat, weights),
                             tf.concat([leading, tf.shape(weights)[1:]], axis=0))
    return outputs if biases is None else outputs + biases


def filter_matrix(filters):
    """Filters [filter_width, in, out] as the matrix [filter_width * in, out] of conv_taps."""
    filter_width, in_channels, out_channels = filters.shape.as_list()
    return tf.reshape(filters, [filter_width * in_channels, out_channels])


def conv_taps(taps, matrix, biases=None):
    """One output step of a convolution from its input taps.

    Args:
        taps: list of filter_width tensors, each float [..., in_channels], oldest first.
        matrix: float [filter_width * in_channels, out_channels], from filter_matrix.
        biases: optional float [out_channels].
    Returns:
        float [..., out_channels]: sum over i of taps[i] x filters[i].
    """
    stacked = tf.concat(taps, axis=-1)  # [..., filter_width * in_channels]
    return dense(stacked, matrix, biases)


def causal_shift(inputs, shift):
    """Delays a sequence by `shift` steps, filling the start with zeros.

    Args:
        inputs: [B, T, C].
        shift: non-negative Python int.
    Returns:
        [B, T, C] with outputs[:, t] = inputs[:, t - shift], zero where t < shift.
    """
    if shift == 0:
        return inputs
    # Slice, then pad: their gradients (pad, slice) cost far less than a strided slice's.
    length = tf.shape(inputs)[1]
    delay = tf.minimum(shift, length)
    kept = tf.slice(inputs, [0, 0, 0], [-1, length - delay, -1])  # [B, T - delay, C]
    shifted = tf.pad(kept, [[0, 0], [delay, 0], [0, 0]])
    shifted.set_shape(inputs.shape)  # the padding is a tensor: keep the static shape
    return shifted


def causal_conv(inputs, filters, dilation, biases=None):
    """Causal dilated convolution: output t sees inputs t, t - d, ..., t - (w - 1) d.

    Args:
        inputs: float [B, T, in_channels].
        filters: float [filter_width, in_channels, out_channels].
        dilation: positive Python int.
        biases: optional float [out_channels].
    Returns:
        float [B, T, out_channels]; positions before the start count as zeros.
    """
    filter_width = filters.shape.as_list()[0]
    taps = [causal_shift(inputs, (filter_width - 1 - i) * dilation) for i in range(filter_width)]
    return conv_taps(taps, filter_matrix(filters), biases)


def embedding_taps(token_taps, tables):
    """One output step of a convolution over one-hot tokens, as table lookups.

    Equal to conv_taps over the one-hot encodings of the tokens, without the one-hot matmul.

    Args:
        token_taps: list of filter_width int tensors [...], oldest first.
        tables: float [filter_width, num_tokens, out_channels].
    Returns:
        float [..., out_channels].
    """
    return tf.add_n([tf.gather(tables[i], tokens) for i, tokens in enumerate(token_taps)])


def causal_embedding_conv(tokens, tables, pad_token):
    """Causal convolution over one-hot tokens, as table lookups.

    Args:
        tokens: int [B, T].
        tables: float [filter_width, num_tokens, out_channels].
        pad_token: Python int standing for every position before the start.
    Returns:
        float [B, T, out_channels]; output t sees tokens t - filter_width + 1 .. t.
    """
    filter_width = tables.shape.as_list()[0]
    batch_size, length = tf.shape(tokens)[0], tf.shape(tokens)[1]
    padding = tf.fill([batch_size, filter_width - 1], tf.cast(pad_token, tokens.dtype))
    padded = tf.concat([padding, tokens], axis=1)  # [B, T + filter_width - 1]
    return embedding_taps([padded[:, i:i + length] for i in range(filter_width)], tables)


def level_bumps(num_levels, num_bumps):
    """Smooth functions of the pixel level: Gaussian bumps spread evenly over the levels.

    Bump j is centred on level j * (num_levels - 1) / (num_bumps - 1) and its standard
    deviation is that spacing, so neighbouring bumps overlap and any combination of them is
    a smooth curve over the levels.

    Args:
        num_levels: Python int, the number of pixel levels.
        num_bumps: Python int >= 2.
    Returns:
        float32 [num_bumps, num_levels].
    """
    spacing = (num_levels - 1) / (num_bumps - 1)
    levels = tf.range(num_levels, dtype=tf.float32)[None, :]
    centres = tf.range(num_bumps, dtype=tf.float32)[:, None] * spacing
    return tf.exp(-0.5 * tf.square((levels - centres) / spacing))


def shift_in_start_token(pixels, start_token):
    """The network input for predicting every pixel from the ones before it.

    Args:
        pixels: int [B, T] pixel levels.
        start_token: Python int, a token that is not a pixel level.
    Returns:
        int [B, T]: start_token followed by pixels[:, :-1].
    """
    start = tf.fill([tf.shape(pixels)[0], 1], tf.cast(start_token, pixels.dtype))
    return tf.concat([start, pixels], axis=1)[:, :tf.shape(pixels)[1]]


def stateless_seed(seed, counter):
    """The seed of a stateless random op drawn from (seed, counter) alone.

    Args:
        seed: Python int, the run's seed.
        counter: integer scalar tensor (a step or an epoch).
    Returns:
        int64 [2].
    """
    return tf.stack([tf.constant(seed, tf.int64), tf.cast(counter, tf.int64)])


def dropout_rows(inputs, rate, seed, first=0, total=None):
    """Stateless dropout of some rows of a batch, as the whole batch would drop them.

    The mask is drawn for `total` rows from the seed alone, and rows first .. first + B - 1
    of it are applied, so a replica holding a slice of a distributed batch drops what one
    device holding the whole batch drops in those rows.

    Args:
        inputs: float [B, ...].
        rate: Python float in [0, 1): the share of values set to zero.
        seed: int64 [2], the seed of the mask.
        first: Python int, the first row of `inputs` within the batch.
        total: Python int, the rows of the batch (None: B, the rows of `inputs`).
    Returns:
        float [B, ...]: inputs / (1 - rate) where kept, 0 where dropped.
    """
    shape = tf.shape(inputs)
    rows = shape[:1] if total is None else [total]
    noise = tf.random.stateless_uniform(tf.concat([rows, shape[1:]], axis=0), seed=seed)
    keep = noise[first:first + shape[0]] >= rate
    return tf.where(keep, inputs * (1 / (1 - rate)), tf.zeros_like(inputs))


def translate_images(images, offsets):
    """Shifts each image by whole pixels, repeating its edge rows and columns.

    Args:
        images: [B, H, W, C].
        offsets: int32 [B, 2]: rows down and columns right, each may be negative.
    Returns:
        [B, H, W, C] with outputs[b, y, x] = images[b, clip(y - down), clip(x - right)],
        clip keeping the index inside the image.
    """
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    rows = tf.clip_by_value(tf.range(height)[None] - offsets[:, :1], 0, height - 1)  # [B, H]
    columns = tf.clip_by_value(tf.range(width)[None] - offsets[:, 1:], 0, width - 1)  # [B, W]
    moved_rows = tf.gather(images, rows, axis=1, batch_dims=1)  # [B, H, W, C]
    return tf.gather(moved_rows, columns, axis=2, batch_dims=1)


def random_offsets(step, batch_size, max_shift, seed):
    """Random translations of batch number `step`, a function of (seed, step) alone.

    Args:
        step: int64 scalar tensor, the global step.
        batch_size: Python int.
        max_shift: Python int >= 0, the largest shift in each direction.
        seed: Python int.
    Returns:
        int32 [batch_size, 2] offsets, uniform in [-max_shift, max_shift].
    """
    # A second seed word keeps these draws apart from the dropout masks' (the same seed).
    return tf.random.stateless_uniform([batch_size, 2],
                                       seed=stateless_seed(seed, step) + [0, 1 << 40],
                                       minval=-max_shift, maxval=max_shift + 1, dtype=tf.int32)


def mixture_log_probabilities(member_logits):
    """Log of the equal-weight mean of several softmax distributions.

    Args:
        member_logits: a non-empty list of float [..., Q] logits, one per mixture member.
    Returns:
        float [..., Q]: log((1 / K) * sum over the K members of softmax(logits)), normalized
        log-probabilities that serve as logits too.
    """
    log_probabilities = tf.stack([tf.nn.log_softmax(logits) for logits in member_logits])
    return tf.reduce_logsumexp(log_probabilities, axis=0) - math.log(len(member_logits))


def nats_per_sequence(logits, pixels):
    """Negative log-likelihood of each sequence.

    Args:
        logits: float [B, T, Q].
        pixels: int [B, T] levels, the targets.
    Returns:
        float [B]: the sum over t of -ln softmax(logits[:, t])[pixels[:, t]].
    """
    nats = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(pixels, tf.int32), logits=logits)  # [B, T]
    return tf.reduce_sum(nats, axis=1)


def nats_to_bits(nats):
    """A negative log-likelihood in nats (a tensor or a number) in bits."""
    return nats / math.log(2.0)


def _logistic_level_log_probabilities(levels, means, log_scales, num_levels):
    """log P(level) under single logistics, with PixelCNN++'s edge levels and fall-back.

    Args:
        levels: float32 levels.
        means: float32 means, broadcasting against levels.
        log_scales: float32 log-scales, already floored, broadcasting against levels.
        num_levels: Python int L.
    Returns:
        float32, of the broadcast shape.
    """
    inverse_scales = tf.exp(-log_scales)
    half_bin = 1.0 / (num_levels - 1)
    centred = ((2 * levels - (num_levels - 1)) * half_bin - means) * inverse_scales
    upper = centred + half_bin * inverse_scales
    lower = centred - half_bin * inverse_scales
    # CDF(upper) - CDF(lower) = sigmoid(upper) sigmoid(-lower) (1 - exp(lower - upper)), in
    # logs: no cancellation where both CDFs are near 1 or near 0.
    log_mass = (-tf.nn.softplus(-upper) - tf.nn.softplus(lower)
                + tf.log(-tf.math.expm1(-2 * half_bin * inverse_scales)))
    log_centre_density = centred - log_scales - 2 * tf.nn.softplus(centred)
    log_bins = tf.where_v2(log_mass >= math.log(1e-5), log_mass,
                           log_centre_density + math.log(2 * half_bin))
    log_bins = tf.where_v2(tf.equal(levels, 0), -tf.nn.softplus(-upper), log_bins)  # CDF(upper)
    return tf.where_v2(tf.equal(levels, num_levels - 1), -tf.nn.softplus(lower),  # 1 - CDF
                       log_bins)


def logistic_mixture_log_probabilities(parameters, num_levels, min_log_scale=-7.0):
    """Log-probabilities of the levels under a mixture of discretized logistics (PixelCNN++).

    Level l sits at x_l = 2 l / (num_levels - 1) - 1 and owns the bin x_l +- d, d = 1 /
    (num_levels - 1); level 0 owns everything below its upper edge, the last level everything
    above its lower edge. A bin whose probability under a component is below 1e-5 takes that
    component's log density at the bin centre plus log(2 d) instead, as PixelCNN++ does.

    Args:
        parameters: float [..., 3K]: K mixture logits, K means, K log-scales.
        num_levels: Python int L >= 2.
        min_log_scale: Python float, the floor on the log-scales.
    Returns:
        float32 [..., L] normalized log-probabilities (up to the fall-back, which leaves out
        less than 1e-4), computed in float32 whatever the input dtype.
    """
    logits, means, log_scales = tf.split(tf.cast(parameters, tf.float32), 3, axis=-1)
    levels = tf.range(num_levels, dtype=tf.float32)[:, None]  # [L, 1]
    log_bins = _logistic_level_log_probabilities(
        levels, means[..., None, :], tf.maximum(log_scales, min_log_scale)[..., None, :],
        num_levels)  # [..., L, K]
    return tf.reduce_logsumexp(log_bins + tf.nn.log_softmax(logits)[..., None, :], axis=-1)


def logistic_mixture_log_likelihood(parameters, levels, num_levels, min_log_scale=-7.0):
    """logistic_mixture_log_probabilities at the given levels only, L times cheaper.

    Args:
        parameters: float [..., 3K]: K mixture logits, K means, K log-scales.
        levels: int [...] levels.
        num_levels: Python int L >= 2.
        min_log_scale: Python float, the floor on the log-scales.
    Returns:
        float32 [...]: the log-probability of each level.
    """
    logits, means, log_scales = tf.split(tf.cast(parameters, tf.float32), 3, axis=-1)
    log_bins = _logistic_level_log_probabilities(
        tf.cast(levels, tf.float32)[..., None], means, tf.maximum(log_scales, min_log_scale),
        num_levels)  # [..., K]
    return tf.reduce_logsumexp(log_bins + tf.nn.log_softmax(logits), axis=-1)


def sample_logistic_mixture(parameters, num_levels, temperature, min_log_scale=-7.0):
    """Draws one level per position from a mixture of discretized logistics.

    A component is drawn from softmax(logits / temperature), then a logistic sample of its
    mean and its scale times the temperature, rounded to the nearest level. At temperature 1
    the levels follow logistic_mixture_log_probabilities (up to the uniform draws' bounds,
    1e-5 from 0 and 1). The random ops follow the graph seed.

    Args:
        parameters: float [..., 3K]: K mixture logits, K means, K log-scales.
        num_levels: Python int >= 2.
        temperature: positive float (a Python number or a float32 scalar tensor).
        min_log_scale: Python float, the floor on the log-scales.
    Returns:
        int32 [...] levels in [0, num_levels - 1].
    """
    parameters = tf.cast(parameters, tf.float32)
    flat = tf.reshape(parameters, [-1, parameters.shape[-1]])  # [N, 3K]
    logits, means, log_scales = tf.split(flat, 3, axis=-1)  # each [N, K]
    component = tf.random.categorical(logits / temperature, 1, dtype=tf.int32)  # [N, 1]
    mean = tf.gather(means, component, batch_dims=1)[:, 0]  # [N]
    log_scale = tf.maximum(tf.gather(log_scales, component, batch_dims=1)[:, 0], min_log_scale)
    uniform = tf.random.uniform(tf.shape(mean), 1e-5, 1 - 1e-5)
    noise = tf.log(uniform) - tf.log1p(-uniform)  # a standard logistic sample
    value = mean + tf.exp(log_scale) * temperature * noise
    level = tf.round((value + 1) * (0.5 * (num_levels - 1)))
    level = tf.cast(tf.clip_by_value(level, 0, num_levels - 1), tf.int32)
    return tf.reshape(level, tf.shape(parameters)[:-1])


def merge_logistic_mixtures(member_parameters):
    """One logistic mixture equal to the equal-weight mean of several.

    Args:
        member_parameters: a non-empty list of float [..., 3K_m], one per member.
    Returns:
        float [..., 3 sum K_m]: the members' normalized logits minus log(M), their means and
        their log-scales, each concatenated in the members' order.
    """
    logits, means, log_scales = zip(*[tf.split(parameters, 3, axis=-1)
                                      for parameters in member_parameters])
    log_weights = [tf.nn.log_softmax(member) - math.log(len(member_parameters))
                   for member in logits]
    return tf.concat(log_weights + list(means) + list(log_scales), axis=-1)


def block_average(images, factor):
    """Images averaged over factor x factor blocks, rounded half up to levels.

    Args:
        images: int [B, H, W, C] levels.
        factor: Python int dividing H and W.
    Returns:
        int32 [B, H / factor, W / factor, C]: floor(block mean + 0.5).
    """
    means = tf.nn.avg_pool2d(tf.cast(images, tf.float64), factor, factor, 'VALID')
    sums = tf.cast(tf.round(means * factor ** 2), tf.int32)  # exact integer block sums
    return (2 * sums + factor ** 2) // (2 * factor ** 2)  # floor(sums / factor ** 2 + 1 / 2)


def luminance(images):
    """The ITU-R BT.601 luma of RGB images, rounded half up to levels of the same range.

    Args:
        images: int [B, H, W, 3] RGB levels.
    Returns:
        int32 [B, H, W, 1]: floor(0.299 R + 0.587 G + 0.114 B + 0.5), in exact integers.
    """
    weighted = tf.reduce_sum(tf.cast(images, tf.int32) * [299, 587, 114], axis=-1,
                             keepdims=True)  # [B, H, W, 1], 1000 times the luma
    return (weighted + 500) // 1000
