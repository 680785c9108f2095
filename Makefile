# `make test` and `make demo` work from nothing: they create .venv and install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-slow test-triton demo lint format bench clean

$(STAMP): pyproject.toml Makefile constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU build of torch pinned for dev/CI; the library itself asks for torch>=2.2.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[onnx,nir,plot,datasets,demo,test]"
	# Norse 1.1.0 (test dependency of the Norse front-end) without its torchvision, which cannot sit beside CPU torch
	$(BIN)/python -m pip install -q -c constraints.txt nirtorch
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps norse==1.1.0
	# SpikingJelly 2.0 (a test dependency): its metadata asks for torchvision and torchaudio, which would
	# pull another (CUDA) torch and cannot import beside the CPU one, so --no-deps plus the one module its
	# activation_based package imports that the venv lacks (loguru); torch pinned by constraints.txt.
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps spikingjelly==2.0.0
	$(BIN)/python -m pip install -q -c constraints.txt "loguru>=0.7,<1"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m slow

# Triton kernels in Triton's interpreter on CPU tensors (no GPU needed); triton is installed next to
# the pinned CPU torch through the constraints file, never by `make test`.
TRITON_TESTS := tests/test_triton_scans.py tests/test_triton_compile.py tests/test_triton_kernels_option.py \
	tests/test_triton_norse.py
test-triton: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt "triton==3.9.0"
	TRITON_INTERPRET=1 $(BIN)/python -m pytest -q -p no:cacheprovider $(TRITON_TESTS)

demo: $(STAMP)
	$(BIN)/snngraph demo

bench: $(STAMP)
	$(BIN)/snngraph bench

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info demo-out
