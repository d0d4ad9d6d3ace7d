"""Exact negative log-likelihood of a folder of images, in bits/dim.

Usage: python -m wavenet.evaluate --checkpoint=LOGDIR_OR_PREFIX --data_dir=DIR
       python -m wavenet.evaluate --checkpoint=RUN1 --checkpoint=RUN2 ... --data_dir=DIR

Every pixel (every channel of every pixel, for colour) of every image under DIR counts (no
subsampling); images are converted as in training (grayscale or RGB, resized to the model's
image size, quantized). Several checkpoints are evaluated as one ensemble: at every pixel, the
mean of their distributions (wavenet.ensemble). The last line printed is `bits/dim: X`.
Validation during training uses bits_per_dim() below.
"""
import argparse
import math
import sys

import numpy as np

from wavenet import cli


def bits_per_dim(session, nats_per_image, pixels_input, images, batch_size, labels_input=None,
                 labels=None, on_progress=None):
    """Average -log2 p over every pixel of every image.

    Args:
        session: a Session with the model's variables restored.
        nats_per_image: float [B]: the model's negative log-likelihood of each input image.
        pixels_input: placeholder int [B, T] that nats_per_image reads.
        images: uint8 [N, height, width] or [N, height, width, 3] quantized levels; the
            product of their dimensions after the first is T.
        batch_size: images per session.run.
        labels_input: placeholder int [B] of a class-conditional model, else None.
        labels: int [N] classes of the images, for a class-conditional model.
        on_progress: optional function(images done).
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
            on_progress(min(start + batch_size, num_images))
    return total_nats / (flat.size * math.log(2.0))


def get_arguments(argv=None):
    """Parses the evaluation flags."""
    parser = argparse.ArgumentParser(
        description='Exact test-set negative log-likelihood of a trained model, in bits/dim.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--checkpoint', required=True, action='append',
                        help='a logdir (its latest checkpoint) or a checkpoint prefix; repeat '
                             'it to evaluate the ensemble of several models (at every pixel, '
                             'the mean of their distributions)')
    parser.add_argument('--data_dir', required=True,
                        help='folder of images to evaluate, searched recursively')
    parser.add_argument('--batch_size', type=cli.positive_int, default=100,
                        help='images per evaluation batch')
    parser.add_argument('--verbose', action='store_true',
                        help="show TensorFlow's own log lines and warnings")
    return parser.parse_args(argv)


def main(argv=None):
    """Evaluates one checkpoint, or an ensemble of several, on a folder; prints `bits/dim: X`."""
    args = get_arguments(argv)
    tf = cli.import_tensorflow(args.verbose)
    from wavenet import ensemble, logdir, reader
    try:
        checkpoints, member_params, image_size, classes, channels = ensemble.open_runs(
            args.checkpoint)
        images, skipped = reader.load_folder(args.data_dir, image_size,
                                             member_params[0].quantization_channels, classes,
                                             channels)
    except (logdir.CheckpointError, reader.DataError) as error:
        raise cli.UsageError(str(error)) from None
    for path, reason in skipped:
        print('warning: skipped %s: %s' % (path, reason), file=sys.stderr)
    print('evaluating %s on %d images of %dx%d from %s'
          % (ensemble.describe(checkpoints), len(images.images), image_size[0], image_size[1],
             args.data_dir))
    if member_params[0].gc_channels and (images.labels < 0).any():
        raise cli.UsageError('this model is class-conditional: every image in %s must be in a '
                             'class folder named as in training (%s)'
                             % (args.data_dir, ', '.join(classes)))
    with tf.Graph().as_default():
        models = ensemble.Ensemble(checkpoints, member_params, image_size, len(classes),
                                   channels)
        pixels_input = tf.placeholder(tf.int32, [None, models.sequence_length])
        labels_input = tf.placeholder(tf.int32, [None]) if models.conditional else None
        nats = models.nats_per_image(pixels_input, labels_input)
        try:
            models.check_checkpoints()
        except logdir.CheckpointError as error:
            raise cli.UsageError(str(error)) from None
        with tf.Session() as session:
            models.restore(session)
            progress = cli.Progress(len(images.images), 'images')
            result = bits_per_dim(session, nats, pixels_input, images.images, args.batch_size,
                                  labels_input, images.labels, progress.update)
            progress.finish(len(images.images))
    print('bits/dim: %.4f' % result)


if __name__ == '__main__':
    cli.run_main(main)
