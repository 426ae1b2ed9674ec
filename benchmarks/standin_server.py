"""The single-user server of the spawn-storm figures: answers HTTP 200 at the
address the hub gave it (JUPYTERHUB_SERVICE_URL, which the test bed's virtual
kubelet binds to the pod's own IP).

Why not jupyterhub-singleuser: fifty of those starting at once take minutes of
CPU on two cores, for both spawners alike, and would bury the figure being
measured (what the hub and its spawner add). JupyterHub counts a server as up
once its URL answers HTTP (jupyterhub/utils.py, wait_for_http_server).
"""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Answer(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"standin": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
ThreadingHTTPServer((url.hostname or "127.0.0.1", url.port or 8888), Answer).serve_forever()
