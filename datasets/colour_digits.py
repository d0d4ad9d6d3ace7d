"""Makes a colour dataset from the bundled digits: coloured strokes on coloured backgrounds.

    python -m datasets.colour_digits --out=DIR [--digits=datasets/digits] [--seed=0]

Each image gets a stroke colour and a background colour drawn at random (seeded, uniform RGB);
a pixel of gray level g becomes background + (stroke - background) * g / 255, rounded, so the
anti-aliased edges blend the two. Split and class folders are those of the digits. Its
luminance (the `gray` local condition) is then a grayscale digit on a gray background.
"""
import os

import numpy as np
from PIL import Image

from wavenet import cli, errors, reader


def main(argv=None):
    parser = cli.ArgumentParser(prog='python -m datasets.colour_digits',
                                description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='output folder, missing or empty')
    parser.add_argument('--digits', default=os.path.join(os.path.dirname(__file__), 'digits'),
                        help='the grayscale digits (default: datasets/digits)')
    parser.add_argument('--seed', type=cli.seed, default=0, help='seed of the colours')
    args = parser.parse_args(argv)
    if os.path.exists(args.out) and not (os.path.isdir(args.out) and not os.listdir(args.out)):
        raise errors.Error('--out=%s is not an empty folder: choose a new one' % args.out)
    paths = reader.list_image_files(args.digits, required=True)
    colours = np.random.default_rng(args.seed).integers(0, 256, (len(paths), 2, 3))
    try:
        for path, (stroke, background) in zip(paths, colours):
            gray = reader.load_image(path)[..., None] / 255.0  # [H, W, 1]
            image = np.round(background + (stroke - background) * gray).astype(np.uint8)
            out = os.path.join(args.out, os.path.relpath(path, args.digits))
            os.makedirs(os.path.dirname(out), exist_ok=True)
            Image.fromarray(image, 'RGB').save(out)
    except OSError as error:
        raise errors.Error('cannot write %s: %s' % (args.out, errors.reason(error))) from None
    print('wrote %d colour digits to %s' % (len(paths), args.out))


if __name__ == '__main__':
    cli.run_main(main)
