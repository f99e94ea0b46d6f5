#!/usr/bin/env bash
# ./test.sh — install what is missing, build everything, run the quickstart, then every test.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh all
scripts/check_layers.py --self-test && scripts/check_layers.py  # no upward include, no include cycle
scripts/check_sizes.py --self-test && scripts/check_sizes.py    # no file over 600 lines, no function over 80
build/fedvlm-sim experiments/quickstart.toml --quiet
ctest --test-dir build --output-on-failure -j 2 --timeout 900
