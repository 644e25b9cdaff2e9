"""A generated PII corpus: ordinary sentences with values from Faker, labeled with where each value is.

Nobody on the team wrote the values: Faker's providers do (several formats each: its US phone numbers
come with extensions, ``001-`` and ``+1-`` prefixes, dots or parentheses; its cards cover 16- and
19-digit Visa, 2-series Mastercard, Maestro, Amex, Discover, JCB and Diners; IBANs of several
countries; public and private IPv4 and IPv6). Names come from eight locales. Each value is put into
one of several sentence templates, some with a context word ("phone", "card"), most without, and
written in one of several spellings (cards and IBANs grouped or not, SSNs with dashes, spaces or
none). Benign sentences (numbers, dates, prices, codes, versions, capitalized products and places,
never PII) measure precision.

Reproducible: the same ``seed`` gives the same corpus. The benchmark runs the full size
(``bench/guardrails_quality.py``); the test suite a small one (``tests/bench/test_pii_corpus.py``).
Kept in ``bench/`` beside the benchmark that owns it; the tests import it as they import
``bench.mock_backend``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from faker import Faker

ENTITIES = ("EMAIL_ADDRESS", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "PHONE_NUMBER",
            "PERSON")
NAME_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "nl_NL")
IBAN_LOCALES = ("de_DE", "fr_FR", "en_GB", "nl_NL", "es_ES", "it_IT", "pl_PL", "fi_FI")
CARD_TYPES = ("visa16", "visa19", "mastercard", "maestro", "amex", "discover", "jcb16", "diners")


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    spans: list[tuple[str, int, int]] = field(default_factory=list)
    """(entity type, start, end) of each value in ``text``; empty for a benign sentence."""


TEMPLATES: dict[str, list[str]] = {
    "EMAIL_ADDRESS": [
        "Please send the invoice to {v} before Friday.",
        "You can write to {v} if anything changes.",
        "My email is {v}.",
        "Forwarding this to {v} for review.",
        "The account was registered with {v} last year.",
        "{v} bounced twice this morning, can you check the mailbox?",
        "Add {v} to the distribution list.",
        "Reply to {v} and copy the team.",
        "I changed my contact address to {v} yesterday.",
        "Is {v} still the right address for support?",
    ],
    "US_SSN": [
        "My SSN is {v}.",
        "The applicant's social security number is {v}.",
        "For the tax form use {v} as the social security number.",
        "SSN: {v}",
        "Her social is {v}, please keep it private.",
        "I entered {v} as my social security number but the form rejected it.",
        "The payroll record lists SSN {v} for him.",
        "Verify the SSN {v} against the W-2.",
    ],
    "CREDIT_CARD": [
        "My card number is {v}.",
        "Charge it to {v}, expiry next March.",
        "I paid with {v} and the charge shows twice.",
        "The card ending in the digits of {v} was declined.",
        "Please refund the order to {v}.",
        "Use the Visa {v} for the hotel.",
        "Billing details: {v}, name as on the card.",
        "Can you update my payment method to {v}?",
        "{v} is the card on file.",
        "The transaction on {v} looks fraudulent.",
    ],
    "IBAN_CODE": [
        "Please transfer the deposit to {v}.",
        "My IBAN is {v}.",
        "The supplier's bank account is {v}.",
        "Wire the refund to {v} by Monday.",
        "Pay the invoice into {v}, reference 2291.",
        "Our new account number is {v}.",
        "I sent the rent from {v} but it has not arrived.",
        "Update the payee to {v}.",
    ],
    "IP_ADDRESS": [
        "The server at {v} stopped answering.",
        "Requests from {v} were blocked by the firewall.",
        "Please whitelist {v} for the VPN.",
        "My IP address is {v}.",
        "The login came from {v} at midnight.",
        "Ping {v} and tell me the latency.",
        "Point the DNS record to {v}.",
        "We saw a scan from {v} last night.",
        "The printer is configured on {v}.",
    ],
    "PHONE_NUMBER": [
        "Call me at {v} after lunch.",
        "My phone number is {v}.",
        "You can reach the front desk on {v}.",
        "Please text {v} when you arrive.",
        "The number changed to {v} last week.",
        "Leave a message at {v} if nobody answers.",
        "For urgent issues dial {v}.",
        "Her mobile is {v}.",
        "I tried {v} twice but it went to voicemail.",
        "Reach out on {v} tomorrow morning.",
        "Contact the landlord at {v} about the lease.",
    ],
    "PERSON": [
        "I met {v} at the conference last week.",
        "{v} will join the call on Friday.",
        "Please forward this to {v}.",
        "Dear {v}, thank you for your patience.",
        "My name is {v} and I need help with my order.",
        "According to {v}, the budget is fine.",
        "The report was written by {v}.",
        "{v} said the shipment would be late.",
        "Can you ask {v} to review the draft?",
        "Thanks again, {v}.",
        "We hired {v} as the new project manager.",
        "The contract was signed by {v} yesterday.",
        "I spoke with {v} about the refund.",
        "Hi {v}, the meeting moved to three o'clock.",
        "{v} from accounting approved the expense.",
        "Send the keys to {v} at the front desk.",
        "This is {v}, calling about my appointment.",
        "Our landlord, {v}, wants the rent early.",
    ],
}

HOLDOUT: dict[str, list[str]] = {
    # Written before measuring and never used to tune a rule: the benchmark's second run.
    "EMAIL_ADDRESS": ["Ping {v} for the slides.", "Her contact is {v} in case of delays.",
                      "We got a complaint from {v} about the noise.", "cc {v}"],
    "US_SSN": ["Social security: {v}.", "His SSN, {v}, is on the claim.",
               "The benefits office asked for the social security number {v} again."],
    "CREDIT_CARD": ["Card: {v}", "She read out {v} over the phone for the deposit.",
                    "The Mastercard {v} expires soon.", "Refund {v} please, the order never came."],
    "IBAN_CODE": ["IBAN {v}, account holder is the company.", "The rent goes to {v} each month.",
                  "Donations can be sent to {v}."],
    "IP_ADDRESS": ["Traffic spiked from {v} at noon.", "ssh into {v} and check the logs.",
                   "The camera answers on {v} only."],
    "PHONE_NUMBER": ["Phone: {v}", "Ring {v} and ask for the duty manager.",
                     "If the line is busy try {v} instead.", "Our fax is {v}."],
    "PERSON": ["Yesterday {v} called about the invoice.", "Best regards, {v}",
               "I'm {v}, the new tenant on the second floor.", "Please thank {v} for the flowers.",
               "The patient, {v}, arrived late.", "Minutes taken by {v}.",
               "Congratulations to {v} on the promotion!", "Our driver {v} will pick you up."],
}

BENIGN = [
    "Order {n} shipped on {date} and should arrive within {k} days.",
    "The build {ver} passed all {k} checks.",
    "Meet in room {k} at {time}.",
    "The invoice total is ${money}, due on {date}.",
    "Revenue grew {pct}% in the third quarter.",
    "Ticket {code} is waiting for the {team} team.",
    "Please restart the {product} service on the staging cluster.",
    "We moved the offsite to {city} in {month}.",
    "The {product} dashboard shows {k} errors since {day}.",
    "Chapter {k} covers the {bs} strategy.",
    "Flight {flight} leaves at {time} from gate {gate}.",
    "Version {ver} fixes {k} bugs in the {product} client.",
    "The warehouse counted {n} units of item {code}.",
    "Our {job} position is open until {date}.",
    "Set the timeout to {k} seconds and the retry limit to {k2}.",
    "The {color} model costs ${money} and ships in {k} weeks.",
    "Sprint {k} ends on {day}; demo at {time}.",
    "The conference in {city} has {n} registered attendees.",
    "Use port {port} for the {product} API in development.",
    "The report for {month} {year} is attached as {file}.",
    "We need {k} more licences for {product} by {date}.",
    "Temperature in the server room reached {k} degrees on {day}.",
    "The {company} contract renews every {k} months.",
    "Step {k}: open {file} and run the tests again.",
    "Batch {n} failed at {time} with exit code {k}.",
]
PRODUCTS = ["Excel", "Azure", "Kubernetes", "Postgres", "Jira", "Slack", "Outlook", "Redis",
            "Grafana", "Teams", "SharePoint", "Python", "Docker", "Terraform", "Salesforce"]
TEAMS = ["Platform", "Billing", "Security", "Data", "Mobile", "Support", "Finance", "Design"]


def _card(fake: Faker, rng: random.Random) -> str:
    digits = fake.credit_card_number(card_type=rng.choice(CARD_TYPES))
    style = rng.random()
    if style < 0.4:
        return digits
    sep = " " if style < 0.75 else "-"
    return sep.join(digits[i:i + 4] for i in range(0, len(digits), 4))


def _iban(fakes: dict[str, Faker], rng: random.Random) -> str:
    raw = fakes[rng.choice(IBAN_LOCALES)].iban()
    return raw if rng.random() < 0.5 else " ".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def _ssn(fake: Faker, rng: random.Random) -> str:
    s = fake.ssn()
    style = rng.random()
    return s if style < 0.6 else s.replace("-", " ") if style < 0.8 else s.replace("-", "")


def _ip(fake: Faker, rng: random.Random) -> str:
    style = rng.random()
    return (fake.ipv4_public() if style < 0.4 else fake.ipv4_private() if style < 0.7
            else fake.ipv6())


def _email(fakes: dict[str, Faker], rng: random.Random) -> str:
    f = fakes[rng.choice(("en_US", "en_GB", "de_DE", "fr_FR", "nl_NL"))]
    return rng.choice((f.email, f.free_email, f.company_email, f.safe_email))()


def _name(fakes: dict[str, Faker], rng: random.Random) -> str:
    f = fakes[rng.choice(NAME_LOCALES)]
    style = rng.random()
    if style < 0.7:
        return f"{f.first_name()} {f.last_name()}"
    if style < 0.85:
        return f.name()  # sometimes with a title or a suffix (Dr., Jr., MBA)
    return f"{f.first_name()} {f.first_name()} {f.last_name()}"


def _benign(fake: Faker, rng: random.Random) -> str:
    return rng.choice(BENIGN).format(
        n=rng.randint(1000, 999999), date=fake.date(), k=rng.randint(2, 60),
        k2=rng.randint(2, 9), ver=f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}",
        time=fake.time(pattern="%H:%M"), money=f"{rng.randint(10, 99999):,}.{rng.randint(0, 99):02d}",
        pct=rng.randint(1, 40), code=f"{fake.random_uppercase_letter()}{rng.randint(100, 99999)}",
        team=rng.choice(TEAMS), product=rng.choice(PRODUCTS), city=fake.city(),
        month=fake.month_name(), day=fake.day_of_week(), bs=fake.bs(), job=fake.job(),
        flight=f"{fake.random_uppercase_letter()}{fake.random_uppercase_letter()} {rng.randint(10, 9999)}",
        gate=f"{fake.random_uppercase_letter()}{rng.randint(1, 40)}", color=fake.color_name(),
        port=rng.randint(1024, 65535), year=rng.randint(2015, 2030), file=fake.file_name(),
        company=fake.company())


def generate(n_per_type: int, seed: int, n_benign: int | None = None, *,
             holdout: bool = False) -> list[Sample]:
    """``n_per_type`` samples of each type in :data:`ENTITIES` and ``n_benign`` benign sentences
    (as many as one type by default), in a seeded order. ``holdout``: the sentences come from
    :data:`HOLDOUT` (templates no rule was tuned on) instead of :data:`TEMPLATES`."""
    templates = HOLDOUT if holdout else TEMPLATES
    rng = random.Random(seed)
    fakes = {loc: Faker(loc) for loc in {*NAME_LOCALES, *IBAN_LOCALES, "en_US"}}
    for i, f in enumerate(sorted(fakes)):
        fakes[f].seed_instance(seed * 100 + i)
    us = fakes["en_US"]
    values: dict[str, Callable[[], str]] = {
        "EMAIL_ADDRESS": lambda: _email(fakes, rng),
        "US_SSN": lambda: _ssn(us, rng),
        "CREDIT_CARD": lambda: _card(us, rng),
        "IBAN_CODE": lambda: _iban(fakes, rng),
        "IP_ADDRESS": lambda: _ip(us, rng),
        "PHONE_NUMBER": us.phone_number,
        "PERSON": lambda: _name(fakes, rng),
    }
    out: list[Sample] = []
    for entity in ENTITIES:
        for _ in range(n_per_type):
            template, value = rng.choice(templates[entity]), values[entity]()
            start = template.index("{v}")
            text = template.replace("{v}", value)
            out.append(Sample(text, [(entity, start, start + len(value))]))
    out += [Sample(_benign(us, rng)) for _ in range(n_per_type if n_benign is None else n_benign)]
    rng.shuffle(out)
    return out
