#!/usr/bin/env python3
"""Checks deploy/k8s without a cluster: every manifest parses as YAML, kustomization.yaml
lists exactly the manifests beside it, and each object has the fields mieruka relies on:
Deployments with liveness (/healthz) and readiness (/readyz) probes on a named port,
resource requests and limits, a non-root security context and the config mounted;
a Service and a PodDisruptionBudget selecting each Deployment's pods; the ConfigMap
holding each role's config. Also parses the Grafana provisioning and Alertmanager YAML.

Run by exporter/tests/rules.rs (cargo test); needs PyYAML (Debian's python3-yaml).
Prints "ok" and exits 0, or lists every problem and exits 1.
"""

import pathlib
import sys

try:
    import yaml
except ImportError:
    sys.exit("PyYAML is missing: apt-get install python3-yaml (scripts/test.sh does)")

HERE = pathlib.Path(__file__).resolve().parent
DEPLOY = HERE.parent
ROLES = ["ingest", "aggregate", "export"]
problems = []


def need(cond, where, what):
    if not cond:
        problems.append(f"{where}: {what}")
    return cond


def load_all(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        problems.append(f"{path.name}: not YAML: {e}")
        return []


def dig(obj, *keys):
    for k in keys:
        if isinstance(obj, dict):
            obj = obj.get(k)
        elif isinstance(obj, list) and isinstance(k, int) and k < len(obj):
            obj = obj[k]
        else:
            return None
    return obj


API = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "PodDisruptionBudget": "policy/v1",
}

# kustomization.yaml
kust = load_all(HERE / "kustomization.yaml")
kust = kust[0] if kust else {}
need(kust.get("apiVersion") == "kustomize.config.k8s.io/v1beta1", "kustomization.yaml", "apiVersion")
need(kust.get("kind") == "Kustomization", "kustomization.yaml", "kind")
listed = set(kust.get("resources") or [])
present = {p.name for p in HERE.glob("*.yaml")} - {"kustomization.yaml"}
need(listed == present, "kustomization.yaml",
     f"resources {sorted(listed)} differ from the manifests {sorted(present)}")
need(any(i.get("name") == "mieruka" for i in kust.get("images") or []),
     "kustomization.yaml", "no image override for `mieruka`")

objects = []
for path in sorted(HERE.glob("*.yaml")):
    if path.name == "kustomization.yaml":
        continue
    for doc in load_all(path):
        where = f"{path.name}: {doc.get('kind')}/{dig(doc, 'metadata', 'name')}"
        kind = doc.get("kind")
        need(kind in API, where, f"unexpected kind {kind!r}")
        need(doc.get("apiVersion") == API.get(kind), where,
             f"apiVersion {doc.get('apiVersion')!r}, expected {API.get(kind)!r}")
        need(bool(dig(doc, "metadata", "name")), where, "no metadata.name")
        objects.append((where, doc))


def of_kind(kind):
    return [(w, d) for w, d in objects if d.get("kind") == kind]


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


deployments = of_kind("Deployment")
config_files = set()
for where, cm in of_kind("ConfigMap"):
    config_files |= set((cm.get("data") or {}).keys())
for role in ROLES:
    need(f"{role}.toml" in config_files, "configmap.yaml", f"no {role}.toml")

roles_seen = set()
for where, d in deployments:
    spec = d.get("spec") or {}
    match = dig(spec, "selector", "matchLabels") or {}
    pod_labels = dig(spec, "template", "metadata", "labels") or {}
    need(selects(match, pod_labels), where, "selector does not match the pod template's labels")
    role = pod_labels.get("app.kubernetes.io/component")
    need(role in ROLES, where, f"component label {role!r} is not a role")
    roles_seen.add(role)
    need((spec.get("replicas") or 0) >= 2, where, "fewer than 2 replicas (the PDB would block drains)")
    pod = dig(spec, "template", "spec") or {}
    need(dig(pod, "securityContext", "runAsNonRoot") is True, where, "pods may run as root")
    containers = pod.get("containers") or []
    need(len(containers) == 1, where, "expected one container")
    for c in containers:
        cw = f"{where} container {c.get('name')}"
        args = c.get("args") or []
        need(role in args, cw, f"args {args} do not run the {role} role")
        need(f"/etc/mieruka/{role}.toml" in args, cw, "does not read its config file")
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
        need("http" in ports, cw, "no port named http")
        for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
            need(dig(c, probe, "httpGet", "path") == path, cw, f"{probe} is not GET {path}")
            need(dig(c, probe, "httpGet", "port") in ("http", ports.get("http")), cw,
                 f"{probe} does not probe the http port")
        for kind in ("requests", "limits"):
            for res in ("cpu", "memory"):
                need(dig(c, "resources", kind, res) is not None, cw, f"no resources.{kind}.{res}")
        need(dig(c, "securityContext", "allowPrivilegeEscalation") is False, cw,
             "allowPrivilegeEscalation is not false")
        mounts = {m.get("mountPath") for m in c.get("volumeMounts") or []}
        need("/etc/mieruka" in mounts, cw, "config not mounted at /etc/mieruka")
        env = {e.get("name") for e in c.get("env") or []}
        # Every role opens PostgreSQL: ingest keeps its refusals in the `rejected` table.
        need("PGPASSWORD" in env, cw, "no PGPASSWORD from a Secret")
    vols = {v.get("name"): v for v in pod.get("volumes") or []}
    need(dig(vols.get("config"), "configMap", "name") == "mieruka-config", where,
         "volume config is not the mieruka-config ConfigMap")
    services = [w for w, s in of_kind("Service") if selects(dig(s, "spec", "selector"), pod_labels)]
    need(len(services) == 1, where, f"{len(services)} Services select its pods (expected 1)")
    pdbs = [w for w, p in of_kind("PodDisruptionBudget")
            if selects(dig(p, "spec", "selector", "matchLabels"), pod_labels)]
    need(len(pdbs) == 1, where, f"{len(pdbs)} PodDisruptionBudgets select its pods (expected 1)")
need(roles_seen == set(ROLES), "deployments", f"roles {sorted(roles_seen)}, expected {ROLES}")

for where, p in of_kind("PodDisruptionBudget"):
    spec = p.get("spec") or {}
    need(("minAvailable" in spec) != ("maxUnavailable" in spec), where,
         "set exactly one of minAvailable and maxUnavailable")

for where, s in of_kind("Service"):
    for port in dig(s, "spec", "ports") or []:
        need(port.get("targetPort") == "http", where, "targetPort is not the named port http")

# Other YAML of deploy/ that no tool here validates.
for path in sorted((DEPLOY / "grafana" / "provisioning").rglob("*.yml")):
    docs = load_all(path)
    need(len(docs) == 1 and docs[0].get("apiVersion") == 1, path.name, "apiVersion 1 expected")
ds = load_all(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
need(bool(ds) and any(d.get("uid") == "prometheus" for d in ds[0].get("datasources") or []),
     "datasources/prometheus.yml", "no datasource with uid prometheus (the dashboards use it)")
load_all(DEPLOY / "alertmanager" / "alertmanager.yml")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"ok: {len(objects)} objects in {len(present)} manifests")
