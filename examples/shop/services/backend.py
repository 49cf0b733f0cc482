"""HTTP API: /health answers 200 once the database answers PING; / returns JSON."""
import http.server
import json
import os
import socket

DB_PORT = int(os.environ.get("DB_PORT", "15432"))
PORT = int(os.environ.get("BACKEND_PORT", "18001"))


def db(command):
    with socket.create_connection(("127.0.0.1", DB_PORT), timeout=2) as conn:
        conn.sendall(command.encode() + b"\n")
        return conn.makefile().readline().strip()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            if self.path == "/health":
                status, body = (200, {"ok": True}) if db("PING") == "PONG" else (503, {"ok": False})
            else:
                status, body = 200, {"schema_version": db("GET schema_version")}
        except OSError as err:
            status, body = 503, {"error": str(err)}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print("backend:", fmt % args, flush=True)


print(f"backend: serving on 127.0.0.1:{PORT}", flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
