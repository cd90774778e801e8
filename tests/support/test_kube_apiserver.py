"""Tests for tests/support/kube_apiserver.py, the Kubernetes API server and kubelet stand-in
that ccoperator's tests run against.

Every check goes through HTTP with urllib, as the operator would see the server: the
server is started in this process (``KubeApiServer``) for speed, and once as a program to
check its command line, its first line and its clean stop.  The kubelet's containers are
``/bin/sh -c`` scripts.  Every wait is bounded; every server and process is stopped.

    python3 -m unittest tests/support/test_kube_apiserver.py -v
"""

import base64
import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from kube_apiserver import KubeApiServer  # noqa: E402
from procs import read_line, stop_process  # noqa: E402

TOKEN = "stand-in-token-0123"
SESSIONS = "/apis/vteam.ambient-code/v1alpha1/namespaces/{ns}/agenticsessions"
JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"
PODS = "/api/v1/namespaces/{ns}/pods"
SECRETS = "/api/v1/namespaces/{ns}/secrets"
CONFIGMAPS = "/api/v1/namespaces/{ns}/configmaps"
SH = "local/sh:1"                 # an image whose ENTRYPOINT is /bin/sh -c
WAIT_S = 20                       # bound on every wait (a loaded 2-core machine)

# The parts of deploy/k8s/crd-agenticsession.yaml these tests lean on, as the JSON the
# operator's tests produce from it with node's yaml package.
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "agenticsessions.vteam.ambient-code"},
    "spec": {"group": "vteam.ambient-code", "scope": "Namespaced",
             "names": {"kind": "AgenticSession", "plural": "agenticsessions"},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                           "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {
                                   "prompt": {"type": "string"},
                                   "interactive": {"type": "boolean", "default": False},
                                   "timeout": {"type": "integer", "minimum": 1, "maximum": 2592000},
                                   "repos": {"type": "array", "items": {
                                       "type": "object", "required": ["url"], "properties": {
                                           "url": {"type": "string", "minLength": 1},
                                           "branch": {"type": "string"}}}}}},
                               "status": {"type": "object", "properties": {
                                   "phase": {"type": "string", "enum": ["Pending", "Running",
                                                                        "Completed", "Failed"]},
                                   "startTime": {"type": "string", "format": "date-time"},
                                   "cost": {"type": "number", "minimum": 0},
                                   "traceId": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                                   "usage": {"type": "object",
                                             "x-kubernetes-preserve-unknown-fields": True,
                                             "properties": {"input_tokens": {
                                                 "type": "integer", "minimum": 0}}}}}}}}}]}}


def session(name, spec=None, **meta):
    return {"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
            "metadata": {"name": name, **meta}, "spec": spec or {"prompt": "hi"}}


def configmap(name, labels=None, **meta):
    m = {"name": name, **meta}
    if labels:
        m["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": m, "data": {"k": "v"}}


def job(name, script, image=SH, owner=None, **container):
    c = {"name": "main", "image": image, "args": [script], **container}
    meta = {"name": name}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                    "name": owner["metadata"]["name"],
                                    "uid": owner["metadata"]["uid"], "controller": True}]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
            "spec": {"backoffLimit": 0, "template": {
                "metadata": {"labels": {"app": "t"}},
                "spec": {"restartPolicy": "Never", "containers": [c]}}}}


class Api:
    """HTTP to the stand-in with urllib; answers are (status, parsed body, headers)."""

    def __init__(self, url, token=TOKEN):
        self.url, self.token = url, token

    def call(self, method, path, body=None, ctype="application/json", token=None, query=None):
        if query:
            path += "?" + urllib.parse.urlencode(query)
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, method=method, data=data)
        if data is not None:
            req.add_header("Content-Type", ctype)
        token = self.token if token is None else token
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=WAIT_S) as r:
                raw, status, headers = r.read(), r.status, r.headers
        except urllib.error.HTTPError as e:
            raw, status, headers = e.read(), e.code, e.headers
        body = json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()
        return status, body, headers

    def ok(self, method, path, body=None, **kw):
        status, out, _ = self.call(method, path, body, **kw)
        if status >= 300:
            raise AssertionError(f"{method} {path}: {status} {out}")
        return out

    def get(self, path):
        status, out, _ = self.call("GET", path)
        return None if status == 404 else out

    def wait(self, what, predicate, timeout=WAIT_S):
        """Polls predicate() (which reads through HTTP) until it returns something true."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout}s: {what}")
            time.sleep(0.05)

    def watch(self, path, **query):
        return Watch(self, path, query)


class Watch:
    """A watch stream read on a thread: next() gives each event, end() how it ended."""

    def __init__(self, api, path, query):
        q = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in query.items()}
        url = urllib.parse.urlsplit(api.url)
        # http.client rather than urllib: close() must reach the socket under the reader.
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        self.conn.request("GET", f"{path}?watch=1&{urllib.parse.urlencode(q)}",
                          headers={"Authorization": f"Bearer {api.token}"})
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            raise AssertionError(f"watch {path}: HTTP {self.resp.status} {self.resp.read()!r}")
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        # read1, not readline: http.client's readline takes a stream cut mid-chunk for a
        # clean end, read1 raises IncompleteRead.
        buf = b""
        try:
            while True:
                data = self.resp.read1(65536)
                if not data:
                    self.lines.put(("end", "clean"))   # the final zero-length chunk
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self.lines.put(("event", json.loads(line)))
        except Exception:   # IncompleteRead, a reset, or close() under the reader
            self.lines.put(("end", "cut"))             # closed without the final chunk

    def next(self, timeout=WAIT_S):
        try:
            kind, value = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no watch event within {timeout}s")
        if kind != "event":
            raise AssertionError(f"the watch ended ({value}) where an event was expected")
        return value

    def until(self, predicate, timeout=WAIT_S):
        """Events up to and including the first for which predicate is true."""
        seen, deadline = [], time.monotonic() + timeout
        while True:
            seen.append(self.next(max(0.01, deadline - time.monotonic())))
            if predicate(seen[-1]):
                return seen

    def end(self, timeout=WAIT_S):
        """How the stream ended ("clean" or "cut"), skipping events before that."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                kind, value = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"the watch did not end within {timeout}s")
            if kind == "end":
                return value

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)   # wakes the reader thread
        except OSError:
            pass
        self.conn.close()


def status_of(obj):
    return obj.get("status") or {}


def terminated(pod):
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]


def waiting(pod):
    statuses = pod["status"].get("containerStatuses") or [{}]
    return (statuses[0].get("state") or {}).get("waiting", {})


def job_condition(j):
    return next((c["type"] for c in status_of(j).get("conditions") or []
                 if c.get("status") == "True"), None)


class StandIn(unittest.TestCase):
    """A fresh stand-in per test, in this process, with a token and the sh image."""
    options = {}

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="kube-apiserver-test-")
        self.addCleanup(tmp.cleanup)
        self.tmp = Path(tmp.name)
        crd = self.tmp / "crd.json"
        crd.write_text(json.dumps(CRD))
        opts = dict(token=TOKEN, image={SH: ["/bin/sh", "-c"]},
                    image_env={SH: {"IMAGE_VAR": "from-image", "OVERRIDDEN": "image"}},
                    crd_json=str(crd), bookmark_interval=0.2, max_grace=10,
                    job_batch_period=0.05, workdir=str(self.tmp / "work"))
        opts.update(self.options)
        self.server = self.start_server(**opts)
        self.api = Api(self.server.url)

    def start_server(self, **opts):
        server = KubeApiServer(**opts).start()
        self.addCleanup(server.stop)
        return server

    def watch(self, path, **query):
        w = self.api.watch(path, **query)
        self.addCleanup(w.close)
        return w

    def assertStatus(self, answer, code, reason):
        status, body, _ = answer
        self.assertEqual(status, code, body)
        self.assertEqual({k: body.get(k)
                          for k in ("kind", "apiVersion", "status", "reason", "code")},
                         {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                          "reason": reason, "code": code}, body)
        self.assertTrue(body.get("message"), body)
        return body


class CrudTests(StandIn):
    def test_create_get_list_and_already_exists(self):
        path = SESSIONS.format(ns="team")
        made = self.api.ok("POST", path, session("s1"))
        m = made["metadata"]
        self.assertEqual((m["name"], m["namespace"], m["generation"]), ("s1", "team", 1))
        self.assertRegex(m["uid"], r"^[0-9a-f-]{36}$")
        self.assertRegex(m["creationTimestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertTrue(m["resourceVersion"].isdigit())
        self.assertEqual(self.api.ok("GET", f"{path}/s1"), made)
        self.api.ok("POST", SESSIONS.format(ns="other"), session("s2"))

        listed = self.api.ok("GET", path)
        self.assertEqual(listed["kind"], "AgenticSessionList")
        self.assertEqual([i["metadata"]["name"] for i in listed["items"]], ["s1"])
        self.assertEqual(listed["items"][0]["kind"], "AgenticSession")  # custom resources keep it
        self.assertGreaterEqual(int(listed["metadata"]["resourceVersion"]),
                                int(m["resourceVersion"]))
        everywhere = self.api.ok("GET", "/apis/vteam.ambient-code/v1alpha1/agenticsessions")
        self.assertEqual(sorted(i["metadata"]["name"] for i in everywhere["items"]), ["s1", "s2"])

        dup = self.assertStatus(self.api.call("POST", path, session("s1")), 409, "AlreadyExists")
        self.assertEqual(dup["message"], 'agenticsessions.vteam.ambient-code "s1" already exists')
        missing = self.assertStatus(self.api.call("GET", f"{path}/nope"), 404, "NotFound")
        self.assertEqual(missing["message"], 'agenticsessions.vteam.ambient-code "nope" not found')
        self.assertEqual(missing["details"], {"name": "nope", "group": "vteam.ambient-code",
                                              "kind": "agenticsessions"})
        self.assertStatus(self.api.call("POST", path, session("Bad_Name")), 422, "Invalid")
        self.assertStatus(self.api.call("GET", "/apis/nope/v1/things"), 404, "NotFound")

        gen = self.api.ok("POST", path, {"apiVersion": "vteam.ambient-code/v1alpha1",
                                         "kind": "AgenticSession",
                                         "metadata": {"generateName": "run-"}, "spec": {}})
        self.assertRegex(gen["metadata"]["name"], r"^run-[a-z0-9]{5}$")

    def test_built_in_kinds_secrets_and_their_lists(self):
        secret = self.api.ok("POST", SECRETS.format(ns="team"), {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"},
            "stringData": {"API_KEY": "sk-1"}, "data": {"OTHER": base64.b64encode(b"x").decode()}})
        self.assertNotIn("stringData", secret)
        self.assertEqual(secret["data"],
                         {"OTHER": "eA==", "API_KEY": base64.b64encode(b"sk-1").decode()})
        self.assertEqual(secret["type"], "Opaque")
        listed = self.api.ok("GET", SECRETS.format(ns="team"))
        self.assertEqual(listed["kind"], "SecretList")
        self.assertNotIn("kind", listed["items"][0])   # as Kubernetes lists built-in kinds
        self.assertStatus(self.api.call("POST", SECRETS.format(ns="team"), {
            "metadata": {"name": "bad"}, "data": {"K": "not base64!"}}), 400, "BadRequest")
        self.assertStatus(self.api.call("POST", JOBS.format(ns="team"), {
            "metadata": {"name": "j"}, "spec": {"template": {"spec": {
                "restartPolicy": "Always", "containers": [{"name": "c", "image": "x"}]}}}}),
            422, "Invalid")

    def test_update_conflicts_on_a_stale_resource_version(self):
        path = CONFIGMAPS.format(ns="team")
        first = self.api.ok("POST", path, configmap("c"))
        changed = dict(first, data={"k": "v2"})
        second = self.api.ok("PUT", f"{path}/c", changed)
        self.assertGreater(int(second["metadata"]["resourceVersion"]),
                           int(first["metadata"]["resourceVersion"]))
        stale = dict(first, data={"k": "v3"})   # carries the first resourceVersion
        body = self.assertStatus(self.api.call("PUT", f"{path}/c", stale), 409, "Conflict")
        self.assertIn("the object has been modified", body["message"])
        self.assertEqual(self.api.ok("GET", f"{path}/c")["data"], {"k": "v2"})
        # without a resourceVersion (or an empty one) an update is unconditional
        for rv in (None, ""):
            body = configmap("c")
            body["data"] = {"k": f"rv {rv!r}"}
            if rv is not None:
                body["metadata"]["resourceVersion"] = rv
            self.assertEqual(self.api.ok("PUT", f"{path}/c", body)["data"], body["data"])
        # an update that changes nothing changes no resourceVersion
        cur = self.api.ok("GET", f"{path}/c")
        self.assertEqual(self.api.ok("PUT", f"{path}/c", cur)["metadata"]["resourceVersion"],
                         cur["metadata"]["resourceVersion"])
        self.assertStatus(self.api.call("PUT", f"{path}/other", configmap("c")), 400, "BadRequest")
        self.assertStatus(self.api.call("PUT", f"{path}/nope", configmap("nope")), 404, "NotFound")

    def test_the_status_subresource_is_isolated(self):
        path = SESSIONS.format(ns="team")
        s = session("s", {"prompt": "a"})
        s["status"] = {"phase": "Completed"}
        made = self.api.ok("POST", path, s)
        self.assertNotIn("status", made)   # create cannot set status

        st = self.api.ok("PUT", f"{path}/s/status", dict(made, spec={"prompt": "ignored"},
                                                         status={"phase": "Running"}))
        self.assertEqual((st["spec"]["prompt"], st["status"]["phase"]), ("a", "Running"))
        self.assertEqual(st["metadata"]["generation"], 1)
        self.assertGreater(int(st["metadata"]["resourceVersion"]),
                           int(made["metadata"]["resourceVersion"]))

        main = self.api.ok("PUT", f"{path}/s", dict(st, spec={"prompt": "b"},
                                                    status={"phase": "Failed"}))
        self.assertEqual((main["spec"]["prompt"], main["status"]["phase"]), ("b", "Running"))
        self.assertEqual(main["metadata"]["generation"], 2)

        labelled = self.api.ok("PATCH", f"{path}/s", {"metadata": {"labels": {"x": "y"}},
                                                     "status": {"phase": "Failed"}},
                               ctype="application/merge-patch+json")
        self.assertEqual(labelled["metadata"]["generation"], 2)   # no spec change
        self.assertEqual(labelled["status"]["phase"], "Running")
        patched = self.api.ok("PATCH", f"{path}/s/status", {"status": {"cost": 0.5},
                                                           "spec": {"prompt": "no"}},
                              ctype="application/merge-patch+json")
        self.assertEqual(patched["status"], {"phase": "Running", "cost": 0.5})
        self.assertEqual(patched["spec"]["prompt"], "b")
        self.assertStatus(self.api.call("PUT", f"{path}/s/status", dict(
            patched, metadata=dict(patched["metadata"], resourceVersion="1"))), 409, "Conflict")

    def test_merge_patch(self):
        path = CONFIGMAPS.format(ns="team")
        self.api.ok("POST", path, {"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}},
                                   "data": {"k": "v", "gone": "x"}})
        out = self.api.ok("PATCH", f"{path}/c", {"metadata": {"labels": {"a": None, "c": "3"}},
                                                 "data": {"gone": None, "new": "n"}},
                          ctype="application/merge-patch+json")
        self.assertEqual(out["metadata"]["labels"], {"b": "2", "c": "3"})
        self.assertEqual(out["data"], {"k": "v", "new": "n"})
        # strategic merge patch: a merge patch on built-in kinds; custom resources refuse it
        out = self.api.ok("PATCH", f"{path}/c", {"data": {"k": "w"}},
                          ctype="application/strategic-merge-patch+json")
        self.assertEqual(out["data"]["k"], "w")
        self.api.ok("POST", SESSIONS.format(ns="team"), session("s"))
        self.assertStatus(self.api.call("PATCH", SESSIONS.format(ns="team") + "/s", {"spec": {}},
                                        ctype="application/strategic-merge-patch+json"),
                          415, "UnsupportedMediaType")
        self.assertStatus(self.api.call("PATCH", f"{path}/c", [{"op": "remove", "path": "/data"}],
                                        ctype="application/json-patch+json"),
                          415, "UnsupportedMediaType")
        self.assertStatus(self.api.call("PATCH", f"{path}/c",
                                        {"metadata": {"resourceVersion": "1"}, "data": {"k": "z"}},
                                        ctype="application/merge-patch+json"), 409, "Conflict")
        self.assertStatus(self.api.call("PATCH", f"{path}/nope", {"data": {}},
                                        ctype="application/merge-patch+json"), 404, "NotFound")

    def test_sessions_are_pruned_defaulted_and_validated_by_the_crd(self):
        path = SESSIONS.format(ns="team")
        s = session("s", {"prompt": "p", "unknownSpecField": 1, "timeout": 5,
                          "repos": [{"url": "u", "extra": True}]})
        s["topLevelJunk"] = {"a": 1}
        s["metadata"]["notMeta"] = "x"
        made = self.api.ok("POST", path, s)
        self.assertEqual(made["spec"], {"prompt": "p", "timeout": 5, "repos": [{"url": "u"}],
                                        "interactive": False})   # pruned, and the default
        self.assertNotIn("topLevelJunk", made)
        self.assertNotIn("notMeta", made["metadata"])
        st = self.api.ok("PUT", f"{path}/s/status", dict(made, status={
            "phase": "Running", "turns": 3, "usage": {"input_tokens": 5, "new_kind": 7},
            "traceId": None}))
        # undeclared status fields are dropped, a preserve-unknown-fields object keeps its own
        self.assertEqual(st["status"], {"phase": "Running",
                                        "usage": {"input_tokens": 5, "new_kind": 7}})

        def rejected(status, field):
            body = self.assertStatus(self.api.call("PUT", f"{path}/s/status",
                                                   dict(st, status=status)), 422, "Invalid")
            self.assertTrue(body["message"].startswith(
                'AgenticSession.vteam.ambient-code "s" is invalid: ' + field), body["message"])
            self.assertEqual(body["details"]["causes"][0]["field"], field)
            return body["message"]

        self.assertIn('Unsupported value: "Done": supported values: "Pending", "Running"',
                      rejected({"phase": "Done"}, "status.phase"))
        self.assertIn("should be greater than or equal to 0", rejected({"cost": -1}, "status.cost"))
        self.assertIn("should match '^[0-9a-f]{32}$'",
                      rejected({"traceId": "xyz"}, "status.traceId"))
        self.assertIn("must be of type integer", rejected({"usage": {"input_tokens": "many"}},
                                                          "status.usage.input_tokens"))
        rejected({"startTime": "yesterday"}, "status.startTime")
        bad = session("t", {"timeout": 0, "repos": [{}]})
        body = self.assertStatus(self.api.call("POST", path, bad), 422, "Invalid")
        self.assertIn("spec.timeout: Invalid value: 0", body["message"])
        self.assertIn("spec.repos[0].url: Required value", body["message"])

        # without a CRD nothing is pruned
        plain = Api(self.start_server(token=TOKEN).url)
        kept = plain.ok("POST", path, s)
        self.assertEqual(kept["spec"]["unknownSpecField"], 1)
        self.assertEqual(kept["topLevelJunk"], {"a": 1})

    def test_label_and_field_selectors(self):
        path = CONFIGMAPS.format(ns="team")
        for name, labels in (("a1", {"a": "1"}), ("a1b2", {"a": "1", "b": "2"}),
                             ("a3", {"a": "3"}), ("none", None)):
            self.api.ok("POST", path, configmap(name, labels))
        self.api.ok("POST", CONFIGMAPS.format(ns="other"), configmap("far", {"a": "1"}))

        def names(p=path, **q):
            return [i["metadata"]["name"] for i in self.api.ok("GET", p, query=q)["items"]]

        self.assertEqual(names(labelSelector="a=1"), ["a1", "a1b2"])
        self.assertEqual(names(labelSelector="a==1,b=2"), ["a1b2"])
        self.assertEqual(names(labelSelector="a!=1"), ["a3", "none"])
        self.assertEqual(names(labelSelector="b"), ["a1b2"])
        self.assertEqual(names(labelSelector="!a"), ["none"])
        self.assertEqual(names(labelSelector="a in (1,3),!b"), ["a1", "a3"])
        self.assertEqual(names(labelSelector="a notin (1)"), ["a3", "none"])
        self.assertEqual(names(fieldSelector="metadata.name=a3"), ["a3"])
        self.assertEqual(names(fieldSelector="metadata.name!=a3", labelSelector="a"),
                         ["a1", "a1b2"])
        self.assertEqual(names("/api/v1/configmaps", labelSelector="a=1"), ["far", "a1", "a1b2"])
        for bad in ({"labelSelector": "a=(1"}, {"fieldSelector": "spec.x=1"}):
            self.assertStatus(self.api.call("GET", path, query=bad), 400, "BadRequest")
        page = self.api.ok("GET", path, query={"limit": 3})
        self.assertEqual(len(page["items"]), 3)
        self.assertEqual(page["metadata"]["remainingItemCount"], 1)
        rest = self.api.ok("GET", path,
                           query={"limit": 3, "continue": page["metadata"]["continue"]})
        self.assertEqual([i["metadata"]["name"] for i in rest["items"]], ["none"])
        gone = self.api.ok("DELETE", path, query={"labelSelector": "a=1"})
        self.assertEqual([i["metadata"]["name"] for i in gone["items"]], ["a1", "a1b2"])
        self.assertEqual(names(), ["a3", "none"])

    def test_auth_and_injected_failures(self):
        path = CONFIGMAPS.format(ns="team")
        self.assertStatus(self.api.call("GET", path, token=""), 401, "Unauthorized")
        self.assertStatus(self.api.call("GET", path, token="wrong"), 401, "Unauthorized")
        self.assertEqual(self.api.ok("GET", "/healthz"), "ok")
        self.assertEqual(self.api.ok("GET", "/version")["major"], "1")
        self.api.ok("POST", "/_test/fail", token="",
                    query={"path": "/configmaps$", "status": 500, "count": 2})
        for _ in range(2):
            self.assertStatus(self.api.call("POST", path, configmap("c")), 500, "InternalError")
        self.api.ok("POST", path, configmap("c"))
        self.api.ok("POST", "/_test/fail", query={"path": "/configmaps/c$", "status": 503})
        self.assertStatus(self.api.call("GET", f"{path}/c"), 503, "ServiceUnavailable")

        self.api.ok("POST", "/_test/conflict", query={"path": "/configmaps/c$", "count": 2})
        cur = self.api.ok("GET", f"{path}/c")
        self.assertStatus(self.api.call("PUT", f"{path}/c", cur), 409, "Conflict")
        self.assertStatus(self.api.call("PATCH", f"{path}/c", {"data": {"k": "x"}},
                                        ctype="application/merge-patch+json"), 409, "Conflict")
        self.assertEqual(self.api.ok("PUT", f"{path}/c", dict(cur, data={"k": "new"}))["data"],
                         {"k": "new"})

        reqs = self.api.ok("GET", "/_test/requests", token="")
        posts = [r for r in reqs if r["method"] == "POST" and r["path"] == path]
        self.assertEqual([r["status"] for r in posts], [500, 500, 201])
        self.assertEqual(posts[0]["body"]["metadata"]["name"], "c")
        self.assertEqual(posts[0]["contentType"], "application/json")
        self.assertIn("Python-urllib", posts[0]["agent"])
        self.assertIn({"method": "POST", "path": "/_test/fail",
                       "query": "path=%2Fconfigmaps%24&status=500&count=2"},
                      [{k: r[k] for k in ("method", "path", "query")} for r in reqs])


class WatchTests(StandIn):
    def test_a_watch_from_a_resource_version_replays_the_history_then_goes_live(self):
        path = CONFIGMAPS.format(ns="team")
        a = self.api.ok("POST", path, configmap("a"))
        since = a["metadata"]["resourceVersion"]
        self.api.ok("PUT", f"{path}/a", dict(a, data={"k": "2"}))
        self.api.ok("POST", path, configmap("b"))
        self.api.ok("DELETE", f"{path}/a")
        self.api.ok("POST", CONFIGMAPS.format(ns="other"), configmap("elsewhere"))
        w = self.watch(path, resourceVersion=since)
        got = [w.next() for _ in range(3)]
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in got],
                         [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")])
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in got]
        self.assertEqual(rvs, sorted(rvs))
        self.assertGreater(rvs[0], int(since))
        self.assertEqual(got[0]["object"]["kind"], "ConfigMap")
        self.api.ok("POST", path, configmap("c"))
        live = w.next()
        self.assertEqual((live["type"], live["object"]["metadata"]["name"]), ("ADDED", "c"))

        fresh = self.watch(path)   # no resourceVersion: what exists, as ADDED
        self.assertEqual(sorted(fresh.next()["object"]["metadata"]["name"] for _ in range(2)),
                         ["b", "c"])
        everywhere = self.watch("/api/v1/configmaps", resourceVersion="0")
        self.assertEqual(sorted(everywhere.next()["object"]["metadata"]["name"] for _ in range(3)),
                         ["b", "c", "elsewhere"])

    def test_a_watch_with_a_selector_sees_objects_enter_and_leave(self):
        path = CONFIGMAPS.format(ns="team")
        c = self.api.ok("POST", path, configmap("c", {"app": "x"}))
        w = self.watch(path, labelSelector="app=x",
                       resourceVersion=c["metadata"]["resourceVersion"])
        self.api.ok("POST", path, configmap("other", {"app": "y"}))
        out = self.api.ok("PATCH", f"{path}/c", {"metadata": {"labels": {"app": "y"}}},
                          ctype="application/merge-patch+json")
        ev = w.next()
        self.assertEqual(ev["type"], "DELETED")
        gone = ev["object"]["metadata"]
        self.assertEqual(gone["labels"], {"app": "x"})   # its last selected state
        self.assertEqual(gone["resourceVersion"], out["metadata"]["resourceVersion"])
        self.api.ok("PATCH", f"{path}/other", {"metadata": {"labels": {"app": "x"}}},
                    ctype="application/merge-patch+json")
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "other"))

    def test_an_expired_resource_version_gets_410(self):
        path = CONFIGMAPS.format(ns="team")
        first = self.api.ok("POST", path, configmap("a"))
        self.api.ok("POST", path, configmap("b"))
        self.api.ok("POST", "/_test/compact", token="")
        w = self.watch(path, resourceVersion=first["metadata"]["resourceVersion"])
        ev = w.next()
        self.assertEqual(ev["type"], "ERROR")
        self.assertEqual({k: ev["object"][k] for k in ("kind", "status", "reason", "code")},
                         {"kind": "Status", "status": "Failure", "reason": "Expired", "code": 410})
        self.assertIn("too old resource version", ev["object"]["message"])
        self.assertEqual(w.end(), "clean")
        # the current resourceVersion is still good after a compaction
        listed = self.api.ok("GET", path)
        w2 = self.watch(path, resourceVersion=listed["metadata"]["resourceVersion"])
        self.api.ok("POST", path, configmap("c"))
        self.assertEqual(w2.next()["type"], "ADDED")

        # a bounded history forgets the oldest changes
        small = Api(self.start_server(token=TOKEN, history=3).url)
        made = [small.ok("POST", path, configmap(f"n{i}")) for i in range(5)]
        old = small.watch(path, resourceVersion=made[0]["metadata"]["resourceVersion"])
        self.addCleanup(old.close)
        self.assertEqual(old.next()["object"]["code"], 410)
        recent = small.watch(path, resourceVersion=made[2]["metadata"]["resourceVersion"])
        self.addCleanup(recent.close)
        self.assertEqual([recent.next()["object"]["metadata"]["name"] for _ in range(2)],
                         ["n3", "n4"])

    def test_drop_watches_cuts_every_stream(self):
        w1 = self.watch(CONFIGMAPS.format(ns="team"))
        w2 = self.watch("/apis/batch/v1/jobs", allowWatchBookmarks=True)
        self.api.ok("POST", CONFIGMAPS.format(ns="team"), configmap("c"))
        w1.next()
        self.assertEqual(self.api.ok("POST", "/_test/drop-watches", token="")["dropped"], 2)
        self.assertEqual(w1.end(), "cut")
        self.assertEqual(w2.end(), "cut")

    def test_bookmarks_and_timeout(self):
        path = CONFIGMAPS.format(ns="team")
        self.api.ok("POST", path, configmap("c"))
        w = self.watch(path, allowWatchBookmarks=True, resourceVersion="0")
        self.assertEqual(w.next()["type"], "ADDED")
        self.api.ok("POST", SECRETS.format(ns="team"), {"metadata": {"name": "s"}})
        rv = self.api.ok("GET", path)["metadata"]["resourceVersion"]
        bookmark = w.until(lambda e: e["type"] == "BOOKMARK"
                           and e["object"]["metadata"]["resourceVersion"] == rv)[-1]
        self.assertEqual(bookmark["object"], {"kind": "ConfigMap", "apiVersion": "v1",
                                              "metadata": {"resourceVersion": rv}})
        listing = self.watch(path, sendInitialEvents=True, allowWatchBookmarks=True,
                             resourceVersionMatch="NotOlderThan")
        self.assertEqual(listing.next()["object"]["metadata"]["name"], "c")
        end = listing.next()
        self.assertEqual((end["type"], end["object"]["metadata"]["annotations"]),
                         ("BOOKMARK", {"k8s.io/initial-events-end": "true"}))
        # without allowWatchBookmarks: none; timeoutSeconds ends the stream cleanly
        quiet = self.watch(path, resourceVersion=rv, timeoutSeconds=1)
        self.assertEqual(quiet.end(timeout=10), "clean")


class GarbageCollectionTests(StandIn):
    options = {"no_kubelet": True}

    def chain(self, name):
        """A session owning a Job owning a ConfigMap."""
        s = self.api.ok("POST", SESSIONS.format(ns="team"), session(name))
        j = self.api.ok("POST", JOBS.format(ns="team"), job(f"{name}-job", "true", owner=s))
        cm = configmap(f"{name}-cm")
        cm["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job",
                                              "name": j["metadata"]["name"],
                                              "uid": j["metadata"]["uid"]}]
        c = self.api.ok("POST", CONFIGMAPS.format(ns="team"), cm)
        return s, j, c

    def test_deleting_an_owner_deletes_its_dependents_transitively(self):
        s, j, c = self.chain("bg")
        w = self.watch("/apis/batch/v1/jobs", resourceVersion=c["metadata"]["resourceVersion"])
        deleted = self.api.ok("DELETE", SESSIONS.format(ns="team") + "/bg")
        self.assertEqual(deleted["metadata"]["uid"], s["metadata"]["uid"])
        self.assertEqual(w.next()["type"], "DELETED")
        self.api.wait("the ConfigMap collected",
                      lambda: self.api.get(CONFIGMAPS.format(ns="team") + "/bg-cm") is None)
        self.assertEqual(self.api.ok("GET", JOBS.format(ns="team"))["items"], [])
        self.assertEqual(self.api.ok("GET", PODS.format(ns="team"))["items"], [])   # --no-kubelet

    def test_orphan_and_the_jobs_default(self):
        s, j, c = self.chain("or")
        self.api.ok("DELETE", SESSIONS.format(ns="team") + "/or", {"propagationPolicy": "Orphan"})
        kept = self.api.ok("GET", JOBS.format(ns="team") + "/or-job")
        self.assertNotIn("ownerReferences", kept["metadata"])
        status, body, headers = self.api.call("DELETE", JOBS.format(ns="team") + "/or-job")
        self.assertEqual(status, 200)
        # batch/v1 Jobs are orphaning by default, with Kubernetes' warning
        self.assertIn("child pods are preserved by default", headers["Warning"])
        cm = self.api.ok("GET", CONFIGMAPS.format(ns="team") + "/or-cm")
        self.assertNotIn("ownerReferences", cm["metadata"])

    def test_foreground_waits_for_dependents_and_finalizers_hold_an_object(self):
        s, j, c = self.chain("fg")
        self.api.ok("PATCH", CONFIGMAPS.format(ns="team") + "/fg-cm",
                    {"metadata": {"finalizers": ["test/hold"]}},
                    ctype="application/merge-patch+json")
        out = self.api.ok("DELETE", SESSIONS.format(ns="team") + "/fg",
                          query={"propagationPolicy": "Foreground"})
        self.assertIn("deletionTimestamp", out["metadata"])
        self.assertEqual(out["metadata"]["finalizers"], ["foregroundDeletion"])
        held = self.api.ok("GET", CONFIGMAPS.format(ns="team") + "/fg-cm")
        self.assertIn("deletionTimestamp", held["metadata"])
        self.assertIsNotNone(self.api.get(SESSIONS.format(ns="team") + "/fg"))   # waits
        self.assertIsNotNone(self.api.get(JOBS.format(ns="team") + "/fg-job"))
        held["metadata"]["finalizers"] = []
        self.api.ok("PUT", CONFIGMAPS.format(ns="team") + "/fg-cm", held)
        self.api.wait("the whole chain gone", lambda: all(self.api.get(p) is None for p in (
            CONFIGMAPS.format(ns="team") + "/fg-cm", JOBS.format(ns="team") + "/fg-job",
            SESSIONS.format(ns="team") + "/fg")))

    def test_an_owner_that_never_existed_gets_its_dependent_collected(self):
        cm = configmap("dangling")
        cm["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap",
                                              "name": "ghost", "uid": "no-such-uid"}]
        self.api.ok("POST", CONFIGMAPS.format(ns="team"), cm)
        self.api.wait("the dangling ConfigMap collected",
                      lambda: self.api.get(CONFIGMAPS.format(ns="team") + "/dangling") is None)

    def test_no_kubelet_means_jobs_are_only_stored(self):
        self.api.ok("POST", JOBS.format(ns="team"), job("lonely", "true"))
        # absence can only be seen after a while: the controller had time to act
        time.sleep(0.5)
        self.assertEqual(self.api.ok("GET", JOBS.format(ns="team") + "/lonely")["status"], {})
        self.assertEqual(self.api.ok("GET", PODS.format(ns="team"))["items"], [])


class KubeletTests(StandIn):
    def job_pod(self, ns, job_name, predicate=lambda p: True):
        """The Pod of a Job once predicate(pod) holds."""
        def find():
            items = self.api.ok("GET", PODS.format(ns=ns),
                                query={"labelSelector": f"job-name={job_name}"})["items"]
            return items and predicate(items[0]) and items[0]
        return self.api.wait(f"a pod of {job_name} such that {predicate}", find)

    def finished(self, ns, name):
        return self.api.wait(f"Job {name} finished", lambda: (
            lambda j: j if job_condition(j) in ("Complete", "Failed") else None)(
                self.api.ok("GET", JOBS.format(ns=ns) + f"/{name}")))

    def test_a_job_runs_its_pod_to_completion(self):
        made = self.api.ok("POST", JOBS.format(ns="team"), job(
            "ok", 'echo to-stdout; echo to-stderr >&2; '
                  'printf \'{"turns":2}\' > "$TERMINATION_LOG"'))
        w = self.watch(PODS.format(ns="team"), resourceVersion=made["metadata"]["resourceVersion"])
        j = self.finished("team", "ok")
        st = j["status"]
        self.assertEqual(job_condition(j), "Complete")
        self.assertEqual((st["succeeded"], st.get("active")), (1, None))
        self.assertLessEqual(st["startTime"], st["completionTime"])

        pod = self.job_pod("team", "ok")
        pm = pod["metadata"]
        self.assertRegex(pm["name"], r"^ok-[a-z0-9]{5}$")
        self.assertEqual({k: pm["labels"].get(k) for k in ("app", "job-name", "controller-uid")},
                         {"app": "t", "job-name": "ok", "controller-uid": j["metadata"]["uid"]})
        self.assertEqual(pm["ownerReferences"][0]["uid"], j["metadata"]["uid"])
        self.assertTrue(pm["ownerReferences"][0]["controller"])
        ps = pod["status"]
        self.assertEqual(ps["phase"], "Succeeded")
        term = ps["containerStatuses"][0]["state"]["terminated"]
        self.assertEqual((term["exitCode"], term["reason"], term["message"]),
                         (0, "Completed", '{"turns":2}'))
        self.assertEqual({c["type"] for c in ps["conditions"]},
                         {"PodScheduled", "Initialized", "ContainersReady", "Ready"})
        status, log, _ = self.api.call("GET", PODS.format(ns="team") + f"/{pm['name']}/log")
        self.assertEqual((status, log), (200, "to-stdout\nto-stderr\n"))
        self.assertEqual(self.api.ok("GET", PODS.format(ns="team") + f"/{pm['name']}/log",
                                     query={"tailLines": 1}), "to-stderr\n")
        self.assertEqual(self.api.ok("GET", PODS.format(ns="team") + f"/{pm['name']}/log",
                                     query={"limitBytes": 2}), "to")

        phases = [e["object"]["status"].get("phase") for e in
                  w.until(lambda e: e["object"]["status"].get("phase") == "Succeeded")]
        self.assertEqual([p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p],
                         ["Pending", "Running", "Succeeded"])

    def test_the_job_controller_batches_pod_changes_as_kubernetes_does(self):
        api = Api(self.start_server(token=TOKEN, image={SH: ["/bin/sh", "-c"]},
                                    job_batch_period=1.0).url)
        made = api.ok("POST", JOBS.format(ns="team"), job("batched", "true"))
        since = made["metadata"]["resourceVersion"]
        pods, jobs = api.watch(PODS.format(ns="team"), resourceVersion=since), \
            api.watch(JOBS.format(ns="team"), resourceVersion=since)
        self.addCleanup(pods.close)
        self.addCleanup(jobs.close)
        started = jobs.until(lambda e: "startTime" in e["object"]["status"])[-1]
        self.assertEqual(started["object"]["status"]["active"], 1)   # a new Job: at once
        pods.until(lambda e: e["object"]["status"].get("phase") == "Succeeded")
        pod_done = time.monotonic()
        jobs.until(lambda e: job_condition(e["object"]) == "Complete")
        self.assertGreaterEqual(time.monotonic() - pod_done, 0.8)

    def test_an_exit_code_fails_the_job_and_the_termination_message(self):
        self.api.ok("POST", JOBS.format(ns="team"), job(
            "big", 'head -c 5000 /dev/zero | tr "\\0" x > "$TERMINATION_LOG"; exit 3'))
        self.api.ok("POST", JOBS.format(ns="team"), job(
            "logs", 'i=0; while [ $i -lt 100 ]; do echo line$i; i=$((i+1)); done; exit 4',
            terminationMessagePolicy="FallbackToLogsOnError"))
        j = self.finished("team", "big")
        self.assertEqual(job_condition(j), "Failed")
        failed = next(c for c in j["status"]["conditions"] if c["type"] == "Failed")
        self.assertEqual((failed["reason"], failed["message"]),
                         ("BackoffLimitExceeded", "Job has reached the specified backoff limit"))
        self.assertEqual(j["status"]["failed"], 1)
        self.assertNotIn("completionTime", j["status"])
        term = terminated(self.job_pod("team", "big"))
        self.assertEqual((term["exitCode"], term["reason"]), (3, "Error"))
        self.assertEqual(term["message"], "x" * 4096)

        self.api.ok("POST", JOBS.format(ns="team"),
                    job("noexec", "true", command=["/no/such/tool"]))
        self.assertEqual(job_condition(self.finished("team", "noexec")), "Failed")
        term = terminated(self.job_pod("team", "noexec"))
        self.assertEqual((term["exitCode"], term["reason"]), (128, "StartError"))
        self.assertIn("/no/such/tool", term["message"])

        self.finished("team", "logs")
        pod = self.job_pod("team", "logs")
        self.assertEqual(pod["status"]["phase"], "Failed")
        msg = terminated(pod)["message"]
        self.assertEqual(msg.splitlines(), [f"line{i}" for i in range(20, 100)])

    def test_the_environment_is_resolved_as_kubernetes_does(self):
        ns = "envs"
        self.api.ok("POST", SECRETS.format(ns=ns), {"metadata": {"name": "s"},
                                                    "stringData": {"A": "secret-a", "KEY": "k"}})
        self.api.ok("POST", CONFIGMAPS.format(ns=ns), {"metadata": {"name": "cm"},
                                                       "data": {"A": "cm-a", "C": "cm-c"}})
        os.environ["KUBE_STANDIN_HOST_ONLY"] = "leak"
        self.addCleanup(os.environ.pop, "KUBE_STANDIN_HOST_ONLY", None)
        spec = job("env", "replaced below")
        c = spec["spec"]["template"]["spec"]["containers"][0]
        c["args"] = ['env > "$TERMINATION_LOG"; echo "arg=$1"', "sh", "$(C)-$$(C)-$(UNDEFINED)"]
        c["envFrom"] = [{"secretRef": {"name": "s"}, "prefix": "S_"},
                        {"configMapRef": {"name": "cm"}},
                        {"configMapRef": {"name": "missing", "optional": True}},
                        {"secretRef": {"name": "missing", "optional": True}}]
        c["env"] = [{"name": "OVERRIDDEN", "value": "env"},
                    {"name": "EXPANDED", "value": "$(A)/$(S_KEY)/$$(A)/$(NOPE)"},
                    {"name": "A", "value": "env-a"},
                    {"name": "OPT", "valueFrom": {"secretKeyRef": {
                        "name": "nope", "key": "K", "optional": True}}},
                    {"name": "OPTKEY", "valueFrom": {"configMapKeyRef": {
                        "name": "cm", "key": "nope", "optional": True}}},
                    {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {
                        "name": "cm", "key": "C"}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {
                        "fieldPath": "metadata.labels['app']"}}},
                    {"name": "SA", "valueFrom": {"fieldRef": {
                        "fieldPath": "spec.serviceAccountName"}}}]
        spec["spec"]["template"]["spec"]["serviceAccountName"] = "runner-sa"
        self.api.ok("POST", JOBS.format(ns=ns), spec)
        self.assertEqual(job_condition(self.finished(ns, "env")), "Complete")
        pod = self.job_pod(ns, "env")
        text = terminated(pod)["message"]
        env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        env.pop("PWD", None)      # the shell's own
        env.pop("SHLVL", None)
        home, tlog = env.pop("HOME"), env.pop("TERMINATION_LOG")
        self.assertTrue(os.path.isdir(home) and os.path.isfile(tlog), (home, tlog))
        self.assertEqual(env, {
            "PATH": os.environ["PATH"], "HOSTNAME": pod["metadata"]["name"],
            "IMAGE_VAR": "from-image", "OVERRIDDEN": "env",
            "S_A": "secret-a", "S_KEY": "k", "A": "env-a", "C": "cm-c",
            "EXPANDED": "cm-a/k/$(A)/$(NOPE)", "FROM_CM": "cm-c",
            "POD": pod["metadata"]["name"], "NS": ns, "UID": pod["metadata"]["uid"],
            "APP": "t", "SA": "runner-sa"})
        log = self.api.ok("GET", PODS.format(ns=ns) + f"/{pod['metadata']['name']}/log")
        self.assertEqual(log, "arg=cm-c-$(C)-$(UNDEFINED)\n")

    def test_a_missing_required_reference_is_a_create_container_config_error(self):
        ns = "cfg"
        missing = job("missing", "echo ran")
        missing["spec"]["template"]["spec"]["containers"][0]["env"] = [
            {"name": "K", "valueFrom": {"secretKeyRef": {"name": "later", "key": "K"}}}]
        nokey = job("nokey", "echo ran")
        nokey_c = nokey["spec"]["template"]["spec"]["containers"][0]
        nokey_c["envFrom"] = [{"configMapRef": {"name": "cm"}}]
        nokey_c["env"] = [
            {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "absent"}}}]
        self.api.ok("POST", CONFIGMAPS.format(ns=ns), configmap("cm"))
        for spec in (missing, nokey):
            self.api.ok("POST", JOBS.format(ns=ns), spec)

        def config_error(p):
            return waiting(p).get("reason") == "CreateContainerConfigError"

        pod = self.job_pod(ns, "missing", config_error)
        self.assertEqual(waiting(pod)["message"], 'secret "later" not found')
        self.assertEqual(pod["status"]["phase"], "Pending")
        pod = self.job_pod(ns, "nokey", config_error)
        self.assertEqual(waiting(pod)["message"], f"couldn't find key absent in ConfigMap {ns}/cm")
        self.assertEqual(self.api.ok("GET", JOBS.format(ns=ns) + "/missing")["status"]["active"], 1)
        # the container starts once the Secret is there
        self.api.ok("POST", SECRETS.format(ns=ns),
                    {"metadata": {"name": "later"}, "stringData": {"K": "v"}})
        self.assertEqual(job_condition(self.finished(ns, "missing")), "Complete")

    def test_an_unknown_image_waits_in_image_pull_back_off(self):
        made = self.api.ok("POST", JOBS.format(ns="team"),
                           job("nopull", "true", image="registry.example/nope:1"))
        w = self.watch(PODS.format(ns="team"), resourceVersion=made["metadata"]["resourceVersion"])
        reasons = [waiting(e["object"]).get("reason") for e in
                   w.until(lambda e: waiting(e["object"]).get("reason") == "ImagePullBackOff")]
        self.assertEqual([r for r in reasons if r in ("ErrImagePull", "ImagePullBackOff")],
                         ["ErrImagePull", "ImagePullBackOff"])
        pod = self.job_pod("team", "nopull")
        self.assertIn('"registry.example/nope:1"', waiting(pod)["message"])
        self.assertEqual(pod["status"]["phase"], "Pending")
        j = self.api.ok("GET", JOBS.format(ns="team") + "/nopull")
        self.assertEqual((j["status"].get("active"), job_condition(j)), (1, None))
        status, body, _ = self.api.call(
            "GET", PODS.format(ns="team") + f"/{pod['metadata']['name']}/log")
        self.assertEqual(status, 400)
        self.assertIn("is waiting to start: ImagePullBackOff", body["message"])

    def test_init_containers_volumes_and_the_working_directory(self):
        spec = job("vol", 'cat /work/from-init; pwd; echo "$WORKSPACE_PATH"')
        tspec = spec["spec"]["template"]["spec"]
        c = tspec["containers"][0]
        c["args"] = ['cat "$1"; pwd > "$TERMINATION_LOG"', "sh", "/work/from-init"]
        c["workingDir"] = "/work/sub"
        c["volumeMounts"] = [{"name": "ws", "mountPath": "/work"}]
        tspec["initContainers"] = [{"name": "init", "image": SH, "command": ["/bin/sh", "-c"],
                                    "args": ['mkdir -p "$WS/sub"; '
                                             'echo hello-from-init > "$WS/from-init"'],
                                    "env": [{"name": "WS", "value": "/work"}],
                                    "volumeMounts": [{"name": "ws", "mountPath": "/work"}]}]
        tspec["volumes"] = [{"name": "ws", "emptyDir": {}}]
        self.api.ok("POST", JOBS.format(ns="team"), spec)
        self.assertEqual(job_condition(self.finished("team", "vol")), "Complete")
        pod = self.job_pod("team", "vol")
        init = pod["status"]["initContainerStatuses"][0]["state"]["terminated"]
        self.assertEqual((init["exitCode"], init["reason"]), (0, "Completed"))
        cwd = terminated(pod)["message"].strip()
        self.assertTrue(cwd.endswith("/sub") and Path(cwd, "..", "from-init").is_file(), cwd)
        log = self.api.ok("GET", PODS.format(ns="team") + f"/{pod['metadata']['name']}/log")
        self.assertEqual(log, "hello-from-init\n")
        init_log = self.api.ok("GET", PODS.format(ns="team") + f"/{pod['metadata']['name']}/log",
                               query={"container": "init"})
        self.assertEqual(init_log, "")

    def test_several_containers_and_a_followed_log(self):
        gate = self.tmp / "gate"
        spec = job("two", f'echo first; while [ ! -e {gate} ]; do sleep 0.05; done; echo second')
        spec["spec"]["template"]["spec"]["containers"].append(
            {"name": "side", "image": SH, "args": ["echo from-side"]})
        self.api.ok("POST", JOBS.format(ns="team"), spec)
        pod = self.job_pod("team", "two", lambda p: p["status"].get("phase") == "Running")
        logs = PODS.format(ns="team") + f"/{pod['metadata']['name']}/log"
        body = self.assertStatus(self.api.call("GET", logs), 400, "BadRequest")
        self.assertIn("a container name must be specified", body["message"])
        url = urllib.parse.urlsplit(self.api.url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=WAIT_S)
        self.addCleanup(conn.close)
        conn.request("GET", logs + "?container=main&follow=true",
                     headers={"Authorization": f"Bearer {TOKEN}"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.read1(100), b"first\n")
        gate.touch()
        rest = b""
        while True:
            data = resp.read1(100)
            if not data:
                break
            rest += data
        self.assertEqual(rest, b"second\n")   # and the stream ended with the container
        self.assertEqual(job_condition(self.finished("team", "two")), "Complete")
        self.assertEqual(self.api.ok("GET", logs, query={"container": "side"}), "from-side\n")

    def test_deleting_the_owner_sigterms_the_running_process(self):
        marker = self.tmp / "got-term"
        s = self.api.ok("POST", SESSIONS.format(ns="team"), session("owner"))
        spec = job("owned", f'trap \'echo term > {marker}; exit 0\' TERM; echo up; '
                   'while :; do sleep 0.05; done', owner=s)
        spec["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
        made = self.api.ok("POST", JOBS.format(ns="team"), spec)
        w = self.watch(PODS.format(ns="team"), resourceVersion=made["metadata"]["resourceVersion"])
        pod = self.job_pod("team", "owned", lambda p: p["status"].get("phase") == "Running")
        name = pod["metadata"]["name"]
        self.api.wait("the script is up", lambda: self.api.ok(
            "GET", PODS.format(ns="team") + f"/{name}/log") == "up\n")
        self.api.ok("DELETE", SESSIONS.format(ns="team") + "/owner")
        events = w.until(lambda e: e["type"] == "DELETED")
        self.assertTrue(any(e["type"] == "MODIFIED"
                            and "deletionTimestamp" in e["object"]["metadata"] for e in events))
        last = events[-1]["object"]
        self.assertEqual(last["metadata"]["deletionGracePeriodSeconds"], 30)
        self.assertEqual(marker.read_text(), "term\n")
        self.assertIsNone(self.api.get(JOBS.format(ns="team") + "/owned"))

    def test_what_ignores_sigterm_is_killed_after_the_grace_period(self):
        script = 'trap "" TERM; sleep 300 & echo $! > "$TERMINATION_LOG"; wait'
        self.api.ok("POST", JOBS.format(ns="team"), job("stubborn", script))
        self.api.ok("POST", JOBS.format(ns="team"),
                    job("leaver", 'sleep 300 & echo $! > "$TERMINATION_LOG"'))
        pod = self.job_pod("team", "stubborn", lambda p: p["status"].get("phase") == "Running")
        pid = int(pod["status"]["containerStatuses"][0]["containerID"].split("//")[1])
        self.api.wait("the stubborn script's child runs", lambda: len(self.children(pid)) == 1)
        child = self.children(pid)[0]
        t0 = time.monotonic()
        self.api.ok("DELETE", PODS.format(ns="team") + f"/{pod['metadata']['name']}",
                    {"gracePeriodSeconds": 1})
        self.api.wait("the pod gone", lambda: self.api.get(
            PODS.format(ns="team") + f"/{pod['metadata']['name']}") is None)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.assertFalse(alive(pid) or alive(child), (pid, child))
        # the Job whose Pod was deleted before it ended has failed
        self.assertEqual(job_condition(self.finished("team", "stubborn")), "Failed")
        # a container's leftovers die with its main process
        self.finished("team", "leaver")
        left = int(terminated(self.job_pod("team", "leaver"))["message"])
        self.api.wait("the background sleep killed", lambda: not alive(left))

    @staticmethod
    def children(pid):
        try:
            return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class ProgramTests(unittest.TestCase):
    def test_the_program_announces_its_address_and_stops_its_pods_on_sigterm(self):
        with tempfile.TemporaryDirectory(prefix="kube-apiserver-prog-") as tmp:
            cmd = [sys.executable, str(HERE / "kube_apiserver.py"), "--port", "0", "--token", TOKEN,
                   "--image", f'{SH}=["/bin/sh", "-c"]', "--image-env", f"{SH}=X=1",
                   "--workdir", str(Path(tmp, "work"))]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL)
            self.addCleanup(lambda: proc.poll() is None and stop_process(proc, signal.SIGKILL))
            line = read_line(proc.stdout, WAIT_S).decode()
            m = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+))\n", line)
            self.assertTrue(m, line)
            api = Api(m.group(1))
            api.ok("POST", JOBS.format(ns="p"), job("sleeper", 'echo "$X"; exec sleep 300'))
            pod = api.wait("the sleeper running", lambda: next(
                (p for p in api.ok("GET", PODS.format(ns="p"))["items"]
                 if p["status"].get("phase") == "Running"), None))
            pid = int(pod["status"]["containerStatuses"][0]["containerID"].split("//")[1])
            self.assertTrue(alive(pid))
            self.assertEqual(stop_process(proc, signal.SIGTERM, timeout=WAIT_S), 0)
            err = proc.stderr.read().decode()
            proc.stderr.close()
            self.assertIn("stopping", err)
            deadline = time.monotonic() + WAIT_S
            while alive(pid):
                self.assertLess(time.monotonic(), deadline, f"pid {pid} survived the stand-in")
                time.sleep(0.05)
            self.assertEqual(Path(tmp, "work").is_dir(), True)   # a given --workdir is kept

    def test_bad_options_exit_2(self):
        r = subprocess.run([sys.executable, str(HERE / "kube_apiserver.py"), "--image", "noequals"],
                           capture_output=True, text=True, timeout=WAIT_S)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("NAME=ARGV", r.stderr)


if __name__ == "__main__":
    unittest.main()
