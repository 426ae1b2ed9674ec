"""A site's failure message reaches the user without what interLink's virtual kubelet
should not have put in it.

When its request to the interLink API server fails, interLink's virtual kubelet fails
the pod (reason ``ProviderFailed``) with ``fmt.Errorf("... log request: %s error: %w",
fmt.Sprintf("%#v", req), err)`` as the message (interLink pkg/virtualkubelet/execute.go,
createRequest; virtualkubelet.go, handleRemoteExecutionFailure). ``req`` carries
``Authorization: Bearer <token>`` when the virtual kubelet has a token for the API
server (execute.go, doRequestWithClient), and Go prints map keys sorted, so the token
comes first. MESSAGE below is the one the real virtual kubelet wrote on the test bed
(tests/e2e/test_faults_e2e.py), with that header added as Go prints it.
"""

from __future__ import annotations

from offload_spawner.remote.lifecycle import SITE_UNREACHABLE, describe, remote_failure, site_words

# Not a real token: a JWT-shaped string ({"alg": "RS256"}, {"sub": "vk-slurm"}, "signature").
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ2ay1zbHVybSJ9.c2lnbmF0dXJl"
MESSAGE = (
    "error doing createRequest() in RemoteExecution() return value error detail &fmt.wrapError{msg:"
    '"error doing doRequest() in createRequest() log request: &http.Request{Method:\\"POST\\", '
    'URL:(*url.URL)(0x23fb659d0e10), Proto:\\"HTTP/1.1\\", ProtoMajor:1, ProtoMinor:1, '
    'Header:http.Header{\\"Authorization\\":[]string{\\"Bearer ' + TOKEN + '\\"}, '
    '\\"Content-Type\\":[]string{\\"application/json\\"}, '
    '\\"Interlink-Http-Session\\":[]string{\\"CreatePod#74106\\"}}, '
    "Body:io.nopCloserWriterTo{Reader:(*bytes.Reader)(0x23fb65aeced0)} error: Post "
    '\\"http://127.0.0.1:41999/create\\": dial tcp 127.0.0.1:41999: connect: connection refused"'
)


def failed_pod(message: str) -> dict:
    terminated = {"exitCode": 1, "reason": "ProviderFailed", "message": message}
    return {
        "metadata": {"name": "jupyter-carol", "annotations": {}},
        "spec": {"nodeName": "vk-slurm"},
        "status": {
            "phase": "Failed",
            "reason": "ProviderFailed",
            "message": message,
            "containerStatuses": [{"name": "notebook", "state": {"terminated": terminated}}],
        },
    }


def test_a_dump_of_the_virtual_kubelets_request_is_not_shown():
    failure = remote_failure(failed_pod(MESSAGE))
    assert failure == SITE_UNREACHABLE
    status = describe("Local SLURM (interLink)", failed_pod(MESSAGE), [], 0.0, None)
    assert TOKEN not in status.message and "http.Request" not in status.message
    assert status.message == f"Local SLURM (interLink) could not run the server: {SITE_UNREACHABLE}"


def test_a_bearer_token_in_any_site_message_is_redacted():
    words = site_words(f"plugin said: Authorization: Bearer {TOKEN}, giving up")
    assert TOKEN not in words
    assert words == "plugin said: Authorization: Bearer <redacted>, giving up"
    assert TOKEN not in (remote_failure(failed_pod(f"denied (bearer {TOKEN})")) or "")


def test_a_plain_site_message_is_kept():
    words = "sbatch: error: invalid partition specified: no_such_partition"
    assert remote_failure(failed_pod(words)) == words
