#!/usr/bin/env bash
# Prints the folder of the Node.js lifeboat runs on: the machine's own when it
# is Node 24 or newer, otherwise Node 24 LTS from the npm registry's
# node-linux-<arch> package (the official binary), unpacked once into the cache.
#
# Usage: PATH="$(bash scripts/node.sh):$PATH"
set -euo pipefail
umask 022

NODE_VERSION=24.22.3 # Node 24 LTS; keep in sync with package.json engines, the Dockerfile and docs/stack.md
CACHE=$(realpath -m "${LIFEBOAT_CACHE_DIR:-$HOME/.cache/lifeboat}")

if command -v node >/dev/null && (($(node -p 'process.versions.node.split(".")[0]') >= 24)); then
  dirname "$(command -v node)"
  exit 0
fi

case $(uname -m) in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "[node] no Node.js $NODE_VERSION package for $(uname -m); install Node.js 24 yourself" >&2; exit 1 ;;
esac
dir=$CACHE/node-v$NODE_VERSION-linux-$arch
if [[ ! -x $dir/bin/node ]]; then
  echo "[node] installing Node.js $NODE_VERSION into $dir (npm registry: node-linux-$arch)" >&2
  tmp=$(mktemp -d "$CACHE/node.XXXXXX" 2>/dev/null || { mkdir -p "$CACHE" && mktemp -d "$CACHE/node.XXXXXX"; })
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$NODE_VERSION" >/dev/null) ||
    { echo "[node] npm pack node-linux-$arch@$NODE_VERSION failed" >&2; exit 1; }
  tar -xzf "$tmp"/node-linux-"$arch"-*.tgz -C "$tmp" package/bin/node package/LICENSE
  "$tmp/package/bin/node" --version >/dev/null
  rm -rf "$dir" && mv "$tmp/package" "$dir"
fi
echo "$dir/bin"
