"""Tests for tests/support/ws_backend.py, the WebSocket "platform backend" test server.

The server runs as a subprocess exactly as the C integration tests use it: port 0, a
``READY <port>`` line, then WebSocket and plain-HTTP control requests on that port. The
client side uses websockets' asyncio client and urllib. Every wait is bounded and every
process this suite starts is terminated.

    python3 -m unittest tests/support/test_ws_backend.py -v
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "ws_backend.py")
sys.path.insert(0, HERE)
import ws_backend  # noqa: E402  (for the same websockets import as the server's)
from procs import start_ready, stop_process  # noqa: E402

websockets = ws_backend.websockets
from websockets.exceptions import ConnectionClosed, InvalidStatusCode  # noqa: E402

TOKEN = "tok-0123456789"
START_TIMEOUT_S = 10
STEP_TIMEOUT_S = 5  # bound on any single network step


class Backend:
    """A ws_backend subprocess; start() waits (bounded) for its READY line."""

    def __init__(self, *args):
        self.args = list(args)
        self.proc = None
        self.port = None
        self.stderr = ""

    def start(self):
        self.proc, self.port = start_ready([sys.executable, SERVER, "--port", "0", *self.args],
                                           stderr=subprocess.PIPE, timeout=START_TIMEOUT_S)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=5) -> int | None:
        if self.proc is None:
            return None
        code = stop_process(self.proc, sig, timeout)
        if not self.proc.stderr.closed:
            self.stderr = self.proc.stderr.read().decode(errors="replace")
            self.proc.stderr.close()
        return code

    def call(self, method, path, body=None):
        """(status, parsed JSON) of a control request; blocking."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=STEP_TIMEOUT_S + 60) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            with err:
                return err.code, json.loads(err.read())


class WsBackendTestCase(unittest.IsolatedAsyncioTestCase):
    server_args: tuple = ("--token", TOKEN)

    def setUp(self):
        self.backend = Backend(*self.server_args).start()
        self.addCleanup(self.stop_backend)
        self.clients = []

    def stop_backend(self):
        self.assertEqual(self.backend.stop(), 0)
        self.assertNotIn("Traceback", self.backend.stderr)

    async def asyncTearDown(self):
        for ws in self.clients:
            await asyncio.wait_for(ws.close(), STEP_TIMEOUT_S)

    async def http(self, method, path, body=None):
        return await asyncio.to_thread(self.backend.call, method, path, body)

    async def get(self, path):
        status, value = await self.http("GET", path)
        self.assertEqual(status, 200, value)
        return value

    async def post(self, path, body=None):
        status, value = await self.http("POST", path, body)
        self.assertEqual(status, 200, value)
        return value

    async def wait(self, **counts):
        (what, n), = counts.items()
        value = await self.get(f"/_test/wait?{what}={n}&timeout={STEP_TIMEOUT_S}")
        self.assertTrue(value["ok"], f"waited for {what}={n}, got {value}")
        return value

    async def connect(self, path="/ws/session", token=TOKEN):
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        ws = await websockets.connect(f"ws://127.0.0.1:{self.backend.port}{path}",
                                      extra_headers=headers, open_timeout=STEP_TIMEOUT_S,
                                      close_timeout=1)
        self.clients.append(ws)
        return ws

    async def connect_status(self, **kwargs):
        """The HTTP status an upgrade attempt gets: 101, or the refusal's."""
        try:
            await self.connect(**kwargs)
            return 101
        except InvalidStatusCode as exc:
            return exc.status_code

    async def recv(self, ws):
        return await asyncio.wait_for(ws.recv(), STEP_TIMEOUT_S)


class TokenTest(WsBackendTestCase):
    async def test_upgrade_needs_the_bearer_token(self):
        self.assertEqual(await self.connect_status(token=None), 401)
        self.assertEqual(await self.connect_status(token="wrong"), 401)
        self.assertEqual(await self.connect_status(path="/ws/session?x=1"), 101)
        await self.wait(connections=1)
        listing = await self.get("/_test/connections")
        self.assertEqual(len(listing["connections"]), 1)
        conn = listing["connections"][0]
        self.assertEqual(conn["index"], 0)
        self.assertEqual(conn["path"], "/ws/session?x=1")
        self.assertEqual(conn["authorization"], f"Bearer {TOKEN}")
        self.assertTrue(conn["open"])
        self.assertIsInstance(conn["opened_at"], float)
        self.assertIsNone(conn["closed_at"])
        self.assertEqual([(r["status"], r["authorization"]) for r in listing["rejected"]],
                         [(401, None), (401, "Bearer wrong")])

    async def test_control_endpoints_are_plain_http_without_token(self):
        self.assertEqual(await self.get("/_test/frames"), {"frames": []})
        self.assertEqual(await self.http("GET", "/_test/nope"),
                         (404, {"error": "no control endpoint GET /_test/nope"}))
        status, value = await self.http("POST", "/_test/send", {"nothing": 1})
        self.assertEqual(status, 400, value)
        status, value = await self.http("POST", "/_test/refuse", {"seconds": "x"})
        self.assertEqual(status, 400, value)
        status, value = await self.http("GET", "/_test/wait")
        self.assertEqual(status, 400, value)


class OpenServerTest(WsBackendTestCase):
    server_args = ()

    async def test_without_token_any_upgrade_is_accepted(self):
        ws = await self.connect(path="/anything", token=None)
        await ws.send("hi")
        await self.wait(frames=1)
        conn = (await self.get("/_test/connections"))["connections"][0]
        self.assertEqual((conn["path"], conn["authorization"]), ("/anything", None))


class FramesTest(WsBackendTestCase):
    async def test_frames_recorded_in_order(self):
        ws = await self.connect()
        sent = [json.dumps({"type": "message", "seq": i}) for i in range(20)] + ["not json"]
        for text in sent:
            await ws.send(text)
        await ws.send(b"\x00\x01")
        await self.wait(frames=len(sent) + 1)
        frames = (await self.get("/_test/frames"))["frames"]
        self.assertEqual([f["text"] for f in frames[:-1]], sent)
        self.assertEqual([f["json"] for f in frames[:20]],
                         [{"type": "message", "seq": i} for i in range(20)])
        self.assertIsNone(frames[20]["json"])
        self.assertEqual(frames[-1]["binary"], "AAE=")
        self.assertTrue(all(f["conn"] == 0 for f in frames))
        times = [f["t"] for f in frames]
        self.assertEqual(times, sorted(times))

    async def test_send_reaches_the_client(self):
        ws = await self.connect()
        await self.wait(connections=1)
        self.assertEqual(await self.post("/_test/send", {"text": "hello"}), {"sent": 1})
        self.assertEqual(await self.recv(ws), "hello")
        self.assertEqual(await self.post("/_test/send", {"json": {"type": "interrupt"}}),
                         {"sent": 1})
        self.assertEqual(json.loads(await self.recv(ws)), {"type": "interrupt"})

    async def test_send_goes_to_every_open_connection_or_one(self):
        first, second = await self.connect(), await self.connect()
        await self.wait(connections=2)
        self.assertEqual(await self.post("/_test/send", {"text": "all"}), {"sent": 2})
        self.assertEqual([await self.recv(first), await self.recv(second)], ["all", "all"])
        self.assertEqual(await self.post("/_test/send", {"text": "one", "conn": 1}),
                         {"sent": 1})
        self.assertEqual(await self.recv(second), "one")
        await first.close()
        await self.wait(closed=1)
        self.assertEqual(await self.post("/_test/send", {"text": "left"}), {"sent": 1})

    async def test_client_close_is_recorded(self):
        ws = await self.connect()
        await ws.close(1000, "bye")
        await self.wait(closed=1)
        conn = (await self.get("/_test/connections"))["connections"][0]
        self.assertFalse(conn["open"])
        self.assertEqual(conn["close_code"], 1000)
        self.assertGreaterEqual(conn["closed_at"], conn["opened_at"])
        self.assertEqual(await self.post("/_test/send", {"text": "x"}), {"sent": 0})


class DropTest(WsBackendTestCase):
    async def test_drop_aborts_and_reconnect_is_a_new_connection(self):
        ws = await self.connect()
        await ws.send("before")
        await self.wait(frames=1)
        self.assertEqual(await self.post("/_test/drop"), {"dropped": 1})
        with self.assertRaises(ConnectionClosed):
            await self.recv(ws)
        self.assertEqual(ws.close_code, 1006)  # no close frame: the TCP connection just ended
        first = (await self.get("/_test/connections"))["connections"][0]
        self.assertFalse(first["open"])
        self.assertEqual(first["close_code"], 1006)
        self.assertIsNotNone(first["closed_at"])

        again = await self.connect()
        await again.send("after")
        await self.wait(connections=2)
        await self.wait(frames=2)
        conns = (await self.get("/_test/connections"))["connections"]
        self.assertEqual([(c["index"], c["open"]) for c in conns], [(0, False), (1, True)])
        frames = (await self.get("/_test/frames"))["frames"]
        self.assertEqual([(f["conn"], f["text"]) for f in frames],
                         [(0, "before"), (1, "after")])

    async def test_drop_with_a_close_code(self):
        ws = await self.connect()
        await self.wait(connections=1)
        self.assertEqual(await self.post("/_test/drop", {"code": 4001, "reason": "restart"}),
                         {"dropped": 1})
        with self.assertRaises(ConnectionClosed):
            await self.recv(ws)
        self.assertEqual((ws.close_code, ws.close_reason), (4001, "restart"))
        status, value = await self.http("POST", "/_test/drop", {"code": 1006})
        self.assertEqual(status, 400, value)

    async def test_drop_without_connections(self):
        self.assertEqual(await self.post("/_test/drop"), {"dropped": 0})


class RefuseTest(WsBackendTestCase):
    async def test_refuse_gives_503_until_it_ends(self):
        ws = await self.connect()
        started = time.monotonic()
        self.assertEqual(await self.post("/_test/refuse", {"seconds": 1}), {"refusing_for": 1})
        self.assertEqual(await self.connect_status(), 503)
        self.assertEqual(await self.connect_status(token="wrong"), 503)
        # Open connections are untouched.
        self.assertEqual(await self.post("/_test/send", {"text": "still here"}), {"sent": 1})
        self.assertEqual(await self.recv(ws), "still here")
        # Retry as a reconnecting client would, until the refusal ends (bounded).
        status = 503
        while status == 503 and time.monotonic() - started < STEP_TIMEOUT_S:
            await asyncio.sleep(0.1)
            status = await self.connect_status()
        self.assertEqual(status, 101)
        self.assertGreaterEqual(time.monotonic() - started, 1.0)
        listing = await self.get("/_test/connections")
        self.assertEqual(len(listing["connections"]), 2)
        self.assertIn(503, [r["status"] for r in listing["rejected"]])

    async def test_refuse_zero_stops_refusing(self):
        await self.post("/_test/refuse", {"seconds": 60})
        self.assertEqual(await self.connect_status(), 503)
        await self.post("/_test/refuse", {"seconds": 0})
        self.assertEqual(await self.connect_status(), 101)


class WaitTest(WsBackendTestCase):
    async def test_wait_times_out_with_the_count(self):
        started = time.monotonic()
        value = await self.get("/_test/wait?frames=1&timeout=0.3")
        self.assertEqual(value, {"ok": False, "count": 0})
        self.assertLess(time.monotonic() - started, STEP_TIMEOUT_S)
        self.assertEqual(await self.get("/_test/wait?connections=0&timeout=0"),
                         {"ok": True, "count": 0})

    async def test_wait_returns_when_the_frames_arrive(self):
        query = f"/_test/wait?frames=3&timeout={STEP_TIMEOUT_S}"
        pending = asyncio.create_task(self.get(query))
        ws = await self.connect()
        for i in range(3):
            await ws.send(f"m{i}")
        self.assertEqual(await asyncio.wait_for(pending, STEP_TIMEOUT_S + 5),
                         {"ok": True, "count": 3})
        self.assertEqual(await self.get("/_test/wait?connections=1&timeout=1"),
                         {"ok": True, "count": 1})
        self.assertEqual(await self.get("/_test/wait?closed=1&timeout=0.2"),
                         {"ok": False, "count": 0})


class ExitTest(unittest.TestCase):
    def test_exits_0_on_sigterm_and_sigint_with_a_wait_pending(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(sig=sig.name):
                backend = Backend().start()
                try:
                    results = []
                    waiter = threading.Thread(target=lambda: results.append(
                        backend.call("GET", "/_test/wait?frames=1&timeout=60")), daemon=True)
                    waiter.start()
                    time.sleep(0.2)  # let the wait reach the server; no endpoint shows it
                    started = time.monotonic()
                    self.assertEqual(backend.stop(sig), 0)
                    self.assertLess(time.monotonic() - started, 3)
                    waiter.join(STEP_TIMEOUT_S)
                    self.assertFalse(waiter.is_alive())
                finally:
                    backend.stop()


if __name__ == "__main__":
    unittest.main()
