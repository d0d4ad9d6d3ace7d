"""Fast generation: one step through the layers per generated pixel (Paine et al.).

A layer's step needs its inputs from dilation, 2 * dilation, ..., (filter_width - 1) *
dilation steps back; a store keeps them, and the input convolution's last tokens, between
steps and between session runs, so an image can be generated in several runs. The stores
(STATES): 'ring', one ring buffer variable per model read with one gather and written with
one scatter per step; 'queues', filter_width - 1 FIFO queues of capacity `dilation` per
layer. `prime` refills them from known pixels in one pass of the full network.

Lanes split the batch into independent groups of images, each with its own stores and
tf.while_loop, for a session with one thread per lane and per op (generation.session_config).
The model side of a step (WaveNetModel.step_parameters) is the same layer code as training.
"""
import collections

import numpy as np
import tensorflow.compat.v1 as tf

STATES = ('ring', 'queues')

FastGenerator = collections.namedtuple('FastGenerator', [
    'labels',           # placeholder int32 [B]: class of each image, or None (unconditional)
    'condition',        # placeholder int32 [B, h, w, c]: condition images (read by prime), or None
    'prime_pixels',     # placeholder int32 [B, P]: the pixels already known (P may be 0)
    'prime',            # op: resets every store to the state after prime_pixels
    'start',            # placeholder int32 []: position of the first pixel this run generates
    'num_steps',        # placeholder int32 []: how many pixels this run generates
    'previous_pixel',   # placeholder int32 [B]: pixel at start - 1 (ignored when start == 0)
    'temperature',      # placeholder float32 [], default 1.0: softmax temperature
    'argmax',           # placeholder bool [], default False: take the likeliest level
    'pixels',           # int32 [B, num_steps]: the generated pixels
    'probabilities',    # float32 [B, num_steps, Q] at temperature 1, or None if not requested
])

StepTaps = collections.namedtuple('StepTaps', [
    'tokens',  # function(current token int [B]) -> the input convolution's taps, oldest first
    'layer',   # function(layer index, current input [B, C]) -> that layer's taps
    'writes',  # function() -> ops storing this step's inputs, called after every layer
])


def input_placeholders(mixture, batch_size):
    """The placeholders labels int32 [B] and condition int32 [B, h, w, c], each None if unused."""
    labels = tf.placeholder(tf.int32, [batch_size], name='labels') if mixture.conditional else None
    condition = (tf.placeholder(tf.int32, [batch_size] + list(mixture.condition_shape),
                                name='condition') if mixture.condition_shape else None)
    return labels, condition


def build_fast_generator(mixture, batch_size, with_probabilities=False, state=STATES[0], lanes=1):
    """The FastGenerator of incremental generation of batch_size images from a model.Mixture.

    With several models a step samples from the equal-weight mean of their distributions;
    each model keeps its own stores. with_probabilities also returns every step's distribution
    (for tests); state is one of STATES; lanes is from 1 to batch_size.
    """
    if state not in STATES:
        raise ValueError('state must be one of %s, got %r' % (STATES, state))
    if not 1 <= lanes <= batch_size:
        raise ValueError('lanes must be from 1 to the batch size %d, got %r' % (batch_size, lanes))
    with tf.name_scope('generation'):
        labels, condition = input_placeholders(mixture, batch_size)
        run = FastGenerator(
            labels=labels, condition=condition, prime=None, pixels=None, probabilities=None,
            prime_pixels=tf.placeholder(tf.int32, [batch_size, None], name='prime_pixels'),
            start=tf.placeholder(tf.int32, [], name='start'),
            num_steps=tf.placeholder(tf.int32, [], name='num_steps'),
            previous_pixel=tf.placeholder(tf.int32, [batch_size], name='previous_pixel'),
            temperature=tf.placeholder_with_default(1.0, [], name='temperature'),
            argmax=tf.placeholder_with_default(False, [], name='argmax'))
        lane_sizes = [batch_size // lanes + (1 if lane < batch_size % lanes else 0)
                      for lane in range(lanes)]
        # Per tensor, its part of every lane (Nones for no labels or condition).
        lane_parts = [[None] * lanes if tensor is None else tf.split(tensor, lane_sizes)
                      for tensor in (labels, condition, run.prime_pixels, run.previous_pixel)]
        results = []
        for lane in range(lanes):
            with tf.name_scope('lane%d' % lane):
                results.append(_generation_lane(
                    mixture, _LINES[state], run, *[parts[lane] for parts in lane_parts],
                    with_probabilities=with_probabilities))
        primes, pixels, probabilities = zip(*results)
        return run._replace(
            prime=tf.group(*primes, name='prime'), pixels=tf.concat(pixels, axis=0),
            probabilities=tf.concat(probabilities, axis=0) if with_probabilities else None)


def _generation_lane(mixture, lines_class, run, labels, condition, prime_pixels,
                     previous_pixel, with_probabilities):
    """One lane: the models' stores (of lines_class) and one loop over the pixels of a run.

    run: build_fast_generator's placeholders; the other inputs: this lane's part of them. Returns
    (prime op, pixels int32 [B, num_steps], probabilities float32 [B, num_steps, Q] or None).
    """
    batch_size = previous_pixel.shape.as_list()[0]
    stores, conditioning, primes = [], [], []
    for model in mixture.models:
        with tf.name_scope('conditioning'):
            # The class terms and every position's terms, computed once outside the loop.
            class_term, position_term, _ = model.conditioning(labels,
                                                              tf.range(model.sequence_length))
            features = None
            if condition is not None:  # the condition's features, computed once per image
                features = tf.Variable(tf.zeros([batch_size, model.sequence_length,
                                                 model.params.condition_channels]),
                                       trainable=False, name='condition_features',
                                       collections=[tf.GraphKeys.LOCAL_VARIABLES])
                primes.append(tf.assign(features, model.features_of(condition)))
            conditioning.append((class_term, position_term, features))
        store = _Store(lines_class, model, batch_size,
                       *model.known_layer_inputs(prime_pixels, labels, condition))
        stores.append(store)
        primes.append(store.prime)

    def body(step, token, pixels_array, probabilities_array):
        position = run.start + step
        member_parameters, writes = [], []
        for model, store, (class_term, position_term, features) in zip(
                mixture.models, stores, conditioning):
            taps = store.step(position)
            conditions = model.layer_conditions(
                class_term, None if position_term is None else position_term[position, None],
                None if features is None else model.condition_term(features[:, position]))
            member_parameters.append(model.step_parameters(taps.tokens(token), taps.layer,
                                                           conditions))
            writes.extend(taps.writes())
        parameters = tf.debugging.check_numerics(mixture.output.combine(member_parameters),
                                                 'generated distribution')
        pixel = mixture.output.sample(parameters, run.temperature, run.argmax)
        with tf.control_dependencies(writes):
            # The next step starts after this one has stored its inputs.
            step, pixel = tf.identity(step), tf.identity(pixel)
        pixels_array = pixels_array.write(step, pixel)
        if with_probabilities:
            probabilities_array = probabilities_array.write(
                step, tf.nn.softmax(mixture.output.logits(parameters)))
        return step + 1, pixel, pixels_array, probabilities_array

    first_token = tf.where_v2(tf.equal(run.start, 0),
                              tf.fill([batch_size], mixture.models[0].start_token), previous_pixel)
    levels = mixture.params.quantization_channels
    arrays = [tf.TensorArray(tf.int32, size=run.num_steps, element_shape=[batch_size]),
              tf.TensorArray(tf.float32, size=run.num_steps if with_probabilities else 0,
                             element_shape=[batch_size, levels])]
    _, _, pixels_array, probabilities_array = tf.while_loop(
        lambda step, *_: step < run.num_steps, body,
        [tf.constant(0), first_token] + arrays, parallel_iterations=1, back_prop=False)
    pixels = tf.transpose(pixels_array.stack(), [1, 0])  # [B, num_steps]
    probabilities = (tf.transpose(probabilities_array.stack(), [1, 0, 2])
                     if with_probabilities else None)
    return tf.group(*primes), pixels, probabilities


class _Store:
    """A model's recent inputs: one line of tokens for the input convolution and one line per
    layer, kept in a _Ring or in _Queues.

    known_tokens int [B, P] and known_inputs (per layer float [B, P, C]) are what
    model.known_layer_inputs gives; `prime` sets the lines to what they hold after them:
    the start token (or zeros) before the first position.
    """

    def __init__(self, lines_class, model, batch_size, known_tokens, known_inputs):
        params = model.params
        self._tokens = lines_class(tf.int32, [batch_size], [1],
                                   params.initial_filter_width - 1, 'token')
        self._layers = lines_class(tf.float32, [batch_size, params.residual_channels],
                                   params.dilations, params.filter_width - 1, 'layer')
        self.prime = tf.group(*self._tokens.refill([known_tokens], model.start_token)
                              + self._layers.refill(known_inputs, 0.0), name='prime')

    def step(self, position):
        """StepTaps at `position`; writes() stores the step's inputs after every read."""
        [token_taps] = self._tokens.read(position)
        layer_taps = self._layers.read(position)
        current = {}  # 'token' and each layer index -> this step's input

        def tokens(token):
            current['token'] = token
            return token_taps + [token]

        def layer(index, inputs):
            current[index] = inputs
            return layer_taps[index] + [inputs]

        def writes():
            layer_inputs = [current[index] for index in range(len(layer_taps))]
            return (self._tokens.write(position, [current['token']], [token_taps])
                    + self._layers.write(position, layer_inputs, layer_taps))

        return StepTaps(tokens, layer, writes)


def _recent(values, size, pad_value):
    """The last `size` of values [B, P, ...], padded in front, time-major: [size, B, ...]."""
    padding = [[0, 0], [size, 0]] + [[0, 0]] * (values.shape.ndims - 2)
    recent = tf.pad(values, padding, constant_values=pad_value)[:, -size:]
    return tf.transpose(recent, [1, 0] + list(range(2, values.shape.ndims)))


class _Ring:
    """Delay lines of `taps` taps in one local variable [rows, ...element_shape].

    Line i, of spacing s_i, owns size_i = s_i * taps rows from offset_i: its value at position
    t goes to row offset_i + t mod size_i, and the step at t reads the values of positions
    t - taps * s_i, ..., t - s_i (oldest first).
    """

    def __init__(self, dtype, element_shape, spacings, taps, name):
        self._taps = taps
        self._sizes = np.array(spacings, np.int32) * taps
        self._offsets = (np.cumsum(self._sizes) - self._sizes).astype(np.int32)
        delays = np.array([[k * spacing for k in range(taps, 0, -1)] for spacing in spacings],
                          np.int32).reshape(-1)  # every tap of every line, oldest first
        self._read_rows = np.repeat(self._offsets, taps)
        self._read_sizes = np.repeat(self._sizes, taps)
        self._read_shifts = self._read_sizes - delays
        self._buffer = None if taps == 0 else tf.Variable(
            tf.zeros([int(self._sizes.sum())] + element_shape, dtype), trainable=False,
            name=name + '_ring', collections=[tf.GraphKeys.LOCAL_VARIABLES])

    def refill(self, known, pad_value):
        """Ops writing what every line holds after its values known [B, P, ...] per line;
        pad_value stands for every position before 0."""
        if self._buffer is None:
            return []
        segments = []
        for values, size in zip(known, self._sizes):
            # Row r of the line holds the value of the recent position equal to r mod size.
            order = tf.floormod(tf.range(size) - tf.shape(values)[1], size)
            segments.append(tf.gather(_recent(values, size, pad_value), order))
        return [tf.assign(self._buffer, tf.concat(segments, axis=0))]

    def read(self, position):
        """Per line, its taps at `position`, oldest first."""
        if self._buffer is None:
            return [[] for _ in self._sizes]
        rows = self._read_rows + tf.floormod(position + self._read_shifts, self._read_sizes)
        values = tf.unstack(tf.gather(self._buffer, rows))
        return [values[start:start + self._taps] for start in range(0, len(values), self._taps)]

    def write(self, position, values, read_taps):
        """Ops storing each line's value at `position`, after this step's reads read_taps."""
        if self._buffer is None:
            return []
        rows = self._offsets + tf.floormod(position, self._sizes)
        with tf.control_dependencies([tap for line in read_taps for tap in line]):
            return [tf.scatter_update(self._buffer, rows, tf.stack(values))]


class _Queues:
    """Delay lines of `taps` FIFO queues each: queue j of a line of spacing s holds its values
    from (j + 1) s positions back, s of them. The interface of _Ring."""

    def __init__(self, dtype, element_shape, spacings, taps, name):
        self._spacings = spacings
        self._lines = [[tf.FIFOQueue(spacing, dtype, shapes=[element_shape],
                                     name=name + '_queue') for _ in range(taps)]
                       for spacing in spacings]

    def refill(self, known, pad_value):
        """Ops emptying every queue and filling it as _Ring.refill does its rows."""
        refills = []
        for values, spacing, queues in zip(known, self._spacings, self._lines):
            recent = _recent(values, len(queues) * spacing, pad_value)
            for index, queue in enumerate(queues):
                end = (len(queues) - index) * spacing
                emptied = queue.dequeue_many(queue.size())
                with tf.control_dependencies([emptied]):
                    refills.append(queue.enqueue_many(recent[end - spacing:end]))
        return refills

    def read(self, position):
        """Per line, its taps (the oldest value of each queue), oldest first."""
        del position  # the queues keep the order
        return [[queue.dequeue() for queue in reversed(queues)] for queues in self._lines]

    def write(self, position, values, read_taps):
        """Ops pushing each line's value into its first queue, and each tap into the next."""
        del position
        writes = []
        for value, queues, taps in zip(values, self._lines, read_taps):
            oldest = taps[::-1]  # per queue
            for queue, dequeued, incoming in zip(queues, oldest, [value] + oldest):
                with tf.control_dependencies([dequeued]):
                    writes.append(queue.enqueue(incoming))
        return writes


_LINES = {'ring': _Ring, 'queues': _Queues}
