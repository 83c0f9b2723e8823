# Thin wrapper over CMake (whisper.cpp style). `make help` lists the targets.
BUILD      ?= build
BUILD_WASM ?= build-wasm
BUILD_SAN  ?= build-sanitize
BUILD_WASM_SAFE ?= build-wasm-safe
SAN_FLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
JOBS       ?= $(shell nproc)
export NODE_PATH := /usr/share/nodejs

.PHONY: help deps native wasm test test-native test-sanitize test-wasm test-wasm-safe test-python test-e2e bench clean

help:
	@echo "make deps         install Debian + npm dependencies (scripts/install-deps.sh)"
	@echo "make native       build the core, the CLI (build/index-builder/earshot), tests, benches"
	@echo "make wasm         build the WebAssembly SIMD128 core, bindings and tests"
	@echo "make test         all tests: native, native under ASan + UBSan, WASM under node (also"
	@echo "                  with SAFE_HEAP), Python, browser e2e"
	@echo "make test-sanitize the native tests built with AddressSanitizer + UBSan ($(BUILD_SAN))"
	@echo "make test-wasm-safe the WASM tests with Emscripten's SAFE_HEAP and ASSERTIONS"
	@echo "make bench        run the Google Benchmark suite"

deps:
	scripts/install-deps.sh

native:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j$(JOBS)

wasm:
	emcmake cmake -S . -B $(BUILD_WASM) -G Ninja -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD_WASM) -j$(JOBS)

test-native: native
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

# The native suite with AddressSanitizer and UndefinedBehaviorSanitizer (any report fails it).
test-sanitize:
	cmake -S . -B $(BUILD_SAN) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  "-DCMAKE_C_FLAGS=$(SAN_FLAGS)" "-DCMAKE_CXX_FLAGS=$(SAN_FLAGS)" \
	  "-DCMAKE_EXE_LINKER_FLAGS=$(SAN_FLAGS)"
	cmake --build $(BUILD_SAN) -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(BUILD_SAN) --output-on-failure -j$(JOBS)

test-wasm: wasm
	ctest --test-dir $(BUILD_WASM) --output-on-failure

# The WASM tests once more with every load and store checked (SAFE_HEAP: null, out of bounds,
# misaligned) and Emscripten's runtime assertions.
test-wasm-safe:
	emcmake cmake -S . -B $(BUILD_WASM_SAFE) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  "-DCMAKE_EXE_LINKER_FLAGS=-sSAFE_HEAP=1 -sASSERTIONS=1"
	cmake --build $(BUILD_WASM_SAFE) -j$(JOBS)
	ctest --test-dir $(BUILD_WASM_SAFE) --output-on-failure

test-python:
	/usr/bin/python3 -m unittest discover -s models -t . -p 'test_*.py' -v

test-e2e:
	BUILD=$(BUILD) BUILD_WASM=$(BUILD_WASM) JOBS=$(JOBS) scripts/demo.sh --build-only
	BUILD=$(BUILD) node --test e2e/

test: test-native test-sanitize test-wasm test-wasm-safe test-python test-e2e

bench: native
	$(BUILD)/bench/earshot_bench --benchmark_counters_tabular=true

clean:
	rm -rf $(BUILD) $(BUILD_WASM)
