#!/usr/bin/env bash
# Run deploy/docker/Dockerfile's install steps outside Docker (no registry for
# base images here, so the image itself cannot be built on this machine).
#
#   deploy/docker/check_install.sh            stage, install into a throwaway venv, smoke-test, remove
#   deploy/docker/check_install.sh --print    only show what it would copy and run
#
# The steps are not written here: dockerfile_steps.py reads them from the
# Dockerfile (its COPY lines and the RUN lines between `# >>> install` and
# `# <<< install`), so this check and the image cannot drift apart. They run
# with bash in a temp dir standing in for the image's WORKDIR, with the build
# stage's ARG/ENV values except:
#   VIRTUAL_ENV       <tmp>/venv instead of /opt/riskflow
#   TORCH_INDEX_URL   $TORCH_INDEX_URL, default PyPI (the Dockerfile's default,
#                     PyTorch's CPU index, is not reachable from every machine;
#                     PyPI's Linux torch is the CUDA build: same API, bigger)
#   PIP_NO_CACHE_DIR  unset, so repeated checks reuse pip's cache
#   python            $PYTHON (default python3), which must be 3.11+ like the image
# Exit status: that of the first failing step (the smoke test imports every
# riskflow module and runs `riskflow --help`). KEEP=1 keeps the temp dir.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DOCKERFILE=${DOCKERFILE:-$HERE/Dockerfile}
PYTHON=${PYTHON:-python3}
TORCH_INDEX=${TORCH_INDEX_URL:-https://pypi.org/simple}
say() { echo "check_install: $*"; }
die() { echo "check_install: error: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found; set PYTHON=/path/to/python3.11"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || die "$PYTHON is $("$PYTHON" -V 2>&1); the image runs 3.11: set PYTHON=python3.11"

STEPS_JSON=$("$PYTHON" "$HERE/dockerfile_steps.py" "$DOCKERFILE")
field() { "$PYTHON" -c 'import json, sys; exec(sys.argv[2])' "$STEPS_JSON" "$1"; }
mapfile -t COPIES < <(field 'for srcs, dest in json.loads(sys.argv[1])["copies"]: print("\t".join([dest, *srcs]))')
mapfile -t RUNS < <(field 'for r in json.loads(sys.argv[1])["runs"]: print(r)')
mapfile -t DEFAULTS < <(field 'd = json.loads(sys.argv[1]); [print(f"{k}={v}") for k, v in {**d["args"], **d["env"]}.items()]')

if [[ ${1:-} == --print ]]; then
  for c in "${COPIES[@]}"; do IFS=$'\t' read -r dest srcs <<<"$c"; echo "COPY $srcs -> $dest"; done
  for r in "${RUNS[@]}"; do echo "RUN $r"; done
  exit 0
fi
[[ $# -eq 0 ]] || die "unknown argument '$1' (use --print, or nothing)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/riskflow-check-install.XXXXXX")
if [[ ${KEEP:-0} == 1 ]]; then say "keeping $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
SRC=$WORK/src
mkdir -p "$SRC" "$WORK/bin"
ln -s "$(command -v "$PYTHON")" "$WORK/bin/python"

say "staging the build context in $SRC"
for c in "${COPIES[@]}"; do
  IFS=$'\t' read -r -a parts <<<"$c"
  dest=${parts[0]}
  for src in "${parts[@]:1}"; do
    [[ -e $ROOT/$src ]] || die "COPY source $src does not exist in $ROOT"
    target=$SRC/$dest
    if [[ $dest == */ ]]; then mkdir -p "$target"; else mkdir -p "$(dirname "$target")"; fi
    cp -R "$ROOT/$src" "$target"
  done
done
find "$SRC" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +

# The build stage's ARG/ENV, then this machine's substitutions (see the header).
for kv in "${DEFAULTS[@]}"; do export "${kv?}"; done
export VIRTUAL_ENV=$WORK/venv
export TORCH_INDEX_URL=$TORCH_INDEX
unset PIP_NO_CACHE_DIR
export PATH=$WORK/bin:$PATH

cd "$SRC"
for r in "${RUNS[@]}"; do
  say "RUN $r"
  started=$SECONDS
  bash -euo pipefail -c "$r" || die "step failed: RUN $r"
  say "  ok ($((SECONDS - started)) s)"
done
say "all ${#RUNS[@]} install steps of $(basename "$DOCKERFILE") passed outside Docker"
