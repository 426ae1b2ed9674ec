#!/usr/bin/env bash
# Install the real interLink Kubernetes plugin (Python, FastAPI) in a virtual
# environment of its own, from its upstream source, with pip and PyPI only:
#
#   interlink-kubernetes-plugin   github.com/interlink-hq/interlink-kubernetes-plugin  cfebf48
#   interlink (its plugin SDK)    github.com/interlink-hq/interlink-plugin-sdk         3e99546
#                                 (the commit of branch sync-openapi-v0.5.0 that the plugin's
#                                 pyproject.toml and requirements.txt pin; not on PyPI)
#
# The plugin needs Python >= 3.12 (it uses PEP 701 f-strings, e.g. in
# app/services/kubernetes_plugin_service.py); the project's own Python is 3.11.
# The interpreter is looked up, in order: $OFFLOAD_PLUGIN_PYTHON, python3.12 /
# python3.13 on PATH, pyenv's versions (`pyenv root`, else ~/.pyenv).
#
# Sources are looked up, in order:
#   plugin: $OFFLOAD_UPSTREAM_DIR/interlink-kubernetes-plugin, ../shared/upstream/...
#           next to the checkout (or one of its parents), else cloned into the cache;
#   SDK:    $OFFLOAD_INTERLINK_SDK_DIR, $OFFLOAD_UPSTREAM_DIR/interlink-plugin-sdk,
#           ../shared/upstream/interlink-plugin-sdk, the cache's sources/ folder
#           (${CACHE}/sources/interlink-plugin-sdk-3e99546), else cloned there.
# Cloning needs network access to github.com. The upstream trees are never
# edited: the plugin's src/ is copied into the cache and run from there.
#
# Result, in ${OFFLOAD_K8S_PLUGIN_CACHE:-$HOME/.cache/offload-spawner/k8s-plugin}/<stamp>/:
#   venv/   the plugin's own virtual environment (the plugin's pinned
#           requirements from src/infr/containers/prod/requirements.txt + the SDK)
#   src/    a copy of the plugin's src/ (run `python -m app.server` in it)
#   .versions  the stamp
#
# Idempotent: when all is there it prints "k8s-plugin: cached ..." and exits 0.
# `--dir` prints the result directory; `--check` exits 3 (with the reason on
# stderr) when the sources or a Python >= 3.12 cannot be found.
set -euo pipefail

PLUGIN_COMMIT="cfebf48"
SDK_COMMIT="3e99546"
SDK_COMMIT_FULL="3e99546ef1561107a1a47420577abad8d582ac95"
STAMP_CONTENT="kubernetes-plugin=${PLUGIN_COMMIT} plugin-sdk=${SDK_COMMIT}"

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE_ROOT="${OFFLOAD_K8S_PLUGIN_CACHE:-$HOME/.cache/offload-spawner/k8s-plugin}"
OUT_DIR="${CACHE_ROOT}/${PLUGIN_COMMIT}-${SDK_COMMIT}"
STAMP="${OUT_DIR}/.versions"
SDK_CACHE="${CACHE_ROOT}/sources/interlink-plugin-sdk-${SDK_COMMIT}"

# shellcheck source=testbed/upstream_sources.sh
source "${HERE}/upstream_sources.sh"

find_plugin() {
    upstream_checkout interlink-kubernetes-plugin
}

find_sdk() {
    if [[ -n "${OFFLOAD_INTERLINK_SDK_DIR:-}" ]]; then
        echo "${OFFLOAD_INTERLINK_SDK_DIR}"; return 0
    fi
    if upstream_checkout interlink-plugin-sdk; then
        return 0
    fi
    if [[ -f "${SDK_CACHE}/setup.py" ]]; then
        echo "${SDK_CACHE}"; return 0
    fi
    return 1
}

runs_312() {  # a pyenv shim exists on PATH even when it cannot run the version
    [[ -n "$1" && -x "$1" ]] && "$1" -c 'import sys, venv; assert sys.version_info >= (3, 12)' >/dev/null 2>&1
}

find_python() {
    local candidate root
    root="$(pyenv root 2>/dev/null || echo "${HOME}/.pyenv")"
    for candidate in "${OFFLOAD_PLUGIN_PYTHON:-}" "$(command -v python3.12 || true)" \
            "$(command -v python3.13 || true)" "${root}"/versions/3.1[2-9]*/bin/python3; do
        if runs_312 "${candidate}"; then echo "${candidate}"; return 0; fi
    done
    return 1
}

can_clone() {
    [[ "${OFFLOAD_NO_CLONE:-}" != "1" ]] && command -v git >/dev/null 2>&1
}

case "${1:-}" in
    --dir) echo "${OUT_DIR}"; exit 0 ;;
    --check)
        if [[ -f "${STAMP}" && "$(cat "${STAMP}")" == "${STAMP_CONTENT}" ]]; then exit 0; fi
        find_python >/dev/null || { echo "no Python >= 3.12 for the interLink Kubernetes plugin: set OFFLOAD_PLUGIN_PYTHON or install python3.12" >&2; exit 3; }
        find_plugin >/dev/null || { echo "no interlink-kubernetes-plugin sources: set OFFLOAD_UPSTREAM_DIR or put ../shared/upstream beside the checkout" >&2; exit 3; }
        find_sdk >/dev/null || { echo "no interLink plugin SDK sources (github.com/interlink-hq/interlink-plugin-sdk at ${SDK_COMMIT}, not on PyPI): set OFFLOAD_INTERLINK_SDK_DIR to a checkout, or put it in ${SDK_CACHE} or ../shared/upstream/interlink-plugin-sdk" >&2; exit 3; }
        exit 0 ;;
esac

is_cached() {
    [[ -x "${OUT_DIR}/venv/bin/python" && -f "${OUT_DIR}/src/app/server.py" && -f "${STAMP}" \
        && "$(cat "${STAMP}")" == "${STAMP_CONTENT}" ]]
}

if is_cached; then
    echo "k8s-plugin: cached ${OUT_DIR} (${STAMP_CONTENT})"
    exit 0
fi

mkdir -p "${CACHE_ROOT}"
exec 9>"${CACHE_ROOT}/.build.lock"
flock 9
if is_cached; then
    echo "k8s-plugin: cached ${OUT_DIR} (${STAMP_CONTENT})"
    exit 0
fi

PYTHON="$(find_python)" || { echo "k8s-plugin: no Python >= 3.12 (set OFFLOAD_PLUGIN_PYTHON)" >&2; exit 1; }

if ! PLUGIN_SRC="$(find_plugin)"; then
    can_clone || { echo "k8s-plugin: no plugin sources and no git" >&2; exit 1; }
    PLUGIN_SRC="${CACHE_ROOT}/sources/interlink-kubernetes-plugin-${PLUGIN_COMMIT}"
    if [[ ! -d "${PLUGIN_SRC}/src" ]]; then
        git clone --quiet https://github.com/interlink-hq/interlink-kubernetes-plugin.git "${PLUGIN_SRC}"
        git -C "${PLUGIN_SRC}" checkout --quiet "${PLUGIN_COMMIT}"
    fi
fi
if ! SDK_SRC="$(find_sdk)"; then
    can_clone || { echo "k8s-plugin: no SDK sources and no git" >&2; exit 1; }
    git clone --quiet https://github.com/interlink-hq/interlink-plugin-sdk.git "${SDK_CACHE}"
    git -C "${SDK_CACHE}" checkout --quiet "${SDK_COMMIT_FULL}"
    SDK_SRC="${SDK_CACHE}"
fi
echo "k8s-plugin: plugin from ${PLUGIN_SRC}, SDK from ${SDK_SRC}, Python ${PYTHON}"

rm -rf "${OUT_DIR}"
mkdir -p "${OUT_DIR}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/k8s-plugin-build.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT

cp -r "${PLUGIN_SRC}/src" "${OUT_DIR}/src"
cp -r "${SDK_SRC}" "${WORK}/sdk"
chmod -R u+w "${OUT_DIR}/src" "${WORK}/sdk"

# The pinned requirements carry `python_version >= "3.12"` markers (true for the
# interpreter used here) and a git URL for the SDK, which is installed from the
# local source instead.
grep -v '^interlink @' "${PLUGIN_SRC}/src/infr/containers/prod/requirements.txt" > "${WORK}/requirements.txt"

"${PYTHON}" -m venv "${OUT_DIR}/venv"
PIP=("${OUT_DIR}/venv/bin/python" -m pip --disable-pip-version-check --quiet)
"${PIP[@]}" install -r "${WORK}/requirements.txt"
"${PIP[@]}" install --no-deps "${WORK}/sdk"
"${OUT_DIR}/venv/bin/python" -c "import interlink, kubernetes, fastapi; print('k8s-plugin: imports ok')"

echo "${STAMP_CONTENT}" > "${STAMP}"
echo "k8s-plugin: installed ${OUT_DIR} (${STAMP_CONTENT})"
