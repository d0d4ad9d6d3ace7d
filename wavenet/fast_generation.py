"""Fast generation: one step through the layers per generated pixel (Paine et al.).

A layer's step needs its inputs from dilation, 2 * dilation, ..., (filter_width - 1) *
dilation steps back. A *store* keeps them between steps and between session runs:
- 'ring' (the default): one ring buffer, a local variable [rows, B, residual_channels] with
  (filter_width - 1) * dilation rows per layer; a step reads every layer's taps with one
  gather and stores every layer's input with one scatter.
- 'queues': filter_width - 1 FIFO queues of capacity `dilation` per layer; a step dequeues
  and enqueues once per queue.
Both persist between session runs, so a caller can generate an image in several runs (for
progress and in-progress images); `prime` refills them from known pixels in one pass of the
full network. The pixels of a run are generated inside one tf.while_loop per lane.

Lanes split the batch into independent groups of images, each with its own loop and store:
a session with one thread per lane and one thread per op (generation.session_config) runs
them side by side, which on a few CPU cores beats splitting every small op across threads.

The model side of a step (WaveNetModel.step_logits) is the same layer code as training.
"""
import collections

import numpy as np
import tensorflow.compat.v1 as tf

STATES = ('ring', 'queues')

FastGenerator = collections.namedtuple('FastGenerator', [
    'labels',           # placeholder int32 [B]: class of each image, or None (unconditional)
    'condition',        # placeholder int32 [B, h, w, c]: the condition image of each image
                        # (read by prime), or None (no local conditioning)
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


def build_fast_generator(mixture, batch_size, with_probabilities=False, state=STATES[0],
                         lanes=1):
    """Builds incremental generation from a model.Mixture (one model or an ensemble).

    With several models every step runs each model's layers on the pixels generated so far
    and samples from the equal-weight mean of their distributions; each keeps its own store.

    Args:
        mixture: a model.Mixture.
        batch_size: Python int, images generated at once.
        with_probabilities: also return every step's distribution (for tests).
        state: one of STATES, the store of the layers' recent inputs.
        lanes: Python int from 1 to batch_size, independent groups of images.
    Returns:
        A FastGenerator.
    """
    if state not in STATES:
        raise ValueError('state must be one of %s, got %r' % (STATES, state))
    if not 1 <= lanes <= batch_size:
        raise ValueError('lanes must be from 1 to the batch size %d, got %r'
                         % (batch_size, lanes))
    with tf.name_scope('generation'):
        labels = (tf.placeholder(tf.int32, [batch_size], name='labels') if mixture.conditional
                  else None)
        condition = (tf.placeholder(tf.int32, [batch_size] + list(mixture.condition_shape),
                                    name='condition') if mixture.condition_shape else None)
        prime_pixels = tf.placeholder(tf.int32, [batch_size, None], name='prime_pixels')
        start = tf.placeholder(tf.int32, [], name='start')
        num_steps = tf.placeholder(tf.int32, [], name='num_steps')
        previous_pixel = tf.placeholder(tf.int32, [batch_size], name='previous_pixel')
        temperature = tf.placeholder_with_default(1.0, [], name='temperature')
        argmax = tf.placeholder_with_default(False, [], name='argmax')
        lane_sizes = [batch_size // lanes + (1 if lane < batch_size % lanes else 0)
                      for lane in range(lanes)]
        # Per tensor, its part of every lane (Nones for no labels or condition).
        lane_parts = [[None] * lanes if tensor is None else tf.split(tensor, lane_sizes)
                      for tensor in (labels, condition, prime_pixels, previous_pixel)]
        results = []
        for lane in range(lanes):
            with tf.name_scope('lane%d' % lane):
                results.append(_generation_lane(
                    mixture, STORES[state], *[parts[lane] for parts in lane_parts],
                    _RunOptions(start, num_steps, temperature, argmax, with_probabilities)))
        primes, lane_pixels, lane_probabilities = zip(*results)
        pixels = tf.concat(lane_pixels, axis=0)  # [B, num_steps]
        probabilities = tf.concat(lane_probabilities, axis=0) if with_probabilities else None
        return FastGenerator(labels, condition, prime_pixels, tf.group(*primes, name='prime'),
                             start,
                             num_steps, previous_pixel, temperature, argmax, pixels,
                             probabilities)


_RunOptions = collections.namedtuple(
    '_RunOptions', 'start num_steps temperature argmax with_probabilities')


def _generation_lane(mixture, store_class, labels, condition, prime_pixels, previous_pixel,
                     options):
    """One lane: the models' stores and one loop over the pixels of a run.

    Args:
        mixture: a model.Mixture of the models sampled.
        store_class: _RingStore or _QueueStore.
        labels: int [B] classes, or None; condition: int [B, h, w, c] or None;
        prime_pixels: int [B, P]; previous_pixel: int [B].
        options: the _RunOptions of build_fast_generator's placeholders.
    Returns:
        (prime op, pixels int32 [B, num_steps], probabilities float32 [B, num_steps, Q]
        or None).
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
        stores.append(store_class(model, batch_size,
                                  *model.known_layer_inputs(prime_pixels, labels, condition)))

    def body(step, token, pixels_array, probabilities_array):
        position = options.start + step
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
        pixel = mixture.output.sample(parameters, options.temperature, options.argmax)
        with tf.control_dependencies(writes):
            # The next step starts after this one has stored its inputs.
            step, pixel = tf.identity(step), tf.identity(pixel)
        pixels_array = pixels_array.write(step, pixel)
        if options.with_probabilities:
            probabilities_array = probabilities_array.write(
                step, tf.nn.softmax(mixture.output.logits(parameters)))
        return step + 1, pixel, pixels_array, probabilities_array

    first_token = tf.where_v2(tf.equal(options.start, 0),
                              tf.fill([batch_size], mixture.models[0].start_token),
                              previous_pixel)
    levels = mixture.params.quantization_channels
    arrays = [tf.TensorArray(tf.int32, size=options.num_steps, element_shape=[batch_size]),
              tf.TensorArray(tf.float32, size=options.num_steps if options.with_probabilities
                             else 0, element_shape=[batch_size, levels])]
    _, _, pixels_array, probabilities_array = tf.while_loop(
        lambda step, *_: step < options.num_steps, body,
        [tf.constant(0), first_token] + arrays, parallel_iterations=1, back_prop=False)
    pixels = tf.transpose(pixels_array.stack(), [1, 0])  # [B, num_steps]
    probabilities = (tf.transpose(probabilities_array.stack(), [1, 0, 2])
                     if options.with_probabilities else None)
    return tf.group(*[store.prime for store in stores] + primes), pixels, probabilities


class _QueueStore:
    """Layer inputs kept in FIFO queues that persist between session runs.

    Queue j of a layer (j = 0, 1, ...) holds its inputs delayed by (j + 1) * dilation; a step
    dequeues the oldest of each and pushes the newer value in. `prime` empties every queue and
    refills it with what it would hold after the known pixels: zeros (or the start token)
    before the first one.

    Args:
        model: the WaveNetModel whose layers the store serves.
        batch_size: Python int, images of the lane.
        known_tokens: int [B, P], the input tokens of the known positions.
        known_inputs: per layer, its inputs at the known positions, float [B, P, C].
    """

    def __init__(self, model, batch_size, known_tokens, known_inputs):
        params = model.params
        self._token_queues = [tf.FIFOQueue(1, tf.int32, shapes=[[batch_size]])
                              for _ in range(params.initial_filter_width - 1)]
        self._layer_queues = [[tf.FIFOQueue(dilation, tf.float32,
                                            shapes=[[batch_size, params.residual_channels]])
                               for _ in range(params.filter_width - 1)]
                              for dilation in params.dilations]
        refills = []
        history_length = len(self._token_queues)
        start_tokens = tf.fill([batch_size, history_length], model.start_token)
        token_history = tf.concat([start_tokens, known_tokens], axis=1)[:, -history_length:]
        for index, queue in enumerate(self._token_queues):
            values = token_history[:, history_length - 1 - index]  # oldest at the deepest queue
            refills.append((queue, tf.expand_dims(values, 0)))
        for queues, inputs, dilation in zip(self._layer_queues, known_inputs, params.dilations):
            length = len(queues) * dilation
            padded = tf.pad(inputs, [[0, 0], [length, 0], [0, 0]])[:, -length:]  # [B, L, C]
            for index, queue in enumerate(queues):
                end = length - index * dilation
                chunk = padded[:, end - dilation:end]  # [B, dilation, C]
                refills.append((queue, tf.transpose(chunk, [1, 0, 2])))
        enqueue_ops = []
        for queue, values in refills:
            emptied = queue.dequeue_many(queue.size())
            with tf.control_dependencies([emptied]):
                enqueue_ops.append(queue.enqueue_many(values))
        self.prime = tf.group(*enqueue_ops, name='prime')

    def step(self, position):
        """StepTaps from the queues (which need no position)."""
        del position
        updates = []

        def queue_taps(queues, current):
            """Taps oldest first, from the queues; pushes `current` through them."""
            result = [current]
            incoming = current
            for queue in queues:
                oldest = queue.dequeue()
                with tf.control_dependencies([oldest]):
                    updates.append(queue.enqueue(incoming))
                result.insert(0, oldest)
                incoming = oldest
            return result

        return StepTaps(tokens=lambda token: queue_taps(self._token_queues, token),
                        layer=lambda index, inputs: queue_taps(self._layer_queues[index],
                                                               inputs),
                        writes=lambda: updates)


class _RingStore:
    """Layer inputs kept in ring buffers, local variables that persist between runs.

    Layer l owns rows offset_l .. offset_l + size_l - 1 of one buffer [rows, B, C], with
    size_l = (filter_width - 1) * dilation_l: its input at position t is written to row
    offset_l + t mod size_l and stays there until the step that reads it as its oldest tap.
    The input convolution's earlier tokens have a ring of their own,
    [initial_filter_width - 1, B]. `prime` writes what the rings hold after the known
    pixels: zeros (or the start token) before the first one.

    Args: as _QueueStore.
    """

    def __init__(self, model, batch_size, known_tokens, known_inputs):
        params = model.params
        self._token_ring = _Ring(tf.int32, [batch_size], [(1, params.initial_filter_width - 1)],
                                 'token_ring')
        self._layer_ring = _Ring(tf.float32, [batch_size, params.residual_channels],
                                 [(dilation, params.filter_width - 1)
                                  for dilation in params.dilations], 'layer_ring')
        refills = [self._token_ring.refill([known_tokens], model.start_token),
                   self._layer_ring.refill(known_inputs, 0.0)]
        self.prime = tf.group(*[refill for refill in refills if refill is not None],
                              name='prime')

    def step(self, position):
        """StepTaps read from the rings at `position`; writes() stores the step's inputs."""
        token_taps = self._token_ring.read(position)
        layer_taps = self._layer_ring.read(position)
        current = {}  # 'token' and each layer index -> this step's input

        def tokens(token):
            current['token'] = token
            return token_taps[0] + [token]

        def layer(index, inputs):
            current[index] = inputs
            return layer_taps[index] + [inputs]

        def writes():
            updates = [self._token_ring.write(position, [current['token']], token_taps),
                       self._layer_ring.write(position, [current[index] for index in
                                                         range(len(layer_taps))], layer_taps)]
            return [update for update in updates if update is not None]

        return StepTaps(tokens, layer, writes)


STORES = {'ring': _RingStore, 'queues': _QueueStore}


class _Ring:
    """Several delay lines in one buffer variable [rows, ...element_shape].

    Line i, of spacing s_i and n_i taps, owns size_i = s_i * n_i rows from offset_i: its value
    at position t goes to row offset_i + t mod size_i, and the step at position t reads its
    values from positions t - n_i s_i, ..., t - s_i (oldest first). The buffer is a local
    variable (not saved in checkpoints), written whole by `refill`.
    """

    def __init__(self, dtype, element_shape, lines, name):
        self._lines = lines
        self._sizes = [spacing * taps for spacing, taps in lines]
        offsets = np.cumsum([0] + self._sizes).astype(np.int32)
        self._offsets = offsets[:-1]
        rows = int(offsets[-1])
        read_rows, read_delays, read_sizes = [], [], []
        for (spacing, taps), offset, size in zip(lines, self._offsets, self._sizes):
            read_rows += [offset] * taps
            read_delays += [k * spacing for k in range(taps, 0, -1)]
            read_sizes += [size] * taps
        self._read_rows = np.array(read_rows, np.int32)
        self._read_shifts = np.array(read_sizes, np.int32) - np.array(read_delays, np.int32)
        self._read_sizes = np.array(read_sizes, np.int32)
        self._buffer = None if rows == 0 else tf.Variable(
            tf.zeros([rows] + element_shape, dtype), trainable=False, name=name,
            collections=[tf.GraphKeys.LOCAL_VARIABLES])

    def refill(self, known, pad_value):
        """Writes what every line holds after its known values.

        Args:
            known: per line, its values at positions 0..P-1, [B, P, ...element_shape[1:]].
            pad_value: Python number standing for every position before 0.
        Returns:
            the assign op, or None when the ring is empty.
        """
        if self._buffer is None:
            return None
        segments = []
        for values, size in zip(known, self._sizes):
            if size == 0:
                continue
            padding = [[0, 0], [size, 0]] + [[0, 0]] * (values.shape.ndims - 2)
            recent = tf.pad(values, padding, constant_values=pad_value)[:, -size:]
            # recent[:, j] is position P - size + j, whose row r = (P + j) mod size.
            order = tf.floormod(tf.range(size) - tf.shape(values)[1], size)
            segments.append(tf.gather(recent, order, axis=1))  # [B, size, ...]
        stacked = tf.concat(segments, axis=1)  # [B, rows, ...]
        order = [1, 0] + list(range(2, stacked.shape.ndims))
        return tf.assign(self._buffer, tf.transpose(stacked, order))

    def read(self, position):
        """Per line, its taps at `position`, oldest first: a list of lists of [...element]."""
        if self._buffer is None:
            return [[] for _ in self._lines]
        rows = self._read_rows + tf.floormod(position + self._read_shifts, self._read_sizes)
        values = tf.unstack(tf.gather(self._buffer, rows))
        taps, start = [], 0
        for _, count in self._lines:
            taps.append(values[start:start + count])
            start += count
        return taps

    def write(self, position, values, read_taps):
        """Stores each line's value at `position`, after the reads `read_taps` of this step.

        Returns the scatter op, or None when the ring is empty.
        """
        if self._buffer is None:
            return None
        stored = [value for value, size in zip(values, self._sizes) if size]
        rows = self._offsets[np.array(self._sizes) > 0] + tf.floormod(
            position, np.array([size for size in self._sizes if size], np.int32))
        with tf.control_dependencies([tap for line in read_taps for tap in line]):
            return tf.scatter_update(self._buffer, rows, tf.stack(stored))
