#!/usr/bin/env bash
# Build the C examples and tests against an installed kadmium (header, library
# and kadmium.pc under PREFIX) with plain cc/c++ and pkg-config, then run them:
# the API test and the two-node example under valgrind, the C++17 file, a
# statically linked example, and the mixed C/Python network test.
#
#   tests/c/run.sh PREFIX BUILD_DIR        (called by `make test-ffi`)
set -euo pipefail
prefix=$(realpath "$1")
build=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${KADMIUM_PYTHON:-python3}
mkdir -p "$build"

command -v valgrind >/dev/null || { echo "run.sh: valgrind is required (apt-get install valgrind)" >&2; exit 1; }
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
CC=${CC:-cc}
CXX=${CXX:-c++}
WARN=(-Wall -Wextra -Werror -pedantic)
read -ra KAD_CFLAGS <<<"$(pkg-config --cflags kadmium)"
read -ra KAD_LIBS <<<"$(pkg-config --libs kadmium)"
# --static adds Libs.private; -lkadmium itself is replaced by the .a path below.
KAD_STATIC=()
for flag in $(pkg-config --static --libs kadmium); do
    [ "$flag" = -lkadmium ] || KAD_STATIC+=("$flag")
done
RPATH=(-Wl,-rpath,"$(pkg-config --variable=libdir kadmium)")

# Definite and indirect leaks and every memory error fail the run. The
# library's runtime threads live until exit, so their blocks are "still
# reachable" or "possibly lost" (thread stacks/TLS); those are not failures.
VALGRIND=(valgrind --quiet --error-exitcode=99 --leak-check=full
          --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
          --track-origins=yes)

step() { printf '\n== %s\n' "$*"; }

step "compile: header and C tests as C11, examples with plain cc"
"$CC" -std=c11 "${WARN[@]}" -g "${KAD_CFLAGS[@]}" "$here/test_ffi.c" -o "$build/test_ffi" \
    "${KAD_LIBS[@]}" "${RPATH[@]}" -pthread
"$CC" -std=c11 "${WARN[@]}" "${KAD_CFLAGS[@]}" "$root/examples/c/two_nodes.c" -o "$build/two_nodes" \
    "${KAD_LIBS[@]}" "${RPATH[@]}"
"$CC" -std=c11 "${WARN[@]}" "${KAD_CFLAGS[@]}" "$root/examples/c/join_node.c" -o "$build/join_node" \
    "${KAD_LIBS[@]}" "${RPATH[@]}"
# The static library, linked with the private libraries kadmium.pc lists.
"$CC" -std=c11 "${WARN[@]}" "${KAD_CFLAGS[@]}" "$root/examples/c/two_nodes.c" -o "$build/two_nodes_static" \
    "$prefix/lib/libkadmium.a" "${KAD_STATIC[@]}"

step "compile: C++17"
"$CXX" -std=c++17 "${WARN[@]}" "${KAD_CFLAGS[@]}" "$here/header_cpp.cpp" -o "$build/header_cpp" \
    "${KAD_LIBS[@]}" "${RPATH[@]}"

step "run: C++17 program"
"$build/header_cpp"

step "run: two_nodes example (static build)"
"$build/two_nodes_static"

step "run: two_nodes example under valgrind"
"${VALGRIND[@]}" "$build/two_nodes"

step "run: test_ffi under valgrind"
"${VALGRIND[@]}" "$build/test_ffi"

step "run: mixed network, Python kademlia + join_node under valgrind"
"$python" "$here/mixed_peer.py" --wrap "${VALGRIND[*]}" "$build/join_node"

echo
echo "ffi: all C tests passed"
