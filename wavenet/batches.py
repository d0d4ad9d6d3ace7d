"""The order of the training images: which images each step's batch holds.

The stream of images is the concatenation of one seeded permutation per epoch, so the batch
of a step is a function of (seed, step) alone: a resumed run sees what an uninterrupted one
would, and each replica of a distributed run can take its slice of the step's batch by
itself. No TensorFlow here: training gathers a batch with one tf.numpy_function call, from
arrays in memory or memory-mapped files alike.
"""
import threading

import numpy as np


class BatchOrder:
    """The images of every step's batch: N = `num_images` per epoch, B = `batch_size` per step
    (the global batch of a distributed run), in an order chosen by the run's `seed`."""

    def __init__(self, num_images, batch_size, seed):
        if num_images < 1 or batch_size < 1:
            raise ValueError('need at least one image and a batch of at least one, got %d '
                             'and %d' % (num_images, batch_size))
        self.num_images, self.batch_size, self.seed = num_images, batch_size, seed
        self._permutations = {}  # epoch -> permutation, the last few epochs used
        self._lock = threading.Lock()  # the replicas of a step may ask at the same time

    def permutation(self, epoch):
        """The order of the images in `epoch`: int64 [N], a function of (seed, epoch)."""
        with self._lock:
            if epoch not in self._permutations:
                if len(self._permutations) > 2:
                    self._permutations.pop(min(self._permutations))
                rng = np.random.default_rng([self.seed, epoch])
                self._permutations[epoch] = rng.permutation(self.num_images)
            return self._permutations[epoch]

    def indices(self, step):
        """The images of batch number `step`: int64 [B], indices into the N images."""
        positions = int(step) * self.batch_size + np.arange(self.batch_size)
        epochs, places = np.divmod(positions, self.num_images)
        found = np.empty(self.batch_size, np.int64)
        for epoch in np.unique(epochs):
            chosen = epochs == epoch
            found[chosen] = self.permutation(int(epoch))[places[chosen]]
        return found
