"""build_story: one consistent patient story, its parts drawn from one rng in a fixed order."""

from __future__ import annotations

import random
from datetime import timedelta

from .story import FollowUp, Patient, Story
from .story_frame import draw_frame
from .story_meds import draw_meds
from .story_stay import draw_stay
from .story_text import condition_lines, draw_history, draw_narrative
from .vocab import CHRONIC, DOCTOR_FIRST, DOCTORS


def _doctor(rng: random.Random) -> str:
    return f"{rng.choice(DOCTOR_FIRST)} {rng.choice(DOCTORS)}"


def build_story(
    rng: random.Random, patient: Patient, length: str, hard_negative: str | None = None
) -> Story:
    """One consistent story. `hard_negative` forces an unusual-but-correct feature.

    Every part draws from `rng` in this order (a change to it changes every story): the frame,
    the drugs, the stay, follow-ups, vitals, the narrative, the signature and disposition, the
    social and family history, then the service, chief complaint and signing time."""
    f = draw_frame(rng, patient, length, hard_negative)
    meds = draw_meds(rng, f)
    stay = draw_stay(rng, f, meds)
    short, ac, acute_key, b = f.short, f.ac, f.acute_key, f.bake
    admit, discharge, age = f.admit, f.discharge, f.age
    chronic_keys, held = meds.chronic_keys, meds.held

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
    text = draw_narrative(rng, f, patient, chronic_keys, meds.dc_meds)

    attending = _doctor(rng)
    signer = attending
    sign_date = discharge + timedelta(days=rng.choice((0, 0, 0, 1)))
    disposition = (
        "Extended Care"
        if acute_key == "hipfx"
        else rng.choice(("Home", "Home", "Home With Service"))
    )
    condition = condition_lines(acute_key)
    social, family = draw_history(rng, text.placeholder)

    story = Story(
        patient=patient,
        short=short,
        admit=admit,
        discharge=discharge,
        service=ac.service if rng.random() < 0.7 else "MEDICINE",
        attending=attending,
        signer=signer,
        acute=acute_key,
        side=f.side,
        hdr_first=patient.first,
        hdr_last=patient.last,
        hdr_sex=patient.sex,
        hdr_age=age,
        dob=patient.dob,
        mrn=patient.mrn,
        narr_name=text.narr_name,
        narr_sex=patient.sex,
        narr_age=age,
        foot_first=patient.first,
        foot_last=patient.last,
        foot_mrn=patient.mrn,
        cc=b(rng.choice(ac.cc)),
        hpi=text.hpi,
        pmh=[CHRONIC[k].name for k in chronic_keys],
        social=social,
        family=family,
        allergies=meds.allergies,
        vitals=vitals,
        exam_adm=text.exam_adm,
        exam_dc=text.exam_dc,
        labs=stay.labs,
        pending=stay.pending,
        studies=stay.studies,
        procedures=stay.procedures,
        pod_claims=stay.pod_claims,
        course=stay.course,
        adm_meds=meds.home,
        dc_meds=meds.dc_meds,
        held=held,
        stopped=meds.stopped,
        changed=meds.changed,
        dx=stay.dx,
        ruled_out=stay.ruled_out,
        condition=condition,
        disposition=disposition,
        instructions=text.instructions,
        followups=fu,
        sign_date=sign_date,
        sign_time=f"{rng.randint(10, 19)}:{rng.randint(0, 59):02d}",
        indications=meds.indications,
        inpatient=list(ac.inpatient),
    )
    hn_done = None if meds.missed or stay.missed else f.hn
    if hn_done:
        story.hard_negatives.append(hn_done)
    if held and hn_done != "held_resumed_with_reason" and any(v[1] for v in held.values()):
        story.hard_negatives.append("held_resumed_with_reason")
    return story
