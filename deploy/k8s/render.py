#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""render.py: the Kubernetes manifests of a sharded winnow for N shards (docs/scale.md).

    deploy/k8s/render.py N [--image IMAGE] [--namespace NS] [--storage SIZE] [-o FILE]

Writes one multi-document YAML file (stdout by default) holding:
  - Secret winnow-keys: `shard-api-keys` (the shards' keys file: the router's key, admin),
    `shard.key` (that key in clear, which the router sends to the shards) and
    `router-api-keys` (the keys file of the router's clients);
  - Service winnow-shard (headless): pods shard-0 .. shard-(N-1) get the stable names
    shard-I.winnow-shard.NS.svc.cluster.local;
  - StatefulSet shard: N replicas of winnowd, a PersistentVolumeClaim each (/var/lib/winnow),
    probes on /livez and /readyz, the keys file from the Secret;
  - ConfigMap winnow-cluster: shards.json naming the N shard URLs;
  - Deployment winnow-router (2 replicas of `winnowd --router`) and its Service winnow.
The keys: --shard-key KEY (default: 32 random bytes, hex) and --client-keys FILE (a winnowd keys
file, `SCOPE SHA256HEX [NAME]` lines; default: a new admin key, printed once on stderr).
Only the Python standard library is used; the YAML is written by the small emitter below."""

import argparse
import hashlib
import json
import re
import secrets
import sys

PORT = 8080
UID = 10001
SECURITY = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
            "capabilities": {"drop": ["ALL"]}}
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
                "seccompProfile": {"type": "RuntimeDefault"}}
TMP = {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}  # the root file system is read-only

_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if _PLAIN.match(v) and v.lower() not in _RESERVED:
        return v
    return json.dumps(v)  # a JSON string is a YAML double-quoted scalar


def _emit(v, ind, out):
    """Block-style YAML of dicts, lists, strings, ints and bools; multi-line strings as |."""
    pad = "  " * ind
    items = v.items() if isinstance(v, dict) else enumerate(v)
    for k, x in items:
        head = pad + ("- " if isinstance(v, list) else _scalar(k) + ":")
        if isinstance(x, (dict, list)) and x:
            if isinstance(v, list) and isinstance(x, dict):
                sub = []
                _emit(x, ind + 1, sub)
                sub[0] = head + sub[0][len(pad) + 2:]
                out.extend(sub)
            else:
                out.append(head)
                _emit(x, ind + 1, out)
        elif isinstance(x, (dict, list)):
            out.append(head + (" " if isinstance(v, dict) else "") + ("{}" if isinstance(x, dict)
                                                                       else "[]"))
        elif isinstance(x, str) and "\n" in x:
            out.append(head + (" " if isinstance(v, dict) else "") + "|")
            out.extend(("  " * (ind + 1) + line) if line else "" for line in x.rstrip("\n").split("\n"))
        else:
            out.append(head + (" " if isinstance(v, dict) else "") + _scalar(x))


def yaml_docs(docs):
    out = []
    for d in docs:
        out.append("---")
        _emit(d, 0, out)
    return "\n".join(out) + "\n"


def shard_url(i, ns):
    return "http://shard-%d.winnow-shard.%s.svc.cluster.local:%d" % (i, ns, PORT)


def shards_json(n, ns, virtual_shards):
    c = {"virtual_shards": virtual_shards,
         "shards": [{"url": shard_url(i, ns)} for i in range(n)],
         "shard_key_file": "shard.key"}
    return json.dumps(c, indent=2) + "\n"


def meta(name, ns, component):
    return {"name": name, "namespace": ns,
            "labels": {"app.kubernetes.io/name": "winnow",
                       "app.kubernetes.io/component": component}}


def probe(path, period, failures):
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period,
            "timeoutSeconds": 5, "failureThreshold": failures}


def container(name, image, args, mounts, req, lim):
    return {"name": name, "image": image, "command": ["winnowd"], "args": args,
            "ports": [{"name": "http", "containerPort": PORT}],
            "env": [{"name": "WINNOW_LOG_FORMAT", "value": "json"}],
            "livenessProbe": probe("/livez", 10, 6),
            "readinessProbe": probe("/readyz", 5, 3),
            "startupProbe": probe("/livez", 2, 150),
            "resources": {"requests": req, "limits": lim},
            "securityContext": SECURITY, "volumeMounts": mounts}


def shard_objects(a, sel):
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": meta("winnow-shard", a.namespace, "shard"),
           "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": sel,
                    "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]}}
    c = container("winnowd", a.image,
                  ["--listen", "0.0.0.0:%d" % PORT, "--data-dir", "/var/lib/winnow",
                   "--api-keys", "/etc/winnow/keys/api-keys"],
                  [{"name": "data", "mountPath": "/var/lib/winnow"},
                   {"name": "keys", "mountPath": "/etc/winnow/keys", "readOnly": True},
                   {"name": "tmp", "mountPath": "/tmp"}],
                  {"cpu": a.shard_cpu, "memory": a.shard_memory},
                  {"cpu": a.shard_cpu_limit, "memory": a.shard_memory_limit})
    keys = {"name": "keys", "secret": {"secretName": "winnow-keys", "defaultMode": 0o440,
                                       "items": [{"key": "shard-api-keys", "path": "api-keys"}]}}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": meta("shard", a.namespace, "shard"),
           "spec": {"serviceName": "winnow-shard", "replicas": a.n,
                    "podManagementPolicy": "Parallel", "selector": {"matchLabels": sel},
                    "template": {"metadata": {"labels": sel},
                                 "spec": {"securityContext": POD_SECURITY,
                                          "terminationGracePeriodSeconds": 90,
                                          "containers": [c], "volumes": [keys, TMP]}},
                    "volumeClaimTemplates": [{
                        "metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"],
                                 "resources": {"requests": {"storage": a.storage}}}}]}}
    if a.storage_class:
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] = a.storage_class
    return [svc, sts]


def router_objects(a, sel):
    cluster = {"name": "cluster", "projected": {"defaultMode": 0o440, "sources": [
        {"configMap": {"name": "winnow-cluster", "items": [{"key": "shards.json", "path": "shards.json"}]}},
        {"secret": {"name": "winnow-keys", "items": [{"key": "shard.key", "path": "shard.key"}]}}]}}
    keys = {"name": "keys", "secret": {"secretName": "winnow-keys", "defaultMode": 0o440,
                                       "items": [{"key": "router-api-keys", "path": "api-keys"}]}}
    c = container("router", a.image,
                  ["--router", "/etc/winnow/cluster/shards.json", "--listen", "0.0.0.0:%d" % PORT,
                   "--api-keys", "/etc/winnow/keys/api-keys"],
                  [{"name": "cluster", "mountPath": "/etc/winnow/cluster", "readOnly": True},
                   {"name": "keys", "mountPath": "/etc/winnow/keys", "readOnly": True},
                   {"name": "tmp", "mountPath": "/tmp"}],
                  {"cpu": "500m", "memory": "512Mi"}, {"cpu": "2", "memory": "2Gi"})
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": meta("winnow-router", a.namespace, "router"),
           "spec": {"replicas": a.routers, "selector": {"matchLabels": sel},
                    "template": {"metadata": {"labels": sel},
                                 "spec": {"securityContext": POD_SECURITY,
                                          "containers": [c], "volumes": [cluster, keys, TMP]}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": meta("winnow", a.namespace, "router"),
           "spec": {"selector": sel, "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]}}
    return [dep, svc]


def keys(a):
    shard_key = a.shard_key or secrets.token_hex(32)
    digest = hashlib.sha256(shard_key.encode()).hexdigest()
    if a.client_keys:
        with open(a.client_keys, encoding="utf-8") as f:
            client = f.read()
    else:
        k = secrets.token_hex(32)
        client = "admin %s generated\n" % hashlib.sha256(k.encode()).hexdigest()
        print("render.py: the router's admin key (kept nowhere else): %s" % k, file=sys.stderr)
    return {"shard-api-keys": "admin %s router\n" % digest, "shard.key": shard_key + "\n",
            "router-api-keys": client}


def render(a):
    ns = a.namespace
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": meta("winnow-keys", ns, "keys"),
              "type": "Opaque", "stringData": keys(a)}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("winnow-cluster", ns, "router"),
          "data": {"shards.json": shards_json(a.n, ns, a.virtual_shards)}}
    return ([secret] + shard_objects(a, {"app.kubernetes.io/name": "winnow",
                                         "app.kubernetes.io/component": "shard"})
            + [cm] + router_objects(a, {"app.kubernetes.io/name": "winnow",
                                         "app.kubernetes.io/component": "router"}))


def parse(argv):
    p = argparse.ArgumentParser(prog="render.py", description=__doc__.split("\n")[0])
    p.add_argument("n", type=int, help="number of shards (1..1024)")
    p.add_argument("--image", default="winnow:latest", help="container image holding winnowd")
    p.add_argument("--namespace", default="winnow")
    p.add_argument("--routers", type=int, default=2, help="router replicas (default 2)")
    p.add_argument("--storage", default="100Gi", help="each shard's volume (default 100Gi)")
    p.add_argument("--storage-class", default="", help="the claims' storageClassName")
    p.add_argument("--shard-cpu", default="2", help="a shard's CPU request (default 2)")
    p.add_argument("--shard-cpu-limit", default="4")
    p.add_argument("--shard-memory", default="8Gi", help="a shard's memory request (default 8Gi)")
    p.add_argument("--shard-memory-limit", default="16Gi")
    p.add_argument("--virtual-shards", type=int, default=1024)
    p.add_argument("--shard-key", default="", help="key the router sends to the shards")
    p.add_argument("--client-keys", default="", help="keys file of the router's clients")
    p.add_argument("-o", "--output", default="-", help="output file (default stdout)")
    a = p.parse_args(argv)
    if not 1 <= a.n <= min(1024, a.virtual_shards):
        p.error("N must be between 1 and min(1024, --virtual-shards)")
    if not 1 <= a.virtual_shards <= 1 << 20:
        p.error("--virtual-shards must be between 1 and 2^20")
    if not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", a.namespace):
        p.error("--namespace must be a DNS label")
    return a


def main(argv):
    a = parse(argv)
    text = yaml_docs(render(a))
    if a.output == "-":
        sys.stdout.write(text)
    else:
        with open(a.output, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
