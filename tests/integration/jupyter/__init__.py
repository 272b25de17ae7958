"""JupyterLab, jupyter-server-proxy and the launcher card, with a stand-in or the real wrapper."""
