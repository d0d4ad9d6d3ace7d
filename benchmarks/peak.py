"""The machine's measured peak: GFLOP/s of one large matrix product through TensorFlow.

The benchmarks report every efficiency against this figure rather than a model of the CPU
(cores x clock x FLOPs per cycle), which is wrong where a CPU's vector units differ from
the model's (AVX-512 and AMX CPUs, or a clock that /proc/cpuinfo does not report).
"""
import statistics
import time

import numpy as np

MATMUL_SIZE = 2048
REPEATS = 5


def matmul_gflops(tf, dtype, size=MATMUL_SIZE, repeats=REPEATS):
    """GFLOP/s of a [size, size] x [size, size] product (2 size^3 FLOPs) in `dtype`.

    The operands are variables (nothing to fold into a constant); the median of `repeats`
    products after one warm-up is reported. A CPU without bf16 units still multiplies in
    bf16, slowly (converting).

    Args:
        tf: tensorflow.compat.v1.
        dtype: tf.float32 or tf.bfloat16.
        size: the matrices' side.
        repeats: timed products.
    """
    rng = np.random.default_rng(0)
    with tf.Graph().as_default():
        left, right = (tf.Variable(tf.cast(rng.standard_normal((size, size)).astype(np.float32),
                                           dtype)) for _ in range(2))
        # The sum adds size^2 FLOPs to the product's 2 size^3, and keeps the fetch small.
        product = tf.reduce_sum(tf.cast(tf.matmul(left, right), tf.float32))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            seconds = []
            for repeat in range(repeats + 1):
                started = time.perf_counter()
                session.run(product)
                if repeat:
                    seconds.append(time.perf_counter() - started)
    return 2 * size ** 3 / statistics.median(seconds) / 1e9
