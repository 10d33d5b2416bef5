# kadmium — one entry point for newcomers and CI.
#   make demo   set everything up and run a local network doing real puts and gets
#   make test   set everything up and run every test (what .ci/run calls)
#
# Each component adds a `test-<name>` target below and lists it in TEST_TARGETS.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PY := $(abspath $(VENV))/bin/python
CARGO ?= cargo
export KADMIUM_PYTHON := $(PY)

TEST_TARGETS := lint test-rust
TEST_TARGETS += test-ffi
TEST_TARGETS += test-py
TEST_TARGETS += fuzz-smoke
TEST_TARGETS += test-sim-scale

.PHONY: all demo test setup lint test-rust $(TEST_TARGETS)

all: setup
	$(CARGO) build --release --workspace

# --- setup: everything a fresh machine of this kind needs --------------------
setup: $(VENV)/.stamp
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
	@# System tools of the C tests; present on this machine image, installed if not.
	@# clang: the header is also compiled with clang; binutils: ld -r, objcopy, readelf, strip.
	@missing=""; for tool in cc c++ gcc g++ clang clang++ pkg-config valgrind objcopy readelf strip ar; do \
	    command -v $$tool >/dev/null || missing=1; done; \
	  if [ -n "$$missing" ]; then \
	    echo "setup: installing C toolchains (gcc, clang), binutils, pkg-config and valgrind with apt-get"; \
	    apt-get update -q && apt-get install -y -q gcc g++ clang binutils pkg-config valgrind; \
	  fi

$(VENV)/.stamp: requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# --- checks -------------------------------------------------------------------
lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet

test-rust: setup
	$(CARGO) test --workspace --release

test: setup
	$(MAKE) $(TEST_TARGETS)
	@echo "make test: all test targets passed ($(TEST_TARGETS))"

demo: setup py-install
	$(VENV)/bin/kadmium demo

# The Rust-only demo (dht-core's example), without Python.
demo-rust: setup
	$(CARGO) run --release -p dht-core --example demo

# --- dht-ffi: libkadmium.{so,a}, include/kadmium.h(pp), kadmium.pc, C tests ---
#   make ffi-header            regenerate include/kadmium.h after changing dht-ffi/src
#   make install PREFIX=/opt/x lib/libkadmium.so.VERSION (stripped) + .debug file,
#                              libkadmium.so.MAJOR (the SONAME) and libkadmium.so links,
#                              lib/libkadmium.a (only kad_* global), include/kadmium.h(pp),
#                              lib/pkgconfig/kadmium.pc and kadmium-static.pc,
#                              share/kadmium/tsan.supp
# cbindgen is pinned and installed into target/tools, so every machine
# generates a byte-identical header.
CBINDGEN_VERSION := 0.29.4
CBINDGEN := $(abspath target/tools)/bin/cbindgen
CBINDGEN_RUN = $(CBINDGEN) --quiet --config dht-ffi/cbindgen.toml --crate dht-ffi dht-ffi
PREFIX ?= /usr/local
FFI_VERSION := $(shell sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
FFI_MAJOR := $(firstword $(subst ., ,$(FFI_VERSION)))
FFI_SO := libkadmium.so.$(FFI_VERSION)
FFI_STAGE := target/ffi/stage
FFI_TEST_PREFIX := $(abspath target/ffi/prefix)

.PHONY: install install-ffi ffi-lib ffi-dist ffi-header ffi-header-check

$(CBINDGEN):
	$(CARGO) install cbindgen --version $(CBINDGEN_VERSION) --locked --root $(abspath target/tools)

ffi-lib:
	$(CARGO) build --profile dist -p dht-ffi

# What install copies: the stripped shared library with a debuglink to its
# separate debug info, and the repacked static library.
ffi-dist: ffi-lib
	@mkdir -p $(FFI_STAGE)
	objcopy --only-keep-debug target/dist/libkadmium.so $(FFI_STAGE)/$(FFI_SO).debug
	strip --strip-unneeded -o $(FFI_STAGE)/$(FFI_SO) target/dist/libkadmium.so
	cd $(FFI_STAGE) && objcopy --add-gnu-debuglink=$(FFI_SO).debug $(FFI_SO)
	dht-ffi/pack-static.sh target/dist/libkadmium.a $(FFI_STAGE)/libkadmium.a

ffi-header: $(CBINDGEN)
	$(CBINDGEN_RUN) --output include/kadmium.h

# The checked-in header must be what the pinned cbindgen generates now, and its
# version macros must match Cargo.toml.
ffi-header-check: $(CBINDGEN)
	@mkdir -p target/ffi
	$(CBINDGEN_RUN) --output target/ffi/kadmium.h
	@diff -u include/kadmium.h target/ffi/kadmium.h || { echo "include/kadmium.h is stale: run 'make ffi-header' and commit it"; exit 1; }
	@v="$$(sed -n 's/^#define KAD_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$$/\2/p' include/kadmium.h | paste -sd.)"; \
	  [ "$$v" = "$(FFI_VERSION)" ] || { echo "kadmium.h says version $$v, Cargo.toml $(FFI_VERSION): update dht-ffi/src/version.rs"; exit 1; }
	@echo "include/kadmium.h is up to date (version $(FFI_VERSION))"

install: install-ffi

install-ffi: ffi-dist
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 $(FFI_STAGE)/$(FFI_SO) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(FFI_STAGE)/$(FFI_SO).debug $(DESTDIR)$(PREFIX)/lib/
	ln -sfn $(FFI_SO) $(DESTDIR)$(PREFIX)/lib/libkadmium.so.$(FFI_MAJOR)
	ln -sfn libkadmium.so.$(FFI_MAJOR) $(DESTDIR)$(PREFIX)/lib/libkadmium.so
	install -m 644 $(FFI_STAGE)/libkadmium.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/kadmium.h include/kadmium.hpp $(DESTDIR)$(PREFIX)/include/
	install -d $(DESTDIR)$(PREFIX)/share/kadmium
	install -m 644 tests/c/tsan.supp $(DESTDIR)$(PREFIX)/share/kadmium/
	for pc in kadmium kadmium-static; do \
	  sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(FFI_VERSION)|' dht-ffi/$$pc.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/$$pc.pc; \
	done

# Installs into target/ffi/prefix, then builds the examples and tests there
# with plain cc/c++ and pkg-config and runs them (valgrind, sanitizers, C and
# C++ standards with gcc and clang, static and dynamic links, Python mix).
test-ffi: setup ffi-header-check
	$(MAKE) install-ffi PREFIX=$(FFI_TEST_PREFIX)
	tests/c/run.sh $(FFI_TEST_PREFIX) target/ffi/build

# --- dht-py: the `kadmium` Python package (wheel built by maturin) ------------
#   make py-install   build the wheel (Cargo profile `dist`) and install it into $(VENV)
# test-py: the unittest suite (tests/python, including a small run of the shared
# benchmark with every get found), mypy --strict over the examples and the
# package, and stubtest (the hand-written _kadmium.pyi matches the module).
PY_WHEELS := target/wheels-py
BENCH ?= $(abspath ../shared/bench/dht_bench.py)

.PHONY: py-install demo-rust

py-install: setup
	rm -f $(PY_WHEELS)/kadmium-*.whl
	$(PY) -m maturin build --out $(PY_WHEELS)
	$(PY) -m pip install --quiet --force-reinstall --no-deps $(PY_WHEELS)/kadmium-*.whl

test-py: py-install
	cd tests/python && KADMIUM_BENCH=$(BENCH) $(PY) -m unittest discover -v
	$(PY) -m mypy --strict examples/python dht-py/python/kadmium
	$(PY) -m mypy.stubtest kadmium

# --- benchmarks: kadmium vs kademlia 2.2.3 vs OpenDHT (not part of `make test`) --
#   make bench   installs bench/requirements.txt (OpenDHT's Python binding, matplotlib)
#                into $(VENV) for this target only, builds the wheel, runs the three side
#                by side, interleaved (bench/run.py: BENCH_REPS repetitions at BENCH_SIZES
#                nodes), runs the efficiency example and the native sequential gets
#                (bench example, 1,000 nodes) as often, then writes docs/bench/
#                {runs,efficiency,native_seq,summary}.json, the PNG charts, tables.md and
#                the README's performance tables (bench/report.py).
BENCH_REPS ?= 5
BENCH_SIZES ?= 64,256,1000

.PHONY: bench bench-setup

bench-setup: $(VENV)/.bench-stamp

$(VENV)/.bench-stamp: bench/requirements.txt $(VENV)/.stamp
	$(PY) -m pip install --quiet -r bench/requirements.txt
	touch $@

bench: py-install bench-setup
	KADMIUM_BENCH=$(BENCH) $(PY) bench/run.py --sizes $(BENCH_SIZES) --reps $(BENCH_REPS) \
	  --out docs/bench/runs.json
	$(CARGO) build --profile dist -p dht-core --example efficiency --example bench
	rm -f docs/bench/efficiency.json
	for i in $$(seq $(BENCH_REPS)); do \
	  target/dist/examples/efficiency --nodes 64 --ops 300 >> docs/bench/efficiency.json; done
	rm -f docs/bench/native_seq.json
	for i in $$(seq $(BENCH_REPS)); do \
	  target/dist/examples/bench --nodes 1000 --ops 300 --phases seq >> docs/bench/native_seq.json; done
	$(PY) bench/report.py docs/bench/runs.json --readme README.md

# --- fuzzing: cargo-fuzz targets in fuzz/ (see docs/fuzzing.md) ---------------
#   make fuzz         run each target for FUZZ_SECONDS (nightly + cargo-fuzz)
#   make fuzz-smoke   FUZZ_SMOKE_SECONDS of each (run by `make test`); where
#                     nightly or cargo-fuzz cannot be had, the same harnesses
#                     run on stable as a seeded random test instead.
# cargo-fuzz is installed from crates.io into target/tools with the nightly
# toolchain; crashes land in fuzz/artifacts/<target>/.
FUZZ_TARGETS := datagram api_frames protocol
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 15
CARGO_FUZZ := $(abspath target/tools)/bin/cargo-fuzz
# `make fuzz-smoke FUZZ_TOOLCHAIN=none` exercises the stable fallback. CI
# (CI=true) uses it too: installing cargo-fuzz and building the targets costs
# 5-9 minutes on every fresh clone, for a 45-second smoke; the harnesses are
# the same code either way.
FUZZ_TOOLCHAIN ?= $(if $(CI),none,nightly)
# No sanitizer: the harnessed code is safe Rust, and ASan halves throughput.
# Debug assertions (overflow checks) stay on, cargo-fuzz's default.
FUZZ_RUN = RUSTUP_TOOLCHAIN=$(FUZZ_TOOLCHAIN) $(CARGO_FUZZ) fuzz run --fuzz-dir fuzz --sanitizer none

.PHONY: fuzz fuzz-smoke fuzz-build

$(CARGO_FUZZ):
	$(CARGO) +$(FUZZ_TOOLCHAIN) install cargo-fuzz --locked --root $(abspath target/tools)

fuzz-build: $(CARGO_FUZZ)
	RUSTUP_TOOLCHAIN=$(FUZZ_TOOLCHAIN) $(CARGO_FUZZ) fuzz build --fuzz-dir fuzz --sanitizer none

fuzz: fuzz-build
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; \
	  $(FUZZ_RUN) $$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1; \
	done

fuzz-smoke:
	@if rustup toolchain list 2>/dev/null | grep -q '^$(FUZZ_TOOLCHAIN)' && $(MAKE) --no-print-directory fuzz-build; then \
	  for t in $(FUZZ_TARGETS); do \
	    mkdir -p fuzz/corpus/$$t; \
	    $(FUZZ_RUN) $$t -- -max_total_time=$(FUZZ_SMOKE_SECONDS) -print_final_stats=1; \
	  done; \
	else \
	  echo "fuzz-smoke: no nightly toolchain or cargo-fuzz; running the harnesses on stable instead"; \
	  KADMIUM_FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) $(CARGO) test -p dht-voidphone --release --test fuzz_smoke -- --nocapture; \
	fi

# --- the simulator at scale (issue 16) ----------------------------------------
# One network of SIM_SCALE_NODES nodes: join, 200 puts, 1,000 gets from random
# nodes, through the full wire encode/decode path, on two threads where there
# are two cores (the same run as on one: see dht-core/src/sim/shard.rs). Prints
# the figures (wall and CPU seconds, peak RSS) as one JSON line; fails if a
# join failed or a get missed its value (never on time: figures are printed,
# not asserted).
#
# SIM_ENV backs glibc's heap with transparent huge pages (glibc >= 2.35; older
# ones ignore it): a large run reads gigabytes at random, one node's state per
# event (30,000 nodes: 84.0 -> 77.0 CPU s).
SIM_SCALE_NODES ?= 100000
SIM_ENV ?= GLIBC_TUNABLES=glibc.malloc.hugetlb=1
test-sim-scale:
	$(CARGO) build --release -p dht-core --example simulate
	$(SIM_ENV) target/release/examples/simulate --nodes $(SIM_SCALE_NODES) --gets 1000 --seed 42 --require-all-found

# Hops and RPCs per lookup against N, next to log2(N): docs/sim/scaling.{md,json,png}.
.PHONY: sim-scaling
SIM_SCALING_NODES ?= 1000,10000,30000,100000,300000
sim-scaling: setup
	$(PY) -m pip install --quiet -r scripts/requirements-bench.txt
	$(CARGO) build --release -p dht-core --example simulate
	$(SIM_ENV) $(PY) scripts/sim_scaling.py --nodes $(SIM_SCALING_NODES)

# 10^6 nodes, on demand (not in `make test`): 14.5 GB of memory and 42 minutes on
# the 2-core machine (docs/sim/performance.md); adds its row to docs/sim/scaling.json,
# .md and .png.
.PHONY: sim-million
sim-million: setup
	$(PY) -m pip install --quiet -r scripts/requirements-bench.txt
	$(CARGO) build --release -p dht-core --example simulate
	$(SIM_ENV) $(PY) scripts/sim_scaling.py --add --nodes 1000000

# Instructions and L1 data misses of two small simulations under cachegrind:
# a count of work that, unlike wall time on a shared machine, is the same
# from run to run (docs/sim/performance.md, fifth round). Takes ~5 minutes.
.PHONY: sim-cost
sim-cost:
	$(CARGO) build --release -p dht-core --example simulate
	@for args in "--nodes 2000 --gets 200 --seed 42" \
	    "--nodes 1000 --values 100 --hours 1 --churn-per-hour 0.5 --seed 1"; do \
	  echo "simulate $$args --threads 1"; \
	  valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=/dev/null \
	    target/release/examples/simulate $$args --threads 1 2>&1 >/dev/null \
	    | grep -E "I +refs|D1 +misses"; \
	done
