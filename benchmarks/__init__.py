"""Benchmarks: throughput, scale, learning curves and the GPU checks, each runnable as a module."""
