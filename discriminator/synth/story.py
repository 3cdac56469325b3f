"""The patient story: structured facts a discharge summary is rendered from.

A story is built first and rendered second, so errors can be injected as one changed fact and the
note re-rendered (the rest of the note stays byte-identical). Narrative text is stored as
templates with render-time tokens ({pt}, {he}, {age}, {proc:0}, {lab:cr}, ...), which is what lets
"the HPI says a different age" be a one-field change.

All randomness comes from the `random.Random` passed in; nothing here reads global state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from .acute import ACUTES, Acute
from .vocab import (
    ALLERGIES,
    BASIC_PANEL,
    CHRONIC,
    CONTRAINDICATED,
    DOCTOR_FIRST,
    DOCTORS,
    DRUGS,
    FIRST_F,
    FIRST_M,
    HOLD_REASONS,
    LABS,
    LAST,
    STOP_REASONS,
)

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


def _value(rng: random.Random, key: str, flag: str) -> float:
    d = LABS[key]
    lo, hi = {"H": d.high, "L": d.low}.get(
        flag, (d.lo + (d.hi - d.lo) * 0.15, d.hi - (d.hi - d.lo) * 0.15)
    )
    return round(rng.uniform(lo, hi), d.dp)


def _doctor(rng: random.Random) -> str:
    return f"{rng.choice(DOCTOR_FIRST)} {rng.choice(DOCTORS)}"


def _bake(text: str, side: str, days: int) -> str:
    # Story-time fields: fixed for the story, never the target of an injected error.
    return (
        text.replace("{side}", side)
        .replace("{Side}", side.capitalize())
        .replace("{days}", str(days))
    )


def build_story(
    rng: random.Random, patient: Patient, length: str, hard_negative: str | None = None
) -> Story:
    """One consistent story. `hard_negative` forces an unusual-but-correct feature."""
    short = length == "short"
    hn = hard_negative
    same_day_keys = [k for k, a in ACUTES.items() if a.same_day_ok]
    acute_key = (
        rng.choice(same_day_keys) if hn == "same_day_discharge" else rng.choice(list(ACUTES))
    )
    ac: Acute = ACUTES[acute_key]
    side = rng.choice(("left", "right")) if ac.lateral else ""
    days = rng.randint(2, 6)

    def b(t: str) -> str:
        return _bake(t, side, days)

    admit = date(2019, 1, 1) + timedelta(days=rng.randrange(0, 365 * 6))
    if admit <= patient.dob + timedelta(days=365 * 19):
        admit = patient.dob + timedelta(days=365 * 19 + rng.randrange(0, 3000))
    # Complexity drives length: more conditions, longer stays, more labs (a long right tail,
    # as in real notes).
    cx = 0.0 if short else rng.random() ** 1.5
    los = 0 if hn == "same_day_discharge" else rng.randint(max(ac.los[0], 1), ac.los[1])
    if los and cx > 0.6:
        los += rng.randint(1, int(cx * 8))
    discharge = admit + timedelta(days=los)
    age = age_on(patient.dob, admit)

    # Chronic conditions and home meds.
    n_chronic = rng.randint(1, 2) if short else rng.randint(1, 2 + int(cx * 6))
    chronic_keys = rng.sample(
        [k for k in CHRONIC if k != "afib" or acute_key != "afib_rvr"], n_chronic
    )
    home: list[Med] = []
    for ck in chronic_keys:
        groups = CHRONIC[ck].meds
        if not groups or not groups[0][0]:
            continue
        for name in rng.choice(groups):
            if any(m.name == name for m in home):
                continue
            d = DRUGS[name]
            home.append(Med(name, rng.choice(d.doses), d.unit, d.route, rng.choice(d.freqs), ck))
    if short:
        home = home[:3]
    indications = set(chronic_keys) | {acute_key}

    # New discharge meds for the acute problem.
    new: list[Med] = []
    for name in rng.choice(ac.dc_meds):
        d = DRUGS[name]
        if any(m.name == name for m in home):
            continue
        dur = ""
        if d.cls in (
            "penicillin",
            "cephalosporin",
            "tetracycline",
            "fluoroquinolone",
            "macrolide",
            "steroid",
            "nitrofuran",
        ):
            dur = f"for {rng.randint(2, 5)} more days"
        new.append(
            Med(
                name,
                rng.choice(d.doses),
                d.unit,
                d.route,
                rng.choice(d.freqs),
                acute_key,
                new=True,
                show_ind=rng.random() < 0.3,
                duration=dur,
            )
        )

    held: dict[str, tuple[str, str]] = {}
    stopped: dict[str, str] = {}
    # A home drug contraindicated by the new problem is stopped, with the reason stated.
    for name, why in CONTRAINDICATED.get(acute_key, ()):
        if any(m.name == name for m in home):
            stopped[name] = why
    changed: dict[str, str] = {}
    dc_home: list[Med] = [Med(**vars(m)) for m in home if m.name not in stopped]
    hn_done = hn
    if hn == "held_resumed_with_reason" or (hn is None and rng.random() < 0.12):
        cands = [m for m in dc_home if m.name in HOLD_REASONS]
        if cands:
            m = rng.choice(cands)
            held[m.name] = HOLD_REASONS[m.name]
        elif hn:
            hn_done = None
    if hn == "discontinued_absent" or (hn is None and rng.random() < 0.1):
        cands = [m for m in dc_home if m.name in STOP_REASONS and m.name not in held]
        if cands:
            m = rng.choice(cands)
            stopped[m.name] = STOP_REASONS[m.name]
            dc_home.remove(m)
        elif hn:
            hn_done = None
    if hn == "dose_change_explained" or (hn is None and rng.random() < 0.1):
        cands = [m for m in dc_home if len(DRUGS[m.name].doses) > 1 and m.name not in held]
        if cands:
            m = rng.choice(cands)
            doses = DRUGS[m.name].doses
            i = doses.index(m.dose)
            m.dose = doses[i + 1] if i + 1 < len(doses) else doses[i - 1]
            word = "increased" if i + 1 < len(doses) else "decreased"
            changed[m.name] = f"{word} to {m.dose} {m.unit} for better control"
        elif hn:
            hn_done = None
    # A held drug that is not resumed stays off the list ("remains held").
    if held and rng.random() < 0.4 and hn != "held_resumed_with_reason":
        name = next(iter(held))
        held[name] = (held[name][0], "")
        dc_home = [m for m in dc_home if m.name != name]
    dc_meds = dc_home + new

    # Allergies that conflict with nothing the patient receives.
    given = {m.name for m in home} | {m.name for m in dc_meds} | set(ac.inpatient)
    allergies: list[str] = []
    for _ in range(rng.choice((0, 0, 1, 1, 1, 2, 3))):
        a, conflicts = rng.choice(ALLERGIES)
        if a not in allergies and not (conflicts & given):
            allergies.append(a)

    # Labs: admission panel, then daily panels; the last day is the discharge panel.
    acute_flags = dict(ac.labs)
    panel = [k for k in BASIC_PANEL if not short or k in acute_flags] + [
        k for k in acute_flags if k not in BASIC_PANEL
    ]
    if short:
        panel = panel[:3] if len(panel) > 1 else [*panel, "na", "k"]
    labs: list[Lab] = []
    lab_days = (
        [admit]
        if short or los == 0
        else sorted(
            {admit, discharge}
            | {admit + timedelta(days=i) for i in range(1, los) if rng.random() < 0.25 + 0.7 * cx}
        )
    )
    for di, day in enumerate(lab_days):
        keys = panel if di == 0 else [k for k in panel if k in BASIC_PANEL[:9] or k in acute_flags]
        t = f"{rng.randint(4, 9):02d}:{rng.choice(('05', '10', '20', '35', '45', '50'))}"
        for k in keys:
            flag = acute_flags.get(k, "") if di == 0 else ""
            value = _value(rng, k, flag)
            if di > 0 and k in acute_flags:
                # Abnormal admission labs recover gradually, and stay flagged while abnormal.
                first = next(lab.value for lab in labs if lab.key == k)
                frac = di / (len(lab_days) - 1) * rng.uniform(0.5, 1.0)
                d = LABS[k]
                value = round(first + (value - first) * frac, d.dp)
                flag = "H" if value > d.hi else "L" if value < d.lo else ""
            labs.append(Lab(k, value, flag, day, t))
    pending: list[tuple[str, date]] = []
    if hn == "pending_labs" or rng.random() < 0.1:
        pending.append(
            (
                rng.choice(
                    (
                        "Blood cultures x2",
                        "Urine culture",
                        "Fungal blood culture",
                        "Serum protein electrophoresis",
                        "Quantiferon-TB Gold",
                    )
                ),
                discharge if los == 0 else admit + timedelta(days=rng.randint(0, los)),
            )
        )

    studies = [(admit, b(ac.studies[0]))]
    if not short:
        studies += [(admit + timedelta(days=min(1, los)), b(s)) for s in ac.studies[1:]]

    procs: list[Procedure] = []
    pod_claims: list[list[int]] = []
    if ac.procedure:
        pday = admit + timedelta(days=min(ac.proc_day, los))
        procs.append(Procedure(b(ac.procedure), pday, acute_key, side))

    # Hospital course by problem.
    n_sent = 1 if short else len(ac.course)
    sents = [b(s) for s in ac.course[:n_sent]]
    if procs and not any("{proc:0}" in s for s in sents):
        sents.append(b(next(s for s in ac.course if "{proc:0}" in s)))
    if procs and short:
        # Keep the post-op day sentence: it is what the POD-arithmetic error needs.
        sents += [b(s) for s in ac.course if "{pod:0}" in s]
    pod_room = (discharge - procs[0].day).days if procs else 0
    kept = []
    for s in sents:
        if "{pod:0}" in s:
            if pod_room < 1:
                continue
            n = rng.randint(1, pod_room)
            pod_claims.append([0, n, n])
        kept.append(s)
    ruled_out: list[str] = []
    if ac.ruled_out and (hn == "diagnosis_ruled_out" or rng.random() < (0.15 if short else 0.5)):
        title, how = rng.choice(ac.ruled_out)
        kept.append(b(how))
        ruled_out.append(title)
    elif hn == "diagnosis_ruled_out":
        hn_done = None
    if ac.revised_from and (hn == "diagnosis_revised_explained" or rng.random() < 0.1):
        kept.insert(1, ac.revised_from[1])
        ruled_out.append(ac.revised_from[0])
    elif hn == "diagnosis_revised_explained":
        hn_done = None
    course = [Problem(acute_key, b(ac.dx), kept)]
    chronic_in_course = chronic_keys if not short else chronic_keys[:1]
    for ck in chronic_in_course:
        c = CHRONIC[ck]
        meds = " and ".join(m.name for m in home if m.indication == ck)
        tmpl = rng.choice(c.course)
        text = (
            tmpl.replace("{meds}", meds)
            if meds or "{meds}" not in tmpl
            else ("Stable; no changes made.")
        )
        course.append(
            Problem(ck, c.name, [text] if not short else [text.split(";")[0].rstrip(".") + "."])
        )

    dx = [(b(ac.dx), acute_key)] + [(CHRONIC[k].name, k) for k in chronic_keys[: 1 if short else 5]]

    fu: list[FollowUp] = []
    specs = [ac.specialty] + ([] if ac.specialty == "Primary Care" else ["Primary Care"])
    if short:
        specs = specs[:1]
    for sp in specs:
        fu.append(
            FollowUp(
                _doctor(rng),
                sp,
                discharge + timedelta(days=rng.randint(3, 21)),
                f"{rng.randint(8, 15)}:{rng.choice(('00', '15', '30', '45'))}",
            )
        )

    hr = rng.randint(62, 94)
    vitals = {
        "T": f"{rng.uniform(97.6, 99.1):.1f}",
        "BP": f"{rng.randint(104, 142)}/{rng.randint(58, 86)}",
        "HR": str(hr),
        "RR": str(rng.randint(14, 18)),
        "SpO2": f"{rng.randint(93, 99)}% RA",
    }
    placeholder = hn == "heavy_placeholders" or rng.random() < 0.08
    title = "Ms." if patient.sex == "F" else "Mr."
    narr_name = f"{title} ___" if placeholder else f"{title} {patient.last}"

    pmh_abbr = ", ".join(CHRONIC[k].abbr for k in chronic_keys)
    opener = rng.choice(
        (
            "{pt} is {a_age}-year-old {man} with a history of %s who presents with %s.",
            "{pt} is {a_age} y/o {man} with PMH of %s presenting with %s.",
            "{pt} is {a_age}-year-old {man} with %s who presented to [**Hospital**] with %s.",
        )
    ) % (pmh_abbr, b(rng.choice(ac.cc)).lower())
    hpi = [opener] + [b(s) for s in (ac.hpi[:1] if short else ac.hpi)]
    if not short:
        hpi.append(b(ac.ed))
        if rng.random() < 0.3 + 0.6 * cx:
            hpi.append(
                "ROS: 10-point review of systems otherwise negative, including headache, "
                "vision changes, chest pain at rest, abdominal pain, dysuria, rash and "
                "focal weakness."
            )
        if rng.random() < cx:
            hpi.append(
                "{He} was last seen by {his} PCP Dr. ___ at [**Clinic**] ___ weeks ago, "
                "where {he} was at {his} usual state of health. Collateral history was "
                "obtained from {his} family at the bedside."
            )

    exam_adm = [
        ("General", "NAD, resting comfortably"),
        ("HEENT", "MMM, sclera anicteric"),
        ("CV", "RRR, no murmurs"),
        ("Lungs", "clear to auscultation bilaterally"),
        ("Abdomen", "soft, non-tender, non-distended"),
        ("Extremities", "warm, no edema"),
        ("Neuro", "A&Ox3, moving all extremities"),
    ]
    for sysname, finding in ac.exam:
        exam_adm = [(s, b(finding) if s == sysname else f) for s, f in exam_adm]
        if sysname not in dict(exam_adm):
            exam_adm.append((sysname, b(finding)))
    exam_dc = [
        ("General", "well-appearing"),
        (
            "Lungs",
            "clear bilaterally" if acute_key not in ("cap", "copd_ex") else "improved air movement",
        ),
    ]

    n_instr = 0 if short else rng.randint(2, 6)
    instructions = [f"You were admitted because {ac.why}."]
    extra = [
        "Please take all of your medications as prescribed and bring this list to your "
        "appointments.",
        "Call your doctor or return to the emergency department for fever above 101, "
        "chest pain, trouble breathing, or any other concerning symptoms.",
        "Please keep your follow-up appointments listed below.",
        "Do not drive while taking narcotic pain medication."
        if any(m.name == "oxycodone" for m in dc_meds)
        else "Continue to increase your activity as tolerated.",
        "If you have questions about your medications, call the pharmacy at ___.",
        "Weigh yourself every morning and call if your weight goes up more than 3 lbs."
        if acute_key == "chf"
        else "Drink plenty of fluids unless told otherwise.",
    ]
    instructions += extra[:n_instr]
    if not short and rng.random() < 0.3 + 0.7 * cx:
        instructions += [
            "\n\nWHAT HAPPENED WHILE YOU WERE IN THE HOSPITAL?\n- "
            + "\n- ".join(
                (
                    "You were monitored closely and treated for your illness.",
                    "Your home medications were reviewed; see the list below for changes.",
                    "You worked with physical therapy, who felt you were safe for discharge.",
                )[: 1 + int(cx * 3)]
            ),
            "\n\nWHAT SHOULD YOU DO AFTER YOU LEAVE THE HOSPITAL?\n- Take your medicines "
            "exactly as listed.\n- Go to your follow-up appointments.\n- Avoid alcohol while "
            "recovering.\n- Return for any of the danger signs above.",
            "\n\nWe wish you the best in your recovery!",
        ]

    attending = _doctor(rng)
    signer = attending
    sign_date = discharge + timedelta(days=rng.choice((0, 0, 0, 1)))
    disposition = (
        "Extended Care"
        if acute_key == "hipfx"
        else rng.choice(("Home", "Home", "Home With Service"))
    )
    condition = [
        "Mental Status: Clear and coherent.",
        "Level of Consciousness: Alert and interactive.",
        "Activity Status: "
        + (
            "Ambulatory - requires assistance or aid (walker)"
            if acute_key == "hipfx"
            else "Ambulatory - Independent"
        )
        + ".",
    ]
    social = (
        f"Lives with {{his}} {rng.choice(('wife', 'husband', 'daughter', 'son', 'partner'))}"
        f" in ___. {rng.choice(('Retired', 'Works as a', 'Formerly worked as a'))} ___. "
        f"Tobacco: {rng.choice(('never', 'former, quit ___ years ago', 'current'))}. "
        f"EtOH: {rng.choice(('none', 'social', '___ drinks per week'))}. Illicits: denies."
    )
    family = rng.choice(
        (
            "Mother with ___; father died of MI at age ___.",
            "Non-contributory.",
            "Sister with breast cancer. Father with T2DM.",
        )
    )
    if placeholder:
        social = f"[**Name**] lives with {{his}} family in [**Location**]. Retired ___. {social}"

    story = Story(
        patient=patient,
        short=short,
        admit=admit,
        discharge=discharge,
        service=ac.service if rng.random() < 0.7 else "MEDICINE",
        attending=attending,
        signer=signer,
        acute=acute_key,
        side=side,
        hdr_first=patient.first,
        hdr_last=patient.last,
        hdr_sex=patient.sex,
        hdr_age=age,
        dob=patient.dob,
        mrn=patient.mrn,
        narr_name=narr_name,
        narr_sex=patient.sex,
        narr_age=age,
        foot_first=patient.first,
        foot_last=patient.last,
        foot_mrn=patient.mrn,
        cc=b(rng.choice(ac.cc)),
        hpi=hpi,
        pmh=[CHRONIC[k].name for k in chronic_keys],
        social=social,
        family=family,
        allergies=allergies,
        vitals=vitals,
        exam_adm=exam_adm,
        exam_dc=exam_dc,
        labs=labs,
        pending=pending,
        studies=studies,
        procedures=procs,
        pod_claims=pod_claims,
        course=course,
        adm_meds=home,
        dc_meds=dc_meds,
        held=held,
        stopped=stopped,
        changed=changed,
        dx=dx,
        ruled_out=ruled_out,
        condition=condition,
        disposition=disposition,
        instructions=instructions,
        followups=fu,
        sign_date=sign_date,
        sign_time=f"{rng.randint(10, 19)}:{rng.randint(0, 59):02d}",
        indications=indications,
        inpatient=list(ac.inpatient),
    )
    if hn_done:
        story.hard_negatives.append(hn_done)
    if held and hn_done != "held_resumed_with_reason" and any(v[1] for v in held.values()):
        story.hard_negatives.append("held_resumed_with_reason")
    return story


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
