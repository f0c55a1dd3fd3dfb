#!/usr/bin/env bash
# Install what is missing on a fresh Debian machine, then run the product or its tests.
#   bash scripts/dev.sh demo   - the demo: local Asterisk + the AI agent on extension 1000
#   bash scripts/dev.sh test   - the static checks, then the whole test suite, real Asterisk,
#                                real models
#   bash scripts/dev.sh lint   - the static checks alone: ruff, mypy, bandit, pip-audit
#   bash scripts/dev.sh setup  - install only (CI's load-test job)
# Needs root (apt-get, debootstrap, chroot). Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(debootstrap sip-tester espeak-ng sox libsox-fmt-base python3-venv postgresql
              pocketsphinx-testdata  # people reading, with transcripts: hearing tests and bench
              # music on hold (CC-BY-SA 3.0): the AI's hold, and copied into a PBX root
              # provisioned before it (the operators' queue)
              asterisk-moh-opsound-wav asterisk-moh-opsound-g722
              chromium chromium-driver
              kamailio  # the SIP dispatcher of `smartpbx cluster` (two PBX nodes)
              shellcheck  # actionlint checks the CI workflow's shell steps with it
              systemd)  # systemd-analyze verifies deploy/systemd/ (tests/unit/test_deploy.py)
VENV=${SMARTPBX_VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_CPU=${SMARTPBX_TORCH:-torch==2.13.0}

log() { printf '[dev] %s\n' "$*" >&2; }

install_system() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

install_python() {
  if [[ ! -x $VENV/bin/python ]]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
  # the venv's own pip (23.2 on bookworm) has known vulnerabilities (CVE-2023-5752, and
  # later ones): pip-audit (lint) fails on it
  "${pip[@]}" "pip>=25.3"
  # The CPU build of PyTorch first, or sentence-transformers pulls several GB of CUDA.
  "$VENV/bin/python" -c "import torch" 2>/dev/null || { log "pip install $TORCH_CPU"; "${pip[@]}" "$TORCH_CPU"; }
  # llama-cpp-python compiles (about 5 min on 2 cores) the first time; pip's cache keeps the wheel.
  log "pip install -e .[test]"
  CMAKE_ARGS=${CMAKE_ARGS:--DGGML_NATIVE=OFF} "${pip[@]}" -e '.[test]'
  # Smart Turn v3.2 ships only inside the pipecat-ai wheel: take that one file into the cache
  # now (serve would on first start), so calls after installing need no registry.
  "$VENV/bin/python" -c "from smartpbx_ari.config import load_settings as s
from smartpbx_ari.media.smart_turn import model_file as m; m(s().cache_dir)"
}

lint() {
  log "ruff check; mypy (strict); bandit -ll; pip-audit"
  "$VENV/bin/ruff" check smartpbx_ari tests scripts
  "$VENV/bin/mypy"
  "$VENV/bin/bandit" -q -ll -r smartpbx_ari
  # the known-vulnerable pins; says SKIPPED where no vulnerability service answers,
  # unless SMARTPBX_AUDIT=required (the GitHub workflow)
  "$VENV/bin/python" scripts/audit_deps.py
}

case "${1:-}" in
  demo)
    install_system; install_python
    exec "$VENV/bin/smartpbx" demo
    ;;
  test)
    install_system; install_python
    shift
    lint
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  lint)
    install_python; lint
    ;;
  setup)
    install_system; install_python
    ;;
  *)
    echo "usage: bash scripts/dev.sh demo|test [pytest args]|lint|setup" >&2
    exit 2
    ;;
esac
