from bench.pii_corpus import ENTITIES, HOLDOUT, TEMPLATES, generate


def test_the_same_seed_gives_the_same_corpus() -> None:
    assert generate(20, seed=3) == generate(20, seed=3)
    assert generate(20, seed=3) != generate(20, seed=4)


def test_every_type_and_the_benign_sentences_are_there() -> None:
    corpus = generate(25, seed=1)
    counts = {e: sum(1 for s in corpus for t, _, _ in s.spans if t == e) for e in ENTITIES}
    assert counts == dict.fromkeys(ENTITIES, 25)
    assert sum(1 for s in corpus if not s.spans) == 25


def test_spans_point_at_the_values() -> None:
    for s in generate(40, seed=2) + generate(40, seed=2, holdout=True):
        for entity, start, end in s.spans:
            value = s.text[start:end]
            assert value and value == value.strip()
            if entity == "EMAIL_ADDRESS":
                assert "@" in value
            if entity in ("US_SSN", "CREDIT_CARD"):
                assert sum(c.isdigit() for c in value) >= 9


def test_several_formats_per_type() -> None:
    corpus = generate(200, seed=5)
    values = {e: [s.text[a:b] for s in corpus for t, a, b in s.spans if t == e] for e in ENTITIES}
    phones = values["PHONE_NUMBER"]
    assert any("x" in p for p in phones) and any(p.startswith(("+1-", "001-")) for p in phones)
    cards = values["CREDIT_CARD"]
    assert any(c.replace(" ", "").replace("-", "").startswith("2") for c in cards)  # 2-series MC
    assert any(len(c.replace(" ", "").replace("-", "")) == 19 for c in cards)
    assert any(":" in ip for ip in values["IP_ADDRESS"]) and any("." in ip for ip in values["IP_ADDRESS"])
    assert len({v.split()[0] for v in values["PERSON"]}) > 100


def test_holdout_templates_are_other_sentences() -> None:
    for entity in ENTITIES:
        assert not set(HOLDOUT[entity]) & set(TEMPLATES[entity])
