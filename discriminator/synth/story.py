"""The patient story: structured facts a discharge summary is rendered from.

A story is built first and rendered second, so errors can be injected as one changed fact and the
note re-rendered (the rest of the note stays byte-identical). Narrative text is stored as
templates with render-time tokens ({pt}, {he}, {age}, {proc:0}, {lab:cr}, ...), which is what lets
"the HPI says a different age" be a one-field change.

This module holds the story's types (and `make_patient`, `clone`); `story_build.build_story`
draws a story part by part: `story_frame` (script, dates, complexity), `story_meds` (drugs),
`story_stay` (labs, procedures, course, diagnoses), `story_text` (HPI, exam, instructions,
history). All randomness comes from the `random.Random` passed in; nothing reads global state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from .vocab import FIRST_F, FIRST_M, LAST

HARD_NEGATIVES = (
    "held_resumed_with_reason",
    "diagnosis_ruled_out",
    "same_day_discharge",
    "diagnosis_revised_explained",
    "pending_labs",
    "heavy_placeholders",
    "discontinued_absent",
    "dose_change_explained",
)


@dataclass(frozen=True)
class Acute:
    """A reason for admission: the script a story is built around (see `acute`)."""

    key: str
    dx: str
    lateral: bool
    service: str
    cc: tuple[str, ...]
    hpi: tuple[str, ...]  # symptom sentences, in order
    ed: str  # emergency-department sentence
    exam: tuple[tuple[str, str], ...]  # (system, finding)
    labs: tuple[tuple[str, str], ...]  # (lab key, "H"/"L") on admission
    studies: tuple[str, ...]  # imaging / tests, first one always rendered
    inpatient: tuple[str, ...]  # drugs given in hospital (allergy checks include them)
    course: tuple[str, ...]  # course sentences, the first ones matter most
    dc_meds: tuple[tuple[str, ...], ...]  # alternatives: groups of new discharge drugs
    procedure: str | None  # name template ({side})
    proc_day: int  # hospital day of the procedure (0 = admission day)
    ruled_out: tuple[tuple[str, str], ...]  # (diagnosis, how it was excluded)
    revised_from: tuple[str, str] | None  # (initial diagnosis, why it was revised)
    specialty: str
    los: tuple[int, int]
    why: str  # lay explanation for the instructions
    same_day_ok: bool = False


@dataclass
class Patient:
    pid: str
    first: str
    last: str
    sex: str  # "F" / "M"
    dob: date
    mrn: str


@dataclass
class Med:
    name: str
    dose: str
    unit: str
    route: str
    freq: str
    indication: str  # condition key; "" = none
    new: bool = False
    show_ind: bool = False
    duration: str = ""


@dataclass
class Lab:
    key: str
    value: float
    flag: str  # "", "H", "L"
    day: date
    time: str


@dataclass
class Procedure:
    name: str
    day: date
    key: str  # the problem that justifies it; "" = none
    side: str = ""  # "left"/"right" when lateral


@dataclass
class Problem:
    key: str
    title: str
    sentences: list[str]


@dataclass
class FollowUp:
    who: str
    specialty: str
    day: date
    time: str


@dataclass
class Story:
    patient: Patient
    short: bool
    admit: date
    discharge: date
    service: str
    attending: str
    signer: str
    acute: str
    side: str
    # Identity as displayed in each place (equal in a good note).
    hdr_first: str
    hdr_last: str
    hdr_sex: str
    hdr_age: int
    dob: date
    mrn: str
    narr_name: str  # "Ms. Smith" or "Ms. ___"
    narr_sex: str
    narr_age: int
    foot_first: str
    foot_last: str
    foot_mrn: str
    cc: str
    hpi: list[str]
    pmh: list[str]
    social: str
    family: str
    allergies: list[str]
    vitals: dict[str, str]
    exam_adm: list[tuple[str, str]]
    exam_dc: list[tuple[str, str]]
    labs: list[Lab]
    pending: list[tuple[str, date]]
    studies: list[tuple[date, str]]
    procedures: list[Procedure]
    pod_claims: list[list[int]]  # [procedure index, real POD, claimed POD]
    course: list[Problem]
    adm_meds: list[Med]
    dc_meds: list[Med]
    held: dict[str, tuple[str, str]]  # drug -> (why held, why resumed or "" if still held)
    stopped: dict[str, str]  # drug -> why stopped
    changed: dict[str, str]  # drug -> why the dose changed
    dx: list[tuple[str, str]]  # (title, problem key); first is the principal diagnosis
    ruled_out: list[str]
    condition: list[str]
    disposition: str
    instructions: list[str]
    followups: list[FollowUp]
    sign_date: date
    sign_time: str
    indications: set[str]
    inpatient: list[str]
    los_claim: int | None = None
    hard_negatives: list[str] = field(default_factory=list)

    @property
    def los(self) -> int:
        return (self.discharge - self.admit).days


def age_on(dob: date, day: date) -> int:
    return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))


def make_patient(rng: random.Random, pid: str) -> Patient:
    sex = rng.choice("FM")
    first = rng.choice(FIRST_F if sex == "F" else FIRST_M)
    dob = date(1932, 1, 1) + timedelta(days=rng.randrange(0, 365 * 72))
    return Patient(pid, first, rng.choice(LAST), sex, dob, str(rng.randrange(1_000_000, 9_999_999)))


def clone(s: Story) -> Story:
    """A copy deep enough for any injector to mutate (10x faster than copy.deepcopy)."""
    return replace(
        s,
        hpi=list(s.hpi),
        pmh=list(s.pmh),
        allergies=list(s.allergies),
        vitals=dict(s.vitals),
        exam_adm=list(s.exam_adm),
        exam_dc=list(s.exam_dc),
        labs=[replace(x) for x in s.labs],
        pending=list(s.pending),
        studies=list(s.studies),
        procedures=[replace(x) for x in s.procedures],
        pod_claims=[list(c) for c in s.pod_claims],
        course=[Problem(p.key, p.title, list(p.sentences)) for p in s.course],
        adm_meds=[replace(m) for m in s.adm_meds],
        dc_meds=[replace(m) for m in s.dc_meds],
        held=dict(s.held),
        stopped=dict(s.stopped),
        changed=dict(s.changed),
        dx=list(s.dx),
        ruled_out=list(s.ruled_out),
        condition=list(s.condition),
        instructions=list(s.instructions),
        followups=[replace(u) for u in s.followups],
        indications=set(s.indications),
        inpatient=list(s.inpatient),
        hard_negatives=list(s.hard_negatives),
    )
