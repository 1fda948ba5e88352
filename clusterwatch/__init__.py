"""The ClusterWatch command line, configuration and wiring of the components into processes.

Owns: the ``clusterwatch`` console script (``exporter``, ``simulate``, ``serve``, ``demo``...) and
the glue that builds each component from configuration.
Must not touch: component internals; it constructs components through their public factories.
"""
__version__ = "0.1.0"
