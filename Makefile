# Entry points: `make demo` (train UOTM on the built-in 8-Gaussians set) and `make test` (all tests).
BUILD ?= build
JOBS ?= $(shell nproc)
CONFIG ?= configs/toy/uotm_8gaussians.json

.PHONY: setup build test test-slow test-far-outliers test-sanitize demo bench format clean python install

setup:
	@bash scripts/setup.sh

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release

build: setup $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -LE slow -j $(JOBS)

test-slow: build
	cd $(BUILD) && ctest --output-on-failure -L slow -j $(JOBS)

# The 1-D far-outlier comparison of UOTM and OTM over 3 seeds (labelled slow: about 10 minutes on 2 cores,
# beyond make test's budget); .ci/run runs it after make test.
test-far-outliers: build
	cd $(BUILD) && ctest --output-on-failure -L slow -R 'FarOutliers' -j $(JOBS)

# The tests of what reads untrusted input and manages runs (parsers, fuzz corpus and mutants, checkpoints, locks,
# configs, resume after kill -9), built with AddressSanitizer + UndefinedBehaviorSanitizer in their own folder.
# LibTorch itself is not instrumented. Not run by .ci/run: a cold sanitizer build on CI's 2 cores next to
# `make test` would come too close to CI's 90 minutes (docs/benchmarks.md#sanitizers).
SANITIZE_BUILD ?= build-sanitize
SANITIZE_TESTS ?= *
test-sanitize: setup
	cmake -S . -B $(SANITIZE_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUOTFLOW_SANITIZE=ON \
	  -DUOTFLOW_BUILD_BENCH=OFF -DUOTFLOW_BUILD_EXAMPLES=OFF
	cmake --build $(SANITIZE_BUILD) -j $(JOBS) --target uotflow_tests uotflow_cli
	cd $(SANITIZE_BUILD) && ASAN_OPTIONS=detect_leaks=0:detect_container_overflow=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ./uotflow_tests --gtest_filter='$(SANITIZE_TESTS):-*_Slow'

# The demo builds only the CLI (not the tests and benchmarks) to stay quick on a fresh machine.
demo: setup $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target uotflow_cli
	$(BUILD)/uotflow train --config $(CONFIG)

# The Python module alone, importable with PYTHONPATH=$(BUILD)/python (docs/python.md).
python: setup $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target uotflow_python

# The library, headers, CMake package (find_package(uotflow)) and Python package under PREFIX
# (default /usr/local; Debian's python3 finds PREFIX/lib/python3/dist-packages).
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)
	ldconfig 2>/dev/null || true

bench: build
	cmake --build $(BUILD) -j $(JOBS) --target benchmarks
	bash bench/compare_uotm_step.sh $(BUILD)
	bash bench/compare_image_step.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD)
