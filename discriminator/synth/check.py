"""Consistency checker: the rules a good synthetic note must satisfy.

Two layers. `check_story` checks the structured facts (every rule the error catalogue names).
`check_text` re-derives what it can from the rendered text alone (sections, order, template tokens,
signature, header dates, age vs DOB, name/MRN/sex consistency, pronouns, allergy conflicts), so
it also works on a note whose story is unknown. Problems are short messages with no note text.
"""

from __future__ import annotations

import re
from datetime import date

from .render import LABELS, ORDER, REQUIRED
from .story import Story, age_on
from .vocab import ALLERGIES, CONTRAINDICATED, DRUGS, LABS, MONTHS

TEMPLATE_TOKEN = re.compile(r"\{\{[A-Z_]+\}\}|<[A-Z][A-Z_ ]*>|\[INSERT[^\]]*\]")
_DATE = {
    "us": r"\d{2}/\d{2}/\d{4}",
    "iso": r"\d{4}-\d{2}-\d{2}",
    "long": r"(?:" + "|".join(MONTHS) + r") \d{1,2}, \d{4}",
}


def check_story(s: Story) -> list[str]:
    """Problems in a story's facts; empty for a consistent story."""
    p: list[str] = []
    if s.discharge < s.admit:
        p.append("discharge date before admission date")
    if age_on(s.dob, s.admit) != s.hdr_age:
        p.append("header age does not match date of birth")
    if s.narr_age != s.hdr_age:
        p.append("narrative age differs from header age")
    if s.hdr_sex != s.narr_sex:
        p.append("header sex differs from narrative sex")
    if "___" not in s.narr_name and s.narr_name.split()[-1] != s.hdr_last:
        p.append("narrative name differs from header name")
    if (s.foot_first, s.foot_last) != (s.hdr_first, s.hdr_last):
        p.append("footer name differs from header name")
    if s.foot_mrn != s.mrn:
        p.append("footer MRN differs from header MRN")
    if s.los_claim is not None and s.los_claim != s.los:
        p.append("stated length of stay contradicts the dates")
    for pr in s.procedures:
        if not s.admit <= pr.day <= s.discharge:
            p.append("procedure dated outside the stay")
        if not pr.key:
            p.append("procedure without indication")
        if pr.side and pr.side != s.side:
            p.append("procedure laterality contradicts findings")
    if s.side and _other(s.side) in s.dx[0][0].lower():
        p.append("diagnosis laterality contradicts findings")
    for _pi, real, claimed in s.pod_claims:
        if real != claimed:
            p.append("postoperative day arithmetic is wrong")
    for lab in s.labs:
        if not s.admit <= lab.day <= s.discharge:
            p.append(f"lab {lab.key} dated outside the stay")
        d = LABS[lab.key]
        want = "H" if lab.value > d.hi else "L" if lab.value < d.lo else ""
        if lab.flag and want != lab.flag:
            p.append(f"lab {lab.key} flag contradicts its value")
    for _name, day in s.pending:
        if not s.admit <= day <= s.discharge:
            p.append("pending lab dated outside the stay")
    for u in s.followups:
        if u.day <= s.discharge:
            p.append("follow-up not after discharge")
    if s.sign_date < s.admit or s.sign_date < s.discharge:
        p.append("signature dated before the stay ended")
    allergic = {d for a in s.allergies for d in dict(ALLERGIES).get(a, ())}
    adm = {m.name: m for m in s.adm_meds}
    for m in s.dc_meds:
        drug = DRUGS[m.name]
        if m.indication not in s.indications:
            p.append(f"discharge drug {m.name} has no documented indication")
        elif m.indication not in drug.inds:
            p.append(f"discharge drug {m.name} does not treat its indication")
        if drug.max_dose and float(m.dose) > drug.max_dose:
            p.append(f"dose of {m.name} out of range")
        if m.name in allergic:
            p.append(f"discharge drug {m.name} conflicts with an allergy")
        if m.name in s.stopped:
            p.append(f"{m.name} discontinued but on the discharge list")
        if m.name in s.held and not s.held[m.name][1]:
            p.append(f"held {m.name} resumed without a reason")
        if m.name in adm and adm[m.name].dose != m.dose and m.name not in s.changed:
            p.append(f"unexplained dose change of {m.name}")
    for m in s.adm_meds:
        if m.name in allergic:
            p.append(f"home drug {m.name} conflicts with an allergy")
    if allergic & set(s.inpatient):
        p.append("inpatient drug conflicts with an allergy")
    for k in s.indications:
        for drug, _why in CONTRAINDICATED.get(k, ()):
            if any(m.name == drug for m in s.dc_meds):
                p.append(f"{drug} contraindicated by {k}")
    for title, key in s.dx:
        if not key or key == "ruled_out" or title in s.ruled_out:
            p.append("discharge diagnosis not supported by the work-up")
    v = s.vitals
    sbp = int(v["BP"].split("/")[0])
    if not (
        30 <= int(v["HR"]) <= 220
        and int(v["SpO2"].split("%")[0]) <= 100
        and 90 <= float(v["T"]) <= 108
        and 50 <= sbp <= 260
        and 4 <= int(v["RR"]) <= 60
    ):
        p.append("implausible vital sign")
    return p


def _other(side: str) -> str:
    return "right" if side == "left" else "left"


def detect_style(note: str) -> tuple[str, str] | None:
    """(layout, date format) of a note rendered by this package, else None."""
    head = note[:200]
    layout = (
        "mimic"
        if head.startswith("Name:")
        else "epic"
        if head.startswith("DISCHARGE SUMM")
        else "dictated"
        if head.startswith("PATIENT NAME")
        else "academic"
        if head.startswith("Discharge Summary")
        else None
    )
    if layout is None:
        return None
    for fmt, rx in _DATE.items():
        if re.search(rx, note[:600]):
            return layout, fmt
    return None


def _parse(d: str, fmt: str) -> date:
    if fmt == "iso":
        return date.fromisoformat(d)
    if fmt == "us":
        m, dd, y = d.split("/")
        return date(int(y), int(m), int(dd))
    mon, rest = d.split(" ", 1)
    dd, y = rest.split(", ")
    return date(int(y), MONTHS.index(mon) + 1, int(dd))


_HEADER_RX = {
    "admit": r"(?:Admission Date:|Admit date:|ADMISSION DATE:|Admission:)\s*(@D@)",
    "discharge": r"(?:Discharge Date:|Discharge date:|DISCHARGE DATE:|Discharge:)\s*(@D@)",
    "dob": r"(?:Date of Birth:|DOB:|DATE OF BIRTH:)\s*(@D@)",
}
_NAME_RX = {
    "mimic": (r"Name:\s+([^,\n]+), (\S+)", r"\n([^,\n]+), (\S+)\s+Unit No"),
    "epic": (r"Patient: (\S+) (\S+)\s", r"\n(\S+) (\S+) \(MRN"),
    "dictated": (r"PATIENT NAME: ([^,\n]+), (\S+)", r"RE: ([^,\n]+), (\S+) MRN"),
    "academic": (r"Name: (\S+) (\S+) \|", r"Patient: ([^,\n]+), (\S+) \|"),
}


def sections_of(note: str, layout: str) -> dict[str, list[tuple[int, str]]]:
    """key -> [(position, body)] for each labelled section found in the note."""
    found: list[tuple[int, int, str]] = []
    for key, label in LABELS[layout].items():
        for m in re.finditer(r"(?m)^" + re.escape(label) + r"(?::|$)", note):
            found.append((m.start(), m.end(), key))
    found.sort()
    out: dict[str, list[tuple[int, str]]] = {}
    for i, (start, end, key) in enumerate(found):
        stop = found[i + 1][0] if i + 1 < len(found) else len(note)
        raw = note[end:stop]
        body = raw.strip()
        if i + 1 == len(found):
            # The last labelled section is followed by the unlabelled signature and footer.
            body = "" if raw.startswith("\n\n") else body.split("\n\n")[0]
        out.setdefault(key, []).append((start, body))
    return out


def check_text(note: str) -> list[str]:
    """Problems visible in the text of a note rendered by this package."""
    st = detect_style(note)
    if st is None:
        return ["unrecognized note layout"]
    layout, fmt = st
    p: list[str] = []
    secs = sections_of(note, layout)
    for key in REQUIRED:
        if key not in secs:
            p.append(f"missing section {key}")
        elif len(secs[key]) > 1:
            p.append(f"duplicated section {key}")
        elif not secs[key][0][1]:
            p.append(f"empty section {key}")
    dups = [k for k, v in secs.items() if len(v) > 1 and k not in REQUIRED]
    p += [f"duplicated section {k}" for k in dups]
    pos = [(v[0][0], k) for k, v in secs.items()]
    keys_in_order = [k for _, k in sorted(pos)]
    want = [k for k in ORDER[layout] if k in secs]
    if keys_in_order != want:
        p.append("sections out of order")
    if TEMPLATE_TOKEN.search(note):
        p.append("unfilled template token")
    last = note.rstrip().rsplit("\n", 1)[-1]
    if not re.search(r"(Unit No:|MRN) ?\d+", last):
        p.append("note does not end with the footer (truncated?)")
    if not re.search(r", MD\b", note[-400:]):
        p.append("no signature")
    drx = _DATE[fmt]
    dates = {}
    for k, rx in _HEADER_RX.items():
        m = re.search(rx.replace("@D@", drx), note)
        if m:
            dates[k] = _parse(m.group(1), fmt)
    if len(dates) < 3:
        p.append("header dates missing")
        return p
    admit, discharge = dates["admit"], dates["discharge"]
    if discharge < admit:
        p.append("discharge date before admission date")
    m = re.search(r"(?:Age:|AGE:)\s*(\d+)|(\d+) yo [FM]", note)
    if m and int(m.group(1) or m.group(2)) != age_on(dates["dob"], admit):
        p.append("header age does not match date of birth")
    mrns = set(re.findall(r"(?:Unit No:|MRN:?|MEDICAL RECORD NUMBER:)\s*(\d{5,})", note))
    if len(mrns) != 1:
        p.append("MRN mismatch")
    hx, fx = _NAME_RX[layout]
    h, f = re.search(hx, note), re.search(fx, note)
    if h and f and {x.lower() for x in h.groups()} != {x.lower() for x in f.groups()}:
        p.append("header and footer names differ")
    ms = re.search(r"(?:Sex:|SEX:)\s*(Female|Male|F|M)\b|\d+ yo ([FM])\b", note)
    sex = (ms.group(1) or ms.group(2))[0] if ms else None
    narrative = " ".join(b for k in ("hpi", "course") for _, b in secs.get(k, []))
    if sex:
        wrong = r"\b(he|his|him|He|His|Mr\.)\b" if sex == "F" else r"\b(she|her|She|Her|Ms\.)\b"
        if re.search(wrong, narrative):
            p.append("pronouns or title contradict the recorded sex")
    names = set(re.findall(r"\b(?:Mr|Ms)\. ([A-Z][\w'-]+|___)", narrative))
    if h and names - {"___"} - {x.capitalize() for x in h.groups()} - set(h.groups()):
        p.append("narrative name differs from header name")
    for key in ("followup",):
        for _, body in secs.get(key, []):
            for d in re.findall(drx, body):
                if _parse(d, fmt) <= discharge:
                    p.append("follow-up not after discharge")
    for key in ("results", "procedures"):
        for _, body in secs.get(key, []):
            for line in body.splitlines():
                if "pending" in line:
                    continue
                for d in re.findall(drx, line):
                    if not admit <= _parse(d, fmt) <= discharge:
                        p.append(f"{key} dated outside the stay")
    sig = re.search(r"(?:signed on|signed by: .*?MD|Date:|Signed)\s*(" + drx + ")", note[-300:])
    if sig and _parse(sig.group(1), fmt) < admit:
        p.append("signature dated before admission")
    allergies = " ".join(b for _, b in secs.get("allergies", []))
    meds = " ".join(b for _, b in secs.get("dc_meds", [])).lower()
    for a, conflicts in ALLERGIES:
        if a in allergies and any(c in meds for c in conflicts):
            p.append("discharge drug conflicts with an allergy")
    return p
