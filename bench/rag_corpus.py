"""A labeled corpus for retrieval quality: generated from a fixed seed, so every run is the same.

Three kinds of documents, each question labeled with the one document that answers it:

- troubleshooting notes keyed by error codes (``E4127``): near-identical wording across documents, so
  the identifier is what tells them apart (lexical matching's strength);
- team pages (lead, room, what the team owns), asked about in paraphrase ("who is in charge of...");
- policies asked about in other words than the text uses (semantic matching's strength).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SYSTEMS = ["billing service", "payroll export", "VPN gateway", "print server", "CRM sync",
           "warehouse scanner", "HR portal", "build farm", "mail relay", "badge reader",
           "expense tool", "data warehouse", "video bridge", "ticket queue", "backup vault"]
CAUSES = ["an expired certificate", "a full disk", "a stale cache", "a revoked token",
          "a clock drift of more than five minutes", "a missing DNS record", "a locked account",
          "a schema mismatch after an upgrade", "a saturated connection pool", "a wrong proxy setting"]
FIXES = ["renew the certificate in the admin console", "free space by rotating the logs",
         "flush the cache from the maintenance page", "sign out and request a new token",
         "resynchronise the clock with the time server", "ask the network team to add the record",
         "ask the service desk to unlock the account", "rerun the migration script",
         "restart the connection pool", "reset the proxy to automatic"]
TEAMS = ["Atlas", "Beacon", "Cobalt", "Delta", "Ember", "Fjord", "Granite", "Harbor", "Iris",
         "Juniper", "Kestrel", "Lumen", "Meridian", "Nimbus", "Orchid", "Pioneer", "Quartz", "Raven"]
PEOPLE = ["Ana Souza", "Bram de Vries", "Chen Wei", "Dara Okafor", "Elif Yilmaz", "Farid Haddad",
          "Greta Lind", "Hiro Tanaka", "Ines Duarte", "Jonas Berg", "Kavya Iyer", "Luca Moretti",
          "Maya Cohen", "Nils Ahlberg", "Olga Petrova", "Pablo Ruiz", "Rosa Kim", "Sven Holm"]
OWNS = ["payroll exports", "the mobile app", "office networking", "customer invoices",
        "the data platform", "laptop provisioning", "the public website", "security reviews",
        "the analytics dashboards", "vendor contracts", "recruiting pipelines", "cloud costs",
        "the design system", "incident response", "partner integrations", "tax filings",
        "the search engine", "internal training"]
OWNS_PARAPHRASE = ["paying salaries out", "our phone application", "the office wifi and cabling",
                   "bills we send to clients", "data pipelines and storage",
                   "setting up new computers", "our internet homepage", "checking systems for threats",
                   "reporting charts", "agreements with suppliers", "hiring candidates",
                   "spending on cloud providers", "shared UI components", "handling outages",
                   "integrations with partners", "tax returns", "the search feature",
                   "courses for employees"]
POLICIES = [
    ("remote-work", "Remote work", "Employees may work from home up to three days a week. Core hours "
     "are 10:00 to 15:00, when everyone must be reachable.",
     "How many days a week can I work from my house?"),
    ("parental-leave", "Parental leave", "New parents receive 20 weeks of fully paid leave, which can "
     "be split into two blocks within the first year.",
     "How much time off do I get when I have a baby?"),
    ("travel-class", "Travel class", "Flights shorter than six hours are booked in economy; longer "
     "flights may be booked in premium economy with manager approval.",
     "Can I fly business on a long trip?"),
    ("equipment", "Home office equipment", "Each employee has a one-time budget of 800 euros for a "
     "desk, a chair and a monitor at home.",
     "Is there money for furniture for my home desk?"),
    ("learning", "Learning budget", "Everyone can spend 1500 euros a year on courses, books and "
     "conferences related to their role.",
     "What can I spend on training and conferences each year?"),
    ("sick-leave", "Sick leave", "Report illness to your manager before 9:00 on the first day; a "
     "doctor's note is needed from the fourth day on.",
     "When do I need a medical certificate if I am ill?"),
    ("overtime", "Overtime", "Overtime is compensated with time off at 1.5 times the hours worked, "
     "to be taken within three months.",
     "What do I get for working extra hours?"),
    ("security-training", "Security training", "All staff complete phishing awareness training every "
     "six months; new hires within their first two weeks.",
     "How often must I do the course about suspicious emails?"),
]


@dataclass(frozen=True, slots=True)
class Doc:
    doc_id: str
    filename: str
    text: str


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    doc_id: str


def build(seed: int = 7, codes: int = 90, systems: int = 5) -> tuple[list[Doc], list[Question]]:
    rng = random.Random(seed)
    docs: list[Doc] = []
    questions: list[Question] = []
    used: set[str] = set()
    for _ in range(codes):
        code = f"E{rng.randint(1000, 9999)}"
        while code in used:
            code = f"E{rng.randint(1000, 9999)}"
        used.add(code)
        system, i = rng.choice(SYSTEMS[:systems]), rng.randrange(len(CAUSES))
        doc_id = f"error-{code.lower()}"
        docs.append(Doc(doc_id, f"{doc_id}.md",
                        f"# Error {code}\n\n## Symptom\nThe {system} stops and shows error {code}.\n\n"
                        f"## Cause\nError {code} is caused by {CAUSES[i]}.\n\n"
                        f"## Fix\nTo fix it, {FIXES[i]}. If error {code} persists, open a ticket."))
        questions.append(Question(f"What causes error {code}?", doc_id))
        questions.append(Question(f"The {system} shows {code}, how do I fix it?", doc_id))
    for t, person, room in zip(TEAMS, PEOPLE, range(101, 200), strict=False):
        k = TEAMS.index(t)
        doc_id = f"team-{t.lower()}"
        docs.append(Doc(doc_id, f"{doc_id}.html",
                        f"<html><head><title>Team {t}</title></head><body><h1>Team {t}</h1>"
                        f"<p>The {t} team is led by {person}. It sits in room {room} on the "
                        f"{1 + room % 5}th floor.</p><h2>Responsibilities</h2><p>{t} owns "
                        f"{OWNS[k]}.</p></body></html>"))
        questions.append(Question(f"Who leads team {t}?", doc_id))
        questions.append(Question(f"Which team is in charge of {OWNS_PARAPHRASE[k]}?", doc_id))
    for doc_id, title, text, question in POLICIES:
        docs.append(Doc(doc_id, f"{doc_id}.txt", f"{title}\n\n{text}"))
        questions.append(Question(question, doc_id))
    rng.shuffle(questions)
    return docs, questions
