#!/usr/bin/env bash
# The whole test suite, on a fresh machine of this project's kind: installs what the
# tests need when it is missing (Debian's prometheus for promtool and a real Prometheus,
# docker-compose and amtool to validate deploy/, chromium and a Japanese font for the
# status page and the report, poppler-utils for the report's PDF pages, PyYAML for the Kubernetes manifests, the tansu Kafka broker, cargo-fuzz),
# then runs every test of the workspace and each fuzz target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# The council report's PDF is rendered to PNG pages with pdftoppm.
command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)
# The status page is Japanese: without a CJK font the screenshot shows boxes.
(command -v fc-list >/dev/null && fc-list :lang=ja | grep -q .) || missing+=(fonts-ipafont-gothic)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Kafka tests run a real Kafka-protocol broker, tansu (docs/architecture.md, "Real components"),
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

# Fuzzing (README, "Fuzzing"): each target of fuzz/ for a bounded time (FUZZ_SECONDS,
# 0 to skip), from its committed seeds and saved regressions. A crash or a broken
# invariant fails the script, the input kept in fuzz/artifacts/<target>/. libFuzzer
# writes what it finds to the first corpus directory it is given: a temporary one, so
# the committed corpus never grows.
fuzz_seconds=${FUZZ_SECONDS:-25}
if [ "$fuzz_seconds" -gt 0 ]; then
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
  cargo +nightly fuzz build
  fuzz_scratch=$(mktemp -d)
  trap 'rm -rf "$fuzz_scratch"' EXIT
  for target in frame_decode decode_embedded csv_import guard_mask; do
    mkdir "$fuzz_scratch/$target"
    if ! cargo +nightly fuzz run "$target" "$fuzz_scratch/$target" \
        "fuzz/corpus/$target" "fuzz/regressions/$target" \
        -- -max_total_time="$fuzz_seconds" -timeout=10 -print_final_stats=1 \
        >"$fuzz_scratch/$target.log" 2>&1; then
      tail -n 60 "$fuzz_scratch/$target.log"
      echo "test.sh: fuzz target $target failed (input in fuzz/artifacts/$target/)" >&2
      exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$fuzz_scratch/$target.log")
    echo "test.sh: fuzz target $target: $runs runs in ${fuzz_seconds}s, no failure"
  done
fi
