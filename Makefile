# mutu — the two commands a newcomer needs: `make demo` and `make test`.
# Everything slow to build is cached outside the work tree, under $(MUTU_CACHE).

SHELL := /bin/bash
MUTU_CACHE ?= $(HOME)/.cache/mutu
export MUTU_CACHE
export CARGO_TARGET_DIR ?= $(MUTU_CACHE)/target
MUTU := $(CARGO_TARGET_DIR)/debug/mutu

.PHONY: all build release demo demo-down test unit-test e2e-test lint crds fmt fuzz

all: build

## build: the mutu binary (debug profile, cached target directory)
build:
	cargo build --locked --bin mutu
	ln -sf mutu "$(CARGO_TARGET_DIR)/debug/kubectl-mutu"
	ln -sf mutu "$(CARGO_TARGET_DIR)/debug/kubectl_complete-mutu"

## release: the optimised mutu binary, as deployed; the fleet benchmark's numbers come from it
release:
	cargo build --locked --release --bin mutu

## demo: start the local control plane and the operators and bring up the fleet of
## PROFILE (imio-2019: the 819 sites of 2019; small: one member, one site of each product)
PROFILE ?= $(or $(MUTU_DEMO_PROFILE),imio-2019)
demo: build
	MUTU_DEMO_PROFILE="$(PROFILE)" tests/demo.sh "$(MUTU)" up

## demo-down: stop the demo's operators and control plane, and remove its state
demo-down: build
	tests/demo.sh "$(MUTU)" down

## test: the whole test suite (unit tests, then end-to-end tests on a fresh local control plane)
test: build
	tests/run.sh "$(MUTU)"

## fuzz: the fuzz tests of everything that parses what a member controls, in release mode:
## each target's corpus (tests/fuzz-corpus), then FUZZ_CASES random cases of it (over a
## million executions in all); prints the executions of each target, the total and the time
FUZZ_CASES ?= 60000
fuzz:
	@start=$$(date +%s); log=$$(mktemp); export MUTU_FUZZ_CASES=$(FUZZ_CASES); \
	{ cargo test --release --locked -p mutu-model -p mutu-site -p mutu-portal --test fuzz -- --nocapture \
	  && cargo test --release --locked -p mutu-portal --lib -- --nocapture fuzz:: \
	  && cargo test --release --locked -p mutu-cli --bin mutu -- --nocapture tenant::fuzz::; } 2>&1 | tee "$$log"; \
	status=$${PIPESTATUS[0]}; \
	grep -E '^fuzz [^ ]+: [0-9]+ executions, no panic$$' "$$log" | sort | \
	  awk -v status=$$status '{ n += $$3; print } END { if (status == 0) printf "fuzz: %d targets, %d executions in all, no panic\n", NR, n; else print "fuzz: FAILED" }'; \
	echo "fuzz: $$(( $$(date +%s) - start )) s"; rm -f "$$log"; exit $$status

## lint: formatting and clippy, as required before every commit
lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

## crds: regenerate crds/ (and the Helm chart's copy) from crates/api
crds: build
	$(MUTU) crds --dir crds
	$(MUTU) crds --dir charts/mutu/crds --admission-policy charts/mutu/templates/platform-fields-policy.yaml --helm

fmt:
	cargo fmt --all
