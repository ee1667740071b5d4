# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Helpers for the remote store tests: a source store published by
mkcomposefs --store-image, HTTP servers on 127.0.0.1 started and stopped
by PID, and comparing stores."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import time

import cfstest
from cfstest import Failure, check, main, run, skip  # noqa: F401
from cfstree import make_files_tree as make_tree  # noqa: F401


@contextlib.contextmanager
def workspace(prefix, cleanup=None):
    """A temporary directory and a list for the servers a test starts;
    afterwards the servers are stopped, cleanup(directory) runs and the
    directory is removed."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    servers = []
    try:
        yield tmp, servers
    finally:
        for s in servers:
            s.stop()
        if cleanup is not None:
            cleanup(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def published(mk, tmp, n_files, seed, name="store"):
    """A generated tree (make_files_tree) built into the new store
    @tmp/@name: returns the store, the image digest and the objects."""
    src = os.path.join(tmp, "src")
    make_tree(src, n_files, seed=seed)
    store = os.path.join(tmp, name)
    digest = publish(mk, src, store)
    return store, digest, objects(store)


def publish(mk, src, store):
    """Builds the image of @src into @store; returns its digest."""
    p = run([mk, "--digest-store=" + store, "--store-image", src])
    digest = p.stdout.decode().strip()
    check(len(digest) == 64, "mkcomposefs printed %r" % digest)
    return digest


def objects(store):
    """{relative path: bytes} of the objects in @store."""
    out = {}
    for rel in cfstest.store_paths(store):
        with open(os.path.join(store, rel), "rb") as f:
            out[rel] = f.read()
    return out


def leftovers(store):
    """Names in @store that are neither objects, subdirectories nor .lock."""
    bad = []
    for d in os.listdir(store):
        dp = os.path.join(store, d)
        if d == ".lock":
            continue
        if len(d) != 2 or not os.path.isdir(dp):
            bad.append(d)
            continue
        for n in os.listdir(dp):
            if len(n) != 62:
                bad.append(d + "/" + n)
    return bad


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def started(proc, port):
    """A Server for @proc once it listens on @port; killed if it does not."""
    srv = Server(proc, port)
    try:
        wait_port(port, proc)
    except Exception:
        srv.stop()
        raise
    return srv


def wait_port(port, proc, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise Failure("server exited with status %d" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Failure("server did not listen on port %d" % port)


class Server:
    """A server process; stop() kills it by its PID."""

    def __init__(self, proc, port):
        self.proc = proc
        self.port = port
        self.url = "http://127.0.0.1:%d" % port

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_python_server(root):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                             "--directory", root, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return started(proc, port)


def start_fault_server(root, faults=(), delay=0.0, log=None):
    cmd = [sys.executable, os.path.join(cfstest.LIB_DIR, "faultserver.py")]
    for f in faults:
        cmd += ["--fault", f]
    if delay:
        cmd += ["--delay", str(delay)]
    if log:
        cmd += ["--log", log]
    proc = subprocess.Popen(cmd + [root], stdout=subprocess.PIPE)
    port = int(proc.stdout.readline().decode() or "0")
    srv = Server(proc, port)
    if port == 0:
        srv.stop()
        raise Failure("fault server did not start")
    return srv


def nginx_binary():
    for p in ("/usr/sbin/nginx", shutil.which("nginx") or ""):
        if p and os.access(p, os.X_OK):
            return p
    return None


def make_certificate(workdir):
    """A self-signed certificate for 127.0.0.1: (cert, key) paths, or None
    without the openssl command."""
    if shutil.which("openssl") is None:
        return None
    cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert])
    return cert, key


def start_nginx(root, workdir, tls=None, require_header=None):
    """nginx as one foreground process (no master, no daemon) serving
    @root, with its configuration, logs and temporary paths in @workdir.
    @tls: (cert, key) for HTTPS with HTTP/2. @require_header: (name,
    value) that every request must carry, else 403."""
    nginx = nginx_binary()
    if nginx is None:
        return None
    port = free_port()
    os.makedirs(workdir, exist_ok=True)
    conf = os.path.join(workdir, "nginx.conf")
    w = workdir
    listen = "127.0.0.1:%d" % port
    extra = ""
    if tls:
        listen += " ssl http2"
        extra += "ssl_certificate %s;\n        ssl_certificate_key %s;\n" % tls
        # The protocol of each request, to show that HTTP/2 was used.
        extra += "        access_log %s/protocols.log proto;\n" % w
    if require_header:
        var = "$http_" + require_header[0].lower().replace("-", "_")
        extra += '        if (%s != "%s") { return 403; }\n' % (var, require_header[1])
    with open(conf, "w") as f:
        f.write("""daemon off;
master_process off;
worker_processes 1;
pid %(w)s/nginx.pid;
error_log %(w)s/error.log;
events { worker_connections 256; }
http {
    access_log %(w)s/access.log;
    log_format proto "$server_protocol";
    client_body_temp_path %(w)s/body;
    proxy_temp_path %(w)s/proxy;
    fastcgi_temp_path %(w)s/fastcgi;
    uwsgi_temp_path %(w)s/uwsgi;
    scgi_temp_path %(w)s/scgi;
    keepalive_requests 100000;
    server {
        listen %(listen)s;
        %(extra)s
        root %(root)s;
        location / { }
    }
}
""" % {"w": w, "listen": listen, "extra": extra, "root": root})
    proc = subprocess.Popen([nginx, "-p", workdir, "-c", conf, "-e", os.path.join(w, "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    srv = started(proc, port)
    if tls:
        srv.url = "https://127.0.0.1:%d" % port
    return srv
