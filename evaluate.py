"""Exact negative log-likelihood of a folder of images, in bits/dim.

Usage: python evaluate.py --checkpoint=LOGDIR_OR_PREFIX --data_dir=DIR
       python evaluate.py --checkpoint=RUN1 --checkpoint=RUN2 ... --data_dir=DIR

Every sub-pixel of every image under DIR counts (no subsampling); images are converted as in
training (grayscale or RGB, resized to the model's image size, quantized). Several
checkpoints are evaluated as one ensemble: at every pixel, the mean of their distributions.
The last line printed is `bits/dim: X`.
"""
import sys

from wavenet import cli


def get_arguments(argv=None):
    """Parses the evaluation flags."""
    parser = cli.ArgumentParser(
        description='Exact test-set negative log-likelihood of a trained model, in bits/dim.')
    parser.add_argument('--checkpoint', required=True, action='append',
                        help='a logdir (its latest checkpoint) or a checkpoint prefix; repeat '
                             'it to evaluate the ensemble of several models (at every pixel, '
                             'the mean of their distributions)')
    parser.add_argument('--data_dir', required=True,
                        help='folder of images to evaluate, searched recursively')
    parser.add_argument('--batch_size', type=cli.integer_range(1, 10000), default=100,
                        help='images per evaluation batch')
    parser.add_argument('--verbose', action='store_true',
                        help="show TensorFlow's own log lines and warnings")
    return parser.parse_args(argv)


def load_images(data_dir, spec):
    """The images of data_dir converted for the model; warns about each file skipped."""
    from wavenet import reader
    try:
        images, skipped = reader.load_folder(data_dir, spec.image_size,
                                             spec.params.quantization_channels, spec.classes,
                                             spec.channels)
    except reader.DataError as error:
        raise cli.UsageError(str(error)) from None
    for path, reason in skipped:
        print('warning: skipped %s: %s' % (path, reason), file=sys.stderr)
    if spec.params.gc_channels and (images.labels < 0).any():
        raise cli.UsageError('this model is class-conditional: every image in %s must be in a '
                             'class folder named as in training (%s)'
                             % (data_dir, ', '.join(spec.classes)))
    return images


def main(argv=None):
    """Evaluates one checkpoint, or an ensemble of several, on a folder; prints `bits/dim: X`."""
    args = get_arguments(argv)
    tf = cli.import_tensorflow(args.verbose)
    from wavenet.evaluation import bits_per_dim
    from wavenet.progress import Progress
    models = cli.open_checkpoints(args.checkpoint)
    images = load_images(args.data_dir, models.spec)
    height, width = models.spec.image_size
    print('evaluating %s on %s of %dx%d from %s'
          % (models.description, cli.count(len(images.images), 'image'), height, width,
             args.data_dir))
    pixels = tf.placeholder(tf.int32, [None, models.mixture.sequence_length])
    labels = tf.placeholder(tf.int32, [None]) if models.mixture.conditional else None
    nats = models.mixture.nats_per_image(pixels, labels)
    with tf.Session() as session:
        models.restore(session)
        progress = Progress('evaluating', len(images.images), 'images')
        result = bits_per_dim(session, nats, pixels, images.images, args.batch_size, labels,
                              images.labels, progress.update)
        progress.close()
    print('bits/dim: %.4f' % result)


if __name__ == '__main__':
    cli.run_main(main)
