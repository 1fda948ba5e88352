"""The one version string: the CLI's ``--version``, the server's OpenAPI document, the exporter's
``clusterwatch_exporter_build_info``."""
__version__ = "0.1.0"
