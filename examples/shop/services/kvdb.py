"""A tiny key-value "database" over TCP: lines `SET key value`, `GET key`, `PING`."""
import os
import signal
import socketserver
import sys
import time

DATA = {}


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for raw in self.rfile:
            parts = raw.decode().strip().split(" ", 2)
            if parts[0] == "PING":
                reply = "PONG"
            elif parts[0] == "SET" and len(parts) == 3:
                DATA[parts[1]] = parts[2]
                reply = "OK"
            elif parts[0] == "GET" and len(parts) == 2:
                reply = DATA.get(parts[1], "")
            else:
                reply = "ERR"
            self.wfile.write((reply + "\n").encode())


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    port = int(os.environ.get("DB_PORT", "15432"))
    time.sleep(0.3)  # a database takes a moment to open its files
    server = Server(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGINT, lambda *_: (print("kvdb: shutting down"), sys.exit(0)))
    print(f"kvdb: listening on 127.0.0.1:{port}")
    server.serve_forever()


if __name__ == "__main__":
    main()
