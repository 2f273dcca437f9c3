"""A GCS server for TensorFlow's own GCS client, for the tests: gcp-storage-emulator (a
maintained emulator, pure Python) with a thin adapter for what its HTTP layer lacks for
this client, and a log of every request.

TensorFlow's GCS file system talks to fixed hosts over HTTPS (`storage.googleapis.com`,
`www.googleapis.com`); the test runs this script inside a network namespace of its own
whose hosts file names 127.0.0.1 for them, with a self-signed certificate for those
names that the client trusts through `CURL_CA_BUNDLE`, so no request leaves the
namespace. What the adapter adds, each a few lines around the emulator:
  TLS          the server's socket wrapped in the certificate;
  https        the resumable-upload `Location` the emulator builds says `https://`;
  empty        an upload with no body is an empty object (the markers `makedirs` writes);
  chunked      TensorFlow's uploads are chunked AND carry a `Content-Length`: read as
               chunked (read by the length, the object kept the chunk framing);
  threads      one thread per connection (the client makes many requests at once), the
               emulator's handlers run one at a time under a lock; HTTP/1.1 keeps the
               connections (and their TLS) open, and Nagle's delay is off;
  the log      one line per request (`METHOD PATH`) appended to a file, read by the
               test to count what a start of training costs in requests.

    python tests/gcs_emulator.py CERT KEY PORT LOG BUCKET   (prints "ready" when serving)

It runs until it is killed.
"""

import socketserver
import ssl
import sys
import threading
from functools import partial
from http import server as http_server

from gcp_storage_emulator import server as emulator
from gcp_storage_emulator.handlers import buckets
from gcp_storage_emulator.storage import Storage


def _read_raw_data(request_handler):
    """The body: chunked when the request says so (whatever its Content-Length says)."""
    encoding = request_handler.headers.get("Transfer-Encoding", "")
    if encoding.lower() != "chunked":
        length = request_handler.headers.get("Content-Length")
        return request_handler.rfile.read(int(length)) if length else None
    data = b""
    while True:
        size = int(request_handler.rfile.readline().strip() or b"0", 16)
        if size == 0:
            request_handler.rfile.readline()  # the empty line after the last chunk
            return data
        data += request_handler.rfile.read(size)
        request_handler.rfile.readline()


class _Request(emulator.Request):
    """The emulator's request, with the URLs it builds for the client in https, and an
    upload with no body read as an empty object (`makedirs` writes such markers)."""

    def __init__(self, request_handler, method):
        super().__init__(request_handler, method)
        self._base_url = self._base_url.replace("http://", "https://", 1)
        self._full_url = self._full_url.replace("http://", "https://", 1)

    @property
    def data(self):
        data = super().data
        return b"" if data is None and self.query.get("uploadType") == ["media"] else data


class _Handler(emulator.RequestHandler):
    lock = threading.Lock()
    log_path = ""
    # Connections kept open and small writes sent at once (otherwise each request waits
    # out a TLS handshake and a delayed ACK: about 50 ms).
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _route(self, method):
        with open(self.log_path, "a") as log:
            log.write(f"{method} {self.path}\n")
        with self.lock:
            emulator.Router(self).handle(method)

    def do_GET(self):  # noqa: N802 (http.server's names)
        self._route(emulator.GET)

    def do_POST(self):  # noqa: N802
        self._route(emulator.POST)

    def do_PUT(self):  # noqa: N802
        self._route(emulator.PUT)

    def do_DELETE(self):  # noqa: N802
        self._route(emulator.DELETE)

    def do_PATCH(self):  # noqa: N802
        self._route(emulator.PATCH)


class _Server(socketserver.ThreadingMixIn, http_server.HTTPServer):
    daemon_threads = True


def main(cert: str, key: str, port: str, log: str, bucket: str) -> None:
    emulator._read_raw_data = _read_raw_data
    emulator.Request = _Request
    _Handler.log_path = log
    storage = Storage(use_memory_fs=True)
    buckets.create_bucket(bucket, storage)
    httpd = _Server(("127.0.0.1", int(port)), partial(_Handler, storage))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    print("ready", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
