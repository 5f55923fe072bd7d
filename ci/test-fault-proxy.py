#!/usr/bin/env python3
"""Fault injection in front of a registry that wants Basic auth (ci/test.sh): the agent's
pull through it must survive a redirect to another host and a blob cut off mid-way.
  PROXY port: forwards /v2/ and manifests (with the client's Authorization) to UPSTREAM;
              answers every blob GET with 307 to http://localhost:CDN_PORT/<same path>
              (another host name: the client must not send its Authorization there).
  CDN port:   serves blobs fetched from UPSTREAM with its own login; the first request for
              each blob sends the full Content-Length but only half the body, then closes
              (the client must resume with Range); a Range request gets 206.
              GET /stats: {"authorization": requests that carried one, "ranges": Range
              requests, "cuts": bodies cut}.
usage: test-fault-proxy.py PROXY_PORT CDN_PORT UPSTREAM_HOST:PORT USER:PASSWORD"""
import base64, json, sys, threading, urllib.error, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

proxy_port, cdn_port, upstream, login = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
basic = "Basic " + base64.b64encode(login.encode()).decode()
lock = threading.Lock()
stats = {"authorization": 0, "ranges": 0, "cuts": 0}
cut = set()

def fetch(path, headers):
    req = urllib.request.Request("http://" + upstream + path, headers=headers)
    try:
        return urllib.request.urlopen(req)
    except urllib.error.HTTPError as e:
        return e

class Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

class Proxy(Quiet):
    def do_GET(self):
        if "/blobs/" in self.path:
            self.reply(307, headers=[("Location", "http://localhost:%d%s" % (cdn_port, self.path))])
            return
        r = fetch(self.path, {k: v for k, v in self.headers.items() if k.lower() in ("accept", "authorization")})
        body = r.read()
        hs = [(k, r.headers[k]) for k in ("Content-Type", "Docker-Content-Digest", "WWW-Authenticate") if r.headers.get(k)]
        self.reply(r.status if hasattr(r, "status") else r.code, body, hs)

class CDN(Quiet):
    def do_GET(self):
        if self.path == "/stats":
            with lock:
                self.reply(200, json.dumps(stats).encode())
            return
        rng = self.headers.get("Range")
        with lock:
            if self.headers.get("Authorization"):
                stats["authorization"] += 1
            if rng:
                stats["ranges"] += 1
            first = self.path not in cut
            cut.add(self.path)
        r = fetch(self.path, {"Authorization": basic})
        body = r.read()
        if (r.status if hasattr(r, "status") else r.code) != 200:
            self.reply(502, body)
            return
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            part = body[start:]
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(body) - 1, len(body)))
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            self.wfile.write(part)
            return
        if first and len(body) > 1:
            with lock:
                stats["cuts"] += 1
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.reply(200, body)

for port, handler in ((cdn_port, CDN), (proxy_port, Proxy)):
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
threading.Event().wait()
