# RUSVEL Infra department as a WebAssembly component, and the host that runs it.
#
#   make run    build everything and run the demo against ./plugins and ./.rusvel
#   make test   build everything and run every test suite
#   make bench  release benchmarks; prints a table, writes target/bench/report.json
#   make lint   rustfmt and clippy

CARGO       ?= cargo
WASM_TARGET := wasm32-wasip2
# Cargo's output directory; honours CARGO_TARGET_DIR like cargo itself.
TARGET_DIR  := $(or $(CARGO_TARGET_DIR),target)
GUEST_DIR   := $(TARGET_DIR)/$(WASM_TARGET)/guest-release
COMPONENT   := $(GUEST_DIR)/dept_infra.wasm
PLUGINS     ?= plugins
DATA_DIR    ?= .rusvel
HOST        := $(TARGET_DIR)/debug/rusvel-host

.PHONY: all setup component fixtures host plugin run test fuzz-replay bench bench-host lint \
	clean-data

all: plugin host

# The wasm target is the only toolchain piece beyond a stock rustup install.
setup:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

component: setup
	$(CARGO) build -p dept-infra --target $(WASM_TARGET) --profile guest-release
	@echo "component: $(COMPONENT) ($$(stat -c %s $(COMPONENT)) bytes)"

# The sidecar grants the demo's loopback services; an operator's own sidecar is kept.
plugin: component
	@mkdir -p $(PLUGINS)
	cp $(COMPONENT) $(PLUGINS)/infra.wasm
	@[ -f $(PLUGINS)/infra.json ] || cp scripts/infra.sidecar.json $(PLUGINS)/infra.json

fixtures: setup
	$(MAKE) -C tests/fixtures

host:
	$(CARGO) build -p rusvel-host -p integration-tests --bins

run: plugin host
	HOST=$(HOST) DEMO_SERVICES=$(TARGET_DIR)/debug/demo-services PLUGINS=$(PLUGINS) \
		DATA_DIR=$(DATA_DIR) bash scripts/demo.sh

test: plugin fixtures host
	$(CARGO) test -p infra-engine --features memory-ports
	INFRA_COMPONENT=$(abspath $(COMPONENT)) $(CARGO) test -p rusvel-host -p integration-tests
	$(MAKE) fuzz-replay

# The fuzz target's inputs replayed on stable: the seed corpus plus 5000 fixed-seed random
# cases (FUZZ_CASES, FUZZ_SEED). Coverage-guided fuzzing needs nightly; see the README.
fuzz-replay:
	cd fuzz && $(CARGO) test --lib --release

# The guest and the benchmark host build side by side: each build's serial tail leaves a
# core idle that the other one fills.
bench:
	$(MAKE) -j2 component bench-host
	$(TARGET_DIR)/bench-host/rusvel-bench --component $(COMPONENT)

bench-host:
	$(CARGO) build --profile bench-host -p rusvel-bench

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean-data:
	rm -rf $(DATA_DIR)
