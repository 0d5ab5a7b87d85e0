#!/usr/bin/env bash
# npm test: start the local stack (real Temporal, PostgreSQL, ClickHouse, MinIO on
# 127.0.0.1), build the CLI that some tests run (and the workflow bundle every
# test worker loads), then run jest against the stack (transpiled only: `npm run lint` type-checks).
# Extra arguments go to jest, e.g. `npm test -- test/unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(bash scripts/node.sh):$PATH" # Node 24 LTS: the machine's own if new enough, else from the cache
[ -d node_modules ] || npm ci --no-audit --no-fund
bash scripts/stack.sh up >&2
eval "$(bash scripts/stack.sh env)"
npm run --silent build >&2
# Workers load the workflow bundle the build just wrote instead of bundling at every start.
export LIFEBOAT_WORKFLOW_BUNDLE="$PWD/dist/workflow-bundle.js"
export LIFEBOAT_LOG_LEVEL="${LIFEBOAT_LOG_LEVEL:-ERROR}" AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
exec npx jest "$@"
