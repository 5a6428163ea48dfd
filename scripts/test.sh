#!/usr/bin/env bash
# The README's test command: installs what is missing (with chromium for the report's browser check),
# builds, runs every test.
# Tests run on a release build (-Ounchecked): the engine's fixture and training tests are
# compute-heavy and would take many times longer in a debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
swift build -c release -Xswiftc -enable-testing
swift test -c release -Xswiftc -enable-testing --disable-swift-testing "$@"
