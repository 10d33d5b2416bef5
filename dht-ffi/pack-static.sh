#!/usr/bin/env bash
# Repack cargo's libkadmium.a so that only the C API (kad_*) is global.
#
#   dht-ffi/pack-static.sh IN.a OUT.a
#
# cargo's staticlib holds all of Rust's std, tokio and our crates as
# thousands of objects whose ~5,000 global symbols could clash with a
# program's own. One relocatable link (`ld -r`) merges them into a single
# object, dropping sections no kad_* function reaches (--gc-sections rooted
# at the kad_* symbols); objcopy then makes every other symbol local and
# drops debug info (the shared library's is shipped separately) and the
# LLVM bitcode that Rust's std objects carry (`ld -r` concatenates it into
# invalid bitcode, on which ar/nm/ld abort when clang's LLVMgold plugin is
# installed in bfd-plugins; nothing needs it without cross-language LTO). Undefined
# references (libc, libm, the unwinder) stay global, as they must.
set -euo pipefail
in=$(realpath "$1")
out=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# readelf, not nm: nm may try a compiler's LTO plugin on every member.
ld -r -o "$tmp/all.o" --whole-archive "$in"
readelf -sW "$tmp/all.o" | awk '$5 == "GLOBAL" && $7 != "UND" && $8 ~ /^kad_/ { print $8 }' \
    | sort -u >"$tmp/keep.txt"
[ -s "$tmp/keep.txt" ] || { echo "pack-static.sh: no kad_* symbols in $in" >&2; exit 1; }
roots=()
while read -r sym; do roots+=(-u "$sym"); done <"$tmp/keep.txt"
ld -r --gc-sections "${roots[@]}" -o "$tmp/gc.o" --whole-archive "$in"
objcopy --strip-debug --strip-unneeded --keep-global-symbols="$tmp/keep.txt" \
    --remove-section=.llvmbc --remove-section=.llvmcmd "$tmp/gc.o" "$tmp/kadmium.o"
others=$(readelf -sW "$tmp/kadmium.o" | awk '($5 == "GLOBAL" || $5 == "WEAK") && $7 != "UND" && $8 !~ /^kad_/' | wc -l)
[ "$others" -eq 0 ] || { echo "pack-static.sh: $others non-kad_ global symbols left" >&2; exit 1; }
rm -f "$out"
ar rcsD "$out" "$tmp/kadmium.o"
echo "pack-static.sh: $(wc -l <"$tmp/keep.txt") global symbols (all kad_*), $(stat -c %s "$out") bytes (from $(stat -c %s "$in"))"
