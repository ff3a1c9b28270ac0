"""A small generic web application with a data volume.

    GET  /ok       200 "ok" (the probes)
    GET  /         an HTML page: the site's name, the notes kept so far
    GET  /notes    the notes, one per line (text/plain)
    POST /notes    appends the request body (one line, at most 64 KiB) to DATA/notes.txt,
                   synced to disk before the answer (201)

Settings come from the environment: GENERIC_LISTEN (default 0.0.0.0:8080), GENERIC_DATA (default
/data), SITE_ID (shown on the page), GENERIC_RELEASE (shown on the page and in a
X-Generic-Release header), GENERIC_OK_STATUS (what GET /ok answers, default 200: a release that
never becomes healthy sets 503). The process stops cleanly on SIGTERM.
"""

import html
import http.server
import os
import signal
import socketserver
import sys
import threading

LISTEN = os.environ.get("GENERIC_LISTEN", "0.0.0.0:8080")
DATA = os.environ.get("GENERIC_DATA", "/data")
NOTES = os.path.join(DATA, "notes.txt")
MAX_NOTE = 64 * 1024
RELEASE = os.environ.get("GENERIC_RELEASE", "")
OK_STATUS = int(os.environ.get("GENERIC_OK_STATUS", "200"))
lock = threading.Lock()


def read_notes():
    try:
        with open(NOTES, encoding="utf-8") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "mutu-generic/1.0"

    def answer(self, status, body, ctype="text/plain; charset=utf-8"):
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if RELEASE:
            self.send_header("X-Generic-Release", RELEASE)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/ok":
            self.answer(OK_STATUS, "ok\n" if OK_STATUS == 200 else "unhealthy\n")
        elif path == "/notes":
            with lock:
                notes = read_notes()
            self.answer(200, "".join(n + "\n" for n in notes))
        elif path == "/":
            with lock:
                notes = read_notes()
            site = html.escape(os.environ.get("SITE_ID", "generic"))
            items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
            release = html.escape(RELEASE)
            self.answer(200, f"<!doctype html><title>{site}</title><h1>{site}</h1>"
                             f"<p>release {release}</p>"
                             f"<p>{len(notes)} notes</p><ul>{items}</ul>\n",
                        "text/html; charset=utf-8")
        else:
            self.answer(404, "not found\n")

    do_HEAD = do_GET

    def do_POST(self):
        if self.path.split("?", 1)[0] != "/notes":
            return self.answer(404, "not found\n")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self.answer(411, "Content-Length required\n")
        if length > MAX_NOTE:
            return self.answer(413, "note too long\n")
        note = self.rfile.read(length).decode("utf-8", "replace").replace("\r", " ").replace("\n", " ")
        with lock:
            try:
                with open(NOTES, "a", encoding="utf-8") as f:
                    f.write(note + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                return self.answer(500, f"cannot write {NOTES}: {e}\n")
            count = len(read_notes())
        self.answer(201, f"{count}\n")

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    host, _, port = LISTEN.rpartition(":")
    server = Server((host or "0.0.0.0", int(port)), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    if not os.access(DATA, os.W_OK):
        print(f"warning: {DATA} is not writable by uid {os.getuid()}: POST /notes will fail",
              file=sys.stderr)
    print(f"generic: serving on {LISTEN}, data in {DATA}", file=sys.stderr)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
