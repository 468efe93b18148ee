"""A stand-in for an email provider's HTTP API on loopback: it prints each message it delivers.
Run it as:

    python mail_api.py [--port 8025]
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Handler(BaseHTTPRequestHandler):
    delivered = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        message = json.loads(self.rfile.read(length) or b"{}")
        Handler.delivered += 1
        bcc = f" (Bcc: {message['Bcc']})" if message.get("Bcc") else ""
        print(f"delivered #{Handler.delivered} to {message.get('To')}{bcc}", flush=True)
        payload = b'{"ErrorCode": 0, "Message": "OK"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8025)
    port = parser.parse_args().port
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"email API on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
