"""The WaveNet: causal dilated convolutions over raster-ordered pixels, 256-way softmax.

One WaveNetModel object owns the variables. Its full path (training, evaluation, naive
generation) and its incremental path (fast generation) run the same layer code on the same
variables; they differ only in where each layer's input taps come from: delayed copies of
the whole sequence, or a store of each layer's recent inputs (a ring buffer, FIFO queues or
TensorArrays). build_fast_generator runs the incremental path of several models in one loop,
sampling from the mean of their distributions (an ensemble).
"""
import collections

import numpy as np
import tensorflow.compat.v1 as tf

from wavenet import ops

FastGenerator = collections.namedtuple('FastGenerator', [
    'labels',           # placeholder int32 [B]: class of each image, or None (unconditional)
    'prime_pixels',     # placeholder int32 [B, P]: the pixels already known (P may be 0)
    'prime',            # op: resets every queue to the state after prime_pixels
    'start',            # placeholder int32 []: position of the first pixel this run generates
    'num_steps',        # placeholder int32 []: how many pixels this run generates
    'previous_pixel',   # placeholder int32 [B]: pixel at start - 1 (ignored when start == 0)
    'temperature',      # placeholder float32 [], default 1.0: softmax temperature
    'argmax',           # placeholder bool [], default False: take the likeliest level
    'pixels',           # int32 [B, num_steps]: the generated pixels
    'probabilities',    # float32 [B, num_steps, Q] at temperature 1, or None if not requested
    'resumable',        # bool: state persists between runs (ring, queues); else one run
])

GENERATION_STATES = ('ring', 'queues', 'arrays')

Dropout = collections.namedtuple('Dropout', [
    'rate',  # Python float in [0, 1): share of the gated activations set to zero
    'seed',  # int64 [2]: the masks are a function of this seed alone (and the layer)
])


class WaveNetModel:
    """Creates the variables of a WaveNet and builds graphs that use them.

    An image is one sequence of height * width * channels levels in raster order, the
    channels of a pixel (R, G, B) next to each other.

    Args:
        params: a WaveNetParams.
        image_size: (height, width) of the images, needed for position conditioning.
        num_classes: number of classes, needed for class conditioning (gc_channels > 0).
        channels: 1 for grayscale, 3 for RGB; colour models learn an embedding of the
            channel of each sub-pixel, added with the position conditioning.
        name: variable scope of every variable.
    """

    def __init__(self, params, image_size, num_classes=0, channels=1, name='wavenet'):
        if params.gc_channels and num_classes < 1:
            raise ValueError('class conditioning (gc_channels=%d) needs at least one class'
                             % params.gc_channels)
        if channels > 1 and not params.position_channels:
            raise ValueError('a colour model needs position_channels > 0: the channel of '
                             'each sub-pixel is fed through the position conditioning')
        self.params = params
        self.image_size = tuple(image_size)
        self.channels = channels
        self.sequence_length = self.image_size[0] * self.image_size[1] * channels
        self.num_classes = num_classes if params.gc_channels else 0
        self.start_token = params.quantization_channels
        self._variables = self._create_variables(name)
        self._matrices = self._combine_weights()

    @property
    def conditional(self):
        """Whether every graph needs the class labels of its images."""
        return self.num_classes > 0

    def _create_variables(self, name):
        """Returns a nested dict of every trainable variable."""
        params = self.params
        residual, dilation, skip = (params.residual_channels, params.dilation_channels,
                                    params.skip_channels)
        levels = params.quantization_channels
        initializer = tf.glorot_uniform_initializer()
        zeros = tf.zeros_initializer()

        def weight(var_name, shape):
            return tf.get_variable(var_name, shape, initializer=initializer)

        def bias(var_name, shape):
            if not params.use_biases:
                return None
            return tf.get_variable(var_name, shape, initializer=zeros)

        variables = {}
        with tf.variable_scope(name):
            with tf.variable_scope('input'):
                # One table per tap: the one-hot input convolution as lookups.
                variables['input'] = {
                    'tables': weight('tables', [params.initial_filter_width, levels + 1, residual]),
                    'biases': bias('biases', [residual])}
                if params.level_bumps:
                    variables['input']['bump_tables'] = tf.get_variable(
                        'bump_tables', [params.initial_filter_width, params.level_bumps, residual],
                        initializer=zeros)
            with tf.variable_scope('conditioning'):
                height, width = self.image_size
                variables['conditioning'] = {
                    'classes': (weight('class_embedding', [self.num_classes, params.gc_channels])
                                if self.conditional else None),
                    'rows': (weight('row_embedding', [height, params.position_channels])
                             if params.position_channels else None),
                    'columns': (weight('column_embedding', [width, params.position_channels])
                                if params.position_channels else None),
                    'channels': (weight('channel_embedding',
                                        [self.channels, params.position_channels])
                                 if self.channels > 1 else None)}
            variables['layers'] = []
            for index, _ in enumerate(params.dilations):
                with tf.variable_scope('layer%d' % index):
                    layer = {
                        'filter_gate': weight('filter_gate',
                                              [params.filter_width, residual, 2 * dilation]),
                        'filter_gate_biases': bias('filter_gate_biases', [2 * dilation]),
                        'skip': weight('skip', [dilation, skip]),
                        'skip_biases': bias('skip_biases', [skip])}
                    if self.conditional:
                        layer['class_projection'] = weight(
                            'class_projection', [params.gc_channels, 2 * dilation])
                    if params.position_channels:
                        layer['position_projection'] = weight(
                            'position_projection', [params.position_channels, 2 * dilation])
                    if index < len(params.dilations) - 1:
                        # The last layer's residual output would feed nothing.
                        layer['dense'] = weight('dense', [dilation, residual])
                        layer['dense_biases'] = bias('dense_biases', [residual])
                    variables['layers'].append(layer)
            with tf.variable_scope('output'):
                variables['output'] = {
                    'hidden': weight('hidden', [skip, skip]),
                    'hidden_biases': bias('hidden_biases', [skip]),
                    'logits': weight('logits', [skip, levels]),
                    'logits_biases': bias('logits_biases', [levels])}
                if params.level_bumps:
                    variables['output']['bump_logits'] = tf.get_variable(
                        'bump_logits', [skip, params.level_bumps], initializer=zeros)
        return variables

    def _combine_weights(self):
        """Weights in the layout the stack multiplies by, computed once per graph.

        Built outside any loop, so fast generation does not redo them at every pixel.
        """
        layers = self._variables['layers']
        tables, logits = self._variables['input']['tables'], self._variables['output']['logits']
        if self.params.level_bumps:
            # Smooth curves over the levels, added to every level's table row and logit
            # weights; the start token's rows get none.
            bumps = ops.level_bumps(self.params.quantization_channels, self.params.level_bumps)
            bump_rows = tf.einsum('jl,wjr->wlr', bumps, self._variables['input']['bump_tables'])
            tables += tf.pad(bump_rows, [[0, 0], [0, 1], [0, 0]])
            logits += tf.matmul(self._variables['output']['bump_logits'], bumps)
        conditional_keys = [key for key in ('class_projection', 'position_projection')
                            if key in layers[0]]
        return {
            'tables': tables,  # [initial_filter_width, levels + 1, residual]
            'logits': logits,  # [skip, levels]
            'filter_gate': [ops.filter_matrix(layer['filter_gate']) for layer in layers],
            # Every layer's conditioning projection side by side: one product for all layers.
            **{key: tf.concat([layer[key] for layer in layers], axis=1)
               for key in conditional_keys},
            # The sum of every layer's skip projection is one product with these.
            'skip': tf.concat([layer['skip'] for layer in layers], axis=0),
            'skip_biases': (tf.add_n([layer['skip_biases'] for layer in layers])
                            if self.params.use_biases else None)}

    def _condition_parts(self, labels, positions):
        """Every layer's conditioning terms, side by side: [..., L * 2 * dilation_channels].

        Args:
            labels: int [B] classes, or None for an unconditional model.
            positions: int [T] positions in the sequence.
        Returns:
            (class part float [B, L * 2D] or None, position part float [T, L * 2D] or None),
            L layers of 2D filter and gate channels each.
        """
        conditioning = self._variables['conditioning']
        class_part = position_part = None
        if self.conditional:
            if labels is None:
                raise ValueError('this model is class-conditional: labels are required')
            classes = tf.gather(conditioning['classes'], labels)  # [B, gc_channels]
            class_part = ops.dense(classes, self._matrices['class_projection'])
        if self.params.position_channels:
            width = self.image_size[1]
            pixels = positions // self.channels
            places = (tf.gather(conditioning['rows'], pixels // width)
                      + tf.gather(conditioning['columns'], pixels % width))  # [T, P]
            if conditioning['channels'] is not None:
                places += tf.gather(conditioning['channels'], positions % self.channels)
            position_part = ops.dense(places, self._matrices['position_projection'])
        return class_part, position_part

    def _split_layers(self, parts):
        """The broadcasting sum of the parts (None for none), split into one term per layer.

        Args:
            parts: tensors [..., L * 2D] or None.
        Returns:
            a list of L terms [..., 2D], or of L Nones when every part is None.
        """
        parts = [part for part in parts if part is not None]
        num_layers = len(self.params.dilations)
        if not parts:
            return [None] * num_layers
        return tf.split(sum(parts[1:], parts[0]), num_layers, axis=-1)

    def _layer_conditions(self, labels, positions):
        """The conditioning term each layer adds to its filter and gate pre-activations.

        Args:
            labels: int [B] classes, or None for an unconditional model.
            positions: int [T] positions of the predicted sub-pixels in the sequence.
        Returns:
            A list with one float tensor [B or 1, T or 1, 2 * dilation_channels] per layer, or
            a list of None when the model has no conditioning.
        """
        class_part, position_part = self._condition_parts(labels, positions)
        # Broadcasting sum: class terms are per image, position terms per pixel.
        return self._split_layers([None if class_part is None else class_part[:, None],
                                   None if position_part is None else position_part[None]])

    def _step_conditions(self, labels):
        """Conditioning for one generation step at a time.

        Args:
            labels: int [B] classes, or None for an unconditional model.
        Returns:
            function(position int32 []) -> a list with one term [B or 1, 2 * dilation_channels]
            (or None) per layer. The class terms and the table of every position's terms are
            computed once, outside the step.
        """
        class_part, position_part = self._condition_parts(
            labels, tf.range(self.sequence_length))

        def at_position(position):
            return self._split_layers([class_part, None if position_part is None
                                       else position_part[position, None]])
        return at_position

    def _stack(self, inputs, layer_taps, layer_conditions, dropout=None):
        """Runs the residual layers and the output stack.

        Args:
            inputs: float [..., residual_channels], output of the input convolution.
            layer_taps: function (layer index, dilation, layer input [..., residual_channels])
                -> list of filter_width taps, oldest first, each [..., residual_channels].
            layer_conditions: from _layer_conditions: one term (or None) per layer, added to
                the filter and gate pre-activations.
            dropout: optional Dropout, applied to every layer's gated activations.
        Returns:
            float [..., quantization_channels] logits.
        """
        layers = self._variables['layers']
        gated_outputs = []
        residual = inputs
        for index, dilation in enumerate(self.params.dilations):
            layer = layers[index]
            filter_gate = ops.conv_taps(layer_taps(index, dilation, residual),
                                        self._matrices['filter_gate'][index],
                                        layer['filter_gate_biases'])
            if layer_conditions[index] is not None:
                filter_gate += layer_conditions[index]
            filters, gates = tf.split(filter_gate, 2, axis=-1)
            gated = tf.tanh(filters) * tf.sigmoid(gates)  # [..., dilation_channels]
            if dropout is not None and dropout.rate > 0:
                gated = tf.nn.experimental.stateless_dropout(
                    gated, dropout.rate,
                    seed=tf.random.experimental.stateless_fold_in(dropout.seed, index))
            gated_outputs.append(gated)
            if 'dense' in layer:
                residual = residual + ops.dense(gated, layer['dense'], layer['dense_biases'])
        # The sum of every layer's skip projection, as one matrix product.
        skips = ops.dense(tf.concat(gated_outputs, axis=-1), self._matrices['skip'],
                          self._matrices['skip_biases'])
        output = self._variables['output']
        hidden = tf.nn.relu(ops.dense(tf.nn.relu(skips), output['hidden'],
                                      output['hidden_biases']))
        return ops.dense(hidden, self._matrices['logits'], output['logits_biases'])

    def _full_inputs(self, pixels):
        """Input convolution over the whole sequence: int [B, T] -> float [B, T, residual]."""
        tokens = ops.shift_in_start_token(tf.cast(pixels, tf.int32), self.start_token)
        return self._input_convolution(tokens)

    def _input_convolution(self, tokens):
        """Input convolution of the input tokens: int [B, T] -> float [B, T, residual]."""
        variables = self._variables['input']
        outputs = ops.causal_embedding_conv(tokens, self._matrices['tables'], self.start_token)
        return outputs if variables['biases'] is None else outputs + variables['biases']

    def _delayed_copies(self, _, dilation, layer_inputs):
        """Full-path taps of a layer: its inputs [B, T, C] delayed by each tap's offset."""
        width = self.params.filter_width
        return [ops.causal_shift(layer_inputs, (width - 1 - i) * dilation) for i in range(width)]

    def logits(self, pixels, labels=None, dropout=None):
        """Logits of every pixel given the pixels before it (and the class).

        Args:
            pixels: int [B, T] levels in raster order, T <= height * width * channels.
            labels: int [B] classes; required by a class-conditional model.
            dropout: optional Dropout of the gated activations (training only).
        Returns:
            float [B, T, quantization_channels]; position t depends on pixels[:, :t] only.
        """
        positions = tf.range(tf.shape(pixels)[1])
        return self._stack(self._full_inputs(pixels), self._delayed_copies,
                           self._layer_conditions(labels, positions), dropout)

    def nats_per_image(self, pixels, labels=None, dropout=None):
        """Negative log-likelihood of each image.

        Args:
            pixels: int [B, T].
            labels: int [B] classes; required by a class-conditional model.
            dropout: optional Dropout of the gated activations (training only).
        Returns:
            float [B]: the sum over pixels of -ln p(pixel | earlier pixels).
        """
        logits = self.logits(pixels, labels, dropout)
        nats = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(pixels, tf.int32), logits=logits)  # [B, T]
        return tf.reduce_sum(nats, axis=1)

    def loss(self, pixels, labels=None, dropout=None):
        """Mean negative log-likelihood per pixel, in nats: scalar."""
        num_pixels = tf.cast(tf.shape(pixels)[1], tf.float32)
        return tf.reduce_mean(self.nats_per_image(pixels, labels, dropout)) / num_pixels

    def weights(self):
        """Every weight matrix and table (no biases): the targets of L2 regularization."""
        found = [self._variables['input']['tables'], self._variables['output']['hidden'],
                 self._variables['output']['logits']]
        found.extend(self._variables[part][key] for part, key in
                     (('input', 'bump_tables'), ('output', 'bump_logits'))
                     if key in self._variables[part])
        found.extend(table for table in self._variables['conditioning'].values()
                     if table is not None)
        for layer in self._variables['layers']:
            found.extend(layer[key] for key in ('filter_gate', 'dense', 'skip', 'class_projection',
                                                'position_projection') if key in layer)
        return found

    def fast_generator(self, batch_size, with_probabilities=False, state=GENERATION_STATES[0],
                       lanes=1):
        """Builds incremental generation: one step through the layers per generated pixel.

        A layer's step needs its inputs from dilation, 2 * dilation, ...,
        (filter_width - 1) * dilation steps back. Where they wait is `state`:
        - 'ring': one ring buffer (a local variable [rows, B, residual_channels]) with
          (filter_width - 1) * dilation rows per layer; a step reads every layer's taps with
          one gather and stores every layer's input with one scatter.
        - 'queues': filter_width - 1 FIFO queues of capacity `dilation` per layer; a step
          dequeues and enqueues once per queue.
        Both keep their state between session runs, so a caller can generate an image in
        several runs (for progress and in-progress images); `prime` refills them from known
        pixels in one pass of the full network.
        - 'arrays': one TensorArray per layer holding all its inputs, living within one run.
          A run reads `prime_pixels` itself and generates every remaining pixel; `prime` does
          nothing.
        Either way the pixels of a run are generated inside one tf.while_loop per lane.

        Lanes split the batch into independent groups of images, each with its own loop and
        state: a session with one thread per lane and one thread per op
        (generation.thread_options) runs them side by side, which on a few CPU cores beats
        splitting every small op across threads.

        Args:
            batch_size: Python int, images generated at once.
            with_probabilities: also return every step's distribution (for tests).
            state: one of GENERATION_STATES.
            lanes: Python int from 1 to batch_size, independent groups of images.
        Returns:
            A FastGenerator (build_fast_generator of this model alone).
        """
        return build_fast_generator([self], batch_size, with_probabilities, state, lanes)

    def _step_logits(self, taps, token, layer_conditions):
        """Logits of one generation step from its taps.

        Args:
            taps: the step's _StepTaps.
            token: int [B], the input token of this step (the previous pixel).
            layer_conditions: one conditioning term [B or 1, 2D] (or None) per layer.
        Returns:
            float [B, quantization_channels].
        """
        inputs = ops.embedding_taps(taps.of_tokens(token), self._matrices['tables'])
        biases = self._variables['input']['biases']
        if biases is not None:
            inputs += biases
        return self._stack(inputs,
                           lambda index, _, layer_inputs: taps.of_layer(index, layer_inputs),
                           layer_conditions)

    def _known_histories(self, prime_pixels, labels):
        """What each layer saw of the known pixels, from one pass of the full network.

        Args:
            prime_pixels: int [B, P] known first pixels (P may be 0).
            labels: int [B] classes, or None.
        Returns:
            (tokens int [B, P], the input tokens of positions 0..P-1; a list with each
            layer's inputs float [B, P, residual_channels]). The first generation step
            (position P) takes the last known pixel as its token.
        """
        tokens = ops.shift_in_start_token(prime_pixels, self.start_token)
        layer_inputs = []

        def record_inputs(index, dilation, inputs):
            layer_inputs.append(inputs)
            return self._delayed_copies(index, dilation, inputs)

        self._stack(self._input_convolution(tokens), record_inputs,
                    self._layer_conditions(labels, tf.range(tf.shape(tokens)[1])))
        return tokens, layer_inputs


def mixture_logits(member_logits):
    """Logits of one model or of the mixture of several, float [..., Q] each.

    One member's logits are returned as they are; several give the log of their
    equal-weight mean distribution (ops.mixture_log_probabilities).
    """
    if len(member_logits) == 1:
        return member_logits[0]
    return ops.mixture_log_probabilities(member_logits)


def build_fast_generator(models, batch_size, with_probabilities=False,
                         state=GENERATION_STATES[0], lanes=1):
    """Incremental generation from one model, or from the mixture of several.

    With several models (an ensemble: the same image size, channels, levels and
    conditioning), every step runs each model's layers on the pixels generated so far and
    samples from the equal-weight mean of their distributions (mixture_logits).
    State, lanes and the FastGenerator are as WaveNetModel.fast_generator describes; every
    model keeps its own state.

    Args:
        models: a non-empty list of WaveNetModels.
        batch_size, with_probabilities, state, lanes: as WaveNetModel.fast_generator.
    Returns:
        A FastGenerator.
    """
    if state not in GENERATION_STATES:
        raise ValueError('state must be one of %s, got %r' % (GENERATION_STATES, state))
    if not 1 <= lanes <= batch_size:
        raise ValueError('lanes must be from 1 to the batch size %d, got %r'
                         % (batch_size, lanes))
    labels = (tf.placeholder(tf.int32, [batch_size], name='labels') if models[0].conditional
              else None)
    prime_pixels = tf.placeholder(tf.int32, [batch_size, None], name='prime_pixels')
    start = tf.placeholder(tf.int32, [], name='start')
    num_steps = tf.placeholder(tf.int32, [], name='num_steps')
    previous_pixel = tf.placeholder(tf.int32, [batch_size], name='previous_pixel')
    temperature = tf.placeholder_with_default(1.0, [], name='temperature')
    argmax = tf.placeholder_with_default(False, [], name='argmax')
    # Lanes: independent groups of images, each with its own loop and state.
    lane_sizes = [batch_size // lanes + (1 if lane < batch_size % lanes else 0)
                  for lane in range(lanes)]
    # Per tensor, its part of every lane (Nones for no labels).
    lane_parts = [[None] * lanes if tensor is None else tf.split(tensor, lane_sizes)
                  for tensor in (labels, prime_pixels, previous_pixel)]
    lane_results = []
    for lane, size in enumerate(lane_sizes):
        with tf.name_scope('lane%d' % lane):
            lane_results.append(_generation_lane(
                models, size, *[parts[lane] for parts in lane_parts],
                start, num_steps, temperature, argmax, with_probabilities, state))
    primes, lane_pixels, lane_probabilities = zip(*lane_results)
    pixels = tf.concat(lane_pixels, axis=0)  # [B, num_steps]
    probabilities = tf.concat(lane_probabilities, axis=0) if with_probabilities else None
    return FastGenerator(labels, prime_pixels, tf.group(*primes, name='prime'), start,
                         num_steps, previous_pixel, temperature, argmax, pixels,
                         probabilities, resumable=state != 'arrays')


def _generation_lane(models, batch_size, labels, prime_pixels, previous_pixel, start,
                     num_steps, temperature, argmax, with_probabilities, state):
    """One lane of fast generation: the models' state and one loop over the pixels of a run.

    Args:
        models: a non-empty list of WaveNetModels sampled as one mixture.
        batch_size: Python int, images of this lane.
        labels: int [B] classes, or None; prime_pixels: int [B, P]; previous_pixel:
            int [B]; the others as the placeholders of build_fast_generator.
    Returns:
        (prime op, pixels int32 [B, num_steps], probabilities float32 [B, num_steps, Q]
        or None).
    """
    memory_class = {'ring': _RingMemory, 'queues': _QueueMemory, 'arrays': _ArrayMemory}[state]
    memories, conditions = [], []
    for model in models:
        conditions.append(model._step_conditions(labels))
        known_tokens, known_inputs = model._known_histories(prime_pixels, labels)
        memories.append(memory_class(model, batch_size, known_tokens, known_inputs))
    history_counts = [len(memory.initial_histories) for memory in memories]

    def body(step, token, pixels_array, probabilities_array, *histories):
        position = start + step
        member_logits, stores, new_histories = [], [], []
        remaining = list(histories)  # every model's histories, one model after the other
        for model, memory, conditions_at, count in zip(models, memories, conditions,
                                                       history_counts):
            taps = memory.step(remaining[:count], position)
            remaining = remaining[count:]
            member_logits.append(model._step_logits(taps, token, conditions_at(position)))
            stores.extend(taps.finish())
            new_histories.extend(taps.histories)
        logits = tf.debugging.check_numerics(mixture_logits(member_logits), 'generated logits')
        sampled = tf.random.categorical(logits / temperature, 1, dtype=tf.int32)[:, 0]
        pixel = tf.where_v2(argmax, tf.argmax(logits, axis=-1, output_type=tf.int32), sampled)
        with tf.control_dependencies(stores):
            # The next step starts after this one has stored its inputs.
            step, pixel = tf.identity(step), tf.identity(pixel)
        pixels_array = pixels_array.write(step, pixel)
        if with_probabilities:
            probabilities_array = probabilities_array.write(step, tf.nn.softmax(logits))
        return [step + 1, pixel, pixels_array, probabilities_array] + new_histories

    first_token = tf.where_v2(tf.equal(start, 0), tf.fill([batch_size], models[0].start_token),
                              previous_pixel)
    arrays = [tf.TensorArray(tf.int32, size=num_steps, element_shape=[batch_size]),
              tf.TensorArray(tf.float32, size=num_steps if with_probabilities else 0,
                             element_shape=[batch_size, models[0].params.quantization_channels])]
    results = tf.while_loop(
        lambda step, *_: step < num_steps, body,
        [tf.constant(0), first_token] + arrays
        + [history for memory in memories for history in memory.initial_histories],
        parallel_iterations=1, back_prop=False)
    pixels_array, probabilities_array = results[2], results[3]
    pixels = tf.transpose(pixels_array.stack(), [1, 0])  # [B, num_steps]
    probabilities = (tf.transpose(probabilities_array.stack(), [1, 0, 2])
                     if with_probabilities else None)
    return tf.group(*[memory.prime for memory in memories]), pixels, probabilities


class _StepTaps:
    """One generation step's view of the stored layer inputs.

    Attributes:
        of_tokens: function(current token [B]) -> the input convolution's token taps.
        of_layer: function(layer index, current input [B, C]) -> that layer's taps.
        finish: function() -> ops that store this step's inputs, called after every layer's
            of_layer; the step ends after them.
        histories: the loop variables holding the stored inputs after this step.
    """

    def __init__(self):
        self.of_tokens = self.of_layer = None
        self.finish = list
        self.histories = []


class _QueueMemory:
    """Layer inputs kept in FIFO queues that persist between session runs.

    Queue j of a layer (j = 0, 1, ...) holds its inputs delayed by (j + 1) * dilation; a step
    dequeues the oldest of each and pushes the newer value in. `prime` empties every queue and
    refills it with what it would hold after the known pixels: zeros (or the start token)
    before the first one.
    """

    def __init__(self, model, batch_size, known_tokens, known_inputs):
        params = model.params
        self._input_queues = [tf.FIFOQueue(1, tf.int32, shapes=[[batch_size]])
                              for _ in range(params.initial_filter_width - 1)]
        self._layer_queues = [[tf.FIFOQueue(dilation, tf.float32,
                                            shapes=[[batch_size, params.residual_channels]])
                               for _ in range(params.filter_width - 1)]
                              for dilation in params.dilations]
        self.initial_histories = []
        refills = []
        history_length = len(self._input_queues)
        start_tokens = tf.fill([batch_size, history_length], model.start_token)
        token_history = tf.concat([start_tokens, known_tokens], axis=1)[:, -history_length:]
        for index, queue in enumerate(self._input_queues):
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

    def step(self, histories, position):
        """Taps from the queues for the step at `position` (queues need neither argument)."""
        del histories, position
        taps = _StepTaps()
        updates = []
        taps.finish = lambda: updates

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

        taps.of_tokens = lambda token: queue_taps(self._input_queues, token)
        taps.of_layer = lambda index, inputs: queue_taps(self._layer_queues[index], inputs)
        return taps


class _RingMemory:
    """Layer inputs kept in one ring buffer, a local variable that persists between runs.

    Layer l owns rows offset_l .. offset_l + size_l - 1 of the buffer [rows, B, C], with
    size_l = (filter_width - 1) * dilation_l: its input at position t is written to row
    offset_l + t mod size_l and stays there until the step that reads it as its oldest tap.
    A step reads every layer's taps with one gather and writes every layer's input with one
    scatter, instead of a dequeue and an enqueue per queue. The input convolution's earlier
    tokens have a ring of their own, [initial_filter_width - 1, B]. `prime` writes what the
    rings hold after the known pixels: zeros (or the start token) before the first one.
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
        self.initial_histories = []

    def step(self, histories, position):
        """Taps read from the rings for the step at `position`; finish() writes the inputs."""
        del histories
        taps = _StepTaps()
        token_taps = self._token_ring.read(position)
        layer_taps = self._layer_ring.read(position)
        current = {}  # 'token' and each layer index -> this step's input

        def of_tokens(token):
            current['token'] = token
            return token_taps[0] + [token]

        def of_layer(index, inputs):
            current[index] = inputs
            return layer_taps[index] + [inputs]

        def finish():
            updates = [self._token_ring.write(position, [current['token']], token_taps),
                       self._layer_ring.write(position, [current[index] for index in
                                                         range(len(layer_taps))], layer_taps)]
            return [update for update in updates if update is not None]

        taps.of_tokens, taps.of_layer, taps.finish = of_tokens, of_layer, finish
        return taps


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


class _ArrayMemory:
    """Layer inputs kept in TensorArrays (one per layer, plus one of tokens) within one run.

    Array entry `position + delay` holds the input at `position`, where `delay` is the
    layer's longest tap offset; the first `delay` entries are zeros (the start token for the
    tokens), then come the known pixels' inputs, then each generated step's.
    """

    def __init__(self, model, batch_size, known_tokens, known_inputs):
        params = model.params
        length = model.sequence_length
        self._token_delay = params.initial_filter_width - 1
        self._delays = [(params.filter_width - 1) * dilation for dilation in params.dilations]
        self._model = model
        self.prime = tf.no_op(name='prime')
        start_tokens = tf.fill([batch_size, self._token_delay], model.start_token)
        histories = [self._filled(tf.int32, [batch_size], length + self._token_delay,
                                  tf.concat([start_tokens, known_tokens], axis=1))]
        for inputs, delay in zip(known_inputs, self._delays):
            padded = tf.pad(inputs, [[0, 0], [delay, 0], [0, 0]])  # [B, delay + P, C]
            histories.append(self._filled(tf.float32, [batch_size, params.residual_channels],
                                          length + delay, padded))
        self.initial_histories = histories

    @staticmethod
    def _filled(dtype, element_shape, size, values):
        """A TensorArray of `size` entries whose first ones are values [B, n, ...] along n."""
        array = tf.TensorArray(dtype, size=size, element_shape=element_shape,
                               clear_after_read=False)
        order = [1, 0] + list(range(2, len(element_shape) + 1))
        return array.scatter(tf.range(tf.shape(values)[1]), tf.transpose(values, order))

    def step(self, histories, position):
        """Taps read from the arrays for the step at `position`; records the new inputs."""
        taps = _StepTaps()
        taps.histories = list(histories)
        params = self._model.params

        def array_taps(slot, current, delay, spacing, width):
            array = taps.histories[slot]
            result = [array.read(position + delay - (width - 1 - i) * spacing)
                      for i in range(width - 1)] + [current]
            taps.histories[slot] = array.write(position + delay, current)
            return result

        taps.of_tokens = lambda token: array_taps(0, token, self._token_delay, 1,
                                                  params.initial_filter_width)
        taps.of_layer = lambda index, inputs: array_taps(
            index + 1, inputs, self._delays[index], params.dilations[index], params.filter_width)
        return taps
