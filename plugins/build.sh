#!/usr/bin/env bash
# Builds berth's plugin SDK examples into plugins/dist/*.wasm:
#   reserved_names.wasm, brand_guard.wasm, html_guard.wasm (Rust), digit_limit.wasm (C) and
#   blocked_words.wasm (AssemblyScript).
#
# Rust: uses rustup's toolchain when it has the wasm32-unknown-unknown target installed, else
# Debian's rustc with the wasm32 standard library (packages rustc, cargo, libstd-rust-dev-wasm32).
# C: clang with the wasm32 target and lld (packages clang, lld).
# AssemblyScript: node and npm (packages nodejs, npm); asc.sh runs the assemblyscript version
# pinned in package.json and package-lock.json, installing it into node_modules/ with npm ci.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dist="$here/dist"
mkdir -p "$dist"
target_dir="${BERTH_PLUGINS_TARGET_DIR:-$here/target}"

# The Rust toolchain that can build wasm32-unknown-unknown.
if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    cargo_cmd=(cargo)
    echo "plugins: building with rustup's toolchain"
elif [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/wasm32-unknown-unknown ]; then
    cargo_cmd=(env RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc /usr/bin/cargo)
    echo "plugins: building with Debian's rustc ($(/usr/bin/rustc --version))"
else
    echo "error: no Rust toolchain with the wasm32-unknown-unknown target." >&2
    echo "  rustup target add wasm32-unknown-unknown, or apt-get install rustc cargo libstd-rust-dev-wasm32" >&2
    exit 1
fi

# Plugins are self-contained: keep the host's rustflags and registry settings out of the build.
unset RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
(cd "$here" && CARGO_TARGET_DIR="$target_dir" "${cargo_cmd[@]}" build --offline --quiet --release \
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

ls -l "$dist"/*.wasm | awk '{print "plugins: " $NF " (" $5 " bytes)"}'
