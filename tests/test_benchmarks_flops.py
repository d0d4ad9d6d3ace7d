"""benchmarks/flops.py: FLOPs per pixel against hand counts and the model's weight shapes."""
import math
import os

import tensorflow.compat.v1 as tf

from benchmarks.flops import flops_breakdown, flops_per_pixel, training_flops_per_pixel
from wavenet.model import WaveNetModel
from wavenet.params import WaveNetParams, load_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = WaveNetParams(filter_width=3, initial_filter_width=4, dilations=(1, 2, 4),
                      residual_channels=5, dilation_channels=7, skip_channels=11,
                      quantization_channels=13)


def test_small_params_match_a_hand_count():
    assert flops_breakdown(SMALL) == {
        'input_convolution': 3 * 5,           # 15 additions of looked-up taps
        'filter_gate': 3 * 2 * 3 * 5 * 14,    # 1260
        'residual_1x1': 2 * 2 * 7 * 5,        # 140: not in the last layer
        'skip_1x1': 3 * 2 * 7 * 11,           # 462
        'output_1x1s': 2 * 11 * 11 + 2 * 11 * 13,  # 528
    }
    assert flops_per_pixel(SMALL) == 2405
    assert training_flops_per_pixel(SMALL) == 3 * 2405


def test_default_and_anchor_params_match_a_hand_count():
    # Both 32 residual and dilation channels, filter widths 2: the filter+gate conv is
    # 2 * 2 * 32 * 64 = 8192 per layer and the residual 1x1 2 * 32 * 32 = 2048.
    # Defaults: 18 layers, skip 128 (2 * 32 * 128 = 8192 per layer, outputs 32768 + 65536).
    assert flops_per_pixel(WaveNetParams()) == 32 + 18 * 8192 + 17 * 2048 + 18 * 8192 + 98304
    # Anchor: 20 layers, skip 256 (2 * 32 * 256 = 16384 per layer, outputs 2 * 131072).
    anchor = load_params(os.path.join(ROOT, 'benchmarks', 'params', 'anchor.json'))
    assert anchor.dilations == tuple(2 ** i for i in range(10)) * 2
    assert flops_per_pixel(anchor) == 32 + 20 * 8192 + 19 * 2048 + 20 * 16384 + 2 * 131072


def test_count_equals_two_flops_per_weight_of_the_model():
    """Each weight matrix multiplies once per pixel; the input tables are lookups."""
    with tf.Graph().as_default():
        model = WaveNetModel(SMALL, (4, 4))
        matrices = [weight for weight in model.weights if 'input/tables' not in weight.name]
        multiply_adds = sum(math.prod(weight.shape.as_list()) for weight in matrices)
    additions = (SMALL.initial_filter_width - 1) * SMALL.residual_channels
    assert flops_per_pixel(SMALL) == 2 * multiply_adds + additions
