#!/usr/bin/env bash
# Installs what the tests and CI need beyond the Rust toolchain, when missing:
# the wasm32-wasip2 target, redis-server and chromium (Debian's apt), and two
# Python packages (pip). Run by scripts/test.sh and .ci/run; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# rust-toolchain.toml lists the target, but rustup adds listed targets only when
# it installs the toolchain itself, not to a toolchain that was already there.
rustup target list --installed 2>/dev/null | grep -q wasm32-wasip2 || rustup target add wasm32-wasip2
# The Redis store's tests (and the conformance suite's native_redis host) start
# their own redis-server on a free loopback port: install it when missing.
if ! command -v redis-server >/dev/null; then
  $sudo apt-get -qq update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get -qq install -y redis-server
fi
# The OpenAPI document is checked with openapi-spec-validator (Python); the
# dashboard's browser test drives Debian's chromium over the DevTools protocol
# with websocket-client. Install what is missing.
python3 -c 'import openapi_spec_validator, websocket' 2>/dev/null \
  || python3 -m pip install --quiet openapi-spec-validator websocket-client
if ! command -v chromium >/dev/null; then
  $sudo apt-get -qq update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get -qq install -y chromium
fi
