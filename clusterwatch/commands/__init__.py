"""Sub-commands of the ``clusterwatch`` console script, one module each."""
