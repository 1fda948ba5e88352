"""The embedded metrics store: scraper, in-memory columnar storage, PromQL engine, Prometheus HTTP API.

Owns: ingestion of exposition text, retention, the PromQL evaluation and the ``/api/v1`` routes.
Must not touch: what the metrics mean (no GPU or job knowledge here); everything above it
reaches it only through PromQL, so that a real Prometheus can replace it by URL.
"""
