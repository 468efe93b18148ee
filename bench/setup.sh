#!/usr/bin/env bash
# Installs what bench/overhead.py needs, next to this script:
#   wrk                  Debian package (the load generator)
#   bench/.venv-bench    the loopback upstream's and the OTLP sink's venv (uvloop, httptools,
#                        orjson), and py-spy to profile a gateway under load
#   bench/.venv-litellm  a peer: LiteLLM's proxy, in its own venv
#   bench/.portkey       a peer: Portkey's open-source gateway from npm (Node)
# turnout itself is the project's venv (.venv at the repository root: pip install -e .).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
LITELLM_VERSION=${LITELLM_VERSION:-1.108.0}
PORTKEY_VERSION=${PORTKEY_VERSION:-1.15.2}
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

if ! command -v wrk >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  command -v wrk >/dev/null 2>&1 || $SUDO apt-get install -y -qq wrk
  command -v npm >/dev/null 2>&1 || $SUDO apt-get install -y -qq nodejs npm
fi

[ -x .venv-bench/bin/python ] || "$PY" -m venv .venv-bench
.venv-bench/bin/pip install -q 'uvloop==0.23.0' 'httptools==0.9.0' 'orjson==3.13.0' 'py-spy'

[ -x .venv-litellm/bin/python ] || "$PY" -m venv .venv-litellm
# httptools: LiteLLM's uvicorn then uses the same HTTP parser as turnout's
# (litellm[proxy] does not pull it in, and uvicorn falls back to the slower h11).
.venv-litellm/bin/pip install -q "litellm[proxy]==${LITELLM_VERSION}" 'httptools==0.9.0'

# @hono/node-server 1.19 (what npm resolves for this gateway otherwise) fails every
# streaming request with a 500 ("TypeError: immutable"); 1.13.8 does not.
mkdir -p .portkey
printf '%s\n' '{"private": true,' \
  " \"dependencies\": {\"@portkey-ai/gateway\": \"${PORTKEY_VERSION}\"}," \
  ' "overrides": {"@hono/node-server": "1.13.8"}}' > .portkey/package.json
(cd .portkey && npm install --no-audit --no-fund --silent)

echo "ready: $(wrk -v 2>&1 | head -1); LiteLLM $(.venv-litellm/bin/python -c \
  'import importlib.metadata as m; print(m.version("litellm"))');" \
  "Portkey gateway $(node -p 'require("./.portkey/node_modules/@portkey-ai/gateway/package.json").version')" \
  "on node $(node --version)"
