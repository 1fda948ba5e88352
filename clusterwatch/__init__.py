"""The ClusterWatch command line and the wiring of the components into processes.

Owns: the ``clusterwatch`` console script and its commands (``exporter``, ``simulate``, ``serve``,
``demo``, ``rules``, ``scrape-config``, ``grafana-dashboard``), the generated references
(docs/configuration.md, docs/metrics.md) and the wiring: ``serve`` builds every server component
through its module's ``build(values, deps)`` (``cwkernel.server.Deps``).
Must not touch: component internals (it constructs components through their factories); and
nothing imports it: it is the top layer (tests/test_layers.py).
"""
from cwkernel.version import __version__  # noqa: F401 - clusterwatch.__version__, as before
