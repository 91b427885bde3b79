# Entry points: `make demo` (train UOTM on the built-in 8-Gaussians set) and `make test` (all tests).
BUILD ?= build
JOBS ?= $(shell nproc)
CONFIG ?= configs/toy/uotm_8gaussians.json

.PHONY: setup build test test-slow demo bench format clean

setup:
	@bash scripts/setup.sh

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release

build: setup $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -LE slow

test-slow: build
	cd $(BUILD) && ctest --output-on-failure -L slow

# The demo builds only the CLI (not the tests and benchmarks) to stay quick on a fresh machine.
demo: setup $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target uotflow_cli
	$(BUILD)/uotflow train --config $(CONFIG)

bench: build
	bash bench/compare_uotm_step.sh $(BUILD)
	bash bench/compare_image_step.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD)
