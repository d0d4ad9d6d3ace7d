"""Benchmarks: speed, memory and efficiency, scaling out, conditioning, training curves."""


def table(header, rows):
    """A markdown table from a header 'a|b|c' and rows of strings."""
    return '\n'.join(['| %s |' % header.replace('|', ' | '), '|---' * (header.count('|') + 1)
                      + '|'] + ['| %s |' % ' | '.join(row) for row in rows])
