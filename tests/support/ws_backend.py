#!/usr/bin/env python3
"""A WebSocket server that plays "the platform backend" in ccrunner's integration tests.

ccrunner streams a session's messages to a backend over a WebSocket. This server accepts
those connections, records everything it receives, and lets a test push frames, drop
connections and refuse reconnects through plain-HTTP control endpoints on the same port.
Python 3.11 standard library plus Debian's python3-websockets (10.4, asyncio API).

    python3 tests/support/ws_backend.py --port 0 [--token TOKEN]

Binds 127.0.0.1, prints exactly `READY <port>` on stdout once it accepts connections, and
runs until SIGTERM or SIGINT (then closes open connections with 1001 and exits 0).

WebSocket endpoint
------------------
Any path outside /_test/ (e.g. /ws/session). An upgrade is answered, in this order:
  503  while refusing (see POST /_test/refuse)
  401  when --token is given and the request lacks `Authorization: Bearer TOKEN`
  101  otherwise: the connection is recorded and every frame it sends is recorded
Refused upgrades are recorded too (see GET /_test/connections). The server never sends
anything on its own: no pings, no replies; frames reach a client only via /_test/send.
Frames up to 64 MiB are accepted; permessage-deflate is offered as websockets does.

Control endpoints (plain HTTP, JSON replies; never need the token)
-----------------------------------------------------------------
GET  /_test/frames         {"frames": [FRAME, ...]} every frame received, in order, where
                           FRAME is {"conn", "t", "text", "json"}: conn is the connection
                           index, t a unix time, json the parsed text or null when it is
                           not JSON. A binary frame has text and json null and "binary"
                           (base64).
GET  /_test/connections    {"connections": [CONN, ...], "rejected": [REJ, ...]} where CONN
                           is {"index", "path", "authorization" (header value or null),
                           "headers" (all request headers), "open", "opened_at",
                           "closed_at" (null while open), "close_code" (null while open;
                           1006 when the TCP connection ended without a close frame)} and
                           REJ is {"t", "path", "authorization", "status"} for each upgrade
                           answered with 401 or 503.
POST /_test/send           body {"text": "..."} or {"json": VALUE} (sent as compact JSON),
                           optionally "conn": INDEX to target one connection; sends one
                           text frame to every open connection (or that one) and answers
                           {"sent": N}, the number of connections it went to.
POST /_test/drop           closes every open connection abruptly: the TCP connection is
                           aborted without a close handshake, as when the backend process
                           dies. Body optional; {"code": C, "reason": "..."} instead does
                           a proper close handshake with that code. Answers {"dropped": N}.
POST /_test/refuse         body {"seconds": S}: answer new upgrades with 503 for the next S
                           seconds (open connections are untouched); {"seconds": 0} stops
                           refusing at once. Answers {"refusing_for": S}.
GET  /_test/wait?frames=N&timeout=S
                           waits until at least N frames have been received in total, or
                           S seconds (default 10, at most 60) have passed. Answers
                           {"ok": bool, "count": n}. Instead of frames: connections=N
                           (connections ever opened) or closed=N (connections closed).
A bad body is answered 400 and an unknown /_test/ path 404, both as {"error": "..."}.
"""

import argparse
import asyncio
import base64
import http
import importlib.machinery
import importlib.util
import json
import signal
import sys
import time
from urllib.parse import parse_qs, urlsplit

# The project uses Debian's python3-websockets. A Python that does not look in Debian's
# dist-packages (pyenv, a venv) gets that one package from there, and nothing else.
DEBIAN_DIST_PACKAGES = "/usr/lib/python3/dist-packages"


def import_websockets():
    try:
        import websockets
        return websockets
    except ImportError:
        spec = importlib.machinery.PathFinder.find_spec("websockets", [DEBIAN_DIST_PACKAGES])
        if spec is None:
            raise ImportError("websockets not found: apt-get install python3-websockets")
        module = importlib.util.module_from_spec(spec)
        sys.modules["websockets"] = module
        spec.loader.exec_module(module)
        return module


websockets = import_websockets()
from websockets.datastructures import Headers  # noqa: E402
from websockets.exceptions import (  # noqa: E402
    AbortHandshake, ConnectionClosed, InvalidMessage, ProtocolError)
from websockets.frames import Close  # noqa: E402
from websockets.legacy.http import read_headers, read_line  # noqa: E402
from websockets.legacy.server import WebSocketServerProtocol  # noqa: E402

MAX_FRAME_BYTES = 64 * 1024 * 1024
MAX_CONTROL_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_WAIT_S = 10
MAX_WAIT_S = 60


class Backend:
    """Everything recorded, plus the refusal deadline. Only touched from the event loop."""

    def __init__(self, token):
        self.token = token
        self.frames = []
        self.connections = []   # dicts as served by /_test/connections
        self.sockets = {}       # index -> open protocol
        self.rejected = []
        self.refuse_until = 0.0  # time.monotonic() deadline
        self.stopping = False
        self.changed = asyncio.Event()  # set and replaced on every recorded event

    def notify(self):
        self.changed.set()
        self.changed = asyncio.Event()

    def counts(self):
        return {"frames": len(self.frames), "connections": len(self.connections),
                "closed": sum(1 for c in self.connections if not c["open"])}

    async def wait_for(self, what, n, timeout):
        deadline = time.monotonic() + timeout
        while self.counts()[what] < n and not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                break
        count = self.counts()[what]
        return {"ok": count >= n, "count": count}

    # ---- the WebSocket side

    def check_upgrade(self, path, headers):
        """None to accept the upgrade, or the HTTP status refusing it."""
        if time.monotonic() < self.refuse_until:
            status = http.HTTPStatus.SERVICE_UNAVAILABLE
        elif self.token is not None and headers.get("Authorization") != f"Bearer {self.token}":
            status = http.HTTPStatus.UNAUTHORIZED
        else:
            return None
        self.rejected.append({"t": time.time(), "path": path,
                              "authorization": headers.get("Authorization"),
                              "status": status.value})
        return status

    async def serve_connection(self, ws):
        index = len(self.connections)
        headers = ws.request_headers
        conn = {"index": index, "path": ws.path, "authorization": headers.get("Authorization"),
                "headers": {k: v for k, v in headers.raw_items()}, "open": True,
                "opened_at": time.time(), "closed_at": None, "close_code": None}
        self.connections.append(conn)
        self.sockets[index] = ws
        self.notify()
        try:
            async for message in ws:
                frame = {"conn": index, "t": time.time(), "text": None, "json": None}
                if isinstance(message, str):
                    frame["text"] = message
                    try:
                        frame["json"] = json.loads(message)
                    except ValueError:
                        pass
                else:
                    frame["binary"] = base64.b64encode(message).decode("ascii")
                self.frames.append(frame)
                self.notify()
        except ConnectionClosed:
            pass  # an abrupt end (1006) is a normal event here, recorded below
        finally:
            del self.sockets[index]
            conn.update(open=False, closed_at=time.time(), close_code=ws.close_code)
            self.notify()

    # ---- the control endpoints

    async def control(self, method, path, query, body):
        """(status, JSON value) for a /_test/ request."""
        route = (method, path)
        if route == ("GET", "/_test/frames"):
            return 200, {"frames": self.frames}
        if route == ("GET", "/_test/connections"):
            return 200, {"connections": self.connections, "rejected": self.rejected}
        if route == ("GET", "/_test/wait"):
            what = next((k for k in ("frames", "connections", "closed") if k in query), None)
            if what is None:
                return 400, {"error": "wait needs frames=N, connections=N or closed=N"}
            try:
                n = int(query[what][0])
                timeout = min(float(query.get("timeout", [DEFAULT_WAIT_S])[0]), MAX_WAIT_S)
            except ValueError:
                return 400, {"error": "wait: N and timeout must be numbers"}
            return 200, await self.wait_for(what, n, timeout)
        if method != "POST" or path not in ("/_test/send", "/_test/drop", "/_test/refuse"):
            return 404, {"error": f"no control endpoint {method} {path}"}
        try:
            args = json.loads(body) if body.strip() else {}
            if not isinstance(args, dict):
                raise ValueError("body must be a JSON object")
        except ValueError as exc:
            return 400, {"error": f"bad body: {exc}"}
        if path == "/_test/send":
            return await self.send(args)
        if path == "/_test/drop":
            return await self.drop(args)
        seconds = args.get("seconds")
        if not isinstance(seconds, (int, float)) or seconds < 0:
            return 400, {"error": "refuse needs {\"seconds\": S}, S >= 0"}
        self.refuse_until = time.monotonic() + seconds
        return 200, {"refusing_for": seconds}

    async def send(self, args):
        if isinstance(args.get("text"), str):
            text = args["text"]
        elif "json" in args:
            text = json.dumps(args["json"], separators=(",", ":"))
        else:
            return 400, {"error": "send needs {\"text\": \"...\"} or {\"json\": VALUE}"}
        targets = [ws for i, ws in self.sockets.items() if args.get("conn") in (None, i)]
        sent = 0
        for ws in targets:
            try:
                await ws.send(text)
                sent += 1
            except ConnectionClosed:
                pass
        return 200, {"sent": sent}

    async def drop(self, args):
        close = None
        if "code" in args:
            close = Close(args["code"], args.get("reason", ""))
            try:
                close.check()
            except (ProtocolError, TypeError):
                return 400, {"error": f"drop: {args['code']!r} is not a close code to send"}
        targets = list(self.sockets.values())
        for ws in targets:
            if close is None:
                ws.transport.abort()
            else:
                await ws.close(close.code, str(close.reason))
        # Let the connection handlers finish, so /_test/connections shows them closed.
        if targets:
            await asyncio.wait([ws.handler_task for ws in targets], timeout=5)
        return 200, {"dropped": len(targets)}


class Protocol(WebSocketServerProtocol):
    """websockets' server protocol, taught to read POST requests for /_test/ endpoints.

    websockets only parses GET requests; this reads the request line itself, keeps the
    method and the body (by Content-Length), and answers /_test/ paths from
    process_request, which is websockets' hook for plain-HTTP responses on a WebSocket port.
    """

    backend = None  # set by main()

    async def read_http_request(self):
        try:
            line = (await read_line(self.reader)).decode("ascii", "surrogateescape")
            self.method, path, _version = line.split(" ", 2)
            headers = await read_headers(self.reader)
            length = int(headers.get("Content-Length", "0") or 0)
            if not 0 <= length <= MAX_CONTROL_BODY_BYTES:
                raise ValueError(f"bad Content-Length {length}")
            self.body = await self.reader.readexactly(length)
        except Exception as exc:
            # As websockets does: a bad or cut-off request is a quiet 400, not a traceback.
            raise InvalidMessage("did not receive a valid HTTP request") from exc
        self.path, self.request_headers = path, headers
        return path, headers

    async def process_request(self, path, request_headers):
        url = urlsplit(path)
        if url.path.startswith("/_test/"):
            text = self.body.decode("utf-8", "replace")
            status, value = await self.backend.control(self.method, url.path,
                                                       parse_qs(url.query), text)
            body = json.dumps(value).encode() + b"\n"
            # Raised rather than returned, so a wait ended by shutdown still gets its JSON
            # (websockets turns a returned response into a 503 once the server is closing).
            raise AbortHandshake(http.HTTPStatus(status),
                                 Headers({"Content-Type": "application/json"}), body)
        if self.method != "GET":
            return http.HTTPStatus.METHOD_NOT_ALLOWED, [], b"WebSocket upgrades use GET\n"
        status = self.backend.check_upgrade(path, request_headers)
        if status is not None:
            return status, [], f"{status.value} {status.phrase}\n".encode()
        return None


async def serve(port, token):
    backend = Protocol.backend = Backend(token)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    server = await websockets.serve(backend.serve_connection, "127.0.0.1", port,
                                    create_protocol=Protocol, ping_interval=None,
                                    max_size=MAX_FRAME_BYTES, close_timeout=1)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    await stop
    backend.stopping = True
    backend.notify()  # ends pending /_test/wait requests
    server.close()
    try:  # bounded: a client that never finishes its HTTP request must not hang the exit
        await asyncio.wait_for(server.wait_closed(), 5)
    except asyncio.TimeoutError:
        print("ws_backend: gave up waiting for connections to close", file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", help="require `Authorization: Bearer TOKEN` to upgrade")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.token))
    return 0


if __name__ == "__main__":
    sys.exit(main())
