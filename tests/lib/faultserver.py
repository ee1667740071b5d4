#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# A static HTTP server for a store directory that misbehaves on purpose,
# for the fetch tests. Listens on 127.0.0.1 (port 0: any free port, which
# it prints as its first line on stdout) and serves GET /xx/yyyy... from
# DIR. Faults, per object name (the request path without its leading /):
#
#   --fault NAME=KIND[:TIMES]   apply KIND to the first TIMES requests for
#                               NAME (default: all of them), then serve it
#
# KIND is one of
#   corrupt   the right length, one byte changed
#   truncate  a Content-Length for the whole file, half the body, close
#   short     half the body with a Content-Length saying so
#   extra     the file followed by more bytes (Content-Length of it all)
#   nolength  the file plus more bytes, no Content-Length, close
#   stall     the headers and a few bytes, then nothing for a minute
#   drop      close the connection without any answer
#   redirect  a redirect to file:///etc/passwd
#   404, 500  that status
# --delay SECONDS slows every answer down (for interrupting a fetch).
# Each request is appended to --log FILE as "PATH STATUS".
# Usage: faultserver.py [--fault ...] [--delay S] [--log FILE] DIR

import argparse
import http.server
import os
import sys
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def record(self, status):
        srv = self.server
        if srv.log_path:
            with srv.lock, open(srv.log_path, "a") as f:
                f.write("%s %s\n" % (self.path, status))

    def take_fault(self, name):
        srv = self.server
        with srv.lock:
            fault = srv.faults.get(name)
            if fault is None:
                return None
            kind, left = fault
            if left == 0:
                return None
            if left > 0:
                srv.faults[name] = (kind, left - 1)
            return kind

    def send_body(self, status, body, length=None):
        self.send_response(status)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        srv = self.server
        if srv.delay:
            time.sleep(srv.delay)
        name = self.path.lstrip("/")
        path = os.path.join(srv.root, name)
        if ".." in name.split("/") or not os.path.isfile(path):
            self.record(404)
            self.send_body(404, b"not found\n", 10)
            return
        with open(path, "rb") as f:
            data = f.read()
        kind = self.take_fault(name)
        self.record(kind or 200)
        if kind is None:
            self.send_body(200, data, len(data))
        elif kind == "corrupt":
            bad = bytearray(data)
            if bad:
                bad[len(bad) // 2] ^= 0x5A
            self.send_body(200, bytes(bad), len(bad))
        elif kind == "truncate":
            self.send_body(200, data[: len(data) // 2], len(data))
            self.close_connection = True
        elif kind == "short":
            half = data[: len(data) // 2]
            self.send_body(200, half, len(half))
        elif kind == "extra":
            more = data + b"x" * 4096
            self.send_body(200, more, len(more))
        elif kind == "nolength":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data + b"y" * 4096)
            self.close_connection = True
        elif kind == "stall":
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:3])
            self.wfile.flush()
            time.sleep(60)
            self.close_connection = True
        elif kind == "drop":
            self.close_connection = True
        elif kind == "redirect":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif kind in ("404", "500"):
            self.send_body(int(kind), b"fault\n", 6)
        else:
            raise ValueError(kind)


class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # clients that hang up (a killed fetch) are expected


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fault", action="append", default=[])
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--log")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("dir")
    a = ap.parse_args()

    srv = Server(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.root = a.dir
    srv.delay = a.delay
    srv.log_path = a.log
    srv.lock = threading.Lock()
    srv.faults = {}
    for spec in a.fault:
        name, _, kind = spec.partition("=")
        kind, _, times = kind.partition(":")
        srv.faults[name] = (kind, int(times) if times else -1)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
