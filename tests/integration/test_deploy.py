# SPDX-License-Identifier: MIT
"""Integration test of deploy/k8s/render.py: the manifests for N = 1, 3, 5 shards parse as YAML
(PyYAML, independent of the renderer's own emitter) and hold what a sharded cluster needs: the
ConfigMap's shards.json names N shard URLs equal to the StatefulSet's pod DNS names under its
headless Service, the probes are on /livez and /readyz, the keys Secret is mounted, replicas
equal N, every container runs as non-root with requests and limits. The rendered keys are then
checked against a real winnowd: the shards' keys file admits the router's key as admin and
nothing else. `kubectl kustomize` (offline) must also accept the file when kubectl exists."""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

import wn
from wn import assert_eq, test

RENDER = os.path.join(wn.REPO, "deploy", "k8s", "render.py")


def render(*args):
    p = subprocess.run([sys.executable, RENDER] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30, check=False)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def objects(n, *extra):
    rc, out, err = render(n, "--namespace", "curation", "--image", "reg.example/winnow:1.2", *extra)
    assert_eq(rc, 0, err)
    docs = [d for d in yaml.safe_load_all(out) if d is not None]
    by = {}
    for d in docs:
        by.setdefault(d["kind"], []).append(d)
    return docs, by, err


def one(by, kind, name):
    got = [d for d in by.get(kind, []) if d["metadata"]["name"] == name]
    assert_eq(len(got), 1, "%s/%s" % (kind, name))
    assert_eq(got[0]["metadata"]["namespace"], "curation")
    return got[0]


def check_pod(spec, image, keys_item):
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] > 0
    c = spec["containers"][0]
    assert_eq((c["image"], c["command"]), (image, ["winnowd"]))
    assert c["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    for k in ("cpu", "memory"):
        assert c["resources"]["requests"][k] and c["resources"]["limits"][k], c["resources"]
    assert_eq(c["livenessProbe"]["httpGet"]["path"], "/livez")
    assert_eq(c["readinessProbe"]["httpGet"]["path"], "/readyz")
    port = c["ports"][0]
    assert_eq(c["readinessProbe"]["httpGet"]["port"], port["name"])
    assert_eq(c["args"][c["args"].index("--listen") + 1], "0.0.0.0:%d" % port["containerPort"])
    # the keys file comes from the Secret, where --api-keys reads it
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    kv = vols["keys"]["secret"]
    assert_eq(kv["secretName"], "winnow-keys")
    assert_eq([(i["key"], i["path"]) for i in kv["items"]], [(keys_item, "api-keys")])
    assert_eq(c["args"][c["args"].index("--api-keys") + 1], mounts["keys"] + "/api-keys")
    return c, vols, mounts


@test
def manifests_for_1_3_5_shards():
    for n in (1, 3, 5):
        docs, by, _ = objects(n)
        assert_eq(sorted(d["kind"] for d in docs),
                  ["ConfigMap", "Deployment", "Secret", "Service", "Service", "StatefulSet"])
        sts = one(by, "StatefulSet", "shard")
        svc = one(by, "Service", "winnow-shard")
        assert_eq(sts["spec"]["replicas"], n)
        assert_eq(svc["spec"]["clusterIP"], "None")
        assert_eq(sts["spec"]["serviceName"], "winnow-shard")
        labels = sts["spec"]["template"]["metadata"]["labels"]
        assert_eq(sts["spec"]["selector"]["matchLabels"], labels)
        assert_eq(svc["spec"]["selector"], labels)
        c, _, mounts = check_pod(sts["spec"]["template"]["spec"], "reg.example/winnow:1.2",
                                 "shard-api-keys")
        claim = sts["spec"]["volumeClaimTemplates"][0]
        assert_eq(mounts[claim["metadata"]["name"]], c["args"][c["args"].index("--data-dir") + 1])
        port = c["ports"][0]["containerPort"]
        # shards.json: the pod DNS names <sts>-<i>.<service>.<ns>.svc.cluster.local, in order
        cm = one(by, "ConfigMap", "winnow-cluster")
        cluster = json.loads(cm["data"]["shards.json"])
        assert_eq(sorted(cluster), ["shard_key_file", "shards", "virtual_shards"])
        want = ["http://shard-%d.winnow-shard.curation.svc.cluster.local:%d" % (i, port)
                for i in range(n)]
        assert_eq([s["url"] for s in cluster["shards"]], want)
        assert_eq(cluster["virtual_shards"], 1024)
        # the routers: 2 replicas reading shards.json and shard.key side by side
        dep = one(by, "Deployment", "winnow-router")
        assert_eq(dep["spec"]["replicas"], 2)
        rc, vols, rmounts = check_pod(dep["spec"]["template"]["spec"], "reg.example/winnow:1.2",
                                      "router-api-keys")
        cfile = rc["args"][rc["args"].index("--router") + 1]
        assert_eq(os.path.dirname(cfile), rmounts["cluster"])
        srcs = vols["cluster"]["projected"]["sources"]
        assert_eq([(s["configMap"]["name"], s["configMap"]["items"][0]["path"]) for s in srcs[:1]],
                  [("winnow-cluster", os.path.basename(cfile))])
        assert_eq((srcs[1]["secret"]["name"], srcs[1]["secret"]["items"][0]["path"]),
                  ("winnow-keys", cluster["shard_key_file"]))
        rsvc = one(by, "Service", "winnow")
        assert_eq(rsvc["spec"]["selector"], dep["spec"]["selector"]["matchLabels"])
        assert labels != rsvc["spec"]["selector"], "the router Service must not select shards"


@test
def bad_arguments_are_refused():
    for args in (["0"], ["2000"], ["3", "--namespace", "Bad_NS"], ["x"]):
        rc, out, err = render(*args)
        assert_eq((rc, out), (2, ""), args)
        assert "error" in err, err


@test
def rendered_keys_work_with_winnowd():
    """The Secret's shards' keys file admits exactly the shard.key the router sends."""
    tmp = tempfile.mkdtemp(prefix="winnow-deploy-")
    try:
        client = os.path.join(tmp, "client-keys")
        with open(client, "w") as f:
            f.write("read %s dashboards\n" % ("ab" * 32))
        _, by, err = objects(3, "--shard-key", "s3cr3t-shard-key", "--client-keys", client)
        assert_eq(err, "", "nothing printed when the keys are given")
        data = one(by, "Secret", "winnow-keys")["stringData"]
        assert_eq(data["shard.key"].strip(), "s3cr3t-shard-key")
        assert_eq(data["router-api-keys"], "read %s dashboards\n" % ("ab" * 32))
        keys = os.path.join(tmp, "api-keys")
        with open(keys, "w") as f:
            f.write(data["shard-api-keys"])
        with wn.Daemon(api_keys=keys) as d:
            for key, status in (("s3cr3t-shard-key", 200), ("other", 401), (None, 401)):
                h = {"Authorization": "Bearer " + key} if key else {}
                st = d.request("PUT", "/v1/datasets/k%d" % status, {"spaces": {"t": {"dim": 2}}},
                               headers=h)[0]
                assert_eq(st, 201 if status == 200 else 401, "key %r" % key)
        # a generated admin key is printed once and its hash is the router's keys file
        _, by, err = objects(1)
        key = err.strip().split()[-1]
        assert_eq(one(by, "Secret", "winnow-keys")["stringData"]["router-api-keys"],
                  "admin %s generated\n" % hashlib.sha256(key.encode()).hexdigest())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@test
def the_router_takes_the_rendered_cluster_file():
    """shards.json and shard.key, laid out as the router pods mount them, start a real
    `winnowd --router`: /livez answers, /readyz is 503 naming the N pod DNS names (no cluster
    DNS here), and a shards.json with an unknown field is refused (exit 2)."""
    tmp = tempfile.mkdtemp(prefix="winnow-deploy-")
    proc = None
    try:
        for n in (1, 3):
            _, by, _ = objects(n, "--shard-key", "k")
            cm = one(by, "ConfigMap", "winnow-cluster")["data"]
            with open(os.path.join(tmp, "shards.json"), "w") as f:
                f.write(cm["shards.json"])
            with open(os.path.join(tmp, "shard.key"), "w") as f:
                f.write(one(by, "Secret", "winnow-keys")["stringData"]["shard.key"])
            port = free_port()
            proc = subprocess.Popen([wn.WINNOWD, "--router", os.path.join(tmp, "shards.json"),
                                     "--listen", "127.0.0.1:%d" % port, "--shard-timeout", "2"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    env=wn.child_env())
            base = "http://127.0.0.1:%d" % port
            for _ in range(100 * wn.SLOW):
                try:
                    urllib.request.urlopen(base + "/livez", timeout=5).read()
                    break
                except OSError:
                    assert proc.poll() is None, proc.stderr.read().decode()
                    time.sleep(0.1)
            try:
                urllib.request.urlopen(base + "/readyz", timeout=30)
                raise AssertionError("/readyz ready without shards")
            except urllib.error.HTTPError as e:
                assert_eq(e.code, 503)
                body = json.loads(e.read())
            want = ["http://shard-%d.winnow-shard.curation.svc.cluster.local:8080" % i
                    for i in range(n)]
            assert_eq([s["url"] for s in body["shards"]], want, "the shards /readyz names")
            proc.terminate()
            assert_eq(proc.wait(timeout=30 * wn.SLOW), 0, "router exit on SIGTERM")
            proc.stderr.close()
            proc = None
        with open(os.path.join(tmp, "shards.json"), "w") as f:
            f.write(cm["shards.json"].replace('"virtual_shards"', '"virtual_shard"'))
        p = subprocess.run([wn.WINNOWD, "--router", os.path.join(tmp, "shards.json")],
                           capture_output=True, timeout=30, env=wn.child_env())
        assert_eq(p.returncode, 2, p.stderr)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


@test
def kubectl_kustomize_accepts_the_manifests():
    """Offline: kubectl's own YAML and object parsing (apply --dry-run needs an API server)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print("  (kubectl not installed: checked with PyYAML only)")
        return
    tmp = tempfile.mkdtemp(prefix="winnow-kustomize-")
    try:
        rc, out, err = render(3, "--shard-key", "k", "-o", os.path.join(tmp, "winnow.yaml"))
        assert_eq((rc, out), (0, ""), err)
        with open(os.path.join(tmp, "kustomization.yaml"), "w") as f:
            f.write("resources:\n- winnow.yaml\n")
        p = subprocess.run([kubectl, "kustomize", tmp], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60, check=False)
        assert_eq(p.returncode, 0, p.stderr.decode())
        back = list(yaml.safe_load_all(p.stdout))
        with open(os.path.join(tmp, "winnow.yaml")) as f:
            mine = list(yaml.safe_load_all(f))
        key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
        assert_eq(sorted(map(key, back)), sorted(map(key, [d for d in mine if d])))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class DiscoveryStub:
    """What `kubectl apply --dry-run=client` asks a cluster for, on loopback: the API
    discovery documents of the kinds the manifests use (core/v1, apps/v1) and 404 for every
    object (nothing exists yet, so each would be created). kubectl 1.32 maps kinds to
    resources through discovery even for a client dry run; no object is stored anywhere."""

    CORE = [("configmaps", "ConfigMap", True), ("secrets", "Secret", True),
            ("services", "Service", True), ("persistentvolumeclaims", "PersistentVolumeClaim", True),
            ("namespaces", "Namespace", False)]
    APPS = [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True)]

    def __init__(self):
        import http.server
        import threading
        stub = self

        def rlist(gv, items):
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                    "resources": [{"name": n, "singularName": "", "namespaced": ns, "kind": k,
                                   "verbs": ["create", "delete", "get", "list", "patch",
                                             "update", "watch"]} for n, k, ns in items]}

        docs = {"/api": {"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                         "serverAddress": "127.0.0.1"}]},
                "/api/v1": rlist("v1", self.CORE),
                "/apis": {"kind": "APIGroupList", "apiVersion": "v1",
                          "groups": [{"name": "apps",
                                      "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                                      "preferredVersion": {"groupVersion": "apps/v1",
                                                           "version": "v1"}}]},
                "/apis/apps/v1": rlist("apps/v1", self.APPS)}
        self.writes = []

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def send(self, code, obj):
                b = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

            def do_GET(self):
                path = self.path.split("?")[0]
                if path in docs:
                    return self.send(200, docs[path])
                self.send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                "reason": "NotFound", "code": 404, "message": "not found"})

            def do_POST(self):  # a dry run must never write
                stub.writes.append(self.path)
                self.send(405, {"kind": "Status", "code": 405})
            do_PUT = do_PATCH = do_DELETE = do_POST

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kubeconfig(self, path):
        with open(path, "w") as f:
            f.write("apiVersion: v1\nkind: Config\n"
                    "clusters: [{name: stub, cluster: {server: 'http://127.0.0.1:%d'}}]\n"
                    "contexts: [{name: stub, context: {cluster: stub, user: stub}}]\n"
                    "current-context: stub\nusers: [{name: stub, user: {}}]\n"
                    % self.server.server_address[1])

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@test
def kubectl_apply_dry_run_accepts_the_manifests():
    """`kubectl apply --dry-run=client --validate=false` on the manifests for 1, 3 and 5 shards:
    every object is one kubectl knows and would create; a misspelt kind is refused (so the
    check can fail); nothing is written."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print("  (kubectl not installed: checked with PyYAML only)")
        return
    tmp = tempfile.mkdtemp(prefix="winnow-kubectl-")
    stub = DiscoveryStub()
    try:
        cfg = os.path.join(tmp, "kubeconfig")
        stub.kubeconfig(cfg)
        env = dict(os.environ, KUBECONFIG=cfg, HOME=tmp)

        def apply(path):
            return subprocess.run([kubectl, "apply", "--dry-run=client", "--validate=false",
                                   "-f", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=120, check=False, env=env)
        for n in (1, 3, 5):
            path = os.path.join(tmp, "winnow-%d.yaml" % n)
            rc, out, err = render(n, "--shard-key", "k", "-o", path)
            assert_eq((rc, out), (0, ""), err)
            p = apply(path)
            assert_eq(p.returncode, 0, p.stderr.decode())
            with open(path) as f:
                mine = sorted("%s/%s" % (d["kind"].lower(), d["metadata"]["name"])
                              for d in yaml.safe_load_all(f) if d)
            said = sorted(l.split(" ")[0].replace(".apps/", "/")
                          for l in p.stdout.decode().splitlines() if l.endswith("(dry run)"))
            assert_eq(said, mine, p.stdout.decode())
        with open(os.path.join(tmp, "winnow-3.yaml")) as f:
            bad = f.read().replace("kind: StatefulSet", "kind: StatefullSet")
        with open(os.path.join(tmp, "bad.yaml"), "w") as f:
            f.write(bad)
        p = apply(os.path.join(tmp, "bad.yaml"))
        assert p.returncode != 0 and b"StatefullSet" in p.stderr, (p.returncode, p.stderr)
        assert_eq(stub.writes, [], "a dry run wrote")
    finally:
        stub.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    wn.main()
