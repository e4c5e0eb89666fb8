# Thin wrapper over CMake: `make`, `make demo`, `make test`, `make bench`.
# Each target first installs missing Debian packages (scripts/deps.sh), so
# the README's two commands work on a fresh machine.
BUILD ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all deps test demo bench bench-merge install clean

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

install: all
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD)
