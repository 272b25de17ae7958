"""Compose, build, cache, save and restore the code-server image from Python objects."""

__all__ = ["__version__"]
__version__ = "0.1.0"
