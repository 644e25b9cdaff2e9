"""Every setting the gateway needs in Azure is set by Terraform (the Function App's app settings in
terraform/modules/functions), read from the code: the fields of every pydantic-settings class under
functions/ (found by parsing the sources, so a class added later is covered), the model validators
(the settings must load in azure mode from exactly what Terraform sets), and the ${VAR} references of
the model catalog."""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from tests.deploy.conftest import ROOT, TERRAFORM, tf_dir

# Names Terraform sets ahead of the code that will read them (open issues: RAG, tenancy/Entra ID,
# Key Vault) and the catalog's backend URLs. Anything else LLMP_* must be a field, so a typo fails.
AHEAD_OF_CODE: set[str] = set()  # names Terraform may set before the code reads them
PLATFORM = {"PYTHON_ENABLE_INIT_INDEXING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
            "AzureFunctionsJobHost__logging__logLevel__default"}


def app_settings() -> dict[str, str]:
    (block,) = [b for b in tf_dir(TERRAFORM / "modules/functions")["locals"] if "app_settings" in b]
    return block["app_settings"]  # type: ignore[no-any-return]


def settings_classes() -> Iterator[type[BaseSettings]]:
    for path in sorted((ROOT / "functions").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                    (isinstance(b, ast.Name) and b.id == "BaseSettings")
                    or (isinstance(b, ast.Attribute) and b.attr == "BaseSettings") for b in node.bases):
                module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                yield getattr(importlib.import_module(module), node.name)


def env_names(cls: type[BaseSettings], field: str) -> list[str]:
    info = cls.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(c) for c in alias.choices]
    if isinstance(alias, str):
        return [alias]
    if info.alias:
        return [info.alias]
    prefix = cls.model_config.get("env_prefix", "")
    return [f"{prefix}{field}".upper()]


def all_env_names() -> set[str]:
    return {n for cls in settings_classes() for f in cls.model_fields for n in env_names(cls, f)}


def test_settings_classes_found() -> None:
    names = [c.__name__ for c in settings_classes()]
    assert "GatewaySettings" in names


@pytest.mark.parametrize("cls", list(settings_classes()), ids=lambda c: c.__name__)
def test_required_fields_set_by_terraform(cls: type[BaseSettings]) -> None:
    settings = app_settings()
    for field, info in cls.model_fields.items():
        if info.is_required():
            names = env_names(cls, field)
            assert any(n in settings for n in names), \
                f"{cls.__name__}.{field} is required: Terraform must set one of {names}"


def _value(cls: type[BaseSettings], name: str, value: str) -> str:
    if "${" not in value:
        return value
    # an expression, known only at apply time: the field's default, or a plausible string
    for field, info in cls.model_fields.items():
        if name in env_names(cls, field) and info.default not in (None, ...):
            return str(info.default)
    return "terraform-value"


@pytest.mark.parametrize("cls", list(settings_classes()), ids=lambda c: c.__name__)
def test_settings_load_in_azure_from_terraform(cls: type[BaseSettings], monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("LLMP_") or key in ("DATABASE_URL", "REDIS_URL"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(TERRAFORM)  # no .env file of a developer
    for name, value in app_settings().items():
        monkeypatch.setenv(name, _value(cls, name, value))
    settings: Any = cls()
    if hasattr(settings, "environment"):
        assert settings.environment == "azure"


def test_no_unknown_llmp_settings() -> None:
    known = all_env_names() | catalog_refs() | AHEAD_OF_CODE
    unknown = {n for n in app_settings() if n not in known and n not in PLATFORM}
    assert not unknown, f"Terraform sets settings no code reads: {unknown}"


def test_required_platform_settings() -> None:
    s = app_settings()
    assert s["PYTHON_ENABLE_INIT_INDEXING"] == "1"
    assert s["LLMP_ENVIRONMENT"] == "azure"
    for secret in ("DATABASE_URL", "REDIS_URL", "LLMP_QDRANT_API_KEY"):
        assert s[secret].startswith("${local.kv["), f"{secret} must be a Key Vault reference"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def catalog_refs(path: Path = ROOT / "models/catalog.yaml") -> set[str]:
    """The ${VAR} references in the catalog's values (comments aside)."""
    data = yaml.safe_load(path.read_text())
    return {m for s in _strings(data) for m in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", s)}


def test_catalog_references_set_by_terraform() -> None:
    """Backend URLs default to 127.0.0.1 for `llmp serve`; in Azure each must point at AKS."""
    missing = catalog_refs() - set(app_settings())
    assert not missing, f"the catalog reads {missing}, which Terraform does not set"
