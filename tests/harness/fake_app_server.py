#!/usr/bin/python3
"""A fake Mastodon server process, started by the fakes of snap, systemctl
and docker when they start the app's web or streaming service: it answers
the health endpoint of its kind as Mastodon does ("OK", 200; web: /health,
streaming: /api/v1/streaming/health), or 503 when told to fail, and 404
anything else. Usage: fake_app_server.py KIND PORT READY_FILE FAIL(0|1).
It writes READY_FILE once it listens and exits by itself after 15 minutes
(a test that dies leaves nothing running for long)."""
import http.server
import os
import sys
import threading

KIND, PORT, READY, FAIL = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
PATHS = {"web": "/health", "streaming": "/api/v1/streaming/health"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path != PATHS[KIND]:
            status, body = 404, b"Not Found"
        elif FAIL:
            status, body = 503, b"Service Unavailable"
        else:
            status, body = 200, b"OK"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", PORT), Handler)
with open(READY, "w", encoding="ascii") as f:
    f.write(str(os.getpid()))
threading.Timer(900, lambda: os._exit(0)).start()
server.serve_forever()
