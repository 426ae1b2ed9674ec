#!/usr/bin/env bash
# Build `helm` from Go modules (the Go module proxy serves helm.sh/helm/v3)
# into the cache, for the tests that lint and render the Zero-to-JupyterHub
# chart with this project's helm-values/*.yaml.
#
#   ${OFFLOAD_HELM_CACHE:-$HOME/.cache/offload-spawner/helm}/<version>/helm
#
# Idempotent: if the binary is there, prints "helm: cached ..." and exits 0.
# `build_helm.sh --bin` only prints the binary's path (built or not).
#
# Environment:
#   OFFLOAD_HELM_CACHE    cache root (default ~/.cache/offload-spawner/helm)
#   OFFLOAD_TESTBED_NICE  nice level for the compiler (default 19)
#   GO                    go binary (default: `go` on PATH, else /usr/local/go/bin/go)
set -euo pipefail

HELM_VERSION="v3.19.0"
CACHE_ROOT="${OFFLOAD_HELM_CACHE:-$HOME/.cache/offload-spawner/helm}"
OUT_DIR="${CACHE_ROOT}/${HELM_VERSION}"
BIN="${OUT_DIR}/helm"
NICE="${OFFLOAD_TESTBED_NICE:-19}"

if [[ "${1:-}" == "--bin" ]]; then
    echo "${BIN}"
    exit 0
fi
if [[ -x "${BIN}" ]]; then
    echo "helm: cached ${BIN}"
    exit 0
fi

mkdir -p "${CACHE_ROOT}"
# Serialise concurrent callers; re-check once the lock is ours.
if command -v flock >/dev/null 2>&1; then
    exec 9>"${CACHE_ROOT}/.build.lock"
    flock 9
    if [[ -x "${BIN}" ]]; then
        echo "helm: cached ${BIN}"
        exit 0
    fi
fi

if [[ -z "${GO:-}" ]]; then
    if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
fi
export GOWORK=off
export CGO_ENABLED=0
export GOFLAGS="-trimpath -buildvcs=false"

start=$(date +%s)
echo "helm: building ${HELM_VERSION} with $("${GO}" version) into ${OUT_DIR}"
WORK="$(mktemp -d "${CACHE_ROOT}/.work.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT
GOBIN="${WORK}" nice -n "${NICE}" "${GO}" install \
    -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
mkdir -p "${OUT_DIR}"
mv -f "${WORK}/helm" "${BIN}"
echo "helm: built in $(( $(date +%s) - start ))s -> ${BIN}"
