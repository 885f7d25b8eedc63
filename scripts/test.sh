#!/usr/bin/env bash
# The whole test suite: unit tests, the deterministic simulation (SIM_SEEDS seeds
# per mode, default 1000, so 2000 in all), the conformance suite against the native
# server (memory, redb, Redis) and the wasm component in a wasmtime host, the
# native server's own tests (stress, kill -9 crash rounds: EDGEQ_CRASH_ROUNDS,
# bad input), a bounded run of the fuzz targets (FUZZ_SECONDS per target), and
# the dashboard in headless Chromium. Needs only the Rust toolchain, python3
# with pip and Debian's apt: scripts/setup.sh installs the rest when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
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
