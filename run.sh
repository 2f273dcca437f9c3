#!/usr/bin/env bash
# rps_tfdata's two commands, from a fresh checkout:
#   ./run.sh train [FLAGS...]   train (python -m rps_tfdata.train FLAGS...)
#   ./run.sh test  [PYTEST ARGS] lint, then the whole test suite (what CI runs)
#   ./run.sh test --fast [ARGS]  lint, then the tests that start no process (the edit loop)
# and the other entry points: ./run.sh evaluate|predict|synthetic|benchmark|preview [FLAGS...],
#   ./run.sh gpu-check [FLAGS...]  the GPU path's checks and figures: flags/gpu_check.flags,
#                                  or flags/gpu_check_cpu.flags (smaller) where no GPU is listed
# The first call creates .venv/ in the checkout (Python 3.11+, about 2.5 GB, 2-3 minutes)
# and installs the package with its test extras; later calls reuse it, and reinstall
# only when setup.cfg or pyproject.toml change. RPS_VENV=DIR puts the venv elsewhere.
set -euo pipefail
cd "$(dirname "$0")"

VENV=${RPS_VENV:-.venv}
PYTHON=${PYTHON:-python3}

ensure_venv() {
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "run.sh: $PYTHON is $("$PYTHON" --version 2>&1); rps_tfdata needs Python 3.11 or newer (set PYTHON=...)" >&2
    exit 1
  }
  local stamp="$VENV/.rps_tfdata-installed"
  local want
  want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return
  fi
  echo "run.sh: installing rps_tfdata and its dependencies into $VENV (first run: a few minutes)" >&2
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e ".[test]"
  echo "$want" > "$stamp"
}

command=${1:-}
[[ $# -gt 0 ]] && shift
case "$command" in
  train|evaluate|predict|synthetic|export|benchmark|preview|data_service)
    ensure_venv
    exec "$VENV/bin/python" -m "rps_tfdata.$command" "$@"
    ;;
  gpu-check)
    ensure_venv
    # Its settings are a flagfile: the GPU's where nvidia-smi lists one, else the CPU's.
    flagfile=flags/gpu_check_cpu.flags
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; then
      flagfile=flags/gpu_check.flags
    fi
    exec "$VENV/bin/python" -m rps_tfdata.gpu_check --flagfile="$flagfile" "$@"
    ;;
  test)
    ensure_venv
    "$VENV/bin/ruff" format --check rps_tfdata tests examples
    "$VENV/bin/ruff" check rps_tfdata tests examples
    # Two workers, a test file (or a group of files, conftest.py) each (BUILD.md, "Development").
    if [[ "${1:-}" == "--fast" ]]; then
      shift
      exec "$VENV/bin/python" -m pytest -m "not slow" -n 2 --dist loadgroup "$@"
    fi
    exec "$VENV/bin/python" -m pytest -n 2 --dist loadgroup "$@"
    ;;
  *)
    echo "usage: ./run.sh train|test|evaluate|predict|synthetic|export|benchmark|preview|data_service|gpu-check [ARGS...]" >&2
    exit 2
    ;;
esac
