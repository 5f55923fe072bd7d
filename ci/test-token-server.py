#!/usr/bin/env python3
"""A token server for the test registry with `auth: silly` (ci/test.sh): answers
GET /token with {"token": ...} only for the Basic login ci:secret, so a pull succeeds
only with the operator's credentials. usage: test-token-server.py PORT"""
import base64, json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

EXPECTED = "Basic " + base64.b64encode(b"ci:secret").decode()

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path.startswith("/token") and self.headers.get("Authorization") == EXPECTED
        body = json.dumps({"token": "agent-test-token"} if ok else {"errors": [{"code": "UNAUTHORIZED"}]}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
