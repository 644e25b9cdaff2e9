"""aks/: every overlay renders (kubectl kustomize) into objects valid for Kubernetes 1.32
(kubernetes-validate, strict), and matches the code: the GGUF server's command, port, health endpoint,
metrics and every setting it reads; the addresses agree with Terraform."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import SchemaNotFoundError

from models.blob_store import BlobSettings
from models.gguf_server.settings import GGUFServerSettings
from tests.deploy.conftest import AKS, ENVIRONMENTS, ROOT, TERRAFORM, find, render, tf_dir, tfvars

K8S_VERSION = "1.32.0"
NAMESPACE = "llmp-models"
# Not set on purpose: the version label comes from Blob (docs/models.md), and the server reads Blob
# with its workload identity, never with a connection string (no shared keys).
NOT_SET = {"LLMP_GGUF_VERSION": "the version label comes from the Blob pointer",
           "LLMP_BLOB_CONNECTION_STRING": "Entra auth: LLMP_BLOB_ACCOUNT_URL + workload identity",
           "LLMP_GGUF_CHAT_TEMPLATE_FILE": "a version in Blob carries its chat template (published "
                                           "with `llmp models publish --chat-template`)"}
# Custom resources have no schema in kubernetes-validate: their required fields are checked here.
CRD_REQUIRED = {
    "ScaledObject": ["spec.scaleTargetRef.name", "spec.triggers"],
    "TriggerAuthentication": ["spec.podIdentity.provider", "spec.podIdentity.identityId"],
    "SecretProviderClass": ["spec.provider", "spec.parameters.keyvaultName", "spec.parameters.clientID",
                            "spec.parameters.tenantId", "spec.parameters.objects"],
}


def _get(doc: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        doc = doc[part]
    return doc


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for d in docs:
        spec = d.get("spec", {})
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
            out.append((f"{d['kind']}/{d['metadata']['name']}", spec["template"]["spec"]))
        elif d["kind"] == "CronJob":
            out.append((f"CronJob/{d['metadata']['name']}", spec["jobTemplate"]["spec"]["template"]["spec"]))
    return out


def gguf_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    dep = find(docs, "Deployment", "gguf-smollm2-135m")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c  # type: ignore[no-any-return]


@pytest.mark.parametrize("overlay", ENVIRONMENTS)
def test_overlay_validates(overlay: str) -> None:
    docs = render(overlay)
    assert len(docs) > 20
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except SchemaNotFoundError:
            for path in CRD_REQUIRED[doc["kind"]]:
                assert _get(doc, path), f"{doc['kind']}/{doc['metadata']['name']}: {path}"
    namespaced = [d for d in docs if d["kind"] not in ("Namespace",)]
    assert all(d["metadata"].get("namespace") in (NAMESPACE, "kube-system") for d in namespaced)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() if k != "key" for s in _strings(v)]  # configMapKeyRef keys
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.mark.parametrize("overlay", ENVIRONMENTS)
def test_every_placeholder_replaced(overlay: str) -> None:
    """components/infra replaced each base placeholder (named like an infra.env key) with its value."""
    keys = set(read_env(AKS / "overlays" / overlay / "infra.env"))
    for doc in render(overlay):
        if doc["metadata"]["name"].startswith("llmp-infra"):
            continue
        left = [s for s in _strings(doc) if s in keys or "set-by-overlay" in s]
        assert not left, f"{doc['kind']}/{doc['metadata']['name']}: {left}"


@pytest.mark.parametrize("overlay", ENVIRONMENTS)
def test_gguf_server_matches_the_code(overlay: str) -> None:
    docs = render(overlay)
    dep = find(docs, "Deployment", "gguf-smollm2-135m")
    c = gguf_container(docs)
    assert c["command"] == ["python", "-m", "models.gguf_server.app"]  # as llmp_cli/serve.py starts it
    env = {e["name"]: e for e in c["env"]}
    port = int(env["LLMP_GGUF_PORT"]["value"])
    assert port == GGUFServerSettings.model_fields["port"].default
    assert env["LLMP_GGUF_HOST"]["value"] == "0.0.0.0"
    assert env["LLMP_GGUF_MODEL"]["value"] == "blob:"
    assert [p["containerPort"] for p in c["ports"]] == [port]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/health"
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = dep["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["spec"]["serviceAccountName"] == "gguf-server"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    # threads = the CPU limit (os.cpu_count() in a pod sees the node)
    assert env["LLMP_GGUF_THREADS"]["value"] == c["resources"]["limits"]["cpu"]
    cache = next(m for m in c["volumeMounts"] if env["LLMP_GGUF_CACHE_DIR"]["value"].startswith(m["mountPath"]))
    assert cache["name"] == "model-cache"
    svc = find(docs, "Service", "gguf-smollm2-135m")
    assert svc["spec"]["ports"][0]["port"] == port


@pytest.mark.parametrize("overlay", ENVIRONMENTS)
def test_every_gguf_setting_is_set(overlay: str) -> None:
    env = {e["name"] for e in gguf_container(render(overlay))["env"]}
    for cls in (GGUFServerSettings, BlobSettings):
        prefix = cls.model_config["env_prefix"]
        for field in cls.model_fields:
            name = f"{prefix}{field}".upper()
            assert name in env or name in NOT_SET, f"{name} is not set in the GGUF server manifest"
    assert not env & set(NOT_SET)


@pytest.mark.parametrize("overlay", ENVIRONMENTS)
def test_embedding_server_matches_the_code(overlay: str) -> None:
    from models.catalog import load_catalog
    from models.embedding_server.settings import EmbeddingServerSettings

    docs = render(overlay)
    dep = find(docs, "Deployment", "embedding-minilm")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["python", "-m", "models.embedding_server.app"]  # as llmp serve starts it
    env = {e["name"]: e.get("value") for e in c["env"]}
    prefix = EmbeddingServerSettings.model_config["env_prefix"]
    for field in EmbeddingServerSettings.model_fields:
        assert f"{prefix}{field}".upper() in env, f"{prefix}{field} is not set in the manifest"
    port = int(env["LLMP_EMBEDDING_SERVER_PORT"])
    assert [p["containerPort"] for p in c["ports"]] == [port]
    assert find(docs, "Service", "embedding-minilm")["spec"]["ports"][0]["port"] == port
    assert env["LLMP_EMBEDDING_SERVER_THREADS"] == c["resources"]["limits"]["cpu"]
    assert env["HF_HUB_OFFLINE"] == "1"
    spec = load_catalog().get(env["LLMP_EMBEDDING_SERVER_ALIAS"])
    assert spec is not None and spec.tier == "embedding"
    assert int(env["LLMP_EMBEDDING_SERVER_MAX_INPUT_TOKENS"]) == spec.context_length
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/health"
    query = find(docs, "ScaledObject", "embedding-minilm")["spec"]["triggers"][0]["metadata"]["query"]
    assert "llmp_embedding_inputs_in_flight" in query
    assert '"llmp_embedding_inputs_in_flight"' in (ROOT / "models/embedding_server/metrics.py").read_text()


def test_autoscaling_metrics_exist() -> None:
    metrics = (ROOT / "models/gguf_server/metrics.py").read_text()
    docs = render("prod")
    gguf = find(docs, "ScaledObject", "gguf-smollm2-135m")["spec"]["triggers"][0]["metadata"]["query"]
    assert "llmp_gguf_requests_in_flight" in gguf and '"llmp_gguf_requests_in_flight"' in metrics
    vllm = find(docs, "ScaledObject", "vllm")["spec"]["triggers"][0]["metadata"]["query"]
    assert "vllm:num_requests_waiting" in vllm
    assert find(render("dev"), "ScaledObject", "vllm")["spec"]["minReplicaCount"] == 0


@pytest.mark.parametrize("overlay", ENVIRONMENTS)
def test_pods_are_locked_down(overlay: str) -> None:
    for name, spec in pod_specs(render(overlay)):
        for c in spec["containers"]:
            assert c["resources"]["requests"] and c["resources"]["limits"], f"{name}: resources"
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], name
        if name != "DaemonSet/nvidia-device-plugin":  # needs root for the kubelet's socket directory
            assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name


def test_vllm() -> None:
    docs = render("prod")
    dep = find(docs, "Deployment", "vllm")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["image"].startswith("vllm/vllm-openai:v")
    flags = " ".join(c["args"])
    for flag in ("--tensor-parallel-size", "--max-num-seqs", "--max-num-batched-tokens",
                 "--gpu-memory-utilization", "--enable-prefix-caching"):
        assert flag in flags
    config = find(docs, "ConfigMap", "vllm-config")["data"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == config["VLLM_TENSOR_PARALLEL_SIZE"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
        dep["spec"]["template"]["spec"]["tolerations"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/health"


def test_network_policies_admit_only_the_gateway() -> None:
    docs = render("dev")
    infra = find(docs, "ConfigMap", next(d["metadata"]["name"] for d in docs
                                         if d["metadata"]["name"].startswith("llmp-infra")))["data"]
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    assert policies["default-deny-ingress"]["spec"]["podSelector"] == {}
    for name in ("gguf-server-ingress", "vllm-ingress", "qdrant-ingress", "embedding-server-ingress"):
        sources = [s for rule in policies[name]["spec"]["ingress"] for s in rule["from"]]
        cidrs = [s["ipBlock"]["cidr"] for s in sources if "ipBlock" in s]
        assert cidrs == [infra["FUNCTIONS_SUBNET_CIDR"]]
    for svc in ("gguf-smollm2-135m", "vllm", "qdrant", "embedding-minilm"):
        assert find(docs, "Service", svc)["spec"]["externalTrafficPolicy"] == "Local"  # keeps the source IP


def read_env(path: Path) -> dict[str, str]:
    pairs = [ln.split("=", 1) for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return dict(pairs)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_infra_env_matches_terraform(env: str) -> None:
    values = read_env(AKS / "overlays" / env / "infra.env")
    platform_out = {n: b for blk in tf_dir(TERRAFORM / "modules/platform")["output"] for n, b in blk.items()}
    keys = set(platform_out["k8s_values"]["value"])
    assert set(values) == keys | {"GGUF_IMAGE", "EMBEDDING_IMAGE"}
    # The addresses follow from address_space exactly as modules/network and modules/platform compute them.
    vnet = ipaddress.ip_network(tfvars(env)["address_space"])
    ilb = list(vnet.subnets(new_prefix=24))[16]
    assert values["FUNCTIONS_SUBNET_CIDR"] == str(list(vnet.subnets(new_prefix=24))[18])
    assert values["GGUF_ILB_IP"] == str(ilb.network_address + 10)
    assert values["VLLM_ILB_IP"] == str(ilb.network_address + 20)
    assert values["QDRANT_ILB_IP"] == str(ilb.network_address + 30)
    assert values["EMBEDDING_ILB_IP"] == str(ilb.network_address + 40)
    assert values["ILB_SUBNET_NAME"] == "snet-aks-ilb"


def test_network_module_offsets() -> None:
    """test_infra_env_matches_terraform assumes these cidrsubnet/cidrhost offsets."""
    (locals_,) = [b for b in tf_dir(TERRAFORM / "modules/network")["locals"] if "subnets" in b]
    assert locals_["subnets"]["aks_ilb"] == "${cidrsubnet(var.address_space, 8, 16)}"
    assert locals_["subnets"]["functions"] == "${cidrsubnet(var.address_space, 8, 18)}"
    (platform,) = [b for b in tf_dir(TERRAFORM / "modules/platform")["locals"] if "ilb_ips" in b]
    assert platform["ilb_ips"] == {
        "gguf": "${cidrhost(module.network.subnet_cidrs.aks_ilb, 10)}",
        "vllm": "${cidrhost(module.network.subnet_cidrs.aks_ilb, 20)}",
        "qdrant": "${cidrhost(module.network.subnet_cidrs.aks_ilb, 30)}",
        "embedding": "${cidrhost(module.network.subnet_cidrs.aks_ilb, 40)}",
    }
    funcs = {n: b for blk in tf_dir(TERRAFORM / "modules/platform")["module"] for n, b in blk.items()}["functions"]
    assert funcs["gguf_url"] == "http://${local.ilb_ips.gguf}:8081"
    assert funcs["vllm_url"] == "http://${local.ilb_ips.vllm}:8000"
    assert funcs["qdrant_url"] == "http://${local.ilb_ips.qdrant}:6333"
    assert funcs["embedding_url"] == "http://${local.ilb_ips.embedding}:8082"
