#!/usr/bin/env bash
# The seed's chat flow, run as real tool calls through the Infra component:
# record a deployment, read the health summary, open an incident, list incidents, show events.
set -euo pipefail

HOST=${HOST:-target/debug/rusvel-host}
PLUGINS=${PLUGINS:-plugins}
DEMO_SERVICES=${DEMO_SERVICES:-target/debug/demo-services}
DATA_DIR=${DATA_DIR:-.rusvel}
rusvel() { "$HOST" --plugins "$PLUGINS" --data-dir "$DATA_DIR" "$@"; }

step() { printf '\n== %s\n' "$*"; }

step "Loaded departments"
rusvel plugins

step "Deploy rusvel-api v0.3.0 to production (infra.deploy.trigger)"
rusvel infra tool infra.deploy.trigger \
  '{"service":"rusvel-api","version":"v0.3.0","environment":"production"}'

step "Health summary (infra.monitor.status)"
rusvel infra tool infra.monitor.status '{}'

step "Open an incident (infra.incidents.create)"
rusvel infra tool infra.incidents.create \
  '{"title":"rusvel-api p99 latency above 2s","description":"Latency rose after the v0.3.0 rollout.","severity":"P2"}'

step "Incidents (infra.incidents.list)"
rusvel infra tool infra.incidents.list '{}'

step "Infra events"
rusvel infra events

step "Department status"
rusvel infra status

# ---- Monitoring: real HTTP probes from inside the sandbox ----

# Three services on loopback: healthy, slow (400 ms) and failing (503). The plugin's sidecar
# (plugins/infra.json) allows outbound HTTP to 127.0.0.1 only.
SERVICES_OUT=$(mktemp)
"$DEMO_SERVICES" --seconds 120 >"$SERVICES_OUT" &
SERVICES_PID=$!
trap 'kill "$SERVICES_PID" 2>/dev/null || true; rm -f "$SERVICES_OUT"' EXIT
for _ in $(seq 50); do [ -s "$SERVICES_OUT" ] && break; sleep 0.1; done
BASE=$(head -n1 "$SERVICES_OUT")
[ -n "$BASE" ] || { echo "demo services did not start" >&2; exit 1; }

# A session of its own per run, so checks from earlier runs (on other ports) stay apart.
MONITOR_SESSION=$(cat /proc/sys/kernel/random/uuid)
monitor() {
  local tool=$1 args=${2:-}
  rusvel infra tool "$tool" "{\"session_id\":\"$MONITOR_SESSION\"${args:+,$args}}"
}
# Prints one line per probe: service, verdict, status code or error, latency, status.
summarise_run() { python3 "$(dirname "$0")/summarise_probes.py"; }

step "Register checks against $BASE (healthy, slow, failing)"
monitor infra.monitor.add_check "\"service\":\"rusvel-api\",\"endpoint\":\"$BASE/healthy\"" >/dev/null
monitor infra.monitor.add_check "\"service\":\"rusvel-search\",\"endpoint\":\"$BASE/slow\",\"degraded_ms\":200,\"response_limit_ms\":2000" >/dev/null
monitor infra.monitor.add_check "\"service\":\"rusvel-billing\",\"endpoint\":\"$BASE/failing\",\"failure_threshold\":3" >/dev/null
echo "3 checks registered in session $MONITOR_SESSION; to look at them later:"
echo "  rusvel-host infra tool infra.monitor.status '{\"session_id\":\"$MONITOR_SESSION\"}'"

for round in 1 2 3; do
  step "Probe round $round (infra.monitor.run)"
  monitor infra.monitor.run | summarise_run || true
done

step "Health summary after three rounds"
monitor infra.monitor.status

step "Alert events (one per transition into Degraded or Down)"
# Only this run's session: the event log keeps the alerts of earlier runs too.
rusvel --json infra events --limit 500 | python3 -c '
import json, sys
alerts = [e for e in json.load(sys.stdin)
          if e.get("session_id") == sys.argv[1] and e["kind"].startswith("infra.alert.")]
for e in alerts:
    p = e["payload"]
    print(e["created_at"], e["kind"], p.get("service"), p.get("status"), "-", p.get("reason"))
print(f"{len(alerts)} alert event(s) in session {sys.argv[1]}")
' "$MONITOR_SESSION"

step "Incident opened automatically for the Down check (auto_open_incident in plugins/infra.json)"
monitor infra.incidents.list '"status":"open"'

step "Schedule a health scan every minute (infra.monitor.schedule -> durable job queue)"
SCHEDULED=$(monitor infra.monitor.schedule '"every_minutes":1')
echo "$SCHEDULED"
JOB_ID=$(printf '%s' "$SCHEDULED" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
rusvel jobs --kind infra.health_scan --limit 3
echo "(\`rusvel-host worker\` runs due jobs; this demo cancels its schedule instead)"
rusvel jobs cancel "$JOB_ID"
