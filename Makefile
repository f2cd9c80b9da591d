# A thin wrapper over `cargo xtask`; every target is one command you can also run by hand.
.PHONY: reproduce test datasets check lint bench

# The main job: regenerate every figure (at this milestone: the datasets).
reproduce:
	cargo xtask reproduce

# The test suite CI runs: unit, property and end-to-end tests, then a byte-for-byte regeneration check
# of every committed dataset against datasets/manifest.toml.
test:
	cargo test --workspace --locked
	cargo xtask datasets --check

datasets:
	cargo xtask datasets

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

# Training and sampling throughput against a PyTorch reference (installs torch into target/bench/venv).
bench:
	cargo xtask bench
