"""Several trained models as one: at every pixel, the mean of their distributions.

Given the same earlier pixels, every member gives a normalized distribution of the next
pixel, and so does their equal-weight mean. An ensemble is therefore itself an autoregressive
model: its likelihood is exact,

    -log p(x) = -sum over t of log((1 / K) * sum over the K members of p_k(x_t | x_<t)),

and it samples pixel by pixel like one model. One checkpoint makes an ensemble of one, which
is that model unchanged.
"""
import tensorflow.compat.v1 as tf

from wavenet import logdir
from wavenet.model import (GENERATION_STATES, WaveNetModel, build_fast_generator,
                           mixture_logits)

MODEL_SCOPE = 'wavenet'  # the variable scope of a model in the checkpoints train.py writes


def open_runs(paths):
    """The checkpoints meant by `paths` and the run files they share.

    Args:
        paths: a non-empty list of logdirs or checkpoint prefixes.
    Returns:
        (list of checkpoint prefixes, list of WaveNetParams, image_size, classes, channels).
    Raises:
        logdir.CheckpointError: when a path has no usable checkpoint, or the runs differ in
            image size, channels, class names, levels or class conditioning.
    """
    runs = [logdir.open_run(path) for path in paths]
    _, first_params, image_size, classes, channels = runs[0]

    def shared(params, size, names, run_channels):
        return (tuple(size), run_channels, tuple(names), params.quantization_channels,
                params.gc_channels > 0)
    expected = shared(first_params, image_size, classes, channels)
    for path, (_, params, size, names, run_channels) in zip(paths[1:], runs[1:]):
        if shared(params, size, names, run_channels) != expected:
            raise logdir.CheckpointError(
                'cannot ensemble %s with %s: the members of an ensemble need the same image '
                'size, channels, classes, quantization_channels and class conditioning'
                % (path, paths[0]))
    return ([run[0] for run in runs], [run[1] for run in runs], image_size, classes, channels)


def describe(checkpoints):
    """The checkpoint, or 'the ensemble of A, B, ...', for messages."""
    if len(checkpoints) == 1:
        return checkpoints[0]
    return 'the ensemble of %s' % ', '.join(checkpoints)


class Ensemble:
    """The equal-weight per-pixel mixture of one or more WaveNetModels.

    Each member's variables live under their own scope (`wavenet` alone, `member0/wavenet`,
    `member1/wavenet`, ... for several) and are restored from that member's checkpoint.

    Args:
        checkpoints: one checkpoint prefix per member.
        member_params: one WaveNetParams per member.
        image_size, num_classes, channels: as for WaveNetModel, shared by the members.
    """

    def __init__(self, checkpoints, member_params, image_size, num_classes=0, channels=1):
        self.checkpoints = list(checkpoints)
        self.scopes = ([MODEL_SCOPE] if len(self.checkpoints) == 1 else
                       ['member%d/%s' % (index, MODEL_SCOPE)
                        for index in range(len(self.checkpoints))])
        self.models = [WaveNetModel(params, image_size, num_classes, channels, name=scope)
                       for params, scope in zip(member_params, self.scopes)]
        self.sequence_length = self.models[0].sequence_length
        self.conditional = self.models[0].conditional

    def logits(self, pixels, labels=None):
        """Logits of every pixel given the pixels before it (and the class).

        Args:
            pixels: int [B, T] levels in raster order.
            labels: int [B] classes; required by class-conditional members.
        Returns:
            float [B, T, quantization_channels]: the one member's logits, or the log of the
            members' mean distribution.
        """
        return mixture_logits([model.logits(pixels, labels) for model in self.models])

    def nats_per_image(self, pixels, labels=None):
        """Negative log-likelihood of each image, float [B], from pixels int [B, T]."""
        nats = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(pixels, tf.int32), logits=self.logits(pixels, labels))  # [B, T]
        return tf.reduce_sum(nats, axis=1)

    def fast_generator(self, batch_size, state=GENERATION_STATES[0], lanes=1):
        """Incremental generation that samples from the mixture: a model.FastGenerator."""
        return build_fast_generator(self.models, batch_size, state=state, lanes=lanes)

    def _checkpoint_names(self, index):
        """{name in the member's checkpoint: variable} of member `index`."""
        scope = self.scopes[index]
        return {MODEL_SCOPE + variable.op.name[len(scope):]: variable
                for variable in tf.global_variables(scope=scope + '/')}

    def check_checkpoints(self):
        """Raises logdir.CheckpointError unless every checkpoint holds its member's variables."""
        for index, checkpoint in enumerate(self.checkpoints):
            logdir.check_variables_match(checkpoint, self._checkpoint_names(index))

    def restore(self, session):
        """Loads every member's variables from its checkpoint into `session`."""
        for index, checkpoint in enumerate(self.checkpoints):
            tf.train.Saver(self._checkpoint_names(index)).restore(session, checkpoint)
