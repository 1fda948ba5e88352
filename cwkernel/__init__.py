"""The floor under every ClusterWatch package: what several components share and none owns.

Owns: the server component contract (``Component``, ``Deps``: every component module's
``build(values, deps)``; ``build_app``) and the HTTP front door in front of it (admission, body
limits, security headers, connection guard, descriptor budget), settings (``Option``: flag,
environment variable and config key from one declaration), durations, errors, operator
authentication, health reporting (and the loops' watch: ``loopwatch``, the ``/-/live`` verdict and
systemd's readiness and watchdog, ``sdnotify``), the process's memory bound (``memguard``), process
lifecycle, configuration reloads (SIGHUP, ``/-/reload``: ``reload``), the garbage-collector policy and pause, log
throttling, the version, the metric-table library (``MetricSpec``, ``FamilySet``), the names
of Prometheus's data model that several packages use (``Labels``, ``STALE_NAN``), the envelope of
its HTTP API (``promapi``), gzip for answers off the event loop (``compress``) and Go's spelling of numbers, strings and durations (``gotext``), the bounded
readers of what crosses the process boundary (configuration and other files, outbound HTTP,
child processes: ``configfile``, ``boundedread``, ``httpdeadline``, ``boundedproc``), and the
names of what a job says of itself in a node's textfile directory, which the exporter stamps with
its writer and the scheduler side reads (``jobmarks``).
Must not touch: any other ClusterWatch package (``tsdb``, ``exporter``, ``scheduler``,
``simulator``, ``alerts``, ``remediation``, ``dashboard``, ``clusterwatch``). It is the bottom
layer: it says what a component is and knows none of them.
"""
