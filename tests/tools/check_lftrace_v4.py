"""lftrace reads both Langfuse server lines and finds out which one it talks to.

A stub server, in this file, serves one canned session of two traces either the way a
Langfuse v4 server does (GET /api/public/v2/observations, pages joined by meta.cursor, 404 on
the v1 trace endpoints) or the way v3 does (GET /api/public/traces and /traces/{id}, 404 on
v2 observations), or neither. The v4 shape follows the server's route
web/src/pages/api/public/v2/observations/index.ts and its item converter (core fields always;
`model`, `usageDetails`, `costDetails`, `totalCost`, `traceName`, `tags`, ... by field group;
items newest first; meta.cursor only while more rows follow).

The tree lftrace prints must be the same from either line, paging must be followed, and a
server it cannot read must give one line on stderr and a failing exit code.

Usage: check_lftrace_v4.py LFTRACE
"""

import base64
import json
import os
import subprocess
import sys
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LFTRACE = None  # set from argv in __main__

T1 = "0123456789abcdef0123456789abcdef"
T2 = "fedcba9876543210fedcba9876543210"
SESSION = "sess 9&x#1"  # escaped or lost: '&' and '#' end a query value


def obs(oid, trace, parent, name, typ, start, end, **extra):
    """One observation with the fields both lines share (the v1 observation view's names)."""
    o = {"id": oid, "traceId": trace, "parentObservationId": parent, "name": name, "type": typ,
         "startTime": start, "endTime": end, "level": "DEFAULT", "statusMessage": None,
         "model": None, "usageDetails": {}, "costDetails": {}, "metadata": {}}
    o.update(extra)
    return o


# Trace 1 is the tree check_lftrace.sh reads from a spool file; trace 2 starts later.
OBSERVATIONS = [
    obs("1111111111111111", T1, None, "agentic-session", "SPAN",
        "2023-11-14T22:13:20.000Z", "2023-11-14T22:13:22.500Z"),
    obs("2222222222222222", T1, "1111111111111111", "claude-query", "GENERATION",
        "2023-11-14T22:13:20.100Z", "2023-11-14T22:13:22.000Z", model="claude-sonnet-4-5",
        usageDetails={"input": 1200, "output": 80}, costDetails={"total": 0.0048}),
    obs("4444444444444444", T1, "2222222222222222", "model-call", "SPAN",
        "2023-11-14T22:13:20.200Z", "2023-11-14T22:13:20.900Z",
        metadata={"usage": "{\"input\":1200,\"output\":80}", "cost_usd": 0.0048}),
    obs("3333333333333333", T1, "2222222222222222", "Write", "TOOL",
        "2023-11-14T22:13:21.000Z", "2023-11-14T22:13:21.500Z", level="ERROR",
        statusMessage="permission denied\n\nby the policy"),
    obs("5555555555555555", T2, None, "agentic-session", "SPAN",
        "2023-11-14T22:14:00.000Z", "2023-11-14T22:14:03.000Z"),
    obs("6666666666666666", T2, "5555555555555555", "claude-query", "GENERATION",
        "2023-11-14T22:14:00.500Z", "2023-11-14T22:14:02.500Z", model="claude-sonnet-4-5",
        usageDetails={"input": 300, "output": 20, "cache_read_input_tokens": 900},
        costDetails={"input": 0.001, "output": 0.0003, "total": 0.0013}),
]
TRACES = {T1: {"name": "agentic-session", "userId": "alice", "tags": ["demo"]},
          T2: {"name": "second-turn", "userId": "alice", "tags": []}}


def v1_trace_view(tid):
    """GET /api/public/traces/{id} of a v3 server (TraceWithFullDetails)."""
    mine = [dict(o, calculatedTotalCost=o["costDetails"].get("total", 0))
            for o in OBSERVATIONS if o["traceId"] == tid]
    return {"id": tid, "name": TRACES[tid]["name"], "sessionId": SESSION,
            "userId": TRACES[tid]["userId"], "tags": TRACES[tid]["tags"],
            "timestamp": min(o["startTime"] for o in mine), "input": None, "output": None,
            "totalCost": sum(o["calculatedTotalCost"] for o in mine), "observations": mine}


def v2_item(o):
    """The same observation as GET /api/public/v2/observations answers it with the groups
    core,basic,metadata,model,usage,trace_context: trace attributes on every observation,
    except that the model-call span (an SDK's span without them) carries none; no model and
    no status message are empty strings, as ClickHouse's columns give them."""
    root = o["parentObservationId"] is None
    bare = o["id"] == "4444444444444444"
    trace = TRACES[o["traceId"]]
    item = dict(o, projectId="p1", isRootObservation=root, version="",
                model=o["model"] or "", statusMessage=o["statusMessage"] or "",
                environment="default", bookmarked=False, public=False,
                userId=None if bare else trace["userId"],
                sessionId=None if bare else SESSION,
                traceName=None if bare else trace["name"],
                tags=[] if bare else trace["tags"], release=None,
                internalModelId=None, modelParameters=None, usagePricingTierName=None,
                totalCost=o["costDetails"].get("total", 0), latency=None,
                timeToFirstToken=None, modelId=None, inputPrice=None, outputPrice=None,
                totalPrice=None)
    return item


class Stub(ThreadingHTTPServer):
    """mode: 'v4', 'v3', 'neither', 'endless' (v4 whose cursor never ends), 'v4-fail'
    (page 2 answers 502 from a proxy), 'v4-401' (v2 observations answer 401)."""
    daemon_threads = True

    def __init__(self, mode):
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode = mode
        self.requests = []  # (path, query as parsed) of every GET
        self.page_size = 3  # the canned answer spans two pages however big the limit
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    @property
    def host(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def observation_requests(self):
        """The queries of the v2 observation reads after the detection probe (limit=1)."""
        return [q for p, q in self.requests
                if p == "/api/public/v2/observations" and q.get("limit") != ["1"]]


def cursor_after(item):
    """A cursor as the server encodes it: base64 of the last row's ordering key."""
    raw = json.dumps({"lastStartTimeTo": item["startTime"], "lastTraceId": item["traceId"],
                      "lastId": item["id"]}, separators=(",", ":")).encode()
    return base64.b64encode(raw).decode()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        text = isinstance(body, str)
        data = (body if text else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if text else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        self.server.requests.append((url.path, query))
        mode = self.server.mode
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"pk:sk").decode():
            return self.answer(401, {"message": "Invalid credentials"})
        if url.path == "/api/public/v2/observations":
            if mode in ("v3", "neither"):
                return self.answer(404, {"message": "The observations v2 API is only available "
                                                    "in a Langfuse v4 write mode."})
            if mode == "v4-401":
                return self.answer(401, {"message": "Invalid credentials. Confirm your keys."})
            return self.v2(query)
        if mode in ("v4", "endless", "v4-fail", "v4-401", "neither"):
            return self.answer(404, {"message": "Not found"})  # v4 events_only, or nothing
        if url.path == "/api/public/traces":
            tids = [t for t in (T2, T1) if query.get("sessionId", [SESSION]) == [SESSION]]
            return self.answer(200, {"data": [{"id": t} for t in tids],
                                     "meta": {"page": 1, "limit": 50, "totalItems": len(tids),
                                              "totalPages": 1}})
        if url.path.startswith("/api/public/traces/"):
            tid = unquote(url.path.rsplit("/", 1)[1])
            if tid not in TRACES:
                return self.answer(404, {"message": f"Trace {tid} not found"})
            return self.answer(200, v1_trace_view(tid))
        return self.answer(404, {"message": "Not found"})

    def v2(self, query):
        def one(name):
            return query.get(name, [None])[-1]
        # v4 files an observation under a session only if it carries session.id itself
        rows = [item for item in map(v2_item, OBSERVATIONS)
                if one("traceId") in (None, item["traceId"])
                and one("sessionId") in (None, item["sessionId"])]
        rows.sort(key=lambda o: (o["startTime"], o["traceId"], o["id"]), reverse=True)
        limit = int(one("limit") or 50)
        if not 0 <= limit <= 1000:
            return self.answer(400, {"message": "limit must be at most 1000"})
        if one("cursor"):
            key = json.loads(base64.b64decode(one("cursor")))
            if self.server.mode != "endless":
                rows = [o for o in rows if (o["startTime"], o["traceId"], o["id"]) <
                        (key["lastStartTimeTo"], key["lastTraceId"], key["lastId"])]
        if self.server.mode == "v4-fail" and one("cursor"):
            # as a proxy in front of the server answers: a page of several lines
            return self.answer(502, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
                                    "<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n")
        size = min(limit, self.server.page_size)
        page, more = rows[:size], len(rows) > size or self.server.mode == "endless"
        meta = {"cursor": cursor_after(page[-1])} if more and page else {}
        self.answer(200, {"data": page, "meta": meta})


def lftrace(host, *args):
    env = dict(os.environ, LANGFUSE_PUBLIC_KEY="pk", LANGFUSE_SECRET_KEY="sk")
    return subprocess.run([LFTRACE, "--host", host, *args], env=env, capture_output=True,
                          text=True, timeout=60)


class LftraceBothLines(unittest.TestCase):
    def serve(self, mode):
        stub = Stub(mode)
        self.addCleanup(stub.server_close)
        self.addCleanup(stub.shutdown)
        return stub

    def test_session_reads_the_same_from_v4_and_v3(self):
        v4, v3 = self.serve("v4"), self.serve("v3")
        a = lftrace(v4.host, "-v", "--session", SESSION)
        b = lftrace(v3.host, "-v", "--session", SESSION)
        self.assertEqual(a.returncode, 0, a.stderr)
        self.assertEqual(b.returncode, 0, b.stderr)
        self.assertIn("Langfuse v4", a.stderr)
        self.assertIn("Langfuse v3", b.stderr)
        self.assertEqual(a.stdout, b.stdout)
        out = a.stdout
        for line in (
                f"trace agentic-session  {T1}",
                f"  session {SESSION}  user alice",
                "  2.500 s  $0.004800  tokens in 1200 out 80  4 observations, 1 errors",
                "  tags: demo",
                "└─ agentic-session [span]  2.500 s",
                "   └─ claude-query [generation claude-sonnet-4-5]  1.900 s  tokens: input 1200, "
                "output 80  $0.004800",
                "      ├─ model-call [span]  0.700 s  (tokens: input 1200, output 80; $0.004800)",
                "      └─ Write [tool]  0.500 s  ERROR: permission denied | by the policy",
                f"trace second-turn  {T2}",
                "  3.000 s  $0.001300  tokens in 1200 out 20  2 observations, 0 errors",
                "   └─ claude-query [generation claude-sonnet-4-5]  2.000 s  tokens: input 300, "
                "output 20, cache-read 900  $0.001300"):
            self.assertIn(line + "\n", out)
        self.assertLess(out.index(T2), out.index(T1), "newest trace first, as v3 lists them")

    def test_v4_follows_the_cursor(self):
        stub = self.serve("v4")
        res = lftrace(stub.host, "-v", "--session", SESSION)
        self.assertEqual(res.returncode, 0, res.stderr)
        reads = stub.observation_requests()
        # the session's trace ids (5 observations carry the session: 2 pages of 3), then each
        # trace whole, newest first (trace 2: 2 observations, trace 1: 4, in 2 pages)
        self.assertEqual([(q.get("sessionId", q.get("traceId")), "cursor" in q) for q in reads],
                         [([SESSION], False), ([SESSION], True), ([T2], False), ([T1], False),
                          ([T1], True)], reads)
        # each cursor comes back as given (base64: its '=' padding survives the URL)
        def newest_first(rows):
            return sorted(rows, key=lambda o: (o["startTime"], o["traceId"], o["id"]),
                          reverse=True)
        in_session = newest_first(i for i in map(v2_item, OBSERVATIONS) if i["sessionId"])
        of_t1 = newest_first(i for i in map(v2_item, OBSERVATIONS) if i["traceId"] == T1)
        self.assertEqual(reads[1]["cursor"], [cursor_after(in_session[2])])
        self.assertEqual(reads[4]["cursor"], [cursor_after(of_t1[2])])
        for q in reads:
            self.assertLessEqual(int(q["limit"][0]), 1000)
        for q in reads[2:]:
            for group in ("core", "basic", "model", "usage", "metadata", "trace_context"):
                self.assertIn(group, q["fields"][0].split(","))
        # trace 1's root was on its page 2; the model-call span carries no session attributes
        # (v4 does not list it under the session) and is in the tree all the same
        self.assertIn("└─ agentic-session [span]  2.500 s\n", res.stdout)
        self.assertIn("├─ model-call [span]  0.700 s", res.stdout)

    def test_one_trace_by_id(self):
        v4, v3 = self.serve("v4"), self.serve("v3")
        a, b = lftrace(v4.host, T1), lftrace(v3.host, T1)
        self.assertEqual((a.returncode, b.returncode), (0, 0), a.stderr + b.stderr)
        self.assertEqual(a.stdout, b.stdout)
        self.assertIn("4 observations, 1 errors", a.stdout)
        self.assertNotIn(T2, a.stdout)
        self.assertEqual([q["traceId"] for q in v4.observation_requests()], [[T1], [T1]])

    def test_unknown_trace_or_session(self):
        for mode in ("v4", "v3"):
            host = self.serve(mode).host
            for args, what in ((["feedfeedfeedfeedfeedfeedfeedfeed"],
                                "feedfeedfeedfeedfeedfeedfeedfeed: "),
                               (["--session", "nobody"], "session nobody: not found")):
                res = lftrace(host, *args)
                self.assertEqual(res.returncode, 1, (mode, args))
                self.assertEqual(res.stdout, "")
                self.assertEqual(len(res.stderr.splitlines()), 1, res.stderr)
                self.assertIn(what, res.stderr)

    def test_server_answering_neither(self):
        for args in (["--session", SESSION], [T1]):
            res = lftrace(self.serve("neither").host, *args)
            self.assertNotEqual(res.returncode, 0)
            self.assertEqual(res.stdout, "")
            self.assertEqual(len(res.stderr.splitlines()), 1, res.stderr)
            self.assertIn("no Langfuse read API", res.stderr)
            self.assertIn("/api/public/v2/observations", res.stderr)
            self.assertIn("/api/public/traces", res.stderr)

    def test_endless_cursor_is_bounded(self):
        stub = self.serve("endless")
        res = lftrace(stub.host, "--session", SESSION)
        self.assertEqual(res.returncode, 1)
        self.assertEqual(res.stdout, "")
        self.assertEqual(len(res.stderr.splitlines()), 1, res.stderr)
        self.assertIn("more than 50 pages", res.stderr)
        self.assertEqual(len(stub.observation_requests()), 50)

    def test_failed_page_is_one_line_and_no_partial_tree(self):
        res = lftrace(self.serve("v4-fail").host, "--session", SESSION)
        self.assertEqual(res.returncode, 1)
        self.assertEqual(res.stdout, "")
        self.assertEqual(len(res.stderr.splitlines()), 1, res.stderr)
        self.assertIn("HTTP 502: <html>", res.stderr)
        self.assertIn("502 Bad Gateway", res.stderr)

    def test_refused_keys_do_not_fall_back(self):
        stub = self.serve("v4-401")
        res = lftrace(stub.host, "--session", SESSION)
        self.assertEqual(res.returncode, 1)
        self.assertEqual(len(res.stderr.splitlines()), 1, res.stderr)
        self.assertIn("HTTP 401: ", res.stderr)
        self.assertIn("Invalid credentials. Confirm your keys.", res.stderr)
        self.assertEqual([p for p, _ in stub.requests], ["/api/public/v2/observations"])


if __name__ == "__main__":
    LFTRACE = sys.argv.pop(1)
    unittest.main()
