"""The HTTP endpoint a site's Prometheus scrapes: ``GET /metrics``, nothing else.

A camera runs for months, so the endpoint cannot be a way to take it down: each connection
gets ``idle_timeout_s`` to send its request (and is closed after one answer), at most
``max_connections`` are open at once (a new one closes the oldest, so a thousand idle
clients cost at most that many descriptors and a real scrape still gets in), and the
server's threads never outlive it. With a token (``[turnstile] metrics_token_env``), a scrape must
send ``Authorization: Bearer TOKEN`` or basic auth with TOKEN as the password; without one
the endpoint listens only on a loopback address unless told ``--metrics-insecure``.
"""
from __future__ import annotations

import base64
import hmac
import http.server
import socket
import threading
import time

from ..config.turnstile import is_loopback
from ..errors import MaskGateError

IDLE_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 16


class MetricsServer:
    def __init__(self, render, *, port: int, address: str = "127.0.0.1", token: str | None = None,
                 insecure: bool = False, idle_timeout_s: float = IDLE_TIMEOUT_S,
                 max_connections: int = MAX_CONNECTIONS):
        """``render()``: (content type, body bytes) of the metrics now."""
        if token is None and not is_loopback(address) and not insecure:
            raise MaskGateError(f"--metrics-address {address}: metrics on a non-loopback address need a token "
                                "([turnstile] metrics_token_env names the variable holding it), or "
                                "--metrics-insecure to serve them to anyone on the network")
        open_connections: dict = {}  # socket -> when it came, oldest first (dicts keep insertion order)
        guard = threading.Lock()
        expected = token

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = idle_timeout_s  # socket timeout: a client that sends nothing is dropped
            protocol_version = "HTTP/1.0"  # one answer per connection, then closed
            server_version = "maskgate"
            sys_version = ""

            def do_GET(self):  # noqa: N802 (the http.server API)
                if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                    self.send_error(404, "only /metrics is served")
                    return
                if expected is not None and not _authorized(self.headers.get("Authorization", ""), expected):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Bearer realm="maskgate", Basic realm="maskgate"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                content_type, body = render()
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # scrapes are not news; their headers may carry the token
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            allow_reuse_address = True
            request_queue_size = 128  # a burst of scrapers is queued by the kernel, not refused

            def process_request(self, request, client_address):
                with guard:  # at the cap, the oldest connection gives way: a real scrape always gets in
                    while len(open_connections) >= max_connections:
                        oldest = next(iter(open_connections))
                        del open_connections[oldest]
                        try:
                            oldest.shutdown(socket.SHUT_RDWR)  # its handler reads an end and finishes
                        except OSError:
                            pass
                    open_connections[request] = time.monotonic()
                super().process_request(request, client_address)

            def process_request_thread(self, request, client_address):
                try:
                    super().process_request_thread(request, client_address)
                finally:
                    with guard:
                        open_connections.pop(request, None)

            def handle_error(self, request, client_address):  # a client that went away: not an error of ours
                pass

        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        Server.address_family = family
        try:
            self.server = Server((address, port), Handler)
        except OSError as exc:
            raise MaskGateError(f"--metrics-port {port}: cannot serve metrics on {address}:{port} "
                                f"({exc.strerror or exc}); choose a free port") from exc
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="maskgate-metrics", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _authorized(header: str, token: str) -> bool:
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return hmac.compare_digest(value.strip().encode(), token.encode())
    if scheme.lower() == "basic":
        try:
            _, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(password.encode(), token.encode())
    return False
