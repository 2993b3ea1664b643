#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the system packages the build and the tests
# need (when missing), then runs every test. Usage: bash tests/run.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

# pkg-config and libssl-dev: the Pushgateway client (prometheus crate, reqwest) links OpenSSL.
# prometheus-pushgateway: the --pushgateway test pushes to a real one.
# prometheus: /usr/bin/promtool checks and unit-tests rules/ (tests/prometheus_e2e.rs), and a
#   real Prometheus scrapes vigil serve and the Pushgateway to check the alerts and dashboards.
# chromium: the HTML report is rendered and screenshotted in a real headless browser.
packages=(pkg-config libssl-dev prometheus-pushgateway prometheus chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Unit, CLI, bad-input, detection-quality, property, Pushgateway and Prometheus tests (benches
# are run with `cargo bench`, not here: they time things).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --lib --bins --tests "$@" 2>&1 | tee "$log"
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
