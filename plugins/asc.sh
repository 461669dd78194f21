#!/usr/bin/env bash
# Runs the AssemblyScript compiler pinned in package.json / package-lock.json, installing it into
# node_modules/ with `npm ci` first when it is missing or another version. Needs node and npm
# (Debian packages nodejs and npm). Usage: plugins/asc.sh FILE.ts [asc options]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    echo "error: node and npm are needed for AssemblyScript plugins (apt-get install nodejs npm)" >&2
    exit 1
fi
pinned="$(sed -n 's/.*"assemblyscript": "\([0-9.]*\)".*/\1/p' "$here/package.json")"
installed="$(cd "$here" && node -p 'require("assemblyscript/package.json").version' 2>/dev/null || true)"
if [ "$installed" != "$pinned" ]; then
    echo "plugins: installing assemblyscript $pinned (npm ci)" >&2
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
exec node "$here/node_modules/assemblyscript/bin/asc.js" "$@"
