# The two commands a new user needs: `make test` and `make demo`. Both set up what is missing first.
SHELL := /bin/bash
CARGO ?= cargo
SHARED ?= $(or $(FERROVIS_SHARED),../shared)
BIN := $(or $(CARGO_TARGET_DIR),target)/debug

.PHONY: setup test demo validate bench fmt clippy reuse-core gpu-check

setup:
	@bash scripts/setup.sh

# The binaries are built last, with the feature set the tests resolved (see `demo`), so that
# `make demo` afterwards compiles nothing.
test: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) check -p ferrovis-core --no-default-features --quiet
	$(CARGO) test --workspace
	$(CARGO) build --workspace --tests --bins

# The demos: each task's model transferred from a source task against the same model trained from
# scratch (classify: 4 new shapes; detect: YOLOv8n pretrained on shapes, freeze=10 on new shapes,
# then SSDlite and Faster R-CNN on the ImageNet MobileNetV2; segment: a U-Net on new shapes' masks;
# style: WCT, AdaIN and Gatys on the relu3_1 encoder against Gatys on a random VGG19). The source
# is the ImageNet weights from $FERROVIS_WEIGHTS (else ../shared/weights when present), or, on a
# fresh offline machine, a model each demo pretrains on synthetic shapes and caches. Every demo
# adds its rows to runs/demo/summary.json and runs/demo/report.html and prints the table. The
# binaries have no default path into ../shared: this target is the one place that knows of it.
demo: export FERROVIS_WEIGHTS := $(or $(FERROVIS_WEIGHTS),$(wildcard $(SHARED)/weights))
# The four binaries are built once, then run. `--tests` makes cargo resolve features as `cargo
# test` does (dev-dependencies' features included), so after `make test` every dependency is
# already built: `--bins` alone resolves them without the dev-dependencies and rebuilt 21 crates.
demo: setup
	$(CARGO) build --workspace --tests --bins
	$(BIN)/classify demo
	$(BIN)/detect demo
	$(BIN)/segment demo
	$(BIN)/style demo

# Real-data checks against ../shared (or FERROVIS_SHARED=<dir>); scripts/validate.sh says which
# checks it cannot run for want of pretrained weights.
validate: setup
	@if [ ! -d "$(SHARED)" ]; then \
	  echo "validate: shared data folder '$(SHARED)' not found; set FERROVIS_SHARED=<dir>"; exit 1; fi
	@CARGO="$(CARGO)" bash scripts/validate.sh "$(abspath $(SHARED))"

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# A project outside the workspace reusing ferrovis-core by path (examples/reuse-core): built and
# run on a torchvision checkpoint. CI runs it after `make test`.
reuse-core: setup
	@bash scripts/reuse_core_check.sh

# The benchmarks that need nothing from ../shared, each against PyTorch in the same run (medians
# and the ratio; see bench/ for the others and README "Benchmarks").
bench: setup
	@py=$$(sed -n 's/^FERROVIS_PYTHON = "\(.*\)"$$/\1/p' .cargo/config.toml); \
	  for b in backbones box_ops roi_align segment_train style_gatys; do \
	    echo "== bench/$$b.py"; "$$py" bench/$$b.py || exit 1; done

# On a machine with an NVIDIA GPU: the engine's AMP test on CUDA, a short CUDA training of each
# task with AMP, predict latencies (scripts/gpu_check.sh; under 8 minutes on one GPU).
gpu-check:
	@bash scripts/gpu_check.sh
