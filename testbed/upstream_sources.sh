# Sourced by the test bed's build scripts: where an upstream checkout is found.
#
# upstream_checkout NAME prints the folder of checkout NAME:
#   $OFFLOAD_UPSTREAM_DIR/NAME when that variable is set (then the only place
#   looked at: a folder named on purpose is not silently replaced by another);
#   else ../shared/upstream/NAME next to this checkout (or next to one of its parents).
# It returns 1 when that has no NAME (the caller then clones, or says what is missing).

upstream_checkout() {
    local name="$1" dir i
    if [[ -n "${OFFLOAD_UPSTREAM_DIR:-}" ]]; then
        [[ -d "${OFFLOAD_UPSTREAM_DIR}/${name}" ]] || return 1
        echo "${OFFLOAD_UPSTREAM_DIR}/${name}"
        return 0
    fi
    dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    for i in 1 2 3; do
        dir="$(cd "${dir}/.." && pwd)"
        if [[ -d "${dir}/shared/upstream/${name}" ]]; then
            echo "${dir}/shared/upstream/${name}"
            return 0
        fi
    done
    return 1
}
