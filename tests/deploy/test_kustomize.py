"""The kustomize overlays render, validate offline, and keep the workload policy."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from kubernetes_validate import utils as kv

from tests.deploy.conftest import K8S, OVERLAYS, of_kind, pod_specs, render

# The oldest Kubernetes we claim to support and a current one.
K8S_VERSIONS = ["1.30.0", "1.33.0"]
CRD_SCHEMAS = Path(__file__).parent / "crd_schemas"
WORKERS = {"bandeja-fetcher", "bandeja-processor", "bandeja-relay"}
DEPLOYMENTS = {"bandeja-auth", *WORKERS}
KEDA_SCALED = {"bandeja-fetcher", "bandeja-processor"}
SECRET_KEYS = {
    "client-secret",
    "token-keys",
    "admin-token",
    "database-url",
    "crm-database-url",
    "broker-url",
    "rabbitmq-management-url",
}


def _crd_schema(obj: dict[str, Any]) -> dict[str, Any] | None:
    group_version = obj["apiVersion"].replace("/", "-")
    path = CRD_SCHEMAS / f"{obj['kind'].lower()}-{group_version}.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_overlays_exist() -> None:
    """At least the dev and production overlays are there to render."""
    assert {"dev", "production"} <= set(OVERLAYS)


def test_base_renders() -> None:
    """The base renders on its own (overlays only add to it)."""
    kinds = {o["kind"] for o in render(K8S / "base")}
    assert {"Deployment", "Service", "Ingress", "ConfigMap", "NetworkPolicy"} <= kinds


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates(overlay: tuple[str, list[dict[str, Any]]], version: str) -> None:
    """Built-in kinds match the Kubernetes OpenAPI schemas (strict: no unknown fields);
    custom resources match the schemas in crd_schemas/; no kind goes unchecked."""
    name, objects = overlay
    errors = []
    for obj in objects:
        ident = f"{name}: {obj['kind']}/{obj['metadata']['name']}"
        crd = _crd_schema(obj)
        try:
            if crd is not None:
                jsonschema.validate(obj, crd, cls=jsonschema.Draft202012Validator)
            else:
                kv.validate(obj, version, strict=True)
        except kv.SchemaNotFoundError:
            errors.append(f"{ident}: no schema (add one under tests/deploy/crd_schemas/)")
        except jsonschema.ValidationError as e:
            path = ".".join(str(p) for p in e.absolute_path)
            errors.append(f"{ident}: {path}: {e.message}")
    assert not errors, "\n".join(errors)


def test_expected_objects(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    """Each overlay deploys the four services, the public Ingress, PDBs, autoscaling and
    the monitoring objects."""
    _, objects = overlay
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for dep in DEPLOYMENTS:
        assert ("Deployment", dep) in names
        assert ("PodDisruptionBudget", dep) in names
    for expected in [
        ("Service", "bandeja-auth"),
        ("Ingress", "bandeja-auth"),
        ("ServiceMonitor", "bandeja-auth"),
        ("PodMonitor", "bandeja-workers"),
        ("PrometheusRule", "bandeja"),
        ("ScaledObject", "bandeja-fetcher"),
        ("ScaledObject", "bandeja-processor"),
        ("NetworkPolicy", "bandeja-default-deny"),
    ]:
        assert expected in names, expected
    assert any(
        o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("bandeja-config")
        for o in objects
    )
    assert all(o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace")


def test_migrations_run_without_a_manual_step(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    """Migrations run in an init container of every auth pod (`bandeja migrate`, safe to run
    concurrently thanks to its advisory lock): applying a new release is one `apply`, with
    no immutable Job to delete first. It gets both database URLs and nothing else secret."""
    _, objects = overlay
    assert not of_kind(objects, "Job"), "a Job's pod template is immutable across releases"
    deps = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in of_kind(objects, "Deployment")
    }
    (init,) = deps["bandeja-auth"]["initContainers"]
    assert init["args"] == ["migrate"]
    assert init["image"] == deps["bandeja-auth"]["containers"][0]["image"]
    keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in init["env"]}
    assert keys == {"database-url", "crm-database-url"}
    for name, spec in deps.items():
        if name != "bandeja-auth":
            assert not spec.get("initContainers"), name


def test_containers_have_probes_and_resources(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    """Every long-running container has startup, liveness (/healthz) and readiness (/readyz)
    probes; every container has CPU and memory requests and limits."""
    name, objects = overlay
    for ident, spec in pod_specs(objects):
        for c in spec.get("initContainers", []) + spec["containers"]:
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res.get(part, {})), f"{name} {ident} {part}"
    for dep in of_kind(objects, "Deployment"):
        for c in dep["spec"]["template"]["spec"]["containers"]:
            ident = f"{name} {dep['metadata']['name']}/{c['name']}"
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in c, f"{ident} has no {probe}"
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", ident
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", ident
            live = c["livenessProbe"]
            # Generous: at least two minutes of failures before a restart.
            assert live["periodSeconds"] * live["failureThreshold"] >= 120, ident


def test_pods_run_restricted(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    """No pod runs as root or can escalate; root filesystems are read-only; all
    capabilities are dropped; seccomp is RuntimeDefault (PSS "restricted")."""
    name, objects = overlay
    for ident, spec in pod_specs(objects):
        pod = spec.get("securityContext", {})
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", ident
        assert spec.get("hostNetwork") is not True
        assert spec.get("hostPID") is not True
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext", {})
            where = f"{name} {ident}/{c['name']}"
            run_as_non_root = sc.get("runAsNonRoot", pod.get("runAsNonRoot"))
            run_as_user = sc.get("runAsUser", pod.get("runAsUser"))
            assert run_as_non_root is True, f"{where}: runAsNonRoot is not true"
            assert run_as_user != 0, f"{where}: runAsUser 0"
            assert sc.get("readOnlyRootFilesystem") is True, f"{where}: writable root fs"
            assert sc.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation"
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), f"{where}: caps"
            assert not sc.get("privileged"), where
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: no writable /tmp"


def test_images_are_pinned(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    """Every image is pinned by digest (what the kubelet pulls) and carries an explicit
    release tag for people to read, never `latest`."""
    name, objects = overlay
    for ident, spec in pod_specs(objects):
        for c in spec.get("initContainers", []) + spec["containers"]:
            image, _, digest = c["image"].partition("@")
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{name} {ident}: {c['image']}"
            last = image.rsplit("/", 1)[-1]
            assert ":" in last, f"{name} {ident}: untagged image {image}"
            tag = last.split(":", 1)[1]
            assert tag, f"{name} {ident}: empty tag in {image}"
            assert tag != "latest", f"{name} {ident}: image {image}"


def test_rollouts_and_termination(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    """Rollouts never drop capacity; grace periods cover the longest actor (a 10-minute
    fetch, 2-minute processing); KEDA-scaled Deployments leave replicas to KEDA."""
    _, objects = overlay
    deps = {d["metadata"]["name"]: d for d in of_kind(objects, "Deployment")}
    for dname, dep in deps.items():
        assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, dname
        if dname in KEDA_SCALED:
            assert "replicas" not in dep["spec"], f"{dname}: replicas fight the autoscaler"
    grace = {
        n: d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] for n, d in deps.items()
    }
    assert grace["bandeja-fetcher"] >= 600 + 15
    assert grace["bandeja-processor"] >= 120 + 15
    assert grace["bandeja-relay"] >= 10
    assert grace["bandeja-auth"] >= 10
    for pdb in of_kind(objects, "PodDisruptionBudget"):
        assert pdb["spec"].get("maxUnavailable") == 1
        assert "minAvailable" not in pdb["spec"]


def test_autoscaling(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    """Fetcher and processor scale on queue depth through the RabbitMQ management API
    (unacked counted), never to zero, with a trigger on the retry (.DQ) queue too."""
    _, objects = overlay
    deps = {d["metadata"]["name"] for d in of_kind(objects, "Deployment")}
    auths = {t["metadata"]["name"] for t in of_kind(objects, "TriggerAuthentication")}
    scaled = {}
    for so in of_kind(objects, "ScaledObject"):
        spec = so["spec"]
        target = spec["scaleTargetRef"]["name"]
        assert target in deps
        assert spec["minReplicaCount"] >= 1
        assert spec["maxReplicaCount"] >= spec["minReplicaCount"]
        queues = set()
        for trig in spec["triggers"]:
            assert trig["type"] == "rabbitmq"
            assert trig["metadata"]["protocol"] == "http"
            assert trig["authenticationRef"]["name"] in auths
            queues.add(trig["metadata"]["queueName"])
        scaled[target] = queues
    assert scaled == {
        "bandeja-fetcher": {"fetch", "fetch.DQ"},
        "bandeja-processor": {"process", "process.DQ"},
    }


def test_secrets_are_referenced_not_committed(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    """Every secret reference points at `bandeja-secrets` with a documented key; production
    renders no Secret at all; dev's generated one holds every key, as placeholders."""
    name, objects = overlay
    used = set()
    for ident, spec in pod_specs(objects):
        for c in spec["containers"]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "bandeja-secrets", ident
                    used.add(ref["key"])
            for src in c.get("envFrom", []):
                assert "secretRef" not in src, f"{ident}: envFrom a whole Secret"
    for ta in of_kind(objects, "TriggerAuthentication"):
        for ref in ta["spec"]["secretTargetRef"]:
            assert ref["name"] == "bandeja-secrets"
            used.add(ref["key"])
    assert used == SECRET_KEYS
    secrets = of_kind(objects, "Secret")
    if name == "production":
        assert secrets == [], "production must reference an externally created Secret"
    else:
        (secret,) = secrets
        assert secret["metadata"]["name"] == "bandeja-secrets"
        assert set(secret["data"]) == SECRET_KEYS


def test_settings_configmap(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    """The ConfigMap holds only non-secret BANDEJA_* settings, and every pod reads it."""
    _, objects = overlay
    (cm,) = [
        o
        for o in of_kind(objects, "ConfigMap")
        if o["metadata"]["name"].startswith("bandeja-config")
    ]
    assert all(k.startswith("BANDEJA_") for k in cm["data"])
    secret_vars = {
        "BANDEJA_CLIENT_SECRET",
        "BANDEJA_TOKEN_KEYS",
        "BANDEJA_ADMIN_TOKEN",
        "BANDEJA_DATABASE_URL",
        "BANDEJA_CRM_DATABASE_URL",
        "BANDEJA_BROKER_URL",
    }
    assert not secret_vars & set(cm["data"])
    assert not any(re.search(r"://[^/@\s]+:[^/@\s]+@", v) for v in cm["data"].values())
    for ident, spec in pod_specs(objects):
        refs = [
            s["configMapRef"]["name"]
            for c in spec["containers"]
            for s in c.get("envFrom", [])
            if "configMapRef" in s
        ]
        assert refs == [cm["metadata"]["name"]], ident


NOT_THE_INTERNET = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"}
# Pods that may run beside Bandeja in its namespace (dev does), with common chart labels.
NEIGHBOURS = [
    {"app.kubernetes.io/name": "postgresql", "app": "postgres"},
    {"app.kubernetes.io/name": "rabbitmq", "app.kubernetes.io/component": "rabbitmq"},
]


def _selects(spec: dict[str, Any], labels: dict[str, str]) -> bool:
    selector = spec["podSelector"]
    assert not selector.get("matchExpressions"), "only matchLabels is checked here"
    return selector.get("matchLabels", {}).items() <= labels.items()


def test_network_policies(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    """Default deny both ways for Bandeja's pods, then DNS, PostgreSQL, RabbitMQ, Prometheus
    scrape, the ingress controller to auth, 443 egress for auth only and 993 egress for the
    fetcher only."""
    _, objects = overlay
    pols = {p["metadata"]["name"]: p["spec"] for p in of_kind(objects, "NetworkPolicy")}
    deny = pols["bandeja-default-deny"]
    assert deny["podSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "bandeja"}}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny
    for dep in of_kind(objects, "Deployment"):
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert _selects(deny, labels), dep["metadata"]["name"]

    def egress_ports(component: str | None) -> set[int]:
        ports = set()
        for spec in pols.values():
            labels = spec["podSelector"].get("matchLabels", {})
            if "Egress" not in spec.get("policyTypes", []):
                continue
            if labels.get("app.kubernetes.io/component", component) != component:
                continue
            for rule in spec.get("egress", []):
                ports |= {p["port"] for p in rule.get("ports", [])}
        return ports

    for component in ("auth", "fetcher", "processor", "relay"):
        ports = egress_ports(component)
        assert {53, 5432, 5672} <= ports, component
        assert (443 in ports) == (component == "auth"), component
        assert (993 in ports) == (component == "fetcher"), component
    scrape = pols["bandeja-allow-prometheus-scrape"]["ingress"][0]
    assert {p["port"] for p in scrape["ports"]} == {8080, 9191}
    to_auth = pols["bandeja-allow-ingress-to-auth"]
    assert to_auth["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "auth"


def test_network_policies_leave_neighbours_alone(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    """A PostgreSQL or RabbitMQ in Bandeja's namespace (where dev points) is selected by no
    policy of ours, so neither Bandeja's connections nor KEDA's reads of the RabbitMQ
    management API are dropped by the default deny."""
    _, objects = overlay
    for policy in of_kind(objects, "NetworkPolicy"):
        for labels in NEIGHBOURS:
            assert not _selects(policy["spec"], labels), (policy["metadata"]["name"], labels)


def test_internet_egress_excludes_private_and_cgnat_ranges(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    """ "The internet" (HTTPS for auth, IMAP for the fetcher) is 0.0.0.0/0 minus the private
    ranges and carrier-grade NAT space (100.64.0.0/10, pod and node addresses on some
    clouds)."""
    _, objects = overlay
    blocks = [
        peer["ipBlock"]
        for policy in of_kind(objects, "NetworkPolicy")
        for rule in policy["spec"].get("egress", [])
        for peer in rule.get("to", [])
        if "ipBlock" in peer and peer["ipBlock"]["cidr"] == "0.0.0.0/0"
    ]
    assert len(blocks) == 2
    for block in blocks:
        assert set(block.get("except", [])) >= NOT_THE_INTERNET, block


def test_production_names_database_and_broker_destinations() -> None:
    """In production, PostgreSQL and RabbitMQ ports are open only to named destinations
    (an address range, a namespace and pod selector), never to anywhere."""
    objects = render(K8S / "overlays" / "production")
    checked = set()
    for policy in of_kind(objects, "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            if not ports & {5432, 5671, 5672}:
                continue
            name = policy["metadata"]["name"]
            assert rule.get("to"), f"{name}: {sorted(ports)} open to any destination"
            for peer in rule["to"]:
                cidr = peer.get("ipBlock", {}).get("cidr")
                assert cidr != "0.0.0.0/0", name
                if "namespaceSelector" in peer:
                    assert peer["namespaceSelector"].get("matchLabels"), name
            checked |= ports
    assert checked == {5432, 5671, 5672}


def test_ingress_exposes_only_oauth_routes(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    """Only the browser-facing OAuth routes are public: not /api, /metrics or health."""
    _, objects = overlay
    (ing,) = of_kind(objects, "Ingress")
    paths = {p["path"] for r in ing["spec"]["rules"] for p in r["http"]["paths"]}
    assert paths == {"/connect", "/oauth/callback", "/admin-consent", "/admin-consent/callback"}
    assert ing["spec"]["tls"]
    # Strangers' requests are limited per address before they reach auth (issue 16).
    annotations = ing["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/limit-rps"]) > 0
    assert int(annotations["nginx.ingress.kubernetes.io/limit-connections"]) > 0


def test_monitoring_scrapes_every_process(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    """The ServiceMonitor scrapes auth through its Service port; the PodMonitor's named
    port exists on every worker pod it selects."""
    _, objects = overlay
    deps = {d["metadata"]["name"]: d for d in of_kind(objects, "Deployment")}
    (pm,) = of_kind(objects, "PodMonitor")
    port = pm["spec"]["podMetricsEndpoints"][0]["port"]
    selected = {e["key"]: set(e["values"]) for e in pm["spec"]["selector"]["matchExpressions"]}
    for dname in WORKERS:
        tmpl = deps[dname]["spec"]["template"]
        comp = tmpl["metadata"]["labels"]["app.kubernetes.io/component"]
        assert comp in selected["app.kubernetes.io/component"]
        ports = {p["name"] for c in tmpl["spec"]["containers"] for p in c.get("ports", [])}
        assert port in ports, dname
    (sm,) = of_kind(objects, "ServiceMonitor")
    (svc,) = of_kind(objects, "Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]}


def test_external_secret_component_provides_every_key(tmp_path: Path) -> None:
    """The ExternalSecret example, added to the production overlay as deploy/k8s/README.md
    says, validates and makes exactly the Secret `bandeja-secrets` with every key the pods
    and KEDA read, in the overlay's namespace."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    production = copy / "overlays" / "production" / "kustomization.yaml"
    production.write_text(
        production.read_text() + "\ncomponents:\n  - ../../components/external-secrets\n"
    )
    objects = render(copy / "overlays" / "production")
    (external,) = of_kind(objects, "ExternalSecret")
    schema = _crd_schema(external)
    assert schema is not None
    jsonschema.validate(external, schema, cls=jsonschema.Draft202012Validator)
    assert external["metadata"]["namespace"] == "bandeja"
    assert external["spec"]["target"]["name"] == "bandeja-secrets"
    keys = [d["secretKey"] for d in external["spec"]["data"]]
    assert sorted(keys) == sorted(SECRET_KEYS)
    assert of_kind(objects, "Secret") == []
