#!/usr/bin/env python3
"""The tutorial's hello server, framed by lines: a thread per connection.

The design the tutorial teaches (accept, then one thread per client), with two
changes so it speaks the same protocol as `tcpkit serve`: lines instead of
whatever one recv() returns, and a greeting. No limits, as in the tutorial.
The listen backlog is 1024 (the tutorial's 5 would drop SYNs under a burst;
the benchmark measures serving, not the accept queue).

Usage: bench/py_hello_server.py HOST PORT
"""
import socket
import sys
import threading


def tcplink(sock):
    sock.sendall(b"Welcome!\n")
    lines = sock.makefile("rb")
    for line in lines:
        if not line.endswith(b"\n"):
            # A final line without newline is answered too, then the client is gone.
            pass
        name = line.rstrip(b"\n").rstrip(b"\r")
        if name == b"exit":
            break
        try:
            sock.sendall(b"Hello, " + name + b"!\n")
        except OSError:
            break
    lines.close()
    sock.close()


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(1024)
    while True:
        try:
            sock, _ = s.accept()
        except OSError:
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=tcplink, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    main()
