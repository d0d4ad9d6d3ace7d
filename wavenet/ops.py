"""Pure tensor functions: causal (dilated) convolutions, shifts, symmetries, dropout, losses.

Every function builds graph ops from its arguments only; none creates variables. Shapes use
B = batch, T = time (pixels in raster order), C = channels, Q = levels.
"""
import math

import tensorflow.compat.v1 as tf


def dense(inputs, weights, biases=None):
    """A 1x1 convolution: inputs [..., in] x weights [in, out] (+ biases [out]) -> [..., out]."""
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
    """One output step of a convolution: sum over i of taps[i] x filters[i] (+ biases).

    taps: filter_width tensors [..., in], oldest first; matrix: from filter_matrix.
    Returns [..., out].
    """
    return dense(tf.concat(taps, axis=-1), matrix, biases)


def causal_shift(inputs, shift):
    """inputs [B, T, C] delayed by `shift` (a Python int >= 0) steps, zeros at the start."""
    if shift == 0:
        return inputs
    # Slice, then pad: their gradients (pad, slice) cost far less than a strided slice's.
    length = tf.shape(inputs)[1]
    delay = tf.minimum(shift, length)
    kept = tf.slice(inputs, [0, 0, 0], [-1, length - delay, -1])  # [B, T - delay, C]
    shifted = tf.pad(kept, [[0, 0], [delay, 0], [0, 0]])
    shifted.set_shape(inputs.shape)  # the padding is a tensor: keep the static shape
    return shifted


def causal_taps(inputs, filter_width, dilation):
    """The taps of a causal dilated convolution over inputs [B, T, C]: filter_width delayed
    copies, oldest first (delays (w - 1) d, ..., d, 0; zeros before the start)."""
    return [causal_shift(inputs, (filter_width - 1 - i) * dilation) for i in range(filter_width)]


def causal_conv(inputs, filters, dilation, biases=None):
    """Causal dilated convolution: inputs [B, T, in], filters [w, in, out], biases [out] or
    None -> [B, T, out], output t seeing inputs t, t - d, ..., t - (w - 1) d."""
    taps = causal_taps(inputs, filters.shape.as_list()[0], dilation)
    return conv_taps(taps, filter_matrix(filters), biases)


def embedding_taps(token_taps, tables):
    """conv_taps over one-hot tokens, as table lookups.

    token_taps: filter_width int tensors [...], oldest first; tables: [filter_width,
    num_tokens, out]. Returns [..., out].
    """
    return tf.add_n([tf.gather(tables[i], tokens) for i, tokens in enumerate(token_taps)])


def causal_embedding_conv(tokens, tables, pad_token):
    """Causal convolution over one-hot tokens int [B, T], as table lookups.

    Output t sees tokens t - filter_width + 1 .. t, pad_token before the start. Returns
    [B, T, out].
    """
    filter_width = tables.shape.as_list()[0]
    batch_size, length = tf.shape(tokens)[0], tf.shape(tokens)[1]
    padding = tf.fill([batch_size, filter_width - 1], tf.cast(pad_token, tokens.dtype))
    padded = tf.concat([padding, tokens], axis=1)  # [B, T + filter_width - 1]
    return embedding_taps([padded[:, i:i + length] for i in range(filter_width)], tables)


def level_bumps(num_levels, num_bumps):
    """Gaussian bumps spread evenly over the levels: float32 [num_bumps >= 2, num_levels].

    Bump j is centred on level j * spacing, spacing = (num_levels - 1) / (num_bumps - 1), with
    that spacing as its standard deviation, so any combination is a smooth curve.
    """
    spacing = (num_levels - 1) / (num_bumps - 1)
    levels = tf.range(num_levels, dtype=tf.float32)[None, :]
    centres = tf.range(num_bumps, dtype=tf.float32)[:, None] * spacing
    return tf.exp(-0.5 * tf.square((levels - centres) / spacing))


def shift_in_start_token(pixels, start_token):
    """The network input for pixels int [B, T]: start_token, then pixels[:, :-1]."""
    start = tf.fill([tf.shape(pixels)[0], 1], tf.cast(start_token, pixels.dtype))
    return tf.concat([start, pixels], axis=1)[:, :tf.shape(pixels)[1]]


def stateless_seed(seed, counter):
    """The int64 [2] seed of a stateless random op, from a Python int and an int tensor."""
    return tf.stack([tf.constant(seed, tf.int64), tf.cast(counter, tf.int64)])


def dropout_rows(inputs, rate, seed, first=0, total=None):
    """Stateless dropout of rows first .. first + B - 1 of a batch of `total` rows (default B).

    The mask is drawn for the whole batch from `seed` (int64 [2]) alone, so a replica holding
    a slice of the batch drops what one device holding all of it drops there.
    Returns inputs [B, ...] / (1 - rate) where kept, 0 where dropped.
    """
    shape = tf.shape(inputs)
    rows = shape[:1] if total is None else [total]
    noise = tf.random.stateless_uniform(tf.concat([rows, shape[1:]], axis=0), seed=seed)
    keep = noise[first:first + shape[0]] >= rate
    return tf.where(keep, inputs * (1 / (1 - rate)), tf.zeros_like(inputs))


def translate_images(images, offsets):
    """Images [B, H, W, C] shifted by offsets int32 [B, 2] (down, right), edges repeated.

    outputs[b, y, x] = images[b, clip(y - down), clip(x - right)], clipped into the image.
    """
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    rows = tf.clip_by_value(tf.range(height)[None] - offsets[:, :1], 0, height - 1)  # [B, H]
    columns = tf.clip_by_value(tf.range(width)[None] - offsets[:, 1:], 0, width - 1)  # [B, W]
    moved_rows = tf.gather(images, rows, axis=1, batch_dims=1)  # [B, H, W, C]
    return tf.gather(moved_rows, columns, axis=2, batch_dims=1)


# Second seed words that keep the shifts' and symmetries' draws apart from the dropout masks'.
SHIFT_DRAWS, SYMMETRY_DRAWS = 1 << 40, 2 << 40


def random_offsets(step, batch_size, max_shift, seed):
    """int32 [batch_size, 2] offsets uniform in [-max_shift, max_shift], from (seed, step)."""
    return tf.random.stateless_uniform([batch_size, 2],
                                       seed=stateless_seed(seed, step) + [0, SHIFT_DRAWS],
                                       minval=-max_shift, maxval=max_shift + 1, dtype=tf.int32)


NUM_SYMMETRIES = 8  # of the square: 4 turns, each of the image or of its transpose


def apply_symmetries(images, symmetries):
    """Square images [B, S, S, C], each turned by its symmetry int32 [B] in 0 .. 7: s % 4
    quarter turns counter-clockwise (np.rot90) of the image (s < 4) or its transpose; one
    gather moves the pixels, by the turns of a grid of pixel indices."""
    shape, size = tf.shape(images), tf.shape(images)[1]
    grid = tf.reshape(tf.range(size * size), [1, size, size, 1])
    sources = tf.reshape(tf.concat([tf.image.rot90(indices, turns) for indices in (
        grid, tf.transpose(grid, [0, 2, 1, 3])) for turns in range(4)], 0), [NUM_SYMMETRIES, -1])
    pixels = tf.reshape(images, [shape[0], size * size, shape[3]])  # [B, S*S, C]
    turned = tf.reshape(tf.gather(pixels, tf.gather(sources, symmetries), axis=1, batch_dims=1),
                        shape)
    turned.set_shape(images.shape)
    return turned


def random_symmetries(step, batch_size, share, seed):
    """int32 [batch_size] symmetries from (seed, step): 0 (none) for a 1 - share of the images,
    each other symmetry 1 .. 7 for share / 7 of them."""
    draws = tf.random.stateless_uniform([batch_size, 2],
                                        seed=stateless_seed(seed, step) + [0, SYMMETRY_DRAWS])
    others = tf.minimum(tf.cast(draws[:, 1] * (NUM_SYMMETRIES - 1), tf.int32),
                        NUM_SYMMETRIES - 2) + 1
    return tf.where(draws[:, 0] < share, others, tf.zeros_like(others))


def mixture_log_probabilities(member_logits):
    """Log of the equal-weight mean of softmax(logits) over a list of logits [..., Q].

    Returns [..., Q], normalized log-probabilities that serve as logits too.
    """
    log_probabilities = tf.stack([tf.nn.log_softmax(logits) for logits in member_logits])
    return tf.reduce_logsumexp(log_probabilities, axis=0) - math.log(len(member_logits))


def nats_to_bits(nats):
    """A negative log-likelihood in nats (a tensor or a number) in bits."""
    return nats / math.log(2.0)


def _logistic_mixture_log_probabilities(parameters, levels, num_levels, min_log_scale):
    """log P(levels) under a mixture [..., 3K], levels float32 broadcasting against [..., 1]."""
    logits, means, log_scales = tf.split(tf.cast(parameters, tf.float32), 3, axis=-1)
    log_scales = tf.maximum(log_scales, min_log_scale)
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
    log_bins = tf.where_v2(tf.equal(levels, num_levels - 1), -tf.nn.softplus(lower),  # 1 - CDF
                           log_bins)
    return tf.reduce_logsumexp(log_bins + tf.nn.log_softmax(logits), axis=-1)


def logistic_mixture_log_probabilities(parameters, num_levels, min_log_scale=-7.0):
    """Log-probabilities of the levels under a mixture of discretized logistics (PixelCNN++).

    parameters: float [..., 3K]: K mixture logits, K means, K log-scales (floored at
    min_log_scale). Level l sits at x_l = 2 l / (L - 1) - 1 and owns the bin x_l +- 1 / (L - 1);
    level 0 owns everything below, level L - 1 everything above. A bin of probability below
    1e-5 under a component takes its density at the centre times the bin's width instead.
    Returns float32 [..., L], normalized up to that fall-back (less than 1e-4).
    """
    levels = tf.range(num_levels, dtype=tf.float32)[:, None]  # [L, 1]
    return _logistic_mixture_log_probabilities(parameters[..., None, :], levels, num_levels,
                                               min_log_scale)


def logistic_mixture_log_likelihood(parameters, levels, num_levels, min_log_scale=-7.0):
    """logistic_mixture_log_probabilities at levels int [...] only: float32 [...]."""
    return _logistic_mixture_log_probabilities(parameters, tf.cast(levels, tf.float32)[..., None],
                                               num_levels, min_log_scale)


def sample_logistic_mixture(parameters, num_levels, temperature, min_log_scale=-7.0):
    """Draws int32 [...] levels from mixtures [..., 3K] of discretized logistics.

    A component is drawn from softmax(logits / temperature), then a logistic sample of its
    mean and its scale times the temperature (a number or a float32 scalar), rounded to the
    nearest level. At temperature 1 the levels follow logistic_mixture_log_probabilities (the
    uniform draws stay 1e-5 from 0 and 1). The random ops follow the graph seed.
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
    """One logistic mixture [..., 3 sum K_m], the equal-weight mean of a list of [..., 3K_m].

    Its logits are the members' normalized logits minus log(M); logits, means and log-scales
    are each concatenated in the members' order.
    """
    logits, means, log_scales = zip(*[tf.split(parameters, 3, axis=-1)
                                      for parameters in member_parameters])
    log_weights = [tf.nn.log_softmax(member) - math.log(len(member_parameters))
                   for member in logits]
    return tf.concat(log_weights + list(means) + list(log_scales), axis=-1)


def block_average(images, factor):
    """Levels int [B, H, W, C] averaged over factor x factor blocks, rounded half up.

    Returns int32 [B, H / factor, W / factor, C]: floor(block mean + 0.5), exactly.
    """
    means = tf.nn.avg_pool2d(tf.cast(images, tf.float64), factor, factor, 'VALID')
    sums = tf.cast(tf.round(means * factor ** 2), tf.int32)  # exact integer block sums
    return (2 * sums + factor ** 2) // (2 * factor ** 2)  # floor(sums / factor ** 2 + 1 / 2)


def luminance(images):
    """The BT.601 luma int32 [B, H, W, 1] of RGB levels [B, H, W, 3], rounded half up.

    floor(0.299 R + 0.587 G + 0.114 B + 0.5), in exact integers.
    """
    weighted = tf.reduce_sum(tf.cast(images, tf.int32) * [299, 587, 114], axis=-1,
                             keepdims=True)  # [B, H, W, 1], 1000 times the luma
    return (weighted + 500) // 1000
