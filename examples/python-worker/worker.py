#!/usr/bin/env python3
"""A muster worker in Python, standard library only.

It takes its listening sockets from systemd-style socket activation (LISTEN_FDS,
LISTEN_PID, LISTEN_FDNAMES: muster's `shared` and `reuseport` schedules), serves HTTP
on each, answers `worker <MUSTER_WORKER_ID> pid <pid>`, tells the primary it is ready
over the IPC channel (NODE_CHANNEL_FD) once serving, and stops gracefully: on SIGTERM,
SIGINT, the primary's `disconnect` message, or the channel closing, it stops accepting,
finishes the requests in flight and exits 0.
"""

import http.server
import json
import os
import signal
import socket
import sys
import threading

LISTEN_FDS_START = 3


def take_listen_fds():
    """sd_listen_fds(): the sockets passed to this process, as (name, socket) pairs."""
    pid = os.environ.pop("LISTEN_PID", None)
    count = os.environ.pop("LISTEN_FDS", None)
    names = os.environ.pop("LISTEN_FDNAMES", None)
    # Variables exported by an ancestor are not for us.
    if pid is None or count is None or int(pid) != os.getpid():
        return []
    n = int(count)
    names = names.split(":") if names is not None else ["unknown"] * n
    if len(names) != n:
        raise SystemExit(f"LISTEN_FDNAMES has {len(names)} names for LISTEN_FDS={n}")
    taken = []
    for i, name in enumerate(names):
        fd = LISTEN_FDS_START + i
        os.set_inheritable(fd, False)
        taken.append((name, socket.socket(fileno=fd)))
    return taken


class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so a stop never waits on an idle keep-alive.
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        body = f"worker {os.environ.get('MUSTER_WORKER_ID', '0')} pid {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    # Join request threads on close: requests in flight finish before exit.
    daemon_threads = False

    def __init__(self, sock):
        # Built without binding, then given the inherited socket instead of its own.
        self.address_family = sock.family
        super().__init__(sock.getsockname(), Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        # Workers share the socket: another may take a connection first. socketserver
        # ignores the resulting EAGAIN from accept().
        self.socket.setblocking(False)

    def get_request(self):
        conn, addr = self.socket.accept()
        conn.setblocking(True)
        return conn, addr


class Channel:
    """The primary's IPC channel: LF-delimited JSON (Node's `json` serialization)."""

    def __init__(self, fd):
        self.fd = fd
        self.lock = threading.Lock()

    @classmethod
    def from_env(cls):
        fd = os.environ.pop("NODE_CHANNEL_FD", None)
        os.environ.pop("NODE_CHANNEL_SERIALIZATION_MODE", None)
        if fd is None:
            return None
        fd = int(fd)
        os.set_inheritable(fd, False)
        return cls(fd)

    def send(self, value):
        data = (json.dumps(value, separators=(",", ":")) + "\n").encode()
        with self.lock:
            while data:
                data = data[os.write(self.fd, data):]

    def messages(self):
        """Yields each message until the channel closes."""
        pending = b""
        while True:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue


def watch_channel(channel, stop):
    """Stops on the primary's `disconnect`, or when the channel closes (primary gone)."""
    for msg in channel.messages():
        if isinstance(msg, dict) and msg.get("cmd") == "NODE_CLUSTER" and msg.get("act") == "disconnect":
            break
    stop.set()


def main():
    listeners = take_listen_fds()
    if not listeners:
        print("worker.py: no sockets (expected LISTEN_FDS for this pid)", file=sys.stderr)
        return 2
    channel = Channel.from_env()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    servers = [Server(sock) for _, sock in listeners]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    if channel is not None:
        channel.send("ready")
        threading.Thread(target=watch_channel, args=(channel, stop), daemon=True).start()

    # Event.wait with a timeout keeps the main thread able to run signal handlers.
    while not stop.wait(0.5):
        pass
    for s in servers:
        s.shutdown()  # stop accepting
    for s in servers:
        s.server_close()  # close our copy of the socket, join requests in flight
    return 0


if __name__ == "__main__":
    sys.exit(main())
