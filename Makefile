# Developer shortcuts. The two commands that matter on a fresh machine are scripts/demo.sh and
# scripts/test.sh (see README).
.PHONY: crds test demo bench fmt lint

crds: ## regenerate every CRD copy from src/api
	cargo run --quiet -- crd --out-dir crds --out-dir config/crd/bases --chart-template-dir charts/registry-operator/templates/crds

test: ## set up and run every test
	scripts/test.sh

demo: ## the retention demo against a local real registry
	scripts/demo.sh

bench: ## benchmarks (release builds; print tables)
	scripts/bench.sh

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings
