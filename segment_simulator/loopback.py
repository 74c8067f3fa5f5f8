"""A threaded HTTP server on 127.0.0.1 that starts in the background and stops cleanly: the
transport both simulators (the Public and Config APIs in `server.py`, the Tracking API in
`tracking.py`) stand on. The bottom layer: it imports nothing of the package.

`LoopbackServer` knows its connections and handler threads, so `stop()` can wake and join every
handler (one may be waiting on a keep-alive client or a fault's delay). The threads are daemons
all the same: a simulator never stopped does not hold the interpreter.
"""

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, List, Optional, Set, Tuple, Type


class LoopbackServer(ThreadingHTTPServer):
    def __init__(self, address: Tuple[str, int], handler: Type[BaseHTTPRequestHandler]) -> None:
        self.stopping = threading.Event()
        """Set when the server stops: a handler waiting on a delay wakes and drops its connection."""
        self._connections: Set[socket.socket] = set()
        self._handler_threads: List[threading.Thread] = []
        self._handlers_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        super().__init__(address, handler)

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, name: str) -> None:
        """Serve in a background thread (polling every 50 ms: `stop()` waits for one poll)."""
        poll = {"poll_interval": 0.05}
        self._thread = threading.Thread(target=self.serve_forever, kwargs=poll, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close every open connection, join every handler, close the port."""
        self.shutdown()
        self.stopping.set()
        with self._handlers_lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by the client
            threads = list(self._handler_threads)
        for thread in threads:
            thread.join()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address), daemon=True)
        with self._handlers_lock:
            self._connections.add(request)
            self._handler_threads = [t for t in self._handler_threads if t.is_alive()] + [thread]
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._handlers_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client gone away is no error
            super().handle_error(request, client_address)
