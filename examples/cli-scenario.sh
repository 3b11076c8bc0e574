#!/usr/bin/env bash
# A first delivery with the keptn CLI: create a project, onboard a service, trigger a delivery and
# watch it, approve the production rollout.
#
# Needs a running Keelson (cargo run --release --bin keelson) and:
#   KEPTN_ENDPOINT   its URL, e.g. http://127.0.0.1:8080
#   KEPTN_API_TOKEN  its API token
#   KEPTN            the keptn binary (default: keptn on PATH)
set -euo pipefail

keptn=${KEPTN:-keptn}
project=${PROJECT:-podtatohead}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/shipyard.yaml" <<'YAML'
apiVersion: spec.keptn.sh/0.2.2
kind: Shipyard
metadata:
  name: shipyard-podtatohead
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: evaluation
              properties:
                timeframe: 5m
    - name: production
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: approval
              properties:
                pass: manual
                warning: manual
YAML

"$keptn" auth --endpoint "$KEPTN_ENDPOINT" --api-token "$KEPTN_API_TOKEN"
"$keptn" create project "$project" --shipyard "$work/shipyard.yaml"
"$keptn" create service helloservice --project "$project"
"$keptn" get service helloservice --project "$project"

# The delivery is watched in the background while the production approval is given.
"$keptn" trigger delivery --project "$project" --service helloservice \
  --image ghcr.io/podtato-head/podtatoserver:v0.1.1 --labels owner=scenario --watch > "$work/watch.log" 2>&1 &
watcher=$!

for _ in $(seq 1 60); do
  if ! "$keptn" get event approval.triggered --project "$project" --stage production | grep -q "No approval.triggered events"; then
    break
  fi
  sleep 1
done
"$keptn" approve --project "$project" --stage production --service helloservice

if wait "$watcher"; then
  cat "$work/watch.log"
  echo "delivery of helloservice finished"
else
  status=$?
  cat "$work/watch.log"
  echo "delivery failed (exit $status)" >&2
  exit "$status"
fi
