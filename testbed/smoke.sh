#!/usr/bin/env bash
# Smoke test / sketch of the test-bed control plane (to become a pytest fixture):
#   etcd (plain HTTP, loopback only)  ->  kube-apiserver (TLS on 127.0.0.1,
#   client-cert auth, Node,RBAC)  ->  kube-controller-manager + kube-scheduler.
# Checks /readyz with an admin (system:masters) client cert, the scheduler's and
# controller-manager's /healthz, and that the controller-manager created the
# "default" ServiceAccount. Everything it starts is stopped on exit.
#
# Binaries come from build.sh (built on first use, cached afterwards).
# Set OFFLOAD_TESTBED_KEEP=1 to keep the work dir (certs, kubeconfigs, logs).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"${HERE}/build.sh"
BIN="$("${HERE}/build.sh" --bin-dir)"

WORK="$(mktemp -d /tmp/offload-testbed.XXXXXX)"
PIDS=()
cleanup() {
    local rc=$? i
    # Stop in reverse start order (controllers, apiserver, then etcd) so the
    # apiserver can still reach etcd while it shuts down gracefully.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[i]}" 2>/dev/null || true
        wait "${PIDS[i]}" 2>/dev/null || true
    done
    if [[ ${rc} -ne 0 ]]; then
        echo "smoke: FAILED (rc=${rc}); log tails:" >&2
        for f in "${WORK}"/*.log; do [[ -f "$f" ]] && { echo "== $f" >&2; tail -n 25 "$f" >&2; }; done
    fi
    if [[ "${OFFLOAD_TESTBED_KEEP:-0}" == 1 ]]; then
        echo "smoke: kept ${WORK}"
    else
        rm -rf "${WORK}"
    fi
    exit ${rc}
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "${WORK}"

# Free loopback ports (tiny race window is acceptable for a test bed).
read -r ETCD_CLIENT_PORT ETCD_PEER_PORT APISERVER_PORT SCHED_PORT KCM_PORT < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)
APISERVER="https://127.0.0.1:${APISERVER_PORT}"
SERVICE_CIDR="10.0.0.0/24"   # first IP 10.0.0.1 = "kubernetes" Service

# ---- PKI (openssl, EC P-256, valid 1 day) ------------------------------------
EC=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${EC[@]}" -keyout ca.key -out ca.crt -days 1 \
    -subj "/CN=offload-testbed-ca" 2>/dev/null
# cert NAME SUBJECT EXTENSIONS
cert() {
    openssl req -new "${EC[@]}" -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    printf '%b' "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -CAserial ca.srl \
        -days 1 -out "$1.crt" -extfile "$1.ext" 2>/dev/null
}
cert apiserver "/CN=kube-apiserver" \
    "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
cert admin "/O=system:masters/CN=testbed-admin" "extendedKeyUsage=clientAuth\n"
cert scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth\n"
cert kcm "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth\n"
# Service-account token signing key pair.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
openssl pkey -in sa.key -pubout -out sa.pub

# kubeconfig NAME  (uses NAME.crt / NAME.key)
kubeconfig() {
    cat > "$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster: {server: "${APISERVER}", certificate-authority: "${WORK}/ca.crt"}
users:
- name: $1
  user: {client-certificate: "${WORK}/$1.crt", client-key: "${WORK}/$1.key"}
contexts:
- name: testbed
  context: {cluster: testbed, user: $1}
current-context: testbed
EOF
}
kubeconfig admin; kubeconfig scheduler; kubeconfig kcm

# wait_for DESCRIPTION TIMEOUT_S COMMAND...
wait_for() {
    local what=$1 timeout=$2 i; shift 2
    for ((i = 0; i < timeout * 2; i++)); do
        if "$@" >/dev/null 2>&1; then echo "smoke: ${what} ok after $((i / 2))s"; return 0; fi
        for pid in "${PIDS[@]}"; do
            kill -0 "${pid}" 2>/dev/null || { echo "smoke: process ${pid} died" >&2; return 1; }
        done
        sleep 0.5
    done
    echo "smoke: timeout waiting for ${what}" >&2
    return 1
}
admin_curl() {
    curl -sf --cacert ca.crt --cert admin.crt --key admin.key "${APISERVER}$1"
}

# ---- etcd --------------------------------------------------------------------
"${BIN}/etcd" \
    --name testbed \
    --data-dir "${WORK}/etcd-data" \
    --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORT}" \
    --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORT}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-cluster "testbed=http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-cluster-state new \
    --unsafe-no-fsync \
    --log-level warn \
    > etcd.log 2>&1 &
PIDS+=($!)
wait_for "etcd /health" 30 \
    bash -c "curl -sf http://127.0.0.1:${ETCD_CLIENT_PORT}/health | grep -q '\"health\":\"true\"'"

# ---- kube-apiserver ------------------------------------------------------------
"${BIN}/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:${ETCD_CLIENT_PORT}" \
    --bind-address 127.0.0.1 \
    --advertise-address 127.0.0.1 \
    --secure-port "${APISERVER_PORT}" \
    --cert-dir "${WORK}" \
    --tls-cert-file apiserver.crt \
    --tls-private-key-file apiserver.key \
    --client-ca-file ca.crt \
    --authorization-mode Node,RBAC \
    --anonymous-auth=false \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file sa.pub \
    --service-account-signing-key-file sa.key \
    --service-cluster-ip-range "${SERVICE_CIDR}" \
    --endpoint-reconciler-type none \
    --profiling=false \
    > kube-apiserver.log 2>&1 &
PIDS+=($!)
wait_for "kube-apiserver /readyz" 90 bash -c "$(declare -f admin_curl); APISERVER=${APISERVER}; [[ \$(admin_curl /readyz) == ok ]]"
echo "smoke: /readyz -> $(admin_curl /readyz)"
echo "smoke: /version gitVersion -> $(admin_curl /version | python3 -c 'import json,sys; print(json.load(sys.stdin)["gitVersion"])')"

# ---- kube-controller-manager and kube-scheduler ---------------------------------
"${BIN}/kube-controller-manager" \
    --kubeconfig kcm.kubeconfig \
    --authentication-kubeconfig kcm.kubeconfig \
    --authorization-kubeconfig kcm.kubeconfig \
    --bind-address 127.0.0.1 \
    --secure-port "${KCM_PORT}" \
    --cert-dir "${WORK}/kcm-certs" \
    --leader-elect=false \
    --use-service-account-credentials \
    --service-account-private-key-file sa.key \
    --root-ca-file ca.crt \
    --cluster-signing-cert-file ca.crt \
    --cluster-signing-key-file ca.key \
    --service-cluster-ip-range "${SERVICE_CIDR}" \
    > kube-controller-manager.log 2>&1 &
PIDS+=($!)
"${BIN}/kube-scheduler" \
    --kubeconfig scheduler.kubeconfig \
    --authentication-kubeconfig scheduler.kubeconfig \
    --authorization-kubeconfig scheduler.kubeconfig \
    --bind-address 127.0.0.1 \
    --secure-port "${SCHED_PORT}" \
    --cert-dir "${WORK}/scheduler-certs" \
    --leader-elect=false \
    > kube-scheduler.log 2>&1 &
PIDS+=($!)
wait_for "kube-controller-manager /healthz" 60 \
    bash -c "[[ \$(curl -skf https://127.0.0.1:${KCM_PORT}/healthz) == ok ]]"
wait_for "kube-scheduler /healthz" 60 \
    bash -c "[[ \$(curl -skf https://127.0.0.1:${SCHED_PORT}/healthz) == ok ]]"
wait_for "ServiceAccount default/default (created by kube-controller-manager)" 60 \
    bash -c "$(declare -f admin_curl); APISERVER=${APISERVER}; admin_curl /api/v1/namespaces/default/serviceaccounts/default"

echo "smoke: OK (admin kubeconfig was ${WORK}/admin.kubeconfig)"
