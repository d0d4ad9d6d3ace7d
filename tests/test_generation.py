"""wavenet.generation: lanes and threads of fast generation."""
from wavenet import generation


def test_one_lane_per_core_once_each_lane_has_enough_images():
    per_lane = generation.MIN_IMAGES_PER_LANE
    assert generation.lanes_for(1, cores=2) == 1
    assert generation.lanes_for(2 * per_lane - 1, cores=2) == 1
    assert generation.lanes_for(2 * per_lane, cores=2) == 2
    assert generation.lanes_for(256, cores=2) == 2
    assert generation.lanes_for(256, cores=8) == 8
    assert generation.lanes_for(3 * per_lane, cores=8) == 3


def test_session_config_gives_one_thread_per_lane_and_per_op():
    config = generation.session_config(3)
    assert config.intra_op_parallelism_threads == 1
    assert config.inter_op_parallelism_threads == 3
