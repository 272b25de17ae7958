"""Benchmarks (``make bench``): each prints its figures beside a baseline run in the same invocation."""
