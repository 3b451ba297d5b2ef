"""Compute kernels that replace a library's, as module swaps behind the layer they speed up."""
