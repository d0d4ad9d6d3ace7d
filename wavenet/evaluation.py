"""Exact negative log-likelihood of a set of images, in bits/dim.

Every sub-pixel of every image counts (no subsampling). Validation during training and
evaluate.py both score through a Scorer.
"""
import numpy as np
import tensorflow.compat.v1 as tf

from wavenet.errors import Error
from wavenet.ops import nats_to_bits


class Scorer:
    """The scoring graph of a model.Mixture (one model or an ensemble), in the current scope."""

    def __init__(self, mixture):
        self._pixels = tf.placeholder(tf.int32, [None, mixture.sequence_length], name='pixels')
        self._labels = (tf.placeholder(tf.int32, [None], name='labels') if mixture.conditional
                        else None)
        condition = None
        if mixture.condition_shape:  # derived from each scored image, as in training
            condition = mixture.derive_condition(tf.reshape(
                self._pixels, (-1,) + mixture.image_size + (mixture.channels,)))
        self._nats = mixture.nats_per_image(self._pixels, self._labels, condition)  # [B]

    def bits_per_dim(self, session, images, labels=None, batch_size=100, on_progress=None):
        """The average -log2 p over every sub-pixel of images uint8 [N, height, width](, 3)
        (an array, or a memory-mapped set read a batch at a time) with their labels int [N]
        for a class-conditional model, batch_size images per run; on_progress(images scored)
        after each. errors.Error when there is no image."""
        if not len(images):
            raise Error('there is no image to score')
        total_nats, total_pixels = 0.0, 0
        for start in range(0, len(images), batch_size):
            # One batch at a time: `images` may be a memory-mapped array larger than memory.
            batch = np.asarray(images[start:start + batch_size])
            feed = {self._pixels: batch.reshape(len(batch), -1)}
            if self._labels is not None:
                feed[self._labels] = labels[start:start + batch_size]
            total_nats += float(np.sum(session.run(self._nats, feed), dtype=np.float64))
            total_pixels += batch.size
            if on_progress is not None:
                on_progress(len(batch))
        return nats_to_bits(total_nats / total_pixels)
