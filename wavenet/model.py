"""The WaveNet: causal dilated convolutions over raster-ordered pixels, 256-way softmax.

One WaveNetModel object owns the variables. Its full path (training, evaluation, naive
generation) and its incremental path (fast generation, wavenet/fast_generation.py) run the
same layer code (`_stack`) on the same variables; they differ only in where each layer's
input taps come from: delayed copies of the whole sequence, or a store of each layer's
recent inputs. A Mixture is one model, or several sampled and scored as the per-pixel mean
of their distributions (an ensemble).
"""
import collections

import tensorflow.compat.v1 as tf

from wavenet import ops

Dropout = collections.namedtuple('Dropout', [
    'rate',    # Python float in [0, 1): share of the gated activations set to zero
    'seed',    # int64 [2]: the masks are a function of this seed alone (and the layer)
    'first',   # Python int: the first row of the batch within the masks' rows ...
    'total',   # ... of `total` rows: a replica's slice of the global batch gets its rows
], defaults=(0, None))


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

    Attributes:
        weights: every weight matrix and table (no biases), the targets of L2
            regularization, recorded as they are created.
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
        self.weights = []
        with tf.variable_scope(name) as scope:
            self._variables = self._create_variables()
            self._combined_scope = scope.original_name_scope + 'combined_weights/'
        self._combined = {}  # replica -> the weights in the stack's layout

    @property
    def conditional(self):
        """Whether every graph needs the class labels of its images."""
        return self.num_classes > 0

    @property
    def _matrices(self):
        """The weights in the layout the stack multiplies by (_combine_weights), computed
        once per graph and replica: the first use builds them, outside any loop, so fast
        generation does not redo them at every pixel, and every replica of a distributed
        step computes them from its own copy of the variables."""
        context = tf.distribute.get_replica_context()
        replica = 0 if context is None else int(tf.get_static_value(
            context.replica_id_in_sync_group))
        if replica not in self._combined:
            with tf.name_scope(self._combined_scope):
                self._combined[replica] = self._combine_weights()
        return self._combined[replica]

    def _weight(self, name, shape, initializer=None):
        """A weight variable (Glorot-uniform unless given), recorded in self.weights."""
        variable = tf.get_variable(name, shape,
                                   initializer=initializer or tf.glorot_uniform_initializer())
        self.weights.append(variable)
        return variable

    def _bias(self, name, shape):
        """A zero-initialized bias variable, or None when the params use no biases."""
        if not self.params.use_biases:
            return None
        return tf.get_variable(name, shape, initializer=tf.zeros_initializer())

    def _create_variables(self):
        """Returns a nested dict of every trainable variable."""
        params = self.params
        residual, dilation, skip = (params.residual_channels, params.dilation_channels,
                                    params.skip_channels)
        levels, bumps = params.quantization_channels, params.level_bumps
        zeros = tf.zeros_initializer()
        variables = {}
        with tf.variable_scope('input'):
            # One table per tap: the one-hot input convolution as lookups.
            variables['input'] = {
                'tables': self._weight('tables', [params.initial_filter_width, levels + 1,
                                                  residual]),
                'biases': self._bias('biases', [residual]),
                'bump_tables': (self._weight('bump_tables', [params.initial_filter_width,
                                                             bumps, residual], zeros)
                                if bumps else None)}
        with tf.variable_scope('conditioning'):
            variables['conditioning'] = self._create_conditioning()
        variables['layers'] = []
        for index, _ in enumerate(params.dilations):
            with tf.variable_scope('layer%d' % index):
                layer = {'filter_gate': self._weight('filter_gate', [params.filter_width,
                                                                     residual, 2 * dilation]),
                         'filter_gate_biases': self._bias('filter_gate_biases', [2 * dilation]),
                         'skip': self._weight('skip', [dilation, skip]),
                         'skip_biases': self._bias('skip_biases', [skip])}
                if self.conditional:
                    layer['class_projection'] = self._weight(
                        'class_projection', [params.gc_channels, 2 * dilation])
                if params.position_channels:
                    layer['position_projection'] = self._weight(
                        'position_projection', [params.position_channels, 2 * dilation])
                if index < len(params.dilations) - 1:
                    # The last layer's residual output would feed nothing.
                    layer['dense'] = self._weight('dense', [dilation, residual])
                    layer['dense_biases'] = self._bias('dense_biases', [residual])
                variables['layers'].append(layer)
        with tf.variable_scope('output'):
            variables['output'] = {
                'hidden': self._weight('hidden', [skip, skip]),
                'hidden_biases': self._bias('hidden_biases', [skip]),
                'logits': self._weight('logits', [skip, levels]),
                'logits_biases': self._bias('logits_biases', [levels]),
                'bump_logits': (self._weight('bump_logits', [skip, bumps], zeros)
                                if bumps else None)}
        return variables

    def _create_conditioning(self):
        """The class, row, column and channel embeddings (None where unused)."""
        height, width = self.image_size
        size = self.params.position_channels
        return {'classes': (self._weight('class_embedding',
                                         [self.num_classes, self.params.gc_channels])
                            if self.conditional else None),
                'rows': self._weight('row_embedding', [height, size]) if size else None,
                'columns': self._weight('column_embedding', [width, size]) if size else None,
                'channels': (self._weight('channel_embedding', [self.channels, size])
                             if self.channels > 1 else None)}

    def _combine_weights(self):
        """Weights in the layout the stack multiplies by (see _matrices)."""
        layers = self._variables['layers']
        tables, logits = self._variables['input']['tables'], self._variables['output']['logits']
        if self.params.level_bumps:
            # Smooth curves over the levels, added to every level's table row and logit
            # weights; the start token's rows get none.
            bumps = ops.level_bumps(self.params.quantization_channels, self.params.level_bumps)
            bump_rows = tf.einsum('jl,wjr->wlr', bumps, self._variables['input']['bump_tables'])
            tables = tables + tf.pad(bump_rows, [[0, 0], [0, 1], [0, 0]])
            logits = logits + tf.matmul(self._variables['output']['bump_logits'], bumps)
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

    def conditioning(self, labels, positions):
        """Every layer's conditioning terms, side by side: [..., L * 2D] for L layers.

        Class terms are per image, position terms per sub-pixel; the caller broadcasts them
        into a sum (layer_conditions), so fast generation never holds a [B, T, ...] table.

        Args:
            labels: int [B] classes, or None for an unconditional model.
            positions: int [T] positions of the predicted sub-pixels in the sequence.
        Returns:
            (class term float [B, L * 2D] or None, position term float [T, L * 2D] or None).
        """
        embeddings = self._variables['conditioning']
        class_term = position_term = None
        if self.conditional:
            if labels is None:
                raise ValueError('this model is class-conditional: labels are required')
            classes = tf.gather(embeddings['classes'], labels)  # [B, gc_channels]
            class_term = ops.dense(classes, self._matrices['class_projection'])
        if self.params.position_channels:
            width = self.image_size[1]
            pixels = positions // self.channels
            places = (tf.gather(embeddings['rows'], pixels // width)
                      + tf.gather(embeddings['columns'], pixels % width))  # [T, P]
            if embeddings['channels'] is not None:
                places += tf.gather(embeddings['channels'], positions % self.channels)
            position_term = ops.dense(places, self._matrices['position_projection'])
        return class_term, position_term

    def layer_conditions(self, *terms):
        """The broadcasting sum of conditioning terms (None for none), one part per layer.

        Args:
            terms: tensors [..., L * 2D] or None.
        Returns:
            a list of L terms [..., 2D], or of L Nones when every term is None.
        """
        terms = [term for term in terms if term is not None]
        num_layers = len(self.params.dilations)
        if not terms:
            return [None] * num_layers
        return tf.split(sum(terms[1:], terms[0]), num_layers, axis=-1)

    def _full_conditions(self, labels, sequences):
        """Per-layer conditioning of sequences [B, T]: [B or 1, T or 1, 2D] (or None) each."""
        with tf.name_scope('conditioning'):
            class_term, position_term = self.conditioning(labels,
                                                          tf.range(tf.shape(sequences)[1]))
            return self.layer_conditions(None if class_term is None else class_term[:, None],
                                         None if position_term is None else position_term[None])

    def _stack(self, inputs, layer_taps, layer_conditions, dropout=None):
        """Runs the residual layers and the output stack.

        Args:
            inputs: float [..., residual_channels], output of the input convolution.
            layer_taps: function (layer index, dilation, layer input [..., residual_channels])
                -> list of filter_width taps, oldest first, each [..., residual_channels].
            layer_conditions: one term (or None) per layer, added to the filter and gate
                pre-activations (layer_conditions).
            dropout: optional Dropout, applied to every layer's gated activations.
        Returns:
            float [..., quantization_channels] logits.
        """
        gated_outputs = []
        residual = inputs
        # The layers and the concatenation of their skips in one scope: one edge into the
        # output, which TensorBoard then keeps in the main graph.
        with tf.name_scope('layers'):
            for index, dilation in enumerate(self.params.dilations):
                with tf.name_scope('layer%d' % index):
                    layer = self._variables['layers'][index]
                    filter_gate = ops.conv_taps(layer_taps(index, dilation, residual),
                                                self._matrices['filter_gate'][index],
                                                layer['filter_gate_biases'])
                    if layer_conditions[index] is not None:
                        filter_gate += layer_conditions[index]
                    filters, gates = tf.split(filter_gate, 2, axis=-1)
                    gated = tf.tanh(filters) * tf.sigmoid(gates)  # [..., dilation_channels]
                    if dropout is not None and dropout.rate > 0:
                        gated = ops.dropout_rows(
                            gated, dropout.rate,
                            tf.random.experimental.stateless_fold_in(dropout.seed, index),
                            dropout.first, dropout.total)
                    gated_outputs.append(gated)
                    if 'dense' in layer:
                        residual += ops.dense(gated, layer['dense'], layer['dense_biases'])
            skip_inputs = tf.concat(gated_outputs, axis=-1, name='skips')  # [..., L * D]
        with tf.name_scope('output'):
            # The sum of every layer's skip projection, as one matrix product.
            skips = ops.dense(skip_inputs, self._matrices['skip'], self._matrices['skip_biases'])
            output = self._variables['output']
            hidden = tf.nn.relu(ops.dense(tf.nn.relu(skips), output['hidden'],
                                          output['hidden_biases']))
            return ops.dense(hidden, self._matrices['logits'], output['logits_biases'])

    def _full_inputs(self, pixels):
        """The input convolution over a whole sequence.

        Args:
            pixels: int [B, T] levels.
        Returns:
            (the input tokens int32 [B, T]: the start token, then pixels[:, :-1];
            the convolution's outputs float [B, T, residual_channels]).
        """
        with tf.name_scope('input'):
            tokens = ops.shift_in_start_token(tf.cast(pixels, tf.int32), self.start_token)
            outputs = ops.causal_embedding_conv(tokens, self._matrices['tables'],
                                                self.start_token)
            biases = self._variables['input']['biases']
            return tokens, outputs if biases is None else outputs + biases

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
        _, inputs = self._full_inputs(pixels)
        return self._stack(inputs, self._delayed_copies,
                           self._full_conditions(labels, pixels), dropout)

    def nats_per_image(self, pixels, labels=None, dropout=None):
        """Negative log-likelihood of each image, float [B], from pixels int [B, T]."""
        return ops.nats_per_sequence(self.logits(pixels, labels, dropout), pixels)

    def loss(self, pixels, labels=None, dropout=None, l2_strength=0.0):
        """The mean negative log-likelihood per sub-pixel, in nats, and the training objective.

        Returns:
            (loss, objective), scalars: the objective adds l2_strength times the L2 penalty
            of every weight (built under the same name scope, 'loss').
        """
        logits = self.logits(pixels, labels, dropout)
        with tf.name_scope('loss'):
            num_pixels = tf.cast(tf.shape(pixels)[1], tf.float32)
            loss = tf.reduce_mean(ops.nats_per_sequence(logits, pixels)) / num_pixels
            if not l2_strength:
                return loss, loss
            return loss, loss + l2_strength * tf.add_n([tf.nn.l2_loss(weight)
                                                        for weight in self.weights])

    def step_logits(self, token_taps, layer_taps, layer_conditions):
        """Logits of one incremental step, from the taps a generation store gives.

        Args:
            token_taps: the input convolution's initial_filter_width int taps [B], oldest
                first, the current token last.
            layer_taps: function(layer index, layer input [B, residual_channels]) -> that
                layer's filter_width taps, oldest first, the input itself last.
            layer_conditions: one conditioning term [B or 1, 2D] (or None) per layer.
        Returns:
            float [B, quantization_channels].
        """
        with tf.name_scope('input'):
            inputs = ops.embedding_taps(token_taps, self._matrices['tables'])
            biases = self._variables['input']['biases']
            if biases is not None:
                inputs += biases
        return self._stack(inputs, lambda index, _, layer_inputs: layer_taps(index, layer_inputs),
                           layer_conditions)

    def known_layer_inputs(self, prime_pixels, labels):
        """What each layer saw of the known pixels, from one pass of the full network.

        Args:
            prime_pixels: int [B, P] known first pixels (P may be 0).
            labels: int [B] classes, or None.
        Returns:
            (tokens int [B, P], the input tokens of positions 0..P-1; a list with each
            layer's inputs float [B, P, residual_channels]). The first generation step
            (position P) takes the last known pixel as its token.
        """
        tokens, inputs = self._full_inputs(prime_pixels)
        layer_inputs = []

        def record_inputs(index, dilation, layer_input):
            layer_inputs.append(layer_input)
            return self._delayed_copies(index, dilation, layer_input)

        self._stack(inputs, record_inputs, self._full_conditions(labels, tokens))
        return tokens, layer_inputs


class Mixture:
    """One WaveNetModel, or several scored and sampled as the mean of their distributions.

    Given the same earlier pixels every member gives a normalized distribution of the next
    pixel, and so does their equal-weight mean: the mixture is itself an autoregressive model
    with an exact likelihood, -log p(x) = -sum over t of log(mean over the members of
    p_k(x_t | x_<t)). A mixture of one model is that model unchanged.

    Args:
        models: a non-empty list of WaveNetModels with the same image size, channels,
            levels and class conditioning.
    """

    def __init__(self, models):
        self.models = list(models)
        first = self.models[0]
        self.params = first.params  # levels and conditioning are shared by every member
        self.image_size, self.channels = first.image_size, first.channels
        self.sequence_length, self.conditional = first.sequence_length, first.conditional

    def logits(self, pixels, labels=None):
        """Logits of every pixel given the pixels before it (and the class).

        Args:
            pixels: int [B, T] levels in raster order.
            labels: int [B] classes; required by class-conditional members.
        Returns:
            float [B, T, quantization_channels]: the one member's logits, or the log of the
            members' mean distribution.
        """
        return mixture_logits([model.logits(pixels, labels) for model in self.models])

    def nats_per_image(self, pixels, labels=None):
        """Negative log-likelihood of each image, float [B], from pixels int [B, T]."""
        return ops.nats_per_sequence(self.logits(pixels, labels), pixels)


def mixture_logits(member_logits):
    """Logits of one model or of the mixture of several, float [..., Q] each.

    One member's logits are returned as they are; several give the log of their
    equal-weight mean distribution (ops.mixture_log_probabilities).
    """
    if len(member_logits) == 1:
        return member_logits[0]
    return ops.mixture_log_probabilities(member_logits)
