"""Floating-point operations per pixel of a WaveNet, counted from its params.

A multiply-add counts as 2 FLOPs. Elementwise work (bias adds, tanh, sigmoid, the gating
product, residual additions, ReLUs, the softmax and the loss) is ignored: it is small next
to the matrix products and does not run on the FMA units the peak figure assumes.
Conditioning (gc_channels, position_channels) is not counted either: the model projects the
class and position embeddings once per image or per position, not once per pixel.
"""

TRAINING_MULTIPLIER = 3  # forward + backward (gradients of inputs and of weights: ~2x forward)


def flops_breakdown(params):
    """Forward FLOPs per pixel of each part of the network.

    Args:
        params: a WaveNetParams.
    Returns:
        dict part name -> FLOPs per generated or trained pixel.
    """
    residual, dilation, skip = (params.residual_channels, params.dilation_channels,
                                params.skip_channels)
    levels = params.quantization_channels
    num_layers = len(params.dilations)
    return {
        # One table lookup per tap, then the taps are summed.
        'input_convolution': (params.initial_filter_width - 1) * residual,
        'filter_gate': num_layers * 2 * params.filter_width * residual * 2 * dilation,
        # The last layer has no residual 1x1: its output would feed nothing.
        'residual_1x1': (num_layers - 1) * 2 * dilation * residual,
        'skip_1x1': num_layers * 2 * dilation * skip,
        'output_1x1s': 2 * skip * skip + 2 * skip * levels,
    }


def flops_per_pixel(params):
    """Forward FLOPs per pixel (multiply-add = 2), elementwise ops ignored."""
    return sum(flops_breakdown(params).values())


def training_flops_per_pixel(params):
    """Training FLOPs per pixel, taken as TRAINING_MULTIPLIER x the forward pass."""
    return TRAINING_MULTIPLIER * flops_per_pixel(params)
