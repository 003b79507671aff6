"""The replication links of test_jepsen.py: one TCP proxy per directed
link (a replica's --replicate-from points at it, it forwards to its
master's --repl-listen), all on 127.0.0.1, all served by one thread.

A link is in one of four modes, which the test switches at any time:
  ok      bytes pass at once;
  delay   every chunk is held `delay` seconds, in order (head of line);
  stall   nothing moves, nothing is closed: a partition TCP rides out
          (the kernel buffers fill, the peers' own timeouts decide);
  cut     every connection is closed and new ones are closed at once: a
          partition with resets.
heal() puts a link back to ok; what a stall held is then delivered.
"""
import collections
import os
import select
import socket
import threading
import time

from conftest import HOST

HELD_MAX = 4 << 20          # bytes a direction queues before reading stops
CONNECT_TIMEOUT = 1.0       # seconds to reach the master's port
TICK = 0.2                  # seconds the loop sleeps when nothing is due


class Flow:
    """One direction of a proxied connection: bytes read from src wait in
    `held` (with the time each chunk is due) and then in `out` for dst."""

    def __init__(self, src, dst):
        self.src, self.dst = src, dst
        self.held = collections.deque()     # (due, bytes)
        self.held_bytes = 0
        self.out = bytearray()


class Pair:
    def __init__(self, link, client, upstream):
        self.link = link
        self.socks = (client, upstream)
        self.flows = (Flow(client, upstream), Flow(upstream, client))
        self.closed = False

    def close(self):
        self.closed = True
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


class Link:
    """A directed link: `port` forwards to `target` (a port, which the
    test sets and may change)."""

    def __init__(self, name):
        self.name, self.target = name, None
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, 0))
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.mode, self.delay = "ok", 0.0
        self.pairs = []

    def describe(self):
        if self.mode == "delay":
            return "delay %dms" % (self.delay * 1000)
        return self.mode


class Network:
    """Every link's proxy, served by one daemon thread until close()."""

    def __init__(self):
        self.links = []
        self.lock = threading.Lock()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def add(self, name):
        link = Link(name)
        with self.lock:
            self.links.append(link)
        self._wake()
        return link

    def set(self, link, mode, delay=0.0):
        """Switches a link's mode; a cut closes its connections now."""
        with self.lock:
            link.mode, link.delay = mode, delay
            if mode == "cut":
                for p in link.pairs:
                    p.close()
                link.pairs = []
        self._wake()

    def heal(self, link):
        self.set(link, "ok")

    def close(self):
        """Stops the thread and closes every socket."""
        self.stopping = True
        self._wake()
        self.thread.join(5)
        for link in self.links:
            for p in link.pairs:
                p.close()
            link.listener.close()
        os.close(self.wake_r)
        os.close(self.wake_w)

    def _wake(self):
        try:
            os.write(self.wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def _accept(self, link):
        try:
            client, _ = link.listener.accept()
        except (BlockingIOError, OSError):
            return
        if link.mode == "cut":
            client.close()
            return
        try:
            upstream = socket.create_connection((HOST, link.target),
                                                timeout=CONNECT_TIMEOUT)
        except OSError:
            client.close()      # the master is down: as if refused
            return
        for s in (client, upstream):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link.pairs.append(Pair(link, client, upstream))

    def _plan(self, now):
        """The sockets to wait on and how long to sleep; moves due
        chunks to the out buffers on the way."""
        rlist, wlist, timeout = [self.wake_r], [], TICK
        for link in self.links:
            rlist.append(link.listener)
            link.pairs = [p for p in link.pairs if not p.closed]
            for p in link.pairs:
                for f in p.flows:
                    if link.mode == "stall":
                        continue
                    while f.held and f.held[0][0] <= now:
                        _, data = f.held.popleft()
                        f.held_bytes -= len(data)
                        f.out += data
                    if f.held:
                        timeout = min(timeout, f.held[0][0] - now)
                    if f.held_bytes + len(f.out) < HELD_MAX:
                        rlist.append(f.src)
                    if f.out:
                        wlist.append(f.dst)
        return rlist, wlist, max(timeout, 0.0)

    def _loop(self):
        while not self.stopping:
            with self.lock:
                rlist, wlist, timeout = self._plan(time.monotonic())
            try:
                r, w, _ = select.select(rlist, wlist, [], timeout)
            except (OSError, ValueError):
                continue        # a socket closed under us by set(cut)
            with self.lock:
                self._serve(set(r), set(w))

    def _serve(self, readable, writable):
        try:
            os.read(self.wake_r, 4096)
        except BlockingIOError:
            pass
        now = time.monotonic()
        for link in self.links:
            if link.listener in readable:
                self._accept(link)
            for p in link.pairs:
                for f in p.flows:
                    if p.closed:
                        break
                    if f.src in readable and link.mode != "stall":
                        self._read(p, f, now + link.delay)
                    if not p.closed and f.dst in writable and f.out:
                        self._write(p, f)

    @staticmethod
    def _read(p, f, due):
        try:
            data = f.src.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            p.close()           # either end closing ends the session
            return
        f.held.append((due, data))
        f.held_bytes += len(data)

    @staticmethod
    def _write(p, f):
        try:
            n = f.dst.send(f.out)
        except BlockingIOError:
            return
        except OSError:
            p.close()
            return
        del f.out[:n]
