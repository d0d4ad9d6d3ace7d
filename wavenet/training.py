"""The training graph: each step's batch, the loss, the optimizer and the step's summaries.

Everything random in a step (the batch, the shifts and symmetries of augmentation, the dropout
masks) is a function of the seed and the global step, so an interrupted run resumes exactly.
"""
import collections
import os

import numpy as np
import tensorflow.compat.v1 as tf

from wavenet import ops
from wavenet.errors import Error
from wavenet.batches import BatchOrder
from wavenet.model import Dropout

TrainingGraph = collections.namedtuple('TrainingGraph', [
    'global_step',     # int64 variable
    'step',            # int64 []: runs one optimizer step on every replica; the global
                       # step after it
    'loss',            # float32 []: the global batch's mean nats per sub-pixel (no L2 term)
    'learning_rate',   # float32 []: the step's learning rate
    'histograms',      # serialized Summary of every trainable variable, or None
    'stop_request',    # placeholder float32 [], default 0: this process asks to stop
    'stop_requested',  # float32 []: > 0 when any process of the run asked, at this step
    'averages',        # the tf.train.ExponentialMovingAverage of the weights, or None
])


def build_training_graph(model, images, labels, options, num_steps, strategy=None,
                         histograms=False):
    """Builds one training step of `model`, on one device or data-parallel on several.

    Every replica takes its slice of the step's global batch (the same images, shifts,
    symmetries and dropout masks a single device would use for those rows) and the optimizer
    applies the sum of the replicas' gradients of their share of the mean loss: R replicas
    follow the trajectory of one device with the same global batch. Call it under
    `strategy.scope()`, where the model's variables were created.

    Args:
        model: a WaveNetModel.
        images: uint8 [N, height, width] or [N, height, width, channels] levels, an array or
            an array-like that gives one for an index array (a memory-mapped dataset).
        labels: int32 [N] classes (used by a class-conditional model only).
        options: the run's record.TrainingOptions; its batch_size is the global batch.
        num_steps: the global step at which training ends (the cosine schedule reaches 0).
        strategy: a tf.distribute strategy, or None for one device.
        histograms: build a summary of every trainable variable's histogram.
    Returns:
        a TrainingGraph.
    """
    strategy = strategy or tf.distribute.get_strategy()
    global_step = tf.train.get_or_create_global_step()
    with tf.name_scope('optimizer') as optimizer_scope:
        learning_rate = (tf.train.cosine_decay(options.learning_rate, global_step, num_steps)
                         if options.learning_rate_schedule == 'cosine'
                         else tf.constant(options.learning_rate))
        optimizer = tf.train.AdamOptimizer(learning_rate)
    gather = _BatchGather(images, labels, options)

    def replica_step():
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync
        with tf.name_scope('train/'):
            replica = tf.get_static_value(context.replica_id_in_sync_group)  # a Python int
        loss, objective = _replica_loss(model, gather, global_step, options, int(replica),
                                        replicas)
        # The same scope again (not 'optimizer_1'): checkpoint keys such as
        # optimizer/beta1_power do not depend on the order the graph was built in.
        with tf.name_scope(optimizer_scope):
            # tf.train optimizers sum the replicas' gradients: each takes its share.
            train_op = optimizer.minimize(objective / replicas, global_step=global_step)
        with tf.control_dependencies([train_op]), tf.name_scope('train/'):
            # A copy on the replica's device: what the all-reduce sums.
            return (tf.identity(loss),
                    context.all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(stop_request)))

    with tf.name_scope('train/'):
        stop_request = tf.placeholder_with_default(0.0, [], name='stop_request')
    losses, stops = strategy.extended.call_for_each_replica(replica_step)
    with tf.name_scope('train/'):
        mean = tf.distribute.ReduceOp.MEAN
        loss, stop_requested = (strategy.reduce(mean, value, axis=None)
                                for value in (losses, stops))
    averages, after_step = None, [loss]
    if options.ema_decay:
        # Once per step, in cross-replica context, after every replica's update.
        with tf.name_scope('moving_averages'), tf.control_dependencies([loss]):
            averages = tf.train.ExponentialMovingAverage(options.ema_decay,
                                                         num_updates=global_step)
            after_step.append(averages.apply(model.trainable_variables))
    with tf.name_scope('train/'), tf.control_dependencies(after_step):
        step = tf.identity(global_step.read_value(), name='step')  # after the increment
    histograms = (tf.summary.merge([tf.summary.histogram('histograms/' + variable.op.name,
                                                         variable)
                                    for variable in tf.trainable_variables()])
                  if histograms else None)
    return TrainingGraph(global_step, step, loss, learning_rate, histograms, stop_request,
                         stop_requested, averages)


def _replica_loss(model, gather, global_step, options, replica, replicas):
    """(The loss, the objective) of one replica's slice of the step's batch, in nats per
    sub-pixel."""
    batch_size = options.batch_size // replicas
    first = replica * batch_size
    with tf.name_scope('data'):
        batch, batch_labels = gather(global_step, first, batch_size)
        images = tf.reshape(batch, (batch_size,) + model.image_size + (model.channels,))
        if options.augment_shift:
            offsets = ops.random_offsets(global_step, options.batch_size,
                                         options.augment_shift, options.seed)
            images = ops.translate_images(images, offsets[first:first + batch_size])
        symmetries = None
        if options.augment_symmetries:
            symmetries = ops.random_symmetries(global_step, options.batch_size,
                                               options.augment_symmetries,
                                               options.seed)[first:first + batch_size]
            images = ops.apply_symmetries(images, symmetries)
        batch = tf.reshape(images, tf.shape(batch))
        # The condition image of each (shifted, turned) image, as generation derives it.
        condition = model.derive_condition(images) if model.condition_shape else None
        # Dropout masks, like the batch, are a function of the seed and the step.
        dropout = Dropout(options.dropout,
                          ops.stateless_seed(options.seed, global_step),
                          first, options.batch_size)
    return model.loss(batch, batch_labels if model.conditional else None, condition, dropout,
                      options.l2_regularization_strength, symmetries)


class _BatchGather:
    """Gathers rows of a step's batch from images uint8 [N, height, width(, channels)] (an
    array, or a memory-mapped array-like) and labels int [N], with one tf.numpy_function; the
    order is a BatchOrder of options.batch_size and options.seed."""

    def __init__(self, images, labels, options):
        self._images, self._labels = images, np.asarray(labels, np.int32)
        self._sequence_length = int(np.prod(images.shape[1:]))
        self._order = BatchOrder(len(images), options.batch_size, options.seed)

    def _rows(self, step, first, count):
        """The images [count, T] and labels [count] of rows first.. of batch `step`."""
        indices = self._order.indices(step)[first:first + count]
        rows = np.asarray(self._images[indices]).reshape(count, self._sequence_length)
        return rows, self._labels[indices]

    def __call__(self, step, first, count):
        """Rows first .. first + count - 1 of the batch of `step` (a tensor)."""
        with tf.device('/device:CPU:0'):  # on a replica's host: a numpy function has no GPU kernel
            pixels, labels = tf.numpy_function(lambda value: self._rows(value, first, count),
                                               [step], [tf.uint8, tf.int32])
        pixels.set_shape([count, self._sequence_length])
        labels.set_shape([count])
        return tf.cast(pixels, tf.int32), labels


BASE_MEMORY = 2 ** 29  # bytes: TensorFlow and the rest of the process before any data


def estimate_memory(params, sequence_length, batch_size, num_images):
    """A rough estimate of the peak memory of training, in bytes: the process (BASE_MEMORY),
    `num_images` of `sequence_length` sub-pixels held in memory, and one step's float32
    activations for `batch_size` images (1.5 times what the forward pass writes, for what the
    backward pass keeps and adds)."""
    residual, dilation = params.residual_channels, params.dilation_channels
    layers = len(params.dilations)
    # Floats written per position: each layer's taps, filter and gate, gated output and
    # residual sum; the skip concatenation; the output stack and its softmax.
    per_position = (layers * (3 * residual + 5 * dilation) + layers * dilation
                    + 3 * params.skip_channels + 3 * params.quantization_channels)
    activations = 6 * per_position * sequence_length * batch_size
    return BASE_MEMORY + num_images * sequence_length + activations


def check_fits(run, image_size, num_images, on_gpus=False):
    """Refuses (errors.Error, saying what to lower) a run (a RunRecord) of images of
    image_size that cannot fit in this CPU's memory with num_images held in it (0 for a
    memory-mapped dataset); on GPUs, where TensorFlow reports their memory, without the
    activations."""
    height, width = image_size
    batch_size = run.training.batch_size
    needed = estimate_memory(run.params, height * width * run.channels,
                             0 if on_gpus else batch_size, num_images)
    available = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    if needed > available:
        raise Error('a run of %d images of %dx%d in batches of %d needs about %.1f GiB, and '
                    'this machine has %.1f GiB: lower the batch size or the image size, or use '
                    'smaller params' % (num_images, height, width, batch_size,
                                        needed / 2 ** 30, available / 2 ** 30))
