"""Sampling images from a model.Mixture: build_sampler, for generate.py, train.py's sample
grids and the benchmarks. The fast path steps every layer once per pixel (fast_generation);
the naive path runs the whole network once per pixel, for checking. Both sample inside the
graph, so tf.set_random_seed makes either repeatable.
"""
import collections
import os

import numpy as np
import tensorflow.compat.v1 as tf

from wavenet import errors, fast_generation, reader
from wavenet.progress import Progress

# Images per lane below which one lane beats one lane per core (see benchmarks/README.md).
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
    """The session of fast generation in `lanes` lanes: one thread per lane and one per op
    (small ops run faster on one thread; the lanes keep every core busy)."""
    return tf.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=lanes)


Condition = collections.namedtuple('Condition', [
    'name',    # the file name without its extension
    'source',  # int [height, width, channels] levels of an image of the model's size, or None
    'levels',  # int [h, w, c] levels of the condition (None: to derive from the source)
])


def read_condition_images(path, image_size, channels, condition_shape, quantization_channels):
    """Conditions from a file or every image file of a folder, each of the model's image size
    (the condition is derived from it as in training) or of the condition's size (taken as it
    is). Raises errors.Error for no image, an unreadable one, or one of another size."""
    paths = [path] if os.path.isfile(path) else reader.list_image_files(path)
    if not paths:
        raise errors.Error('no image files in %s' % path)
    conditions = []
    for image_path in paths:
        image = reader.quantize(reader.load_image(image_path, None, channels),
                                quantization_channels)
        image = image.reshape(image.shape[:2] + (-1,))
        name = os.path.splitext(os.path.basename(image_path))[0]
        if image.shape[:2] == tuple(image_size):
            conditions.append(Condition(name, image, None))
        elif image.shape[:2] == condition_shape[:2]:
            conditions.append(Condition(name, None, image[..., :condition_shape[2]]))
        else:
            raise errors.Error('condition image %s is %dx%d: give images of the model\'s size '
                               '%dx%d or of its condition\'s size %dx%d'
                               % (image_path, *image.shape[:2], *image_size, *condition_shape[:2]))
    return conditions


def sample_rows(session, sampler, rows, per_row, labels=None, prime_pixels=None,
                condition=None, temperature=1.0, argmax=False, pixels_per_run=None,
                save_partial=None, after_run=None):
    """Samples int32 [R * per_row, T] levels, per_row images for each of R rows of inputs,
    batch by batch, with a progress bar on stderr.

    labels int [R], prime_pixels int [R, P], condition int [R, h, w, c] (each None where the
    model takes none) and the others are as in Sampler.sample; after every run of pixels_per_run
    pixels, after_run() and save_partial(the levels so far) are called where given.
    """
    inputs = [None if values is None else np.repeat(values, per_row, axis=0)
              for values in (labels, prime_pixels, condition)]
    total = rows * per_row
    generated = np.zeros((total, sampler.sequence_length), np.int32)
    progress = Progress('generating', total * sampler.sequence_length, 'pixels')
    for first in range(0, total, sampler.batch_size):
        last = min(first + sampler.batch_size, total)
        reported = 0

        def on_progress(done, pixels_so_far):
            nonlocal reported
            if after_run is not None:
                after_run()
            progress.update((last - first) * (done - reported))
            reported = done
            if save_partial is not None and done < sampler.sequence_length:
                generated[first:last, :done] = pixels_so_far
                save_partial(generated)

        generated[first:last] = sampler.sample(
            session, last - first, *[None if values is None else values[first:last]
                                     for values in inputs],
            temperature, argmax, pixels_per_run, on_progress)
    progress.close()
    return generated


def build_sampler(mixture, batch_size, fast=True, state=fast_generation.STATES[0], lanes=None):
    """A Sampler of batch_size images from a model.Mixture, built in the current graph.

    fast: incremental generation, else the whole network per pixel; state and lanes: the fast
    path's (fast_generation.STATES; default lanes: lanes_for the batch on this machine).
    """
    if fast:
        lanes = lanes or lanes_for(batch_size, available_cores())
        return _FastSampler(fast_generation.build_fast_generator(
            mixture, batch_size, state=state, lanes=lanes), mixture.sequence_length, lanes)
    with tf.name_scope('generation'):
        return _NaiveSampler(mixture, batch_size)


class Sampler:
    """Draws batches of images; the fast and the naive sampler differ in `_run`, which fills
    in the pixels after the known ones. `config` is the tf.ConfigProto to open the session
    with (None: the default); sequence_length is T, the sub-pixels of an image."""

    def __init__(self, inputs, batch_size, sequence_length, config):
        self._inputs = inputs  # the placeholders of the labels and of the condition
        self.batch_size, self.sequence_length, self.config = batch_size, sequence_length, config

    def sample(self, session, count, labels=None, prime_pixels=None, condition=None,
               temperature=1.0, argmax=False, pixels_per_run=None, on_progress=None):
        """Samples int32 [count, T] levels of count (1 to batch_size) images, in a session
        with the model's variables restored.

        labels int [count] for a class-conditional model only; prime_pixels int [count, P]
        (P < T) known first pixels, kept; condition int [count, h, w, c] for a locally
        conditioned model only; temperature > 0 (model.Output); argmax takes the likeliest
        level; pixels_per_run: the fast path's pixels per session.run (default: all);
        on_progress: optional function(pixels done, pixels so far [count, done]).
        """
        if not np.isfinite(temperature) or temperature <= 0:
            raise ValueError('temperature must be a positive number, got %r' % temperature)
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
        pixels = np.zeros((self.batch_size, self.sequence_length), np.int32)
        done = 0
        if prime_pixels is not None:
            done = np.shape(prime_pixels)[1]
            pixels[:, :done] = _padded(prime_pixels, self.batch_size)

        def report(done, pixels_so_far):
            on_progress(done, pixels_so_far[:count])
        self._run(session, pixels, done, feed, temperature, argmax,
                  pixels_per_run or self.sequence_length, on_progress and report)
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

    def _run(self, session, pixels, done, feed, temperature, argmax, pixels_per_run, on_progress):
        """Primes the stores with pixels[:, :done] and fills in the rest, run by run."""
        generator = self.generator
        session.run(generator.prime, {generator.prime_pixels: pixels[:, :done], **feed})
        while done < self.sequence_length:
            steps = min(pixels_per_run, self.sequence_length - done)
            previous = pixels[:, done - 1] if done else np.zeros(self.batch_size, np.int32)
            pixels[:, done:done + steps] = session.run(generator.pixels, {
                generator.start: done, generator.num_steps: steps, generator.argmax: argmax,
                generator.previous_pixel: previous, generator.temperature: temperature, **feed})
            done += steps
            if on_progress is not None:
                on_progress(done, pixels[:, :done])


class _NaiveSampler(Sampler):
    """Sampler that runs the mixture's full network over the whole image for every pixel."""

    def __init__(self, mixture, batch_size):
        labels, condition = fast_generation.input_placeholders(mixture, batch_size)
        super().__init__((labels, condition), batch_size, mixture.sequence_length, None)
        self._pixels = tf.placeholder(tf.int32, [batch_size, mixture.sequence_length],
                                      name='pixels')
        self._position = tf.placeholder(tf.int32, [], name='position')
        self._temperature = tf.placeholder(tf.float32, [], name='temperature')
        self._argmax = tf.placeholder(tf.bool, [], name='argmax')
        parameters = mixture.parameters(self._pixels, labels, condition)[:, self._position]
        self._pixel = mixture.output.sample(parameters, self._temperature, self._argmax)

    def _run(self, session, pixels, done, feed, temperature, argmax, pixels_per_run, on_progress):
        """Fills in pixels[:, done:] one pixel (one run of the whole network) at a time."""
        del pixels_per_run  # every pixel is a run of its own
        for position in range(done, self.sequence_length):
            pixels[:, position] = session.run(self._pixel, {
                self._pixels: pixels, self._position: position,
                self._temperature: temperature, self._argmax: argmax, **feed})
            if on_progress is not None:
                on_progress(position + 1, pixels[:, :position + 1])
