#!/usr/bin/env bash
# The whole test suite: unit tests, the deterministic simulation (SIM_SEEDS seeds
# per mode, default 1000, so 2000 in all), the conformance suite against the native
# server (memory, redb, Redis) and the wasm component in a wasmtime host, the
# native server's own tests (stress, kill -9 crash rounds: EDGEQ_CRASH_ROUNDS,
# bad input), a bounded run of the fuzz targets (FUZZ_SECONDS per target), and
# the dashboard in headless Chromium. Needs only the Rust toolchain
# (rust-toolchain.toml makes rustup install the pinned compiler and the
# wasm32-wasip2 target), python3 with pip, and Debian's apt, from which it
# installs redis-server and chromium when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Redis store's tests (and the conformance suite's native_redis host) start
# their own redis-server on a free loopback port: install it when missing.
if ! command -v redis-server >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server
fi
# The OpenAPI document is checked with openapi-spec-validator (Python); the
# dashboard's browser test drives Debian's chromium over the DevTools protocol
# with websocket-client. Install what is missing.
python3 -c 'import openapi_spec_validator, websocket' 2>/dev/null \
  || python3 -m pip install --quiet openapi-spec-validator websocket-client
if ! command -v chromium >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
rustup target list --installed 2>/dev/null | grep -q wasm32-wasip2 || rustup target add wasm32-wasip2
# The wasm host tests load the release component; build it first so its compile
# is not charged to a test's run time.
cargo build --release --target wasm32-wasip2 -p edgeq
# The fuzz targets on the stable toolchain (fuzz/README.md): FUZZ_SECONDS of
# random inputs per target (default 30; 0 skips), after any saved corpus. A
# panic fails the run and leaves its input in fuzz/artifacts/.
if [ "${FUZZ_SECONDS:-30}" -gt 0 ]; then
  for target in api engine; do
    cargo run --release --manifest-path fuzz/Cargo.toml --target-dir "${CARGO_TARGET_DIR:-target}" \
      --no-default-features --bin random -- "$target" "${FUZZ_SECONDS:-30}"
  done
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace "$@" 2>&1 | tee "$log" || status=$?
# The dashboard in headless Chromium against a running native server
# (tests/browser/dashboard.py); its screenshot is left in the target directory.
target="${CARGO_TARGET_DIR:-target}"
if cargo build -p edgeq-native --bin edgeq && python3 tests/browser/dashboard.py "$target/debug/edgeq" "$target/dashboard.png"; then
  echo "test result: ok. 1 passed; 0 failed (browser: tests/browser/dashboard.py)" | tee -a "$log"
else
  echo "test result: FAILED. 0 passed; 1 failed (browser: tests/browser/dashboard.py)" | tee -a "$log"
  status=1
fi
# One closing line for the whole suite (cargo prints one per test binary, and
# the last ones are doc-test binaries with nothing in them).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
