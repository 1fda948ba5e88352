#!/usr/bin/env bash
# Installs the real servers the integration tests run against, from Debian packages, when it can
# (root with apt-get). Where it cannot, it says so and the tests that need them skip with the
# reason, except under CI=true, where tests/realcomponents.py turns a missing one into a failure.
set -u
PACKAGES=(
  prometheus                # Prometheus 2.42 + promtool
  prometheus-alertmanager   # Alertmanager 0.25 + amtool
  prometheus-node-exporter  # the peer the exporter benchmark compares against
  victoria-metrics          # VictoriaMetrics + vmalert
  slurmctld slurmd slurm-client munge
  chromium
  systemd                   # systemd-analyze, which checks the server's unit file
)
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-components: all real components present"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-components: cannot install ${missing[*]} (needs root and apt-get); tests that need them will skip"
  exit 0
fi
echo "install-components: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
  echo "install-components: apt-get failed for ${missing[*]}" >&2
  [ "${CI:-}" = "true" ] && exit 1
fi
exit 0
