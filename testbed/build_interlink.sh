#!/usr/bin/env bash
# Build the real interLink components the test bed runs, from their upstream
# sources, with the local Go toolchain and the Go module proxy only:
#
#   virtual-kubelet   interLink's virtual kubelet   (interLink/cmd/virtual-kubelet)
#   interlink         interLink's API server         (interLink/cmd/interlink)
#   slurm-plugin      the interLink SLURM plugin     (interlink-slurm-plugin/cmd)
#
# The sources are not part of this repository. They are looked up, in order:
#   1. $OFFLOAD_UPSTREAM_DIR (a folder holding the checkouts named below);
#   2. ../shared/upstream next to the checkout (or next to one of its parents);
#   3. otherwise cloned from GitHub at the pinned commits into the cache
#      (needs network access to github.com).
# Folders expected in that directory, and the commits this script pins:
#   interLink/               github.com/interlink-hq/interLink               f6321757
#   interLink-9ed14a4/       github.com/interlink-hq/interLink               9ed14a4e89d5
#                            (the interLink module version the SLURM plugin's go.mod
#                            requires; the Go module proxy does not serve
#                            github.com/interlink-hq/*, so the build uses a `replace`)
#   interlink-slurm-plugin/  github.com/interlink-hq/interlink-slurm-plugin  f8451d9
#   interlink-htcondor-plugin/ (Python, used as it is by the tests; not built here)
#
# The upstream trees are never edited: each build works on a copy in a
# temporary directory. Binaries land in
#
#   ${OFFLOAD_INTERLINK_CACHE:-$HOME/.cache/offload-spawner/interlink}/<stamp>/bin/
#
# Idempotent: when all binaries and the stamp are there it prints
# "interlink: cached ..." and exits 0 at once. `--bin-dir` prints the
# directory; `--source-dir` prints where the sources were found (or exits 3).
#
# Environment: OFFLOAD_UPSTREAM_DIR, OFFLOAD_INTERLINK_CACHE,
# OFFLOAD_TESTBED_NICE (nice level, default 19), GO (go binary).
set -euo pipefail

INTERLINK_COMMIT="f6321757"
INTERLINK_PIN_COMMIT="9ed14a4e89d5"
SLURM_PLUGIN_COMMIT="f8451d9"
STAMP_CONTENT="interlink=${INTERLINK_COMMIT} interlink-pin=${INTERLINK_PIN_COMMIT} slurm-plugin=${SLURM_PLUGIN_COMMIT}"

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE_ROOT="${OFFLOAD_INTERLINK_CACHE:-$HOME/.cache/offload-spawner/interlink}"
OUT_DIR="${CACHE_ROOT}/${INTERLINK_COMMIT}-${SLURM_PLUGIN_COMMIT}/bin"
STAMP="${OUT_DIR}/.versions"
NICE="${OFFLOAD_TESTBED_NICE:-19}"
BINS=(virtual-kubelet interlink slurm-plugin)

# shellcheck source=testbed/upstream_sources.sh
source "${HERE}/upstream_sources.sh"

find_sources() {  # the folder holding the checkouts
    local interlink
    interlink="$(upstream_checkout interLink)" || return 1
    dirname "${interlink}"
}

case "${1:-}" in
    --bin-dir) echo "${OUT_DIR}"; exit 0 ;;
    --source-dir)
        find_sources || { echo "no interLink sources: set OFFLOAD_UPSTREAM_DIR or put ../shared/upstream beside the checkout" >&2; exit 3; }
        exit 0 ;;
esac

is_cached() {
    local b
    for b in "${BINS[@]}"; do
        [[ -x "${OUT_DIR}/${b}" ]] || return 1
    done
    [[ -f "${STAMP}" && "$(cat "${STAMP}")" == "${STAMP_CONTENT}" ]]
}

if is_cached; then
    echo "interlink: cached ${OUT_DIR} (${STAMP_CONTENT})"
    exit 0
fi

mkdir -p "${CACHE_ROOT}"
exec 9>"${CACHE_ROOT}/.build.lock"
flock 9
if is_cached; then
    echo "interlink: cached ${OUT_DIR} (${STAMP_CONTENT})"
    exit 0
fi

if [[ -n "${GO:-}" ]]; then :
elif command -v go >/dev/null 2>&1; then GO=go
elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
else echo "interlink: no Go toolchain (set GO or put go on PATH)" >&2; exit 1
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/interlink-build.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT

if SRC="$(find_sources)"; then
    echo "interlink: sources from ${SRC}"
    cp -r "${SRC}/interLink" "${SRC}/interLink-9ed14a4" "${SRC}/interlink-slurm-plugin" "${WORK}/"
else
    echo "interlink: no local sources; cloning the pinned commits from GitHub"
    clone() {  # clone URL COMMIT DEST
        git clone --quiet "$1" "$3"
        git -C "$3" checkout --quiet "$2"
    }
    clone https://github.com/interlink-hq/interLink.git "${INTERLINK_COMMIT}" "${WORK}/interLink"
    clone https://github.com/interlink-hq/interLink.git "${INTERLINK_PIN_COMMIT}" "${WORK}/interLink-9ed14a4"
    clone https://github.com/interlink-hq/interlink-slurm-plugin.git "${SLURM_PLUGIN_COMMIT}" "${WORK}/interlink-slurm-plugin"
fi

mkdir -p "${OUT_DIR}"
# The copies may be read-only (the shared sources have no write bits).
chmod -R u+w "${WORK}"

echo "interlink: building virtual-kubelet and interlink (a few minutes on 2 cores the first time)"
(cd "${WORK}/interLink" && nice -n "${NICE}" "${GO}" build -o "${OUT_DIR}/" ./cmd/virtual-kubelet ./cmd/interlink)

echo "interlink: building slurm-plugin"
(
    cd "${WORK}/interlink-slurm-plugin"
    "${GO}" mod edit -replace "github.com/interlink-hq/interlink=${WORK}/interLink-9ed14a4"
    nice -n "${NICE}" "${GO}" build -o "${OUT_DIR}/slurm-plugin" ./cmd/
)

echo "${STAMP_CONTENT}" > "${STAMP}"
echo "interlink: built ${OUT_DIR} (${STAMP_CONTENT})"
