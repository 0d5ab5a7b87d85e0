#!/usr/bin/env bash
# npm run drill: the main job on the embedded local stack. Starts the stack,
# runs a worker inside the CLI process, and drills every configured target in
# place (seed markers, back up, drop, restore, count), printing the times and
# the Web UI link of the run; then the PITR drill (docs/pitr.md). Extra arguments go to `lifeboat drill`.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(bash scripts/node.sh):$PATH" # Node 24 LTS: the machine's own if new enough, else from the cache
[ -d node_modules ] || npm ci --no-audit --no-fund
bash scripts/stack.sh up >&2
eval "$(bash scripts/stack.sh env)"
npm run --silent build >&2
node bin/lifeboat drill --mode in-place --with-worker "$@"
# Then the PITR drill of the targets with a pitr: section (the stack's app-pg): restore to a time
# between two marker batches into a scratch copy beside the server, which is never touched.
exec node bin/lifeboat drill --pitr --with-worker "$@"
