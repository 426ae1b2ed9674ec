"""Keep a job's access-token file fresh: a stand-alone program run in the server's container.

A remote job (an interLink virtual node: SLURM, HTCondor, ...) receives the
server's Secret once, when interLink creates it; the hub's rotation of that
Secret never reaches it. For targets that opt in (``tokens.refresh_in_job``),
the spawner ships this file in the server's Secret and starts the server
through it::

    python3 job_token_refresher.py CONFIG.json ACCESS_TOKEN REFRESH_TOKEN FRESH_DIR -- jupyterhub-singleuser ...

ACCESS_TOKEN and REFRESH_TOKEN are the delivered (read-only) token files,
FRESH_DIR a writable directory. The paths are arguments, not configuration, so
that whatever maps container paths for the job (a container runtime's binds)
sees them. It copies the delivered access token to ``FRESH_DIR/access_token``
(the file ``BEARER_TOKEN_FILE`` names), starts the command (argv, no shell), and in a
thread renews the token with the OAuth refresh grant (RFC 6749 section 6) when
a fraction (``refresh_at``) of its lifetime has passed, writing the file
atomically (a temporary file renamed over it). A refresh token the provider
rotates is kept (in memory and in ``FRESH_DIR/refresh_token``). Token values are never
printed: the output names files, times and the provider's error code only.
When the provider refuses the refresh (``invalid_grant``, ``invalid_client``,
...) it says so once and stops refreshing; the command runs on. Network
errors and 5xx answers are retried with back-off. It exits with the command's
status; without a command it refreshes in the foreground and exits 3 when
refused.

It runs in the user's image, where offload_spawner is not installed: it must
only use the Python standard library (tests run it with ``python -I -S``).

CONFIG.json (written by offload_spawner.identity.job_refresh): ``token_url``,
``client_id``, optionally ``client_secret`` (HTTP Basic), ``refresh_at``
(0 < f < 1), ``retry_max`` (seconds) and ``timeout`` (seconds per request).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

PREFIX = "offload-spawner token refresher:"
#: Exit status of the foreground mode when the provider refuses the refresh.
REFUSED_EXIT = 3
#: Exit status when the program's own configuration is unusable.
CONFIG_EXIT = 2
#: The OAuth error codes that mean "this refresh token will never work again"
#: (RFC 6749 section 5.2): retrying cannot help.
REFUSALS = frozenset(
    {"invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type", "invalid_scope"}
)
#: Shortest wait between two refreshes, seconds (a provider issuing nearly
#: expired tokens must not make this a busy loop).
MIN_DELAY = 1.0
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def say(message: str) -> None:
    """One line on stderr (the job's log). Callers never pass a token value."""
    print(f"{PREFIX} {message}", file=sys.stderr, flush=True)


def claims(token: str) -> dict[str, Any]:
    """The unverified payload of a JWT, or {} for any other token (only times are read)."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def expiry(token: str, obtained_at: float, expires_in: Any = None) -> tuple[float | None, float]:
    """(expiry time, start of the lifetime) of ``token``: its JWT ``exp`` and
    ``iat``, else ``expires_in`` from the token answer; expiry None when unknown."""
    payload = claims(token)
    exp = _number(payload.get("exp"))
    lifetime = _number(expires_in)
    if exp is None and lifetime is not None:
        exp = obtained_at + lifetime
    issued = _number(payload.get("iat"))
    start = issued if issued is not None and exp is not None and issued <= exp else obtained_at
    return exp, start


def refresh_delay(exp: float | None, start: float, fraction: float, now: float) -> float:
    """Seconds until the next refresh: at ``fraction`` of the lifetime; at once when unknown."""
    if exp is None:
        return 0.0
    due = start + fraction * max(exp - start, 0.0)
    return max(due - now, 0.0)


def write_atomically(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` so that a reader sees the old or the new file, whole."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


class Refused(Exception):
    """The provider refused the refresh; the message holds its error code only."""


class Transient(Exception):
    """The refresh failed in a way a retry may fix; the message holds no token."""


def token_request(config: dict[str, Any], refresh_token: str) -> dict[str, Any]:
    """The refresh grant against ``token_url``; the answer's JSON, or Refused/Transient."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    secret = config.get("client_secret")
    if secret:
        # client_secret_basic, the form-urlencoded id and secret (RFC 6749 section 2.3.1).
        pair = f"{urllib.parse.quote(config['client_id'], safe='')}:{urllib.parse.quote(secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:
        form["client_id"] = config["client_id"]  # a public client (RFC 6749 section 3.2.1)
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked in load_config
        config["token_url"], data=urllib.parse.urlencode(form).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=float(config.get("timeout", 30))) as response:  # noqa: S310
            body = response.read()
    except urllib.error.HTTPError as e:
        code = _error_code(e.read() if e.fp is not None else b"")
        if e.code in (400, 401) and code in REFUSALS:
            raise Refused(code) from None
        raise Transient(f"HTTP {e.code}" + (f" ({code})" if code else "")) from None
    except urllib.error.URLError as e:
        raise Transient(f"cannot reach the token endpoint ({type(e.reason).__name__})") from None
    except (OSError, ValueError) as e:
        raise Transient(type(e).__name__) from None
    try:
        answer = json.loads(body)
    except ValueError:
        raise Transient("the token endpoint did not answer JSON") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str) or not answer["access_token"]:
        raise Transient("the token endpoint's answer holds no access token")
    return answer


def _error_code(body: bytes) -> str:
    """The OAuth ``error`` code of an error answer, if it looks like one (never its description)."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    if isinstance(error, str) and error.replace("_", "").isalpha() and len(error) <= 64:
        return error
    return ""


class Refresher:
    """The refresh loop: state in memory, files as configured."""

    def __init__(self, config: dict[str, Any], stop: threading.Event) -> None:
        self.config = config
        self.stop = stop
        self.fraction = float(config.get("refresh_at", 0.75))
        self.retry_max = float(config.get("retry_max", 300))
        self.access: str | None = None
        self.refresh: str | None = None
        self.exp: float | None = None
        self.start = 0.0

    def prepare(self) -> bool:
        """Copy the delivered tokens to the writable files; False when there is nothing to refresh."""
        access = read_text(self.config["access_token_source"])
        refresh = read_text(self.config["refresh_token_source"])
        if access is None or refresh is None:
            missing = "access token" if access is None else "refresh token"
            say(f"no {missing} was delivered to this job: the access token will not be renewed")
            return False
        self.access, self.refresh = access, refresh
        write_atomically(self.config["access_token_file"], access + "\n")
        write_atomically(self.config["refresh_token_file"], refresh + "\n")
        self.exp, self.start = expiry(access, time.time())
        when = f"expires at {utc(self.exp)}" if self.exp is not None else "has no known expiry"
        say(f"the delivered access token {when}; keeping {self.config['access_token_file']} fresh")
        return True

    def refresh_once(self) -> None:
        if self.refresh is None:
            raise Refused("no refresh token")
        obtained = time.time()
        answer = token_request(self.config, self.refresh)
        access = answer["access_token"]
        write_atomically(self.config["access_token_file"], access + "\n")
        self.access = access
        rotated = answer.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self.refresh:
            self.refresh = rotated
            write_atomically(self.config["refresh_token_file"], rotated + "\n")
        self.exp, self.start = expiry(access, obtained, answer.get("expires_in"))

    def run(self) -> bool:
        """Refresh until stopped (True) or refused (False)."""
        failures = 0
        warned_expired = False
        renewed = False
        while not self.stop.is_set():
            if failures:
                delay = min(5.0 * 2 ** (failures - 1), self.retry_max)
            elif self.exp is None:
                # Unknown lifetime: renew the delivered token at once, then every retry_max.
                delay = self.retry_max if renewed else 0.0
            else:
                delay = max(refresh_delay(self.exp, self.start, self.fraction, time.time()), MIN_DELAY)
            if self.stop.wait(delay):
                return True
            try:
                self.refresh_once()
            except Refused as e:
                say(
                    f"the identity provider refused to renew the access token ({e}); no more refreshes. "
                    f"The token in {self.config['access_token_file']} stops working when it expires"
                    + (f" at {utc(self.exp)}" if self.exp is not None else "")
                    + ": stop this server and start it again after logging in to the hub again."
                )
                return False
            except Transient as e:
                failures += 1
                expired = self.exp is not None and time.time() >= self.exp
                say(f"renewing the access token failed ({e}); trying again")
                if expired and not warned_expired:
                    say("the access token has expired; it is renewed as soon as the identity provider answers")
                    warned_expired = True
                continue
            failures = 0
            warned_expired = False
            renewed = True
            when = f"expires at {utc(self.exp)}" if self.exp is not None else "has no known expiry"
            say(f"renewed the access token; it {when}")
        return True


def load_config(path: str) -> dict[str, Any]:
    with open(path) as f:
        config = json.load(f)
    if not isinstance(config, dict):
        raise ValueError("the configuration is not a JSON object")
    for key in ("token_url", "client_id"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise ValueError(f"the configuration has no {key}")
    if urllib.parse.urlsplit(config["token_url"]).scheme not in ("https", "http"):
        raise ValueError("token_url must be an http(s) URL")
    fraction = config.get("refresh_at", 0.75)
    if not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError("refresh_at must be a number between 0 and 1")
    return config


def run_command(command: list[str], refresher: Refresher | None, stop: threading.Event) -> int:
    """Start ``command``, refresh beside it, forward signals; its exit status."""
    try:
        child = subprocess.Popen(command)  # noqa: S603 - the pod's own command, argv form
    except OSError as e:
        say(f"cannot start {command[0]!r}: {e.strerror or type(e).__name__}")
        return 127

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    if refresher is not None:
        threading.Thread(target=refresher.run, name="token-refresher", daemon=True).start()
    status = child.wait()
    stop.set()
    return 128 - status if status < 0 else status


def main(argv: list[str]) -> int:
    if "--" in argv:
        split = argv.index("--")
        own, command = argv[:split], argv[split + 1 :]
    else:
        own, command = argv, []
    if len(own) != 4:
        say("usage: job_token_refresher.py CONFIG.json ACCESS_TOKEN REFRESH_TOKEN FRESH_DIR [-- COMMAND ARGS...]")
        return CONFIG_EXIT
    stop = threading.Event()
    refresher: Refresher | None = None
    try:
        config = load_config(own[0])
        config.update(
            access_token_source=own[1],
            refresh_token_source=own[2],
            access_token_file=os.path.join(own[3], "access_token"),
            refresh_token_file=os.path.join(own[3], "refresh_token"),
        )
    except (OSError, ValueError) as e:
        say(f"the refresher's configuration {own[0]} is unusable ({e}); the access token will not be renewed")
        if not command:
            return CONFIG_EXIT
    else:
        refresher = Refresher(config, stop)
        try:
            if not refresher.prepare():
                refresher = None
        except OSError as e:
            say(f"cannot write into {own[3]} ({e.strerror or type(e).__name__}); the access token will not be renewed")
            refresher = None
    if command:
        return run_command(command, refresher, stop)
    if refresher is None:
        return REFUSED_EXIT
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return 0 if refresher.run() else REFUSED_EXIT


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
