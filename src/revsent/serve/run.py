"""Running the server: one uvicorn process, or ``--workers`` processes on one port under a supervising parent.

With several workers the parent holds the port and passes signals on, and each worker loads its model and
serves on a socket of its own.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict

from ..errors import ConfigError, RevsentError
from .service import Service
from .settings import ServeConfig


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          log_level: str = "info") -> None:
    """Run the server until SIGINT/SIGTERM (in-flight requests finish first)."""
    import uvicorn

    config = config.check()
    if workers > 1:
        serve_workers(config, host, port, workers, log_level)
        return
    service = _loaded(config)
    from .app import create_app  # FastAPI once the model has loaded: a bad model fails without waiting for it

    uvicorn.run(create_app(config, service), host=host, port=port, log_level=log_level,
                timeout_graceful_shutdown=30)


def _loaded(config: ServeConfig) -> Service:
    """The service with its model loaded, before any socket listens: a bad model is a clear error at
    start, not a 503 forever."""
    service = Service(config)
    service.thread.submit(service.load).result()
    return service


def serve_workers(config: ServeConfig, host: str, port: int, workers: int, log_level: str) -> None:
    """``workers`` server processes on one port, each with its own model and its own listening socket.

    The sockets share the port through SO_REUSEPORT, so the kernel spreads connections evenly over
    the processes. Processes accepting from one shared socket (uvicorn's own ``--workers``) take
    whatever they wake up first for, and one of them ends up with most of the connections.
    The parent only supervises: SIGINT and SIGTERM go on to the workers, which finish their
    requests; a worker that fails (a model that does not load) stops the others, with its error.
    """
    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("--workers > 1 needs Linux, whose SO_REUSEPORT spreads connections over the workers; "
                          "run one process per port instead")
    # A port in use is an error here: a second server must not quietly share it (SO_REUSEPORT). The
    # port is then held, bound but not listening (it takes no connections), until the end: another
    # server's check finds it taken even while the workers are still loading their models.
    with _bound(host, port) as check:
        port = check.getsockname()[1]  # --port 0: the port the system chose, for every worker
    hold = _bound(host, port, share=True, reuse_address=False)
    try:
        _Workers(config, host, port, workers, log_level).run()
    finally:
        hold.close()


class _Workers:
    """The worker processes of :func:`serve_workers`, and the parent's watch over them."""

    def __init__(self, config: ServeConfig, host: str, port: int, count: int, log_level: str):
        self.host, self.port, self.count, self.log_level = host, port, count, log_level
        context = multiprocessing.get_context("spawn")
        # the first worker to fail prints its error; the others, the same one, do not
        self.reported = context.Value("b", 0)
        self.ready = context.Value("i", 0)  # workers listening
        self.processes = [context.Process(target=_worker, args=(asdict(config), host, port, log_level, os.getpid(),
                                                                self.reported, self.ready))
                          for _ in range(count)]
        self.stopping: list[int] = []

    def stop(self, signum, _frame=None) -> None:
        self.stopping.append(signum)
        for process in self.processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight

    def run(self) -> None:
        """Start the workers, then watch them until all have stopped; the signals' handlers are restored."""
        # The workers start with SIGINT ignored (they inherit that, and make themselves a process group
        # of their own first thing): a terminal's Ctrl-C while they start reaches the parent alone.
        previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self.stop)
        try:
            for process in self.processes:
                if not self.stopping:
                    process.start()
            signal.signal(signal.SIGINT, self.stop)
            if self.stopping:  # a signal came while they started: those started after it stop too
                self.stop(self.stopping[0])
            self._watch()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _watch(self) -> None:
        announced = False
        while True:
            # one look decides both questions below
            codes = [p.exitcode for p in self.processes if p.pid is not None]
            failed = [code for code in codes if code not in (None, 0, -signal.SIGTERM)]
            if failed and not self.stopping:  # one failed: the others stop too
                self._fail(failed[0])
            if all(code is not None for code in codes):
                return
            if not announced and self.ready.value == self.count and self.log_level in ("trace", "debug", "info"):
                shown = f"[{self.host}]" if ":" in self.host else self.host
                print(f"revsent: {self.count} workers serving on http://{shown}:{self.port} (Ctrl+C to stop)",
                      file=sys.stderr, flush=True)
                announced = True
            time.sleep(0.2)

    def _fail(self, code: int) -> None:
        """Stop the others after a worker failed with exit ``code``, and end with its error."""
        self.stop(signal.SIGTERM)
        for process in self.processes:
            process.join(60)
        if self.reported.value:  # its one-line error is printed: exit with its code
            raise SystemExit(code)
        raise RevsentError(f"a server process stopped (exit code {code}); the others were stopped too")


def _worker(settings: dict, host: str, port: int, log_level: str, parent: int, reported, ready) -> None:
    """One of :func:`serve_workers`' processes: its model, its socket on the shared port, uvicorn."""
    # a terminal's Ctrl-C reaches the parent alone, which passes it on once (a second would cut requests off)
    os.setpgrp()
    import uvicorn

    threading.Thread(target=_stop_when_orphaned, args=(parent,), daemon=True).start()
    config = ServeConfig(**settings)
    try:
        service = _loaded(config)
        sock = _bound(host, port, share=True)  # the parent holds the port; SO_REUSEPORT lets its workers in
        sock.listen(2048)  # uvicorn's backlog
    except RevsentError as exc:
        with reported.get_lock():
            if not reported.value:
                reported.value = 1
                print(f"revsent: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    from .app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(config, service), log_level=log_level,
                                           timeout_graceful_shutdown=30))
    with ready.get_lock():
        ready.value += 1
    server.run(sockets=[sock])


def _stop_when_orphaned(parent: int) -> None:
    """Once ``parent`` is gone (killed outright, SIGKILL), stop as on SIGTERM rather than hold the port forever."""
    while os.getppid() == parent:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)


def _bound(host: str, port: int, share: bool = False, reuse_address: bool = True) -> socket.socket:
    """A TCP socket bound to ``host:port``; a port that cannot be had is a one-line error.

    ``reuse_address``: SO_REUSEADDR, as uvicorn's (a closed server's connections do not block the
    port); ``share``: SO_REUSEPORT, so that the workers' sockets can all bind the port."""
    sock = None
    try:
        # the address family as uvicorn picks it for one process: IPv6 where the host has a colon
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse_address))
        if share:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:  # socket.gaierror too: a host that does not resolve
        if sock is not None:
            sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
