#!/bin/sh
# Renders the page for this version and (re)starts a static web server for it.
set -eu
site="${TMPDIR:-/tmp}/keelson-hello-$KEPTN_PROJECT-$KEPTN_STAGE"
mkdir -p "$site"
sed -e "s|{{VERSION}}|$VERSION|g" -e "s|{{PROJECT}}|$KEPTN_PROJECT|g" \
    -e "s|{{STAGE}}|$KEPTN_STAGE|g" -e "s|{{SERVICE}}|$KEPTN_SERVICE|g" \
    app/index.html.tmpl > "$site/index.html"
if [ -f "$site/server.pid" ]; then
  kill "$(cat "$site/server.pid")" 2>/dev/null || true
fi
# In the background, with its own output and from the site's directory (the task's working directory
# is removed when the task ends): the task ends while the server keeps running.
cd "$site"
nohup python3 -m http.server "$APP_PORT" --bind 127.0.0.1 --directory . > server.log 2>&1 &
echo $! > server.pid
echo "hello $VERSION serves $site on 127.0.0.1:$APP_PORT (pid $(cat "$site/server.pid"))"
