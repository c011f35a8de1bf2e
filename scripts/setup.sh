#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build, test and benchmark Strait, then
# installs the npm dependencies (which builds the native addon) and compiles TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential python3 pkg-config          # node-gyp
  libnghttp2-dev                              # native/http2 (headers; node's own nghttp2 at run time)
  clang llvm libbpf-dev bpftool libelf-dev    # bpf/ programs and their loader
  iptables iproute2                           # interception fallback and netns tests
  haproxy nginx libnginx-mod-stream           # benchmark peers (nginx needs the stream module for L4)
  wrk nghttp2-client                          # load generators
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The Debian nginx and haproxy packages start system services; the benchmark runs its own.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  ${SUDO:-} systemctl disable --now nginx haproxy >/dev/null 2>&1 || true
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js 20 or newer is required (found $(node -v 2>/dev/null || echo none))." >&2
  echo "setup: install it from your distribution's nodejs 20 packages or nodesource, then re-run." >&2
  exit 1
fi

npm ci --no-audit --no-fund
npm run build
