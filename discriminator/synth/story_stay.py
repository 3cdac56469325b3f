"""The story's stay: labs by day, pending results, studies, procedures, course and diagnoses."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from .story import Lab, Problem, Procedure
from .story_frame import Frame
from .story_meds import Meds
from .vocab import BASIC_PANEL, CHRONIC, LABS


@dataclass
class Stay:
    """What happened in hospital."""

    labs: list[Lab]
    pending: list[tuple[str, date]]
    studies: list[tuple[date, str]]
    procedures: list[Procedure]
    pod_claims: list[list[int]]  # [procedure index, real POD, claimed POD]
    course: list[Problem]
    dx: list[tuple[str, str]]  # (title, problem key); first is the principal diagnosis
    ruled_out: list[str]
    missed: bool  # the hard negative asked for had nothing to apply to


def _value(rng: random.Random, key: str, flag: str) -> float:
    d = LABS[key]
    lo, hi = {"H": d.high, "L": d.low}.get(
        flag, (d.lo + (d.hi - d.lo) * 0.15, d.hi - (d.hi - d.lo) * 0.15)
    )
    return round(rng.uniform(lo, hi), d.dp)


def draw_stay(rng: random.Random, f: Frame, meds: Meds) -> Stay:
    """Labs (abnormal admission values recover day by day), a pending result now and then, the
    studies, the script's procedure, the course by problem (with a diagnosis ruled out or
    revised now and then) and the diagnoses."""
    short, cx, hn, ac, acute_key, side = f.short, f.cx, f.hn, f.ac, f.acute_key, f.side
    admit, discharge, los, b = f.admit, f.discharge, f.los, f.bake
    chronic_keys, home = meds.chronic_keys, meds.home
    missed = False
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
        missed = True
    if ac.revised_from and (hn == "diagnosis_revised_explained" or rng.random() < 0.1):
        kept.insert(1, ac.revised_from[1])
        ruled_out.append(ac.revised_from[0])
    elif hn == "diagnosis_revised_explained":
        missed = True
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
    return Stay(labs, pending, studies, procs, pod_claims, course, dx, ruled_out, missed)
