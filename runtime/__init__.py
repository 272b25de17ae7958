"""Run the code-server image on a notebook instance: the drop-in wrapper, the home, the CLI."""
