"""The frame of a story, drawn first: its admission script and side, its dates, its complexity."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from .acute import ACUTES
from .story import Acute, Patient, age_on


@dataclass(frozen=True)
class Frame:
    """What every later part of a story is drawn against."""

    acute_key: str
    ac: Acute
    side: str  # "left"/"right" when the script is lateral, else ""
    days: int  # days of symptoms before admission
    short: bool
    hn: str | None  # the hard negative asked for
    admit: date
    discharge: date
    los: int
    cx: float  # complexity in [0, 1]
    age: int  # on admission

    def bake(self, text: str) -> str:
        """`text` with its story-time fields filled: fixed for the story, never the target of an
        injected error."""
        return (
            text.replace("{side}", self.side)
            .replace("{Side}", self.side.capitalize())
            .replace("{days}", str(self.days))
        )


def draw_frame(
    rng: random.Random, patient: Patient, length: str, hard_negative: str | None = None
) -> Frame:
    """The script (a same-day one for that hard negative), its side, the dates and complexity."""
    short = length == "short"
    hn = hard_negative
    same_day_keys = [k for k, a in ACUTES.items() if a.same_day_ok]
    acute_key = (
        rng.choice(same_day_keys) if hn == "same_day_discharge" else rng.choice(list(ACUTES))
    )
    ac: Acute = ACUTES[acute_key]
    side = rng.choice(("left", "right")) if ac.lateral else ""
    days = rng.randint(2, 6)

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
    return Frame(acute_key, ac, side, days, short, hn, admit, discharge, los, cx, age)
