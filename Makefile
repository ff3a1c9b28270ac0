# mutu — the two commands a newcomer needs: `make demo` and `make test`.
# Everything slow to build is cached outside the work tree, under $(MUTU_CACHE).

SHELL := /bin/bash
MUTU_CACHE ?= $(HOME)/.cache/mutu
export MUTU_CACHE
export CARGO_TARGET_DIR ?= $(MUTU_CACHE)/target
MUTU := $(CARGO_TARGET_DIR)/debug/mutu

.PHONY: all build release demo demo-down test unit-test e2e-test lint crds fmt

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
