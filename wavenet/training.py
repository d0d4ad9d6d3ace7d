"""The training graph: each step's batch, the loss, the optimizer and the step's summaries.

Everything random in a step (the batch, the shifts of augmentation, the dropout masks) is a
function of the seed and the global step, so an interrupted run resumes exactly.
"""
import collections
import dataclasses
import os

import tensorflow.compat.v1 as tf

from wavenet import ops
from wavenet.model import Dropout

OPTIMIZERS = ('adam', 'sgd', 'rmsprop')
SCHEDULES = ('constant', 'cosine')


@dataclasses.dataclass(frozen=True)
class Optimization:
    """How to train.

    Attributes:
        batch_size: images per step.
        num_steps: the global step at which training ends (the cosine schedule reaches 0).
        learning_rate: the initial learning rate.
        schedule: one of SCHEDULES: constant, or cosine decay to zero at num_steps.
        optimizer: one of OPTIMIZERS.
        momentum: momentum of sgd and rmsprop.
        l2_regularization_strength: weight of the L2 penalty on the model's weights.
        dropout: share of every layer's gated activations dropped, in [0, 1).
        augment_shift: largest translation of a training image, in pixels, each direction.
        seed: seed of the data order, the shifts and the dropout masks.
    """
    batch_size: int = 16
    num_steps: int = 4000
    learning_rate: float = 2e-3
    schedule: str = 'cosine'
    optimizer: str = 'adam'
    momentum: float = 0.9
    l2_regularization_strength: float = 5e-5
    dropout: float = 0.0
    augment_shift: int = 0
    seed: int = 0


TrainingGraph = collections.namedtuple('TrainingGraph', [
    'global_step',       # int64 variable
    'train_op',          # one optimizer step; increments global_step
    'loss',              # float32 []: the batch's mean nats per sub-pixel (no L2 term)
    'learning_rate',     # float32 []: the step's learning rate
    'histograms',        # serialized Summary of every trainable variable, or None
    'data_initializer',  # op that loads the training set into the graph ...
    'data_feed',         # ... with this feed dict
])


def build_training_graph(model, images, labels, optimization, histograms=False):
    """Builds one training step of `model` over a training set held in the graph.

    Args:
        model: a WaveNetModel.
        images: uint8 [N, height, width] or [N, height, width, channels] levels.
        labels: int32 [N] classes (used by a class-conditional model only).
        optimization: an Optimization.
        histograms: build a summary of every trainable variable's histogram.
    Returns:
        a TrainingGraph.
    """
    global_step = tf.train.get_or_create_global_step()
    with tf.name_scope('data'):
        batch, batch_labels, data_initializer, data_feed = _batch(
            images, labels, global_step, optimization)
        # Dropout masks, like the batch, are a function of the seed and the step.
        dropout = Dropout(optimization.dropout,
                          ops.stateless_seed(optimization.seed, global_step))
    loss = model.loss(batch, batch_labels if model.conditional else None, dropout)
    with tf.name_scope('optimizer'):
        if optimization.schedule == 'cosine':
            learning_rate = tf.train.cosine_decay(optimization.learning_rate, global_step,
                                                  optimization.num_steps)
        else:
            learning_rate = tf.constant(optimization.learning_rate)
        objective = loss
        if optimization.l2_regularization_strength > 0:
            objective += optimization.l2_regularization_strength * tf.add_n(
                [tf.nn.l2_loss(weight) for weight in model.weights])
        train_op = make_optimizer(optimization, learning_rate).minimize(
            objective, global_step=global_step)
    histograms = (tf.summary.merge([tf.summary.histogram('histograms/' + variable.op.name,
                                                         variable)
                                    for variable in tf.trainable_variables()])
                  if histograms else None)
    return TrainingGraph(global_step, train_op, loss, learning_rate, histograms,
                         data_initializer, data_feed)


def _batch(images, labels, global_step, optimization):
    """The batch of the global step, from a training set held in local variables.

    Returns:
        (pixels int32 [B, T], labels int32 [B], the initializer of the variables, its feed).
    """
    count = len(images)
    flat = images.reshape(count, -1)  # [N, T]: raster order, a pixel's channels together
    images_input = tf.placeholder(tf.uint8, flat.shape, name='images_input')
    labels_input = tf.placeholder(tf.int32, [count], name='labels_input')
    stored_images, stored_labels = (
        tf.Variable(initial, trainable=False, name=name,
                    collections=[tf.GraphKeys.LOCAL_VARIABLES])
        for initial, name in [(images_input, 'train_images'), (labels_input, 'train_labels')])
    indices = ops.shuffled_batch_indices(global_step, count, optimization.batch_size,
                                         optimization.seed)
    batch = tf.gather(stored_images, indices)  # [B, T] uint8
    if optimization.augment_shift:
        offsets = ops.random_offsets(global_step, optimization.batch_size,
                                     optimization.augment_shift, optimization.seed)
        shaped = tf.reshape(batch, (optimization.batch_size,) + images.shape[1:3] + (-1,))
        batch = tf.reshape(ops.translate_images(shaped, offsets), tf.shape(batch))
    initializer = tf.group(stored_images.initializer, stored_labels.initializer)
    return (tf.cast(batch, tf.int32), tf.gather(stored_labels, indices), initializer,
            {images_input: flat, labels_input: labels})


def make_optimizer(optimization, learning_rate):
    """The tf.train optimizer that `optimization` names, at `learning_rate`."""
    if optimization.optimizer == 'adam':
        return tf.train.AdamOptimizer(learning_rate)
    if optimization.optimizer == 'sgd':
        return tf.train.MomentumOptimizer(learning_rate, optimization.momentum)
    if optimization.optimizer == 'rmsprop':
        return tf.train.RMSPropOptimizer(learning_rate, momentum=optimization.momentum,
                                         epsilon=1e-5)
    raise ValueError('optimizer must be one of %s, got %r' % (OPTIMIZERS,
                                                             optimization.optimizer))


BASE_MEMORY = 2 ** 29  # bytes: TensorFlow and the rest of the process before any data


def estimate_memory(params, sequence_length, batch_size, num_images):
    """A rough estimate of the peak memory of training, in bytes.

    The process itself (BASE_MEMORY), the training set twice (the numpy arrays and the graph
    variable) and one step's activations (float32, 1.5 times the floats the forward pass
    writes per position, for what the backward pass keeps and adds). Against the measured
    peak RSS: 1.0 GB for 1.3 GB (default params, batch 16, train.py on the digits); 1.5 GB
    for 1.1 GB (default params, batch 32) and 1.6 GB for 1.2 GB (benchmarks/params/anchor.json,
    batch 32), both from benchmarks/run.py.

    Args:
        params: the WaveNetParams.
        sequence_length: sub-pixels per image, T.
        batch_size: images per step.
        num_images: training images.
    """
    residual, dilation = params.residual_channels, params.dilation_channels
    layers = len(params.dilations)
    # Floats written per position: each layer's taps, filter and gate, gated output and
    # residual sum; the skip concatenation; the output stack and its softmax.
    per_position = (layers * (3 * residual + 5 * dilation) + layers * dilation
                    + 3 * params.skip_channels + 3 * params.quantization_channels)
    activations = 6 * per_position * sequence_length * batch_size
    return BASE_MEMORY + 2 * num_images * sequence_length + activations


def physical_memory():
    """This machine's physical memory in bytes."""
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
