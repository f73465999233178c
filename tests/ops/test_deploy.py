"""Deployment packaging (issue #6): the Dockerfile, docker-compose.yml, deploy/monitoring and the
Kubernetes manifests in deploy/k8s.

Two kinds of test. Properties read from the files: probes, graceful shutdown, one beat, selectors
that select, resources, non-root, no secret committed. And the real validators, run on the files:
kubernetes-validate (a dev requirement, always there), `docker-compose config` and `promtool check
config` (skipped without the binary, failed instead under CIPHERGUARD_REQUIRE_SERVICES=1, as in CI).
Requests the platform makes (kubelet probes, Prometheus scrapes, the container health check) are
replayed against the production settings in a subprocess: Django's host validation and HTTPS
redirect must let them through.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import re
import runpy
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings

from tests.conftest import required_binary

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_FILE = ROOT / "deploy" / "monitoring" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "monitoring" / "grafana"

# Required by the production settings (cipherguard/settings.py) and the metrics endpoint.
APP_SECRETS = {"SECRET_KEY", "JWT_SECRET", "ENCRYPTION_KEY", "AUDIT_MAC_KEY", "PAN_FINGERPRINT_KEY", "METRICS_TOKEN"}
CONNECTION_URLS = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
# What docker-compose.yml refuses to start without (`${VAR:?...}`).
COMPOSE_REQUIRED = {*APP_SECRETS, "ALLOWED_HOSTS", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
SECRET_NAME = re.compile(r"(SECRET|_KEY|KEYS|TOKEN|PASSWORD|_AUTH)$")
POD_IP = "10.1.2.3"
# The containers' writable scratch directory (an emptyDir on Kubernetes); compared, never used here.
CONTAINER_TMP = "/tmp"  # noqa: S108


# --- Loading -------------------------------------------------------------------------------------


def k8s_documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                doc["__file__"] = path.name
                docs.append(doc)
    return docs


def k8s(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name} in deploy/k8s, found {len(found)}"
    return found[0]


def workloads() -> list[dict[str, Any]]:
    return [d for d in k8s_documents() if d["kind"] in {"Deployment", "Job"}]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def only_container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1
    return containers[0]


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def cpu_cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def seconds(duration: str) -> int:
    """A compose duration (``40s``, ``10m``, ``1m30s``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    total = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", duration))
    assert total, duration
    return total


def configmap() -> dict[str, str]:
    return k8s("ConfigMap", "cipherguard-config")["data"]


def dummy_secret(name: str) -> str:
    """A value production accepts: at least 32 characters, different for every name."""
    return f"ci-dummy-{name.lower()}-".ljust(40, "x")


def interpolate(value: str, env: dict[str, str]) -> str:
    """docker-compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` substitution."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        current = env.get(name, "")
        if op == ":?" and not current:
            raise KeyError(f"{name}: {arg}")
        return current or (arg if op == ":-" else "")

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}", one, value)


def kubelet_expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion of a container env value."""
    return re.sub(r"\$\(([A-Za-z0-9_]+)\)", lambda m: env.get(m.group(1), m.group(0)), value)


# --- Kubernetes: the set of manifests ------------------------------------------------------------


def test_kustomization_lists_every_manifest_except_the_secret_template_and_the_migration_job():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # Applying the template would overwrite the real Secret with placeholders; applying the Job
    # together with the Deployments would race the rollout against the migration.
    assert set(kustomization["resources"]) == manifests - {"secret.example.yaml", "migrate-job.yaml"}
    assert kustomization["images"] == [{"name": "cipherguard", "newName": "cipherguard", "newTag": "1.0.0"}]
    assert "namespace" not in kustomization


def test_manifests_name_no_namespace_and_label_everything_consistently():
    for doc in k8s_documents():
        meta = doc["metadata"]
        assert "namespace" not in meta, f"{doc['__file__']}: {doc['kind']} pins a namespace"
        assert meta["labels"]["app.kubernetes.io/name"] == "cipherguard"
        assert meta["labels"]["app.kubernetes.io/part-of"] == "cipherguard"
    for workload in workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == workload["metadata"]["labels"]["app.kubernetes.io/component"]
        if workload["kind"] == "Deployment":
            assert selects(workload["spec"]["selector"]["matchLabels"], labels)


def test_every_workload_runs_the_release_image_with_config_and_secrets():
    for workload in workloads():
        container = only_container(workload)
        assert container["image"] == "cipherguard:1.0.0", workload["metadata"]["name"]
        sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
        assert sources == {"cipherguard-config", "cipherguard-secrets"}


def test_container_names_are_the_ones_the_alert_rules_match():
    # Rules select container="web|worker|beat" (cAdvisor on Kubernetes labels by container name;
    # prometheus.yml maps compose's container names to the same values).
    names = {d["metadata"]["name"]: only_container(d)["name"] for d in workloads()}
    assert names == {
        "cipherguard-web": "web",
        "cipherguard-worker": "worker",
        "cipherguard-beat": "beat",
        "cipherguard-migrate": "migrate",
    }


# --- Kubernetes: pods ----------------------------------------------------------------------------


def test_every_container_has_cpu_and_memory_requests_and_limits():
    for workload in workloads():
        resources = only_container(workload)["resources"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[bound]), f"{workload['metadata']['name']}: {bound}"
        assert cpu_cores(resources["requests"]["cpu"]) <= cpu_cores(resources["limits"]["cpu"])


def test_pods_run_as_the_image_user_non_root_with_a_read_only_root_filesystem():
    image_uid = int(re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.M).group(1))
    assert image_uid != 0
    for workload in workloads():
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == image_uid, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        context = only_container(workload)["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name


def test_writable_paths_are_emptydirs_and_the_static_files_stay_visible():
    multiproc_dir = re.search(r"^ENV PROMETHEUS_MULTIPROC_DIR=(\S+)", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    static_root = Path("/app/var/staticfiles")  # STATIC_ROOT in the image (CIPHERGUARD_VAR_DIR=/app/var)
    for workload in workloads():
        spec = pod_spec(workload)
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in only_container(workload)["volumeMounts"]}
        # /tmp: uploads, gunicorn heartbeats, the beat schedule; the multiprocess directory must
        # exist before any process imports prometheus_client.
        assert {CONTAINER_TMP, multiproc_dir} <= set(mounts), workload["metadata"]["name"]
        assert all("emptyDir" in v and v["emptyDir"].get("sizeLimit") for v in mounts.values())
        # Mounting over /app/var would hide the static files collected into the image.
        for path in mounts:
            assert not (static_root == Path(path) or Path(path) in static_root.parents), path


def test_web_probes_hit_healthz_and_readyz_on_the_http_port():
    container = only_container(k8s("Deployment", "cipherguard-web"))
    assert container["ports"] == [{"name": "http", "containerPort": 8000}]
    assert container["command"] == ["gunicorn", "cipherguard.wsgi", "--config", "deploy/gunicorn.conf.py"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # A slow request must not get the pod restarted: liveness tolerates a minute.
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60


def test_web_drains_before_gunicorn_stops_and_gunicorn_gets_its_graceful_timeout(monkeypatch, tmp_path):
    workload = k8s("Deployment", "cipherguard-web")
    container = only_container(workload)
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    assert pre_stop >= 5  # long enough for the endpoint to leave the Service and the ingress
    for key, value in configmap().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    gunicorn = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    assert gunicorn["graceful_timeout"] == 25
    assert pod_spec(workload)["terminationGracePeriodSeconds"] > pre_stop + gunicorn["graceful_timeout"]
    # cpu_count() in a pod sees the node's cores: the worker count is set, and fits the CPU limit.
    assert gunicorn["workers"] == int(configmap()["WEB_CONCURRENCY"])
    assert gunicorn["workers"] <= cpu_cores(container["resources"]["limits"]["cpu"])


def test_web_accepts_the_host_kubelet_and_prometheus_send():
    container = only_container(k8s("Deployment", "cipherguard-web"))
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["PUBLIC_ALLOWED_HOSTS"]["valueFrom"]["configMapKeyRef"] == {
        "name": "cipherguard-config",
        "key": "ALLOWED_HOSTS",
    }
    names = list(env)
    assert names.index("ALLOWED_HOSTS") > max(names.index("POD_IP"), names.index("PUBLIC_ALLOWED_HOSTS"))
    assert configmap()["SECURE_SSL_REDIRECT"] == "false"


def test_worker_shuts_down_warm_and_serves_metrics():
    workload = k8s("Deployment", "cipherguard-worker")
    container = only_container(workload)
    assert container["command"] == ["celery", "-A", "cipherguard", "worker", "--concurrency=2", "--loglevel=INFO"]
    assert {"name": "METRICS_PORT", "value": "9808"} in container["env"]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9808}]
    assert pod_spec(workload)["terminationGracePeriodSeconds"] >= 600
    # What makes a killed task safe: it is acknowledged only when done, and redelivered otherwise.
    assert settings.CELERY_TASK_ACKS_LATE is True
    assert settings.CELERY_TASK_REJECT_ON_WORKER_LOST is True
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9808"


def test_exactly_one_beat_and_never_two_during_a_rollout():
    workload = k8s("Deployment", "cipherguard-beat")
    assert workload["spec"]["replicas"] == 1
    assert workload["spec"]["strategy"] == {"type": "Recreate"}
    command = only_container(workload)["command"]
    assert command[:4] == ["celery", "-A", "cipherguard", "beat"]
    # The root filesystem is read-only: the schedule file goes to the /tmp emptyDir.
    assert command[command.index("--schedule") + 1].startswith(f"{CONTAINER_TMP}/")
    assert not any(d["kind"] == "HorizontalPodAutoscaler" and "beat" in d["metadata"]["name"] for d in k8s_documents())


def test_web_service_selects_web_pods_only_on_the_named_port():
    svc = k8s("Service", "cipherguard-web")
    web = k8s("Deployment", "cipherguard-web")
    assert selects(svc["spec"]["selector"], web["spec"]["template"]["metadata"]["labels"])
    for other in workloads():
        if other["metadata"]["name"] != "cipherguard-web":
            assert not selects(svc["spec"]["selector"], other["spec"]["template"]["metadata"]["labels"])
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["http"]


def test_worker_metrics_service_is_headless_and_selects_worker_pods():
    svc = k8s("Service", "cipherguard-worker-metrics")
    worker = k8s("Deployment", "cipherguard-worker")
    assert svc["spec"]["clusterIP"] == "None"
    assert selects(svc["spec"]["selector"], worker["spec"]["template"]["metadata"]["labels"])
    assert not selects(
        svc["spec"]["selector"], k8s("Deployment", "cipherguard-web")["spec"]["template"]["metadata"]["labels"]
    )
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 9808, "targetPort": "metrics"}]


def test_hpa_scales_the_web_deployment_on_cpu_and_owns_its_replica_count():
    hpa = k8s("HorizontalPodAutoscaler", "cipherguard-web")
    assert hpa["apiVersion"] == "autoscaling/v2"
    web = k8s("Deployment", "cipherguard-web")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cipherguard-web"}
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert 0 < metric["resource"]["target"]["averageUtilization"] <= 90
    # Utilization is relative to the request, and a replicas field would fight the HPA on apply.
    assert "cpu" in only_container(web)["resources"]["requests"]
    assert "replicas" not in web["spec"]


def test_pdb_keeps_a_web_pod_and_selects_web_pods():
    pdb = k8s("PodDisruptionBudget", "cipherguard-web")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["minAvailable"] < k8s("HorizontalPodAutoscaler", "cipherguard-web")["spec"]["minReplicas"]
    web_labels = k8s("Deployment", "cipherguard-web")["spec"]["template"]["metadata"]["labels"]
    assert selects(pdb["spec"]["selector"]["matchLabels"], web_labels)


def test_migration_job_migrates_once_and_cleans_up():
    job = k8s("Job", "cipherguard-migrate")
    assert only_container(job)["command"] == ["python", "manage.py", "migrate", "--no-input"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert 0 < job["spec"]["backoffLimit"] <= 3
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert job["spec"]["activeDeadlineSeconds"] > 0


def test_database_connection_budget_fits_postgres_max_connections():
    # Every process opens up to DB_POOL_SIZE connections: gunicorn workers, Celery children and
    # the worker's main process, beat, the migration. Default max_connections 100, 3 reserved.
    pool = int(configmap()["DB_POOL_SIZE"])
    web = k8s("HorizontalPodAutoscaler", "cipherguard-web")["spec"]["maxReplicas"] * int(configmap()["WEB_CONCURRENCY"])
    worker_command = only_container(k8s("Deployment", "cipherguard-worker"))["command"]
    concurrency = int(next(a for a in worker_command if a.startswith("--concurrency=")).split("=")[1])
    worker = k8s("Deployment", "cipherguard-worker")["spec"]["replicas"] * (concurrency + 1)
    assert (web + worker + 1 + 1) * pool <= 97


def test_secret_template_holds_placeholders_only():
    secret = k8s("Secret", "cipherguard-secrets")
    assert "data" not in secret  # base64 would hide what is in it
    values = secret["stringData"]
    assert set(values) == APP_SECRETS | CONNECTION_URLS
    for key, value in values.items():
        assert "REPLACE_ME" in value, key
        rest = re.sub(r"REPLACE_ME(_HOST)?", "", value)
        assert not re.search(r"[A-Za-z0-9+=_-]{20,}", rest), f"{key} looks like a real secret"
        if key in APP_SECRETS:
            assert len(value) < 32  # production refuses to start on a forgotten placeholder


def test_no_secret_outside_the_secret():
    assert not (set(configmap()) & (APP_SECRETS | CONNECTION_URLS))
    for workload in workloads():
        for entry in only_container(workload).get("env", []):
            if SECRET_NAME.search(entry["name"]) or entry["name"] in CONNECTION_URLS:
                assert "secretKeyRef" in entry.get("valueFrom", {}), entry["name"]


# --- docker-compose.yml --------------------------------------------------------------------------


def test_compose_has_every_service_and_the_app_ones_share_one_definition():
    services = compose()["services"]
    assert set(services) == {"db", "redis", "migrate", "web", "worker", "beat", "prometheus", "grafana", "cadvisor"}
    app = {name: services[name] for name in ("migrate", "web", "worker", "beat")}
    assert {s["image"] for s in app.values()} == {"${CIPHERGUARD_IMAGE:-cipherguard:1.0.0}"}
    assert services["db"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    assert "x-app" in compose() and "x-app-env" in compose()
    for name, svc in app.items():
        env = svc["environment"]
        assert env["ENVIRONMENT"] == "production", name
        assert env["DEBUG"] == "false", name
        assert env["LOG_FORMAT"] == "json", name
        assert APP_SECRETS | CONNECTION_URLS | {"ALLOWED_HOSTS", "DATABASE_REPLICA_URL"} <= set(env), name


def test_compose_commands():
    assert service("migrate")["command"] == ["python", "manage.py", "migrate", "--no-input"]
    assert service("migrate")["restart"] == "no"
    assert service("web")["command"] == ["gunicorn", "cipherguard.wsgi", "--config", "deploy/gunicorn.conf.py"]
    assert service("worker")["command"] == [
        "celery",
        "-A",
        "cipherguard",
        "worker",
        "--concurrency=2",
        "--loglevel=INFO",
    ]
    beat = service("beat")["command"]
    assert beat[:4] == ["celery", "-A", "cipherguard", "beat"]
    assert beat[beat.index("--schedule") + 1] == f"{CONTAINER_TMP}/celerybeat-schedule"
    assert service("beat")["deploy"]["replicas"] == 1


def test_compose_healthchecks_and_start_order():
    for name in ("db", "redis", "web", "worker"):
        assert service(name)["healthcheck"]["test"], name
    assert "pg_isready" in service("db")["healthcheck"]["test"]
    assert service("web")["healthcheck"]["test"] == ["CMD", "python", "deploy/healthcheck.py", "/healthz"]
    assert service("migrate")["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name in ("web", "worker", "beat"):
        depends = service(name)["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["redis"] == {"condition": "service_healthy"}, name
    assert service("web")["depends_on"]["db"] == {"condition": "service_healthy"}


def test_compose_web_and_worker_get_limits_and_time_to_finish():
    for name in ("web", "worker", "beat", "migrate"):
        limits = service(name)["deploy"]["resources"]["limits"]
        assert {"cpus", "memory"} <= set(limits), name
    assert seconds(service("web")["stop_grace_period"]) > 25  # gunicorn graceful_timeout
    assert seconds(service("worker")["stop_grace_period"]) >= 600
    assert service("worker")["environment"]["METRICS_PORT"] == "9808"


def test_compose_holds_no_secret():
    """Every secret is a reference into .env; the ones the app cannot run without are required."""
    reference = re.compile(r"^\$\{([A-Z0-9_]+)(:\?[^}]+|:-)?\}$")
    for name, svc in compose()["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                match = reference.match(value)
                assert match, f"{name}.{key} is not a ${{...}} reference"
                if match.group(1) in COMPOSE_REQUIRED:
                    assert match.group(2).startswith(":?"), f"{name}.{key} must be required"
            if "@" in str(value):  # a URL with credentials
                userinfo = value.split("://", 1)[1].split("@", 1)[0]
                password = userinfo.split(":", 1)[1]
                assert reference.match(password), f"{name}.{key} has a literal password"


def test_compose_variables_are_documented_in_env_example():
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    used: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, str):
            used.update(re.findall(r"\$\{([A-Z0-9_]+)", node))

    walk(compose())
    assert used - documented == set()


def test_compose_monitoring_mounts():
    prometheus = service("prometheus")["volumes"]
    assert "./deploy/monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus
    assert "./deploy/monitoring/rules:/etc/prometheus/rules:ro" in prometheus
    # The token file prometheus.yml reads is written from .env's METRICS_TOKEN at start.
    assert "/etc/prometheus/metrics_token" in " ".join(service("prometheus")["command"])
    grafana = service("grafana")
    assert "./deploy/monitoring/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "./deploy/monitoring/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    cadvisor = service("cadvisor")["volumes"]
    assert cadvisor and all(v.endswith(":ro") for v in cadvisor)


# --- Prometheus and Grafana ----------------------------------------------------------------------


def prometheus_config() -> dict[str, Any]:
    return yaml.safe_load(PROMETHEUS_FILE.read_text())


def scrape_job(name: str) -> dict[str, Any]:
    [job] = [j for j in prometheus_config()["scrape_configs"] if j["job_name"] == name]
    return job


def test_prometheus_scrapes_web_with_the_token_worker_and_cadvisor():
    config = prometheus_config()
    assert config["global"]["scrape_interval"] == "15s"
    assert config["global"]["evaluation_interval"] == "15s"
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    web = scrape_job("cipherguard-web")
    assert web["static_configs"] == [{"targets": ["web:8000"]}]
    assert web["metrics_path"] == "/metrics"
    assert web["authorization"]["credentials_file"] == "/etc/prometheus/metrics_token"
    worker = scrape_job("cipherguard-worker")
    assert worker["dns_sd_configs"][0]["names"] == ["worker"]
    assert worker["dns_sd_configs"][0]["port"] == int(service("worker")["environment"]["METRICS_PORT"])
    assert scrape_job("cadvisor")["static_configs"] == [{"targets": ["cadvisor:8080"]}]


@pytest.mark.parametrize(
    ("name", "container"),
    [
        ("cipherguard-web-1", "web"),  # Compose v2
        ("cipherguard_web_1", "web"),  # docker-compose 1.x
        ("cipherguard-worker-3", "worker"),  # --scale worker=3
        ("cipherguard_beat_1", "beat"),
        ("prod-fraud-worker-1", "worker"),  # another COMPOSE_PROJECT_NAME
        ("cipherguard-migrate-1", None),
        ("cipherguard-db-1", None),
        ("cipherguard-web-run-4f2a9c1b", None),  # `docker-compose run web ...`
        ("cipherguard-webhook-1", None),
    ],
)
def test_cadvisor_container_names_become_kubernetes_style_container_and_pod_labels(name, container):
    labels = {}
    for rule in scrape_job("cadvisor")["metric_relabel_configs"]:
        assert rule["source_labels"] == ["name"]
        assert rule["action"] == "replace"  # a replace rule whose regex does not match leaves the target alone
        # Prometheus anchors relabel regexes at both ends, like fullmatch; these are plain RE2.
        match = re.fullmatch(rule["regex"], name)
        if match:
            labels[rule["target_label"]] = match.expand(rule["replacement"].replace("$1", r"\1"))
    # The rules aggregate by (namespace, pod, container): one series per compose container.
    assert labels == ({"container": container, "pod": name} if container else {})


def test_grafana_reads_prometheus_and_the_dashboard_folder_compose_mounts():
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [source] = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["uid"] == "prometheus"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "cipherguard.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    mounted = {
        v.split(":")[1] for v in service("grafana")["volumes"] if v.startswith("./deploy/monitoring/grafana/dashboards")
    }
    assert mounted == {provider["options"]["path"]} == {"/var/lib/grafana/dashboards"}


# --- Dockerfile and the container health check ---------------------------------------------------


def test_dockerfile_runtime_stage():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2
    runtime = stages[-1]
    assert all(s.startswith("python:3.11-slim-bookworm") for s in stages)
    # pg_dump must match the server's major version (compose's postgres image).
    server_major = service("db")["image"].split(":")[1]
    assert f"postgresql-client-{server_major}" in runtime
    assert "apt-get install -y --no-install-recommends" in runtime
    assert "rm -rf /var/lib/apt/lists/*" in runtime
    # Set after collectstatic: no root-owned sample file from the build in the image.
    assert runtime.index("ENV PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus") > runtime.index("collectstatic")
    assert re.search(r"^USER \d+:\d+$", runtime, re.M)
    assert 'CMD ["python", "deploy/healthcheck.py", "/healthz"]' in runtime
    assert 'CMD ["gunicorn", "cipherguard.wsgi", "--config", "deploy/gunicorn.conf.py"]' in runtime


def _healthcheck_module():
    spec = importlib.util.spec_from_file_location("deploy_healthcheck", ROOT / "deploy" / "healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("allowed", "host"),
    [
        ("fraud.example.com,web", "fraud.example.com"),
        (" .example.com , web", "example.com"),
        ("*", "localhost"),
        ("", "localhost"),
    ],
)
def test_healthcheck_sends_a_host_django_accepts(allowed, host):
    assert _healthcheck_module().probe_host(allowed) == host


@pytest.mark.parametrize(("status", "exit_code"), [(200, 0), (301, 1), (400, 1), (503, 1)])
def test_healthcheck_passes_only_on_200_and_sends_the_proxy_headers(monkeypatch, status, exit_code):
    seen: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            seen.update(path=self.path, host=self.headers["Host"], proto=self.headers["X-Forwarded-Proto"])
            self.send_response(status)
            self.send_header("Location", "https://fraud.example.com/healthz")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("GUNICORN_BIND", f"0.0.0.0:{server.server_address[1]}")
        monkeypatch.setenv("ALLOWED_HOSTS", "fraud.example.com,web")
        assert _healthcheck_module().main(["healthcheck.py", "/healthz"]) == exit_code
    finally:
        server.shutdown()
        server.server_close()
    assert seen == {"path": "/healthz", "host": "fraud.example.com", "proto": "https"}


# --- The production settings accept the requests the platform makes ------------------------------

PROBE_SCRIPT = """
import json, sys
import django
django.setup()
from django.test import Client
results = []
for path, host, headers in json.loads(sys.argv[1]):
    response = Client().get(path, HTTP_HOST=host, **headers)
    results.append(response.status_code)
print(json.dumps(results))
"""


def production_statuses(env: dict[str, str], requests: list[tuple[str, str, dict[str, str]]], tmp_path) -> list[int]:
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    base.update(
        DJANGO_SETTINGS_MODULE="cipherguard.settings",
        CIPHERGUARD_VAR_DIR=str(tmp_path / "var"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        LOG_LEVEL="CRITICAL",
    )
    # SQLite, an in-process cache and no broker: only the HTTP path is under test here.
    env = {k: v for k, v in env.items() if k not in CONNECTION_URLS | {"DATABASE_REPLICA_URL"}}
    result = subprocess.run(
        [sys.executable, "-c", PROBE_SCRIPT, json.dumps(requests)],
        env={**base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_kubernetes_probes_and_scrapes_pass_production_host_and_https_checks(tmp_path):
    container = only_container(k8s("Deployment", "cipherguard-web"))
    env = dict(configmap())
    env.update({key: dummy_secret(key) for key in APP_SECRETS})
    env["POD_IP"] = POD_IP  # what the downward API puts there
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = kubelet_expand(entry["value"], env)
        elif "configMapKeyRef" in entry["valueFrom"]:
            env[entry["name"]] = configmap()[entry["valueFrom"]["configMapKeyRef"]["key"]]
    port = container["ports"][0]["containerPort"]
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {env['METRICS_TOKEN']}"}
    statuses = production_statuses(
        env,
        [
            ("/healthz", f"{POD_IP}:{port}", {}),  # kubelet: startup and liveness
            ("/readyz", f"{POD_IP}:{port}", {}),  # kubelet: readiness
            ("/metrics", f"{POD_IP}:{port}", bearer),  # Prometheus, pod discovery
            ("/healthz", "cipherguard.example.com", {"HTTP_X_FORWARDED_PROTO": "https"}),  # the ingress
        ],
        tmp_path,
    )
    # Readiness is 503 here (no database schema, no model) but neither refused nor redirected.
    assert statuses == [200, 503, 200, 200]


def test_compose_health_check_and_scrape_pass_production_host_and_https_checks(tmp_path):
    values = {name: dummy_secret(name) for name in COMPOSE_REQUIRED}
    values["ALLOWED_HOSTS"] = "fraud.example.com"
    env = {key: interpolate(value, values) for key, value in service("web")["environment"].items()}
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {env['METRICS_TOKEN']}"}
    health_host = _healthcheck_module().probe_host(env["ALLOWED_HOSTS"])
    statuses = production_statuses(
        env,
        [
            ("/metrics", "web:8000", bearer),  # prometheus.yml's cipherguard-web target
            ("/healthz", health_host, {"HTTP_X_FORWARDED_PROTO": "https"}),  # deploy/healthcheck.py
        ],
        tmp_path,
    )
    assert statuses == [200, 200]


# --- The validators ------------------------------------------------------------------------------


@pytest.mark.parametrize("kubernetes_version", ["1.30.0", "1.37.0"])
def test_kubernetes_manifests_validate_against_the_api_schemas(kubernetes_version):
    validator = Path(sys.executable).with_name("kubernetes-validate")
    assert validator.exists(), "kubernetes-validate is in requirements-dev.txt: run `make install`"
    manifests = sorted(str(p) for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    result = subprocess.run(
        [str(validator), "--strict", "--quiet", "-k", kubernetes_version, *manifests],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _compose_env(values: dict[str, str]) -> dict[str, str]:
    return {**{k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}, **values}


def _docker_compose() -> str:
    return required_binary("docker-compose", "apt-get install docker-compose")


def test_compose_file_validates():
    values = {name: dummy_secret(name) for name in COMPOSE_REQUIRED} | {"ALLOWED_HOSTS": "fraud.example.com"}
    result = subprocess.run(
        [_docker_compose(), "-f", str(COMPOSE_FILE), "config", "-q"],
        env=_compose_env(values),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_on_the_example_env_file(tmp_path):
    result = subprocess.run(
        [_docker_compose(), "--env-file", str(ROOT / ".env.example"), "-f", str(COMPOSE_FILE), "config", "-q"],
        env=_compose_env({}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "set SECRET_KEY in .env" in result.stderr


def test_prometheus_config_validates(tmp_path):
    promtool = required_binary("promtool", "apt-get install prometheus")
    syntax = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(PROMETHEUS_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr
    # The full check also opens the files the config names: map the container paths to the
    # repository's rules and a stand-in token file.
    (tmp_path / "metrics_token").write_text("ci-dummy-token")
    config = PROMETHEUS_FILE.read_text()
    config = config.replace("/etc/prometheus/rules/", f"{ROOT}/deploy/monitoring/rules/")
    config = config.replace("/etc/prometheus/metrics_token", str(tmp_path / "metrics_token"))
    (tmp_path / "prometheus.yml").write_text(config)
    full = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert full.returncode == 0, full.stdout + full.stderr


def test_github_workflow_runs_the_ci_script_against_the_compose_service_versions():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    job = workflow["jobs"]["ci"]
    assert job["timeout-minutes"] <= 90
    assert workflow["concurrency"]["group"]
    assert job["services"]["postgres"]["image"] == service("db")["image"]
    assert job["services"]["redis"]["image"] == service("redis")["image"]
    for name in ("postgres", "redis"):
        assert "--health-cmd" in job["services"][name]["options"]
    steps = job["steps"]
    [python] = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
    assert python["with"]["python-version"] == "3.11"  # as pyproject.toml's requires-python
    assert steps[-1]["run"] == "bash .ci/run"


def test_the_compose_env_file_never_reaches_the_image():
    # docker-compose reads secrets from .env beside the Dockerfile, and the image copies the
    # build context (`COPY . .`).
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored
    assert "COPY --chown=app:app . ." in (ROOT / "Dockerfile").read_text()
