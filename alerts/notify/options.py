"""The alerting settings of ``clusterwatch serve`` (flags, env vars, config keys). Kept apart
from the pipeline so that building the CLI does not import it."""
from __future__ import annotations

from cwkernel import settings
from cwkernel.settings import Option

OPTIONS = (
    Option("alerting_config", None, "alerting.yml in Alertmanager's format: route, receivers, inhibit_rules "
           "(default: everything to a log-only receiver)", settings.optional_path, "FILE"),
    Option("state_dir", None, "directory for the SQLite state: silences, acknowledgements, notification outbox "
           "and log (default: in memory, lost at exit)", settings.optional_path, "DIR"),
    Option("operator_token", None, "token for state-changing API calls (prefer the environment variable: flags "
           "show in ps)", settings.optional_path, "TOKEN"),
    Option("webhook_token", None, "bearer token an Alertmanager must send to /api/v1/alertmanager/webhook",
           settings.optional_path, "TOKEN"),
    # The outbox's DEFAULT_MAX_PENDING_PER_RECEIVER (not imported: building the CLI stays light).
    Option("notification_queue_max", 10_000, "most notifications waiting per receiver "
           "(a dead one's pile stays bounded); past it that receiver's oldest are dropped and counted in "
           "clusterwatch_notifications_dropped_total", settings.positive_int, "N"),
    Option("heartbeat_url", None, "a dead man's switch (healthchecks.io, Dead Man's Snitch, a PagerDuty or Opsgenie "
           "heartbeat) POSTed to every --heartbeat-interval while the server's scrape, rule, notification, scheduler "
           "and remediation loops run; its silence pages when ClusterWatch itself has stopped (prefer the "
           "environment variable: the URL holds the check's secret)", settings.http_url, "URL"),
    Option("heartbeat_interval", 60.0, "time between two heartbeats", settings.duration, "DURATION"),
    # alerts.notify.pipeline.DEFAULT_MAX_ALERTS, for the same reason.
    Option("alerts_max", 500_000, "most alerts held from the inbound webhook (Cortex's "
           "alertmanager_max_alerts_count; resolved ones count until they are forgotten, 15 minutes on); past it a "
           "new alert is refused with a 429, while held ones are still updated and resolved; 0: no limit",
           settings.limit, "N"),
    # alerts.silences.DEFAULT_MAX_SILENCES, for the same reason.
    Option("silences_max", 20_000, "most silences active or pending at once (Alertmanager's "
           "--silences.max-silences); past it a new one is refused with a 400 until some expire; 0: no limit",
           settings.limit, "N"),
)
