#!/usr/bin/env python3
"""The scale benchmark's driver (hack/bench-scale.sh starts the cluster and runs this).

Loads a control plane with fake Ready nodes, Deployments, StatefulSets, a DaemonSet, ConfigMaps,
Secrets and events; plays the kubelet of the fake nodes (pods Running, then crash loops); starts
kpulse fresh at each size and records time to ready, VmRSS and VmHWM; at the largest size its idle
CPU, the API writes while idle and the alert latency of two crash bursts. Prints a table, the
figures as one JSON object on the last stdout line, and (with --doc) rewrites the scale section of
docs/benchmarks.md. Progress goes to stderr. Python standard library only.
"""

import argparse
import concurrent.futures
import datetime
import http.client
import http.server
import json
import os
import queue
import random
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

NAMESPACES = 50
NODE_PREFIX = "bench-node-"
DAEMON_NODES = 5
STATEFULSETS = 3
STS_REPLICAS = 3
DEPLOY_SIZES = [1, 2, 3, 5, 8, 10, 10, 12, 15, 20, 24]  # cycled: replicas per Deployment
KPULSE_NS = "kpulse"
BURST_NS = "burst"
IMAGE = "registry.k8s.io/pause:3.10"
T0 = time.monotonic()


def log(*parts):
    print(f"bench-scale [{time.monotonic() - T0:7.1f}s]:", *parts, file=sys.stderr, flush=True)


def now_rfc3339(fraction=False):
    t = datetime.datetime.now(datetime.timezone.utc)
    if fraction:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# The API client: one keep-alive HTTPS connection per thread, admin client certificate.


class Api:
    def __init__(self, cluster_dir):
        text = open(os.path.join(cluster_dir, "admin.kubeconfig")).read()
        url = urllib.parse.urlparse(re.search(r"server:\s*(\S+)", text).group(1))
        self.host, self.port = url.hostname, url.port
        pki = os.path.join(cluster_dir, "pki")
        self.ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        self.ctx.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
        self.local = threading.local()

    def connect(self, timeout=60):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def request(self, method, path, body=None, ctype="application/json", ok=(200, 201), tries=8):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = ctype
        for attempt in range(tries):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = self.connect()
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                time.sleep(0.2 * (attempt + 1))
                continue
            if resp.status in (429, 500, 503, 504) and attempt + 1 < tries:
                time.sleep(float(resp.getheader("Retry-After") or 0.5 * (attempt + 1)))
                continue
            try:
                doc = json.loads(raw) if raw else {}
            except ValueError:
                doc = {"raw": raw.decode(errors="replace")}
            if ok and resp.status not in ok:
                raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {raw[:300]!r}")
            return resp.status, doc
        raise RuntimeError(f"{method} {path}: no answer after {tries} attempts")

    def get(self, path, ok=(200,)):
        return self.request("GET", path, ok=ok)[1]

    def post(self, path, body, ok=(201, 200, 409)):
        return self.request("POST", path, body, ok=ok)[0]

    def patch(self, path, body, kind="merge"):
        return self.request("PATCH", path, body, ctype=f"application/{kind}-patch+json")[1]

    def delete(self, path):
        return self.request("DELETE", path, ok=(200, 202, 404))[0]

    def text(self, path):
        conn = self.connect()
        try:
            conn.request("GET", path)
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    def count(self, path):
        """Objects of a list path, from one item and the remaining count."""
        sep = "&" if "?" in path else "?"
        doc = self.get(f"{path}{sep}limit=1")
        return len(doc.get("items", [])) + doc.get("metadata", {}).get("remainingItemCount", 0)

    def list_all(self, path):
        items, cont = [], ""
        while True:
            sep = "&" if "?" in path else "?"
            q = f"{path}{sep}limit=500" + (f"&continue={urllib.parse.quote(cont)}" if cont else "")
            doc = self.get(q)
            items.extend(doc.get("items", []))
            cont = doc.get("metadata", {}).get("continue", "")
            if not cont:
                return items, doc["metadata"].get("resourceVersion", "")

    def watch(self, path, rv, timeout_s, on_event, stop):
        """Streams a watch from rv until timeout_s, stop is set, or an error (returns the last rv,
        or None when the watch expired and needs a new list)."""
        sep = "&" if "?" in path else "?"
        q = f"{path}{sep}watch=1&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds={int(timeout_s)}"
        conn = self.connect(timeout=timeout_s + 30)
        try:
            conn.request("GET", q, headers={"Accept": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200:
                resp.read()
                return None if resp.status == 410 else rv
            while not stop.is_set():
                line = resp.readline()
                if not line:
                    break
                ev = json.loads(line)
                if ev.get("type") == "ERROR":
                    return None if ev.get("object", {}).get("code") == 410 else rv
                rv = ev["object"].get("metadata", {}).get("resourceVersion", rv)
                if ev.get("type") != "BOOKMARK":
                    on_event(ev["type"], ev["object"])
        except (OSError, http.client.HTTPException, ValueError):
            pass
        finally:
            conn.close()
        return rv


def pool_run(fn, items, threads=16):
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        for f in [ex.submit(fn, i) for i in items]:
            f.result()


# ---------------------------------------------------------------------------------------------
# The fake kubelet: pods bound to fake nodes become Running; crash loops on request.


class Kubelet:
    def __init__(self, api, threads=12):
        self.api = api
        self.pods = {}  # uid -> (namespace, name, node, phase)
        self.lock = threading.Lock()
        self.pending = set()
        self.work = queue.Queue()
        self.stop = threading.Event()
        self.patches = 0
        self.rv = None
        self.synced = threading.Event()
        threading.Thread(target=self.run_watch, daemon=True).start()
        for _ in range(threads):
            threading.Thread(target=self.worker, daemon=True).start()

    def run_watch(self):
        while not self.stop.is_set():
            try:
                if self.rv is None:
                    items, rv = self.api.list_all("/api/v1/pods")
                    with self.lock:
                        self.pods.clear()
                    for p in items:
                        self.seen("ADDED", p)
                    self.rv = rv
                    self.synced.set()
                self.rv = self.api.watch("/api/v1/pods", self.rv, 240, self.seen, self.stop)
            except Exception as e:  # noqa: BLE001 — list again
                log(f"kubelet: watch: {e}")
                self.rv = None
                time.sleep(1)

    def seen(self, kind, pod):
        md, spec, st = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
        uid = md["uid"]
        with self.lock:
            if kind == "DELETED":
                self.pods.pop(uid, None)
                return
            node = spec.get("nodeName", "")
            phase = st.get("phase", "")
            self.pods[uid] = (md["namespace"], md["name"], node, phase)
            todo = (node.startswith(NODE_PREFIX) and phase != "Running"
                    and "deletionTimestamp" not in md and uid not in self.pending)
            if todo:
                self.pending.add(uid)
        if todo:
            self.work.put(("run", pod))

    def worker(self):
        while True:
            what, pod = self.work.get()
            try:
                self.mark_running(pod)
            except Exception as e:  # noqa: BLE001 — a worker must not die
                log(f"kubelet: {pod['metadata']['name']}: {e}")
            finally:
                with self.lock:
                    self.pending.discard(pod["metadata"]["uid"])
                self.work.task_done()

    def mark_running(self, pod):
        md, spec = pod["metadata"], pod["spec"]
        now = now_rfc3339()
        ip = "10.%d.%d.%d" % (random.randrange(1, 250), random.randrange(256), random.randrange(1, 255))
        statuses = [{
            "name": c["name"], "image": c["image"],
            "imageID": f"{c['image'].split(':')[0]}@sha256:{'0' * 64}",
            "containerID": f"containerd://{md['uid'].replace('-', '')}{i}",
            "ready": True, "started": True, "restartCount": 0,
            "state": {"running": {"startedAt": now}}, "lastState": {},
        } for i, c in enumerate(spec.get("containers", []))]
        cond = [{"type": t, "status": "True", "lastTransitionTime": now}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
        status = {"phase": "Running", "conditions": cond, "podIP": ip, "podIPs": [{"ip": ip}],
                  "hostIP": "127.0.0.1", "startTime": now, "containerStatuses": statuses}
        self.api.patch(f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}/status", {"status": status})
        self.patches += 1

    def crash(self, namespace, name, image):
        """Patches a Running pod into a crash loop, as a kubelet would; returns the send time."""
        now = now_rfc3339()
        status = {
            "phase": "Running",
            "conditions": [{"type": t, "status": s, "lastTransitionTime": now} for t, s in
                           (("PodScheduled", "True"), ("Initialized", "True"),
                            ("ContainersReady", "False"), ("Ready", "False"))],
            "containerStatuses": [{
                "name": "app", "image": image, "imageID": f"{image.split(':')[0]}@sha256:{'0' * 64}",
                "containerID": f"containerd://{name}-4", "ready": False, "started": False,
                "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": "back-off 40s restarting failed container=app"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now,
                                             "finishedAt": now, "containerID": f"containerd://{name}-3"}},
            }],
        }
        sent = time.time()
        self.api.patch(f"/api/v1/namespaces/{namespace}/pods/{name}/status", {"status": status})
        return sent

    def snapshot(self, namespaces=None):
        with self.lock:
            pods = [p for p in self.pods.values() if namespaces is None or p[0] in namespaces]
        return len(pods), sum(1 for p in pods if p[3] == "Running")

    def idle(self):
        with self.lock:
            return not self.pending and self.work.unfinished_tasks == 0


# ---------------------------------------------------------------------------------------------
# The webhook receiver.


class Receiver:
    """A webhook receiver in a process of its own (so the fake kubelet's threads never delay
    it): it appends each message, with its arrival time, to a file as a JSON line."""

    def __init__(self, work):
        self.path = os.path.join(work, "received.jsonl")
        open(self.path, "w").close()
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-receiver", self.path],
                                     stdout=subprocess.PIPE, text=True)
        port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{port}/hook"
        self.messages = []  # (arrival time, body)
        self.offset = 0
        self.lock = threading.Lock()

    def since(self, t):
        with self.lock:
            with open(self.path) as f:
                f.seek(self.offset)
                while True:
                    line = f.readline()
                    if not line.endswith("\n"):
                        break  # not written in full yet
                    self.offset = f.tell()
                    m = json.loads(line)
                    self.messages.append((m["t"], m["doc"]))
            return [(a, d) for a, d in self.messages if a >= t]

    def stop(self):
        self.proc.terminate()


def serve_receiver(path):
    out = open(path, "a")
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The answer in one segment: with Nagle's algorithm its body would wait for the client's
        # delayed ACK of the headers (tens of ms per message).
        disable_nagle_algorithm = True

        def do_POST(self):
            arrived = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                doc = json.loads(body)
            except ValueError:
                doc = {"unparsed": body.decode(errors="replace")}
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            with lock:
                out.write(json.dumps({"t": arrived, "doc": doc}) + "\n")
                out.flush()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


def alert_pods(alert):
    """The pod names an alert of a webhook payload is about (its key, an incident's pods)."""
    names = set()
    key = alert.get("key", {})
    if key.get("kind") == "Pod":
        names.add(key.get("name"))
    inc = alert.get("incident") or {}
    for p in inc.get("pods", []) or []:
        names.add(p if isinstance(p, str) else (p.get("name") if isinstance(p, dict) else None))
        if isinstance(p, str) and "/" in p:
            names.add(p.split("/")[-1])
    names.discard(None)
    return names


def describe(alert):
    key = alert.get("key", {})
    return f"{key.get('monitor')}/{key.get('reason')}" + (" [RESOLVED]" if alert.get("state") == "resolved" else "")


# ---------------------------------------------------------------------------------------------
# kpulse.


class Kpulse:
    def __init__(self, binary, cluster_dir, config_file, logfile):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [binary, "run", "--kubeconfig", os.path.join(cluster_dir, "admin.kubeconfig"),
             "--namespace", KPULSE_NS, "--config", config_file,
             "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        self.http = None
        self.synced_at = None
        self.log = open(logfile, "w")
        self.pumping = threading.Thread(target=self.pump, daemon=True)
        self.pumping.start()

    def pump(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.log.write(line)
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            msg = doc.get("message") or doc.get("fields", {}).get("message", "")
            fields = doc.get("fields", doc)
            if msg == "HTTP servers listening":
                self.http = fields.get("http") or doc.get("http")
            if "watches synced" in str(msg) and self.synced_at is None:
                self.synced_at = time.monotonic() - self.started
        self.log.flush()

    def readyz(self):
        if not self.http:
            return False
        host, port = self.http.rsplit(":", 1)
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=2)
            conn.request("GET", "/readyz")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def wait_ready(self, timeout=600):
        while time.monotonic() - self.started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kpulse exited with {self.proc.returncode} before it was ready (log: {self.log.name})")
            if self.readyz():
                return time.monotonic() - self.started
            time.sleep(0.05)
        raise RuntimeError(f"kpulse not ready within {timeout}s (log: {self.log.name})")

    def status(self):
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])  # KiB
        return out

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.pumping.join(10)
        self.log.close()


# ---------------------------------------------------------------------------------------------
# Load.


def node_body(i, name, daemon):
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "kpulse.io/fake-node": "true", "topology.kubernetes.io/zone": f"zone-{i % 3}"}
    if daemon:
        labels["bench.kpulse.io/daemon"] = "true"
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}


def node_status(name):
    now = now_rfc3339()
    res = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    conds = [("Ready", "True", "KubeletReady"), ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
             ("DiskPressure", "False", "KubeletHasNoDiskPressure"), ("PIDPressure", "False", "KubeletHasSufficientPID")]
    return {"status": {
        "capacity": res, "allocatable": res,
        "conditions": [{"type": t, "status": s, "reason": r, "message": "fake node",
                        "lastHeartbeatTime": now, "lastTransitionTime": now} for t, s, r in conds],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "nodeInfo": {"kubeletVersion": "v1.35.4", "architecture": "amd64", "operatingSystem": "linux",
                     "containerRuntimeVersion": "fake://1", "kernelVersion": "", "osImage": "fake",
                     "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""}}}


def add_node(api, i):
    name = f"{NODE_PREFIX}{i}"
    api.post("/api/v1/nodes", node_body(i, name, i <= DAEMON_NODES))
    # Admission adds a not-ready taint on creation; the node-lifecycle controller that would lift it is off.
    api.patch(f"/api/v1/nodes/{name}", {"spec": {"taints": []}})
    api.patch(f"/api/v1/nodes/{name}/status", node_status(name))


def pod_template(app, tier, containers=1):
    return {
        "metadata": {"labels": {"app": app, "tier": tier, "app.kubernetes.io/part-of": "bench"}},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "app" if c == 0 else f"sidecar-{c}", "image": IMAGE,
                            "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}}}
                           for c in range(containers)],
        },
    }


def deployment(i, replicas):
    name = f"svc-{i:05d}"
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": pod_template(name, "web", 2 if i % 4 == 0 else 1)}}


def ns_name(i):
    return f"bench-{i:02d}"


class Load:
    """What is loaded so far; grows to each size."""

    def __init__(self, api, kubelet, nodes_for, events_for, objects_for):
        self.api, self.kubelet = api, kubelet
        self.nodes_for, self.events_for, self.objects_for = nodes_for, events_for, objects_for
        self.nodes = 0
        self.pods = 0
        self.deployments = 0
        self.events = 0
        self.configmaps = 0
        self.secrets = 0
        self.fixed = False  # namespaces, StatefulSets, DaemonSet
        self.expected_pods = 0

    def namespaces(self):
        def one(i):
            ns = ns_name(i)
            self.api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": ns, "labels": {"team": f"team-{i % 7}"}}})
        pool_run(one, range(NAMESPACES))
        for ns in [ns_name(i) for i in range(NAMESPACES)] + [BURST_NS]:
            self.wait_sa(ns)

    def wait_sa(self, ns):
        for _ in range(600):
            if self.api.request("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default", ok=None)[0] == 200:
                return
            time.sleep(0.1)
        raise RuntimeError(f"no ServiceAccount default in {ns}")

    def grow(self, size):
        t = time.monotonic()
        want_nodes = self.nodes_for(size)
        if want_nodes > self.nodes:
            pool_run(lambda i: add_node(self.api, i), range(self.nodes + 1, want_nodes + 1))
            log(f"nodes: {self.nodes} -> {want_nodes}")
            self.nodes = want_nodes
        if size == 0:
            return
        if not self.fixed:
            self.namespaces()
            ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "node-agent"},
                  "spec": {"selector": {"matchLabels": {"app": "node-agent"}},
                           "template": pod_template("node-agent", "system")}}
            ds["spec"]["template"]["spec"]["nodeSelector"] = {"bench.kpulse.io/daemon": "true"}
            self.api.post(f"/apis/apps/v1/namespaces/{ns_name(0)}/daemonsets", ds)
            for i in range(STATEFULSETS):
                name = f"db-{i}"
                sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
                       "spec": {"replicas": STS_REPLICAS, "serviceName": name, "podManagementPolicy": "Parallel",
                                "selector": {"matchLabels": {"app": name}}, "template": pod_template(name, "db")}}
                self.api.post(f"/apis/apps/v1/namespaces/{ns_name(i + 1)}/statefulsets", sts)
            self.pods += min(DAEMON_NODES, self.nodes) + STATEFULSETS * STS_REPLICAS
            self.fixed = True
        todo = []
        while self.pods < size:
            r = min(DEPLOY_SIZES[self.deployments % len(DEPLOY_SIZES)], size - self.pods)
            todo.append((self.deployments, r))
            self.deployments += 1
            self.pods += r

        def deploy(item):
            i, r = item
            self.api.post(f"/apis/apps/v1/namespaces/{ns_name(i % NAMESPACES)}/deployments",
                          deployment(i, r))
        pool_run(deploy, todo)
        log(f"{len(todo)} Deployments created ({self.deployments} in all, {self.pods} pods expected)")
        self.wait_running(self.pods, [ns_name(i) for i in range(NAMESPACES)])
        self.wait_workloads()
        want = self.objects_for(size)
        if want > self.configmaps:
            def cm(i):
                ns = ns_name(i % NAMESPACES)
                self.api.post(f"/api/v1/namespaces/{ns}/configmaps", {
                    "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"config-{i:04d}", "labels": {"app": f"svc-{i:05d}"}},
                    "data": {"app.yaml": f"name: svc-{i}\nreplicas: 3\nlog_level: info\n" + "x: " + "y" * 400 + "\n"}})
                typ = "kubernetes.io/tls" if i % 50 == 0 else "Opaque"
                data = ({"tls.crt": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==", "tls.key": "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg=="}
                        if typ == "kubernetes.io/tls" else {"password": "c2VjcmV0", "token": "dG9rZW4="})
                self.api.post(f"/api/v1/namespaces/{ns}/secrets", {
                    "apiVersion": "v1", "kind": "Secret", "type": typ,
                    "metadata": {"name": f"secret-{i:04d}"}, "data": data})
            pool_run(cm, range(self.configmaps, want))
            log(f"ConfigMaps and Secrets: {self.configmaps} -> {want} each")
            self.configmaps = self.secrets = want
        self.add_events(self.events_for(size))
        log(f"loaded {size} pods in {time.monotonic() - t:.0f}s")

    def wait_running(self, expected, namespaces, timeout=3600):
        t = time.monotonic()
        last = (-1, -1)
        while time.monotonic() - t < timeout:
            total, running = self.kubelet.snapshot(set(namespaces))
            if total >= expected and running == total and self.kubelet.idle():
                log(f"{running} pods Running in {time.monotonic() - t:.0f}s")
                return
            if (total, running) != last and int(time.monotonic() - t) % 10 == 0:
                log(f"waiting: {total}/{expected} pods, {running} Running")
                last = (total, running)
            time.sleep(1)
        raise RuntimeError(f"pods not Running within {timeout}s: {self.kubelet.snapshot(set(namespaces))} of {expected}")

    def wait_workloads(self, timeout=1800):
        """Until every Deployment, StatefulSet and DaemonSet reports all its pods ready, so no
        status lag is mistaken for an outage."""
        t = time.monotonic()
        while time.monotonic() - t < timeout:
            behind = 0
            for d in self.api.list_all("/apis/apps/v1/deployments")[0]:
                st = d.get("status", {})
                behind += (st.get("observedGeneration") != d["metadata"]["generation"]
                           or st.get("availableReplicas", 0) != d["spec"]["replicas"]
                           or st.get("updatedReplicas", 0) != d["spec"]["replicas"])
            for x in self.api.list_all("/apis/apps/v1/statefulsets")[0]:
                behind += x.get("status", {}).get("readyReplicas", 0) != x["spec"]["replicas"]
            for x in self.api.list_all("/apis/apps/v1/daemonsets")[0]:
                st = x.get("status", {})
                behind += st.get("numberReady", -1) != st.get("desiredNumberScheduled", -2)
            if not behind:
                log(f"workloads up to date in {time.monotonic() - t:.0f}s")
                return
            log(f"waiting: {behind} workloads not up to date")
            time.sleep(3)
        raise RuntimeError(f"workloads not up to date within {timeout}s")

    def add_events(self, want):
        if want <= self.events:
            return
        with self.kubelet.lock:
            pods = [(p[0], p[1], p[2], uid) for uid, p in self.kubelet.pods.items() if p[0].startswith("bench-")]
        random.shuffle(pods)
        normal = [("Scheduled", "default-scheduler", "Successfully assigned {ns}/{pod} to {node}"),
                  ("Pulling", "kubelet", f'Pulling image "{IMAGE}"'),
                  ("Pulled", "kubelet", f'Successfully pulled image "{IMAGE}" in 812ms (812ms including waiting). Image size: 320368 bytes.'),
                  ("Created", "kubelet", "Created container: app"),
                  ("Started", "kubelet", "Started container app")]

        def ev(i):
            ns, pod, node, uid = pods[i % len(pods)]
            now = now_rfc3339()
            if i % 20 == 7:  # ~5% Warning, benign: about pods that do not exist
                ghost = f"{pod}-gone-{i}"
                reason, comp, msg = random.choice([
                    ("BackOff", "kubelet", "Back-off restarting failed container app in pod {pod}"),
                    ("FailedScheduling", "default-scheduler", "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.")])
                obj = {"kind": "Pod", "namespace": ns, "name": ghost, "uid": f"00000000-0000-4000-8000-{i:012d}", "apiVersion": "v1"}
                typ, pod = "Warning", ghost
            else:
                reason, comp, msg = normal[i % len(normal)]
                obj = {"kind": "Pod", "namespace": ns, "name": pod, "uid": uid, "apiVersion": "v1",
                       "fieldPath": "spec.containers{app}"}
                typ = "Normal"
            body = {"apiVersion": "v1", "kind": "Event",
                    "metadata": {"name": f"{pod}.{i:x}{random.randrange(1 << 32):08x}", "namespace": ns},
                    "involvedObject": obj, "reason": reason, "message": msg.format(ns=ns, pod=pod, node=node),
                    "type": typ, "source": {"component": comp, "host": node}, "count": 1,
                    "firstTimestamp": now, "lastTimestamp": now, "reportingComponent": comp,
                    "reportingInstance": node}
            self.api.post(f"/api/v1/namespaces/{ns}/events", body)
        t = time.monotonic()
        pool_run(ev, range(self.events, want))
        log(f"events: {self.events} -> {want} in {time.monotonic() - t:.0f}s")
        self.events = want


# ---------------------------------------------------------------------------------------------
# Measurements.


def apiserver_writes(api):
    """apiserver_request_total of writes to configmaps, leases and events, by resource/verb."""
    out = {}
    for line in api.text("/metrics").splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if labels.get("verb") in ("POST", "PUT", "PATCH", "DELETE", "APPLY") and \
                labels.get("resource") in ("configmaps", "leases", "events"):
            k = f"{labels['resource']} {labels['verb']}"
            out[k] = out.get(k, 0) + float(line.rsplit(" ", 1)[1])
    return out


class Counter:
    """Counts watch events (ADDED/MODIFIED/DELETED) of a path during a window."""

    def __init__(self, api, path, seconds):
        self.n, self.names = 0, {}
        self.stop = threading.Event()
        rv = api.get(f"{path}{'&' if '?' in path else '?'}limit=1")["metadata"]["resourceVersion"]

        def on(kind, obj):
            self.n += 1
            md = obj.get("metadata", {})
            k = f"{kind} {md.get('namespace', '')}/{md.get('name', '')}"
            self.names[k] = self.names.get(k, 0) + 1
        self.thread = threading.Thread(target=api.watch, args=(path, rv, seconds + 5, on, self.stop), daemon=True)
        self.thread.start()

    def done(self):
        self.stop.set()
        return self.n


def wait_settled(kp, settle):
    """At least `settle` seconds after ready, then until VmRSS moved less than 2% over 5 s (at
    most 60 s more)."""
    time.sleep(settle)
    prev = kp.status()["VmRSS"]
    for _ in range(12):
        time.sleep(5)
        cur = kp.status()["VmRSS"]
        if abs(cur - prev) <= 0.02 * prev:
            return
        prev = cur


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def fit(points):
    """Least squares y = a + b x; returns (b, a)."""
    n = len(points)
    if n < 2:
        return None, None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None, None
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    return b, my - b * mx


def burst(api, kubelet, receiver, names, quiet, timeout):
    """Flips these Running burst pods to a crash loop; returns latencies and messages per pod."""
    start = time.time()
    sent = {}

    def flip(name):
        sent[name] = kubelet.crash(BURST_NS, name, IMAGE)
    pool_run(flip, names, threads=8)
    first = {}
    want = set(names)
    deadline = time.time() + timeout
    while time.time() < deadline:
        for arrived, doc in receiver.since(start):
            for a in doc.get("alerts", []) or []:
                if a.get("state") == "firing":
                    for p in alert_pods(a) & want:
                        first[p] = min(first.get(p, arrived), arrived)
        if len(first) == len(want):
            break
        time.sleep(0.2)
    time.sleep(quiet)
    per_pod = {n: 0 for n in names}
    seen = {}
    for arrived, doc in receiver.since(start):
        mentioned = set()
        for a in doc.get("alerts", []) or []:
            pods = alert_pods(a) & want
            if pods:
                seen[describe(a)] = seen.get(describe(a), 0) + 1
            mentioned |= pods
        for p in mentioned:
            per_pod[p] += 1
    lat = [first[p] - sent[p] for p in first]
    dist = {}
    for c in per_pod.values():
        dist[c] = dist.get(c, 0) + 1
    return {
        "pods": len(names), "alerted": len(first),
        "latency_p50_s": round(pct(lat, 50), 2) if lat else None,
        "latency_p99_s": round(pct(lat, 99), 2) if lat else None,
        "latency_max_s": round(max(lat), 2) if lat else None,
        "flip_spread_s": round(max(sent.values()) - min(sent.values()), 2),
        "messages_per_pod": {str(k): v for k, v in sorted(dist.items())},
        "alerts_seen": seen,
    }


def messages_text(b):
    """`500 pods: 1 message each (pod_crashes/CrashLoopBackOff ×500)`."""
    parts = [f"{pods} pods: {n} message{'' if n == '1' else 's'}{' each' if pods > 1 else ''}"
             for n, pods in b["messages_per_pod"].items()]
    seen = ", ".join(f"{k} ×{v}" for k, v in sorted(b["alerts_seen"].items()))
    return ", ".join(parts) + (f" ({seen})" if seen else "")


# ---------------------------------------------------------------------------------------------


def machine():
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    return {"nproc": os.cpu_count(), "ram_mib": mem, "load": open("/proc/loadavg").read().split()[:3]}


def write_config(path, receiver):
    with open(path, "w") as f:
        f.write("cluster: bench\n"
                f"channels:\n  hook: {{type: webhook, url: '{receiver.url}', delivery: {{allow_http: true}}}}\n"
                "routing: {default: [hook]}\n"
                # The welcome message would be the one message at every fresh start: off, so the
                # start-up count is alerts only.
                "welcome: {enabled: false}\n"
                # More settings to measure (YAML appended as is), e.g. `evidence: {enabled: false}`.
                + os.environ.get("KPULSE_SCALE_CONFIG", "") + "\n")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-receiver":
        return serve_receiver(sys.argv[2])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cluster-dir", required=True)
    ap.add_argument("--kpulse", required=True)
    ap.add_argument("--mode", choices=["full", "check"], default="full")
    ap.add_argument("--sizes", default="1000,2000,5000,10000", help="pods per size, comma-separated")
    ap.add_argument("--nodes-max", type=int, default=1000)
    ap.add_argument("--events-max", type=int, default=20000)
    ap.add_argument("--objects-max", type=int, default=500, help="ConfigMaps (and Secrets) at most")
    ap.add_argument("--idle", type=int, default=300, help="idle window, seconds")
    ap.add_argument("--settle", type=int, default=20, help="seconds after ready before RSS is read")
    ap.add_argument("--bursts", default="50,500", help="crash bursts, pods each (0: none)")
    ap.add_argument("--quiet", type=int, default=30, help="seconds counted after a burst's last alert")
    ap.add_argument("--max-rss-mib", type=float, default=0, help="fail above this VmRSS/VmHWM (0: no check)")
    ap.add_argument("--max-kib-per-pod", type=float, default=0,
                    help="fail when the VmRSS fit's KiB per pod is above this (0: no check)")
    ap.add_argument("--doc", default="", help="rewrite the scale section of this file")
    ap.add_argument("--work", default="", help="kpulse config and logs (default: <cluster-dir>/bench)")
    args = ap.parse_args()

    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    bursts = [int(b) for b in args.bursts.split(",") if b.strip() and int(b) > 0]
    largest = max(sizes)
    nodes_total = min(args.nodes_max, max(1, largest // 10))
    work = args.work or os.path.join(args.cluster_dir, "bench")
    os.makedirs(work, exist_ok=True)
    api = Api(args.cluster_dir)
    info = {"machine": machine(), "mode": args.mode,
            "kubernetes": api.get("/version").get("gitVersion"),
            "kpulse": {"binary": os.path.abspath(args.kpulse),
                       "version": subprocess.run([args.kpulse, "--version"], capture_output=True, text=True).stdout.strip(),
                       "profile": "debug" if "/debug/" in os.path.abspath(args.kpulse) else
                                  ("release" if "/release/" in os.path.abspath(args.kpulse) else "unknown")}}
    log(f"kubernetes {info['kubernetes']}, kpulse {info['kpulse']['version']} ({info['kpulse']['profile']}), "
        f"sizes {sizes}, {nodes_total} nodes at the largest, idle {args.idle}s")

    kubelet = Kubelet(api)
    kubelet.synced.wait(60)
    receiver = Receiver(work)
    config = os.path.join(work, "config.yaml")
    write_config(config, receiver)
    api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KPULSE_NS}})
    api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BURST_NS}})

    load = Load(api, kubelet,
                nodes_for=lambda s: 0 if s == 0 else min(nodes_total, max(DAEMON_NODES, -(-s * nodes_total // largest))),
                events_for=lambda s: min(args.events_max, 2 * s),
                objects_for=lambda s: min(args.objects_max, s))
    results = []
    failures = []
    kp = None
    idle = bursts_out = None
    try:
        for size in [0] + sizes:
            load.grow(size)
            time.sleep(3)  # the controllers' last status updates
            counts = {"pods": api.count("/api/v1/pods"), "nodes": api.count("/api/v1/nodes"),
                      "namespaces": api.count("/api/v1/namespaces"),
                      "deployments": api.count("/apis/apps/v1/deployments"),
                      "replicasets": api.count("/apis/apps/v1/replicasets"),
                      "statefulsets": api.count("/apis/apps/v1/statefulsets"),
                      "daemonsets": api.count("/apis/apps/v1/daemonsets"),
                      "configmaps": api.count("/api/v1/configmaps"), "secrets": api.count("/api/v1/secrets"),
                      "events": api.count("/api/v1/events")}
            # A fresh start: no state or Lease from the run before.
            api.delete(f"/api/v1/namespaces/{KPULSE_NS}/configmaps/kpulse-state")
            for lease in api.get(f"/apis/coordination.k8s.io/v1/namespaces/{KPULSE_NS}/leases").get("items", []):
                api.delete(f"/apis/coordination.k8s.io/v1/namespaces/{KPULSE_NS}/leases/{lease['metadata']['name']}")
            started = time.time()
            kp = Kpulse(args.kpulse, args.cluster_dir, config, os.path.join(work, f"kpulse-{size}.log"))
            ready = kp.wait_ready()
            wait_settled(kp, args.settle)
            st = kp.status()
            msgs = receiver.since(started)
            r = {"size": size, "objects": counts, "ready_s": round(ready, 2),
                 "synced_s": round(kp.synced_at, 2) if kp.synced_at else None,
                 "rss_mib": round(st["VmRSS"] / 1024, 1), "hwm_mib": round(st["VmHWM"] / 1024, 1),
                 "startup_messages": len(msgs),
                 "startup_alerts": sorted({describe(a) + " " + a.get("object", "") for _, d in msgs
                                           for a in d.get("alerts", []) or []})[:20]}
            results.append(r)
            log(f"size {size}: ready {r['ready_s']}s, VmRSS {r['rss_mib']} MiB, VmHWM {r['hwm_mib']} MiB, "
                f"{r['startup_messages']} messages at start-up")
            if args.max_rss_mib:
                for fig, v in (("VmRSS", r["rss_mib"]), ("VmHWM", r["hwm_mib"])):
                    if v > args.max_rss_mib:
                        failures.append(f"{fig} at {size} pods: {v} MiB > {args.max_rss_mib:g} MiB (KPULSE_SCALE_MAX_RSS_MIB)")
            if size != largest:
                kp.stop()
                kp = None

        # Idle, at the largest size, kpulse running, nothing changing.
        log(f"idle window: {args.idle}s")
        state_path = f"/api/v1/namespaces/{KPULSE_NS}/configmaps/kpulse-state"
        rv_state = lambda: api.request("GET", state_path, ok=None)[1].get("metadata", {}).get("resourceVersion")  # noqa: E731
        before = apiserver_writes(api)
        rv0 = rv_state()
        watchers = {"kpulse leases": Counter(api, f"/apis/coordination.k8s.io/v1/namespaces/{KPULSE_NS}/leases", args.idle),
                    "kpulse configmaps": Counter(api, f"/api/v1/namespaces/{KPULSE_NS}/configmaps", args.idle),
                    "events (all namespaces)": Counter(api, "/api/v1/events", args.idle)}
        p0 = kubelet.patches
        c0, t0 = kp.cpu_seconds(), time.monotonic()
        time.sleep(args.idle)
        c1, t1 = kp.cpu_seconds(), time.monotonic()
        after = apiserver_writes(api)
        delta = {k: int(after.get(k, 0) - before.get(k, 0)) for k in sorted(set(after) | set(before))}
        delta = {k: v for k, v in delta.items() if v}
        idle = {"seconds": args.idle, "cpu_percent": round(100 * (c1 - c0) / (t1 - t0), 2),
                "api_writes": sum(delta.values()), "api_writes_by": delta,
                "watched_writes": {k: w.done() for k, w in watchers.items()},
                "watched_objects": {k: dict(sorted(w.names.items())[:10]) for k, w in watchers.items()},
                "kubelet_patches": kubelet.patches - p0,
                "state_rv_before": rv0, "state_rv_after": rv_state()}
        log(f"idle: CPU {idle['cpu_percent']}% of a core, API writes {delta}, watched {idle['watched_writes']}")

        # Crash bursts on bare pods, created and Running before.
        names = [f"crash-{i:04d}" for i in range(sum(bursts))]

        def bare(name):
            api.post(f"/api/v1/namespaces/{BURST_NS}/pods", {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "burst"}},
                "spec": {"automountServiceAccountToken": False, "terminationGracePeriodSeconds": 5,
                         "containers": [{"name": "app", "image": IMAGE}]}})
        bursts_out = []
        if names:
            pool_run(bare, names)
            load.wait_running(len(names), [BURST_NS])
            time.sleep(max(10, args.settle // 2))
        at = 0
        for n in bursts:
            log(f"burst: {n} pods into CrashLoopBackOff")
            b = burst(api, kubelet, receiver, names[at:at + n], args.quiet, timeout=300)
            at += n
            bursts_out.append(b)
            log(f"burst {n}: {b['alerted']} alerted, p50 {b['latency_p50_s']}s p99 {b['latency_p99_s']}s "
                f"max {b['latency_max_s']}s, messages per pod {b['messages_per_pod']}, {b['alerts_seen']}")
            if b["alerted"] < b["pods"]:
                failures.append(f"burst of {n}: only {b['alerted']} of {n} pods alerted")
        st = kp.status()
        info["after_bursts"] = {"rss_mib": round(st["VmRSS"] / 1024, 1), "hwm_mib": round(st["VmHWM"] / 1024, 1)}
    finally:
        if kp:
            kp.stop()
        kubelet.stop.set()
        receiver.stop()

    nonzero = [(r["size"], r["rss_mib"] * 1024) for r in results if r["size"] > 0]
    pts = nonzero if len(nonzero) >= 2 else [(r["size"], r["rss_mib"] * 1024) for r in results]
    slope, icpt = fit(pts)
    if args.max_kib_per_pod and slope is not None and slope > args.max_kib_per_pod:
        failures.append(f"memory per pod (VmRSS fit over {[p[0] for p in pts]} pods): {slope:.1f} KiB > "
                        f"{args.max_kib_per_pod:g} KiB (KPULSE_SCALE_MAX_KIB_PER_POD)")
    info["machine"]["load_end"] = open("/proc/loadavg").read().split()[:3]
    summary = dict(info, sizes=results, nodes_at_largest=nodes_total,
                   rss_fit={"kib_per_pod": round(slope, 2) if slope is not None else None,
                            "intercept_mib": round(icpt / 1024, 1) if icpt is not None else None,
                            "points": [p[0] for p in pts]},
                   empty_rss_mib=results[0]["rss_mib"], idle=idle, bursts=bursts_out,
                   failures=failures)
    table = render(summary)
    print(table)
    if args.doc:
        write_doc(args.doc, summary, table)
        log(f"wrote the scale section of {args.doc}")
    for f in failures:
        log(f"FAILED: {f}")
    print(json.dumps(summary, sort_keys=True))
    return 1 if failures else 0


def render(s):
    m, k = s["machine"], s["kpulse"]
    out = [f"Machine: {m['nproc']} cores, {m['ram_mib'] // 1024} GiB RAM, load {' '.join(m['load'])} at the start, "
           f"{' '.join(m['load_end'])} at the end. kpulse: `{k['binary']}` ({k['profile']} build, {k['version']}); "
           f"Kubernetes {s['kubernetes']} (etcd, kube-apiserver, kube-controller-manager, kube-scheduler on this machine); "
           f"mode `{s['mode']}`.", "",
           "| pods | nodes | Deployments / ReplicaSets | ConfigMaps / Secrets | events | ready | VmRSS | VmHWM | messages at start-up |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in s["sizes"]:
        o = r["objects"]
        out.append(f"| {o['pods']} | {o['nodes']} | {o['deployments']} / {o['replicasets']} | {o['configmaps']} / {o['secrets']} | "
                   f"{o['events']} | {r['ready_s']} s | {r['rss_mib']} MiB | {r['hwm_mib']} MiB | {r['startup_messages']} |")
    f = s["rss_fit"]
    out += ["", f"RSS fit over {f['points']} pods: {f['kib_per_pod']} KiB per pod, intercept {f['intercept_mib']} MiB; "
                f"empty cluster: {s['empty_rss_mib']} MiB."]
    i = s["idle"]
    if i:
        out.append(f"Idle at the largest size over {i['seconds']} s: {i['cpu_percent']} % of one core; API writes to "
                   f"configmaps, leases and events: {i['api_writes']} ({', '.join(f'{k} {v}' for k, v in i['api_writes_by'].items()) or 'none'}); "
                   f"changes seen by watches (kpulse's own share): {', '.join(f'{k} {v}' for k, v in i['watched_writes'].items())}; "
                   f"`kpulse-state` resourceVersion {i['state_rv_before'] or 'absent'} → {i['state_rv_after'] or 'absent'}.")
    if s["bursts"]:
        out += ["", "| crash burst (bare pods) | status patches spread over | alerted | latency p50 | p99 | max | messages per pod |",
                "|---:|---:|---:|---:|---:|---:|---|"]
        for b in s["bursts"]:
            out.append(f"| {b['pods']} | {b['flip_spread_s']} s | {b['alerted']} | {b['latency_p50_s']} s | {b['latency_p99_s']} s | "
                       f"{b['latency_max_s']} s | {messages_text(b)} |")
    return "\n".join(out)


def write_doc(path, s, table):
    text = open(path).read()
    begin, end = "<!-- bench-scale:begin -->", "<!-- bench-scale:end -->"
    if begin not in text or end not in text:
        raise RuntimeError(f"{path} has no {begin} ... {end} markers")
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    body = (f"{begin}\n<!-- Written by `make bench-scale` ({datetime.date.today().isoformat()}); do not edit by hand. -->\n\n"
            f"{table}\n{end}")
    open(path, "w").write(head + body + tail)


if __name__ == "__main__":
    sys.exit(main())
