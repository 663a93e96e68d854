#!/usr/bin/env bash
# Create or refresh the virtual environment and the system packages the stack needs.
# Usage: scripts/setup.sh [--dev]   (--dev adds test tools and the browser for e2e tests)
# Idempotent: re-running only installs what changed (pip is skipped when the
# requirement files are unchanged since the last successful install).
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0; [[ "${1:-}" == "--dev" ]] && DEV=1
PY=${PYTHON:-python3}

# System packages: FFmpeg libraries (torchaudio reads audio through torchcodec),
# espeak-ng (regenerates the demo); --dev adds chromium (browser tests) and sox (a chain-step test).
SYS_PKGS=(libavutil57 libavcodec59 libavformat59 libavdevice59 libavfilter8 libswscale6 libswresample4 espeak-ng)
[[ $DEV == 1 ]] && SYS_PKGS+=(chromium sox)
missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${SYS_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if ((${#missing[@]})); then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) != 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: system packages present (${SYS_PKGS[*]})"
fi

[[ -x .venv/bin/python ]] || { echo "setup: creating .venv"; $PY -m venv .venv; }
REQS=(requirements.txt); [[ $DEV == 1 ]] && REQS+=(requirements-dev.txt)
STAMP=.venv/.installed-$(cat "${REQS[@]}" | sha256sum | cut -c1-16)
if [[ ! -f $STAMP ]]; then
  echo "setup: installing Python packages from ${REQS[*]}"
  args=(); for r in "${REQS[@]}"; do args+=(-r "$r"); done
  .venv/bin/pip install -q --disable-pip-version-check "${args[@]}"
  # These two pin ancient versions of everything (torch 2.1, gradio 4); their real
  # runtime needs are listed in requirements.txt instead.
  .venv/bin/pip install -q --disable-pip-version-check --no-deps resemble-enhance==0.0.1 resemblyzer==0.1.4
  rm -f .venv/.installed-*; touch "$STAMP"
else
  echo "setup: Python packages up to date"
fi
