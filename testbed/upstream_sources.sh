# Sourced by the test bed's build scripts: where an upstream checkout is found.
#
# upstream_checkout NAME prints the folder of checkout NAME, looked up in order
#   1. $OFFLOAD_UPSTREAM_DIR/NAME;
#   2. ../shared/upstream/NAME next to this checkout (or next to one of its parents);
# and returns 1 when neither has it (the caller then clones, or says what is missing).

upstream_checkout() {
    local name="$1" dir i
    if [[ -n "${OFFLOAD_UPSTREAM_DIR:-}" && -d "${OFFLOAD_UPSTREAM_DIR}/${name}" ]]; then
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
