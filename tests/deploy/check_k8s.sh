#!/usr/bin/env bash
# check_k8s.sh — renders deploy/k8s/overlays/* with `kubectl kustomize` and checks the objects.
#
#   bash tests/deploy/check_k8s.sh      # exit 0 and one summary line, or 1 naming each problem
#
# Without kubectl (Debian has no package of it) it warns and checks the raw YAML of the base and
# the overlays instead: the same assertions, minus what only rendering resolves (generated
# name suffixes, the namespace, the image override); a YAML error there is a traceback.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/usr/bin/python3}
KUBECTL=${KUBECTL:-kubectl}     # kubectl >= 1.27 (kustomize v5); not packaged by Debian
K8S=deploy/k8s

# The router's rules are a copy (kustomize loads nothing outside its directory): keep it true.
if ! cmp -s deploy/config/routing.yaml "$K8S/base/config/routing.yaml"; then
    echo "check_k8s: $K8S/base/config/routing.yaml differs from deploy/config/routing.yaml" \
        "(copy it again)" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mode=rendered
overlays=()
for dir in "$K8S"/overlays/*/; do
    overlays+=("${dir%/}")
done
if [ "${#overlays[@]}" -eq 0 ]; then
    echo "check_k8s: no overlay under $K8S/overlays" >&2
    exit 1
fi
if command -v "$KUBECTL" >/dev/null 2>&1; then
    for overlay in "${overlays[@]}"; do
        out="$tmp/$(basename "$overlay").yaml"
        if ! "$KUBECTL" kustomize "$overlay" >"$out" 2>"$tmp/err"; then
            echo "check_k8s: kubectl kustomize $overlay failed:" >&2
            cat "$tmp/err" >&2
            exit 1
        fi
    done
else
    echo "check_k8s: WARNING: $KUBECTL not found; checking the raw YAML only (install kubectl" \
        ">= 1.27 to render with kustomize)" >&2
    mode=raw
fi

exec "$PYTHON" - "$mode" "$tmp" "$K8S" "${overlays[@]}" <<'PY'
"""Assertions over the rendered (or raw) Kubernetes objects; every failure is listed."""
import glob
import os
import sys

import yaml

mode, tmp, k8s_dir, overlays = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
SCALABLE = ["intake", "classifier", "router", "notifier", "caselookup", "desk"]
# Daemons without a bus connection: no CURVE key at all (none today: the desk asks caselookup
# for its case panel).
NO_BUS = []
BUSES = ["wasl-bus-a", "wasl-bus-b"]
BUS_PORTS = set(range(7100, 7108))
# Secrets the wasl-keygen Job makes in the cluster (not in any overlay).
KEYGEN_SECRETS = {f"wasl-curve-{d}" for d in SCALABLE + ["bus"] if f"wasl-{d}" not in NO_BUS}
errors = []


def fail(where, msg):
    errors.append(f"{where}: {msg}")


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def raw_sets():
    """Without kubectl: the base's resources plus each overlay's, and generated data by hand."""
    def kustomize_dir(d):
        with open(os.path.join(d, "kustomization.yaml"), encoding="utf-8") as f:
            kz = yaml.safe_load(f)
        objs = []
        for r in kz.get("resources", []):
            p = os.path.normpath(os.path.join(d, r))
            objs += kustomize_dir(p) if os.path.isdir(p) else load(p)
        for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
            for g in kz.get(key, []):
                data = {}
                for env in g.get("envs", []):
                    with open(os.path.join(d, env), encoding="utf-8") as f:
                        for line in f:
                            if "=" in line and not line.lstrip().startswith("#"):
                                k, v = line.rstrip("\n").split("=", 1)
                                data[k.strip()] = v
                for lit in g.get("literals", []):
                    k, v = lit.split("=", 1)
                    data[k] = v
                for fl in g.get("files", []):
                    data[fl.split("=", 1)[0] if "=" in fl else os.path.basename(fl)] = "x"
                same = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == g["name"]]
                if same and g.get("behavior") in ("merge", "replace"):
                    same[0].setdefault("data", {}).update(data)
                else:
                    objs.append({"apiVersion": "v1", "kind": kind,
                                 "metadata": {"name": g["name"]}, "data": data})
        return objs
    return {o: kustomize_dir(o) for o in overlays}


def rendered_sets():
    return {o: load(os.path.join(tmp, os.path.basename(o) + ".yaml")) for o in overlays}


def selects(selector, labels):
    ml = (selector or {}).get("matchLabels") or {}
    return bool(ml) and all(labels.get(k) == v for k, v in ml.items())


def check(name, objs):
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    deps = by_kind.get("Deployment", {})
    svcs = by_kind.get("Service", {})
    cms = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    pdbs = list(by_kind.get("PodDisruptionBudget", {}).values())
    hpas = by_kind.get("HorizontalPodAutoscaler", {})
    images = set()

    def check_pod(where, spec, is_daemon):
        psc = spec.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True:
            fail(where, "pod securityContext.runAsNonRoot is not true")
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            cw = f"{where}/{c['name']}"
            if not cw.endswith("Job wasl-keygen/store"):  # kubectl stores the keys
                images.add(c.get("image"))
            csc = c.get("securityContext") or {}
            if csc.get("readOnlyRootFilesystem") is not True:
                fail(cw, "readOnlyRootFilesystem is not true")
            if csc.get("allowPrivilegeEscalation") is not False:
                fail(cw, "allowPrivilegeEscalation is not false")
            if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
                fail(cw, "capabilities do not drop ALL")
            res = c.get("resources") or {}
            for k in ("cpu", "memory"):
                if k not in (res.get("requests") or {}):
                    fail(cw, f"no resources.requests.{k}")
            if "memory" not in (res.get("limits") or {}):
                fail(cw, "no resources.limits.memory")
            for ef in c.get("envFrom", []):
                ref = (ef.get("configMapRef") or {}).get("name")
                if ref and ref not in cms:
                    fail(cw, f"envFrom ConfigMap {ref} does not exist")
                ref = (ef.get("secretRef") or {}).get("name")
                if ref and ref not in secrets:
                    fail(cw, f"envFrom Secret {ref} does not exist")
            for e in c.get("env", []):
                vf = e.get("valueFrom") or {}
                for kind, pool in (("configMapKeyRef", cms), ("secretKeyRef", secrets)):
                    ref = vf.get(kind)
                    if not ref:
                        continue
                    obj = pool.get(ref["name"])
                    if obj is None:
                        fail(cw, f"env {e['name']}: {kind} {ref['name']} does not exist")
                    elif ref["key"] not in {**(obj.get("data") or {}),
                                            **(obj.get("stringData") or {})}:
                        fail(cw, f"env {e['name']}: key {ref['key']} not in {ref['name']}")
            if not is_daemon:
                continue
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            if "admin" not in ports:
                fail(cw, "no container port named admin")
            for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                hg = (c.get(probe) or {}).get("httpGet") or {}
                if hg.get("path") != path or hg.get("port") != "admin":
                    fail(cw, f"{probe} is not httpGet {path} on port admin")
            ann = (spec.get("_annotations") or {})
            if ann.get("prometheus.io/scrape") != "true" or \
                    str(ann.get("prometheus.io/port")) != str(ports.get("admin")):
                fail(cw, "prometheus.io scrape/port annotations missing or not the admin port")
        for v in spec.get("volumes", []):
            for kind, pool in (("configMap", cms), ("secret", secrets)):
                ref = v.get(kind)
                if not ref:
                    continue
                rname = ref.get("name") if kind == "configMap" else ref.get("secretName")
                if rname not in pool and not ref.get("optional") and \
                        not (kind == "secret" and rname in KEYGEN_SECRETS):
                    fail(where, f"volume {v['name']}: {kind} {rname} does not exist")

    for dname, d in deps.items():
        where = f"{name}: Deployment {dname}"
        tpl = d["spec"]["template"]
        labels = tpl["metadata"].get("labels") or {}
        if not selects(d["spec"].get("selector"), labels):
            fail(where, "selector does not match its pod labels")
        spec = dict(tpl["spec"], _annotations=tpl["metadata"].get("annotations"))
        check_pod(where, spec, True)
        if not spec.get("terminationGracePeriodSeconds"):
            fail(where, "no terminationGracePeriodSeconds")
        if not any(selects(p["spec"].get("selector"), labels) for p in pdbs):
            fail(where, "no PodDisruptionBudget selects its pods")
        if not any(selects({"matchLabels": s["spec"].get("selector")}, labels)
                   for s in svcs.values()):
            fail(where, "no Service selects its pods")
    for jname, j in by_kind.get("Job", {}).items():
        check_pod(f"{name}: Job {jname}", j["spec"]["template"]["spec"], False)

    for p in pdbs:
        if not any(selects(p["spec"].get("selector"), d["spec"]["template"]["metadata"]
                           .get("labels") or {}) for d in deps.values()):
            fail(f"{name}: PodDisruptionBudget {p['metadata']['name']}", "selects no Deployment")

    for daemon in SCALABLE:
        dname = f"wasl-{daemon}"
        if dname not in deps:
            fail(name, f"no Deployment {dname}")
            continue
        targets = [h for h in hpas.values()
                   if h["spec"]["scaleTargetRef"].get("name") == dname
                   and h["spec"]["scaleTargetRef"].get("kind") == "Deployment"]
        if not targets:
            fail(name, f"no HorizontalPodAutoscaler targets Deployment {dname}")
        if "replicas" in deps[dname]["spec"]:
            fail(name, f"Deployment {dname} sets replicas although an HPA owns the count")
    for hname, h in hpas.items():
        ref = h["spec"]["scaleTargetRef"]
        if h["apiVersion"] != "autoscaling/v2" or ref.get("kind") != "Deployment" \
                or ref.get("name") not in deps:
            fail(f"{name}: HPA {hname}", f"targets a missing {ref.get('kind')} {ref.get('name')}")
        elif ref.get("name") in BUSES:
            fail(f"{name}: HPA {hname}", "scales a bus")
        if not any(m.get("type") == "Resource" and m["resource"]["name"] == "cpu"
                   for m in h["spec"].get("metrics", [])):
            fail(f"{name}: HPA {hname}", "has no CPU metric")

    for bus in BUSES:
        if bus not in deps:
            fail(name, f"no Deployment {bus}")
        elif deps[bus]["spec"].get("replicas") != 1:
            fail(name, f"Deployment {bus} must have replicas: 1")
        svc = svcs.get(bus)
        if svc is None:
            fail(name, f"no Service {bus}")
        elif not BUS_PORTS <= {p["port"] for p in svc["spec"].get("ports", [])}:
            fail(name, f"Service {bus} does not expose every bus port 7100-7107")

    env_cm = cms.get("wasl-env") or next((c for n, c in cms.items()
                                           if n.startswith("wasl-env-")), None)
    if env_cm is None:
        fail(name, "no ConfigMap wasl-env")
    else:
        bus_env = (env_cm.get("data") or {}).get("WASL_BUS", "")
        for bus in BUSES:
            if f"tcp://{bus}:7100" not in bus_env:
                fail(name, f"WASL_BUS does not list tcp://{bus}:7100: {bus_env!r}")
        for key in ("WASL_PG_URL", "WASL_REDIS_URL"):
            url = (env_cm.get("data") or {}).get(key, "")
            if "@" in url and ":" in url.split("://", 1)[-1].split("@", 1)[0]:
                fail(name, f"{key} in the ConfigMap carries a password")

    # Issue 13, findings 8 and 12: own roles and keys, CURVE on, default-deny network.
    def container_env(c):
        return {e["name"]: e.get("value") for e in c.get("env", [])}

    for dname, d in deps.items():
        where = f"{name}: Deployment {dname}"
        spec = d["spec"]["template"]["spec"]
        c = spec["containers"][0]
        role = dname.removeprefix("wasl-")
        own = "wasl-curve-bus" if dname in BUSES else f"wasl-curve-{role}"
        curve = [v for v in spec.get("volumes", []) if "secret" in v
                 and v["secret"].get("secretName", "").startswith("wasl-curve-")]
        if dname in NO_BUS:
            if curve:
                fail(where, "has no bus connection and must mount no CURVE Secret")
        elif [v["secret"]["secretName"] for v in curve] != [own]:
            fail(where, f"must mount its own CURVE Secret {own} only")
        elif dname not in BUSES:
            paths = sorted(i["path"] for i in curve[0]["secret"].get("items", []))
            if paths != sorted([f"{role}.secret", "public/bus.pub"]):
                fail(where, f"CURVE volume must hold its secret and bus.pub only: {paths}")
        if dname not in BUSES and container_env(c).get("PGUSER") != f"wasl_{role}":
            fail(where, f"does not connect as its PostgreSQL role wasl_{role} (PGUSER)")
    # The desk's canned replies: set as systemd and the Dockerfile set them, to the directory
    # the image ships (the Dockerfile copies deploy/templates/ to SHARE/templates/).
    desk = deps.get("wasl-desk")
    if desk:
        replies = container_env(desk["spec"]["template"]["spec"]["containers"][0]) \
            .get("WASL_DESK_REPLIES")
        if replies != "/usr/local/share/wasl/templates/replies":
            fail(name, "Deployment wasl-desk does not set WASL_DESK_REPLIES to the replies the "
                 f"image ships (/usr/local/share/wasl/templates/replies): {replies!r}")
    jobs = by_kind.get("Job", {})
    mig = jobs.get("wasl-migrate")
    if mig and container_env(mig["spec"]["template"]["spec"]["containers"][0]).get("PGUSER") \
            != "wasl":
        fail(name, "Job wasl-migrate does not run as the owner role wasl")
    keygen = jobs.get("wasl-keygen")
    if not keygen or "keygen" not in " ".join(
            " ".join(c.get("command", [])) for c in
            keygen["spec"]["template"]["spec"].get("initContainers", [])):
        fail(name, "no Job wasl-keygen running `waslctl keygen`")
    if env_cm is not None and not (env_cm.get("data") or {}).get("WASL_CURVE_DIR"):
        fail(name, "CURVE is off (WASL_CURVE_DIR empty in wasl-env)")
    pols = list(by_kind.get("NetworkPolicy", {}).values())
    if not any(p["spec"].get("podSelector") == {} and
               set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"} and
               not p["spec"].get("ingress") and not p["spec"].get("egress") for p in pols):
        fail(name, "no default-deny NetworkPolicy (podSelector {}, Ingress+Egress, no rule)")

    def pol_selects(pol, labels):
        sel = pol["spec"].get("podSelector") or {}
        if sel == {}:
            return False  # the default deny and DNS rules select everything
        ok = all(labels.get(k) == v for k, v in (sel.get("matchLabels") or {}).items())
        for ex in sel.get("matchExpressions") or []:
            ok = ok and ex["operator"] == "In" and labels.get(ex["key"]) in ex["values"]
        return ok

    workloads = [(f"Deployment {n}", d) for n, d in deps.items()] + \
        [(f"Job {n}", j) for n, j in jobs.items()]
    for wname, w in workloads:
        labels = w["spec"]["template"]["metadata"].get("labels") or {}
        if not any(pol_selects(p, labels) and p["spec"].get("egress" if "Job" in wname or
                   labels.get("app.kubernetes.io/component") != "bus" else "ingress")
                   for p in pols):
            fail(f"{name}: {wname}", "no NetworkPolicy allows it anything (it cannot work)")

    if len(images) != 1:
        fail(name, f"containers use different images: {sorted(map(str, images))}")
    return len(deps), len(hpas), len(pdbs)


# The base must carry no secret value: no Secret object, no secretGenerator.
for path in glob.glob(os.path.join(k8s_dir, "base", "**", "*.yaml"), recursive=True):
    for doc in load(path):
        if doc.get("kind") == "Secret" or "secretGenerator" in doc:
            fail(path, "the base carries a Secret; secrets belong to an overlay")

sets = rendered_sets() if mode == "rendered" else raw_sets()
counts = {o: check(os.path.basename(o), objs) for o, objs in sets.items()}
if errors:
    for e in errors:
        print(f"check_k8s: {e}", file=sys.stderr)
    print(f"check_k8s: FAILED ({len(errors)} problems)", file=sys.stderr)
    sys.exit(1)
summary = ", ".join(f"{os.path.basename(o)}: {d} Deployments, {h} HPAs, {p} PDBs"
                    for o, (d, h, p) in counts.items())
print(f"check_k8s: ok ({mode}; {summary})")
PY
