"""Floating-point operations per pixel of a WaveNet, counted from its params.

A multiply-add counts as 2 FLOPs; the output layer has Q units for the softmax, 3K for the
logistic mixture (K logits, means and log-scales). Left out, for both outputs alike: the
elementwise work (biases, tanh, sigmoid, gating, residual additions, ReLUs, the softmax or the
mixture's bin probabilities, the loss) and the class and position conditioning (computed once
per image or position, not per pixel).
"""

TRAINING_MULTIPLIER = 3  # forward + backward (gradients of inputs and of weights: ~2x forward)


def flops_breakdown(params):
    """{part of the network: forward FLOPs per pixel} of a WaveNetParams."""
    residual, dilation, skip = (params.residual_channels, params.dilation_channels,
                                params.skip_channels)
    layers = len(params.dilations)
    outputs = (params.quantization_channels if params.output == 'softmax'
               else 3 * params.mixture_components)
    return {
        'input_convolution': (params.initial_filter_width - 1) * residual,  # summed lookups
        'filter_gate': layers * 2 * params.filter_width * residual * 2 * dilation,
        'residual_1x1': (layers - 1) * 2 * dilation * residual,  # none in the last layer
        'skip_1x1': layers * 2 * dilation * skip,
        'output_1x1s': 2 * skip * skip + 2 * skip * outputs,
    }


def flops_per_pixel(params):
    """Forward FLOPs per pixel (multiply-add = 2), elementwise work left out."""
    return sum(flops_breakdown(params).values())
