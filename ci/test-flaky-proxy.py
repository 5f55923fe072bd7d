#!/usr/bin/env python3
"""A proxy in front of the test registry (ci/test.sh) that answers the first request for
every path with 503 and Retry-After: 1 (429 for blobs), then forwards: a pull through it
works only if the agent retries. Forwarded blobs are held 0.5 s, and GET /stats tells the
most blob downloads it had in flight at once (the agent's parallel downloads).
usage: test-flaky-proxy.py PORT UPSTREAM_HOST:PORT"""
import sys, threading, time, urllib.error, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

seen = set()
lock = threading.Lock()
inflight = 0
most = 0

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        global inflight, most
        if self.path == "/stats":
            body = str(most).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path != "/v2/" and self.path not in seen:
            seen.add(self.path)
            self.send_response(429 if "/blobs/" in self.path else 503)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        req = urllib.request.Request("http://" + sys.argv[2] + self.path,
                                     headers={k: v for k, v in self.headers.items() if k.lower() in ("accept", "authorization")})
        blob = "/blobs/" in self.path
        if blob:
            with lock:
                inflight += 1
                most = max(most, inflight)
            time.sleep(0.5)
        try:
            r = urllib.request.urlopen(req)
        except urllib.error.HTTPError as e:
            r = e
        finally:
            if blob:
                with lock:
                    inflight -= 1
        body = r.read()
        self.send_response(r.status if hasattr(r, "status") else r.code)
        for k in ("Content-Type", "Docker-Content-Digest", "WWW-Authenticate"):
            if r.headers.get(k): self.send_header(k, r.headers[k])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
