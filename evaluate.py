"""Exact negative log-likelihood of a folder of images, in bits/dim.

Usage: python evaluate.py --checkpoint=LOGDIR_OR_PREFIX --data_dir=DIR
       python evaluate.py --checkpoint=RUN1 --checkpoint=RUN2 ... --data_dir=DIR

Every sub-pixel of every image under DIR counts (no subsampling); images are converted as in
training (grayscale or RGB, resized to the model's image size, quantized). Several
checkpoints are evaluated as one ensemble: at every pixel, the mean of their distributions.
The last line printed is `bits/dim: X`.
"""
from wavenet import cli, errors


def get_arguments(argv=None):
    """Parses the evaluation flags."""
    parser = cli.ArgumentParser(
        description='Exact test-set negative log-likelihood of a trained model, in bits/dim.')
    parser.add_argument('--checkpoint', required=True, action='append',
                        help='a logdir (its newest readable checkpoint) or a checkpoint '
                             'prefix; repeat it to evaluate the ensemble of several models (at '
                             'every pixel, the mean of their distributions)')
    parser.add_argument('--data_dir', required=True,
                        help='folder of images to evaluate, searched recursively, or a '
                             'prepared dataset (its test split)')
    parser.add_argument('--batch_size', type=cli.integer_range(1, 10000), default=100,
                        help='images per evaluation batch')
    parser.add_argument('--no_ema', action='store_true',
                        help='use the raw weights, not their moving averages, where a '
                             'checkpoint holds both')
    parser.add_argument('--verbose', action='store_true',
                        help="show TensorFlow's own log lines and warnings")
    return parser.parse_args(argv)


def main(argv=None):
    """Evaluates one checkpoint, or an ensemble of several, on a folder; prints `bits/dim: X`."""
    args = get_arguments(argv)
    tf = cli.import_tensorflow(args.verbose)
    from wavenet import reader
    from wavenet.evaluation import Scorer
    from wavenet.progress import Progress
    models = cli.open_checkpoints(args.checkpoint, not args.no_ema)
    run = models.record
    images, skipped = reader.load_folder(
        args.data_dir, run.image_size, run.params.quantization_channels, run.classes, run.channels)
    for path, why in skipped:
        cli.warn('skipped %s: %s' % (path, why))
    if run.params.gc_channels and (images.labels < 0).any():
        raise errors.Error('this model is class-conditional: every image in %s must be in a '
                           'class folder named as in training (%s)'
                           % (args.data_dir, ', '.join(run.classes)))
    print('evaluating %s on %s of %dx%d from %s' % (
        models.description, cli.count(len(images.images), 'image'), *run.image_size, args.data_dir))
    scorer = Scorer(models.mixture)
    with tf.Session() as session:
        models.restore(session)
        progress = Progress('evaluating', len(images.images), 'images')
        result = scorer.bits_per_dim(session, images.images, images.labels, args.batch_size,
                                     progress.update)
        progress.close()
    print('bits/dim: %.4f' % result)


if __name__ == '__main__':
    cli.run_main(main)
