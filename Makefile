# The two commands of the README: `make run` (demo) and `make test` (everything CI checks).
CARGO ?= cargo
DEMO_BACKENDS = users-1=127.0.0.1:9001 users-2=127.0.0.1:9002 orders=127.0.0.1:9003

.PHONY: all build run test lint deny check-config bench bench-load bench-micro docker fuzz fuzz-ci clean

all: build

build:
	$(CARGO) build --bin gateway --example demo_backend

## run: the gateway on conf/gateway.yaml with three demo backends; Ctrl-C stops both.
run: build
	@./target/debug/examples/demo_backend $(DEMO_BACKENDS) & \
	backends=$$!; trap 'kill $$backends 2>/dev/null' EXIT INT TERM; \
	./target/debug/gateway --demo -c conf/gateway.yaml

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

check-config: build
	./target/debug/gateway --demo -t -c conf/gateway.yaml

## test: formatting, lints, the supply-chain gate, the demo config, unit and end-to-end tests
## (these include systemd-analyze on the unit and hadolint on the Dockerfile).
test: lint deny check-config
	$(CARGO) test --all-targets

## deny: licences, bans and sources of every dependency (deny.toml); works offline.
deny:
	$(CARGO) deny check licenses bans sources

## fuzz: every fuzz target for FUZZ_SECONDS each (cargo-fuzz on nightly; see README, Fuzzing).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = path_lookup config jwt client_ip limit_key cache_policy
fuzz:
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  dict=; [ $$t = path_lookup ] && dict=-dict=path.dict; \
	  cargo +nightly fuzz run $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) $$dict || exit 1; \
	done

## fuzz-ci: every fuzz target for FUZZ_CI_SECONDS each on the stable toolchain (an unoptimised
## build without AddressSanitizer, which builds in about 8 minutes here); .ci/run runs it.
FUZZ_CI_SECONDS ?= 20
fuzz-ci:
	cd fuzz && cargo fuzz build --dev -s none
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  dict=; [ $$t = path_lookup ] && dict=-dict=path.dict; \
	  cargo fuzz run --dev -s none $$t corpus/$$t -- -max_total_time=$(FUZZ_CI_SECONDS) $$dict || exit 1; \
	done

## docker: the container image (Dockerfile); `docker compose up --build` runs the whole stack.
docker:
	docker build -t api-gateway .

## bench: release build, load scenarios against a direct connection and nginx, then criterion.
bench: bench-load bench-micro

bench-load:
	$(CARGO) build --release --bin gateway --example demo_backend --example bare_proxy
	./benches/load/run.sh

bench-micro:
	$(CARGO) bench --bench routing --bench balance --bench auth --bench ratelimit

clean:
	$(CARGO) clean
