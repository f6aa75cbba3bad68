#!/usr/bin/env python3
"""Loopback TCP backends for the benchmarks: accept and close at once.

    accept.py LIFETIME_SECONDS HOST:PORT [HOST:PORT ...]

Every HOST must be in 127.0.0.0/8: the benchmarks never touch any other
network. The process exits by itself after LIFETIME_SECONDS, or earlier when
its standard input, when that is a pipe, reaches end of file (so it dies with the script that
started it if that one is killed with SIGKILL) or on SIGTERM.
"""
import ipaddress
import os
import selectors
import signal
import socket
import stat
import sys
import time


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    deadline = time.monotonic() + float(sys.argv[1])
    sel = selectors.DefaultSelector()
    for spec in sys.argv[2:]:
        host, port = spec.rsplit(":", 1)
        if not ipaddress.ip_address(host).is_loopback:
            sys.exit("accept.py: %s is not a loopback address" % host)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, int(port)))
        s.listen(512)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "listen")
    # Watch stdin only when it is a pipe: a background job's /dev/null
    # would read as end of file at once.
    if stat.S_ISFIFO(os.fstat(0).st_mode):
        sel.register(0, selectors.EVENT_READ, "stdin")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        for key, _ in sel.select(timeout=min(left, 1.0)):
            if key.data == "stdin":
                if not os.read(0, 4096):
                    return
                continue
            try:
                while True:
                    c, _ = key.fileobj.accept()
                    c.close()
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                pass


if __name__ == "__main__":
    main()
