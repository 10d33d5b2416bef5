#!/usr/bin/env bash
# Build the C/C++ examples and tests against an installed kadmium (headers,
# libraries and kadmium.pc under PREFIX) with plain cc/c++ and pkg-config,
# then run them: valgrind, ASan+UBSan and TSan runs of the C tests, the
# header under every C/C++ standard with gcc and clang, dynamic, static and
# fully static links, the C++ wrapper, and the mixed C/Python network test.
#
#   tests/c/run.sh PREFIX BUILD_DIR        (called by `make test-ffi`)
#
# Every run is bounded with `timeout`, so a hang fails instead of stalling CI.
set -euo pipefail
prefix=$(realpath "$1")
build=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${KADMIUM_PYTHON:-python3}
mkdir -p "$build"

for tool in valgrind gcc g++ clang clang++ pkg-config readelf; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is required (make setup installs it)" >&2; exit 1; }
done
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
CC=${CC:-cc}
CXX=${CXX:-c++}
WARN=(-Wall -Wextra -Werror -pedantic)
read -ra KAD_CFLAGS <<<"$(pkg-config --cflags kadmium)"
read -ra KAD_LIBS <<<"$(pkg-config --libs kadmium)"
read -ra KAD_STATIC_FULL <<<"$(pkg-config --static --libs kadmium)"
read -ra KAD_STATIC <<<"$(pkg-config --libs kadmium-static)"
RPATH=(-Wl,-rpath,"$(pkg-config --variable=libdir kadmium)")

# Definite and indirect leaks and every memory error fail the run. The
# library's runtime threads live until exit, so their blocks are "still
# reachable" or "possibly lost" (thread stacks/TLS); those are not failures.
VALGRIND=(timeout 300 valgrind --quiet --error-exitcode=99 --leak-check=full
          --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
          --track-origins=yes --suppressions="$here/valgrind.supp" --child-silent-after-fork=yes)

step() { printf '\n== %s\n' "$*"; }

step "packaging: SONAME, symlinks, stripped library with separate debug info, static archive"
so=$(readlink -f "$prefix/lib/libkadmium.so")
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ -n "$soname" ] && [ "$(readlink -f "$prefix/lib/$soname")" = "$so" ] || { echo "bad SONAME/links: '$soname'" >&2; exit 1; }
readelf -S "$so" | grep -q '\.gnu_debuglink' || { echo "$so has no debuglink" >&2; exit 1; }
! readelf -S "$so" | grep -q '\.debug_info' || { echo "$so is not stripped" >&2; exit 1; }
others=$(readelf -sW "$prefix/lib/libkadmium.a" | awk '($5 == "GLOBAL" || $5 == "WEAK") && $7 != "UND" && $8 !~ /^kad_/' | wc -l)
[ "$others" -eq 0 ] || { echo "libkadmium.a defines $others global non-kad_ symbols" >&2; exit 1; }
echo "SONAME $soname -> $(basename "$so") ($(stat -c %s "$so") bytes stripped, debug info in $(basename "$so").debug);" \
     "libkadmium.a $(stat -c %s "$prefix/lib/libkadmium.a") bytes, only kad_* global"

step "compile: kadmium.h as C99/C11 and C++11/17/20 with gcc and clang (-Wall -Wextra -Werror -pedantic)"
for cc in gcc clang; do
    for std in c99 c11; do
        "$cc" -std=$std "${WARN[@]}" "${KAD_CFLAGS[@]}" -fsyntax-only -x c "$here/header_only.c"
    done
done
for cxx in g++ clang++; do
    for std in c++11 c++17 c++20; do
        "$cxx" -std=$std "${WARN[@]}" "${KAD_CFLAGS[@]}" -fsyntax-only -x c++ "$here/header_only.c"
    done
    for std in c++17 c++20; do
        "$cxx" -std=$std "${WARN[@]}" "${KAD_CFLAGS[@]}" -fsyntax-only "$here/test_cpp.cpp"
    done
done

step "compile: C tests and examples (C11), C++ test and example (C++17)"
"$CC" -std=c11 "${WARN[@]}" -g "${KAD_CFLAGS[@]}" "$here/test_ffi.c" -o "$build/test_ffi" \
    "${KAD_LIBS[@]}" "${RPATH[@]}" -pthread
"$CC" -std=c11 "${WARN[@]}" -g "${KAD_CFLAGS[@]}" "$here/test_lifecycle.c" -o "$build/test_lifecycle" \
    "${KAD_LIBS[@]}" "${RPATH[@]}" -pthread
"$CC" -std=c11 "${WARN[@]}" -g "${KAD_CFLAGS[@]}" "$here/test_signed.c" -o "$build/test_signed" \
    "${KAD_LIBS[@]}" "${RPATH[@]}" -pthread
"$CC" -std=c99 "${WARN[@]}" "${KAD_CFLAGS[@]}" "$root/examples/c/two_nodes.c" -o "$build/two_nodes" \
    "${KAD_LIBS[@]}" "${RPATH[@]}"
"$CC" -std=c11 "${WARN[@]}" "${KAD_CFLAGS[@]}" "$root/examples/c/join_node.c" -o "$build/join_node" \
    "${KAD_LIBS[@]}" "${RPATH[@]}"
"$CXX" -std=c++17 "${WARN[@]}" -g "${KAD_CFLAGS[@]}" "$here/test_cpp.cpp" -o "$build/test_cpp" \
    "${KAD_LIBS[@]}" "${RPATH[@]}" -pthread
"$CXX" -std=c++17 "${WARN[@]}" "${KAD_CFLAGS[@]}" "$root/examples/cpp/two_nodes.cpp" -o "$build/two_nodes_cpp" \
    "${KAD_LIBS[@]}" "${RPATH[@]}" -pthread

step "link: dynamic (kadmium.pc), static archive (kadmium-static.pc), fully static (cc -static, kadmium.pc --static)"
"$CC" -std=c11 "${WARN[@]}" "${KAD_CFLAGS[@]}" "$root/examples/c/two_nodes.c" -o "$build/two_nodes_static" \
    "${KAD_STATIC[@]}"
# glibc warns that getaddrinfo in a static program needs the shared NSS
# modules at run time; that is expected, not an error.
"$CC" -static -std=c11 "${WARN[@]}" "${KAD_CFLAGS[@]}" "$root/examples/c/two_nodes.c" -o "$build/two_nodes_full_static" \
    "${KAD_STATIC_FULL[@]}" 2> >(grep -v -e 'getaddrinfo' -e 'in function' >&2)
readelf -d "$build/two_nodes" | grep -q "NEEDED.*\[$soname\]" || { echo "two_nodes does not load $soname" >&2; exit 1; }
! readelf -d "$build/two_nodes_static" | grep -q 'libkadmium' || { echo "two_nodes_static loads libkadmium" >&2; exit 1; }
! readelf -d "$build/two_nodes_full_static" | grep -q NEEDED || { echo "two_nodes_full_static is not static" >&2; exit 1; }

step "run: two_nodes, dynamic under valgrind, static, fully static"
"${VALGRIND[@]}" "$build/two_nodes"
timeout 60 "$build/two_nodes_static"
timeout 60 "$build/two_nodes_full_static"
# With no log callback set, KADMIUM_LOG (EnvFilter syntax) sends logs to stderr.
KADMIUM_LOG=dht_core=debug timeout 60 "$build/two_nodes" 2>"$build/two_nodes.log" >/dev/null
grep -q 'DEBUG dht_core::node: node started' "$build/two_nodes.log" || { echo "KADMIUM_LOG printed nothing" >&2; exit 1; }

step "run: C++ wrapper example and test under valgrind"
"${VALGRIND[@]}" "$build/two_nodes_cpp"
"${VALGRIND[@]}" "$build/test_cpp"

step "run: test_ffi under valgrind"
"${VALGRIND[@]}" "$build/test_ffi"

step "run: test_signed (signed and immutable records) under valgrind"
"${VALGRIND[@]}" "$build/test_signed"

step "run: test_lifecycle (races with kad_node_free, fork, ports, callbacks), natively then under valgrind"
timeout 300 "$build/test_lifecycle" 40
# (no fork test under valgrind: a forked child of a threaded program exits
# with every parent-thread block unreachable, which valgrind counts as leaks)
"${VALGRIND[@]}" "$build/test_lifecycle" 3 nofork

step "run: ASan + UBSan (gcc): test_ffi, test_lifecycle, test_signed"
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)
"$CC" -std=c11 "${WARN[@]}" "${SAN[@]}" "${KAD_CFLAGS[@]}" "$here/test_ffi.c" -o "$build/test_ffi_asan" \
    "${KAD_LIBS[@]}" "${RPATH[@]}" -pthread
"$CC" -std=c11 "${WARN[@]}" "${SAN[@]}" "${KAD_CFLAGS[@]}" "$here/test_lifecycle.c" -o "$build/test_lifecycle_asan" \
    "${KAD_LIBS[@]}" "${RPATH[@]}" -pthread
"$CC" -std=c11 "${WARN[@]}" "${SAN[@]}" "${KAD_CFLAGS[@]}" "$here/test_signed.c" -o "$build/test_signed_asan" \
    "${KAD_LIBS[@]}" "${RPATH[@]}" -pthread
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
timeout 180 "$build/test_ffi_asan"
timeout 180 "$build/test_lifecycle_asan" 10
timeout 180 "$build/test_signed_asan"
unset ASAN_OPTIONS UBSAN_OPTIONS

step "run: TSan (clang, with tests/c/tsan.supp for the uninstrumented Rust side): test_ffi, test_lifecycle, test_signed"
TSAN=(-fsanitize=thread -fno-omit-frame-pointer -g)
clang -std=c11 "${WARN[@]}" "${TSAN[@]}" "${KAD_CFLAGS[@]}" "$here/test_ffi.c" -o "$build/test_ffi_tsan" \
    "${KAD_LIBS[@]}" "${RPATH[@]}" -pthread
clang -std=c11 "${WARN[@]}" "${TSAN[@]}" "${KAD_CFLAGS[@]}" "$here/test_lifecycle.c" -o "$build/test_lifecycle_tsan" \
    "${KAD_LIBS[@]}" "${RPATH[@]}" -pthread
clang -std=c11 "${WARN[@]}" "${TSAN[@]}" "${KAD_CFLAGS[@]}" "$here/test_signed.c" -o "$build/test_signed_tsan" \
    "${KAD_LIBS[@]}" "${RPATH[@]}" -pthread
# The installed copy of the suppression file, as a user would use it.
export TSAN_OPTIONS="suppressions=$prefix/share/kadmium/tsan.supp halt_on_error=1 exitcode=66 die_after_fork=0"
# TSan needs a fixed address-space layout on kernels with many ASLR bits.
tsan_run() { if setarch "$(uname -m)" -R true 2>/dev/null; then timeout 240 setarch "$(uname -m)" -R "$@"; else timeout 240 "$@"; fi; }
tsan_run "$build/test_ffi_tsan"
tsan_run "$build/test_lifecycle_tsan" 10
tsan_run "$build/test_signed_tsan"
unset TSAN_OPTIONS

step "run: mixed network, Python kademlia + join_node under valgrind"
"$python" "$here/mixed_peer.py" --wrap "${VALGRIND[*]}" "$build/join_node"

echo
echo "ffi: all C and C++ tests passed"
