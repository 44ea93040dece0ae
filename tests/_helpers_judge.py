"""A real chat-completions server on 127.0.0.1 for the judge tests: a thread, bounded requests, stops by itself.

``reply(body) -> (status, payload)`` decides each answer; every request (path, headers, body) is kept in
``server.seen``. The server serves at most ``max_requests`` requests and polls for ``stop()``, so a test
that forgets to stop it cannot leave it running past the process.
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer


def chat_reply(content: str) -> tuple[int, dict]:
    return 200, {"id": "x", "object": "chat.completion", "model": "fake",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                              "finish_reason": "stop"}]}


class JudgeServer:
    def __init__(self, reply, max_requests: int = 200):
        self.reply, self.seen, self.max_requests = reply, [], max_requests
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                outer.seen.append(("GET", self.path, dict(self.headers), None))
                if self.path.endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.seen.append(("POST", self.path, dict(self.headers), body))
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, {"error": "not found"})
                self._send(*outer.reply(body))

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 0.1
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        served = 0
        while not self._stop.is_set() and served < self.max_requests:
            before = len(self.seen)
            self.httpd.handle_request()
            served += len(self.seen) > before

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def posts(self):
        return [body for method, _, _, body in self.seen if method == "POST"]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(timeout=5)
        self.httpd.server_close()
