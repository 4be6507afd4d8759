# veil — the two commands of the README: `make run` and `make test`.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build run test test-release test-asan bench fuzz format clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: $(BUILD)/build.ninja

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

# The main job on the embedded default data (see scripts/demo).
run: build
	scripts/demo

test: deps test-release test-asan

test-release: build
	cd $(BUILD) && OMP_NUM_THREADS=1 ctest --output-on-failure -j $(JOBS) --timeout 900

# The libraries' unit tests again under AddressSanitizer + UBSan (not the CLI: its own tests and
# the end-to-end suite run in the Release build above). Debug info is -g1: line tables are all a
# sanitizer's stack trace needs, and they compile ~30 % faster than -g.
test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DVEIL_SANITIZE=ON \
	  -DVEIL_BUILD_CLI=OFF -DVEIL_BUILD_BENCH=OFF -DVEIL_BUILD_E2E=OFF -DCMAKE_CXX_FLAGS="-O1" \
	  -DCMAKE_CXX_FLAGS_DEBUG="-g1"
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 900 -LE slow

bench: build
	scripts/bench

fuzz:
	scripts/fuzz

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
