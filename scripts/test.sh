#!/usr/bin/env bash
# The whole test suite, on a fresh machine of this project's kind: installs what the
# tests need when it is missing (Debian's prometheus for promtool and a real Prometheus,
# docker-compose and amtool to validate deploy/, chromium and a Japanese font for the
# status page, PyYAML for the Kubernetes manifests, the tansu Kafka broker), then runs
# every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# The status page is Japanese: without a CJK font the screenshot shows boxes.
(command -v fc-list >/dev/null && fc-list :lang=ja | grep -q .) || missing+=(fonts-ipafont-gothic)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Kafka tests run a real Kafka-protocol broker, tansu (DESIGN.md, "Real components"),
# unless KAFKA_BROKERS points them at another. Building it takes ~12 minutes, once.
if [ -z "${KAFKA_BROKERS:-}" ] && ! command -v tansu >/dev/null 2>&1; then
  echo "test.sh: installing the tansu broker (cargo install tansu --locked --features dynostore)"
  cargo install tansu --locked --features dynostore
fi
# The PostgreSQL tests use the server of this machine (or DATABASE_URL).
if [ -z "${DATABASE_URL:-}" ] && ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
# deploy/k8s/check.py parses the manifests with PyYAML, from PyPI for the machine's python3.
python3 -c 'import yaml' >/dev/null 2>&1 || python3 -m pip install -q pyyaml
# Debian's prometheus package starts a server on :9090 when installed; the tests start
# their own on free ports and need nothing of it.
pkill -x prometheus >/dev/null 2>&1 || true

cargo test --workspace --locked "$@"
