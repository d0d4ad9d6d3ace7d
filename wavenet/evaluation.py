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
        images: uint8 [N, height, width] or [N, height, width, 3] quantized levels; the
            product of their dimensions after the first is T.
        batch_size: images per session.run.
        labels_input: placeholder int [B] of a class-conditional model, else None.
        labels: int [N] classes of the images, for a class-conditional model.
        on_progress: optional function(images in the batch just scored).
    Returns:
        Python float, bits per dimension.
    """
    num_images = len(images)
    flat = np.asarray(images).reshape(num_images, -1)
    total_nats = 0.0
    for start in range(0, num_images, batch_size):
        feed = {pixels_input: flat[start:start + batch_size]}
        if labels_input is not None:
            feed[labels_input] = labels[start:start + batch_size]
        total_nats += float(np.sum(session.run(nats_per_image, feed), dtype=np.float64))
        if on_progress is not None:
            on_progress(len(feed[pixels_input]))
    return nats_to_bits(total_nats / flat.size)
