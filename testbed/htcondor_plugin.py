"""Serve the upstream interLink HTCondor plugin (``handles.py``) on 127.0.0.1.

    python -m testbed.htcondor_plugin PLUGIN_DIR [handles.py options...]

``handles.py`` is the plugin: a Flask module that parses its options
(``--port``, ``--proxy``, ``--condor-config``, ``--schedd-host``,
``--collector-host``...) and reads ``./SidecarConfig.yaml`` when imported
(interlink-htcondor-plugin/handles.py, module level). Its own ``__main__``
serves the app with ``app.run(host="0.0.0.0", debug=True)``: the Werkzeug
debugger, which runs Python for whoever can reach the port, on every
interface, plus a reloader that re-executes the process in a child. This
launcher imports the unmodified module from PLUGIN_DIR with the given options
and serves the same ``app`` on 127.0.0.1 without debugger or reloader;
everything the plugin does per request is its own code.

``--created-as-ok``: answer 200 where the plugin answers ``/create`` with 201.
interLink's API server takes only 200 as success (interLink
``pkg/interlink/api/handler.go``, ``ReqWithError``), so without this every pod
the plugin submits is marked ``ProviderFailed`` by the virtual kubelet. It is
the one change to what the plugin answers, made so the rest of the chain can
run; testbed/htcondor.py says when it is used.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from flask import request


def created_as_ok(response: Any) -> Any:
    """A Flask ``after_request`` hook: the plugin's 201 for ``/create`` becomes 200."""
    if request.path == "/create" and response.status_code == 201:
        response.status_code = 200
    return response


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plugin_dir", help="folder holding the upstream handles.py")
    parser.add_argument(
        "--created-as-ok",
        action="store_true",
        help="answer /create's 201 as 200, the only success interLink's API server accepts",
    )
    ours, plugin_args = parser.parse_known_args(argv)
    port = argparse.ArgumentParser(add_help=False)
    port.add_argument("--port", type=int, default=8000)  # handles.py's own default
    listen = port.parse_known_args(plugin_args)[0].port
    sys.argv = ["handles.py", *plugin_args]
    sys.path.insert(0, ours.plugin_dir)
    handles = importlib.import_module("handles")
    if ours.created_as_ok:
        handles.app.after_request(created_as_ok)
    handles.app.run(host="127.0.0.1", port=listen, debug=False, use_reloader=False)


if __name__ == "__main__":
    main(sys.argv[1:])
