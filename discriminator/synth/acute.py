"""Reasons for admission: the clinical scripts a patient story is built around.

Each script is a small bundle of consistent facts: presenting complaint, exam findings, the labs it
moves (and in which direction), studies, inpatient treatment, the new discharge drugs it
justifies, an optional procedure, alternatives that get ruled out, follow-up and instructions.

Text fields are templates. Story-time fields ({side}, {Side}, {days}) are filled when the story
is built; render-time fields ({pt}, {age}, {man}, {he}, {his}, {him}, {He}, {His}) are filled by
the renderer, so identity errors can be injected in one place and re-rendered.

The scripts are in `acute_medicine` (the general medicine service) and `acute_specialty`
(cardiology, orthopaedics, surgery, urology); the `Acute` type is in `story`.
"""

from __future__ import annotations

from .acute_medicine import MEDICINE
from .acute_specialty import SPECIALTY
from .story import Acute

__all__ = ["ACUTES", "ORDER", "Acute"]

# The order stories draw scripts in (`rng.choice(list(ACUTES))`): changing it changes every story.
ORDER = (
    "cap",
    "chf",
    "nstemi",
    "hipfx",
    "cellulitis",
    "uti",
    "dka",
    "copd_ex",
    "gib",
    "aki",
    "afib_rvr",
    "dvt",
    "appy",
    "chole",
    "stone",
    "syncope",
)
_BY_KEY = {a.key: a for a in (*MEDICINE, *SPECIALTY)}
if set(_BY_KEY) != set(ORDER) or len(_BY_KEY) != len(MEDICINE) + len(SPECIALTY):
    raise RuntimeError("every admission script must appear once in acute.ORDER")
ACUTES: dict[str, Acute] = {k: _BY_KEY[k] for k in ORDER}
