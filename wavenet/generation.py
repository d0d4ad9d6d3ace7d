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

    def __init__(self, inputs, batch_size, num_pixels, config):
        self._inputs, self._num_pixels = inputs, num_pixels  # inputs: labels, condition
        self.batch_size, self.config = batch_size, config

    def sample(self, session, count, labels=None, prime_pixels=None, condition=None,
               temperature=1.0, argmax=False, pixels_per_run=None, on_progress=None):
        """Samples `count` whole images, at most the batch size (the batch is padded).

        Args:
            session: a Session with the model's variables restored.
            count: images wanted, 1 to batch_size.
            labels: int [count] classes, for a class-conditional model only.
            prime_pixels: optional int [count, P] known first pixels (P < T), kept as they
                are.
            condition: int [count, h, w, c] condition images, for a locally conditioned
                model only.
            temperature: sampling temperature, > 0 (model.Output).
            argmax: take the likeliest level instead of sampling.
            pixels_per_run: the fast path's pixels per session.run (default: all at once).
            on_progress: optional function(pixels done, pixels so far [count, done]).
        Returns:
            int32 [count, T] pixel levels.
        """
        check_temperature(temperature)
        if not 1 <= count <= self.batch_size:
            raise ValueError('count must be from 1 to the batch size %d, got %r'
                             % (self.batch_size, count))
        feed = {}
        for kind, placeholder, values in zip(('class-conditional', 'locally conditioned'),
                                             self._inputs, (labels, condition)):
            if (placeholder is None) != (values is None):
                raise ValueError('this model is %s%s' % (
                    'not ' if placeholder is None else '',
                    kind + (': it takes no labels or condition' if placeholder is None
                            else ': give its labels or condition')))
            if values is not None:
                feed[placeholder] = _padded(values, self.batch_size)
        pixels = np.zeros((self.batch_size, self._num_pixels), np.int32)
        done = 0
        if prime_pixels is not None:
            done = np.shape(prime_pixels)[1]
            pixels[:, :done] = _padded(prime_pixels, self.batch_size)

        def report(done, pixels_so_far):
            on_progress(done, pixels_so_far[:count])
        self._run(session, pixels, done, feed, temperature, argmax,
                  pixels_per_run or self._num_pixels, on_progress and report)
        return pixels[:count]


def _padded(rows, batch_size):
    """rows [count, ...] repeated up to [batch_size, ...]."""
    rows = np.asarray(rows, np.int32)
    return np.resize(rows, (batch_size,) + rows.shape[1:])


class _FastSampler(Sampler):
    """Sampler of a fast_generation.FastGenerator, in runs of pixels_per_run pixels."""

    def __init__(self, generator, num_pixels, lanes):
        super().__init__((generator.labels, generator.condition),
                         generator.previous_pixel.shape.as_list()[0], num_pixels,
                         session_config(lanes))
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
        condition = (tf.placeholder(tf.int32, [batch_size] + list(mixture.condition_shape),
                                    name='condition') if mixture.condition_shape else None)
        super().__init__((labels, condition), batch_size, mixture.sequence_length, None)
        self._pixels = tf.placeholder(tf.int32, [batch_size, mixture.sequence_length],
                                      name='pixels')
        self._position = tf.placeholder(tf.int32, [], name='position')
        self._temperature = tf.placeholder(tf.float32, [], name='temperature')
        self._argmax = tf.placeholder(tf.bool, [], name='argmax')
        parameters = mixture.parameters(self._pixels, labels, condition)[:, self._position]
        self._pixel = mixture.output.sample(parameters, self._temperature, self._argmax)

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
