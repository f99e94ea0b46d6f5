#!/usr/bin/env bash
# ./run.sh [EXPERIMENT.toml] [fedvlm-sim options] — install what is missing, build, run.
# Without arguments it runs the embedded default, experiments/quickstart.toml.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh fedvlm-sim
exec build/fedvlm-sim "${1:-experiments/quickstart.toml}" "${@:2}"
