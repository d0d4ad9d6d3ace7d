"""The model: causality, receptive field, fast == naive generation, learning."""
import collections

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from wavenet.fast_generation import build_fast_generator
from wavenet.generation import build_sampler
from wavenet import ops
from wavenet.model import Dropout, Mixture, WaveNetModel
from wavenet.params import WaveNetParams

TINY = dict(dilations=(1, 2, 4, 1, 3), residual_channels=8, dilation_channels=6,
            skip_channels=10, quantization_channels=16)

VARIANTS = {
    'default_widths': TINY,
    'wide_filters': dict(TINY, filter_width=3, initial_filter_width=4),
    'width_one_input': dict(TINY, initial_filter_width=1),
    'no_biases': dict(TINY, use_biases=False),
    'long_dilations': dict(TINY, dilations=(1, 8, 16, 32), filter_width=4),
    'class_conditional': dict(TINY, gc_channels=4),
    'position_conditional': dict(TINY, position_channels=3),
    'class_and_position': dict(TINY, filter_width=3, gc_channels=5, position_channels=2),
    'colour': dict(TINY, position_channels=3),
    'colour_class_conditional': dict(TINY, filter_width=3, gc_channels=2, position_channels=2),
    'level_bumps': dict(TINY, level_bumps=5),
    'lowres': dict(TINY, local_condition='lowres:2', condition_channels=4, position_channels=2),
    'gray_colour': dict(TINY, local_condition='gray', condition_channels=3, position_channels=3),
    'mixture': dict(TINY, output='logistic_mixture', mixture_components=3, level_bumps=4),
    'mixture_colour': dict(TINY, output='logistic_mixture', mixture_components=2,
                           position_channels=2),
    'mixture_lowres_class': dict(TINY, output='logistic_mixture', mixture_components=2,
                                 local_condition='lowres:2', condition_channels=3,
                                 gc_channels=3),
}
COLOUR_VARIANTS = ('colour', 'colour_class_conditional', 'gray_colour', 'mixture_colour')
IMAGE_SIZE = (6, 8)  # 48 pixels
NUM_CLASSES = 3


Built = collections.namedtuple('Built', 'graph session model pixels labels condition logits')


def build(params, seed=0, channels=1):
    """A model with random weights (biases too) in a fresh graph and session, and its level
    logits of pixels [B, T] given labels [B] and a condition [B, h, w, c] (placeholders, None
    where the model takes none)."""
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        model = WaveNetModel(params, IMAGE_SIZE, NUM_CLASSES, channels)
        pixels = tf.placeholder(tf.int32, [None, None])
        labels = tf.placeholder(tf.int32, [None]) if model.conditional else None
        condition = (tf.placeholder(tf.int32, [None] + list(model.condition_shape))
                     if model.condition_shape else None)
        logits = model.logits(pixels, labels, condition)
        session = tf.Session(graph=graph)
        session.run(tf.global_variables_initializer())
        rng = np.random.default_rng(seed)
        for variable in tf.trainable_variables():  # non-zero biases too
            value = session.run(variable)
            variable.load(value + 0.3 * rng.normal(size=value.shape), session)
    return Built(graph, session, model, pixels, labels, condition, logits)


def inputs_of(built, batch_size, seed=0):
    """Random labels [B] and conditions [B, h, w, c] for a model (None where it takes none)."""
    rng = np.random.default_rng(seed)
    levels = built.model.params.quantization_channels
    return (rng.integers(0, NUM_CLASSES, batch_size).astype(np.int32)
            if built.labels is not None else None,
            rng.integers(0, levels, [batch_size] + list(built.model.condition_shape)).astype(
                np.int32) if built.condition is not None else None)


def feed(built, pixel_values, label_values=None, condition_values=None):
    """A feed dict for the full path; labels and condition only where the model has them."""
    found = {built.pixels: pixel_values}
    for placeholder, values in ((built.labels, label_values),
                                (built.condition, condition_values)):
        if placeholder is not None:
            found[placeholder] = values
    return found


def test_prediction_of_pixel_t_ignores_pixels_t_and_later():
    params = WaveNetParams(**VARIANTS['wide_filters'])
    _, session, _, pixels, _, _, logits = build(params)
    rng = np.random.default_rng(1)
    length = 40
    base = rng.integers(0, 16, size=(1, length))
    base_logits = session.run(logits, {pixels: base})
    for t in [0, 1, 7, 20, length - 1]:
        changed = base.copy()
        changed[0, t] = (changed[0, t] + 5) % 16
        changed_logits = session.run(logits, {pixels: changed})
        np.testing.assert_array_equal(changed_logits[0, :t + 1], base_logits[0, :t + 1])
        if t < length - 1:
            assert np.abs(changed_logits[0, t + 1] - base_logits[0, t + 1]).max() > 1e-4


def test_receptive_field_is_exact():
    params = WaveNetParams(**dict(TINY, filter_width=3, initial_filter_width=2))
    field = params.receptive_field
    assert field == 1 + 1 + 2 * sum(TINY['dilations'])
    _, session, _, pixels, _, _, logits = build(params)
    length = min(field + 10, IMAGE_SIZE[0] * IMAGE_SIZE[1])
    base = np.random.default_rng(2).integers(0, 16, size=(1, length))
    target = length - 1
    base_logits = session.run(logits, {pixels: base})[0, target]
    inside, outside = base.copy(), base.copy()
    inside[0, target - field] = (inside[0, target - field] + 3) % 16
    outside[0, target - field - 1] = (outside[0, target - field - 1] + 3) % 16
    assert np.abs(session.run(logits, {pixels: inside})[0, target] - base_logits).max() > 1e-5
    np.testing.assert_array_equal(session.run(logits, {pixels: outside})[0, target],
                                  base_logits)


def test_level_bumps_add_smooth_curves_to_the_input_tables_and_logit_weights():
    """A model with bumps equals one without whose tables and logit weights hold the sums."""
    with_bumps = WaveNetParams(**VARIANTS['level_bumps'])
    graph, session, _, pixels, _, _, logits = build(with_bumps)
    with graph.as_default():
        values = {variable.op.name: session.run(variable)
                  for variable in tf.global_variables()}
    levels, num_bumps = with_bumps.quantization_channels, with_bumps.level_bumps
    spacing = (levels - 1) / (num_bumps - 1)
    bumps = np.exp(-0.5 * ((np.arange(levels)[None] - spacing * np.arange(num_bumps)[:, None])
                           / spacing) ** 2)  # [bumps, levels]
    tables = values.pop('wavenet/input/tables')
    tables[:, :levels] += np.einsum('jl,wjr->wlr', bumps, values.pop('wavenet/input/bump_tables'))
    logit_weights = values.pop('wavenet/output/logits')
    logit_weights += values.pop('wavenet/output/bump_logits') @ bumps
    values.update({'wavenet/input/tables': tables, 'wavenet/output/logits': logit_weights})
    plain_graph, plain_session, _, plain_pixels, _, _, plain_logits = build(
        WaveNetParams(**TINY))
    with plain_graph.as_default():
        for variable in tf.global_variables():
            variable.load(values.pop(variable.op.name), plain_session)
    assert not values
    sequence = np.random.default_rng(4).integers(0, levels, size=(2, 30))
    np.testing.assert_allclose(plain_session.run(plain_logits, {plain_pixels: sequence}),
                               session.run(logits, {pixels: sequence}), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize('variant', ['class_and_position', 'level_bumps', 'gray_colour',
                                     'mixture_lowres_class'])
def test_builds_on_resource_variables(variant):
    """TensorFlow 2's variables (resource variables, as without disable_v2_behavior) work."""
    with tf.Graph().as_default():
        with tf.variable_scope(tf.get_variable_scope(), use_resource=True):
            model = WaveNetModel(WaveNetParams(**VARIANTS[variant]), IMAGE_SIZE, NUM_CLASSES,
                                 3 if variant in COLOUR_VARIANTS else 1)
        assert {type(variable).__name__ for variable in tf.global_variables()} == {
            'ResourceVariable'}
        labels = tf.constant([0, 1]) if model.conditional else None
        condition = (tf.zeros([2] + list(model.condition_shape), tf.int32)
                     if model.condition_shape else None)
        loss, _ = model.loss(tf.zeros([2, model.sequence_length], tf.int32), labels, condition)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            assert np.isfinite(session.run(loss))


@pytest.mark.parametrize('state, lanes', [('ring', 2), ('queues', 1)])
@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_fast_generation_equals_naive(variant, state, lanes):
    """Per-step distributions of fast generation equal the full network's, to 1e-5, with
    each store. With two lanes the batch of 3 is split 2 + 1, labels, conditions and known
    pixels with it."""
    params = WaveNetParams(**VARIANTS[variant])
    built = build(params, channels=3 if variant in COLOUR_VARIANTS else 1)
    model, session = built.model, built.session
    length, batch_size = model.sequence_length, 3
    with built.graph.as_default():
        generator = build_fast_generator(Mixture([model]), batch_size, with_probabilities=True,
                                         state=state, lanes=lanes)
        probabilities = tf.nn.softmax(built.logits)
    labels, condition = inputs_of(built, batch_size)
    given = {placeholder: values for placeholder, values in (
        (generator.labels, labels), (generator.condition, condition)) if placeholder is not None}
    # In several runs (the state persists between them) ...
    session.run(generator.prime, {generator.prime_pixels: np.zeros((batch_size, 0), np.int32),
                                  **given})
    generated, fast_probabilities = [], []
    previous = np.zeros(batch_size, np.int32)
    for start, steps in [(0, 1), (1, 13), (14, length - 14)]:
        run_pixels, run_probabilities = session.run(
            [generator.pixels, generator.probabilities],
            {generator.start: start, generator.num_steps: steps,
             generator.previous_pixel: previous, **given})
        generated.append(run_pixels)
        fast_probabilities.append(run_probabilities)
        previous = run_pixels[:, -1]
    generated = np.concatenate(generated, axis=1)
    fast_probabilities = np.concatenate(fast_probabilities, axis=1)
    naive = session.run(probabilities, feed(built, generated, labels, condition))
    np.testing.assert_allclose(fast_probabilities, naive, atol=1e-5, rtol=0)
    # ... and after priming the state from known pixels in one pass.
    known = 17
    session.run(generator.prime, {generator.prime_pixels: generated[:, :known], **given})
    completion, completion_probabilities = session.run(
        [generator.pixels, generator.probabilities],
        {generator.start: known, generator.num_steps: length - known,
         generator.previous_pixel: generated[:, known - 1], **given})
    completed = np.concatenate([generated[:, :known], completion], axis=1)
    naive = session.run(probabilities, feed(built, completed, labels, condition))[:, known:]
    np.testing.assert_allclose(completion_probabilities, naive, atol=1e-5, rtol=0)


@pytest.mark.parametrize('variant', ['lowres', 'gray_colour', 'mixture_lowres_class'])
def test_a_condition_is_seen_whole_and_pixels_only_before(variant):
    """No output depends on a later pixel, while outputs may depend on any pixel of the
    condition; two conditions give two distributions."""
    built = build(WaveNetParams(**VARIANTS[variant]),
                  channels=3 if variant in COLOUR_VARIANTS else 1)
    labels, condition = inputs_of(built, 1)
    pixels = np.random.default_rng(5).integers(0, 16, (1, built.model.sequence_length))
    base = built.session.run(built.logits, feed(built, pixels, labels, condition))
    for t in (0, 9, built.model.sequence_length - 2):
        changed = pixels.copy()
        changed[0, t] = (changed[0, t] + 5) % 16
        logits = built.session.run(built.logits, feed(built, changed, labels, condition))
        np.testing.assert_array_equal(logits[0, :t + 1], base[0, :t + 1])
        assert np.abs(logits[0, t + 1] - base[0, t + 1]).max() > 1e-4
    # A cell of the condition over later pixels (rows and columns 2 and 3) changes the first
    # prediction too.
    other = condition.copy()
    other[0, 1, 1] = (other[0, 1, 1] + 7) % 16
    moved = built.session.run(built.logits, feed(built, pixels, labels, other))
    assert np.abs(moved[0, 0] - base[0, 0]).max() > 1e-4
    assert np.abs(moved - base).max() > 1e-3


def test_the_model_derives_its_conditions_with_the_tested_ops():
    """lowres:F is ops.block_average over F x F blocks, gray ops.luminance (tested against
    numpy in test_ops.py), at the condition's shape."""
    images = np.random.default_rng(6).integers(0, 16, (2,) + IMAGE_SIZE + (3,))
    for variant, expected in (('lowres', lambda x: ops.block_average(x[..., :1], 2)),
                              ('gray_colour', ops.luminance)):
        params = WaveNetParams(**VARIANTS[variant])
        channels = 3 if variant in COLOUR_VARIANTS else 1
        with tf.Graph().as_default(), tf.Session() as session:
            model = WaveNetModel(params, IMAGE_SIZE, NUM_CLASSES, channels)
            given = images[..., :channels]
            derived, reference = session.run([model.derive_condition(given),
                                              expected(given)])
        assert derived.shape == (2,) + model.condition_shape
        np.testing.assert_array_equal(derived, reference)


def test_fast_generator_rejects_bad_lanes_and_states():
    graph, _, model, _, _, _, _ = build(WaveNetParams(**TINY))
    with graph.as_default():
        for lanes in (0, 3):
            with pytest.raises(ValueError, match='lanes must be from 1 to the batch size 2'):
                build_fast_generator(Mixture([model]), 2, lanes=lanes)
        with pytest.raises(ValueError, match='state must be one of'):
            build_fast_generator(Mixture([model]), 2, state='arrays')


@pytest.mark.parametrize('fast', [True, False], ids=['fast', 'naive'])
def test_sampler_keeps_prime_pixels_and_argmax_is_deterministic(fast):
    params = WaveNetParams(**TINY)
    graph, session, model, _, _, _, _ = build(params)
    with graph.as_default():
        sampler = build_sampler(Mixture([model]), 2, fast=fast)
    prime = np.array([[3, 4, 5], [6, 7, 8]], np.int32)
    first = sampler.sample(session, 2, prime_pixels=prime, argmax=True, pixels_per_run=6)
    second = sampler.sample(session, 2, prime_pixels=prime, argmax=True)
    assert first.shape == (2, model.sequence_length)
    np.testing.assert_array_equal(first[:, :3], prime)
    np.testing.assert_array_equal(first, second)
    assert first.min() >= 0 and first.max() < 16
    # One image: the batch is padded with it, and it is generated as in the full batch.
    np.testing.assert_array_equal(sampler.sample(session, 1, prime_pixels=prime[:1],
                                                 argmax=True), first[:1])
    with pytest.raises(ValueError, match='temperature'):
        sampler.sample(session, 2, temperature=0.0)
    with pytest.raises(ValueError, match='not class-conditional'):
        sampler.sample(session, 2, labels=[0, 1])


@pytest.mark.parametrize('fast, state', [(True, 'ring'), (True, 'queues'), (False, None)],
                         ids=['ring', 'queues', 'naive'])
def test_lower_temperature_concentrates_the_samples(fast, state):
    """At temperature 0.05 a model's samples keep to its likeliest levels; at 5 they spread.

    The model's output biases make level 0 much likelier than the rest (the other weights
    are small), so a low temperature draws nearly only level 0 and a high one many levels.
    """
    params = WaveNetParams(**TINY)
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(3)
        model = WaveNetModel(params, IMAGE_SIZE)
        sampler = build_sampler(Mixture([model]), 8, fast=fast, state=state or 'ring')
        biases = next(v for v in tf.global_variables() if v.op.name.endswith('logits_biases'))
        session = tf.Session(graph=graph)
        session.run(tf.global_variables_initializer())
        biases.load(np.where(np.arange(16) == 0, 2.0, 0.0), session)
    cold = sampler.sample(session, 8, temperature=0.05)
    hot = sampler.sample(session, 8, temperature=5.0)
    assert np.mean(cold == 0) > 0.95, np.bincount(cold.ravel(), minlength=16)
    assert np.mean(hot == 0) < 0.5 and len(np.unique(hot)) >= 12, np.bincount(hot.ravel())


def test_overfits_a_few_images():
    """A tiny model learns four 6x6 images: the loss falls by a large factor."""
    params = WaveNetParams(dilations=(1, 2, 4, 8, 16), residual_channels=16,
                           dilation_channels=16, skip_channels=32, quantization_channels=16)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 16, size=(4, 36))
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        model = WaveNetModel(params, (6, 6))
        loss, _ = model.loss(tf.constant(images, tf.int32))
        train_op = tf.train.AdamOptimizer(1e-2).minimize(loss)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            initial = session.run(loss)
            for _ in range(300):
                final, _ = session.run([loss, train_op])
    assert initial > np.log(16) * 0.9  # about uniform over 16 levels at the start
    assert final < initial / 10, (initial, final)


def test_dropout_changes_only_the_training_loss_and_follows_its_seed():
    params = WaveNetParams(**TINY)
    images = np.random.default_rng(5).integers(0, 16, size=(2, 30))
    with tf.Graph().as_default():
        model = WaveNetModel(params, IMAGE_SIZE)
        pixels = tf.constant(images, tf.int32)
        seed = tf.placeholder(tf.int64, [2])
        plain = model.loss(pixels)
        dropped = model.loss(pixels, dropout=Dropout(0.5, seed))
        no_rate = model.loss(pixels, dropout=Dropout(0.0, seed))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            base = session.run(plain)
            first, again, other = (session.run(dropped, {seed: value})
                                   for value in ([1, 2], [1, 2], [1, 3]))
            assert session.run(no_rate, {seed: [1, 2]}) == base
    assert first == again
    assert first != base and first != other


def test_symmetry_terms_change_only_the_turned_images_and_start_at_zero():
    """Symmetry 0 (the image as it is) has no term, so evaluation and generation, which give
    none, see the model that training shaped; the other symmetries' terms start at zero."""
    params = WaveNetParams(**dict(TINY, position_channels=2))
    images = np.random.default_rng(6).integers(0, 16, size=(3, 48))
    with tf.Graph().as_default():
        model = WaveNetModel(params, IMAGE_SIZE, symmetries=True)
        pixels = tf.constant(images, tf.int32)
        symmetries = tf.constant([0, 3, 7], tf.int32)
        told, untold = model.parameters(pixels, symmetries=symmetries), model.parameters(pixels)
        terms, = [variable for variable in model.trainable_variables
                  if 'symmetry_terms' in variable.name]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            initial, plain = session.run([told, untold])
            terms.load(np.random.default_rng(7).normal(size=terms.shape.as_list()), session)
            trained, still_plain = session.run([told, untold])
    assert terms.shape.as_list() == [7, 2 * 6 * 5]
    assert terms in model.weights  # penalized by L2, as the class embedding is
    np.testing.assert_array_equal(initial, plain)
    np.testing.assert_array_equal(still_plain, plain)
    np.testing.assert_allclose(trained[0], plain[0], rtol=1e-6, atol=1e-6)
    assert np.abs(trained[1:] - plain[1:]).min(axis=(1, 2)).min() > 0
    assert not np.allclose(trained[1], trained[2])
    with tf.Graph().as_default():
        upright_only = WaveNetModel(params, IMAGE_SIZE)
        with pytest.raises(ValueError, match='no symmetry terms'):
            upright_only.parameters(tf.constant(images, tf.int32),
                                    symmetries=tf.constant([0, 3, 7], tf.int32))
