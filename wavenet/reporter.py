"""What a training run reports: progress lines, TensorBoard events, and at every checkpoint
the checkpoint itself, the validation bits/dim and a grid of samples.

Events go to `logdir/train` and `logdir/validation` with the same tags (`bits_per_dim`), so
TensorBoard draws the two curves on one chart; the run's settings go to `logdir/train` as
text and to the logdir's own events as HParams.
"""
import collections
import json
import math
import os

import numpy as np
import tensorflow.compat.v1 as tf
from tensorboard.plugins.hparams import summary as hparams_summary

from wavenet import generation, image_grid
from wavenet.checkpoints import (CHECKPOINT_PREFIX, SAMPLES_FOLDER, WriteError,
                                 remove_stale_temporaries)
from wavenet.errors import reason
from wavenet.evaluation import Scorer
from wavenet.model import Mixture
from wavenet.ops import nats_to_bits

TENSORBOARD_ZOOM = 3  # sample grids in TensorBoard: each pixel as a 3x3 block

ReportOptions = collections.namedtuple('ReportOptions', [
    'logdir',            # the run's folder
    'num_steps',         # the run's last step
    'batch_size',        # images per step (for pixels/s)
    'print_every',       # steps between progress lines
    'summary_every',     # steps between TensorBoard training summaries
    'checkpoint_every',  # steps between checkpoints (with validation and samples)
    'max_checkpoints',   # checkpoints kept in the logdir
    'num_samples',       # images in each sample grid (0: none)
])


class Reporter:
    """Prints progress of the WaveNetModel trained and, on the process that `writes` the
    logdir (the chief), builds the validation (a reader.ImageSet, possibly empty) and
    sampling graphs and writes checkpoints, events and sample grids per the ReportOptions.
    A locally conditioned model's grids show the conditions of the first `examples`."""

    def __init__(self, model, validation, options, writes=True, examples=None):
        self.options, self.writes = options, writes
        self._model, self._validation, self._examples = model, validation, examples
        self._losses, self._seconds = [], 0.0
        self._session = self._writers = None
        if not writes:
            return
        with tf.name_scope('validation'):
            self._scorer = Scorer(Mixture([model]))
        self._sampler = (generation.build_sampler(Mixture([model]), options.num_samples,
                                                  lanes=1) if options.num_samples else None)
        if model.condition_shape:
            with tf.name_scope('generation/'):
                self._images = tf.placeholder(tf.int32, (None,) + model.image_size
                                              + (model.channels,), name='condition_sources')
                self._derived = model.derive_condition(self._images)
        # Relative paths in the `checkpoint` index: a moved or copied logdir still resumes.
        self._saver = tf.train.Saver(tf.global_variables(), max_to_keep=options.max_checkpoints,
                                     save_relative_paths=True)

    def open(self, session, step, settings, checkpoints=()):
        """Starts reporting on the training `session` from global step `step`: opens the
        event writers, writes the run's `settings` ({group: {name: value}}) as text and HParams,
        and counts the logdir's earlier `checkpoints` (oldest first) as the saver's own."""
        self._session = session
        if not self.writes:
            return
        self._saver.recover_last_checkpoints(list(checkpoints))
        self._writers = {name: tf.summary.FileWriter(os.path.join(self.options.logdir, name),
                                                     session.graph if name == 'train' else None)
                         for name in ('', 'train', 'validation')}
        self._writers['train'].add_summary(settings_text(settings), step)
        self._writers[''].add_summary(hparams_summary.session_start_pb(
            {'%s/%s' % (group, name): value if isinstance(value, (bool, int, float, str))
             else json.dumps(value) for group, values in settings.items()
             for name, value in values.items()}), step)

    def wants_summary(self, step):
        """Whether the step that ends at global step `step` should write its summary."""
        return self.writes and step % self.options.summary_every == 0

    def write_summary(self, step, loss, learning_rate, histograms=None):
        """Writes the training scalars of global step `step` (and its histograms)."""
        self._write('train', step, loss=loss, bits_per_dim=nats_to_bits(loss),
                    learning_rate=learning_rate)
        if histograms is not None:
            self._writers['train'].add_summary(histograms, step)

    def _write(self, writer, step, **scalars):
        """Adds scalar values, tagged with their names, to the events of `writer`."""
        self._writers[writer].add_summary(tf.Summary(value=[
            tf.Summary.Value(tag=tag, simple_value=value) for tag, value in scalars.items()]), step)

    def step_done(self, step, loss, seconds):
        """Records a training step (the global step after it, its loss in nats per sub-pixel,
        its wall time); prints the mean loss and the speed every print_every steps."""
        self._losses.append(loss)
        self._seconds += seconds
        if step % self.options.print_every == 0 or step == self.options.num_steps:
            seconds_per_step = self._seconds / len(self._losses)
            mean_loss = float(np.mean(self._losses))
            print('step %d/%d  loss %.4f  bits/dim %.4f  %.3f s/step  %.0f pixels/s'
                  % (step, self.options.num_steps, mean_loss, nats_to_bits(mean_loss),
                     seconds_per_step, self.options.batch_size * self._model.sequence_length
                     / seconds_per_step), flush=True)
            self._losses, self._seconds = [], 0.0

    def checkpoint_due(self, step):
        """Whether a checkpoint is due after global step `step`."""
        return self.writes and (step % self.options.checkpoint_every == 0
                                or step == self.options.num_steps)

    def save(self, step):
        """Saves a checkpoint, validates, writes a sample grid and prints what it did;
        checkpoints.WriteError when a file cannot be written."""
        if not self.writes:
            return
        # What another process may have planted under the names the save uses goes first.
        remove_stale_temporaries(self.options.logdir)
        try:
            path = self._saver.save(self._session,
                                    os.path.join(self.options.logdir, CHECKPOINT_PREFIX),
                                    global_step=step, write_meta_graph=False)
        except tf.errors.OpError as error:
            raise WriteError('cannot save checkpoint %d (%s)' % (step, reason(error))) from None
        report = ['saved %s' % path]
        if len(self._validation.images):
            bits = self._scorer.bits_per_dim(self._session, self._validation.images,
                                             self._validation.labels)
            self._write('validation', step, bits_per_dim=bits)
            report.append('validation bits/dim %.4f' % bits)
        if self._sampler is not None:
            try:
                self._write_samples(step)
            except OSError as error:
                raise WriteError('cannot write the sample grid of step %d (%s)'
                                 % (step, reason(error))) from None
        for writer in self._writers.values():
            writer.flush()
        print('step %d: %s' % (step, ', '.join(report)), flush=True)

    def _write_samples(self, step):
        """Writes samples/samples-STEP.png and its TensorBoard image (scaled up); a locally
        conditioned model's grid shows triples: a condition, its sample and its source image."""
        model, count = self._model, self.options.num_samples
        labels = np.arange(count) % model.num_classes if model.conditional else None

        def to_images(levels):
            return image_grid.to_images(levels, model.image_size, model.channels,
                                        model.params.quantization_channels)
        if model.condition_shape:
            sources = np.resize(np.asarray(self._examples[:count]),
                                (count,) + model.image_size + (model.channels,))
            conditions = self._session.run(self._derived, {self._images: sources})
            samples = to_images(self._sampler.sample(self._session, count, labels,
                                                     condition=conditions))
            shown = image_grid.condition_images(conditions, model.image_size, model.channels,
                                                model.params.quantization_channels)
            images = np.stack([image for triple in zip(shown, samples, to_images(
                sources.reshape(count, -1))) for image in triple])
            columns = 3 * int(math.ceil(math.sqrt(count)))
        else:
            images = to_images(self._sampler.sample(self._session, count, labels))
            columns = int(math.ceil(math.sqrt(count)))
        grid = image_grid.tile(images, columns)
        image_grid.save_png(os.path.join(self.options.logdir, SAMPLES_FOLDER,
                                         'samples-%d.png' % step), grid)
        zoomed = image_grid.upscale(grid, TENSORBOARD_ZOOM)
        self._writers['train'].add_summary(tf.Summary(value=[tf.Summary.Value(
            tag='samples', image=tf.Summary.Image(
                height=zoomed.shape[0], width=zoomed.shape[1], colorspace=model.channels,
                encoded_image_string=image_grid.encode_png(zoomed)))]), step)

    def close(self):
        """Flushes and closes the event writers."""
        for writer in (self._writers or {}).values():
            writer.close()


def settings_text(settings):
    """A Summary of one text value per group of {group: {name: value}}: a markdown table of
    its names and values, tagged 'settings/GROUP'."""
    metadata = tf.SummaryMetadata(plugin_data=tf.SummaryMetadata.PluginData(plugin_name='text'))
    values = []
    for group, named in settings.items():
        table = '| %s | value |\n|---|---|\n' % group + ''.join(
            '| %s | %s |\n' % (name, json.dumps(value)) for name, value in sorted(named.items()))
        values.append(tf.Summary.Value(tag='settings/' + group, metadata=metadata,
                                       tensor=tf.make_tensor_proto(table)))
    return tf.Summary(value=values)
