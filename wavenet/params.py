"""Typed model hyperparameters, loaded from and written to JSON."""
import dataclasses
import re
from typing import Tuple

from wavenet import files
from wavenet.errors import Error

OUTPUTS = ('softmax', 'logistic_mixture')
_LOCAL_CONDITION = re.compile(r'^(|gray|lowres:([1-9][0-9]?))$')
# Allowed integers: (low, high) of each integer field.
_RANGES = {'filter_width': (1, 64), 'initial_filter_width': (1, 64),
           'residual_channels': (1, 4096), 'dilation_channels': (1, 4096),
           'skip_channels': (1, 4096), 'quantization_channels': (2, 256),
           'gc_channels': (0, 4096), 'position_channels': (0, 4096), 'level_bumps': (0, 256),
           'condition_channels': (1, 4096), 'mixture_components': (1, 256)}
MAX_DILATION, MAX_LAYERS = 1 << 20, 1024


class ParamsError(Error):
    """A params file that is missing, malformed, or holds unknown or invalid values."""


@dataclasses.dataclass(frozen=True)
class WaveNetParams:
    """Architecture of the network; everything generation needs to rebuild it
    (docs/training.md describes each field)."""
    filter_width: int = 2  # taps of every dilated causal convolution
    dilations: Tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256,
                                  1, 2, 4, 8, 16, 32, 64, 128, 256)  # one per residual layer
    residual_channels: int = 32  # width of the residual stream
    dilation_channels: int = 32  # width of the gated activations
    skip_channels: int = 128  # width of the skips and the output stack
    quantization_channels: int = 256  # pixel levels
    use_biases: bool = True
    initial_filter_width: int = 2  # taps of the first causal convolution
    gc_channels: int = 0  # size of the class embedding; 0: unconditional
    position_channels: int = 0  # size of the row, column (and channel) embeddings; 0: none
    level_bumps: int = 0  # smooth functions of the level in the input and softmax weights
    local_condition: str = ''  # '', 'lowres:F' or 'gray'
    condition_channels: int = 32  # width of the condition's features
    output: str = 'softmax'  # or 'logistic_mixture'
    mixture_components: int = 10  # of the logistic mixture

    def __post_init__(self):
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if not _is_int(value) or not low <= value <= high:
                raise ParamsError('%s must be an integer from %d to %d, got %r'
                                  % (name, low, high, value))
        if not isinstance(self.use_biases, bool):
            raise ParamsError('use_biases must be true or false, got %r' % (self.use_biases,))
        if self.level_bumps == 1 or self.level_bumps > self.quantization_channels:
            raise ParamsError('level_bumps must be 0 or from 2 to quantization_channels (%d), '
                              'got %d' % (self.quantization_channels, self.level_bumps))
        dilations = self.dilations
        if (not isinstance(dilations, (list, tuple)) or not 1 <= len(dilations) <= MAX_LAYERS
                or not all(_is_int(d) and 1 <= d <= MAX_DILATION for d in dilations)):
            raise ParamsError('dilations must be a list of 1 to %d integers from 1 to %d, got '
                              '%.200r' % (MAX_LAYERS, MAX_DILATION, dilations))
        object.__setattr__(self, 'dilations', tuple(dilations))
        if not isinstance(self.local_condition, str) or not _LOCAL_CONDITION.match(
                self.local_condition) or self.local_condition in ('lowres:0', 'lowres:1'):
            raise ParamsError("local_condition must be '', 'gray' or 'lowres:F' with F from 2 "
                              'to 99, got %r' % (self.local_condition,))
        if self.output not in OUTPUTS:
            raise ParamsError('output must be one of %s, got %r' % (', '.join(OUTPUTS),
                                                                  self.output))

    @property
    def receptive_field(self):
        """Number of pixels, the predicted one's predecessor included, that one prediction sees."""
        return (self.initial_filter_width - 1) + (self.filter_width - 1) * sum(self.dilations) + 1

    @property
    def condition_factor(self):
        """F of 'lowres:F', 1 for 'gray', None without local conditioning."""
        if not self.local_condition:
            return None
        return int(self.local_condition.split(':')[1]) if ':' in self.local_condition else 1

    def condition_shape(self, image_size, channels):
        """(h, w, c) of the condition image of images of `image_size` and `channels`, or None
        without local conditioning; ParamsError when the condition does not fit them."""
        factor = self.condition_factor
        if factor is None:
            return None
        height, width = image_size
        if self.local_condition == 'gray':
            if channels != 3:
                raise ParamsError("local_condition 'gray' conditions colour images on their "
                                  'luminance: it needs 3 channels, not %d' % channels)
            return height, width, 1
        if height % factor or width % factor:
            raise ParamsError('local_condition lowres:%d needs a factor that divides the image '
                              'sides (%dx%d)' % (factor, height, width))
        return height // factor, width // factor, channels

    def to_dict(self):
        """Returns a JSON-ready dict of every field."""
        fields = dataclasses.asdict(self)
        fields['dilations'] = list(self.dilations)
        return fields

    @classmethod
    def from_dict(cls, fields, source='params'):
        """Builds params from a dict; unknown keys raise ParamsError naming `source`."""
        if not isinstance(fields, dict):
            raise ParamsError('%s must hold a JSON object' % source)
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ParamsError('%s has unknown keys %s (known keys: %s)'
                              % (source, ', '.join(unknown), ', '.join(sorted(known))))
        try:
            return cls(**fields)
        except ParamsError as error:
            raise ParamsError('%s: %s' % (source, error)) from None

    def diff(self, other):
        """Returns the sorted names of the fields whose values differ from `other`."""
        mine, theirs = self.to_dict(), other.to_dict()
        return sorted(name for name in mine if mine[name] != theirs[name])


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def load_params(path):
    """Reads WaveNetParams from a JSON file; ParamsError naming the path on any problem."""
    try:
        fields = files.read_json(path, 'params file')
    except Error as error:
        raise ParamsError(str(error)) from None
    return WaveNetParams.from_dict(fields, source='params file %s' % path)
