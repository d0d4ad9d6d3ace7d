"""Running generation: the fast path in row-sized runs, and the naive path."""
import os

import numpy as np

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


def thread_options(lanes):
    """Session threads for fast generation in `lanes` lanes: one per lane, one per op.

    Small ops (the per-pixel matrix products of a batch) run faster on one thread than split
    across several; the lanes keep every core busy instead.

    Returns:
        keyword arguments of tf.ConfigProto.
    """
    return {'intra_op_parallelism_threads': 1, 'inter_op_parallelism_threads': lanes}


def check_temperature(temperature):
    """Raises ValueError unless the temperature is a positive finite number."""
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError('temperature must be a positive number, got %r' % temperature)


def generate_fast(session, generator, num_pixels, labels=None, prime_pixels=None,
                  temperature=1.0, argmax=False, pixels_per_run=None, on_progress=None):
    """Generates a batch of images with a FastGenerator.

    Args:
        session: a Session whose graph holds `generator`, with variables restored.
        generator: a model.FastGenerator of batch size B.
        num_pixels: T, pixels per image.
        labels: int [B] classes, for a class-conditional model only.
        prime_pixels: optional int [B, P] known first pixels (P < T), kept as they are.
        temperature: softmax temperature, > 0.
        argmax: take the likeliest level instead of sampling.
        pixels_per_run: pixels generated per session.run (default: all at once); ignored by
            a generator whose state does not persist between runs, which needs one run.
        on_progress: optional function(pixels done, pixels so far [B, done]) after each run.
    Returns:
        int32 [B, T] pixel levels.
    """
    check_temperature(temperature)
    batch_size = generator.previous_pixel.shape.as_list()[0]
    label_feed = _label_feed(generator.labels, labels)
    if prime_pixels is None:
        prime_pixels = np.zeros((batch_size, 0), np.int32)
    prime_pixels = np.asarray(prime_pixels, np.int32)
    session.run(generator.prime, {generator.prime_pixels: prime_pixels, **label_feed})
    pixels = np.zeros((batch_size, num_pixels), np.int32)
    done = prime_pixels.shape[1]
    pixels[:, :done] = prime_pixels
    if not generator.resumable or not pixels_per_run:
        pixels_per_run = num_pixels
    while done < num_pixels:
        steps = min(pixels_per_run, num_pixels - done)
        previous = pixels[:, done - 1] if done else np.zeros(batch_size, np.int32)
        pixels[:, done:done + steps] = session.run(generator.pixels, {
            generator.start: done, generator.num_steps: steps,
            generator.previous_pixel: previous, generator.temperature: temperature,
            generator.argmax: argmax, generator.prime_pixels: prime_pixels, **label_feed})
        done += steps
        if on_progress is not None:
            on_progress(done, pixels[:, :done])
    return pixels


def generate_naive(session, pixels_input, logits_at, position, num_pixels, rng,
                   labels_input=None, labels=None, prime_pixels=None, temperature=1.0,
                   argmax=False, on_progress=None):
    """Generates a batch pixel by pixel, running the full network once per pixel.

    Args:
        session: a Session with variables restored.
        pixels_input: placeholder int [B, T].
        logits_at: float [B, Q] logits of the pixel at `position` given `pixels_input`.
        position: placeholder int32 [].
        num_pixels: T.
        rng: a numpy Generator for sampling.
        labels_input: placeholder int [B] of a class-conditional model, else None.
        labels: int [B] classes, for a class-conditional model only.
        prime_pixels, temperature, argmax, on_progress: as for generate_fast.
    Returns:
        int32 [B, T] pixel levels.
    """
    check_temperature(temperature)
    batch_size = pixels_input.shape.as_list()[0]
    label_feed = _label_feed(labels_input, labels)
    pixels = np.zeros((batch_size, num_pixels), np.int32)
    done = 0
    if prime_pixels is not None:
        done = prime_pixels.shape[1]
        pixels[:, :done] = prime_pixels
    for index in range(done, num_pixels):
        logits = session.run(logits_at, {pixels_input: pixels, position: index,
                                         **label_feed}).astype(np.float64)
        if argmax:
            pixels[:, index] = logits.argmax(axis=1)
        else:
            scaled = logits / temperature
            probabilities = np.exp(scaled - scaled.max(axis=1, keepdims=True))
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            cumulative = probabilities.cumsum(axis=1)
            draws = rng.random((batch_size, 1)) * cumulative[:, -1:]
            pixels[:, index] = (cumulative < draws).sum(axis=1)
        if on_progress is not None:
            on_progress(index + 1, pixels[:, :index + 1])
    return pixels


def _label_feed(labels_input, labels):
    """The feed of the labels placeholder; ValueError when labels and model disagree."""
    if labels_input is None:
        if labels is not None:
            raise ValueError('this model is not class-conditional: it takes no labels')
        return {}
    if labels is None:
        raise ValueError('this model is class-conditional: labels are required')
    return {labels_input: np.asarray(labels, np.int32)}
