# Two entry points: `make demo` (set up, then the main job on the embedded default) and
# `make test` (set up, then the test suite). Both create .venv if it is absent.

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= demo-out
PIP_QUIET := -q --disable-pip-version-check

.PHONY: setup demo test lint clean book book-html lab chromium

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "installing pinned dependencies into $(VENV) (first time: a few minutes)"
	@$(PY) -m pip install $(PIP_QUIET) -c requirements.lock -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c "from bbam_lite.compat import import_torchvision; import_torchvision(); import pydensecrf, cv2, pycocotools" || (echo "setup failed" && exit 1)
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/bbam-lite demo --out $(OUT)

test: setup
	$(PY) -m pytest -q

# The book: execute every notebook at the lite profile (resumable), then render book/_build/html.
book: setup
	$(VENV)/bin/bbam-lite book run --profile lite
	$(VENV)/bin/bbam-lite book build

# Only render the committed chapters (book/chapters/) to book/_build/html: under a minute.
book-html: setup
	$(VENV)/bin/bbam-lite book build

# JupyterLab on notebooks/ with the project's kernel (bbam-lite), offline, for doing a chapter's
# exercises: open the address it prints; Ctrl+C stops it. Reset a chapter with
# `git checkout notebooks/NN-slug.ipynb`.
lab: setup
	$(PY) -m bbam_lite.book.lab

# Headless Chromium for the book's browser test (Debian, as root; a few minutes with the download).
# .ci/run calls it before `make test`; without Chromium that one test is skipped and says why.
chromium:
	@scripts/install_chromium.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache
