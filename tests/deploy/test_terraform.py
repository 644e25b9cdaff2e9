"""terraform/: formatted, parseable, pinned, variables validated and documented, and the resources
the platform depends on configured as docs/deploy.md says (checkov runs in test_checkov.py)."""

from __future__ import annotations

import ipaddress
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import ENVIRONMENTS, TERRAFORM, parse_tf, resources, tf_dir, tfvars, tool

MODULES = sorted(p for p in (TERRAFORM / "modules").iterdir() if p.is_dir())
ROOTS = [*MODULES, *(TERRAFORM / "environments" / e for e in ENVIRONMENTS)]


def test_terraform_fmt() -> None:
    r = subprocess.run([tool("terraform"), "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"terraform fmt would change:\n{r.stdout}{r.stderr}"


@pytest.mark.parametrize("path", sorted(TERRAFORM.rglob("*.tf*")), ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_hcl_parses(path: Path) -> None:
    assert isinstance(parse_tf(path), dict)


@pytest.mark.parametrize("root", ROOTS, ids=lambda p: p.name)
def test_azurerm_pinned(root: Path) -> None:
    tf = tf_dir(root)["terraform"][0]
    providers = tf["required_providers"][0]
    assert re.fullmatch(r"~> 4\.\d+", providers["azurerm"]["version"])
    assert providers["azurerm"]["source"] == "hashicorp/azurerm"
    assert tf["required_version"] == ">= 1.9"


@pytest.mark.parametrize("root", ROOTS, ids=lambda p: p.name)
def test_variables_and_outputs_documented(root: Path) -> None:
    blocks = tf_dir(root)
    for kind in ("variable", "output"):
        for block in blocks.get(kind, []):
            for name, body in block.items():
                assert body.get("description"), f"{root.name}: {kind} {name} has no description"
                if kind == "variable":
                    assert "type" in body, f"{root.name}: variable {name} has no type"


def test_modules_validate_their_inputs() -> None:
    validated = [name for m in MODULES for b in tf_dir(m).get("variable", []) for name, body in b.items()
                 if body.get("validation")]
    assert len(validated) >= 25, validated


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_wires_platform(env: str) -> None:
    root = TERRAFORM / "environments" / env
    blocks = tf_dir(root)
    assert blocks["terraform"][0]["backend"] == [{"azurerm": {}}]
    backend = parse_tf(root / "backend.hcl")
    assert backend["key"] == f"llmp-{env}.tfstate" and backend["use_azuread_auth"] is True
    platform_vars = {n: b for blk in tf_dir(TERRAFORM / "modules/platform")["variable"] for n, b in blk.items()}
    call = blocks["module"][0]["platform"]
    passed = set(call) - {"source"}
    assert passed <= set(platform_vars), passed - set(platform_vars)
    required = {n for n, b in platform_vars.items() if "default" not in b}
    assert required <= passed, f"platform inputs not passed: {required - passed}"
    env_vars = {n for blk in blocks["variable"] for n in blk}
    # Site-specific values come from the variable group (TF_VAR_*), the rest from terraform.tfvars.
    from_pipeline = {"deployer_ip_ranges", "pipeline_principal_ids", "entra_audience"}
    assert set(tfvars(env)) | from_pipeline == env_vars
    outputs = {n for blk in blocks["output"] for n in blk}
    assert {"k8s_values", "function_app_name", "aks_cluster_name", "gateway_url", "acr_login_server",
            "blob_account_url", "resource_group_name"} <= outputs


def test_pipeline_variables_exist_in_environments() -> None:
    common = (TERRAFORM.parent / "pipelines/templates/terraform-env.yml").read_text()
    for name in re.findall(r"TF_VAR_(\w+):", common):
        for env in ENVIRONMENTS:
            assert name in {n for b in tf_dir(TERRAFORM / "environments" / env)["variable"] for n in b}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_sizes(env: str) -> None:
    v = tfvars(env)
    assert re.match(r"Standard_N", v["gpu_vm_size"])
    assert v["gpu_min_count"] <= v["gpu_max_count"]
    assert ipaddress.ip_network(v["address_space"]).prefixlen == 16
    # Postgres connections: every Flex instance may hold gateway_db_pool_max of them.
    max_connections = {"B_Standard_B1ms": 50, "B_Standard_B2s": 429, "GP_Standard_D2ds_v5": 859}
    assert v["functions_maximum_instance_count"] * v["gateway_db_pool_max"] < max_connections[v["postgres_sku"]]
    if env == "dev":
        assert v["gpu_min_count"] == 0  # the GPU pool scales to zero
    else:
        assert v["zones"] == ["1", "2", "3"] and v["postgres_high_availability"] is True


def test_network() -> None:
    subnets = resources(TERRAFORM / "modules/network", "azurerm_subnet")
    (delegation,) = subnets["functions"]["delegation"]
    assert delegation["service_delegation"][0]["name"] == "Microsoft.App/environments"
    assert subnets["postgres"]["delegation"][0]["service_delegation"][0]["name"] == \
        "Microsoft.DBforPostgreSQL/flexibleServers"


def test_aks() -> None:
    path = TERRAFORM / "modules/aks"
    (cluster,) = resources(path, "azurerm_kubernetes_cluster").values()
    assert cluster["oidc_issuer_enabled"] is True and cluster["workload_identity_enabled"] is True
    assert cluster["local_account_disabled"] is True
    assert cluster["workload_autoscaler_profile"][0]["keda_enabled"] is True
    assert cluster["default_node_pool"][0]["only_critical_addons_enabled"] is True
    pools = resources(path, "azurerm_kubernetes_cluster_node_pool")
    gpu = pools["gpu"]
    assert gpu["node_taints"] == ["nvidia.com/gpu=present:NoSchedule"]
    assert gpu["node_labels"]["llmp.io/pool"] == "gpu"
    assert gpu["min_count"] == "${var.gpu_min_count}" and gpu["vm_size"] == "${var.gpu_vm_size}"
    assert "llmp.io/pool=gguf:NoSchedule" in pools["gguf"]["node_taints"]
    acr = resources(TERRAFORM / "modules/registry", "azurerm_role_assignment")["pull"]
    assert acr["role_definition_name"] == "AcrPull"


def test_data_stores() -> None:
    (pg,) = resources(TERRAFORM / "modules/data", "azurerm_postgresql_flexible_server").values()
    assert pg["public_network_access_enabled"] is False and pg["delegated_subnet_id"]
    (redis,) = resources(TERRAFORM / "modules/data", "azurerm_redis_cache").values()
    assert redis["non_ssl_port_enabled"] is False and redis["minimum_tls_version"] == "1.2"
    (sa,) = resources(TERRAFORM / "modules/storage", "azurerm_storage_account").values()
    assert sa["shared_access_key_enabled"] is False and sa["min_tls_version"] == "TLS1_2"
    assert sa["blob_properties"][0]["versioning_enabled"] == "${var.versioning_enabled}"
    platform = tf_dir(TERRAFORM / "modules/platform")["module"]
    models = next(b["models_storage"] for b in platform if "models_storage" in b)
    assert models["versioning_enabled"] is True and "models" in models["containers"]
    (kv,) = resources(TERRAFORM / "modules/keyvault", "azurerm_key_vault").values()
    assert kv["enable_rbac_authorization"] is True


def test_function_app() -> None:
    path = TERRAFORM / "modules/functions"
    (app,) = resources(path, "azurerm_function_app_flex_consumption").values()
    assert app["runtime_name"] == "python" and app["runtime_version"] == "3.11"
    assert app["virtual_network_subnet_id"] == "${var.subnet_id}"
    assert app["identity"][0]["type"] == "SystemAssigned"
    assert app["https_only"] is True
    (plan,) = resources(path, "azurerm_service_plan").values()
    assert plan["sku_name"] == "FC1"
    roles = {r["role_definition_name"] for r in resources(path, "azurerm_role_assignment").values()}
    assert "Key Vault Secrets User" in roles


def test_workload_identities() -> None:
    platform = {n: b for blk in tf_dir(TERRAFORM / "modules/platform")["module"] for n, b in blk.items()}
    gguf = platform["gguf_identity"]
    assert (gguf["namespace"], gguf["service_account"]) == ("${local.namespace}", "gguf-server")
    assert gguf["role_assignments"]["models"]["role"] == "Storage Blob Data Reader"
    assert platform["qdrant_identity"]["service_account"] == "qdrant"
    (fed,) = resources(TERRAFORM / "modules/workload-identity", "azurerm_federated_identity_credential").values()
    assert fed["subject"] == "system:serviceaccount:${var.namespace}:${var.service_account}"
