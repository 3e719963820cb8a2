# Convenience targets; each one is what the README documents.
.PHONY: demo test lint bench bench-features bench-rank bench-train bench-api

demo:            ## generate, train, register, score and rank on a synthetic book
	bash scripts/demo.sh

test:            ## lint and the whole test suite
	bash scripts/test.sh

lint:
	.venv/bin/ruff check .

bench: bench-features bench-rank bench-train bench-api   ## benchmarks (outside the test run)

bench-features:
	.venv/bin/python experiments/bench_features.py --accounts 1000000

bench-rank:
	.venv/bin/python experiments/bench_rank.py --accounts 1000000

bench-train:
	.venv/bin/python experiments/bench_train.py --accounts 300000

bench-api:
	.venv/bin/python experiments/bench_api.py
