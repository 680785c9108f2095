"""Eager PyTorch runtime: neuron kernels, surrogates and the compiled module."""
