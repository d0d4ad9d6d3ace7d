"""Typed model hyperparameters, loaded from and written to JSON."""
import dataclasses
import json
from typing import Tuple


class ParamsError(ValueError):
    """A params file that is missing, malformed, or holds unknown or invalid values."""


@dataclasses.dataclass(frozen=True)
class WaveNetParams:
    """Architecture of the network; everything generation needs to rebuild it.

    Attributes:
        filter_width: taps of every dilated causal convolution.
        dilations: dilation of each residual layer, in order.
        residual_channels: width of the residual stream.
        dilation_channels: width of the gated (tanh x sigmoid) activations.
        skip_channels: width of the skip connections and the post-processing.
        quantization_channels: number of pixel levels (256 for 8-bit images).
        use_biases: add a bias to every convolution.
        initial_filter_width: taps of the first causal convolution over the pixels.
        gc_channels: size of the learned class embedding added to every layer (global
            conditioning); 0 for an unconditional model.
        position_channels: size of the learned row and column embeddings of the predicted
            pixel added to every layer (local conditioning); 0 for none.
        level_bumps: number of smooth functions of the pixel level (Gaussian bumps spread
            evenly over the levels) whose learned combinations are added to the input tables
            and to the output weights, so that what the network learns about one level
            carries over to its neighbours; 0 for none, else 2 to quantization_channels.
    """
    filter_width: int = 2
    dilations: Tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256,
                                  1, 2, 4, 8, 16, 32, 64, 128, 256)
    residual_channels: int = 32
    dilation_channels: int = 32
    skip_channels: int = 128
    quantization_channels: int = 256
    use_biases: bool = True
    initial_filter_width: int = 2
    gc_channels: int = 0
    position_channels: int = 0
    level_bumps: int = 0

    def __post_init__(self):
        for name in ('filter_width', 'residual_channels', 'dilation_channels', 'skip_channels',
                     'initial_filter_width'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ParamsError('%s must be a positive integer, got %r' % (name, value))
        for name in ('gc_channels', 'position_channels', 'level_bumps'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ParamsError('%s must be an integer >= 0, got %r' % (name, value))
        if not isinstance(self.use_biases, bool):
            raise ParamsError('use_biases must be true or false, got %r' % (self.use_biases,))
        if (not isinstance(self.quantization_channels, int)
                or not 2 <= self.quantization_channels <= 256):
            raise ParamsError('quantization_channels must be an integer from 2 to 256, got %r'
                              % (self.quantization_channels,))
        if self.level_bumps == 1 or self.level_bumps > self.quantization_channels:
            raise ParamsError('level_bumps must be 0 or from 2 to quantization_channels (%d), '
                              'got %d' % (self.quantization_channels, self.level_bumps))
        dilations = self.dilations
        if (not isinstance(dilations, (list, tuple)) or not dilations
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1
                           for d in dilations)):
            raise ParamsError('dilations must be a non-empty list of positive integers, got %r'
                              % (dilations,))
        object.__setattr__(self, 'dilations', tuple(dilations))

    @property
    def receptive_field(self):
        """Number of pixels, the predicted one's predecessor included, that one prediction sees."""
        return ((self.initial_filter_width - 1)
                + (self.filter_width - 1) * sum(self.dilations) + 1)

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


def load_params(path):
    """Reads WaveNetParams from a JSON file, raising ParamsError with the path on any problem."""
    try:
        with open(path) as json_file:
            fields = json.load(json_file)
    except FileNotFoundError:
        raise ParamsError('params file %s does not exist' % path) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ParamsError('cannot read params file %s: %s' % (path, error)) from None
    except json.JSONDecodeError as error:
        raise ParamsError('params file %s is not valid JSON (%s)' % (path, error)) from None
    return WaveNetParams.from_dict(fields, source='params file %s' % path)
