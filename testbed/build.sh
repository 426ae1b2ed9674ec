#!/usr/bin/env bash
# Build the Kubernetes control-plane binaries used by the offload_spawner test
# bed (kube-apiserver, kube-scheduler, kube-controller-manager, etcd) from Go
# modules, with the local Go toolchain and the Go module proxy only.
#
# Nothing from upstream is vendored into this repository: the sources come
# from the module proxy into the Go module cache, the throwaway build modules
# live in a temporary directory, and the binaries land in
#
#   ${OFFLOAD_TESTBED_CACHE:-$HOME/.cache/offload-spawner/testbed}/<k8s-version>/bin/
#
# Idempotent: if all binaries (and the version stamp) are already there, the
# script prints "testbed: cached ..." and exits 0 at once.
#
# Environment:
#   OFFLOAD_TESTBED_CACHE   cache root (default ~/.cache/offload-spawner/testbed)
#   OFFLOAD_TESTBED_NICE    nice level for the compiler (default 19)
#   GO                      go binary (default: `go` on PATH, else /usr/local/go/bin/go)
#   GOMODCACHE, GOCACHE, GOPROXY, ...  honoured as usual (Go defaults persist)
set -euo pipefail

# ---- pinned versions --------------------------------------------------------
K8S_VERSION="v1.35.4"   # module k8s.io/kubernetes
ETCD_VERSION="v3.6.6"   # module go.etcd.io/etcd/server/v3 (what k8s 1.35 tests against, build/dependencies.yaml)
# ------------------------------------------------------------------------------

BINS=(kube-apiserver kube-scheduler kube-controller-manager etcd)
CACHE_ROOT="${OFFLOAD_TESTBED_CACHE:-$HOME/.cache/offload-spawner/testbed}"
OUT_DIR="${CACHE_ROOT}/${K8S_VERSION}/bin"
STAMP="${OUT_DIR}/.versions"
STAMP_CONTENT="kubernetes=${K8S_VERSION} etcd=${ETCD_VERSION}"
NICE="${OFFLOAD_TESTBED_NICE:-19}"

# `build.sh --bin-dir` only prints where the binaries are (or will be).
if [[ "${1:-}" == "--bin-dir" ]]; then
    echo "${OUT_DIR}"
    exit 0
fi

is_cached() {
    local b
    for b in "${BINS[@]}"; do
        [[ -x "${OUT_DIR}/${b}" ]] || return 1
    done
    [[ -f "${STAMP}" && "$(cat "${STAMP}")" == "${STAMP_CONTENT}" ]]
}

if is_cached; then
    echo "testbed: cached ${OUT_DIR} (${STAMP_CONTENT})"
    exit 0
fi

mkdir -p "${CACHE_ROOT}"
# Serialise concurrent callers (e.g. several pytest workers); re-check after
# getting the lock, another caller may have finished the build meanwhile.
if command -v flock >/dev/null 2>&1; then
    exec 9>"${CACHE_ROOT}/.build.lock"
    flock 9
    if is_cached; then
        echo "testbed: cached ${OUT_DIR} (${STAMP_CONTENT})"
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
echo "testbed: building ${STAMP_CONTENT} with $("${GO}" version) into ${OUT_DIR}"

WORK="$(mktemp -d "${CACHE_ROOT}/.work.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT
mkdir -p "${WORK}/k8s" "${WORK}/etcd" "${WORK}/bin"

# Extract a field ("GoMod", "Info", ...) from `go mod download -json` output.
json_field() {
    sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p"
}

# ---- Kubernetes ---------------------------------------------------------------
dl_json="$("${GO}" mod download -json "k8s.io/kubernetes@${K8S_VERSION}")"
k8s_gomod="$(printf '%s\n' "${dl_json}" | json_field GoMod)"
k8s_info="$(printf '%s\n' "${dl_json}" | json_field Info)"
[[ -f "${k8s_gomod}" ]] || { echo "testbed: cannot find go.mod of k8s.io/kubernetes@${K8S_VERSION}" >&2; echo "${dl_json}" >&2; exit 1; }

# v1.35.4 -> staging modules are published as v0.35.4
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
k8s_minor="$(echo "${K8S_VERSION}" | cut -d. -f2)"

# Throwaway module: require k8s.io/kubernetes and turn every local
# "=> ./staging/src/<mod>" replace into "=> <mod> ${STAGING_VERSION}".
# Non-local replaces are copied verbatim; any other local replace is an error.
{
    echo "module offload-spawner.invalid/testbed/k8s"
    echo
    grep -E '^go [0-9]' "${k8s_gomod}"
    grep -E '^godebug ' "${k8s_gomod}" || true
    echo
    echo "require k8s.io/kubernetes ${K8S_VERSION}"
    echo
    echo "replace ("
    awk -v sv="${STAGING_VERSION}" '
        /^replace[[:space:]]*\($/ { inblock = 1; next }
        inblock && /^\)/          { inblock = 0; next }
        /^replace[[:space:]]/     { sub(/^replace[[:space:]]+/, ""); line = 1 }
        inblock || line {
            line = 0
            sub(/[[:space:]]*\/\/.*$/, "")
            if ($0 ~ /^[[:space:]]*$/) next
            n = split($0, f, /[[:space:]]*=>[[:space:]]*/)
            split(f[1], lhs, /[[:space:]]+/); l = (lhs[1] == "" ? lhs[2] : lhs[1])
            r = f[2]
            if (r ~ /^\.\/staging\/src\//) {
                mod = r; sub(/^\.\/staging\/src\//, "", mod)
                if (mod != l) { print "unexpected staging replace: " $0 > "/dev/stderr"; exit 1 }
                printf "\t%s => %s %s\n", l, l, sv
            } else if (r ~ /^\.|^\//) {
                print "unexpected local replace: " $0 > "/dev/stderr"; exit 1
            } else {
                printf "\t%s => %s\n", f[1], r
            }
        }' "${k8s_gomod}"
    echo ")"
} > "${WORK}/k8s/go.mod"

# Version stamping, as hack/lib/version.sh does.
build_date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "${k8s_info}")"
build_date="${build_date:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}"
k8s_ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    k8s_ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
    k8s_ldflags+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${k8s_minor}"
    k8s_ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${build_date}"
done

echo "testbed: compiling kube-apiserver kube-scheduler kube-controller-manager ..."
(
    cd "${WORK}/k8s"
    nice -n "${NICE}" "${GO}" build -mod=mod \
        -tags=selinux,notest,grpcnotrace \
        -ldflags="all=${k8s_ldflags}" \
        -o "${WORK}/bin/" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-scheduler \
        k8s.io/kubernetes/cmd/kube-controller-manager
)

# ---- etcd -----------------------------------------------------------------------
# go.etcd.io/etcd/server/v3 is itself "package main" (main.go -> etcdmain.Main),
# but its go.mod has local replaces, so `go install ...@version` is refused;
# build it from a throwaway module instead.
etcd_json="$("${GO}" mod download -json "go.etcd.io/etcd/server/v3@${ETCD_VERSION}")"
etcd_gomod="$(printf '%s\n' "${etcd_json}" | json_field GoMod)"
[[ -f "${etcd_gomod}" ]] || { echo "testbed: cannot find go.mod of etcd server ${ETCD_VERSION}" >&2; echo "${etcd_json}" >&2; exit 1; }
{
    echo "module offload-spawner.invalid/testbed/etcd"
    echo
    grep -E '^go [0-9]' "${etcd_gomod}"
    echo
    echo "require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}"
} > "${WORK}/etcd/go.mod"

echo "testbed: compiling etcd ..."
(
    cd "${WORK}/etcd"
    nice -n "${NICE}" "${GO}" build -mod=mod \
        -ldflags="-s -w" \
        -o "${WORK}/bin/etcd" \
        go.etcd.io/etcd/server/v3
)

# ---- install --------------------------------------------------------------------
mkdir -p "${OUT_DIR}"
for b in "${BINS[@]}"; do
    mv -f "${WORK}/bin/${b}" "${OUT_DIR}/${b}"
done
echo "${STAMP_CONTENT}" > "${STAMP}"

end=$(date +%s)
echo "testbed: built ${BINS[*]} in $((end - start))s -> ${OUT_DIR}"
