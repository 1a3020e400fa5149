#!/usr/bin/env bash
# The whole test suite, on a fresh machine of this project's kind: installs what the
# tests need when it is missing (Debian's prometheus for promtool and a real Prometheus,
# docker-compose to validate deploy/, chromium for the status page, PyYAML for the
# Kubernetes manifests), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's prometheus package starts a server on :9090 when installed; the tests start
# their own on free ports and need nothing of it.
pkill -x prometheus >/dev/null 2>&1 || true

cargo test --workspace --locked "$@"
