"""The operator's Kubernetes client (src/operator/kube.c, kubeconfig.c) against stand-in API
servers on 127.0.0.1.

kube_probe (tests/support/kube_probe.c) opens the client the way ccoperator does and prints
what each request or watch returned. The servers are Python's http.server behind TLS, with a
CA, a server and a client certificate made by the openssl CLI: they check the bearer token
or the client certificate, record every request, and stream watches chunk by chunk, pausing
where a test needs the client to have read part of a line. Covered: kubeconfigs with -data
fields and with (relative) file paths, KUBECONFIG lists, contexts, the service account
(CO_SERVICEACCOUNT_DIR), a token rotated between two requests on one kept-alive connection,
the refusals (exec and auth-provider users, a missing context, a wrong CA), Status messages,
the time and size bounds, and watches: odd chunk splits, a 410, the server ending the stream,
an undecodable or over-long line, two watches and an extra fd in one wait, no busy loop.
Run by ctest with KUBE_PROBE set.
"""

import base64
import json
import os
import queue
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(os.environ.get("KUBE_PROBE") or REPO / "build" / "tests" / "kube_probe")
TIMEOUT = 20  # any one wait; generous for a loaded 2-core machine
GATE_TIMEOUT = 20  # a server thread waiting for the test


def openssl(cwd, *args):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class PKI:
    """Two CAs ("ca", and "other-ca" that signed nothing), a server certificate for
    127.0.0.1 and a client certificate (CN ccoperator-test), all signed by "ca"."""

    def __init__(self, d):
        self.dir = Path(d)
        for ca in ("ca", "other-ca"):
            openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                    "-subj", f"/CN=test {ca}", "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self._leaf("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth")
        self._leaf("client", "ccoperator-test", "extendedKeyUsage=clientAuth")

    def _leaf(self, name, cn, ext):
        (self.dir / f"{name}.ext").write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n" + ext + "\n")
        openssl(self.dir, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        openssl(self.dir, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")

    def path(self, name):
        return str(self.dir / name)

    def b64(self, name):
        return base64.b64encode((self.dir / name).read_bytes()).decode()


def status_body(code, message, reason="Failure"):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_any(self):
        api = self.server.api
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        cn = None
        if isinstance(self.connection, ssl.SSLSocket):
            cert = self.connection.getpeercert()
            for rdn in (cert or {}).get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        cn = v
        rec = {"method": self.command, "path": self.path, "body": body, "cn": cn,
               "port": self.client_address[1],
               "headers": {k.lower(): v for k, v in self.headers.items()}}
        with api.lock:
            api.requests.append(rec)
        token = api.token
        if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
            rec["answer"] = 401
            return self.send_json(401, status_body(401, "Unauthorized", "Unauthorized"))
        rec["answer"] = 200
        route = api.routes.get(self.path.split("?")[0])
        if route:
            return route(self)
        self.send_json(200, {"kind": "Echo", "method": self.command, "path": self.path,
                             "body": json.loads(body) if body else None})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_any

    def send_json(self, code, obj, raw=None):
        data = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class ApiServer:
    """A stand-in API server on 127.0.0.1: HTTPS with the PKI's server certificate (or plain
    HTTP), the token it accepts (None: any), optionally a client certificate signed by the
    CA, every request recorded, answers from routes (path -> fn(handler)) or an echo."""

    def __init__(self, pki, token=None, client_cert=False, tls=True):
        self.token = token
        self.requests = []
        self.routes = {}
        self.tls_errors = []
        self.lock = threading.Lock()
        self.gates = []  # every gate made, opened at close so no thread stays blocked
        ctx = None
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(pki.path("server.pem"), pki.path("server.key"))
            if client_cert:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(pki.path("ca.pem"))
        api = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that went away mid-answer is part of several tests

            def finish_request(self, request, client_address):
                request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                request.settimeout(GATE_TIMEOUT + 10)
                if ctx is not None:
                    try:
                        request = ctx.wrap_socket(request, server_side=True)
                    except (ssl.SSLError, OSError) as e:
                        api.tls_errors.append(str(e))
                        return
                try:
                    self.RequestHandlerClass(request, client_address, self)
                finally:
                    request.close()

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.api = self
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def port(self):
        return self.httpd.server_address[1]

    def gate(self):
        g = threading.Event()
        self.gates.append(g)
        return g

    def close(self):
        for g in self.gates:
            g.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def answered(self):
        with self.lock:
            return list(self.requests)


def await_true(cond, timeout=TIMEOUT, what="a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} not met within {timeout}s")


def yaml_text(obj, indent=0):
    """Block-style YAML for kubeconfigs (strings double-quoted the JSON way, which YAML
    reads the same)."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{k}:\n{yaml_text(v, indent + 2)}")
            else:
                out.append(f"{pad}{k}: {scalar(v)}\n")
    else:
        for v in obj:
            if isinstance(v, dict) and v:
                inner = yaml_text(v, indent + 2)
                out.append(f"{pad}- {inner[indent + 2:]}")
            else:
                out.append(f"{pad}- {scalar(v)}\n")
    return "".join(out)


def scalar(v):
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return "{}" if isinstance(v, dict) else "[]"
    return json.dumps(v)


def write_kubeconfig(path, server, user=None, cluster=None, namespace=None, context="test",
                     current="test", more_contexts=()):
    cl = {"server": server}
    cl.update(cluster or {})
    ctx = {"cluster": "c1", "user": "u1"}
    if namespace:
        ctx["namespace"] = namespace
    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": "c1", "cluster": cl}],
           "contexts": [{"name": context, "context": ctx}, *more_contexts],
           "current-context": current,
           "users": [{"name": "u1", "user": user or {}}]}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml_text(doc))
    return str(path)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBECONFIG",
                        "CO_SERVICEACCOUNT_DIR") and not k.lower().endswith("_proxy")}
    env["HOME"] = extra.pop("HOME", "/nonexistent-home")
    env.update(extra)
    return env


def run_probe(*args, env=None, cwd=None, timeout=TIMEOUT):
    """Runs kube_probe to its end; returns (exit code, {FIRST_WORD: rest of line}, stdout)."""
    p = subprocess.run([str(PROBE), *args], env=env or clean_env(), cwd=cwd, capture_output=True,
                       text=True, timeout=timeout)
    fields = {}
    for line in p.stdout.splitlines():
        word, _, rest = line.partition(" ")
        fields.setdefault(word, rest)
    return p.returncode, fields, p.stdout + p.stderr


class Probe:
    """kube_probe running alongside the test, its stdout read line by line on a thread so
    that every wait is bounded."""

    def __init__(self, *args, env=None):
        self.proc = subprocess.Popen([str(PROBE), *args], env=env or clean_env(),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next(self, timeout=TIMEOUT):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line from kube_probe within {timeout}s; so far {self.seen}")
        if line is None:
            raise AssertionError(f"kube_probe ended; it said {self.seen}")
        self.seen.append(line)
        return line

    def expect(self, prefix, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            line = self.next(max(0.01, deadline - time.monotonic()))
            if line.startswith(prefix):
                return line

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout=TIMEOUT):
        if self.proc.stdin:
            self.proc.stdin.close()
        return self.proc.wait(timeout)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f:
                try:
                    f.close()
                except OSError:
                    pass


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not PROBE.exists():
            raise unittest.SkipTest(f"kube_probe not built ({PROBE}); set KUBE_PROBE")
        cls.tmp = tempfile.mkdtemp(prefix="test_kube_")
        cls.pki = PKI(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(dir=self.tmp))
        self.servers = []
        self.probes = []

    def tearDown(self):
        for p in self.probes:
            p.close()
        for s in self.servers:
            s.close()

    def server(self, **kw):
        s = ApiServer(self.pki, **kw)
        self.servers.append(s)
        return s

    def probe(self, *args, **kw):
        p = Probe(*args, **kw)
        self.probes.append(p)
        return p

    def token_kubeconfig(self, srv, token="s3cret", **kw):
        return write_kubeconfig(self.dir / "config", srv.url, user={"token": token},
                                cluster={"certificate-authority-data": self.pki.b64("ca.pem")},
                                **kw)


class KubeconfigTest(Base):
    def test_token_and_ca_data(self):
        srv = self.server(token="s3cret")
        kc = self.token_kubeconfig(srv, namespace="team-a")
        rc, f, out = run_probe("--kubeconfig", kc, "info")
        self.assertEqual(rc, 0, out)
        self.assertEqual(f["SERVER"], srv.url)
        self.assertEqual(f["NAMESPACE"], "team-a")

        rc, f, out = run_probe("--kubeconfig", kc, "request", "GET",
                               "/api/v1/namespaces/team-a/pods?limit=1")
        self.assertEqual((rc, f["STATUS"]), (0, "200"), out)
        self.assertEqual(json.loads(f["BODY"])["path"], "/api/v1/namespaces/team-a/pods?limit=1")
        h = srv.answered()[-1]["headers"]
        self.assertEqual(h["authorization"], "Bearer s3cret")
        self.assertEqual(h["accept"], "application/json")
        self.assertRegex(h["user-agent"], r"^ccoperator/\S+$")

        rc, f, out = run_probe("--kubeconfig", kc, "--content-type", "application/merge-patch+json",
                               "request", "PATCH", "/apis/x/v1/things/a",
                               '{"status":{"phase":"Running"}}')
        self.assertEqual(f["STATUS"], "200", out)
        rec = srv.answered()[-1]
        self.assertEqual(rec["method"], "PATCH")
        self.assertEqual(rec["headers"]["content-type"], "application/merge-patch+json")
        self.assertEqual(json.loads(rec["body"]), {"status": {"phase": "Running"}})

        rc, f, out = run_probe("--kubeconfig", kc, "request", "POST", "/api/v1/x", '{"a":1}')
        self.assertEqual(srv.answered()[-1]["headers"]["content-type"], "application/json")

        # The server refusing the token: a response (exit 0), with the Status message.
        kc2 = self.token_kubeconfig(srv, token="wrong")
        rc, f, out = run_probe("--kubeconfig", kc2, "request", "GET", "/api/v1/pods")
        self.assertEqual((rc, f["STATUS"], f["ERR"]), (0, "401", "Unauthorized"), out)
        self.assertEqual(json.loads(f["BODY"])["code"], 401)

    def test_client_certificate_files_relative_to_the_kubeconfig(self):
        srv = self.server(client_cert=True)
        certs = self.dir / "kube" / "certs"
        certs.mkdir(parents=True)
        for name in ("ca.pem", "client.pem", "client.key"):
            shutil.copy(self.pki.path(name), certs / name)
        kc = write_kubeconfig(self.dir / "kube" / "config", srv.url,
                              cluster={"certificate-authority": "certs/ca.pem"},
                              user={"client-certificate": "certs/client.pem",
                                    "client-key": "certs/client.key"})
        # Run from / so that only the kubeconfig's directory can resolve the paths.
        rc, f, out = run_probe("--kubeconfig", kc, "request", "GET", "/version", cwd="/")
        self.assertEqual(f.get("STATUS"), "200", out)
        self.assertEqual(srv.answered()[-1]["cn"], "ccoperator-test")

        # Without the certificate the server refuses the handshake: no response.
        kc = write_kubeconfig(self.dir / "kube" / "config2", srv.url,
                              cluster={"certificate-authority": "certs/ca.pem"})
        rc, f, out = run_probe("--kubeconfig", kc, "request", "GET", "/version", cwd="/")
        self.assertEqual((rc, f["STATUS"]), (1, "0"), out)
        self.assertTrue(f["ERR"].startswith("GET https://127.0.0.1:"), out)

    def test_client_certificate_data(self):
        srv = self.server(client_cert=True)
        kc = write_kubeconfig(self.dir / "config", srv.url,
                              cluster={"certificate-authority-data": self.pki.b64("ca.pem")},
                              user={"client-certificate-data": self.pki.b64("client.pem"),
                                    "client-key-data": self.pki.b64("client.key")})
        rc, f, out = run_probe("--kubeconfig", kc, "request", "GET", "/version")
        self.assertEqual(f.get("STATUS"), "200", out)
        self.assertEqual(srv.answered()[-1]["cn"], "ccoperator-test")

    def test_token_file_and_insecure_skip_verify(self):
        srv = self.server(token="from-file")
        (self.dir / "tok").write_text("from-file\n")
        kc = write_kubeconfig(self.dir / "config", srv.url,
                              cluster={"insecure-skip-tls-verify": True},
                              user={"tokenFile": "tok"})
        rc, f, out = run_probe("--kubeconfig", kc, "request", "GET", "/version", cwd="/")
        self.assertEqual(f.get("STATUS"), "200", out)

    def test_kubeconfig_list_and_context(self):
        srv = self.server(token="s3cret")
        other = {"name": "other", "context": {"cluster": "c1", "user": "u1", "namespace": "ns-other"}}
        kc1 = write_kubeconfig(self.dir / "a" / "config", srv.url, user={"token": "s3cret"},
                               cluster={"certificate-authority-data": self.pki.b64("ca.pem")},
                               namespace="first", more_contexts=[other])
        kc2 = write_kubeconfig(self.dir / "b" / "config", srv.url, namespace="second")
        env = clean_env(KUBECONFIG=f"{self.dir}/missing:{kc1}:{kc2}")
        rc, f, out = run_probe("info", env=env)
        self.assertEqual(f.get("NAMESPACE"), "first", out)
        rc, f, out = run_probe("--context", "other", "info", env=env)
        self.assertEqual(f.get("NAMESPACE"), "ns-other", out)
        # A context without a namespace: "default".
        kc3 = write_kubeconfig(self.dir / "c" / "config", srv.url)
        rc, f, out = run_probe("--kubeconfig", kc3, "info")
        self.assertEqual(f.get("NAMESPACE"), "default", out)
        # ~/.kube/config when nothing else names one.
        home = self.dir / "home"
        write_kubeconfig(home / ".kube" / "config", srv.url, namespace="from-home")
        rc, f, out = run_probe("info", env=clean_env(HOME=str(home)))
        self.assertEqual(f.get("NAMESPACE"), "from-home", out)

        rc, f, out = run_probe("info", env=clean_env(KUBECONFIG=f"{self.dir}/x:{self.dir}/y"))
        self.assertEqual(rc, 2, out)
        self.assertIn("KUBECONFIG=", f["OPEN_ERROR"])
        self.assertIn("none of its files exists", f["OPEN_ERROR"])
        rc, f, out = run_probe("info")
        self.assertEqual(rc, 2, out)
        self.assertIn("no Kubernetes configuration", f["OPEN_ERROR"])

    def test_refusals_name_the_file_and_field(self):
        srv = self.server()
        cases = [
            ({"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}},
             ['users["u1"].user.exec', "exec credential plugin is not supported",
              "use a user with a token", "client certificate"]),
            ({"auth-provider": {"name": "gcp"}},
             ['users["u1"].user.auth-provider', "auth-provider plugin is not supported", "token"]),
            ({"client-certificate-data": self.pki.b64("client.pem")},
             ['users["u1"].user has a client certificate without its key']),
            ({"client-key-data": "not base64!"},
             ['users["u1"].user.client-key-data is not base64']),
            ({"client-key-data": base64.b64encode(b"just text").decode()},
             ["client-key-data is not base64 of PEM"]),
            ({"tokenFile": "no-such-token"},
             ['users["u1"].user.tokenFile', str(self.dir / "no-such-token"), "No such file"]),
        ]
        for user, fragments in cases:
            with self.subTest(user=list(user)):
                kc = write_kubeconfig(self.dir / "config", srv.url, user=user)
                rc, f, out = run_probe("--kubeconfig", kc, "info")
                self.assertEqual(rc, 2, out)
                self.assertTrue(f["OPEN_ERROR"].startswith(kc + ": "), out)
                for frag in fragments:
                    self.assertIn(frag, f["OPEN_ERROR"])
                self.assertEqual(out.count("\n"), 1, "one line")

        kc = write_kubeconfig(self.dir / "config", srv.url)
        rc, f, out = run_probe("--kubeconfig", kc, "--context", "nope", "info")
        self.assertEqual(rc, 2, out)
        self.assertEqual(f["OPEN_ERROR"], f'{kc}: contexts has no entry named "nope"')
        kc = write_kubeconfig(self.dir / "config", srv.url,
                              cluster={"certificate-authority": "../missing-ca.pem"})
        rc, f, out = run_probe("--kubeconfig", kc, "info")
        self.assertIn('clusters["c1"].cluster.certificate-authority', f["OPEN_ERROR"])
        self.assertIn(f"{self.dir}/../missing-ca.pem", f["OPEN_ERROR"])
        kc = write_kubeconfig(self.dir / "config", "127.0.0.1:6443")
        rc, f, out = run_probe("--kubeconfig", kc, "info")
        self.assertIn('clusters["c1"].cluster.server 127.0.0.1:6443 is not an http:// or https:// URL',
                      f["OPEN_ERROR"])
        (self.dir / "bad.yaml").write_text("clusters:\n- name: a\n  name: b\n")
        rc, f, out = run_probe("--kubeconfig", str(self.dir / "bad.yaml"), "info")
        self.assertEqual(f["OPEN_ERROR"], f'{self.dir}/bad.yaml: line 3:3: duplicate key "name"')

    def test_wrong_ca_is_a_tls_error(self):
        srv = self.server(token="s3cret")
        kc = write_kubeconfig(self.dir / "config", srv.url, user={"token": "s3cret"},
                              cluster={"certificate-authority": self.pki.path("other-ca.pem")})
        rc, f, out = run_probe("--kubeconfig", kc, "request", "GET", "/version")
        self.assertEqual((rc, f["STATUS"]), (1, "0"), out)
        self.assertRegex(f["ERR"], rf"^GET {srv.url}/version: SSL certificate problem: ")
        self.assertEqual(srv.answered(), [])
        await_true(lambda: srv.tls_errors, what="the server's failed handshake")

    def test_status_message_in_err_shortened(self):
        srv = self.server(token="s3cret")
        long_msg = "admission webhook denied the request: " + "x" * 1000
        srv.routes["/long"] = lambda h: h.send_json(422, status_body(422, long_msg, "Invalid"))
        srv.routes["/gone"] = lambda h: h.send_json(
            404, status_body(404, 'jobs.batch "a-job" not found'))
        srv.routes["/text"] = lambda h: h.send_json(503, None, raw=b"upstream down")
        kc = self.token_kubeconfig(srv)
        rc, f, out = run_probe("--kubeconfig", kc, "request", "DELETE", "/gone")
        self.assertEqual((rc, f["STATUS"], f["ERR"]), (0, "404", 'jobs.batch "a-job" not found'), out)
        rc, f, out = run_probe("--kubeconfig", kc, "request", "POST", "/long", "{}")
        self.assertEqual(f["STATUS"], "422")
        self.assertTrue(long_msg.startswith(f["ERR"][:-3]) and f["ERR"].endswith("..."), f["ERR"])
        self.assertLess(len(f["ERR"]), 256)
        self.assertEqual(json.loads(f["BODY"])["message"], long_msg)  # the body itself is whole
        rc, f, out = run_probe("--kubeconfig", kc, "request", "GET", "/text")
        self.assertEqual((f["STATUS"], f["BODY"], f["ERR"]),
                         ("503", "null", "HTTP 503 from GET /text"))

    def test_request_timeout(self):
        srv = self.server(token="s3cret")
        gate = srv.gate()
        srv.routes["/slow"] = lambda h: (gate.wait(GATE_TIMEOUT), h.send_json(200, {}))
        kc = self.token_kubeconfig(srv)
        t0 = time.monotonic()
        rc, f, out = run_probe("--kubeconfig", kc, "--timeout-ms", "500", "request", "GET", "/slow")
        elapsed = time.monotonic() - t0
        gate.set()
        self.assertEqual((rc, f["STATUS"]), (1, "0"), out)
        self.assertIn("timed out", f["ERR"])
        self.assertLess(elapsed, 8)

    def test_plain_http_and_body_bound(self):
        srv = self.server(tls=False)
        big = b"[" + b"1," * (33 << 20) + b"1]"  # 66 MiB: over the 64 MiB bound
        ok = b"[" + b"1," * (1 << 20) + b"1]"
        srv.routes["/big"] = lambda h: h.send_json(200, None, raw=big)
        srv.routes["/ok"] = lambda h: h.send_json(200, None, raw=ok)
        kc = write_kubeconfig(self.dir / "config", srv.url)
        rc, f, out = run_probe("--kubeconfig", kc, "request", "GET", "/ok")
        self.assertEqual(f["STATUS"], "200")
        self.assertEqual(len(json.loads(f["BODY"])), (1 << 20) + 1)
        rc, f, out = run_probe("--kubeconfig", kc, "request", "GET", "/big", timeout=60)
        self.assertEqual((rc, f["STATUS"]), (1, "0"), out[:300])
        self.assertIn("the response is larger than 64 MiB", f["ERR"])


class ServiceAccountTest(Base):
    def sa_dir(self, token="sa-token-1", namespace="ops"):
        d = self.dir / "sa"
        d.mkdir()
        (d / "token").write_text(token)
        shutil.copy(self.pki.path("ca.pem"), d / "ca.crt")
        if namespace is not None:
            (d / "namespace").write_text(namespace)
        return d

    def test_in_cluster(self):
        srv = self.server(token="sa-token-1")
        env = clean_env(KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(srv.port),
                        CO_SERVICEACCOUNT_DIR=str(self.sa_dir()))
        rc, f, out = run_probe("info", env=env)
        self.assertEqual((f.get("SERVER"), f.get("NAMESPACE")), (srv.url, "ops"), out)
        rc, f, out = run_probe("request", "GET", "/api/v1/namespaces/ops/pods", env=env)
        self.assertEqual(f.get("STATUS"), "200", out)
        self.assertEqual(srv.answered()[-1]["headers"]["authorization"], "Bearer sa-token-1")
        # A context makes sense only with a kubeconfig.
        rc, f, out = run_probe("--context", "x", "info", env=env)
        self.assertIn("in the cluster the service account is used", f["OPEN_ERROR"])

    def test_ipv6_host_and_default_namespace(self):
        env = clean_env(KUBERNETES_SERVICE_HOST="fd00::1", KUBERNETES_SERVICE_PORT="443",
                        CO_SERVICEACCOUNT_DIR=str(self.sa_dir(namespace=None)))
        rc, f, out = run_probe("info", env=env)
        self.assertEqual((f.get("SERVER"), f.get("NAMESPACE")),
                         ("https://[fd00::1]:443", "default"), out)

    def test_missing_token_or_port(self):
        d = self.sa_dir()
        (d / "token").unlink()
        env = clean_env(KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT="443",
                        CO_SERVICEACCOUNT_DIR=str(d))
        rc, f, out = run_probe("info", env=env)
        self.assertEqual(rc, 2, out)
        self.assertIn(f"the service account's token {d}/token: No such file", f["OPEN_ERROR"])
        env.pop("KUBERNETES_SERVICE_PORT")
        rc, f, out = run_probe("info", env=env)
        self.assertIn("KUBERNETES_SERVICE_PORT (unset) is not a port", f["OPEN_ERROR"])

    def test_rotated_token_reread_on_401_same_connection(self):
        srv = self.server(token="sa-token-1")
        d = self.sa_dir()
        env = clean_env(KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(srv.port),
                        CO_SERVICEACCOUNT_DIR=str(d))
        p = self.probe("requests", env=env)
        p.send("GET /api/v1/namespaces/ops/pods")
        self.assertEqual(p.expect("STATUS"), "STATUS 200")
        p.expect("DONE")
        # The kubelet's way: a new file swapped in; the server takes only the new token now.
        (d / "token.new").write_text("sa-token-2")
        os.replace(d / "token.new", d / "token")
        srv.token = "sa-token-2"
        p.send("GET /api/v1/namespaces/ops/pods")
        self.assertEqual(p.expect("STATUS"), "STATUS 200")
        p.expect("DONE")
        self.assertEqual(p.finish(), 0)
        seen = [(r["headers"]["authorization"], r["answer"]) for r in srv.answered()]
        self.assertEqual(seen, [("Bearer sa-token-1", 200), ("Bearer sa-token-1", 401),
                                ("Bearer sa-token-2", 200)])
        # One connection for all three: the request handle kept it alive.
        self.assertEqual(len({r["port"] for r in srv.answered()}), 1)


def event(kind, name, **extra):
    obj = {"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
           "metadata": {"name": name, "resourceVersion": str(len(name))}}
    obj.update(extra)
    return {"type": kind, "object": obj}


class WatchTest(Base):
    PATH = "/apis/vteam.ambient-code/v1alpha1/namespaces/ops/agenticsessions"

    def kc(self, srv):
        return self.token_kubeconfig(srv)

    def test_events_split_over_chunks_and_several_in_one(self):
        srv = self.server(token="s3cret")
        events = [event("ADDED", "one"), event("MODIFIED", "two", spec={"prompt": "déjà vu " * 20}),
                  event("ADDED", "three"), event("ADDED", "four", spec={"prompt": "日本語"}),
                  event("DELETED", "five"), event("BOOKMARK", "six")]
        lines = [json.dumps(e, ensure_ascii=False).encode() + b"\n" for e in events]
        cut4 = lines[3].index("本".encode()) + 1  # inside a multi-byte character
        g1, g3 = srv.gate(), srv.gate()

        def route(h):
            h.start_chunked()
            h.chunk(lines[0] + lines[1][:7])  # a whole event and a piece of the next
            g1.wait(GATE_TIMEOUT)  # the client printed event 1: it holds part of event 2
            h.chunk(lines[1][7:15])
            h.chunk(lines[1][15:] + lines[2] + lines[3][:cut4])
            g3.wait(GATE_TIMEOUT)
            h.chunk(lines[3][cut4:-1])  # the line without its newline
            h.chunk(b"\n")
            h.chunk(b"\n")  # a blank line between events
            h.chunk(lines[4] + lines[5])  # two whole events in one chunk
            g1.wait(GATE_TIMEOUT)

        srv.routes[self.PATH] = route
        p = self.probe("--kubeconfig", self.kc(srv), "watch",
                       self.PATH + "?watch=1&resourceVersion=5", "6")
        got = [json.loads(p.expect("EVENT 0 ")[8:])]
        g1.set()
        for _ in range(2):
            got.append(json.loads(p.expect("EVENT 0 ")[8:]))
        g3.set()
        for _ in range(3):
            got.append(json.loads(p.expect("EVENT 0 ")[8:]))
        self.assertEqual(got, events)
        self.assertEqual(p.finish(), 0)
        h = srv.answered()[0]["headers"]
        self.assertEqual((h["accept"], h["authorization"]), ("application/json", "Bearer s3cret"))
        self.assertEqual(srv.answered()[0]["path"], self.PATH + "?watch=1&resourceVersion=5")

    def test_410_status_ends_the_watch(self):
        srv = self.server(token="s3cret")
        srv.routes[self.PATH] = lambda h: h.send_json(
            410, status_body(410, "too old resource version: 5 (9)", "Expired"))
        p = self.probe("--kubeconfig", self.kc(srv), "watch", self.PATH + "?watch=1", "5")
        self.assertEqual(p.expect("ENDED"), "ENDED 0 410 too old resource version: 5 (9)")
        self.assertEqual(p.finish(), 0)

    def test_server_ends_the_stream(self):
        srv = self.server(token="s3cret")

        def route(h):
            h.start_chunked()
            h.chunk(json.dumps(event("ADDED", "a")).encode() + b"\n")
            h.chunk(json.dumps(event("ADDED", "b")).encode())  # the last without a newline
            h.end_chunks()

        srv.routes[self.PATH] = route
        p = self.probe("--kubeconfig", self.kc(srv), "watch", self.PATH, "10")
        self.assertIn('"name":"a"', p.expect("EVENT 0"))
        self.assertIn('"name":"b"', p.expect("EVENT 0"))
        self.assertEqual(p.expect("ENDED"), "ENDED 0 200 ")
        self.assertEqual(p.finish(), 0)

    def test_broken_streams_end_the_watch(self):
        srv = self.server(token="s3cret")

        def undecodable(h):
            h.start_chunked()
            h.chunk(json.dumps(event("ADDED", "a")).encode() + b"\n{\"type\": \"ADD")
            h.chunk(b"ED\", oops}\n" + json.dumps(event("ADDED", "never")).encode() + b"\n")
            h.end_chunks()

        def cut(h):
            h.start_chunked()
            h.wfile.write(b"400\r\n" + json.dumps(event("ADDED", "a")).encode())
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)

        def long_line(h):
            h.start_chunked()
            h.chunk(json.dumps(event("ADDED", "a")).encode() + b"\n")
            piece = b" " * (1 << 20)
            for _ in range(17):  # 17 MiB without a newline
                try:
                    h.chunk(piece)
                except OSError:
                    return

        srv.routes["/undecodable"] = undecodable
        srv.routes["/cut"] = cut
        srv.routes["/long"] = long_line
        endings = (("/undecodable",
                    r'^ENDED 0 200 an undecodable watch line \(.*\): \{"type": "ADDED", oops\}$'),
                   ("/cut", r"^ENDED 0 200 \S.*"),  # curl's words for a cut transfer
                   ("/long", r"^ENDED 0 200 a watch line is longer than 16 MiB$"))
        for path, ending in endings:
            with self.subTest(path=path):
                p = self.probe("--kubeconfig", self.kc(srv), "watch", path, "10")
                if path != "/cut":  # there, the first event never got its newline
                    self.assertIn('"name":"a"', p.expect("EVENT 0"))
                self.assertRegex(p.expect("ENDED"), ending)
                self.assertEqual(p.finish(), 0)
                self.assertNotIn("never", "\n".join(p.seen))

    def test_a_full_queue_pauses_without_losing_events(self):
        srv = self.server(token="s3cret")
        count = 12000  # three times the queue's bound, read in one go after the stall
        g = srv.gate()

        def route(h):
            h.start_chunked()
            h.chunk(json.dumps(event("ADDED", "first")).encode() + b"\n")
            g.wait(GATE_TIMEOUT)
            batch = b"".join(b'{"type":"ADDED","object":{"n":%d}}\n' % i for i in range(count))
            for i in range(0, len(batch), 65536):
                h.chunk(batch[i:i + 65536])
            g.wait(GATE_TIMEOUT)

        srv.routes[self.PATH] = route
        p = self.probe("--kubeconfig", self.kc(srv), "--stall-ms", "1500", "watch", self.PATH,
                       str(count + 1))
        p.expect("EVENT 0")
        g.set()
        for i in range(count):
            self.assertEqual(p.next(), 'EVENT 0 {"type":"ADDED","object":{"n":%d}}' % i)
        self.assertEqual(p.finish(), 0)

    def test_two_watches_one_wait_extra_fd_and_no_busy_loop(self):
        srv = self.server(token="s3cret")
        gates = {"/w0": srv.gate(), "/w1": srv.gate()}

        def route(h):
            name = h.path
            h.start_chunked()
            gates[name].wait(GATE_TIMEOUT)
            h.chunk(json.dumps(event("ADDED", name[1:])).encode() + b"\n")
            gates[name].wait(GATE_TIMEOUT)

        srv.routes["/w0"] = srv.routes["/w1"] = route
        p = self.probe("--kubeconfig", self.kc(srv), "--wakes", "--wait-ms", "30000",
                       "--max-seconds", "60", "watch", "/w0", "2", "/w1")
        await_true(lambda: len(srv.answered()) == 2, what="both watches open")
        # Idle: both streams open, nothing coming. A loop that spins burns a CPU here.
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu():
            fields = Path(f"/proc/{p.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks

        c0, t0 = cpu(), time.monotonic()
        time.sleep(1.5)  # the measurement window, not a synchronisation
        used, wall = cpu() - c0, time.monotonic() - t0
        self.assertLess(used, 0.25 * wall, f"{used:.2f}s of CPU in {wall:.2f}s idle")
        # The extra fd wakes the wait long before its 30 s timeout.
        t0 = time.monotonic()
        p.send("ping")
        self.assertEqual(p.expect("WOKE", timeout=10), "WOKE ping")
        self.assertLess(time.monotonic() - t0, 10)
        # Events from either watch come out of the one wait.
        gates["/w1"].set()
        self.assertRegex(p.expect("EVENT"), r'^EVENT 1 .*"name":"w1"')
        gates["/w0"].set()
        self.assertRegex(p.expect("EVENT"), r'^EVENT 0 .*"name":"w0"')
        self.assertEqual(p.finish(), 0)


if __name__ == "__main__":
    unittest.main()
