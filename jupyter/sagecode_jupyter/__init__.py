"""Register sagecode's code-server with jupyter-server-proxy: one launcher card, no config edits.

This package is installed into the Jupyter server's environment and uses nothing but the
standard library; the editor itself is started by the wrapper in sagecode's own venv.
"""

__version__ = "0.1.0"
