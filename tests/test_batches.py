"""wavenet.batches: the images of each step, a function of (seed, step) alone."""
import numpy as np
import pytest

from wavenet.batches import BatchOrder


@pytest.mark.parametrize('num_images,batch_size', [(10, 3), (6, 6), (4, 9), (1, 2)])
def test_every_epoch_holds_every_image_once_and_is_reshuffled(num_images, batch_size):
    num_steps = 3 * num_images  # several epochs, batches crossing epoch boundaries
    order = BatchOrder(num_images, batch_size, seed=3)
    stream = np.concatenate([order.indices(step) for step in range(num_steps)])
    epochs = stream[:len(stream) // num_images * num_images].reshape(-1, num_images)
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(num_images))
    if num_images >= 6:
        assert not all((epoch == epochs[0]).all() for epoch in epochs), 'epochs not reshuffled'


def test_a_batch_depends_on_seed_and_step_only():
    """A fresh order (a resumed run) asked for step 7 first gives what a long run gives."""
    long_run = BatchOrder(50, 8, seed=1)
    batches = [long_run.indices(step) for step in range(10)]
    np.testing.assert_array_equal(BatchOrder(50, 8, seed=1).indices(7), batches[7])
    assert (BatchOrder(50, 8, seed=2).indices(7) != batches[7]).any()
    assert (batches[7] != batches[8]).any()


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match='at least one image'):
        BatchOrder(0, 4, seed=0)
