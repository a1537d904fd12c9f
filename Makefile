# The two commands of the README: `make run` (demo) and `make test` (everything CI checks).
CARGO ?= cargo

.PHONY: all build run install deps test lint deny check-config dashboard dashboard-test bench bench-load bench-peers bench-instructions bench-micro docker docker-test fuzz fuzz-ci clean

all: build

build:
	$(CARGO) build --bin gateway --example demo_backend

## run: the gateway on conf/gateway.yaml with three demo backends, the dashboard (built when
## npm is present) and Prometheus (when installed); Ctrl-C stops them all (examples/run_demo.sh).
run: build
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory dashboard; \
	else echo "npm not found: the dashboard is not built (install Node.js 20 and npm, then run make dashboard)"; fi
	@examples/run_demo.sh

## dashboard: the React dashboard in dashboard/dist, which the admin listener serves at /.
DASHBOARD_SRC = $(shell find dashboard/src dashboard/public -type f 2>/dev/null) \
	dashboard/index.html dashboard/vite.config.ts dashboard/tsconfig.json
dashboard: dashboard/dist/index.html
dashboard/node_modules/.package-lock.json: dashboard/package.json dashboard/package-lock.json
	cd dashboard && npm ci --no-audit --no-fund
dashboard/dist/index.html: dashboard/node_modules/.package-lock.json $(DASHBOARD_SRC)
	cd dashboard && npm run build

## dashboard-test: ESLint, the type check, vitest, the build, then the browser run (headless
## Chromium) against the real gateway, backends and Prometheus; screenshots in dashboard/e2e/artifacts.
dashboard-test: build dashboard/node_modules/.package-lock.json
	cd dashboard && npm run lint && npm run typecheck && npm test && npx vite build
	cd dashboard && GATEWAY_BIN=../target/debug/gateway npm run e2e

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

check-config: build
	./target/debug/gateway --demo -t -c conf/gateway.yaml

## deps: installs what the build and the tests need, skipping what is there (Debian; root or
## sudo; Rust and Node.js 20 must be installed already): .ci/deps, also run by make test and CI.
deps:
	.ci/deps

## test: the tools (deps), formatting, lints, the supply-chain gate, the demo config, unit and
## end-to-end tests (these include systemd-analyze on the unit and hadolint on the Dockerfile),
## then the dashboard's.
test: deps lint deny check-config
	$(CARGO) test --all-targets
	$(MAKE) --no-print-directory dashboard-test

## deny: licences, bans and sources of every dependency (deny.toml); works offline.
deny:
	$(CARGO) deny check licenses bans sources

## fuzz: every fuzz target for FUZZ_SECONDS each (cargo-fuzz on nightly; see README, Fuzzing).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = path_lookup config jwt client_ip limit_key cache_policy template
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

## install: release build, then conf/install.sh: binary, config, an environment file with a fresh
## JWT secret, the dashboard and the systemd unit (DESTDIR= for another root).
install:
	$(CARGO) build --release --bin gateway
	conf/install.sh

## docker: the container image (Dockerfile); `docker compose up --build` runs the whole stack.
docker:
	docker build -t api-gateway .

## docker-test: builds the real Dockerfile with buildah (no Docker engine; base images made
## locally when missing), runs the gateway and a demo backend from the image, and checks /health,
## a proxied request, the dashboard's index and the drain on SIGTERM from the host (CI runs it).
docker-test:
	.ci/deps image
	tests/image/check.sh

## bench: release build, load scenarios against a direct connection and nginx, then criterion.
bench: bench-load bench-micro

bench-load: bench-peers
	$(CARGO) build --release --bin gateway --example demo_backend --example bare_proxy --example tuned_proxy --example mint_tokens
	./benches/load/run.sh

## bench-peers: Pingap, the peer the load scenarios compare with, installed from crates.io into
## target/bench-peers (about 10 minutes once; it needs protoc). Without it, its rows are skipped.
PINGAP_VERSION = 0.13.1
PEERS = target/bench-peers
bench-peers:
	@if [ -x $(PEERS)/bin/pingap ]; then \
	  :; \
	elif ! command -v protoc >/dev/null; then \
	  echo "Pingap not installed: it needs protoc (apt-get install protobuf-compiler); its rows are skipped"; \
	else \
	  $(CARGO) install pingap --version $(PINGAP_VERSION) --locked --root $(PEERS) \
	    || echo "Pingap did not install; its rows are skipped"; \
	fi

## bench-instructions: user-space instructions per request under valgrind (bare and tuned
## pingora, plain, full), exact enough to compare builds that requests/s cannot tell apart.
bench-instructions:
	$(CARGO) build --release --bin gateway --example demo_backend --example bare_proxy --example tuned_proxy
	./benches/load/instructions.sh

bench-micro:
	$(CARGO) bench --bench routing --bench balance --bench auth --bench ratelimit --bench request_path

clean:
	$(CARGO) clean
