"""Exact negative log-likelihood of a set of images, in bits/dim.

Every sub-pixel of every image counts (no subsampling). Validation during training and the
evaluation command (evaluate.py) both use bits_per_dim.
"""
import numpy as np

from wavenet.ops import nats_to_bits


def bits_per_dim(session, nats_per_image, pixels_input, images, batch_size, labels_input=None,
                 labels=None, on_progress=None):
    """Average -log2 p over every sub-pixel of every image.

    Args:
        session: a Session with the model's variables restored.
        nats_per_image: float [B]: the model's negative log-likelihood of each input image.
        pixels_input: placeholder int [B, T] that nats_per_image reads.
        images: uint8 [N, height, width] or [N, height, width, 3] quantized levels (an
            array, or anything that gives one for a slice of rows); the product of their
            dimensions after the first is T.
        batch_size: images per session.run.
        labels_input: placeholder int [B] of a class-conditional model, else None.
        labels: int [N] classes of the images, for a class-conditional model.
        on_progress: optional function(images in the batch just scored).
    Returns:
        Python float, bits per dimension.
    """
    num_images, total_nats, total_pixels = len(images), 0.0, 0
    for start in range(0, num_images, batch_size):
        # One batch at a time: `images` may be a memory-mapped array larger than memory.
        batch = np.asarray(images[start:start + batch_size])
        feed = {pixels_input: batch.reshape(len(batch), -1)}
        if labels_input is not None:
            feed[labels_input] = labels[start:start + batch_size]
        total_nats += float(np.sum(session.run(nats_per_image, feed), dtype=np.float64))
        total_pixels += batch.size
        if on_progress is not None:
            on_progress(len(batch))
    return nats_to_bits(total_nats / total_pixels)
