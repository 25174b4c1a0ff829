#!/usr/bin/env bash
# The seed's chat flow, run as real tool calls through the Infra component:
# record a deployment, read the health summary, open an incident, list incidents, show events.
set -euo pipefail

HOST=${HOST:-target/debug/rusvel-host}
PLUGINS=${PLUGINS:-plugins}
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
