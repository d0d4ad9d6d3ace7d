"""The WaveNet: causal dilated convolutions over raster-ordered pixels.

One WaveNetModel owns the variables. Its full path (training, evaluation, naive generation)
and its incremental path (fast_generation.py) run the same layer code (`_stack`) on the same
variables; only the source of each layer's input taps differs. An Output turns the network's
parameters into a distribution of the next sub-pixel; a Mixture is one model, or several
scored and sampled as the mean of their distributions. Conditioning terms (the class, the
position of the sub-pixel, a condition image known in full) are added to every layer's filter
and gate.
"""
import collections
import copy

import tensorflow.compat.v1 as tf

from wavenet import ops

Dropout = collections.namedtuple('Dropout', [
    'rate',    # Python float in [0, 1): share of the gated activations set to zero
    'seed',    # int64 [2]: the masks are a function of this seed alone (and the layer)
    'first',   # Python int: the first row of the batch within the masks' rows ...
    'total',   # ... of `total` rows: a replica's slice of the global batch gets its rows
], defaults=(0, None))


class Output:
    """The distribution of a sub-pixel given the network's output parameters [..., size].

    'softmax': size Q, the logits of the Q levels. 'logistic_mixture': size 3K, the logits,
    means and log-scales of K logistics discretized to the Q levels (ops.py). At temperature
    T a softmax samples from logits / T; a logistic mixture draws its component from
    logits / T and scales the logistic by T.
    """

    def __init__(self, params):
        self.kind, self.levels = params.output, params.quantization_channels
        self.size = (self.levels if self.kind == 'softmax' else 3 * params.mixture_components)

    def combine(self, member_parameters):
        """The parameters of the equal-weight mean of several members' distributions."""
        if len(member_parameters) == 1:
            return member_parameters[0]
        if self.kind == 'softmax':
            return ops.mixture_log_probabilities(member_parameters)
        return ops.merge_logistic_mixtures(member_parameters)

    def logits(self, parameters):
        """Logits (or normalized log-probabilities) of the levels, float [..., Q]."""
        if self.kind == 'softmax':
            return parameters
        return ops.logistic_mixture_log_probabilities(parameters, self.levels)

    def nats(self, parameters, pixels):
        """-ln p of each sub-pixel, float32 [B, T], from parameters [B, T, size]."""
        if self.kind == 'softmax':
            return tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.cast(pixels, tf.int32), logits=parameters)
        return -ops.logistic_mixture_log_likelihood(parameters, pixels, self.levels)

    def sample(self, parameters, temperature, argmax):
        """int32 [B] levels drawn from parameters [B, size] at `temperature`, or the
        likeliest ones where the bool tensor `argmax` is true."""
        def likeliest():
            return tf.argmax(self.logits(parameters), axis=-1, output_type=tf.int32)

        def drawn():
            if self.kind == 'softmax':
                return tf.random.categorical(parameters / temperature, 1, dtype=tf.int32)[:, 0]
            return ops.sample_logistic_mixture(parameters, self.levels, temperature)
        # Only the branch taken runs: a mixture's table of every level's probability is
        # computed only for argmax.
        return tf.cond(argmax, likeliest, drawn)


class _Scored:
    """What a model or a mixture gives of images through its `parameters` and `output`."""

    def logits(self, pixels, labels=None, condition=None):
        """Level logits [B, T, Q] of every sub-pixel given the earlier ones (Output.logits)."""
        return self.output.logits(self.parameters(pixels, labels, condition))

    def nats_per_image(self, pixels, labels=None, condition=None):
        """Negative log-likelihood of each image, float [B], from pixels int [B, T]."""
        return tf.reduce_sum(self.output.nats(self.parameters(pixels, labels, condition),
                                              pixels), axis=1)


class WaveNetModel(_Scored):
    """Creates the variables of a WaveNet and builds graphs that use them.

    An image is one sequence of T = height * width * channels levels in raster order, the
    channels of a pixel (R, G, B) next to each other.

    Args:
        params: a WaveNetParams.
        image_size: (height, width) of the images.
        num_classes: number of classes (for class conditioning, gc_channels > 0).
        channels: 1 (grayscale) or 3 (RGB: the channel's embedding joins the position's).
        name: variable scope of every variable.
        symmetries: whether training turns images (ops.apply_symmetries) and tells the model
            which symmetry each has, by a learned term per symmetry and layer (none for the
            image as it is, so that evaluation and generation need no symmetry).

    Attributes:
        weights: every weight matrix and table (no biases): the targets of L2.
        output: the Output of the params.
        condition_shape: (h, w, c) of the condition image, or None.
    """

    def __init__(self, params, image_size, num_classes=0, channels=1, name='wavenet',
                 symmetries=False):
        if params.gc_channels and num_classes < 1:
            raise ValueError('class conditioning (gc_channels=%d) needs at least one class'
                             % params.gc_channels)
        if channels > 1 and not params.position_channels:
            raise ValueError('a colour model needs position_channels > 0: the channel of '
                             'each sub-pixel is fed through the position conditioning')
        self.params, self.image_size, self.channels = params, tuple(image_size), channels
        self.sequence_length = self.image_size[0] * self.image_size[1] * channels
        self.num_classes = num_classes if params.gc_channels else 0
        self.symmetries = symmetries
        self.start_token = params.quantization_channels
        self.output = Output(params)
        self.condition_shape = params.condition_shape(self.image_size, channels)
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
    def trainable_variables(self):
        """Every trainable variable of the model."""
        return [variable for variable in tf.nest.flatten(self._variables)
                if variable is not None]

    def averaged(self, moving_averages):
        """This model with the averages of a tf.train.ExponentialMovingAverage in place of its
        trainable variables (for validation and samples)."""
        twin = copy.copy(self)
        twin._variables = tf.nest.map_structure(  # pylint: disable=protected-access
            lambda variable: variable if variable is None or not variable.trainable
            else moving_averages.average(variable), self._variables)
        twin._combined = {}  # pylint: disable=protected-access
        return twin

    @property
    def _matrices(self):
        """The weights in the layout the stack multiplies by, built at their first use in a
        graph and replica: outside fast generation's loop, from each replica's own copy."""
        context = tf.distribute.get_replica_context()
        with tf.name_scope(self._combined_scope):
            replica = 0 if context is None else int(tf.get_static_value(
                context.replica_id_in_sync_group))
            if replica not in self._combined:
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
        projections = {'class_projection': params.gc_channels if self.conditional else 0,
                       'position_projection': params.position_channels,
                       'condition_projection': (params.condition_channels
                                                if self.condition_shape else 0)}
        for index, _ in enumerate(params.dilations):
            with tf.variable_scope('layer%d' % index):
                layer = {'filter_gate': self._weight('filter_gate', [params.filter_width,
                                                                     residual, 2 * dilation]),
                         'filter_gate_biases': self._bias('filter_gate_biases', [2 * dilation]),
                         'skip': self._weight('skip', [dilation, skip]),
                         'skip_biases': self._bias('skip_biases', [skip])}
                for name, size in projections.items():
                    if size:
                        layer[name] = self._weight(name, [size, 2 * dilation])
                if index < len(params.dilations) - 1:
                    # The last layer's residual output would feed nothing.
                    layer['dense'] = self._weight('dense', [dilation, residual])
                    layer['dense_biases'] = self._bias('dense_biases', [residual])
                variables['layers'].append(layer)
        size = self.output.size
        with tf.variable_scope('output'):
            variables['output'] = {
                'hidden': self._weight('hidden', [skip, skip]),
                'hidden_biases': self._bias('hidden_biases', [skip]),
                'logits': self._weight('logits', [skip, size]),
                'logits_biases': self._bias('logits_biases', [size]),
                'bump_logits': (self._weight('bump_logits', [skip, bumps], zeros)
                                if bumps and params.output == 'softmax' else None)}
        return variables

    def _create_conditioning(self):
        """The class, row, column and channel embeddings, the condition network (or None)."""
        (height, width), params = self.image_size, self.params
        size = params.position_channels
        embeddings = {
            'classes': (self._weight('class_embedding', [self.num_classes, params.gc_channels])
                        if self.conditional else None),
            'rows': self._weight('row_embedding', [height, size]) if size else None,
            'columns': self._weight('column_embedding', [width, size]) if size else None,
            'channels': (self._weight('channel_embedding', [self.channels, size])
                         if self.channels > 1 else None),
            'symmetries': (self._weight('symmetry_terms', [
                ops.NUM_SYMMETRIES - 1, 2 * params.dilation_channels * len(params.dilations)],
                tf.zeros_initializer()) if self.symmetries else None)}
        if self.condition_shape:
            features, condition_channels = params.condition_channels, self.condition_shape[2]
            embeddings['condition'] = {
                'tables': self._weight('condition_tables', [condition_channels,
                                                            params.quantization_channels,
                                                            features]),
                'filters': [self._weight('condition_filters%d' % index,
                                         [3, 3, features, features]) for index in range(3)],
                'biases': [self._bias('condition_biases%d' % index, [features])
                           for index in range(3)]}
        return embeddings

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
            if self._variables['output']['bump_logits'] is not None:
                logits = logits + tf.matmul(self._variables['output']['bump_logits'], bumps)
        projections = [key for key in ('class_projection', 'position_projection',
                                       'condition_projection') if key in layers[0]]
        return {
            'tables': tables,  # [initial_filter_width, levels + 1, residual]
            'logits': logits,  # [skip, output size]
            'filter_gate': [ops.filter_matrix(layer['filter_gate']) for layer in layers],
            # Every layer's conditioning projection side by side: one product for all layers.
            **{key: tf.concat([layer[key] for layer in layers], axis=1) for key in projections},
            # The sum of every layer's skip projection is one product with these.
            'skip': tf.concat([layer['skip'] for layer in layers], axis=0),
            'skip_biases': (tf.add_n([layer['skip_biases'] for layer in layers])
                            if self.params.use_biases else None)}

    def derive_condition(self, images):
        """The condition images, int32 [B] + condition_shape, of images int [B, height, width,
        channels]: averaged over F x F blocks ('lowres:F'), or their luminance ('gray')."""
        if self.params.local_condition == 'gray':
            return ops.luminance(images)
        return ops.block_average(images, self.params.condition_factor)

    def features_of(self, condition):
        """Features float [B, T, condition_channels] of each sub-pixel from condition images
        int [B] + condition_shape, through a small non-causal network: an embedding of the
        levels, two 3x3 convolutions, nearest-neighbour upsampling, a third 3x3 convolution."""
        network = self._variables['conditioning']['condition']
        factor = self.params.condition_factor
        with tf.name_scope('local_condition'):
            features = tf.add_n([tf.gather(network['tables'][index], condition[..., index])
                                 for index in range(self.condition_shape[2])])  # [B, h, w, C]
            for index, (filters, biases) in enumerate(zip(network['filters'],
                                                          network['biases'])):
                if index == 2:
                    features = tf.repeat(tf.repeat(features, factor, axis=1), factor, axis=2)
                features = tf.nn.conv2d(features, filters, 1, 'SAME')
                features = features if biases is None else features + biases
                features = tf.nn.relu(features) if index < 2 else features
            features = tf.reshape(features, [tf.shape(features)[0], -1,
                                             self.params.condition_channels])  # [B, H W, C]
            return tf.repeat(features, self.channels, axis=1)  # [B, T, C]

    def conditioning(self, labels, positions, features=None):
        """Every layer's conditioning terms, side by side: [..., L * 2D] for L layers, to be
        broadcast into a sum (layer_conditions).

        Args:
            labels: int [B] classes, or None for an unconditional model.
            positions: int [T] positions of the predicted sub-pixels in the sequence.
            features: float [B, T, condition_channels] (features_of), or None.
        Returns:
            (class term float [B, L * 2D], position term float [T, L * 2D], condition term
            float [B, T, L * 2D]), each None where unused.
        """
        embeddings = self._variables['conditioning']
        class_term = position_term = condition_term = None
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
        if features is not None:
            condition_term = self.condition_term(features)
        return class_term, position_term, condition_term

    def condition_term(self, features):
        """Every layer's condition terms [..., L * 2D] from features [..., condition_channels]."""
        return ops.dense(features, self._matrices['condition_projection'])

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

    def _full_conditions(self, labels, sequences, condition, symmetries=None):
        """Per-layer conditioning of sequences [B, T], turned by symmetries int32 [B] (or
        None: none): [B or 1, T or 1, 2D] (or None) each."""
        if (condition is None) != (self.condition_shape is None):
            raise ValueError('a locally conditioned model needs a condition, and only it')
        if symmetries is not None and not self.symmetries:
            raise ValueError('this model has no symmetry terms: build it with symmetries=True')
        with tf.name_scope('conditioning'):
            length = tf.shape(sequences)[1]
            features = (None if condition is None else
                        self.features_of(condition)[:, :length])  # [B, T, C]
            class_term, position_term, condition_term = self.conditioning(
                labels, tf.range(length), features)
            terms = self._variables['conditioning']['symmetries']
            symmetry_term = (None if symmetries is None else  # symmetry 0 has no term
                             tf.gather(tf.pad(terms, [[1, 0], [0, 0]]), symmetries)[:, None])
            return self.layer_conditions(None if class_term is None else class_term[:, None],
                                         None if position_term is None else position_term[None],
                                         condition_term, symmetry_term)

    def _stack(self, inputs, layer_taps, layer_conditions, dropout=None):
        """Runs the residual layers and the output stack.

        Args:
            inputs: float [..., residual_channels], output of the input convolution.
            layer_taps: function (layer index, dilation, layer input [..., residual_channels])
                -> the layer's filter_width taps, oldest first, each [..., residual_channels].
            layer_conditions: one term [..., 2D] (or None) per layer (layer_conditions).
            dropout: optional Dropout of every layer's gated activations.
        Returns:
            float [..., output.size]: the parameters of the next sub-pixel's distribution.
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
        """(The input tokens int32 [B, T]: the start token, then pixels[:, :-1]; the input
        convolution's outputs float [B, T, residual_channels]) of pixels int [B, T]."""
        with tf.name_scope('input'):
            tokens = ops.shift_in_start_token(tf.cast(pixels, tf.int32), self.start_token)
            outputs = ops.causal_embedding_conv(tokens, self._matrices['tables'],
                                                self.start_token)
            biases = self._variables['input']['biases']
            return tokens, outputs if biases is None else outputs + biases

    def _delayed_copies(self, _, dilation, layer_inputs):
        """Full-path taps of a layer: its inputs [B, T, C] delayed (ops.causal_taps)."""
        return ops.causal_taps(layer_inputs, self.params.filter_width, dilation)

    def parameters(self, pixels, labels=None, condition=None, dropout=None, symmetries=None):
        """The output parameters float [B, T, output.size] of every sub-pixel of pixels int
        [B, T] (T up to height * width * channels): position t depends on pixels[:, :t] only,
        and on all of the condition int [B] + condition_shape; labels int [B] are the
        classes; each is required by the model that is conditioned so, and None otherwise;
        symmetries int32 [B] say how training turned each image (a symmetries model only)."""
        _, inputs = self._full_inputs(pixels)
        return self._stack(inputs, self._delayed_copies,
                           self._full_conditions(labels, pixels, condition, symmetries), dropout)

    def loss(self, pixels, labels=None, condition=None, dropout=None, l2_strength=0.0,
             symmetries=None):
        """(The mean negative log-likelihood per sub-pixel in nats, the objective: that plus
        l2_strength times the weights' L2 penalty), both under the name scope 'loss'; the
        other arguments as in parameters."""
        parameters = self.parameters(pixels, labels, condition, dropout, symmetries)
        with tf.name_scope('loss'):
            loss = tf.reduce_mean(self.output.nats(parameters, pixels))
            if not l2_strength:
                return loss, loss
            return loss, loss + l2_strength * tf.add_n([tf.nn.l2_loss(weight)
                                                        for weight in self.weights])

    def step_parameters(self, token_taps, layer_taps, layer_conditions):
        """Output parameters float [B, output.size] of one incremental step, from the taps a
        generation store gives: token_taps, the input convolution's int [B] taps, oldest first;
        layer_taps(layer index, input [B, residual_channels]), each layer's taps, the input
        last; layer_conditions, one term [B or 1, 2D] (or None) per layer."""
        with tf.name_scope('input'):
            inputs = ops.embedding_taps(token_taps, self._matrices['tables'])
            biases = self._variables['input']['biases']
            if biases is not None:
                inputs += biases
        return self._stack(inputs, lambda index, _, layer_inputs: layer_taps(index, layer_inputs),
                           layer_conditions)

    def known_layer_inputs(self, prime_pixels, labels, condition):
        """What each layer saw of the known first pixels int [B, P] (P may be 0), from one
        pass of the full network: (the input tokens int [B, P], each layer's inputs float
        [B, P, residual_channels]). Generation's first step takes the last known pixel."""
        tokens, inputs = self._full_inputs(prime_pixels)
        layer_inputs = []

        def record_inputs(index, dilation, layer_input):
            layer_inputs.append(layer_input)
            return self._delayed_copies(index, dilation, layer_input)

        self._stack(inputs, record_inputs, self._full_conditions(labels, tokens, condition))
        return tokens, layer_inputs


class Mixture(_Scored):
    """One WaveNetModel, or several scored and sampled as the mean of their distributions:
    itself an autoregressive model with an exact likelihood, -log p(x) = -sum over t of
    log(mean over the members of p_k(x_t | x_<t)).

    Args:
        models: a non-empty list of WaveNetModels with the same image size, channels,
            levels, output, and class and local conditioning.
    """

    def __init__(self, models):
        self.models = list(models)
        first = self.models[0]
        self.params, self.output = first.params, first.output  # shared by every member
        self.image_size, self.channels = first.image_size, first.channels
        self.sequence_length, self.conditional = first.sequence_length, first.conditional
        self.condition_shape, self.derive_condition = (first.condition_shape,
                                                       first.derive_condition)

    def parameters(self, pixels, labels=None, condition=None):
        """The output parameters [B, T, size] of the mixture of the members (Output.combine)."""
        return self.output.combine([model.parameters(pixels, labels, condition)
                                    for model in self.models])
