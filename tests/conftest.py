"""Test set-up: the project root on sys.path, TensorFlow in TF1 graph mode, quiet."""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# Lets train.py's --xla reach the CPU in runs in this process (TensorFlow reads it once).
os.environ.setdefault('TF_XLA_FLAGS', '--tf_xla_cpu_global_jit')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tensorflow.compat.v1 as tf  # noqa: E402

tf.disable_v2_behavior()
tf.get_logger().setLevel('ERROR')
