"""Labelled error injection: one error per note, 34 kinds over the five categories.

Two mechanisms:
- story errors change one fact of a copied Story and re-render it; the recorded spans come from
  diffing the focus section of the good and the corrupted rendering, so they are exactly what
  changed (and the rest of the note is byte-identical);
- structure errors edit the rendered section list (drop, empty, duplicate, move, template token,
  truncate).

Every injector returns None when it does not apply to this story (no procedure to misdate, no
lateral finding to swap, ...); the caller then tries another kind of the same category.
Reasons are written like a reviewer's note: "<Category label> error: <facts that conflict>",
at most 50 words, with several phrasings per kind.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from ..prompt import CATEGORY_LABELS
from .render import (
    IND_NAMES,
    LABELS,
    REQUIRED,
    Style,
    fmt_date,
    fmt_lab,
    join_sections,
    render_sections,
)
from .story import Med, Procedure, Story, age_on, clone
from .vocab import (
    ALLERGIES,
    CHRONIC,
    CONTRAINDICATED,
    DRUGS,
    FIRST_F,
    FIRST_M,
    HOLD_REASONS,
    LABS,
    LAST,
    PROCEDURE_POOL,
    STOP_REASONS,
    UNJUSTIFIED_POOL,
    WRONG_FOR,
)

Sections = list[tuple[str, str, str]]


@dataclass
class Injected:
    kind: str
    category: str
    note: str
    reason: str
    meta: dict = field(default_factory=dict)


# A story injector mutates the story in place and returns (facts for the reason, focus section).
StoryFn = Callable[[Story, Style, random.Random], "tuple[dict, str] | None"]
# A structure injector returns (new sections, facts, explicit spans or None).
SectFn = Callable[[Sections, Story, Style, random.Random], "tuple[Sections, dict] | None"]

STORY_INJECTORS: dict[str, tuple[str, StoryFn]] = {}
SECTION_INJECTORS: dict[str, SectFn] = {}
REASONS: dict[str, tuple[str, ...]] = {}


def _story(kind: str, category: str, *reasons: str):
    def deco(fn: StoryFn) -> StoryFn:
        STORY_INJECTORS[kind] = (category, fn)
        REASONS[kind] = reasons
        return fn

    return deco


def _section(kind: str, *reasons: str):
    def deco(fn: SectFn) -> SectFn:
        SECTION_INJECTORS[kind] = fn
        REASONS[kind] = reasons
        return fn

    return deco


def _other_side(side: str) -> str:
    return "right" if side == "left" else "left"


def _swap_side(text: str, side: str) -> str:
    other = _other_side(side)
    return text.replace(side, other).replace(side.capitalize(), other.capitalize())


# --------------------------------------------------------------------------------------------
# clinical_logic


@_story(
    "allergy_conflict",
    "clinical_logic",
    "the patient is allergic to {allergy}, yet {drug} {dose} is prescribed at discharge.",
    "{drug} on the discharge medication list conflicts with the documented allergy to {allergy}.",
    "allergy list includes {allergy}, but the patient is discharged on {drug}.",
)
def _allergy(s: Story, style: Style, rng: random.Random):
    pairs = [
        (a, m)
        for m in s.dc_meds
        for a, conf in ALLERGIES
        if m.name in conf and a not in s.allergies
    ]
    if not pairs:
        return None
    a, m = rng.choice(pairs)
    s.allergies.append(a)
    return {"allergy": a, "drug": m.name, "dose": f"{m.dose} {m.unit}"}, "allergies"


@_story(
    "lab_interpretation",
    "clinical_logic",
    "{lab} {value} {unit} is flagged {flagword} although that value is {actual} "
    "(reference {lo}-{hi}).",
    "{lab} of {value} is marked {flagword} ({flag}), which contradicts the value itself: it "
    "is {actual}.",
    "lab interpretation is inconsistent: {lab} {value} {unit} carries an {flag} flag but "
    "is {actual}.",
)
def _lab(s: Story, style: Style, rng: random.Random):
    labs = [lab for lab in s.labs if lab.flag and lab.day == s.admit]
    if not labs:
        return None
    lab = rng.choice(labs)
    d = LABS[lab.key]
    if lab.flag == "H":
        lo, hi = (
            d.low
            if d.low != (0, 0) and d.low[1] > 0
            else (d.lo + (d.hi - d.lo) * 0.3, d.lo + (d.hi - d.lo) * 0.6)
        )
    else:
        lo, hi = d.high
    lab.value = round(rng.uniform(lo, hi), d.dp)
    where = (
        "below the normal range"
        if lab.value < d.lo
        else "above the normal range"
        if lab.value > d.hi
        else "within the normal range"
    )
    return {
        "lab": d.name,
        "value": fmt_lab(lab.key, lab.value),
        "unit": d.unit,
        "flag": lab.flag,
        "flagword": "high" if lab.flag == "H" else "low",
        "actual": where,
        "lo": f"{d.lo:g}",
        "hi": f"{d.hi:g}",
    }, "results"


def _num(x: float) -> str:
    return f"{x:g}" if x < 1e6 else str(int(x))


@_story(
    "dose_out_of_range",
    "clinical_logic",
    "{drug} {new} {unit} {freq} far exceeds any plausible dose (usual {usual} {unit}).",
    "discharge dose of {drug} ({new} {unit}) is about {factor}-fold the usual {usual} {unit}.",
    "{drug} is prescribed at {new} {unit}, above the maximum safe dose of {max} {unit}.",
)
def _dose(s: Story, style: Style, rng: random.Random):
    meds = [m for m in s.dc_meds if DRUGS[m.name].max_dose]
    if not meds:
        return None
    m = rng.choice(meds)
    old = m.dose
    mx = DRUGS[m.name].max_dose
    # The smallest "slipped decimal" factor that lands well above the maximum dose.
    factor = next((f for f in (10, 20, 50, 100, 1000) if float(old) * f > 3 * mx), None)
    if factor is None:
        return None
    m.dose = _num(float(old) * factor)
    return {
        "drug": m.name,
        "new": m.dose,
        "unit": m.unit,
        "freq": m.freq,
        "usual": old,
        "factor": factor,
        "max": _num(mx),
    }, "dc_meds"


@_story(
    "laterality_swap",
    "clinical_logic",
    "exam and imaging describe the {side} side, but the {where} reads '{new}'.",
    "laterality conflict: {side}-sided findings throughout, yet the {where} says "
    "{other} ('{new}').",
    "the {where} ('{new}') names the {other} side while the work-up documents a {side} problem.",
)
def _laterality(s: Story, style: Style, rng: random.Random):
    if not s.side:
        return None
    lateral = [p for p in s.procedures if p.side]
    if lateral and rng.random() < 0.7:
        p = lateral[0]
        p.name = _swap_side(p.name, s.side)
        p.side = _other_side(s.side)
        return {"side": s.side, "other": p.side, "where": "procedure", "new": p.name}, "procedures"
    title, key = s.dx[0]
    new = _swap_side(title, s.side)
    s.dx[0] = (new, key)
    return {
        "side": s.side,
        "other": _other_side(s.side),
        "where": "discharge diagnosis",
        "new": new,
    }, "dx"


@_story(
    "diagnosis_contradicts_workup",
    "clinical_logic",
    "{dx} is listed as a discharge diagnosis although the hospital course states it was ruled out.",
    "discharge diagnosis of {dx} contradicts the documented negative work-up for it.",
    "the work-up excluded {dx}, yet it appears among the discharge diagnoses.",
)
def _contradicts(s: Story, style: Style, rng: random.Random):
    from .acute import ACUTES

    if not s.ruled_out:
        opts = ACUTES[s.acute].ruled_out
        if not opts:
            return None
        title, how = rng.choice(opts)
        s.course[0].sentences.append(how.replace("{side}", s.side))
        s.ruled_out.append(title)
    title = rng.choice(s.ruled_out)
    s.dx.insert(1, (title, "ruled_out"))
    return {"dx": title}, "dx"


@_story(
    "wrong_drug_for_diagnosis",
    "clinical_logic",
    "{wrong} is prescribed for {ind}, a condition it does not treat.",
    "discharge list gives {wrong} for {ind}; this is not an appropriate therapy for that "
    "diagnosis.",
    "{wrong} (for {ind}) does not match the indication; expected therapy such as {orig}.",
)
def _wrong(s: Story, style: Style, rng: random.Random):
    given = {m.name for m in s.dc_meds}
    cands = [
        (i, m, w)
        for i, m in enumerate(s.dc_meds)
        for w in WRONG_FOR.get(m.indication, ())
        if w not in given and not _allergic(s, w)
    ]
    if not cands:
        return None
    i, m, w = rng.choice(cands)
    d = DRUGS[w]
    s.dc_meds[i] = Med(
        w, d.doses[0], d.unit, d.route, d.freqs[0], m.indication, new=m.new, show_ind=True
    )
    return {"wrong": w, "ind": IND_NAMES.get(m.indication, m.indication), "orig": m.name}, "dc_meds"


def _allergic(s: Story, drug: str) -> bool:
    conf = dict(ALLERGIES)
    return any(drug in conf.get(a, ()) for a in s.allergies)


@_story(
    "contraindicated_drug",
    "clinical_logic",
    "{drug} is prescribed at discharge despite {why}, for which it is contraindicated.",
    "starting {drug} is unsafe given {why} documented during this admission.",
    "{drug} on the discharge list is contraindicated in {why}.",
)
def _contra(s: Story, style: Style, rng: random.Random):
    given = {m.name for m in s.dc_meds}
    cands = [
        (d, why)
        for k in s.indications
        for d, why in CONTRAINDICATED.get(k, ())
        if d not in given and not _allergic(s, d)
    ]
    if not cands:
        return None
    name, why = rng.choice(cands)
    d = DRUGS[name]
    ind = next((k for k in sorted(d.inds) if k in s.indications), sorted(d.inds)[0])
    s.dc_meds.append(Med(name, d.doses[0], d.unit, d.route, d.freqs[0], ind, new=True))
    return {"drug": f"{name} {d.doses[0]} {d.unit}", "why": why}, "dc_meds"


@_story(
    "implausible_vital",
    "clinical_logic",
    "discharge vital sign {name} {value} is physiologically impossible for a patient "
    "described as stable.",
    "recorded {name} of {value} at discharge is implausible and inconsistent with a stable "
    "discharge.",
)
def _vital(s: Story, style: Style, rng: random.Random):
    name, value = rng.choice(
        (
            ("HR", str(rng.randint(310, 480))),
            ("SpO2", f"{rng.randint(121, 160)}% RA"),
            ("T", f"{rng.uniform(109.0, 118.0):.1f}"),
            ("BP", f"{rng.randint(310, 390)}/{rng.randint(190, 250)}"),
            ("RR", str(rng.randint(90, 140))),
        )
    )
    s.vitals[name] = value
    return {"name": name, "value": value}, "exam"


# --------------------------------------------------------------------------------------------
# timeline


@_story(
    "admit_after_discharge",
    "timeline",
    "discharge date {d} precedes admission date {a}.",
    "the patient is admitted on {a} but discharged on {d}, before the admission.",
    "impossible stay: admission {a} is after discharge {d}.",
)
def _admit_after(s: Story, style: Style, rng: random.Random):
    k = rng.randint(1, 9)
    s.los_claim = s.los  # a printed LOS keeps the real stay; only the dates conflict
    if rng.random() < 0.5:
        s.discharge = s.admit - timedelta(days=k)
    else:
        s.admit = s.discharge + timedelta(days=k)
    return {"a": fmt_date(s.admit, style), "d": fmt_date(s.discharge, style)}, "header"


@_story(
    "procedure_outside_stay",
    "timeline",
    "{proc} is dated {pd}, outside the hospital stay ({a} to {d}).",
    "procedure date {pd} for {proc} falls {rel} the admission ({a} to {d}).",
)
def _proc_outside(s: Story, style: Style, rng: random.Random):
    if not s.procedures:
        return None
    p = s.procedures[0]
    if rng.random() < 0.5:
        p.day, rel = s.admit - timedelta(days=rng.randint(2, 20)), "before"
    else:
        p.day, rel = s.discharge + timedelta(days=rng.randint(2, 20)), "after"
    return {
        "proc": p.name,
        "pd": fmt_date(p.day, style),
        "a": fmt_date(s.admit, style),
        "d": fmt_date(s.discharge, style),
        "rel": rel,
    }, "procedures"


@_story(
    "followup_before_discharge",
    "timeline",
    "follow-up with Dr. {who} on {fd} is scheduled before the discharge date {d}.",
    "the {spec} appointment ({fd}) predates discharge on {d}.",
    "a post-discharge visit cannot be on {fd}: the patient leaves the hospital on {d}.",
)
def _fu_before(s: Story, style: Style, rng: random.Random):
    u = s.followups[0]
    u.day = s.discharge - timedelta(days=rng.randint(1, 12))
    return {
        "who": u.who,
        "fd": fmt_date(u.day, style),
        "d": fmt_date(s.discharge, style),
        "spec": u.specialty,
    }, "followup"


@_story(
    "age_dob_mismatch",
    "timeline",
    "date of birth {dob} gives an age of {calc} on admission ({a}), but the note states {age}.",
    "stated age {age} does not match DOB {dob} (age {calc} at admission).",
)
def _age_dob(s: Story, style: Style, rng: random.Random):
    shift = rng.choice((-9, -7, -5, -4, -3, 3, 4, 5, 7))
    dob = s.dob.replace(day=min(s.dob.day, 28), year=s.dob.year + shift)
    s.dob = dob
    calc = age_on(dob, s.admit)
    if abs(calc - s.hdr_age) < 2:
        return None
    return {
        "dob": fmt_date(dob, style),
        "calc": calc,
        "a": fmt_date(s.admit, style),
        "age": s.hdr_age,
    }, "header"


@_story(
    "postop_day_mismatch",
    "timeline",
    "the course says POD #{claimed} on {date}, but surgery on {pd} makes that POD #{real}.",
    "postoperative day count is wrong: {date} is POD #{real} after the {pd} procedure, "
    "not POD #{claimed}.",
)
def _pod(s: Story, style: Style, rng: random.Random):
    if not s.pod_claims:
        return None
    claim = s.pod_claims[0]
    pi, real, _ = claim
    claim[2] = real + rng.choice((2, 3, 4)) if real < 3 or rng.random() < 0.5 else real - 2
    p = s.procedures[pi]
    return {
        "claimed": claim[2],
        "real": real,
        "pd": fmt_date(p.day, style),
        "date": fmt_date(p.day + timedelta(days=real), style),
    }, "course"


@_story(
    "lab_after_discharge",
    "timeline",
    "labs dated {ld} are after the discharge date {d}.",
    "results from {ld} postdate discharge on {d} and are not marked pending.",
)
def _lab_after(s: Story, style: Style, rng: random.Random):
    last = max(lab.day for lab in s.labs)
    new = s.discharge + timedelta(days=rng.randint(1, 5))
    for lab in s.labs:
        if lab.day == last:
            lab.day = new
    return {"ld": fmt_date(new, style), "d": fmt_date(s.discharge, style)}, "results"


@_story(
    "signature_before_admission",
    "timeline",
    "the note is signed on {sd}, before the admission date {a}.",
    "signature date {sd} precedes the {a} admission it documents.",
)
def _sign_before(s: Story, style: Style, rng: random.Random):
    s.sign_date = s.admit - timedelta(days=rng.randint(1, 40))
    return {"sd": fmt_date(s.sign_date, style), "a": fmt_date(s.admit, style)}, "signature"


@_story(
    "los_mismatch",
    "timeline",
    "length of stay is given as {claim} days, but {a} to {d} is {los} days.",
    "stated LOS of {claim} days contradicts the admission ({a}) and discharge ({d}) dates.",
)
def _los(s: Story, style: Style, rng: random.Random):
    if not style.show_los:
        return None
    s.los_claim = s.los + rng.choice((2, 3, 5)) if s.los < 3 or rng.random() < 0.5 else s.los - 2
    return {
        "claim": s.los_claim,
        "a": fmt_date(s.admit, style),
        "d": fmt_date(s.discharge, style),
        "los": s.los,
    }, "header"


# --------------------------------------------------------------------------------------------
# phi


@_story(
    "name_mismatch_narrative",
    "phi",
    "the header names the patient {hdr}, but the narrative refers to {narr}.",
    "patient name mismatch: '{last}' in the header versus '{narr}' in the HPI.",
)
def _name_narr(s: Story, style: Style, rng: random.Random):
    if "___" in s.narr_name:
        return None
    new = rng.choice([n for n in LAST if n != s.hdr_last])
    s.narr_name = f"{s.narr_name.split()[0]} {new}"
    return {"hdr": f"{s.hdr_first} {s.hdr_last}", "last": s.hdr_last, "narr": s.narr_name}, "hpi"


@_story(
    "name_mismatch_footer",
    "phi",
    "the footer identifies the patient as {foot}, while the header says {hdr}.",
    "name mismatch between header ({hdr}) and footer ({foot}).",
)
def _name_foot(s: Story, style: Style, rng: random.Random):
    if rng.random() < 0.5:
        pool = FIRST_F if s.hdr_sex == "F" else FIRST_M
        s.foot_first = rng.choice([n for n in pool if n != s.hdr_first])
    else:
        s.foot_last = rng.choice([n for n in LAST if n != s.hdr_last])
    return {"foot": f"{s.foot_first} {s.foot_last}", "hdr": f"{s.hdr_first} {s.hdr_last}"}, "footer"


@_story(
    "sex_mismatch",
    "phi",
    "header lists sex as {hs}, but the narrative describes a {man} ('{he}', '{title}').",
    "sex recorded as {hs} in the header conflicts with the narrative, which uses "
    "'{he}' for the patient.",
)
def _sex(s: Story, style: Style, rng: random.Random):
    s.hdr_sex = "M" if s.narr_sex == "F" else "F"
    return {
        "hs": s.hdr_sex,
        "man": "woman" if s.narr_sex == "F" else "man",
        "he": "she" if s.narr_sex == "F" else "he",
        "title": s.narr_name.split()[0],
    }, "header"


_OPP = {
    "F": {"he": "he", "He": "He", "his": "his", "His": "His", "him": "him"},
    "M": {"he": "she", "He": "She", "his": "her", "His": "Her", "him": "her"},
}


@_story(
    "pronoun_mismatch",
    "phi",
    "the patient is {sexword} elsewhere in the note, but the {where} refers to the patient "
    "as '{pron}'.",
    "pronoun '{pron}' in the {where} conflicts with the patient's documented sex ({sex}).",
)
def _pronoun(s: Story, style: Style, rng: random.Random):
    opp = _OPP[s.narr_sex]
    for where, focus, texts in (
        ("hospital course", "course", [p.sentences for p in s.course]),
        ("HPI", "hpi", [s.hpi]),
    ):
        for sents in texts:
            for i, t in enumerate(sents):
                for tok, word in opp.items():
                    if "{" + tok + "}" in t:
                        sents[i] = t.replace("{" + tok + "}", word, 1)
                        return {
                            "sexword": "female" if s.narr_sex == "F" else "male",
                            "where": where,
                            "pron": word,
                            "sex": s.hdr_sex,
                        }, focus
    return None


@_story(
    "mrn_mismatch",
    "phi",
    "MRN {m1} in the header does not match MRN {m2} in the footer.",
    "two different MRNs appear in the note ({m1} and {m2}).",
)
def _mrn(s: Story, style: Style, rng: random.Random):
    digits = list(s.mrn)
    i = rng.randrange(1, len(digits))
    digits[i] = str((int(digits[i]) + rng.randint(1, 9)) % 10)
    s.foot_mrn = "".join(digits)
    return {"m1": s.mrn, "m2": s.foot_mrn}, "footer"


@_story(
    "age_mismatch_hpi",
    "phi",
    "header age is {age}, but the HPI describes a {narr}-year-old.",
    "age mismatch: {age} in the header versus {narr} in the HPI.",
)
def _age_hpi(s: Story, style: Style, rng: random.Random):
    s.narr_age = s.hdr_age + rng.choice((-12, -8, -5, -3, 3, 4, 6, 10))
    return {"age": s.hdr_age, "narr": s.narr_age}, "hpi"


# --------------------------------------------------------------------------------------------
# justification


@_story(
    "unjustified_new_drug",
    "justification",
    "{drug} {dose} is a new discharge medication with no indication documented anywhere "
    "in the note.",
    "new {drug} on the discharge list has no corresponding diagnosis or explanation in the "
    "hospital course.",
)
def _unjustified(s: Story, style: Style, rng: random.Random):
    given = {m.name for m in s.dc_meds} | {m.name for m in s.adm_meds}
    cands = [
        n
        for n in UNJUSTIFIED_POOL
        if n not in given and not (DRUGS[n].inds & s.indications) and not _allergic(s, n)
    ]
    if not cands:
        return None
    name = rng.choice(cands)
    d = DRUGS[name]
    s.dc_meds.append(
        Med(name, d.doses[0], d.unit, d.route, d.freqs[0], sorted(d.inds)[0], new=True)
    )
    return {"drug": name, "dose": f"{d.doses[0]} {d.unit}"}, "dc_meds"


@_story(
    "undiscussed_diagnosis",
    "justification",
    "discharge diagnosis '{dx}' is never mentioned in the history, results or hospital course.",
    "{dx} appears among discharge diagnoses without any supporting discussion or work-up.",
)
def _undiscussed(s: Story, style: Style, rng: random.Random):
    # A chronic condition the patient does not have: good notes list these titles too, so the
    # error is the missing support, not the word (titles only error notes carried were a cue a
    # bag-of-words floor found at AUROC 0.68).
    have = (
        {t for t, _ in s.dx}
        | set(s.ruled_out)
        | {CHRONIC[k].name for k in s.indications if k in CHRONIC}
    )
    title = rng.choice([c.name for k, c in CHRONIC.items() if c.name not in have])
    s.dx.append((title, ""))
    return {"dx": title}, "dx"


@_story(
    "discontinued_still_listed",
    "justification",
    "the hospital course says {drug} was discontinued, yet it remains on the discharge "
    "medication list.",
    "{drug} is stopped in the course ({why}) but still listed among discharge medications.",
)
def _disc_listed(s: Story, style: Style, rng: random.Random):
    home = {m.name for m in s.adm_meds}
    cands = [
        m
        for m in s.dc_meds
        if m.name in STOP_REASONS
        and m.name in home
        and m.name not in s.held
        and m.name not in s.changed
    ]
    if not cands:
        return None
    m = rng.choice(cands)
    s.stopped[m.name] = STOP_REASONS[m.name]
    return {"drug": m.name, "why": STOP_REASONS[m.name]}, "course"


@_story(
    "held_resumed_no_reason",
    "justification",
    "{drug} was held on admission for {why} but is on the discharge list with no stated "
    "reason for resuming it.",
    "the note never explains why held {drug} ({why}) was restarted at discharge.",
)
def _held(s: Story, style: Style, rng: random.Random):
    listed = {m.name for m in s.dc_meds}
    resumed = [d for d, (_, r) in s.held.items() if r and d in listed]
    if resumed:
        drug = resumed[0]
    else:
        cands = [
            m.name
            for m in s.dc_meds
            if m.name in HOLD_REASONS
            and not m.new
            and m.name not in s.held
            and m.name not in s.stopped
            and m.name not in s.changed
        ]
        if not cands:
            return None
        drug = rng.choice(cands)
    why = s.held.get(drug, HOLD_REASONS[drug])[0]
    s.held[drug] = (why, "")
    return {"drug": drug, "why": why}, "course"


@_story(
    "dose_change_unexplained",
    "justification",
    "{drug} changes from {old} {unit} on admission to {new} {unit} at discharge with no "
    "explanation.",
    "unexplained dose change of {drug} ({old} to {new} {unit}) between the admission and "
    "discharge lists.",
)
def _dose_change(s: Story, style: Style, rng: random.Random):
    adm = {m.name: m for m in s.adm_meds}
    cands = [
        m
        for m in s.dc_meds
        if m.name in adm
        and m.dose == adm[m.name].dose
        and len(DRUGS[m.name].doses) > 1
        and m.name not in s.held
    ]
    if not cands:
        return None
    m = rng.choice(cands)
    old = m.dose
    m.dose = rng.choice([d for d in DRUGS[m.name].doses if d != old])
    return {"drug": m.name, "old": old, "new": m.dose, "unit": m.unit}, "dc_meds"


@_story(
    "unexplained_procedure",
    "justification",
    "the procedure list includes {proc} on {pd}, but no indication or result is documented.",
    "{proc} ({pd}) is listed as performed, yet the hospital course never mentions it.",
)
def _proc_unexplained(s: Story, style: Style, rng: random.Random):
    if s.short and not s.procedures:
        return None  # the short layout has no procedure section to put it in
    name = rng.choice(PROCEDURE_POOL)
    day = s.admit + timedelta(days=rng.randint(0, s.los))
    s.procedures.append(Procedure(name, day, ""))
    return {"proc": name, "pd": fmt_date(day, style)}, "procedures"


# --------------------------------------------------------------------------------------------
# structure (edits of the section list)


def _label(key: str, style: Style) -> str:
    return LABELS[style.layout].get(key, key)


@_section(
    "missing_section",
    "the required '{label}' section is missing.",
    "no {label} section; a discharge summary must include it.",
    "the note omits the {label} section entirely.",
)
def _missing(secs: Sections, s: Story, style: Style, rng: random.Random):
    keys = [k for k, _, _ in secs if k in REQUIRED]
    key = rng.choice(keys)
    return [x for x in secs if x[0] != key], {"label": _label(key, style)}


@_section(
    "empty_section",
    "the '{label}' section header is present but the section is empty.",
    "{label} is left blank: header with no content.",
)
def _empty(secs: Sections, s: Story, style: Style, rng: random.Random):
    keys = [k for k, _, b in secs if k in REQUIRED and b]
    key = rng.choice(keys)
    return [(k, lab, "" if k == key else b) for k, lab, b in secs], {"label": _label(key, style)}


@_section(
    "duplicated_section",
    "the '{label}' section appears twice.",
    "duplicated section: '{label}' is repeated in the note.",
)
def _dup(secs: Sections, s: Story, style: Style, rng: random.Random):
    idx = [i for i, (k, lab, _) in enumerate(secs) if lab and k not in ("header",)]
    i = rng.choice(idx)
    j = rng.choice((i + 1, len(secs) - 2))
    new = [*secs[:j], secs[i], *secs[j:]]
    return new, {"label": secs[i][1]}


@_section(
    "sections_out_of_order",
    "'{moved}' appears before '{anchor}', out of the expected section order.",
    "sections out of order: {moved} is placed {where} {anchor}.",
)
def _order(secs: Sections, s: Story, style: Style, rng: random.Random):
    keys = [k for k, _, _ in secs]
    late = [k for k in ("followup", "instructions", "dc_meds") if k in keys]
    if rng.random() < 0.5 and "hpi" in keys:
        # Move the HPI to just before the signature.
        i = keys.index("hpi")
        moved = secs[i]
        rest = secs[:i] + secs[i + 1 :]
        j = [k for k, _, _ in rest].index("signature")
        anchor = rest[j - 1][1]
        return [*rest[:j], moved, *rest[j:]], {
            "moved": moved[1],
            "anchor": anchor,
            "where": "after",
        }
    key = rng.choice(late)
    i = keys.index(key)
    moved = secs[i]
    rest = secs[:i] + secs[i + 1 :]
    j = [k for k, _, _ in rest].index("hpi")
    anchor = rest[j][1]
    return [*rest[:j], moved, *rest[j:]], {"moved": moved[1], "anchor": anchor, "where": "before"}


def _order_span(note: str, facts: dict) -> tuple[None, str]:
    # The moved section's label line and its first body line (whole blocks are too long to
    # quote); the original is None because no text was removed, only moved.
    i = note.index("\n\n" + facts["moved"]) + 2
    lines = note[i:].split("\n")
    return None, "\n".join(lines[:2]).strip()


@_section(
    "template_token",
    "unfilled template token {token} in the {label} section.",
    "the note still contains the placeholder {token} instead of {what}.",
)
def _token(secs: Sections, s: Story, style: Style, rng: random.Random):
    opts = []
    body = dict((k, b) for k, _, b in secs)
    if "___" not in s.narr_name and s.narr_name in body["hpi"]:
        opts.append(("hpi", s.narr_name, "{{PATIENT_NAME}}", "the patient's name"))
    fd = fmt_date(s.followups[0].day, style)
    opts.append(("followup", fd, "<DATE>", "the appointment date"))
    m = s.dc_meds[0] if s.dc_meds else None
    if m and f"{m.dose} {m.unit}" in body["dc_meds"]:
        opts.append(("dc_meds", f"{m.dose} {m.unit}", "[INSERT DOSE]", f"the {m.name} dose"))
    if "instructions" in body:
        opts.append(
            (
                "instructions",
                body["instructions"],
                "[INSERT DISCHARGE INSTRUCTIONS]",
                "discharge instructions",
            )
        )
    opts.append(("signature", s.signer, "{{ATTENDING_NAME}}", "the signing physician"))
    key, old, token, what = rng.choice(opts)
    new = [(k, lab, b.replace(old, token, 1) if k == key else b) for k, lab, b in secs]
    return new, {
        "token": token,
        "label": _label(key, style) if key != "signature" else "signature",
        "what": what,
    }


@_section(
    "truncated_note",
    "the note is truncated mid-sentence in the {label} section and has no signature.",
    "note ends abruptly ('...{tail}') without the remaining sections or signature.",
)
def _truncate(secs: Sections, s: Story, style: Style, rng: random.Random):
    keys = [k for k, _, _ in secs]
    cands = [
        i
        for i, k in enumerate(keys)
        # Only the second half: a note cut right after its header reads as a stub, not as the
        # realistic failure (a dictation or copy that stops partway through).
        if k in ("course", "instructions", "followup", "dc_meds", "dx", "condition")
        and i >= len(keys) // 2
    ]
    i = rng.choice(cands)
    key, lab, body = secs[i]
    words = body.split(" ")
    if len(words) < 4:
        return None
    cut = rng.randint(2, len(words) - 1)
    kept = " ".join(words[:cut]).rstrip(" .,;:\n")
    if not kept or kept[-1] in ".:":
        return None
    tail = " ".join(kept.split()[-3:])
    return [*secs[:i], (key, lab, kept)], {"label": lab or key, "tail": tail}


STRUCTURE_KINDS = tuple(SECTION_INJECTORS)
ERROR_KINDS: dict[str, str] = {k: c for k, (c, _) in STORY_INJECTORS.items()}
ERROR_KINDS.update({k: "structure" for k in SECTION_INJECTORS})
KINDS_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    c: tuple(k for k, kc in ERROR_KINDS.items() if kc == c) for c in CATEGORY_LABELS
}


def _words(t: str, i: int, j: int, n: int) -> tuple[int, int]:
    """Snap [i, j) to whole words, then add `n` words of context each side within the line."""
    while i > 0 and not t[i - 1].isspace():
        i -= 1
    while j < len(t) and not t[j].isspace():
        j += 1
    ls = t.rfind("\n", 0, i) + 1
    le = t.find("\n", j)
    le = len(t) if le < 0 else le
    for _ in range(n):
        k = t.rfind(" ", ls, max(i - 1, ls))
        i = k + 1 if k >= 0 else ls
        k = t.find(" ", j + 1, le)
        j = k if k >= 0 else le
    return i, j


def _lines(t: str, i: int, j: int, n: int) -> tuple[int, int]:
    """Snap [i, j) to whole lines, plus `n` lines of context each side."""
    while i < j and t[i] == "\n":
        i += 1
    while j > i and t[j - 1] == "\n":
        j -= 1
    for _ in range(n + 1):
        i = t.rfind("\n", 0, max(i - 1, 0)) + 1 if _ else t.rfind("\n", 0, i) + 1
        k = t.find("\n", j + 1 if _ else j)
        j = len(t) if k < 0 else k
    return i, j


def _span(old: str, new: str, note: str) -> tuple[str | None, str] | None:
    """(original, altered) around the single changed region of old -> new.

    Changes inside one line are quoted as words with a little context ("RR 105 SpO2"); inserted,
    deleted or multi-line changes as whole lines. Context grows until the original text no longer
    occurs in `new` (the changed section; the same words may legitimately remain elsewhere, e.g.
    the unchanged admission med list), so `original` is evidence of what was changed.
    """
    n = min(len(old), len(new))
    p = 0
    while p < n and old[p] == new[p]:
        p += 1
    q = 0
    while q < n - p and old[-1 - q] == new[-1 - q]:
        q += 1
    a0, a1, b0, b1 = p, len(old) - q, p, len(new) - q
    multiline = "\n" in old[a0:a1] or "\n" in new[b0:b1] or a0 == a1 or b0 == b1
    for ctx in range(4):
        if multiline:
            (i0, i1), (j0, j1) = _lines(old, a0, a1, ctx), _lines(new, b0, b1, ctx)
        else:
            (i0, i1), (j0, j1) = _words(old, a0, a1, 1 + ctx), _words(new, b0, b1, 1 + ctx)
        # A pure insertion has no original text (the context around it is still there).
        orig = old[i0:i1].strip() if a1 > a0 else ""
        alt = new[j0:j1].strip()
        if alt and alt in note and (not orig or orig not in new):
            return (orig or None), alt
    return None


def inject(
    story: Story,
    style: Style,
    category: str,
    rng: random.Random,
    only: frozenset[str] | None = None,
) -> Injected | None:
    """One error of `category` (of the kinds in `only`, if given) in a copy of `story`; None if
    no such kind applies."""
    kinds = list(KINDS_BY_CATEGORY[category])
    rng.shuffle(kinds)
    if only is not None:
        kinds = [k for k in kinds if k in only]
    good_secs = render_sections(story, style)
    good = join_sections(good_secs, style)
    for kind in kinds:
        meta: dict = {}
        if kind in STORY_INJECTORS:
            s2 = clone(story)
            res = STORY_INJECTORS[kind][1](s2, style, rng)
            if res is None:
                continue
            facts, focus = res
            secs = render_sections(s2, style)
            note = join_sections(secs, style)
            old_b = next((b for k, _, b in good_secs if k == focus), None)
            new_b = next((b for k, _, b in secs if k == focus), None)
            if old_b is None or new_b is None or old_b == new_b:
                continue
            spans = _span(old_b, new_b, note)
            meta["section"] = focus
            meta["_story"] = s2  # popped by the caller: lets the checker see the bad fact
        else:
            res = SECTION_INJECTORS[kind](list(good_secs), story, style, rng)
            if res is None:
                continue
            secs, facts = res
            note = join_sections(secs, style)
            if kind == "truncated_note":
                note = note.rstrip("\n")
            spans = (
                _order_span(note, facts)
                if kind == "sections_out_of_order"
                else _span(good, note, note)
            )
        if spans is None or note == good:
            continue
        meta["original"], meta["altered"] = spans
        meta["facts"] = {k: str(v) for k, v in facts.items()}
        reason = f"{CATEGORY_LABELS[category]} error: " + rng.choice(REASONS[kind]).format(**facts)
        if len(reason.split()) > 50:
            reason = f"{CATEGORY_LABELS[category]} error: " + REASONS[kind][-1].format(**facts)
        if len(reason.split()) > 50:
            continue
        return Injected(kind, category, note, reason, meta)
    return None
