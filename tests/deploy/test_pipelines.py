"""pipelines/: yamllint-clean, every task a built-in Azure Pipelines task at a major version that
exists, every template and script referenced present, template parameters passed as declared; the
helper scripts the pipelines run, tested here offline."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from tests.deploy.conftest import AKS, PIPELINES, ROOT, render

YAML_FILES = sorted(PIPELINES.rglob("*.yml"))
# Built-in tasks (github.com/microsoft/azure-pipelines-tasks) at the major versions used here.
BUILT_IN_TASKS = {
    "AzureCLI@2", "AzureFunctionApp@2", "Cache@2", "DownloadPipelineArtifact@2", "KubectlInstaller@0",
    "KubeloginInstaller@0", "KubernetesManifest@1", "NodeTool@0", "PublishCodeCoverageResults@2",
    "PublishPipelineArtifact@1", "PublishTestResults@2", "UsePythonVersion@0",
}
ENTRY_POINTS = ("ci.yml", "app.yml", "infra.yml", "models.yml")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def walk(node: Any) -> Any:
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, PIPELINES / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_entry_points_exist() -> None:
    for name in ENTRY_POINTS:
        assert (PIPELINES / name).is_file()


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(PIPELINES)))
def test_yamllint(path: Path) -> None:
    conf = YamlLintConfig(file=str(PIPELINES / ".yamllint.yaml"))
    problems = list(linter.run(path.read_text(), conf, str(path)))
    assert not problems, "\n".join(f"{path.name}:{p.line}:{p.column} {p.message}" for p in problems)


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(PIPELINES)))
def test_tasks_are_built_in(path: Path) -> None:
    for node in walk(load(path)):
        if isinstance(node, dict) and "task" in node:
            assert node["task"] in BUILT_IN_TASKS, f"{path.name}: unknown task {node['task']}"


def _declared(template: Path) -> dict[str, dict[str, Any]]:
    params = load(template).get("parameters") or []
    return {p["name"]: p for p in params}


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(PIPELINES)))
def test_templates_exist_and_get_their_parameters(path: Path) -> None:
    for node in walk(load(path)):
        if not (isinstance(node, dict) and isinstance(node.get("template"), str)):
            continue
        target = (path.parent / node["template"]).resolve()
        assert target.is_file(), f"{path.name}: template {node['template']} not found"
        declared = _declared(target)
        given = set(node.get("parameters") or {})
        assert given <= set(declared), f"{path.name} -> {target.name}: unknown {given - set(declared)}"
        required = {n for n, p in declared.items() if "default" not in p}
        assert required <= given, f"{path.name} -> {target.name}: missing {required - given}"


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(PIPELINES)))
def test_referenced_files_exist(path: Path) -> None:
    text = path.read_text()
    for ref in re.findall(r"(?:pipelines/scripts|docker|aks/overlays)/[\w./-]+", text):
        ref = ref.rstrip(".")
        if "$" not in ref and "{" not in ref:
            assert (ROOT / ref).exists(), f"{path.name}: {ref} does not exist"


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(PIPELINES)))
def test_service_connections(path: Path) -> None:
    for node in walk(load(path)):
        if isinstance(node, dict):
            for key in ("azureSubscription", "connectedServiceNameARM", "azureSubscriptionConnection"):
                if key in node:
                    assert node[key] == "llmp-${{ parameters.environment }}", f"{path.name}: {node[key]}"


def test_flex_consumption_deploy() -> None:
    steps = load(PIPELINES / "templates/deploy-functions.yml")["steps"]
    (deploy,) = [s for s in steps if s.get("task") == "AzureFunctionApp@2"]
    assert deploy["inputs"]["isFlexConsumption"] is True
    assert deploy["inputs"]["appType"] == "functionAppLinux"


def test_infra_apply_is_gated() -> None:
    stages = load(PIPELINES / "templates/terraform-stages.yml")["stages"]
    (apply_job,) = stages[1]["jobs"]
    assert apply_job["environment"] == "llmp-infra-${{ parameters.environment }}"
    assert "tfplan" in json.dumps(apply_job)


# -- scripts --------------------------------------------------------------------------------------


def test_write_infra_env(tmp_path: Path) -> None:
    mod = script("write_infra_env")
    env_file = tmp_path / "infra.env"
    env_file.write_text((AKS / "overlays/dev/infra.env").read_text())
    keys = list(mod.read_env(env_file))
    k8s = {k: f"value-{k.lower()}" for k in keys if k not in ("GGUF_IMAGE", "EMBEDDING_IMAGE")}
    k8s["ACR_LOGIN_SERVER"] = "acrllmpdevx1.azurecr.io"
    outputs = tmp_path / "tf.json"
    outputs.write_text(json.dumps({"k8s_values": {"sensitive": False, "value": k8s}}))
    assert mod.main([str(outputs), str(env_file), "--image-tag", "42"]) == 0
    written = mod.read_env(env_file)
    assert list(written) == keys
    assert written["GGUF_IMAGE"] == "acrllmpdevx1.azurecr.io/llmp-gguf-server:42"
    assert written["EMBEDDING_IMAGE"] == "acrllmpdevx1.azurecr.io/llmp-embedding-server:42"
    k8s["TENANT_ID"] = "unset"
    outputs.write_text(json.dumps({"k8s_values": {"sensitive": False, "value": k8s}}))
    with pytest.raises(SystemExit, match="unset"):
        mod.main([str(outputs), str(env_file), "--image-tag", "42"])


def test_split_manifests(tmp_path: Path) -> None:
    mod = script("split_manifests")
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(render("dev")))
    assert mod.main([str(rendered), str(tmp_path / "out")]) == 0
    gguf = list(yaml.safe_load_all((tmp_path / "out/gguf.yaml").read_text()))
    rest = list(yaml.safe_load_all((tmp_path / "out/platform.yaml").read_text()))
    assert [d["metadata"]["name"] for d in gguf] == ["gguf-smollm2-135m"]
    assert len(gguf) + len(rest) == len(render("dev"))


def test_wait_model_version() -> None:
    mod = script("wait_model_version")
    served = {"gguf-a": "v1", "gguf-b": "v1"}

    def run(args: list[str]) -> str:
        if args[0] == "get":
            return json.dumps({"items": [{"metadata": {"name": n}} for n in served]})
        pod = args[3]
        if served[pod] is None:
            raise subprocess.CalledProcessError(1, args)
        return json.dumps({"status": "ok", "version": served[pod]})

    ticks = iter(range(1000))

    def sleep(_: float) -> None:
        served["gguf-a"] = "v2"  # one server swaps, the other lags
        if next(ticks) >= 2:
            served["gguf-b"] = "v2"

    assert mod.wait(run, "llmp-models", "a", "v2", 600, clock=lambda: 0.0, sleep=sleep)
    served.update({"gguf-a": "v1", "gguf-b": None})  # never swaps (and one is unreachable): times out
    clock = iter([0.0, 100.0, 700.0])
    assert not mod.wait(run, "llmp-models", "a", "v3", 600, clock=lambda: next(clock), sleep=lambda _: None)


def _imports(path: Path) -> set[str]:
    import ast

    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.split(".")[0] in ("functions", "models")}


def test_functions_package(tmp_path: Path) -> None:
    mod = script("functions_package")
    reqs = mod.requirements()
    assert any(r.startswith("azure-functions") for r in reqs) and not any("llama" in r for r in reqs)
    dest = tmp_path / "functions.zip"
    assert mod.main([str(dest), "--no-deps"]) == 0
    names = set(zipfile.ZipFile(dest).namelist())
    assert {"function_app.py", "host.json", "functions/settings.py", "models/catalog.yaml"} <= names
    assert not [n for n in names if n.split("/")[0] in ("tests", "terraform", "aks", "pipelines", "bench")]
    assert not [n for n in names if n.startswith("models/gguf_server/")]
    # every functions/ or models/ module the gateway imports (transitively) is in the package
    todo, seen = ["function_app"], set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for candidate in (module.replace(".", "/") + ".py", module.replace(".", "/") + "/__init__.py"):
            if (ROOT / candidate).is_file():
                assert candidate in names, f"{candidate} (imported by the gateway) is not packaged"
                todo.extend(_imports(ROOT / candidate))
    assert "models.catalog" in seen
