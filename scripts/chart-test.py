"""The checks of scripts/chart-test.sh, which installs the tools and runs this file with them.

Each check prints PASS or FAIL with its name; the last line is "chart-test: N passed, N failed",
and the exit code is 1 when any check failed.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import jsonschema
import yaml

KUBE_VERSION = "1.33.0"
API_VERSIONS = ["monitoring.coreos.com/v1", "keda.sh/v1alpha1"]
NAMESPACE = "streaming"
UID = 65532
CONFIG_PATH = "/etc/ferry/ferry.yaml"
SECRET_PLACEHOLDER = "chart-test-secret"
BASE_KINDS = {"ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget"}
# Custom resources: (apiVersion, kind) -> CRD file in the --crds folder.
CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobjects.keda.sh.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitors.monitoring.coreos.com.yaml",
}


class ValueSet:
    def __init__(self, name, release, files=(), sets=(), extra_kinds=(), autoscaled=False):
        self.name = name
        self.release = release
        self.files = list(files)
        self.sets = list(sets)
        self.kinds = BASE_KINDS | set(extra_kinds)
        self.autoscaled = autoscaled


VALUE_SETS = [
    ValueSet("defaults", "ferry"),
    ValueSet("keda", "ferry", files=["ci/keda-values.yaml"], extra_kinds=["ScaledObject"], autoscaled=True),
    ValueSet("servicemonitor", "metrics", files=["ci/servicemonitor-values.yaml"], extra_kinds=["ServiceMonitor"]),
    ValueSet("aws", "ferry", files=["ci/aws-values.yaml"]),
    ValueSet("hpa", "ferry", sets=["autoscaling.enabled=true"], extra_kinds=["HorizontalPodAutoscaler"], autoscaled=True),
]


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS {name}")
        else:
            self.failed.append(name)
            print(f"FAIL {name}" + (f": {detail}" if detail else ""))
        return ok


class Tools:
    def __init__(self, args):
        self.repo = args.repo
        self.chart = os.path.join(args.repo, "deploy/helm/ferry")
        self.helm_bin = args.helm
        self.ferry_bin = args.ferry
        self.crds = args.crds
        self.kubernetes_validate = args.kubernetes_validate

    def helm(self, *args):
        p = subprocess.run([self.helm_bin, *args], capture_output=True, text=True)
        return p.returncode, p.stdout, p.stderr

    def template(self, release, files=(), sets=(), api_versions=API_VERSIONS):
        args = ["template", release, self.chart, "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
        for a in api_versions:
            args += ["--api-versions", a]
        for f in files:
            args += ["-f", os.path.join(self.chart, f)]
        for s in sets:
            args += ["--set", s]
        rc, out, err = self.helm(*args)
        docs = [d for d in yaml.safe_load_all(out) if d] if rc == 0 else []
        return rc, docs, err

    def ferry_config(self, config_text, env):
        """Runs `ferry config` on config_text with exactly env; returns (rc, effective config, stderr)."""
        if not self.ferry_bin:
            return -1, None, "no ferry binary: go build ./cmd/ferry failed"
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(config_text)
        try:
            p = subprocess.run([self.ferry_bin, "config", "--config", f.name], env=env, capture_output=True, text=True)
        finally:
            os.unlink(f.name)
        effective = yaml.safe_load(p.stdout) if p.returncode == 0 else None
        return p.returncode, effective, p.stderr


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def one(docs, kind):
    found = by_kind(docs, kind)
    return found[0] if len(found) == 1 else None


def dig(obj, *path, default=None):
    for p in path:
        if isinstance(obj, dict) and p in obj:
            obj = obj[p]
        elif isinstance(obj, list) and isinstance(p, int) and p < len(obj):
            obj = obj[p]
        else:
            return default
    return obj


def go_duration_seconds(s):
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)", s)
    return sum(float(n) * units[u] for n, u in parts)


def service_link_env(services):
    """The variables the kubelet injects for each Service of the namespace (enableServiceLinks),
    plus the API server's own."""
    env = {}
    all_services = [("kubernetes", "10.96.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}])]
    for i, svc in enumerate(services):
        all_services.append((svc["metadata"]["name"], f"10.96.1.{i + 10}", svc["spec"]["ports"]))
    for name, host, ports in all_services:
        n = name.upper().replace("-", "_")
        env[f"{n}_SERVICE_HOST"] = host
        env[f"{n}_SERVICE_PORT"] = str(ports[0]["port"])
        env[f"{n}_PORT"] = f"{ports[0].get('protocol', 'TCP').lower()}://{host}:{ports[0]['port']}"
        for port in ports:
            proto = port.get("protocol", "TCP")
            if port.get("name"):
                env[f"{n}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
            stem = f"{n}_PORT_{port['port']}_{proto}"
            env[stem] = f"{proto.lower()}://{host}:{port['port']}"
            env[stem + "_PROTO"] = proto.lower()
            env[stem + "_PORT"] = str(port["port"])
            env[stem + "_ADDR"] = host
    return env


def pod_env(container, services):
    """The environment ferry sees in the pod: the image's, the service links, then the container's
    env (secrets replaced by a placeholder). envFrom cannot be resolved offline and is left out."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/home/nonroot", "HOSTNAME": "ferry-7d9f8-abcde"}
    env.update(service_link_env(services))
    for e in container.get("env", []):
        env[e["name"]] = e["value"] if "value" in e else SECRET_PLACEHOLDER
    return env


# ---- offline schema validation ----

def strict_crd_schema(schema):
    """A CRD's openAPIV3Schema as JSON Schema with kubectl --validate=strict's rule: unknown fields
    are errors, except where the schema preserves them."""
    if isinstance(schema, list):
        return [strict_crd_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for k, v in schema.items():
        if k == "properties":
            out[k] = {name: strict_crd_schema(s) for name, s in v.items()}
        elif k in ("items", "additionalProperties", "anyOf", "allOf", "oneOf", "not"):
            out[k] = strict_crd_schema(v)
        else:
            out[k] = v
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def cel_rules(schema, path=()):
    """Every x-kubernetes-validations rule in a schema, with the object path it applies to."""
    found = []
    if isinstance(schema, dict):
        for r in schema.get("x-kubernetes-validations", []):
            found.append((path, r["rule"]))
        for name, s in schema.get("properties", {}).items():
            found += cel_rules(s, path + (name,))
        if isinstance(schema.get("items"), dict):
            found += cel_rules(schema["items"], path + ("[]",))
    return found


# The CEL rules of the pinned CRDs, evaluated by hand (a CRD upgrade with a new rule fails the check
# until it is added here).
KNOWN_CEL = {
    (("spec",), "!has(self.minReplicaCount) || self.minReplicaCount <= (has(self.maxReplicaCount)\n"
                "? self.maxReplicaCount : 100)"):
        lambda spec: "minReplicaCount" not in spec or spec["minReplicaCount"] <= spec.get("maxReplicaCount", 100),
}


def normalize_rule(rule):
    return " ".join(rule.split())


KNOWN_CEL_NORMALIZED = {(p, normalize_rule(r)): f for (p, r), f in KNOWN_CEL.items()}


def validate_custom(tools, doc):
    """Errors of a custom resource against its CRD's schema; [] when it validates."""
    crd_file = CRDS.get((doc.get("apiVersion"), doc.get("kind")))
    if crd_file is None:
        return [f"no CRD known for {doc.get('apiVersion')} {doc.get('kind')}"]
    with open(os.path.join(tools.crds, crd_file)) as f:
        crd = yaml.safe_load(f)
    group, version = doc["apiVersion"].split("/")
    errors = []
    if crd["spec"]["group"] != group or crd["spec"]["names"]["kind"] != doc["kind"]:
        errors.append(f"CRD {crd_file} is for {crd['spec']['group']} {crd['spec']['names']['kind']}")
    versions = [v for v in crd["spec"]["versions"] if v["name"] == version and v.get("served")]
    if not versions:
        return errors + [f"CRD {crd_file} serves no version {version}"]
    schema = versions[0]["schema"]["openAPIV3Schema"]
    validator = jsonschema.Draft7Validator(strict_crd_schema(schema))
    for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
        errors.append(f"{'.'.join(str(p) for p in e.path) or '(root)'}: {e.message}")
    for path, rule in cel_rules(schema):
        fn = KNOWN_CEL_NORMALIZED.get((path, normalize_rule(rule)))
        if fn is None:
            errors.append(f"CEL rule at {'.'.join(path)} is not checked by chart-test.py: {rule}")
        elif "[]" not in path:
            target = dig(doc, *path)
            if target is not None and not fn(target):
                errors.append(f"{'.'.join(path)}: violates CEL rule {rule!r}")
    return errors


def validate_builtin(tools, docs):
    """kubernetes-validate --strict on the built-in objects; returns (ok, output)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(docs, f)
    try:
        p = subprocess.run([tools.kubernetes_validate, "-k", KUBE_VERSION, "--strict", "--quiet", f.name],
                           capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    out = (p.stdout + p.stderr).strip()
    # Any line is a warning (no schema for the kind: a wrong apiVersion) or an error.
    return p.returncode == 0 and out == "", out


# ---- the checks ----

def check_value_set(c, tools, vs, dockerfile):
    tag = f"[{vs.name}]"
    lint_args = ["lint", "--strict", "--kube-version", KUBE_VERSION, tools.chart]
    for f in vs.files:
        lint_args += ["-f", os.path.join(tools.chart, f)]
    for s in vs.sets:
        lint_args += ["--set", s]
    rc, out, err = tools.helm(*lint_args)
    bad = [l for l in (out + err).splitlines() if re.search(r"\[(ERROR|WARNING)\]|Fail:", l)]
    c.check(f"{tag} helm lint --strict", rc == 0 and not bad, "\n".join(bad) or err.strip())

    rc, docs, err = tools.template(vs.release, vs.files, vs.sets)
    if not c.check(f"{tag} helm template renders", rc == 0, err.strip()):
        return
    kinds = sorted(d["kind"] for d in docs)
    c.check(f"{tag} renders exactly {sorted(vs.kinds)}", kinds == sorted(vs.kinds), f"got {kinds}")
    c.check(f"{tag} every object is in namespace {NAMESPACE}",
            all(dig(d, "metadata", "namespace") == NAMESPACE for d in docs))

    builtin = [d for d in docs if (d["apiVersion"], d["kind"]) not in CRDS]
    ok, out = validate_builtin(tools, builtin)
    c.check(f"{tag} kubernetes-validate -k {KUBE_VERSION} --strict: {len(builtin)} objects", ok, out)
    for d in docs:
        if (d["apiVersion"], d["kind"]) in CRDS:
            errors = validate_custom(tools, d)
            c.check(f"{tag} {d['kind']} validates against its CRD schema (strict)", not errors, "; ".join(errors))

    dep = one(docs, "Deployment")
    svc = one(docs, "Service")
    cm = one(docs, "ConfigMap")
    if not c.check(f"{tag} one Deployment, Service and ConfigMap", dep and svc and cm):
        return
    fullname = dep["metadata"]["name"]
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    containers = spec["containers"]
    ctr = containers[0]

    psc = spec.get("securityContext", {})
    csc = ctr.get("securityContext", {})
    c.check(f"{tag} pod securityContext: runAsNonRoot, runAsUser {UID}, seccomp RuntimeDefault",
            psc.get("runAsNonRoot") is True and psc.get("runAsUser") == UID
            and dig(psc, "seccompProfile", "type") == "RuntimeDefault", json.dumps(psc))
    c.check(f"{tag} container securityContext: read-only root, no privilege escalation, drop ALL, seccomp",
            csc.get("runAsNonRoot") is True and csc.get("runAsUser") == UID
            and csc.get("readOnlyRootFilesystem") is True and csc.get("allowPrivilegeEscalation") is False
            and dig(csc, "capabilities", "drop") == ["ALL"] and not dig(csc, "capabilities", "add")
            and dig(csc, "seccompProfile", "type") == "RuntimeDefault", json.dumps(csc))
    c.check(f"{tag} runs as the Dockerfile's USER", dockerfile.get("uid") == UID, f"Dockerfile USER {dockerfile.get('user')}")
    c.check(f"{tag} container args are the image's CMD", ctr.get("args") == dockerfile.get("cmd"),
            f"{ctr.get('args')} vs {dockerfile.get('cmd')}")

    ports = {p["name"]: p for p in ctr.get("ports", [])}
    metrics_port = dig(ports, "metrics", "containerPort")
    c.check(f"{tag} container port metrics is the image's EXPOSE {dockerfile.get('expose')}",
            metrics_port == dockerfile.get("expose"), f"ports {ctr.get('ports')}")
    c.check(f"{tag} liveness GET /healthz, readiness GET /readyz on port metrics",
            dig(ctr, "livenessProbe", "httpGet", "path") == "/healthz"
            and dig(ctr, "livenessProbe", "httpGet", "port") == "metrics"
            and dig(ctr, "readinessProbe", "httpGet", "path") == "/readyz"
            and dig(ctr, "readinessProbe", "httpGet", "port") == "metrics")
    c.check(f"{tag} resources set", bool(dig(ctr, "resources", "requests")) and bool(dig(ctr, "resources", "limits")))
    mounts = {m["mountPath"]: m for m in ctr.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    cfg_mount = mounts.get(CONFIG_PATH)
    c.check(f"{tag} ConfigMap mounted read-only at {CONFIG_PATH}",
            cfg_mount is not None and cfg_mount.get("readOnly") is True
            and dig(volumes, cfg_mount["name"], "configMap", "name") == cm["metadata"]["name"]
            and cfg_mount.get("subPath") in cm["data"])
    checksum = dig(pod, "metadata", "annotations", "checksum/config", default="")
    c.check(f"{tag} checksum/config pod annotation", re.fullmatch(r"[0-9a-f]{64}", checksum) is not None, checksum)
    c.check(f"{tag} service links stay on (enableServiceLinks not false)", spec.get("enableServiceLinks", True) is True)
    sa_name = spec.get("serviceAccountName")
    sa = one(docs, "ServiceAccount")
    c.check(f"{tag} pod runs as the chart's ServiceAccount, API token not mounted",
            sa is not None and sa["metadata"]["name"] == sa_name and spec.get("automountServiceAccountToken") is False)

    has_replicas = "replicas" in dep["spec"]
    if vs.autoscaled:
        c.check(f"{tag} Deployment has no replicas field (the autoscaler owns it)", not has_replicas, str(dep["spec"].get("replicas")))
    else:
        c.check(f"{tag} Deployment sets replicas", has_replicas)
    autoscalers = by_kind(docs, "ScaledObject") + by_kind(docs, "HorizontalPodAutoscaler")
    c.check(f"{tag} at most one autoscaler (never a ScaledObject and an HPA)", len(autoscalers) <= 1,
            str([d["kind"] for d in autoscalers]))
    for a in autoscalers:
        c.check(f"{tag} {a['kind']} targets the Deployment",
                dig(a, "spec", "scaleTargetRef", "kind") == "Deployment"
                and dig(a, "spec", "scaleTargetRef", "name") == fullname)

    selector = dig(dep, "spec", "selector", "matchLabels", default={})
    pod_labels = dig(pod, "metadata", "labels", default={})
    c.check(f"{tag} Deployment selector matches its pod labels", selector and selector.items() <= pod_labels.items())
    svc_ports = svc["spec"]["ports"]
    c.check(f"{tag} Service {svc['metadata']['name']} selects the pods, port metrics {metrics_port} -> metrics",
            svc["metadata"]["name"] == fullname and svc["spec"]["selector"].items() <= pod_labels.items()
            and any(p.get("name") == "metrics" and p.get("port") == metrics_port and p.get("targetPort") == "metrics"
                    for p in svc_ports), json.dumps(svc["spec"]))
    pdb = one(docs, "PodDisruptionBudget")
    c.check(f"{tag} PodDisruptionBudget selects the pods, sets one of minAvailable/maxUnavailable",
            pdb is not None and dig(pdb, "spec", "selector", "matchLabels", default={}).items() <= pod_labels.items()
            and ("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"]))

    # ferry itself loads the rendered file with the pod's environment, service links included.
    env = pod_env(ctr, by_kind(docs, "Service"))
    rc, effective, err = tools.ferry_config(cm["data"][cfg_mount["subPath"]], env)
    prefix = svc["metadata"]["name"].upper().replace("-", "_") + "_"
    links = sorted(k for k in service_link_env([svc]) if k.startswith(prefix))
    c.check(f"{tag} ferry config accepts the rendered config with the pod env, {prefix}SERVICE_HOST and "
            f"{len(links) - 1} more service-link variables included, with no warning",
            rc == 0 and err.strip() == "", f"exit {rc}: {err.strip()}")
    if effective is None:
        return
    c.check(f"{tag} ferry listens on the metrics port", dig(effective, "observability", "listen") == f":{metrics_port}",
            str(dig(effective, "observability", "listen")))
    drain = go_duration_seconds(dig(effective, "delivery", "drain_timeout", default="0s"))
    grace = spec.get("terminationGracePeriodSeconds")
    c.check(f"{tag} terminationGracePeriodSeconds {grace} > delivery.drain_timeout {drain:g}s",
            isinstance(grace, int) and grace > drain)
    return docs, effective


def check_defaults(c, tools, docs, effective):
    svc = one(docs, "Service")
    c.check("[defaults] release ferry: the Service is named ferry", svc["metadata"]["name"] == "ferry", svc["metadata"]["name"])
    c.check("[defaults] no ServiceMonitor without serviceMonitor.enabled, though the API is there",
            not by_kind(docs, "ServiceMonitor"))


def check_keda(c, tools, docs, effective):
    so = one(docs, "ScaledObject")
    trig = dig(so, "spec", "triggers", 0, default={})
    md = trig.get("metadata", {})
    kafka = effective["kafka"]
    c.check("[keda] one kafka trigger", len(so["spec"]["triggers"]) == 1 and trig.get("type") == "kafka")
    c.check("[keda] no HorizontalPodAutoscaler beside the ScaledObject", not by_kind(docs, "HorizontalPodAutoscaler"))
    c.check("[keda] consumerGroup is the group ferry uses", md.get("consumerGroup") == kafka["group"],
            f"{md.get('consumerGroup')} vs {kafka['group']}")
    c.check("[keda] bootstrapServers are ferry's brokers", md.get("bootstrapServers") == ",".join(kafka["brokers"]),
            md.get("bootstrapServers"))
    c.check("[keda] topic is the one consumed topic", [md.get("topic")] == kafka["topics"], md.get("topic"))
    c.check("[keda] offsetResetPolicy is ferry's kafka.start", md.get("offsetResetPolicy") == kafka["start"])
    c.check("[keda] allowIdleConsumers false: replicas capped at the partition count",
            md.get("allowIdleConsumers") == "false")
    c.check("[keda] lagThreshold, activationLagThreshold, extra metadata and authenticationRef from values",
            md.get("lagThreshold") == "500" and md.get("activationLagThreshold") == "10" and md.get("tls") == "enable"
            and md.get("sasl") == "scram_sha512" and dig(trig, "authenticationRef", "name") == "ferry-kafka", json.dumps(trig))
    c.check("[keda] min 1, max 12 replicas", so["spec"].get("minReplicaCount") == 1 and so["spec"].get("maxReplicaCount") == 12)


def check_servicemonitor(c, tools, docs, effective):
    sm = one(docs, "ServiceMonitor")
    svc = one(docs, "Service")
    c.check("[servicemonitor] release metrics: objects named metrics-ferry", svc["metadata"]["name"] == "metrics-ferry")
    c.check("[servicemonitor] selects the Service, scrapes port metrics at /metrics",
            dig(sm, "spec", "selector", "matchLabels", default={}).items() <= svc["metadata"]["labels"].items()
            and dig(sm, "spec", "namespaceSelector", "matchNames") == [NAMESPACE]
            and dig(sm, "spec", "endpoints", 0, "port") == "metrics" and dig(sm, "spec", "endpoints", 0, "path") == "/metrics"
            and dig(sm, "spec", "endpoints", 0, "interval") == "15s")
    c.check("[servicemonitor] extra labels for the Prometheus selector", dig(sm, "metadata", "labels", "release") == "prometheus")


def check_aws(c, tools, docs, effective):
    sa = one(docs, "ServiceAccount")
    dep = one(docs, "Deployment")
    spec = dep["spec"]["template"]["spec"]
    ctr = spec["containers"][0]
    env = {e["name"]: e for e in ctr.get("env", [])}
    c.check("[aws] IRSA role annotation on the ServiceAccount",
            dig(sa, "metadata", "annotations", "eks.amazonaws.com/role-arn") == "arn:aws:iam::123456789012:role/ferry")
    c.check("[aws] FERRY_KAFKA_SASL_PASSWORD from the Secret",
            dig(env, "FERRY_KAFKA_SASL_PASSWORD", "valueFrom", "secretKeyRef") == {"name": "ferry-kafka", "key": "sasl-password"})
    c.check("[aws] ferry got the password from the environment (redacted in its output)",
            dig(effective, "kafka", "sasl", "password") == "[redacted]")
    c.check("[aws] env and extraEnv reach the container and ferry",
            dig(env, "AWS_ROLE_SESSION_NAME", "value") == "ferry"
            and dig(effective, "observability", "log_level") == "debug")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = {m["name"]: m for m in ctr.get("volumeMounts", [])}
    c.check("[aws] TLS Secret mounted read-only at /etc/ferry/tls",
            dig(volumes, "kafka-tls", "secret", "secretName") == "ferry-kafka-ca"
            and dig(mounts, "kafka-tls", "mountPath") == "/etc/ferry/tls" and dig(mounts, "kafka-tls", "readOnly") is True)
    c.check("[aws] ferry's kafka.tls.ca_file is in the mounted Secret",
            str(dig(effective, "kafka", "tls", "ca_file")).startswith("/etc/ferry/tls/"))
    pdb = one(docs, "PodDisruptionBudget")
    c.check("[aws] PodDisruptionBudget minAvailable 2", pdb["spec"].get("minAvailable") == 2
            and "maxUnavailable" not in pdb["spec"], json.dumps(pdb["spec"]))
    c.check("[aws] replicas 3, grace 90s", dep["spec"].get("replicas") == 3 and spec.get("terminationGracePeriodSeconds") == 90)


def check_rules(c, tools):
    """Properties across renders: the checksum, refused combinations, the capability gate, the schema."""
    def checksum(*sets):
        rc, docs, err = tools.template("ferry", sets=sets)
        dep = one(docs, "Deployment") if rc == 0 else None
        return dig(dep, "spec", "template", "metadata", "annotations", "checksum/config")

    base = checksum()
    c.check("checksum/config changes when a config value changes",
            base is not None and checksum("config.commit.interval=2s") not in (None, base))
    c.check("checksum/config stays when only the replicas change", base is not None and checksum("replicaCount=3") == base)

    rc, _, err = tools.template("ferry", sets=["keda.enabled=true", "autoscaling.enabled=true"])
    c.check("keda and autoscaling together are refused", rc != 0 and "exclusive" in err, err.strip())
    rc, _, err = tools.template("ferry", sets=["terminationGracePeriodSeconds=20"])
    c.check("terminationGracePeriodSeconds <= drain_timeout (20s) is refused",
            rc != 0 and "terminationGracePeriodSeconds" in err, err.strip())
    rc, _, err = tools.template("ferry", sets=["config.delivery.drain_timeout=1m30s", "terminationGracePeriodSeconds=91"])
    c.check("terminationGracePeriodSeconds 91 > drain_timeout 1m30s is accepted", rc == 0, err.strip())
    rc, _, err = tools.template("ferry", sets=["keda.enabled=true", "keda.minReplicaCount=13", "keda.maxReplicaCount=12"])
    c.check("keda minReplicaCount > maxReplicaCount is refused", rc != 0, err.strip())

    rc, docs, err = tools.template("ferry", sets=["serviceMonitor.enabled=true"], api_versions=["keda.sh/v1alpha1"])
    c.check("serviceMonitor.enabled without monitoring.coreos.com/v1 in the cluster renders no ServiceMonitor",
            rc == 0 and not by_kind(docs, "ServiceMonitor"), err.strip())
    rc, docs, err = tools.template("ferry", sets=["keda.enabled=true"], api_versions=[])
    c.check("keda.enabled renders the ScaledObject even where --api-versions lacks keda.sh (helm template)",
            rc == 0 and one(docs, "ScaledObject") is not None, err.strip())

    rc, _, err = tools.template("ferry", sets=["keda.maxReplicas=3"])
    c.check("values.schema.json refuses an unknown key (keda.maxReplicas)", rc != 0 and "maxReplicas" in err, err.strip())
    rc, _, err = tools.template("ferry", sets=["keda.extraMetadata.allowIdleConsumers=true"])
    c.check("values.schema.json refuses overriding allowIdleConsumers", rc != 0, err.strip())

    # NOTES.txt: helm template never prints it and helm install --dry-run wants a cluster, so render
    # it with tpl from a copy of the chart.
    notes = {}
    for name, sets in (("default", ["terminationGracePeriodSeconds=40"]),
                       ("keda", ["keda.enabled=true", "serviceMonitor.enabled=true"])):
        with tempfile.TemporaryDirectory() as tmp:
            chart = os.path.join(tmp, "ferry")
            shutil.copytree(tools.chart, chart)
            os.rename(os.path.join(chart, "templates/NOTES.txt"), os.path.join(chart, "notes.txt"))
            with open(os.path.join(chart, "templates/zz-notes.yaml"), "w") as f:
                f.write('kind: Notes\ntext: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n')
            args = ["template", "ferry", chart, "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION,
                    "--show-only", "templates/zz-notes.yaml"]
            for s in sets:
                args += ["--set", s]
            rc, out, err = tools.helm(*args)
            notes[name] = yaml.safe_load(out)["text"] if rc == 0 else err
    c.check("NOTES.txt warns when the grace period is under drain_timeout + request_timeout",
            "port-forward svc/ferry 9090" in notes["default"]
            and "less than drain_timeout + request_timeout" in notes["default"], notes["default"])
    c.check("NOTES.txt tells KEDA's range and a ServiceMonitor the cluster cannot take",
            "KEDA scales the Deployment" in notes["keda"] and "no ServiceMonitor was created" in notes["keda"]
            and "less than" not in notes["keda"], notes["keda"])


def parse_dockerfile(path):
    stages, stage = [], None
    text = open(path).read().replace("\\\n", " ")
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stage = {"from": rest.split()[0], "lines": []}
            stages.append(stage)
        elif stage is not None:
            stage["lines"].append((instr, rest.strip()))
    return stages


def check_dockerfile(c, repo):
    """The Dockerfile cannot be built here (no Docker): check the lines the chart and compose rely on."""
    info = {}
    stages = parse_dockerfile(os.path.join(repo, "Dockerfile"))
    gomod = open(os.path.join(repo, "go.mod")).read()
    go_version = re.search(r"^go (\S+)$", gomod, re.M).group(1)
    c.check(f"Dockerfile builds with golang:{go_version} (go.mod's go line)",
            len(stages) == 2 and stages[0]["from"] == f"golang:{go_version}", stages[0]["from"] if stages else "no FROM")
    build = " ".join(r for i, r in stages[0]["lines"] if i == "RUN") if stages else ""
    c.check("Dockerfile builds static and stamped: CGO_ENABLED=0 go build -trimpath -ldflags \"-s -w -X main.version=...\"",
            all(s in build for s in ("CGO_ENABLED=0", "go build", "-trimpath", "-s -w", "-X main.version=")), build)
    c.check("cmd/ferry has the main.version variable the build stamps",
            re.search(r"^var version = ", open(os.path.join(repo, "cmd/ferry/main.go")).read(), re.M) is not None)
    if len(stages) != 2:
        return info
    final = stages[1]
    lines = dict(final["lines"])
    c.check("Dockerfile runs on gcr.io/distroless/static-debian12:nonroot",
            final["from"] == "gcr.io/distroless/static-debian12:nonroot", final["from"])
    c.check("Dockerfile final stage has no RUN (distroless: no shell)", "RUN" not in lines)
    info["user"] = lines.get("USER")
    c.check("Dockerfile USER 65532:65532", info["user"] == "65532:65532", str(info["user"]))
    info["uid"] = int(info["user"].split(":")[0]) if info["user"] and info["user"].split(":")[0].isdigit() else None
    try:
        entry = json.loads(lines.get("ENTRYPOINT", "null"))
        info["cmd"] = json.loads(lines.get("CMD", "null"))
    except json.JSONDecodeError as e:
        entry, info["cmd"] = None, None
        c.check("Dockerfile ENTRYPOINT and CMD in exec form", False, str(e))
    c.check('Dockerfile ENTRYPOINT ["/ferry"], COPY --from=build /ferry /ferry',
            entry == ["/ferry"] and lines.get("COPY") == "--from=build /ferry /ferry")
    c.check(f'Dockerfile CMD ["run", "--config", "{CONFIG_PATH}"]', info["cmd"] == ["run", "--config", CONFIG_PATH], str(info["cmd"]))
    info["expose"] = int(lines["EXPOSE"]) if lines.get("EXPOSE", "").isdigit() else None
    c.check("Dockerfile EXPOSE 9090", info["expose"] == 9090)
    ignore = open(os.path.join(repo, ".dockerignore")).read().split()
    c.check(".dockerignore keeps the caches out and the sources in",
            {".cache", "node_modules", ".git"} <= set(ignore) and not {"cmd", "go.mod", "*.go", "."} & set(ignore))
    return info


def check_compose(c, tools, info):
    """docker-compose.yml builds this Dockerfile and mounts the config where CMD reads it."""
    compose = yaml.safe_load(open(os.path.join(tools.repo, "docker-compose.yml")))
    ferry = dig(compose, "services", "ferry", default={})
    mounts = [v.split(":") for v in ferry.get("volumes", [])]
    target = [m for m in mounts if len(m) >= 2 and m[1] == CONFIG_PATH]
    c.check(f"docker-compose.yml builds . and mounts a config at {CONFIG_PATH}",
            ferry.get("build") == "." and len(target) == 1, json.dumps(ferry))
    env = {str(k): str(v) for k, v in ferry.get("environment", {}).items()}
    c.check("docker-compose.yml publishes the image's EXPOSE port and ferry listens there",
            f"{info.get('expose')}:{info.get('expose')}" in ferry.get("ports", [])
            and env.get("FERRY_OBSERVABILITY_LISTEN") == f":{info.get('expose')}")
    if target:
        source = os.path.join(tools.repo, target[0][0])
        rc, effective, err = tools.ferry_config(open(source).read(), {"PATH": "/usr/bin:/bin", **env})
        c.check(f"ferry config accepts {target[0][0]} with the compose environment",
                rc == 0 and err.strip() == "" and dig(effective, "kafka", "brokers") == [env.get("FERRY_KAFKA_BROKERS")],
                f"exit {rc}: {err.strip()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--helm", required=True)
    ap.add_argument("--ferry", required=True)
    ap.add_argument("--crds", required=True)
    ap.add_argument("--kubernetes-validate", required=True)
    tools = Tools(ap.parse_args())
    c = Checks()
    c.check("go build ./cmd/ferry (ferry loads every rendered config)", bool(tools.ferry_bin))

    info = check_dockerfile(c, tools.repo)
    check_compose(c, tools, info)
    specific = {"defaults": check_defaults, "keda": check_keda, "servicemonitor": check_servicemonitor, "aws": check_aws}
    for vs in VALUE_SETS:
        result = check_value_set(c, tools, vs, info)
        if result and vs.name in specific:
            specific[vs.name](c, tools, *result)
    check_rules(c, tools)

    print(f"chart-test: {c.passed} passed, {len(c.failed)} failed")
    if c.failed:
        print("FAILED: " + "; ".join(c.failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
