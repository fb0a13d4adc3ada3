# kpulse — every developer and CI command goes through here.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build release test unit e2e lint fmt generate demo bench bench-scale cluster-up cluster-down k8s-bins clean

all: build

build:
	$(CARGO) build --bin kpulse

release:
	$(CARGO) build --release --bin kpulse

## Every test: lint, unit and sink tests, then end-to-end tests on a local control plane.
test:
	hack/test.sh

unit:
	hack/test.sh unit

e2e:
	hack/test.sh e2e

lint:
	hack/lint.sh

fmt:
	$(CARGO) fmt

## Regenerate files derived from the code (configuration reference, chart schema and RBAC rules,
## monitor defaults and lists, doc examples).
generate:
	$(CARGO) run --quiet --bin kpulse -- generate --root .

## Run kpulse end to end on a local control plane and show an alert and its resolution.
demo:
	hack/demo.sh

bench:
	$(CARGO) bench --bench engine

## kpulse's memory, start-up, idle cost and alert latency on a control plane loaded with thousands
## of objects; rewrites the scale section of docs/benchmarks.md (`hack/bench-scale.sh check`: a
## quick run with a memory bound, no doc write).
bench-scale:
	hack/bench-scale.sh

k8s-bins:
	hack/build-k8s.sh

cluster-up:
	@hack/cluster.sh up

cluster-down:
	@hack/cluster.sh down

clean:
	$(CARGO) clean
	rm -rf .cache/clusters
