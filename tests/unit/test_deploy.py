"""deploy/ cross-checked against the code it runs: the Kubernetes manifests, compose.yaml, the
Dockerfile and the systemd unit must agree with the config loader, the health server's paths and
port, the daemon's shutdown and each other. No cluster or Docker daemon is needed: a manifest
that parses but names a path the server does not answer, a port the config does not listen on, or
a variable nobody sets would otherwise only fail in production.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from watcher.config import load_config
from watcher.daemon import SHUTDOWN_GRACE_SECONDS
from watcher.metrics import Metrics, StoreSnapshot
from watcher.rules import load_rules
from watcher.server import HealthServer

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
CONFIG = DEPLOY / "config.toml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def _kube() -> dict[tuple[str, str], dict[str, Any]]:
    """Every Kubernetes object in deploy/kubernetes, by (kind, name)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in _docs(path):
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def _kustomization() -> dict[str, Any]:
    (doc,) = _docs(KUBE / "kustomization.yaml")
    return doc


def _pod() -> dict[str, Any]:
    spec: dict[str, Any] = _kube()[("Deployment", "watcher")]["spec"]["template"]["spec"]
    return spec


def _container() -> dict[str, Any]:
    (container,) = _pod()["containers"]
    return dict(container)


def _compose() -> dict[str, Any]:
    (doc,) = _docs(DEPLOY / "compose.yaml")
    return dict(doc)


def _dockerfile() -> dict[str, str]:
    """The last value of each Dockerfile instruction (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, value = line.strip().partition(" ")
            out[instruction.upper()] = value.strip()
    return out


def _unit() -> dict[str, list[str]]:
    """systemd unit directives, each with every value it is given (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for line in (DEPLOY / "watcher.service").read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _config_vars() -> set[str]:
    """The ${VAR}s of deploy/config.toml that have no default, so something must set them."""
    text = "\n".join(line.split("#", 1)[0] for line in CONFIG.read_text(encoding="utf-8").splitlines())
    return {m.group(1) for m in _VAR.finditer(text) if m.group(2) is None}


def _secret_keys() -> set[str]:
    secret = _kube()[("Secret", "watcher-secrets")]
    return set(secret.get("stringData", {})) | set(secret.get("data", {}))


def _port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def _mount(container: dict[str, Any], volume: str) -> str:
    (path,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume]
    return str(path)


def _seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+)s", value)
    assert m, f"write durations in whole seconds here, not {value!r}"
    return float(m.group(1))


def test_every_manifest_parses_into_named_objects() -> None:
    for path in sorted(KUBE.glob("*.yaml")):
        docs = _docs(path)
        assert docs, path
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind"), path
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], path
    kinds = {kind for kind, _ in _kube()}
    assert {"Deployment", "Service", "Secret", "PodDisruptionBudget"} <= kinds
    assert _compose()["services"]


def test_kustomization_ties_the_manifests_together_and_ships_every_rule_file() -> None:
    kustomization = _kustomization()
    resources = kustomization["resources"]
    for name in resources:
        assert (KUBE / name).is_file(), name
    # Applying the manifests must never overwrite a real Secret with secret.yaml's placeholders.
    assert "secret.yaml" not in resources
    generators = {g["name"]: g["files"] for g in kustomization["configMapGenerator"]}
    volumes = {v["name"]: v["configMap"]["name"] for v in _pod()["volumes"] if "configMap" in v}
    assert set(volumes.values()) == set(generators)
    assert generators["watcher-config"] == ["config.toml=../config.toml"]
    assert (KUBE / "../config.toml").resolve() == CONFIG
    shipped = sorted(p.name for p in (ROOT / "rules").glob("*.toml"))
    listed = [(KUBE / f).resolve() for f in generators["watcher-rules"]]
    assert all(p.is_file() and p.parent == ROOT / "rules" for p in listed)
    assert sorted(p.name for p in listed) == shipped, "list every rules/*.toml in kustomization.yaml"


def test_deployment_runs_two_hardened_replicas() -> None:
    deployment = _kube()[("Deployment", "watcher")]
    assert deployment["spec"]["replicas"] == 2
    pod, container = _pod(), _container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    for bound in ("requests", "limits"):
        assert set(container["resources"][bound]) == {"cpu", "memory"}
    # A read-only root still needs somewhere to write temporary files.
    assert _mount(container, "tmp") == "/tmp"
    # The image's own user, so files it owns stay readable.
    uid, _, gid = _dockerfile()["USER"].partition(":")
    assert str(pod["securityContext"]["runAsUser"]) == uid != "0"
    assert str(pod["securityContext"]["runAsGroup"]) == gid


def test_probes_ask_the_health_server_paths_on_the_port_the_config_listens_on() -> None:
    container = _container()
    config = load_config(CONFIG, env=dict.fromkeys(_secret_keys(), "postgresql://u:p@db/w"))
    host, port = config.server.address
    assert host == "0.0.0.0", "the kubelet probes the pod's IP, not its loopback"
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert {_port(container, p["port"]) for p in probes.values()} == {port}
    service = _kube()[("Service", "watcher")]
    template = _kube()[("Deployment", "watcher")]["spec"]["template"]["metadata"]
    assert [_port(container, p["targetPort"]) for p in service["spec"]["ports"]] == [port]
    assert service["spec"]["selector"].items() <= template["labels"].items()
    assert template["annotations"]["prometheus.io/port"] == str(port)
    assert _dockerfile()["EXPOSE"] == str(port)

    # Ask the real health server each path the probes use: none may be a 404.
    server = HealthServer("127.0.0.1", 0, Metrics(), lambda: None)
    server.start()
    try:
        for probe in probes.values():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{probe['path']}", timeout=5) as r:
                    status = r.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            assert status == 200, probe["path"]
    finally:
        server.stop()


def test_configmap_config_loads_and_finds_its_rules_and_secrets_where_they_are_mounted() -> None:
    container = _container()
    needed = _config_vars()
    assert needed == {"WATCHER_DATABASE_URL", "SLACK_WEBHOOK_URL"}
    env_names = {e["name"] for e in container.get("env", [])}
    (secret_ref,) = [s["secretRef"]["name"] for s in container["envFrom"]]
    assert secret_ref == "watcher-secrets"
    assert needed <= _secret_keys() | env_names, "every ${VAR} of config.toml must come from the Secret or env"

    config = load_config(CONFIG, env={name: f"dummy-{name.lower()}" for name in needed})
    assert config.rules_dir == Path(_mount(container, "rules"))
    assert config.database.url == "dummy-watcher_database_url"
    assert config.resolved_channels["legal-slack"].urls == ("dummy-slack_webhook_url",)
    watcher_config = {e["name"]: e["value"] for e in container["env"]}["WATCHER_CONFIG"]
    assert watcher_config == _mount(container, "config") + "/config.toml"


def test_rules_load_from_a_configmap_shaped_folder_once(tmp_path: Path) -> None:
    # A ConfigMap volume holds the real files in a hidden, timestamped folder that ..data points
    # at, and a visible link per file; the loader must see each rule file once, not twice.
    real = tmp_path / "rules" / "..2026_12_03_19_00_00.000000001"
    real.mkdir(parents=True)
    for path in (ROOT / "rules").glob("*.toml"):
        shutil.copy(path, real / path.name)
    (tmp_path / "rules" / "..data").symlink_to(real.name)
    for path in real.iterdir():
        (tmp_path / "rules" / path.name).symlink_to(Path("..data") / path.name)
    assert len(load_rules([tmp_path / "rules"])) == len(load_rules([ROOT / "rules"]))


def test_image_runs_watcher_run_as_a_non_root_user() -> None:
    dockerfile = _dockerfile()
    assert json.loads(dockerfile["ENTRYPOINT"]) + json.loads(dockerfile["CMD"]) == ["watcher", "run"]
    assert dockerfile["USER"].split(":")[0] not in ("0", "root")
    assert dockerfile["STOPSIGNAL"] == "SIGTERM"
    assert _container()["args"] == ["run"]
    assert _compose()["services"]["watcher"]["command"] == ["run"]


def test_shutdown_allowance_is_the_same_everywhere_and_longer_than_the_daemon_needs() -> None:
    pod_seconds = float(_pod()["terminationGracePeriodSeconds"])
    compose_seconds = _seconds(_compose()["services"]["watcher"]["stop_grace_period"])
    (unit_value,) = _unit()["TimeoutStopSec"]
    assert pod_seconds == compose_seconds == float(unit_value)
    # The daemon gives a running cycle SHUTDOWN_GRACE_SECONDS, then a second for the cancelled
    # tasks, then closes the fetcher, the parse workers and the database.
    assert pod_seconds >= 2 * (SHUTDOWN_GRACE_SECONDS + 1)


def test_compose_runs_two_healthy_replicas_after_a_healthy_database() -> None:
    services = _compose()["services"]
    watcher, db = services["watcher"], services["db"]
    assert watcher["deploy"]["replicas"] == 2
    assert "container_name" not in watcher, "a fixed container name allows one replica only"
    assert watcher["depends_on"]["db"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    test = watcher["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"] and "urllib.request" in test[3]
    port = load_config(CONFIG, env=dict.fromkeys(_config_vars(), "x")).server.address[1]
    assert f"http://127.0.0.1:{port}/healthz" in test[3]
    # The mounted config is deploy/config.toml, where the image looks for it.
    (mount,) = watcher["volumes"]
    source, target, mode = mount.split(":")
    assert (DEPLOY / source).resolve() == CONFIG and mode == "ro"
    assert target == _dockerfile()["ENV"].split("WATCHER_CONFIG=")[1].split()[0]
    assert _config_vars() <= set(watcher["environment"])
    assert watcher["read_only"] is True and watcher["cap_drop"] == ["ALL"]


def test_systemd_unit_is_hardened() -> None:
    unit = _unit()
    (exec_start,) = unit["ExecStart"]
    assert exec_start.split()[1:] == ["run"]
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "StateDirectory": "watcher",
        "Restart": "on-failure",
        "KillSignal": "SIGTERM",
    }
    for key, value in expected.items():
        assert unit.get(key) == [value], key
    assert "@system-service" in unit["SystemCallFilter"]
    assert set(unit["RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit.get("User", []) != ["root"] and (unit.get("User") or unit.get("DynamicUser") == ["yes"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify also insists that ExecStart's program exists; the venv is not installed here, so
    # point the copy at this interpreter and check everything else as written.
    text = (DEPLOY / "watcher.service").read_text(encoding="utf-8")
    unit = tmp_path / "watcher.service"
    unit.write_text(text.replace("/opt/watcher/.venv/bin/watcher", sys.executable), encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    about_unit = [line for line in (result.stdout + result.stderr).splitlines() if unit.name in line]
    # verify exits 0 on an unknown or misspelt directive and only warns: treat any warning as a failure.
    assert result.returncode == 0 and not about_unit, result.stdout + result.stderr


def _exported_series() -> tuple[set[str], set[str]]:
    """(every sample name /metrics can show, the documented names: counters' ``_total``, gauges,
    histograms by family) from a real Metrics with one of everything recorded."""
    metrics = Metrics()
    now = datetime.now(UTC)
    metrics.watch_store(lambda: StoreSnapshot(now, [("cma-news", now, 0)], 1, now))
    metrics.polls.labels("cma-news", "updated").inc()
    metrics.items.labels("cma-news", "new").inc()
    metrics.matches.labels("cma-itc", "alerted").inc()
    metrics.deliveries.labels("legal-slack", "sent").inc()
    metrics.poll_seconds.labels("cma-news").observe(0.1)
    metrics.match_seconds.observe(0.01)
    samples: set[str] = set()
    documented: set[str] = set()
    for family in text_string_to_metric_families(metrics.render().decode()):
        names = {s.name for s in family.samples}
        samples |= names
        if family.type == "histogram":
            documented.add(family.name)
        else:
            documented |= {n for n in names if not n.endswith("_created")}
    return samples, documented


def test_operations_doc_lists_every_series_and_its_alert_rules_name_only_real_ones() -> None:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    samples, documented = _exported_series()
    table = set(re.findall(r"^\| `(watcher_[a-z_]+)` \|", text, flags=re.M))
    assert table == documented
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    (rules_block,) = [b for b in blocks if b.startswith("groups:")]
    (group,) = yaml.safe_load(rules_block)["groups"]
    alerts = {r["alert"]: r["expr"] for r in group["rules"]}
    assert {"WatcherDown", "WatcherFeedFailing", "WatcherOutboxBacklogGrowing", "WatcherDeliveriesFailing"} <= set(
        alerts
    )
    for name, expr in alerts.items():
        for series in re.findall(r"\bwatcher_[a-z_]+", expr):
            assert series in samples, f"{name}: {series} is not exported"
