#!/usr/bin/env bash
# The AssemblyScript kit's unit tests: compiles tests/kit.test.ts with the pinned assemblyscript
# and runs every exported test_* under node, each in a fresh instance.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
bash "$here/../asc.sh" "$here/tests/kit.test.ts" --runtime stub -O1 --noColors -o "$out/kit.test.wasm"
node "$here/tests/run.mjs" "$out/kit.test.wasm"
