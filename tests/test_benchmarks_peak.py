"""The measured peak of benchmarks/run.py: one matrix product through TensorFlow."""
import tensorflow.compat.v1 as tf

from benchmarks.peak import matmul_gflops


def test_the_peak_is_a_positive_rate_in_both_precisions():
    for dtype in (tf.float32, tf.bfloat16):
        gflops = matmul_gflops(tf, dtype, size=256, repeats=2)
        # Above 0.01 GFLOP/s (a 256x256 product in under 3 s) and below 100 TFLOP/s.
        assert 0.01 < gflops < 1e5, (dtype, gflops)
