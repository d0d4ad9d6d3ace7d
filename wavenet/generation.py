"""Sampling images from a model.Mixture: one factory for the fast and the naive path.

generate.py, train.py (its sample grids) and the benchmarks all draw images through
build_sampler. The fast path steps every layer once per pixel (wavenet/fast_generation.py);
the naive path runs the whole network once per pixel, for checking. Both sample inside the
graph (tf.random.categorical), so tf.set_random_seed makes either repeatable.
"""
import os

import numpy as np
import tensorflow.compat.v1 as tf

from wavenet import fast_generation

# Images per lane below which one lane is faster than one lane per core (measured on 2 CPU
# cores: 16 images in one lane 44 images/s, in two 38; 32 images in one lane 50, in two 66).
MIN_IMAGES_PER_LANE = 16


def available_cores():
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def lanes_for(batch_size, cores):
    """Lanes of fast generation for a batch: one per core, if each gets enough images."""
    return max(1, min(cores, batch_size // MIN_IMAGES_PER_LANE))


def session_config(lanes):
    """The session of fast generation in `lanes` lanes: one thread per lane, one per op.

    Small ops (the per-pixel matrix products of a batch) run faster on one thread than split
    across several; the lanes keep every core busy instead.
    """
    return tf.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=lanes)


def check_temperature(temperature):
    """Raises ValueError unless the temperature is a positive finite number."""
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError('temperature must be a positive number, got %r' % temperature)


def build_sampler(mixture, batch_size, fast=True, state=fast_generation.STATES[0],
                  lanes=None):
    """Builds the sampling graph of a mixture in the current graph.

    Args:
        mixture: a model.Mixture (one model or an ensemble).
        batch_size: Python int, images sampled at once.
        fast: incremental generation (True) or the whole network per pixel.
        state: the fast path's store, one of fast_generation.STATES.
        lanes: the fast path's lanes (default: lanes_for the batch on this machine's cores).
    Returns:
        a Sampler.
    """
    if fast:
        lanes = lanes or lanes_for(batch_size, available_cores())
        return _FastSampler(fast_generation.build_fast_generator(
            mixture, batch_size, state=state, lanes=lanes), mixture.sequence_length, lanes)
    with tf.name_scope('generation'):
        return _NaiveSampler(mixture, batch_size)


class Sampler:
    """Draws a batch of images in a session whose graph holds the sampler.

    The fast and the naive sampler differ in `_run`, which fills in the pixels after the
    known ones.

    Attributes:
        batch_size: images per batch.
        config: the tf.ConfigProto to open the session with (None: TensorFlow's default).
    """

    def __init__(self, labels_input, batch_size, num_pixels, config):
        self._labels_input, self._num_pixels = labels_input, num_pixels
        self.batch_size, self.config = batch_size, config

    def sample(self, session, labels=None, prime_pixels=None, temperature=1.0, argmax=False,
               pixels_per_run=None, on_progress=None):
        """Samples a batch of whole images.

        Args:
            session: a Session with the model's variables restored.
            labels: int [B] classes, for a class-conditional model only.
            prime_pixels: optional int [B, P] known first pixels (P < T), kept as they are.
            temperature: softmax temperature, > 0.
            argmax: take the likeliest level instead of sampling.
            pixels_per_run: the fast path's pixels per session.run (default: all at once).
            on_progress: optional function(pixels done, pixels so far [B, done]).
        Returns:
            int32 [B, T] pixel levels.
        """
        check_temperature(temperature)
        feed = self._label_feed(labels)
        pixels = np.zeros((self.batch_size, self._num_pixels), np.int32)
        done = 0
        if prime_pixels is not None:
            done = np.shape(prime_pixels)[1]
            pixels[:, :done] = prime_pixels
        self._run(session, pixels, done, feed, temperature, argmax,
                  pixels_per_run or self._num_pixels, on_progress)
        return pixels

    def _label_feed(self, labels):
        """The feed of the labels placeholder; ValueError when labels and model disagree."""
        if self._labels_input is None:
            if labels is not None:
                raise ValueError('this model is not class-conditional: it takes no labels')
            return {}
        if labels is None:
            raise ValueError('this model is class-conditional: labels are required')
        return {self._labels_input: np.asarray(labels, np.int32)}


class _FastSampler(Sampler):
    """Sampler of a fast_generation.FastGenerator, in runs of pixels_per_run pixels."""

    def __init__(self, generator, num_pixels, lanes):
        super().__init__(generator.labels, generator.previous_pixel.shape.as_list()[0],
                         num_pixels, session_config(lanes))
        self.generator = generator

    def _run(self, session, pixels, done, feed, temperature, argmax, pixels_per_run,
             on_progress):
        """Primes the stores with pixels[:, :done] and fills in the rest, run by run."""
        generator = self.generator
        session.run(generator.prime, {generator.prime_pixels: pixels[:, :done], **feed})
        while done < self._num_pixels:
            steps = min(pixels_per_run, self._num_pixels - done)
            previous = pixels[:, done - 1] if done else np.zeros(self.batch_size, np.int32)
            pixels[:, done:done + steps] = session.run(generator.pixels, {
                generator.start: done, generator.num_steps: steps,
                generator.previous_pixel: previous, generator.temperature: temperature,
                generator.argmax: argmax, **feed})
            done += steps
            if on_progress is not None:
                on_progress(done, pixels[:, :done])


class _NaiveSampler(Sampler):
    """Sampler that runs the mixture's full network over the whole image for every pixel."""

    def __init__(self, mixture, batch_size):
        labels = (tf.placeholder(tf.int32, [batch_size], name='labels') if mixture.conditional
                  else None)
        super().__init__(labels, batch_size, mixture.sequence_length, None)
        self._pixels = tf.placeholder(tf.int32, [batch_size, mixture.sequence_length],
                                      name='pixels')
        self._position = tf.placeholder(tf.int32, [], name='position')
        self._temperature = tf.placeholder(tf.float32, [], name='temperature')
        self._argmax = tf.placeholder(tf.bool, [], name='argmax')
        logits = mixture.logits(self._pixels, labels)[:, self._position]  # [B, Q]
        sampled = tf.random.categorical(logits / self._temperature, 1, dtype=tf.int32)[:, 0]
        self._pixel = tf.where_v2(self._argmax,
                                  tf.argmax(logits, axis=-1, output_type=tf.int32), sampled)

    def _run(self, session, pixels, done, feed, temperature, argmax, pixels_per_run,
             on_progress):
        """Fills in pixels[:, done:] one pixel (one run of the whole network) at a time."""
        del pixels_per_run  # every pixel is a run of its own
        for position in range(done, self._num_pixels):
            pixels[:, position] = session.run(self._pixel, {
                self._pixels: pixels, self._position: position,
                self._temperature: temperature, self._argmax: argmax, **feed})
            if on_progress is not None:
                on_progress(position + 1, pixels[:, :position + 1])
