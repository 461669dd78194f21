#!/usr/bin/env bash
# Builds berth's plugin SDK examples into plugins/dist/*.wasm:
#   reserved_names.wasm, brand_guard.wasm, html_guard.wasm (Rust), digit_limit.wasm (C) and
#   blocked_words.wasm (AssemblyScript).
# The built files are committed, and the first four are built into berth; .ci/run rebuilds them
# and fails if a byte differs, so rebuild and commit them with every change to plugins/sdk,
# plugins/sdk-as or plugins/examples.
#
# The pinned toolchain, which made the committed bytes: Debian 12's rustc 1.63.0 with the wasm32
# standard library (packages rustc, cargo, libstd-rust-dev-wasm32), clang 14 with lld (packages
# clang, lld), and the assemblyscript version pinned in package.json and package-lock.json
# (asc.sh installs it into node_modules/ with npm ci; node and npm from packages nodejs, npm).
# Without Debian's rustc, rustup's toolchain with the wasm32-unknown-unknown target works too,
# but its bytes differ from the committed ones. The Rust examples' target features (SIMD, bulk
# memory) and stack size come from plugins/.cargo/config.toml.
#
# Environment:
#   BERTH_PLUGINS_DIST_DIR    where the .wasm files go (default: plugins/dist)
#   BERTH_PLUGINS_FIXTURES_DIR where the AssemblyScript test fixture goes (default:
#                             tests/fixtures/plugins)
#   BERTH_PLUGINS_TARGET_DIR  cargo's target directory (default: plugins/target)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dist="${BERTH_PLUGINS_DIST_DIR:-$here/dist}"
mkdir -p "$dist"
target_dir="${BERTH_PLUGINS_TARGET_DIR:-$here/target}"

# The Rust toolchain that can build wasm32-unknown-unknown: the pinned one first.
if [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/wasm32-unknown-unknown ]; then
    cargo_cmd=(env RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc /usr/bin/cargo)
    echo "plugins: building with Debian's rustc ($(/usr/bin/rustc --version))"
elif command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    cargo_cmd=(cargo)
    echo "plugins: building with rustup's toolchain (not the pinned one: the bytes will differ from the committed ones)"
else
    echo "error: no Rust toolchain with the wasm32-unknown-unknown target." >&2
    echo "  rustup target add wasm32-unknown-unknown, or apt-get install rustc cargo libstd-rust-dev-wasm32" >&2
    exit 1
fi

# Plugins are self-contained: keep the host's rustflags and registry settings out of the build.
unset RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
(cd "$here" && CARGO_TARGET_DIR="$target_dir" "${cargo_cmd[@]}" build --offline --locked --quiet --release \
    --target wasm32-unknown-unknown -p reserved_names -p brand_guard -p html_guard)
for name in reserved_names brand_guard html_guard; do
    cp "$target_dir/wasm32-unknown-unknown/release/$name.wasm" "$dist/$name.wasm"
done

clang_cmd="${CLANG:-clang}"
if ! command -v "$clang_cmd" >/dev/null 2>&1; then
    echo "error: clang is needed for the C example (apt-get install clang lld)" >&2
    exit 1
fi
"$clang_cmd" --target=wasm32 -O2 -nostdlib -Wl,--no-entry -Wl,--export-dynamic -Wl,--strip-all \
    -o "$dist/digit_limit.wasm" "$here/examples/c/digit-limit.c"

# ---------------------------------------------------------------------------------------------
# AssemblyScript: the blocked-words example, compiled by the pinned assemblyscript (asc.sh).
bash "$here/asc.sh" "$here/examples/blocked-words/assembly/index.ts" \
    --runtime stub -O3 --noColors -o "$dist/blocked_words.wasm"

# The AssemblyScript test fixture (a throwing plugin), committed beside its source so that the
# tests need no node: tests/fixtures/plugins/table.wasm.
fixtures="${BERTH_PLUGINS_FIXTURES_DIR:-$here/../tests/fixtures/plugins}"
mkdir -p "$fixtures"
bash "$here/asc.sh" "$here/../tests/fixtures/plugins/table.ts" \
    --runtime stub -O3 --noColors -o "$fixtures/table.wasm"

ls -l "$dist"/*.wasm | awk '{print "plugins: " $NF " (" $5 " bytes)"}'
