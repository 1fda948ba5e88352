"""The notification pipeline (Alertmanager's stages): route, group, inhibit, silence, then
receivers with durable delivery. ``Pipeline(config, db).notify(alerts)`` is the entry point."""
