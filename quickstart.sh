#!/usr/bin/env bash
# Quick start on a fresh machine: installs what khal needs and runs the example kernels on every backend.
#   - Mesa's lavapipe (a Vulkan device on the CPU, so WebGPU works without a GPU), when run as root on Debian/Ubuntu
#   - a virtual environment .venv with khal-gpu and its test tools (pip install -e '.[dev]'), whose build compiles
#     every kernel (GLSL, CUDA, SPIR-V, PTX, IR) with the toolchains from PyPI
#   - then `python examples/demo.py`: each example kernel on CUDA, WebGPU and the CPU interpreter, against numpy
#   - and the main job: a short greedy answer from the default model (SmolLM2-135M-Instruct, pulled on first use)
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! dpkg -s mesa-vulkan-drivers >/dev/null 2>&1; then
    echo "quickstart: installing mesa-vulkan-drivers (lavapipe)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq mesa-vulkan-drivers >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "quickstart: installing khal-gpu into .venv (the build compiles the kernels)"
.venv/bin/python -m pip install -q -e '.[dev]'
.venv/bin/python examples/demo.py
echo "quickstart: inferi generate on the default model"
.venv/bin/inferi generate --prompt "What is the capital of France?" --temperature 0 --max-tokens 24
