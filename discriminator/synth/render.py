"""Render a Story as a US hospital discharge summary, in one of several house styles.

A note is a list of sections `(key, label, body)`; structure errors edit that list, story errors
edit the Story, and both are joined by the same code, so a good note and its corrupted twin differ
only where the error is. Rendering is a pure function of (story, style): no randomness here, all
choices live in the Style (picked once per note) or in the Story.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date, timedelta

from .story import Med, Story
from .vocab import CHRONIC, LABS, MONTHS

LAYOUTS = ("mimic", "epic", "dictated", "academic")
# Sections a discharge summary must have (the checker and the structure errors use this list).
REQUIRED = ("allergies", "hpi", "course", "dc_meds", "dx", "followup")

ORDER: dict[str, tuple[str, ...]] = {
    "mimic": (
        "header",
        "allergies",
        "cc",
        "procedures",
        "hpi",
        "pmh",
        "social",
        "family",
        "exam",
        "results",
        "course",
        "adm_meds",
        "dc_meds",
        "disposition",
        "dx",
        "condition",
        "instructions",
        "followup",
        "signature",
        "footer",
    ),
    "epic": (
        "header",
        "dx",
        "procedures",
        "cc",
        "hpi",
        "pmh",
        "course",
        "exam",
        "results",
        "condition",
        "disposition",
        "allergies",
        "adm_meds",
        "dc_meds",
        "instructions",
        "followup",
        "signature",
        "footer",
    ),
    "dictated": (
        "header",
        "cc",
        "hpi",
        "pmh",
        "allergies",
        "adm_meds",
        "social",
        "family",
        "exam",
        "results",
        "procedures",
        "course",
        "dx",
        "condition",
        "disposition",
        "dc_meds",
        "instructions",
        "followup",
        "signature",
        "footer",
    ),
    "academic": (
        "header",
        "allergies",
        "dx",
        "cc",
        "hpi",
        "pmh",
        "exam",
        "results",
        "procedures",
        "course",
        "adm_meds",
        "dc_meds",
        "condition",
        "disposition",
        "instructions",
        "followup",
        "signature",
        "footer",
    ),
}
LABELS: dict[str, dict[str, str]] = {
    "mimic": dict(
        allergies="Allergies",
        cc="Chief Complaint",
        procedures="Major Surgical or Invasive Procedure",
        hpi="History of Present Illness",
        pmh="Past Medical History",
        social="Social History",
        family="Family History",
        exam="Physical Exam",
        results="Pertinent Results",
        course="Brief Hospital Course",
        adm_meds="Medications on Admission",
        dc_meds="Discharge Medications",
        disposition="Discharge Disposition",
        dx="Discharge Diagnosis",
        condition="Discharge Condition",
        instructions="Discharge Instructions",
        followup="Followup Instructions",
    ),
    "epic": dict(
        dx="Discharge Diagnoses",
        procedures="Procedures Performed",
        cc="Reason for Admission",
        hpi="History of Present Illness",
        pmh="Past Medical History",
        course="Hospital Course",
        exam="Physical Exam",
        results="Pertinent Labs and Imaging",
        condition="Condition at Discharge",
        disposition="Disposition",
        allergies="Allergies",
        adm_meds="Home Medications Prior to Admission",
        dc_meds="Discharge Medication List",
        instructions="Patient Instructions",
        followup="Follow-up Appointments",
    ),
    "dictated": dict(
        cc="CHIEF COMPLAINT",
        hpi="HISTORY OF PRESENT ILLNESS",
        pmh="PAST MEDICAL HISTORY",
        allergies="ALLERGIES",
        adm_meds="MEDICATIONS ON ADMISSION",
        social="SOCIAL HISTORY",
        family="FAMILY HISTORY",
        exam="PHYSICAL EXAMINATION",
        results="LABORATORY DATA",
        procedures="PROCEDURES",
        course="HOSPITAL COURSE",
        dx="DISCHARGE DIAGNOSES",
        condition="CONDITION ON DISCHARGE",
        disposition="DISPOSITION",
        dc_meds="DISCHARGE MEDICATIONS",
        instructions="DISCHARGE INSTRUCTIONS",
        followup="FOLLOW-UP",
    ),
    "academic": dict(
        allergies="Allergies",
        dx="Diagnoses",
        cc="CC",
        hpi="HPI",
        pmh="PMH",
        exam="Exam",
        results="Data",
        procedures="Procedures",
        course="Hospital Course by Problem",
        adm_meds="Admission Medications",
        dc_meds="Discharge Medications",
        condition="Condition",
        disposition="Disposition",
        instructions="Instructions",
        followup="Follow-up",
    ),
}
# Sections the short profile keeps (the rest are dropped to stay within ~120-350 words).
SHORT_KEYS = frozenset(
    (
        "header",
        "allergies",
        "procedures",
        "hpi",
        "exam",
        "results",
        "course",
        "adm_meds",
        "dc_meds",
        "dx",
        "disposition",
        "instructions",
        "followup",
        "signature",
        "footer",
    )
)
IND_NAMES = {
    "cap": "pneumonia",
    "chf": "heart failure",
    "nstemi": "NSTEMI",
    "hipfx": "hip fracture",
    "cellulitis": "cellulitis",
    "uti": "pyelonephritis",
    "dka": "diabetes",
    "copd_ex": "COPD exacerbation",
    "gib": "duodenal ulcer",
    "aki": "kidney injury",
    "afib_rvr": "atrial fibrillation",
    "dvt": "DVT",
    "appy": "appendectomy pain",
    "chole": "cholecystectomy pain",
    "stone": "ureteral stone",
    "syncope": "syncope",
    "pain": "pain",
    "seizure": "seizures",
    "dementia": "dementia",
    "hyperthyroid": "hyperthyroidism",
    "orthostasis": "orthostatic hypotension",
    "neuropathy": "neuropathy",
    "hypokalemia": "hypokalemia",
}
IND_NAMES.update({k: c.name.lower() for k, c in CHRONIC.items()})
IND_NAMES["copd"] = "COPD"


@dataclass(frozen=True)
class Style:
    layout: str
    date_fmt: str  # us | iso | long
    med_fmt: int
    lab_fmt: int
    course_fmt: int
    show_los: bool
    mark_new: bool
    greeting: bool


def pick_style(rng: random.Random) -> Style:
    layout = rng.choice(LAYOUTS)
    return Style(
        layout,
        rng.choice(("us", "us", "iso", "long")),
        rng.randrange(3),
        rng.randrange(3),
        rng.randrange(3),
        layout == "academic" or (layout == "epic" and rng.random() < 0.5),
        rng.random() < 0.5,
        layout in ("mimic", "academic") or rng.random() < 0.3,
    )


def fmt_date(d: date, style: Style) -> str:
    if style.date_fmt == "iso":
        return d.isoformat()
    if style.date_fmt == "long":
        return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"
    return f"{d.month:02d}/{d.day:02d}/{d.year}"


def fmt_lab(key: str, value: float) -> str:
    return f"{value:.{LABS[key].dp}f}"


def _time(t: str) -> str:
    h, m = (int(x) for x in t.split(":"))
    return f"{(h - 1) % 12 + 1}:{m:02d} {'AM' if h < 12 else 'PM'}"


PRONOUNS = {
    "F": {"he": "she", "He": "She", "his": "her", "His": "Her", "him": "her", "man": "woman"},
    "M": {"he": "he", "He": "He", "his": "his", "His": "His", "him": "him", "man": "man"},
}
_TOKEN = re.compile(r"\{(\w+)(?::([^{}]+))?\}")


def fill(text: str, story: Story, style: Style) -> str:
    """Replace render-time tokens with this story's facts."""

    def sub(m: re.Match) -> str:
        name, arg = m.group(1), m.group(2)
        if name in PRONOUNS["F"]:
            return PRONOUNS[story.narr_sex][name]
        if name == "pt":
            return story.narr_name
        if name == "age":
            return str(story.narr_age)
        if name == "a_age":
            an = str(story.narr_age)[0] == "8" or story.narr_age in (11, 18)
            return f"{'an' if an else 'a'} {story.narr_age}"
        if name == "proc":
            n = story.procedures[int(arg)].name
            return n if n[:2].isupper() else n[0].lower() + n[1:]
        if name == "procdate":
            return fmt_date(story.procedures[int(arg)].day, style)
        if name == "pod":
            pi, real, claimed = story.pod_claims[int(arg)]
            day = story.procedures[pi].day + timedelta(days=real)
            return f"On POD #{claimed} ({fmt_date(day, style)}),"
        if name in ("lab", "lablast"):
            vals = [lab.value for lab in story.labs if lab.key == arg]
            if not vals:
                return "pending"
            return fmt_lab(arg, vals[0] if name == "lab" else vals[-1])
        if name == "date":
            return fmt_date(date.fromisoformat(arg), style)
        return m.group(0)

    return _TOKEN.sub(sub, text)


def med_line(m: Med, style: Style, i: int, discharge: bool) -> str:
    dose = f"{m.dose} {m.unit}"
    if style.med_fmt == 0:
        line = f"{i}. {m.name.title()} {dose} {m.route} {m.freq.upper()}"
    elif style.med_fmt == 1:
        route = {
            "PO": "by mouth",
            "SC": "subcutaneously",
            "INH": "inhaled",
            "TD": "transdermally",
        }.get(m.route, m.route)
        line = f"- {m.name} {dose}: take {dose} {route} {m.freq}"
    else:
        line = f"{m.name} {dose} {m.route} {m.freq}"
    if m.duration and discharge:
        line += f" {m.duration}"
    if m.show_ind and discharge:
        line += f" (for {IND_NAMES.get(m.indication, m.indication)})"
    if m.new and discharge and style.mark_new:
        line += " (NEW)"
    return line


def _labs(story: Story, style: Style) -> list[str]:
    out: list[str] = []
    days = sorted({lab.day for lab in story.labs})
    for day in days:
        group = [lab for lab in story.labs if lab.day == day]
        ds = fmt_date(day, style)
        if style.lab_fmt == 0:
            vals = " ".join(
                f"{LABS[lab.key].name}-{fmt_lab(lab.key, lab.value)}"
                + (f"({lab.flag})" if lab.flag else "")
                for lab in group
            )
            out.append(f"{ds} {group[0].time} BLOOD {vals}")
        elif style.lab_fmt == 1:
            vals = ", ".join(
                f"{LABS[lab.key].name} {fmt_lab(lab.key, lab.value)}"
                f"{' ' + LABS[lab.key].unit if LABS[lab.key].unit else ''}"
                + (f" [{lab.flag}]" if lab.flag else "")
                for lab in group
            )
            out.append(f"Labs {ds}: {vals}")
        else:
            out.append(f"{ds}:")
            for lab in group:
                d = LABS[lab.key]
                out.append(
                    f"  {d.name:<11}{fmt_lab(lab.key, lab.value):>7} {lab.flag or ' '}  "
                    f"({d.lo:g}-{d.hi:g} {d.unit})".rstrip()
                )
    return out


def _course(story: Story, style: Style) -> str:
    extra: dict[str, list[str]] = {}
    orphans: list[str] = []
    listed = {m.name for m in story.dc_meds}
    owner = {m.name: m.indication for m in story.adm_meds}
    keys = {p.key for p in story.course}

    def add(drug: str, sentence: str) -> None:
        k = owner.get(drug, "")
        (extra.setdefault(k, []) if k in keys else orphans).append(sentence)

    for drug, (why, resume) in story.held.items():
        if resume:
            add(
                drug,
                f"Home {drug} was held on admission given {why}; it was resumed at "
                f"discharge as {resume}.",
            )
        elif drug in listed:
            add(drug, f"Home {drug} was held on admission given {why}.")
        else:
            add(
                drug,
                f"Home {drug} was held given {why} and remains held at discharge; "
                f"PCP to decide on restarting.",
            )
    for drug, why in story.stopped.items():
        add(drug, f"Home {drug} was discontinued given {why}.")
    for drug, why in story.changed.items():
        add(drug, f"Home {drug} was {why}.")
    blocks = []
    problems = [(p.title, p.sentences + extra.get(p.key, [])) for p in story.course]
    if orphans:
        problems.append(("Medication changes", orphans))
    for i, (title, sents) in enumerate(problems, 1):
        text = " ".join(sents)
        if style.course_fmt == 0:
            blocks.append(f"# {title}: {text}")
        elif style.course_fmt == 1:
            blocks.append(f"{i}. {title} - {text}")
        else:
            blocks.append(f"{title.upper()}\n{text}")
    if story.pending and not story.short:
        blocks.append(
            "TRANSITIONAL ISSUES:\n- Follow up "
            + ", ".join(n for n, _ in story.pending)
            + " pending at discharge."
        )
    return "\n\n".join(blocks)


def _header(story: Story, style: Style) -> str:
    f = lambda d: fmt_date(d, style)  # noqa: E731
    a, d, dob = f(story.admit), f(story.discharge), f(story.dob)
    sex, age, mrn = story.hdr_sex, story.hdr_age, story.mrn
    first, last = story.hdr_first, story.hdr_last
    los = story.los_claim if story.los_claim is not None else story.los
    att = story.attending
    if style.layout == "mimic":
        return (
            f"Name:  {last.upper()}, {first.upper()}                 Unit No:   {mrn}\n \n"
            f"Admission Date:  {a}              Discharge Date:   {d}\n \n"
            f"Date of Birth:  {dob}             Sex:   {sex}      Age:  {age}\n \n"
            f"Service: {story.service}\n \nAttending: {att}, MD"
        )
    if style.layout == "epic":
        lines = [
            "DISCHARGE SUMMARY - [**Hospital**]",
            f"Patient: {first} {last}    MRN: {mrn}",
            f"DOB: {dob}    Age: {age} y.o.    Sex: {'Female' if sex == 'F' else 'Male'}",
            f"Admit date: {a}    Discharge date: {d}",
        ]
        if style.show_los:
            lines.append(f"Length of stay: {los} day{'' if los == 1 else 's'}")
        lines.append(f"Attending physician: Dr. {att}")
        return "\n".join(lines)
    if style.layout == "dictated":
        return (
            f"PATIENT NAME: {last.upper()}, {first.upper()}\nMEDICAL RECORD NUMBER: {mrn}\n"
            f"DATE OF BIRTH: {dob}   AGE: {age}   SEX: {sex}\nADMISSION DATE: {a}\n"
            f"DISCHARGE DATE: {d}\nATTENDING PHYSICIAN: {att}, MD"
        )
    return (
        f"Discharge Summary - [**Hospital**] {story.service.title()} Service\n"
        f"Name: {first} {last} | MRN: {mrn} | DOB: {dob} | {age} yo {sex}\n"
        f"Admission: {a} | Discharge: {d} | LOS: {los} day{'' if los == 1 else 's'}\nAttending: Dr. {att}"
    )


def render_sections(story: Story, style: Style) -> list[tuple[str, str, str]]:
    """The note as (key, label, body) triples in the layout's order."""
    f = lambda d: fmt_date(d, style)  # noqa: E731
    short = story.short
    bodies: dict[str, str] = {"header": _header(story, style)}
    bodies["allergies"] = "\n".join(story.allergies) or rnd_nka(story)
    bodies["cc"] = story.cc
    bodies["procedures"] = "\n".join(f"{f(p.day)}: {p.name}" for p in story.procedures) or ("None")
    bodies["hpi"] = " ".join(story.hpi)
    bodies["pmh"] = "\n".join(f"- {p}" for p in story.pmh) or "None"
    bodies["social"] = story.social
    bodies["family"] = story.family
    v = story.vitals
    vit = f"T {v['T']} BP {v['BP']} HR {v['HR']} RR {v['RR']} SpO2 {v['SpO2']}"
    if short:
        bodies["exam"] = f"Discharge vitals: {vit}."
    else:
        adm = "\n".join(f"{s}: {x}" for s, x in story.exam_adm)
        dc = "\n".join(f"{s}: {x}" for s, x in story.exam_dc)
        bodies["exam"] = f"ADMISSION EXAM:\n{adm}\n\nDISCHARGE EXAM:\nVS: {vit}\n{dc}"
    res = _labs(story, style)
    for day, text in story.studies:
        res.append(f"{f(day)} {text}")
    for name, day in story.pending:
        res.append(f"{name} ({f(day)}): pending at discharge")
    bodies["results"] = "\n".join(res)
    bodies["course"] = _course(story, style)
    bodies["adm_meds"] = (
        "\n".join(med_line(m, style, i, False) for i, m in enumerate(story.adm_meds, 1)) or "None"
    )
    bodies["dc_meds"] = (
        "\n".join(med_line(m, style, i, True) for i, m in enumerate(story.dc_meds, 1)) or "None"
    )
    bodies["disposition"] = story.disposition
    primary, *secondary = story.dx
    if style.layout == "dictated":
        bodies["dx"] = "\n".join(f"{i}. {t}" for i, (t, _) in enumerate(story.dx, 1))
    else:
        bodies["dx"] = f"Primary: {primary[0]}" + (
            "\nSecondary:\n" + "\n".join(f"- {t}" for t, _ in secondary) if secondary else ""
        )
    bodies["condition"] = "\n".join(story.condition)
    instr = " ".join(story.instructions).replace(" \n", "\n")
    if style.greeting and not short:
        instr = (
            f"Dear {{pt}},\n\nIt was a pleasure taking care of you at [**Hospital**]. "
            f"{instr}\n\nSincerely,\nYour care team"
        )
    bodies["instructions"] = instr
    if style.layout == "mimic":
        bodies["followup"] = "\n".join(
            f"Department: {u.specialty.upper()}\nWhen: {u.day.strftime('%A').upper()} "
            f"{f(u.day)} at {_time(u.time)}\nWith: Dr. {u.who}"
            for u in story.followups
        )
    else:
        bodies["followup"] = "\n".join(
            f"- Dr. {u.who} ({u.specialty}) on {f(u.day)} at {_time(u.time)}"
            for u in story.followups
        )
    sd, st = f(story.sign_date), _time(story.sign_time)
    bodies["signature"] = {
        "mimic": f"{story.signer}, MD\nElectronically signed on {sd} at {st}",
        "epic": f"Electronically signed by: {story.signer}, MD {sd} {st}",
        "dictated": f"Dictated By: {story.signer}, MD\nDate: {sd}",
        "academic": f"{story.signer}, MD (Attending)\nSigned {sd} {st}",
    }[style.layout]
    bodies["footer"] = {
        "mimic": f"{story.foot_last.upper()}, {story.foot_first.upper()}  Unit No: "
        f"{story.foot_mrn}",
        "epic": f"{story.foot_first} {story.foot_last} (MRN {story.foot_mrn}) - Page 1 of 1",
        "dictated": f"RE: {story.foot_last.upper()}, {story.foot_first.upper()} "
        f"MRN {story.foot_mrn}",
        "academic": f"Patient: {story.foot_last}, {story.foot_first} | MRN {story.foot_mrn}",
    }[style.layout]
    labels = LABELS[style.layout]
    out = []
    for key in ORDER[style.layout]:
        if short and key not in SHORT_KEYS:
            continue
        if short and key == "procedures" and not story.procedures:
            continue
        out.append((key, labels.get(key, ""), fill(bodies[key], story, style)))
    return out


def rnd_nka(story: Story) -> str:
    # Deterministic in the story (not in a fresh RNG) so re-rendering stays byte-identical.
    return ("No Known Allergies to Drugs", "NKDA", "No Known Allergies / Adverse Drug Reactions")[
        int(story.mrn) % 3
    ]


def join_sections(sections: list[tuple[str, str, str]], style: Style) -> str:
    parts = []
    for _key, label, body in sections:
        if not label:
            parts.append(body)
        elif not body:
            parts.append(f"{label}:" if style.layout != "epic" else label)
        elif style.layout == "epic":
            parts.append(f"{label}\n{body}")
        elif style.layout == "dictated" and "\n" not in body:
            parts.append(f"{label}: {body}")
        else:
            parts.append(f"{label}:\n{body}")
    return "\n\n".join(parts) + "\n"


def render(story: Story, style: Style) -> str:
    return join_sections(render_sections(story, style), style)
