"""The story's narrative: HPI, exam, instructions, condition on discharge, social and family."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .story import Med, Patient
from .story_frame import Frame
from .vocab import CHRONIC


@dataclass
class Narrative:
    """The text around the facts."""

    placeholder: bool  # a note heavy with de-identification placeholders
    narr_name: str  # "Ms. Smith" or "Ms. ___"
    hpi: list[str]
    exam_adm: list[tuple[str, str]]
    exam_dc: list[tuple[str, str]]
    instructions: list[str]


def draw_narrative(
    rng: random.Random, f: Frame, patient: Patient, chronic_keys: list[str], dc_meds: list[Med]
) -> Narrative:
    """The HPI (opening line, the script's symptoms, more for complex stays), the admission and
    discharge exam, and the discharge instructions."""
    short, cx, hn, ac, acute_key, b = f.short, f.cx, f.hn, f.ac, f.acute_key, f.bake
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
    return Narrative(placeholder, narr_name, hpi, exam_adm, exam_dc, instructions)


def condition_lines(acute_key: str) -> list[str]:
    """Mental status, consciousness and activity on discharge (a walker after a hip fracture)."""
    return [
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


def draw_history(rng: random.Random, placeholder: bool) -> tuple[str, str]:
    """(social history, family history)."""
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
    return social, family
