# Convenience targets; each one is what the README documents.
.PHONY: demo test lint bench bench-features bench-rank bench-pipeline bench-pipeline-postgres bench-train bench-api bench-api-wrk

demo:            ## generate, train, register, score and rank on a synthetic book
	bash scripts/demo.sh

test:            ## lint and the whole test suite
	bash scripts/test.sh

lint:
	.venv/bin/ruff check .

bench: bench-features bench-rank bench-pipeline bench-pipeline-postgres bench-train bench-api   ## benchmarks (outside the test run)

bench-features:
	.venv/bin/python experiments/bench_features.py --accounts 1000000

bench-rank:
	.venv/bin/python experiments/bench_rank.py --accounts 1000000

bench-pipeline:  ## `callq rank` end to end on 1,000,000 simulated accounts
	.venv/bin/python experiments/bench_pipeline.py --accounts 1000000

bench-pipeline-postgres:  ## the same, the book read from PostgreSQL (an embedded server unless a URL is given)
	.venv/bin/python experiments/bench_pipeline.py --accounts 1000000 --postgres $(POSTGRES_URL)

bench-train:
	.venv/bin/python experiments/bench_train.py --accounts 300000

bench-api:       ## Python clients; bench-api-wrk measures the same page with wrk (Debian's package)
	.venv/bin/python experiments/bench_api.py

bench-api-wrk:
	.venv/bin/python experiments/bench_api.py serve --port 8797 & server=$$!; sleep 10; \
	wrk -t1 -c50 -d15s --latency -H "Authorization: Bearer bench-admin-token" \
	  "http://127.0.0.1:8797/teams/team-1/queue?page=3&page_size=50"; kill $$server
