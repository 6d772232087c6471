# Shortcuts for the scripts the README names.
.PHONY: setup bench test lint format strip-notebooks
setup:
	scripts/setup
bench:
	scripts/bench
test:
	scripts/test
lint:
	.venv/bin/ruff check ibcbench data_gen tests notebooks
format:
	.venv/bin/ruff format ibcbench data_gen tests notebooks
strip-notebooks:
	.venv/bin/nbstripout notebooks/*.ipynb
