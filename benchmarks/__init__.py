"""Benchmarks of training and generation speed, memory and efficiency (see README.md)."""
