#!/usr/bin/env bash
# Installs what tests/serverless_test.go runs, here:
# - serverless@1.28.0 (the last release with `serverless run`), exactly as
#   package-lock.json pins it, without its install scripts (they only ask
#   for telemetry and set up tab completion);
# - the Serverless emulator 0.1.18 (`sle`), which is no longer on npm, from
#   shared/clients/ beside the clone (or $1), into emulator/, with the
#   dependency versions its shrinkwrap locks (see shared/clients/README.md).
set -euo pipefail
cd "$(dirname "$0")"
clients="${1:-../../../../shared/clients}"
npm ci --ignore-scripts --no-audit --no-fund
rm -rf emulator
mkdir emulator
tar -xzf "$clients/serverless-emulator-0.1.18.tgz" -C emulator --strip-components=1
(cd emulator && npm ci --omit=dev --no-audit --no-fund)
test "$(emulator/bin/emulator ping)" = 0.1.18
