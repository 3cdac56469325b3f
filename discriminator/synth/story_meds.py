"""The story's drugs: home list, new discharge drugs, held, stopped and changed ones, allergies."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .story import Med
from .story_frame import Frame
from .vocab import ALLERGIES, CHRONIC, CONTRAINDICATED, DRUGS, HOLD_REASONS, STOP_REASONS


@dataclass
class Meds:
    """The drugs of a story and the chronic conditions they treat."""

    chronic_keys: list[str]
    home: list[Med]  # on admission
    dc_meds: list[Med]  # on discharge
    held: dict[str, tuple[str, str]]  # drug -> (why held, why resumed or "" if still held)
    stopped: dict[str, str]  # drug -> why stopped
    changed: dict[str, str]  # drug -> why the dose changed
    allergies: list[str]
    indications: set[str]
    missed: bool  # the hard negative asked for found no drug to apply to


def draw_meds(rng: random.Random, f: Frame) -> Meds:
    """Chronic conditions and home drugs, the new drugs for the acute problem, the home drugs
    held, stopped or changed (with reasons), and allergies that conflict with none of them."""
    short, cx, hn, ac, acute_key = f.short, f.cx, f.hn, f.ac, f.acute_key
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
    missed = False
    if hn == "held_resumed_with_reason" or (hn is None and rng.random() < 0.12):
        cands = [m for m in dc_home if m.name in HOLD_REASONS]
        if cands:
            m = rng.choice(cands)
            held[m.name] = HOLD_REASONS[m.name]
        elif hn:
            missed = True
    if hn == "discontinued_absent" or (hn is None and rng.random() < 0.1):
        cands = [m for m in dc_home if m.name in STOP_REASONS and m.name not in held]
        if cands:
            m = rng.choice(cands)
            stopped[m.name] = STOP_REASONS[m.name]
            dc_home.remove(m)
        elif hn:
            missed = True
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
            missed = True
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
    return Meds(chronic_keys, home, dc_meds, held, stopped, changed, allergies, indications, missed)
