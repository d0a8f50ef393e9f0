"""Running the sandbox under uvicorn: in a background thread for tests, or in the foreground."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

import uvicorn

from dialq.sandbox.app import SandboxApp
from dialq.sandbox.config import SandboxConfig
from dialq.sandbox.control import SandboxControl
from dialq.sandbox.state import Clock

HttpImpl = Literal["auto", "httptools", "h11"]


def _uvicorn_config(app: SandboxApp, http: HttpImpl, **options: object) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http=http,
        lifespan="on",
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        # Held replies are released at shutdown; this only bounds a handler that misbehaves.
        timeout_graceful_shutdown=5,
        **options,  # type: ignore[arg-type]
    )


@dataclass
class RunningSandbox:
    """A sandbox serving in a background thread of this process; ``stop()`` when done."""

    url: str
    app: SandboxApp
    _server: uvicorn.Server
    _thread: threading.Thread
    _socket: socket.socket
    control: SandboxControl = field(init=False)

    def __post_init__(self) -> None:
        self.control = SandboxControl(self.url, token=self.app.sandbox.config.control_token)

    def stop(self, timeout_s: float = 10.0) -> None:
        self.app.sandbox.begin_shutdown()
        self._server.should_exit = True
        self._thread.join(timeout_s)
        self._socket.close()
        if self._thread.is_alive():
            raise RuntimeError(f"sandbox at {self.url} did not stop within {timeout_s}s")

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (0: any free port); OSError on a busy port."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # Listening now queues a client that connects before uvicorn serves, instead of refusing it.
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    """The http:// URL a bound socket serves."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def start_sandbox(
    config: SandboxConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Clock = time.time,
    http: HttpImpl = "auto",
    timeout_s: float = 10.0,
) -> RunningSandbox:
    """Serve a sandbox on ``host:port`` (0: a free port); returns once it accepts connections."""
    app = SandboxApp(config, clock)
    # Binding here, not in uvicorn, makes port 0 usable: the port is known before serving.
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    # log_config=None: an in-process server must not reconfigure the host's logging.
    server = uvicorn.Server(_uvicorn_config(app, http, log_config=None))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox:{bound_port}", daemon=True
    )
    thread.start()
    url_host = f"[{host}]" if ":" in host else host
    running = RunningSandbox(f"http://{url_host}:{bound_port}", app, server, thread, sock)
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            running.stop()
            raise RuntimeError(f"sandbox on {host}:{bound_port} did not start in {timeout_s}s")
        time.sleep(0.005)
    return running


def serve(
    config: SandboxConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    http: HttpImpl = "auto",
    sock: socket.socket | None = None,
) -> None:
    """Serve in the foreground until interrupted (the ``dialq sandbox`` command); on ``sock``
    when given (already bound, so the caller could say where before serving)."""
    server = uvicorn.Server(_uvicorn_config(SandboxApp(config), http, host=host, port=port))
    server.run(sockets=[sock] if sock is not None else None)
