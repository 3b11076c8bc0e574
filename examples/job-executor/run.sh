#!/usr/bin/env bash
# A delivery whose deployment and test are run by Keelson's built-in job executor: the deployment
# renders a page for the delivered version and starts a local web server for it; the test probes it
# with curl.
#
# Needs a running Keelson with the job executor enabled:
#   KEELSON_JOB_RUNNER=process KEELSON_JOB_ALLOWED_COMMANDS=sh cargo run --release --bin keelson
# and:
#   KEPTN_ENDPOINT   its URL, e.g. http://127.0.0.1:8080
#   KEPTN_API_TOKEN  its API token
#   KEPTN            the keptn binary (default: keptn on PATH)
#   APP_PORT         the port the deployed server listens on (default 8099)
set -euo pipefail

keptn=${KEPTN:-keptn}
project=${PROJECT:-hello}
port=${APP_PORT:-8099}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

sed "s/\"8099\"/\"$port\"/" "$here/job-config.yaml" > "$work/job-config.yaml"

"$keptn" auth --endpoint "$KEPTN_ENDPOINT" --api-token "$KEPTN_API_TOKEN"
"$keptn" create project "$project" --shipyard "$here/shipyard.yaml"
"$keptn" create service hello --project "$project"
"$keptn" add-resource --project "$project" --stage dev --service hello \
  --resource "$work/job-config.yaml" --resourceUri job/config.yaml
for file in index.html.tmpl deploy.sh; do
  "$keptn" add-resource --project "$project" --stage dev --service hello \
    --resource "$here/app/$file" --resourceUri "app/$file"
done

"$keptn" trigger delivery --project "$project" --service hello --image hello:1.0.0 --watch
curl -fsS "http://127.0.0.1:$port/"
