"""The PromQL engine: parse with promql-parser, evaluate against the store with Prometheus 2.42's
semantics. ``tsdb.promql.engine.Engine`` is the entry point."""
