# Thin wrapper over CMake: `make`, `make demo`, `make test`, `make bench`.
# Each target first installs missing Debian packages (scripts/deps.sh), so
# the README's two commands work on a fresh machine.
BUILD ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all deps test demo bench bench-merge install clean

all: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j2

$(BUILD)/CMakeCache.txt:
	scripts/deps.sh build
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

deps:
	scripts/deps.sh test

test:
	scripts/deps.sh test
	$(MAKE) all
	cd $(BUILD) && ctest --output-on-failure

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
