"""The embedded metrics store: scraper, in-memory columnar storage, PromQL engine, Prometheus HTTP API.

Owns: ingestion of exposition text, retention, the PromQL evaluation and the ``/api/v1`` routes.
Must not touch: what the metrics mean (no GPU or job knowledge here: no ``exporter`` or
``scheduler``); everything above it reaches it only through PromQL (``tsdb.client``), so that a
real Prometheus can replace it by URL.
"""
