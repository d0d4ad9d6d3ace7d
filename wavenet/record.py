"""The record of a training run: what it trains (params, data shape, classes) and how (options).

A run writes its RunRecord once into its logdir, as `run.json`, and once into each checkpoint
(the string variable `run_spec`), the same JSON both times. Resuming, generating and
evaluating read it back and check the two agree (checkpoints.read_record). Every value is
checked as strictly as the command-line flags that set it, whatever file it comes from.
No TensorFlow here: train.py builds its flags from these definitions before importing it.
"""
import dataclasses
import json
import math

from wavenet.errors import Error
from wavenet.prepared import check_channels, check_classes, check_image_size
from wavenet.params import WaveNetParams

RUN_FILE = 'run.json'
MAX_IMAGE_SIDE = 4096
MAX_SEED = 2 ** 32 - 1  # numpy's and TensorFlow's seeds both accept 0 .. 2**32 - 1
_NOUNS = {int: 'an integer', float: 'a number'}


def _option(default, help_text, kind, choices=None, **bounds):
    """A TrainingOptions field: its default, help text and allowed values (check_option)."""
    return dataclasses.field(default=default, metadata=dict(help=help_text, kind=kind,
                                                            choices=choices, bounds=bounds))


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """How a run trains: chosen when it starts (these defaults where none is given), stored in
    its record, and taken from there when it resumes, so that it goes on exactly as it began."""
    batch_size: int = _option(8, 'images per training step, split between the replicas',
                              int, low=1)
    num_steps: int = _option(4200, 'global step at which training stops; unlike the other '
                             'options it may change when resuming (the cosine schedule then '
                             'stretches to the new end)', int, low=1)
    learning_rate: float = _option(6e-3, 'initial learning rate', float, low=0, above=True)
    learning_rate_schedule: str = _option('cosine', 'constant, or cosine decay to zero at the '
                                          'last step', str, choices=('constant', 'cosine'))
    l2_regularization_strength: float = _option(5e-5, 'weight of the L2 penalty on every '
                                                'weight (not the biases); 0: none', float,
                                                low=0)
    dropout: float = _option(0.0, "share of every layer's gated activations dropped in "
                             'training (not in validation or generation); 0: none', float,
                             low=0, high=1, below=True)
    augment_shift: int = _option(0, 'translate each training image by a random whole number '
                                 'of pixels, up to this many in each direction (edge pixels '
                                 'repeated), less than the image side; 0: none', int, low=0)
    augment_symmetries: float = _option(0.0, 'share of the training images turned by one of '
                                        'the 7 other symmetries of the square (quarter turns, '
                                        'transposes), the model told which (square images '
                                        'only); below 1, as upright images must be trained; '
                                        '0: none', float, low=0, high=1, below=True)
    seed: int = _option(0, 'seed of the initialization, the data order, the split, the '
                        'shifts, symmetries and dropout masks', int, low=0, high=MAX_SEED)
    validation_fraction: float = _option(0.1, 'share of the images held out for validation '
                                         'when the data has no split folders', float, low=0,
                                         high=1, below=True)
    precision: str = _option('fp32', 'fp32, or bf16 mixed precision (matrix products in '
                             'bfloat16; variables, optimizer state and loss in float32) on a '
                             'CPU with bf16 units (AVX512-BF16 or AMX)', str,
                             choices=('fp32', 'bf16'))
    ema_decay: float = _option(0.999, 'decay of the exponential moving average of every '
                               'weight (Polyak averaging), updated with each step and used by '
                               'validation, evaluation and generation; 0: none', float, low=0,
                               high=1, below=True)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            check_option(field.name, getattr(self, field.name))

    @classmethod
    def from_dict(cls, values, source):
        """TrainingOptions from a JSON object (_from_dict)."""
        return _from_dict(cls, values, source)


OPTIONS = {field.name: field for field in dataclasses.fields(TrainingOptions)}


def check_number(value, kind, low, high=None, above=False, below=False):
    """`value` as `kind` (int or float) when it is one from `low` (above it if `above`) to `high`
    (below it if `below`; None: no bound); else Error saying what is allowed."""
    if (isinstance(value, bool) or not isinstance(value, (int,) if kind is int else (int, float))
            or not math.isfinite(value) or (value <= low if above else value < low)
            or (high is not None and (value >= high if below else value > high))):
        number = '%d' if kind is int else '%g'
        allowed = ('above ' if above else 'at least ' if high is None else 'from ') + number % low
        if high is not None:
            allowed += (' to below ' if below else ' to ') + number % high
        raise Error('must be %s %s, got %r' % (_NOUNS[kind], allowed, value))
    return kind(value)


def _read_number(text, kind):
    try:
        return kind(text)
    except ValueError:
        raise Error('%r is not %s' % (text, _NOUNS[kind])) from None


def parse_number(text, kind, low, high=None, above=False, below=False):
    """check_number of `text` read as `kind`; Error when it is not a number."""
    return check_number(_read_number(text, kind), kind, low, high, above, below)


def check_option(name, value):
    """`value` when it is allowed for the option `name`, else Error naming the option."""
    spec = OPTIONS[name].metadata
    if spec['choices'] is None:
        try:
            return check_number(value, spec['kind'], **spec['bounds'])
        except Error as error:
            raise Error('%s %s' % (name, error)) from None
    if value not in spec['choices']:
        raise Error('%s must be one of %s, got %r' % (name, ', '.join(spec['choices']), value))
    return value


def parse_option(name, text):
    """The value of option `name` given as text (a flag); Error when it is not allowed."""
    kind = OPTIONS[name].metadata['kind']
    return check_option(name, text if kind is str else _read_number(text, kind))


def parse_image_size(text):
    """N (square) or HxW as (height, width); Error unless each side is 1 to MAX_IMAGE_SIDE."""
    try:
        sides = tuple(int(part) for part in text.lower().split('x'))
    except ValueError:
        sides = ()
    if len(sides) not in (1, 2) or not all(1 <= side <= MAX_IMAGE_SIDE for side in sides):
        raise Error('expected N or HxW with sides from 1 to %d, got %r' % (MAX_IMAGE_SIDE,
                                                                          text))
    return sides[0], sides[-1]


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """What a run trains and how: everything needed to resume it or rebuild its model.

    Attributes:
        params: the WaveNetParams.
        image_size: (height, width) of every image; None until the data is read.
        channels: 1 (grayscale) or 3 (RGB).
        classes: tuple of class names (() for none); None until the data is read.
        training: the TrainingOptions.
    """
    params: WaveNetParams
    image_size: tuple
    channels: int
    classes: tuple
    training: TrainingOptions

    def __post_init__(self):
        check_channels(self.channels)
        if self.channels > 1 and not self.params.position_channels:
            raise Error('a colour model needs position_channels > 0 in its params: the '
                        'channel of each sub-pixel is fed through the position conditioning')
        if self.classes is not None:
            object.__setattr__(self, 'classes', check_classes(self.classes))
            if self.params.gc_channels and not self.classes:
                raise Error('a class-conditional model (gc_channels %d) needs classes'
                            % self.params.gc_channels)
        if self.image_size is not None:
            size = check_image_size(self.image_size)
            if max(size) > MAX_IMAGE_SIDE:
                raise Error('image_size sides must be at most %d, got %r' % (MAX_IMAGE_SIDE,
                                                                             size))
            object.__setattr__(self, 'image_size', size)
            if self.training.augment_shift >= min(size):
                raise Error('augment_shift=%d must be less than the image side (%dx%d)'
                            % ((self.training.augment_shift,) + size))
            if self.training.augment_symmetries and size[0] != size[1]:
                raise Error('augment_symmetries needs square images, got %dx%d' % size)
            self.params.condition_shape(size, self.channels)

    def to_dict(self):
        """A JSON-ready dict of every field."""
        return {'params': self.params.to_dict(), 'image_size': list(self.image_size),
                'channels': self.channels, 'classes': list(self.classes),
                'training': dataclasses.asdict(self.training)}

    def to_json(self):
        """The record as JSON with sorted keys, as run.json and the checkpoints hold it."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + '\n'

    @classmethod
    def from_dict(cls, values, source):
        """A RunRecord from a JSON object (_from_dict)."""
        if not isinstance(values, dict):
            raise Error('%s must hold a JSON object' % source)
        training = values.get('training')
        if isinstance(training, dict) and 'optimizer' in training:
            # Written before the optimizer was fixed to Adam and weight averaging existed.
            training = dict(training)
            if training.pop('optimizer') != 'adam':
                raise Error('%s was trained with another optimizer than Adam, which this '
                            'version no longer offers: train into a new logdir' % source)
            training.pop('momentum', None)
            training.setdefault('ema_decay', 0.0)
            training.setdefault('num_steps', 4200)  # the default of that version
        if isinstance(training, dict) and 'augment_symmetries' not in training:
            training = dict(training, augment_symmetries=0.0)  # written before they existed
        fields = dict(values, training=TrainingOptions.from_dict(training, source),
                      params=WaveNetParams.from_dict(values.get('params'), source))
        for name in ('image_size', 'classes'):  # None only before a new run reads its data
            if fields.get(name, ()) is None:
                raise Error('%s: %s must not be null' % (source, name))
        return _from_dict(cls, fields, source)

    def differences(self, other):
        """Sorted names of the values (params, data, options) that differ from `other`'s."""
        mine, theirs = _flat(self.to_dict()), _flat(other.to_dict())
        return sorted(name for name in set(mine) | set(theirs)
                      if mine.get(name) != theirs.get(name) and name != 'num_steps')


def _flat(record_dict):
    """{name: value} of a record dict, the params and training options by their own names."""
    flat = {name: value for name, value in record_dict.items()
            if name not in ('params', 'training')}
    flat.update(record_dict['params'])
    flat.update(record_dict['training'])
    return flat


def _from_dict(cls, values, source):
    """cls(**values) for a dataclass, refusing unknown and missing keys; Error naming source."""
    if not isinstance(values, dict):
        raise Error('%s must hold a JSON object for %s' % (source, cls.__name__))
    known = {field.name for field in dataclasses.fields(cls)}
    unknown, missing = sorted(set(values) - known), sorted(known - set(values))
    if unknown or missing:
        raise Error('%s has %s' % (source, '; '.join(
            part for part in ('unknown keys ' + ', '.join(unknown) if unknown else '',
                              'no ' + ', '.join(missing) if missing else '') if part)))
    try:
        return cls(**values)
    except Error as error:
        raise Error('%s: %s' % (source, error)) from None
