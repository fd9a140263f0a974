# Convenience wrappers; the quickstart itself needs only python3 (see tasks.py).
PYTHON ?= python3

.PHONY: demo test bench clean

demo:
	$(PYTHON) tasks.py demo

test:
	$(PYTHON) tasks.py test

bench:
	$(PYTHON) tasks.py bench

clean:
	rm -rf .venv runs .pytest_cache .ruff_cache
