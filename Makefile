# gensample: two commands on a fresh machine.
#   make demo   # set up .venv (torch, the package and its extension) and run the main job:
#               # an RBM, a VAE and MALA on real data, one speed table; report + pictures in gensample-demo/
#   make test   # same set-up, then the whole test suite
PY ?= python3
VENV ?= .venv
# torch is pinned for this project's machines (a local CPU wheel); override for yours,
# e.g. `make test TORCH_SPEC="torch==2.9.1"`, or TORCH_SPEC= to keep the installed one.
TORCH_SPEC ?= torch==2.13.0
TRITON_SPEC ?= triton==3.9.0
PIP := $(VENV)/bin/pip
PYTHON := $(VENV)/bin/python
export MAX_JOBS ?= 2
DEMO_OUT ?= gensample-demo

.PHONY: setup build demo test bench info docs clean

$(VENV)/bin/python:
	$(PY) -m venv $(VENV)

$(VENV)/.deps: $(VENV)/bin/python
	$(PIP) install -q --upgrade pip setuptools wheel
	$(if $(TORCH_SPEC),$(PIP) install -q "$(TORCH_SPEC)")
	$(PIP) install -q numpy tqdm scipy scikit-learn matplotlib rich pytest pytest-benchmark ninja "$(TRITON_SPEC)"
	$(PIP) install -q arviz-stats  # test-only: diagnostics are checked against ArviZ
	touch $@

# (re)build the extension whenever a C++/CUDA source or the build script changes
$(VENV)/.built: $(VENV)/.deps setup.py pyproject.toml $(shell find csrc -type f 2>/dev/null)
	$(PIP) install -q --no-build-isolation --no-deps -e .
	touch $@

setup: $(VENV)/.built

# Rebuild the extension in place, atomically: the new .so is renamed over the old one,
# so a process that has the old one loaded keeps running (no SIGBUS mid-test).
build:
	GENSAMPLE_CUDA=$${GENSAMPLE_CUDA:-auto} $(PYTHON) setup.py -q build_ext --build-lib build/stage
	for f in build/stage/gensample/_C*.so; do cp "$$f" "gensample/.$${f##*/}.tmp" && mv -f "gensample/.$${f##*/}.tmp" "gensample/$${f##*/}"; done

demo: setup
	$(PYTHON) -m gensample demo --out $(DEMO_OUT)
	@echo "report: $(DEMO_OUT)/report.md (numbers: $(DEMO_OUT)/report.json; pictures: $(DEMO_OUT)/*.png)"

test: setup
	$(PYTHON) -m pytest -q

bench: setup
	$(PYTHON) benchmarks/bench_reparam.py --json auto
	$(PYTHON) benchmarks/bench_gibbs.py --json auto
	$(PYTHON) benchmarks/bench_langevin.py --json auto
	$(PYTHON) benchmarks/bench_diagnostics.py --json auto

# regenerate docs/benchmarks.md and docs/img/ from the committed benchmarks/results/*.json
docs: setup
	$(PYTHON) benchmarks/render_docs.py

info: setup
	$(PYTHON) -m gensample info

clean:
	rm -rf build gensample/_C*.so *.egg-info $(VENV)/.built
