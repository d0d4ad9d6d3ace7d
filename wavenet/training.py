"""The training graph: each step's batch, the loss, the optimizer and the step's summaries.

Everything random in a step (the batch, the shifts of augmentation, the dropout masks) is a
function of the seed and the global step, so an interrupted run resumes exactly.
"""
import collections
import dataclasses
import os

import numpy as np
import tensorflow.compat.v1 as tf

from wavenet import ops
from wavenet.batches import BatchOrder
from wavenet.model import Dropout

OPTIMIZERS = ('adam', 'sgd', 'rmsprop')


@dataclasses.dataclass(frozen=True)
class Optimization:
    """How to train.

    Attributes:
        batch_size: images per step.
        num_steps: the global step at which training ends (the cosine schedule reaches 0).
        learning_rate: the initial learning rate.
        schedule: 'constant', or 'cosine' decay to zero at num_steps.
        optimizer: one of OPTIMIZERS.
        momentum: momentum of sgd and rmsprop.
        l2_regularization_strength: weight of the L2 penalty on the model's weights.
        dropout: share of every layer's gated activations dropped, in [0, 1).
        augment_shift: largest translation of a training image, in pixels, each direction.
        seed: seed of the data order, the shifts and the dropout masks.
    """
    batch_size: int
    num_steps: int
    learning_rate: float
    schedule: str
    optimizer: str
    momentum: float
    l2_regularization_strength: float
    dropout: float
    augment_shift: int
    seed: int


TrainingGraph = collections.namedtuple('TrainingGraph', [
    'global_step',     # int64 variable
    'step',            # int64 []: runs one optimizer step on every replica; the global
                       # step after it
    'loss',            # float32 []: the global batch's mean nats per sub-pixel (no L2 term)
    'learning_rate',   # float32 []: the step's learning rate
    'histograms',      # serialized Summary of every trainable variable, or None
    'stop_request',    # placeholder float32 [], default 0: this process asks to stop
    'stop_requested',  # float32 []: > 0 when any process of the run asked, at this step
])


def build_training_graph(model, images, labels, optimization, strategy=None,
                         histograms=False):
    """Builds one training step of `model`, on one device or data-parallel on several.

    Every replica takes its slice of the step's global batch (the same images, shifts and
    dropout masks a single device would use for those rows) and the optimizer applies the
    sum of the replicas' gradients of their share of the mean loss: R replicas follow the
    trajectory of one device with the same global batch. Call it under `strategy.scope()`,
    where the model's variables were created.

    Args:
        model: a WaveNetModel.
        images: uint8 [N, height, width] or [N, height, width, channels] levels, an array or
            an array-like that gives one for an index array (a memory-mapped dataset).
        labels: int32 [N] classes (used by a class-conditional model only).
        optimization: an Optimization; its batch_size is the global batch.
        strategy: a tf.distribute strategy, or None for one device.
        histograms: build a summary of every trainable variable's histogram.
    Returns:
        a TrainingGraph.
    """
    strategy = strategy or tf.distribute.get_strategy()
    global_step = tf.train.get_or_create_global_step()
    with tf.name_scope('optimizer') as optimizer_scope:
        if optimization.schedule == 'cosine':
            learning_rate = tf.train.cosine_decay(optimization.learning_rate, global_step,
                                                  optimization.num_steps)
        else:
            learning_rate = tf.constant(optimization.learning_rate)
        optimizer = make_optimizer(optimization, learning_rate)
    gather = _BatchGather(images, labels, optimization)

    def replica_step():
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync
        with tf.name_scope('train/'):
            replica = tf.get_static_value(context.replica_id_in_sync_group)  # a Python int
        loss, objective = _replica_loss(model, gather, global_step, optimization, int(replica),
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
        with tf.control_dependencies([loss]):
            step = tf.identity(global_step.read_value(), name='step')  # after the increment
    histograms = (tf.summary.merge([tf.summary.histogram('histograms/' + variable.op.name,
                                                         variable)
                                    for variable in tf.trainable_variables()])
                  if histograms else None)
    return TrainingGraph(global_step, step, loss, learning_rate, histograms, stop_request,
                         stop_requested)


def _replica_loss(model, gather, global_step, optimization, replica, replicas):
    """The loss of one replica's slice of the step's batch, in nats per sub-pixel."""
    batch_size = optimization.batch_size // replicas
    first = replica * batch_size
    with tf.name_scope('data'):
        batch, batch_labels = gather(global_step, first, batch_size)
        if optimization.augment_shift:
            offsets = ops.random_offsets(global_step, optimization.batch_size,
                                         optimization.augment_shift, optimization.seed)
            shaped = tf.reshape(batch, [batch_size] + gather.image_shape)
            batch = tf.reshape(ops.translate_images(shaped, offsets[first:first + batch_size]),
                               tf.shape(batch))
        # Dropout masks, like the batch, are a function of the seed and the step.
        dropout = Dropout(optimization.dropout,
                          ops.stateless_seed(optimization.seed, global_step),
                          first, optimization.batch_size)
    return model.loss(batch, batch_labels if model.conditional else None, dropout,
                      optimization.l2_regularization_strength)


class _BatchGather:
    """Gathers rows of a step's batch from the training set with one tf.numpy_function.

    Args:
        images: uint8 [N, height, width(, channels)] levels (an array or a memory-mapped
            array-like).
        labels: int [N].
        optimization: the Optimization (batch size and seed).
    """

    def __init__(self, images, labels, optimization):
        self._images, self._labels = images, np.asarray(labels, np.int32)
        self.image_shape = list(images.shape[1:3]) + [-1]  # [height, width, channels]
        self._sequence_length = int(np.prod(images.shape[1:]))
        self._order = BatchOrder(len(images), optimization.batch_size, optimization.seed)

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


def make_optimizer(optimization, learning_rate):
    """The tf.train optimizer that `optimization` names, at `learning_rate`."""
    if optimization.optimizer == 'adam':
        return tf.train.AdamOptimizer(learning_rate)
    if optimization.optimizer == 'sgd':
        return tf.train.MomentumOptimizer(learning_rate, optimization.momentum)
    if optimization.optimizer == 'rmsprop':
        return tf.train.RMSPropOptimizer(learning_rate, momentum=optimization.momentum,
                                         epsilon=1e-5)
    raise ValueError('optimizer must be one of %s, got %r'
                     % (OPTIMIZERS, optimization.optimizer))


BASE_MEMORY = 2 ** 29  # bytes: TensorFlow and the rest of the process before any data


def estimate_memory(params, sequence_length, batch_size, num_images):
    """A rough estimate of the peak memory of training, in bytes.

    The process itself (BASE_MEMORY), the training set (read into memory; none for a
    memory-mapped prepared dataset) and one step's activations (float32, 1.5 times the
    floats the forward pass writes per position, for what the backward pass keeps and
    adds). Against the measured
    peak RSS: 1.0 GB for 1.3 GB (default params, batch 16, train.py on the digits); 1.5 GB
    for 1.1 GB (default params, batch 32) and 1.6 GB for 1.2 GB (benchmarks/params/anchor.json,
    batch 32), both from benchmarks/run.py.

    Args:
        params: the WaveNetParams.
        sequence_length: sub-pixels per image, T.
        batch_size: images per step.
        num_images: training images held in memory.
    """
    residual, dilation = params.residual_channels, params.dilation_channels
    layers = len(params.dilations)
    # Floats written per position: each layer's taps, filter and gate, gated output and
    # residual sum; the skip concatenation; the output stack and its softmax.
    per_position = (layers * (3 * residual + 5 * dilation) + layers * dilation
                    + 3 * params.skip_channels + 3 * params.quantization_channels)
    activations = 6 * per_position * sequence_length * batch_size
    return BASE_MEMORY + num_images * sequence_length + activations


def physical_memory():
    """This machine's physical memory in bytes."""
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
