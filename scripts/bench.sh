#!/usr/bin/env bash
# npm run bench: start the local stack, compile lifeboat and the benchmark into a
# scratch folder under the stack's state dir, and run bench/index.ts against the
# stack. Arguments go to the benchmark, e.g. `npm run bench -- --json --skip-large`.
# Progress goes to stderr; stdout carries only the table, or the one JSON object.
# (npm prints its own "> lifeboat@… bench" banner on stdout: for clean JSON use
# `npm run --silent bench -- --json` or `bash scripts/bench.sh --json`.)
# See docs/benchmarks.md.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PATH="$(bash scripts/node.sh):$PATH" # Node 24 LTS: the machine's own if new enough, else from the cache
[ -d node_modules ] || npm ci --no-audit --no-fund >&2
bash scripts/stack.sh up >&2
eval "$(bash scripts/stack.sh env)"
export PGPASSFILE="${PGPASSFILE:-$LIFEBOAT_STATE_DIR/secrets/pgpass}"
export AWS_SDK_JS_SUPPRESS_NODE_DEPRECATION_WARNING=1 AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true # the SDK's notices about Node versions: noise here

OUT=$LIFEBOAT_STATE_DIR/bench-build
mkdir -p "$OUT"
echo "[bench] compiling into $OUT" >&2
npx tsc -p tsconfig.json --outDir "$OUT" --incremental --tsBuildInfoFile "$OUT/.tsbuildinfo" >&2
# The compiled tree is <OUT>/{src,bench,test}: src/activities reads ../../package.json
# (the version it writes into manifests), i.e. <OUT>/package.json, and the worker
# bundles <OUT>/src/workflows, whose imports webpack resolves from <OUT> upwards.
# A copy of package.json and a link to node_modules make both work wherever the
# state dir is (it need not be inside the checkout).
cp package.json "$OUT/package.json"
ln -sfn "$ROOT/node_modules" "$OUT/node_modules"
# The worker the benchmark measures loads a prebuilt workflow bundle, as `lifeboat worker` from dist does.
node "$OUT/src/worker/bundle.js" >&2
exec node "$OUT/bench/index.js" "$@"
