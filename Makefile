# rlpost top-level entry points. See README.md.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CONFIG ?= configs/arith_grpo.yaml
CTEST_ARGS ?=

.PHONY: deps configure build demo test test-unit quick clean

deps:
	@scripts/install_deps.sh

configure: deps
	@if [ ! -f $(BUILD_DIR)/build.ninja ]; then \
	  cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release; fi

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

demo: build
	$(BUILD_DIR)/bin/rlpost train --config $(CONFIG)

quick: build
	$(BUILD_DIR)/bin/rlpost train --config configs/arith_grpo_quick.yaml

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j 2 $(CTEST_ARGS)

test-unit: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j 2 -L unit

clean:
	rm -rf $(BUILD_DIR)
