#!/usr/bin/env bash
# Installs what bench/overhead.py needs, next to this script:
#   wrk                  Debian package (the load generator)
#   bench/.venv-bench    the loopback upstream's venv (uvloop, httptools, orjson)
#   bench/.venv-litellm  the peer: LiteLLM's proxy, in its own venv
# turnout itself is the project's venv (.venv at the repository root: pip install -e .).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
LITELLM_VERSION=${LITELLM_VERSION:-1.108.0}

if ! command -v wrk >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq wrk
fi

[ -x .venv-bench/bin/python ] || "$PY" -m venv .venv-bench
.venv-bench/bin/pip install -q 'uvloop==0.23.0' 'httptools==0.9.0' 'orjson==3.13.0'

[ -x .venv-litellm/bin/python ] || "$PY" -m venv .venv-litellm
# httptools: LiteLLM's uvicorn then uses the same HTTP parser as turnout's
# (litellm[proxy] does not pull it in, and uvicorn falls back to the slower h11).
.venv-litellm/bin/pip install -q "litellm[proxy]==${LITELLM_VERSION}" 'httptools==0.9.0'

echo "ready: $(wrk -v 2>&1 | head -1); LiteLLM $(.venv-litellm/bin/python -c \
  'import importlib.metadata as m; print(m.version("litellm"))')"
