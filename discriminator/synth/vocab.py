"""Clinical vocabulary for synthetic discharge notes: names, drugs, labs, conditions, allergies.

Everything here is data. The drug table carries what the error injectors and the consistency
checker need (allergy class, plausible doses, hard maximum, indications), so the two can never
disagree about what counts as "justified" or "out of range".
"""

from __future__ import annotations

from dataclasses import dataclass


def _names(text: str) -> list[str]:
    return text.split()


FIRST_F = _names(
    "Mary Patricia Linda Barbara Elizabeth Jennifer Maria Susan Margaret Dorothy Lisa Nancy Karen "
    "Betty Helen Sandra Donna Carol Ruth Sharon Michelle Laura Sarah Kimberly Deborah Jessica "
    "Shirley Cynthia Angela Melissa Brenda Amy Anna Rebecca Virginia Kathleen Pamela Martha Debra "
    "Amanda Stephanie Carolyn Christine Marie Janet Catherine Frances Ann Joyce Diane Alice Julie "
    "Rosa Yolanda Mei Aisha Priya Fatima Lucia Ngoc"
)
FIRST_M = _names(
    "James John Robert Michael William David Richard Charles Joseph Thomas Christopher Daniel "
    "Paul Mark Donald George Kenneth Steven Edward Brian Ronald Anthony Kevin Jason Matthew Gary "
    "Timothy Jose Larry Jeffrey Frank Scott Eric Stephen Andrew Raymond Gregory Joshua Jerry "
    "Dennis Walter Patrick Peter Harold Douglas Henry Carl Arthur Ryan Roger Luis Carlos Wei "
    "Ahmed Rajesh Tuan Omar Samuel"
)
LAST = _names(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips "
    "Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers "
    "Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson "
    "Watson Brooks Chavez Wood Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders "
    "Patel Myers Long Ross Foster Kowalski Okafor Schmidt Novak Chen Haddad Yamamoto"
)
DOCTORS = _names(
    "Abrams Bhatt Chu Delgado Eriksen Feldman Goldberg Hashemi Iyer Jablonski Kaplan Lindqvist "
    "Mahoney Nakamura Oyelaran Petrov Quinn Rosenthal Sato Tremblay Underwood Varga Weiss "
    "Xu Yilmaz Zimmerman Acosta Brennan Castellano Dubois Fischer Gallagher"
)
DOCTOR_FIRST = _names("A. B. C. D. E. J. K. L. M. N. R. S. T.")

MONTHS = _names("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec")


@dataclass(frozen=True)
class Drug:
    name: str  # as written on a med list
    cls: str  # pharmacologic class, used for allergies and duplicate checks
    doses: tuple[str, ...]  # usual single doses
    unit: str
    route: str
    freqs: tuple[str, ...]
    max_dose: float | None  # largest plausible single dose; None: not numeric (combination)
    inds: frozenset[str]  # condition keys that justify it


def _d(name, cls, doses, unit, route, freqs, max_dose, inds) -> Drug:
    return Drug(
        name,
        cls,
        tuple(doses.split()),
        unit,
        route,
        tuple(freqs.split("|")),
        max_dose,
        frozenset(inds.split()),
    )


DRUGS: dict[str, Drug] = {
    d.name: d
    for d in (
        _d("lisinopril", "ace", "5 10 20 40", "mg", "PO", "daily", 80, "htn chf ckd cad"),
        _d("losartan", "arb", "25 50 100", "mg", "PO", "daily", 100, "htn chf ckd"),
        _d("amlodipine", "ccb", "2.5 5 10", "mg", "PO", "daily", 10, "htn cad"),
        _d("hydrochlorothiazide", "thiazide", "12.5 25", "mg", "PO", "daily", 50, "htn"),
        _d(
            "metoprolol succinate",
            "beta",
            "25 50 100",
            "mg",
            "PO",
            "daily",
            400,
            "htn chf cad afib nstemi afib_rvr",
        ),
        _d(
            "metoprolol tartrate",
            "beta",
            "12.5 25 50",
            "mg",
            "PO",
            "BID",
            200,
            "htn cad afib nstemi afib_rvr",
        ),
        _d("carvedilol", "beta", "3.125 6.25 12.5 25", "mg", "PO", "BID", 50, "chf htn"),
        _d("furosemide", "loop", "20 40 80", "mg", "PO", "daily|BID", 600, "chf ckd"),
        _d("torsemide", "loop", "10 20 40", "mg", "PO", "daily", 200, "chf"),
        _d("spironolactone", "mra", "12.5 25", "mg", "PO", "daily", 100, "chf"),
        _d("atorvastatin", "statin", "10 20 40 80", "mg", "PO", "daily|QHS", 80, "hld cad nstemi"),
        _d("rosuvastatin", "statin", "5 10 20", "mg", "PO", "daily", 40, "hld cad"),
        _d("simvastatin", "statin", "20 40", "mg", "PO", "QHS", 80, "hld"),
        _d("aspirin", "aspirin", "81", "mg", "PO", "daily", 650, "cad nstemi"),
        _d("clopidogrel", "p2y12", "75", "mg", "PO", "daily", 300, "nstemi cad"),
        _d("ticagrelor", "p2y12", "90", "mg", "PO", "BID", 180, "nstemi"),
        _d("apixaban", "doac", "2.5 5", "mg", "PO", "BID", 10, "afib afib_rvr dvt"),
        _d("rivaroxaban", "doac", "15 20", "mg", "PO", "daily", 20, "afib afib_rvr dvt"),
        _d("diltiazem ER", "ccb", "120 180 240", "mg", "PO", "daily", 480, "afib afib_rvr htn"),
        _d("metformin", "biguanide", "500 1000", "mg", "PO", "BID", 1000, "dm2"),
        _d("glipizide", "sulfonylurea", "5 10", "mg", "PO", "daily", 20, "dm2"),
        _d("insulin glargine", "insulin", "10 14 18 22 28", "units", "SC", "QHS", 100, "dm2 dka"),
        _d("insulin lispro", "insulin", "4 6 8", "units", "SC", "TID with meals", 30, "dm2 dka"),
        _d(
            "levothyroxine", "thyroid", "50 75 88 100 112", "mcg", "PO", "daily", 300, "hypothyroid"
        ),
        _d("omeprazole", "ppi", "20 40", "mg", "PO", "daily", 40, "gerd"),
        _d("pantoprazole", "ppi", "40", "mg", "PO", "daily|BID", 80, "gerd gib"),
        _d("sertraline", "ssri", "50 100", "mg", "PO", "daily", 200, "depression anxiety"),
        _d("citalopram", "ssri", "10 20", "mg", "PO", "daily", 40, "depression anxiety"),
        _d(
            "albuterol inhaler",
            "saba",
            "2",
            "puffs",
            "INH",
            "Q4H PRN wheezing",
            4,
            "copd asthma copd_ex",
        ),
        _d("tiotropium", "lama", "18", "mcg", "INH", "daily", 18, "copd copd_ex"),
        _d(
            "fluticasone-salmeterol",
            "ics",
            "250/50",
            "mcg",
            "INH",
            "BID",
            None,
            "copd asthma copd_ex",
        ),
        _d("prednisone", "steroid", "40", "mg", "PO", "daily", 80, "copd_ex asthma"),
        _d("azithromycin", "macrolide", "250 500", "mg", "PO", "daily", 500, "cap copd_ex"),
        _d("doxycycline", "tetracycline", "100", "mg", "PO", "BID", 200, "cap cellulitis copd_ex"),
        _d(
            "amoxicillin-clavulanate", "penicillin", "875", "mg", "PO", "BID", 875, "cap cellulitis"
        ),
        _d("cefpodoxime", "cephalosporin", "200", "mg", "PO", "BID", 400, "cap uti"),
        _d("cephalexin", "cephalosporin", "500", "mg", "PO", "QID", 1000, "cellulitis uti"),
        _d("ciprofloxacin", "fluoroquinolone", "500", "mg", "PO", "BID", 750, "uti"),
        _d("nitrofurantoin", "nitrofuran", "100", "mg", "PO", "BID", 100, "uti"),
        _d(
            "sulfamethoxazole-trimethoprim",
            "sulfa",
            "800-160",
            "mg",
            "PO",
            "BID",
            None,
            "uti cellulitis",
        ),
        _d("oxycodone", "opioid", "5", "mg", "PO", "Q6H PRN pain", 15, "hipfx chole appy stone"),
        _d(
            "acetaminophen",
            "analgesic",
            "650 1000",
            "mg",
            "PO",
            "Q8H PRN pain",
            1000,
            "oa hipfx chole appy stone cellulitis",
        ),
        _d("enoxaparin", "heparin", "40", "mg", "SC", "daily", 150, "hipfx"),
        _d("tamsulosin", "alpha", "0.4", "mg", "PO", "daily", 0.8, "bph stone"),
        _d("allopurinol", "xo", "100 300", "mg", "PO", "daily", 800, "gout"),
        _d("docusate", "laxative", "100", "mg", "PO", "BID", 250, "hipfx chole appy stone"),
        _d(
            "senna",
            "laxative",
            "8.6",
            "mg",
            "PO",
            "BID PRN constipation",
            34.4,
            "hipfx chole appy stone",
        ),
        _d("ondansetron", "antiemetic", "4", "mg", "PO", "Q8H PRN nausea", 8, "chole appy"),
        _d("ibuprofen", "nsaid", "400 600", "mg", "PO", "Q6H PRN pain", 800, "oa"),
        _d("naproxen", "nsaid", "500", "mg", "PO", "BID", 500, "oa gout"),
        _d("nicotine patch", "nicotine", "21", "mg/24hr", "TD", "daily", 21, "tobacco"),
        _d("potassium chloride", "electrolyte", "20", "mEq", "PO", "daily", 40, "hypokalemia"),
        # Home drugs of a chronic condition, and unjustified / wrong / contraindicated additions.
        _d("warfarin", "vka", "2 5", "mg", "PO", "daily", 15, "afib dvt"),
        _d("amiodarone", "antiarrhythmic", "200", "mg", "PO", "daily", 400, "afib_rvr afib"),
        _d("digoxin", "glycoside", "0.125", "mg", "PO", "daily", 0.25, "chf afib"),
        _d("levetiracetam", "aed", "500", "mg", "PO", "BID", 1500, "seizure"),
        _d("donepezil", "ache", "5 10", "mg", "PO", "QHS", 23, "dementia"),
        _d("methimazole", "antithyroid", "10", "mg", "PO", "daily", 40, "hyperthyroid"),
        _d("midodrine", "alpha_agonist", "5", "mg", "PO", "TID", 15, "orthostasis"),
        _d("propranolol", "beta_ns", "20", "mg", "PO", "BID", 80, "htn"),
        _d("gabapentin", "gabapentinoid", "300", "mg", "PO", "TID", 1200, "neuropathy"),
    )
}

# Drugs added as the unjustified new drug. Each is also a home drug of a chronic condition
# (`CHRONIC`), so good notes name them too: a drug name that only error notes carry would be a
# word-level cue (a bag-of-words floor found this kind at AUROC 0.64 when they were error-only).
UNJUSTIFIED_POOL = (
    "warfarin",
    "amiodarone",
    "digoxin",
    "levetiracetam",
    "donepezil",
    "gabapentin",
    "allopurinol",
    "prednisone",
    "insulin glargine",
    "tamsulosin",
)
# Indication -> drugs that are plainly wrong for it when written "for <indication>".
WRONG_FOR: dict[str, tuple[str, ...]] = {
    "cap": ("nitrofurantoin",),
    "uti": ("azithromycin",),
    "cellulitis": ("nitrofurantoin",),
    "dvt": ("clopidogrel", "aspirin"),
    "hypothyroid": ("methimazole",),
    "htn": ("midodrine",),
    "afib": ("clopidogrel",),
    "afib_rvr": ("midodrine",),
    "gerd": ("naproxen",),
    "dm2": ("prednisone",),
    "copd": ("propranolol",),
}
# Condition -> drugs contraindicated by it (with the short clinical reason for the reason text).
CONTRAINDICATED: dict[str, tuple[tuple[str, str], ...]] = {
    "gib": (("ibuprofen", "an active upper GI bleed"), ("naproxen", "an active upper GI bleed")),
    "aki": (("ibuprofen", "acute kidney injury"), ("naproxen", "acute kidney injury")),
    "asthma": (("propranolol", "asthma (non-selective beta-blocker)"),),
    "copd_ex": (("propranolol", "a COPD exacerbation (non-selective beta-blocker)"),),
    "dka": (("glipizide", "diabetic ketoacidosis"),),
    "chf": (("diltiazem ER", "heart failure with reduced ejection fraction"),),
}

# (display, drugs it conflicts with). Entries with no drugs are harmless in every story.
ALLERGIES: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (a, frozenset(b.split()))
    for a, b in (
        ("Penicillins", "amoxicillin-clavulanate piperacillin-tazobactam ampicillin-sulbactam"),
        ("Sulfa (Sulfonamide Antibiotics)", "sulfamethoxazole-trimethoprim"),
        ("Cephalosporins", "cephalexin cefpodoxime ceftriaxone cefazolin"),
        ("NSAIDs", "ibuprofen naproxen ketorolac"),
        ("Aspirin", "aspirin"),
        ("Lisinopril (angioedema)", "lisinopril"),
        ("Ciprofloxacin", "ciprofloxacin"),
        ("Atorvastatin (myalgias)", "atorvastatin"),
        ("Doxycycline", "doxycycline"),
        ("Azithromycin", "azithromycin"),
        ("Heparin (HIT)", "heparin enoxaparin"),
        ("Metformin (GI upset)", "metformin"),
        ("Vancomycin (red man syndrome)", "vancomycin"),
        ("Codeine", ""),
        ("Morphine (pruritus)", ""),
        ("Iodinated Contrast Media", ""),
        ("Latex", ""),
        ("Shellfish", ""),
        ("Adhesive Tape", ""),
        ("Metoclopramide", ""),
        ("Bee stings", ""),
        ("Seasonal allergies", ""),
    )
)
ALLERGY_CONFLICTS = dict(ALLERGIES)


# Laboratory tests: display, unit, reference range, decimals, low range, high range, words.
@dataclass(frozen=True)
class LabDef:
    name: str
    unit: str
    lo: float
    hi: float
    dp: int
    low: tuple[float, float]
    high: tuple[float, float]
    low_word: str
    high_word: str


LABS: dict[str, LabDef] = {
    "wbc": LabDef(
        "WBC", "K/uL", 4.0, 11.0, 1, (1.4, 3.2), (12.5, 24.0), "leukopenia", "leukocytosis"
    ),
    "hgb": LabDef("Hgb", "g/dL", 12.0, 16.0, 1, (6.1, 9.6), (17.2, 19.4), "anemia", "polycythemia"),
    "plt": LabDef(
        "Plt", "K/uL", 150, 400, 0, (38, 110), (460, 720), "thrombocytopenia", "thrombocytosis"
    ),
    "na": LabDef(
        "Na", "mEq/L", 135, 145, 0, (118, 131), (148, 158), "hyponatremia", "hypernatremia"
    ),
    "k": LabDef("K", "mEq/L", 3.5, 5.1, 1, (2.5, 3.2), (5.6, 6.9), "hypokalemia", "hyperkalemia"),
    "cl": LabDef(
        "Cl", "mEq/L", 98, 107, 0, (86, 95), (110, 118), "hypochloremia", "hyperchloremia"
    ),
    "hco3": LabDef(
        "HCO3", "mEq/L", 22, 29, 0, (7, 17), (32, 38), "low bicarbonate", "metabolic alkalosis"
    ),
    "bun": LabDef("BUN", "mg/dL", 7, 20, 0, (2, 5), (28, 84), "low BUN", "elevated BUN"),
    "cr": LabDef(
        "Creat",
        "mg/dL",
        0.6,
        1.2,
        1,
        (0.2, 0.4),
        (1.7, 4.6),
        "low creatinine",
        "acute kidney injury",
    ),
    "glu": LabDef(
        "Glucose", "mg/dL", 70, 110, 0, (38, 58), (260, 640), "hypoglycemia", "hyperglycemia"
    ),
    "trop": LabDef(
        "Troponin T", "ng/mL", 0.0, 0.01, 2, (0.0, 0.0), (0.09, 2.4), "", "troponin elevation"
    ),
    "bnp": LabDef("NT-proBNP", "pg/mL", 0, 300, 0, (0, 0), (1800, 14000), "", "elevated BNP"),
    "lactate": LabDef(
        "Lactate", "mmol/L", 0.5, 2.0, 1, (0.1, 0.3), (2.6, 5.8), "", "elevated lactate"
    ),
    "inr": LabDef("INR", "", 0.9, 1.1, 1, (0.5, 0.7), (1.6, 3.4), "", "elevated INR"),
    "alt": LabDef("ALT", "IU/L", 7, 56, 0, (1, 4), (96, 420), "", "transaminitis"),
    "tbili": LabDef(
        "TBili", "mg/dL", 0.2, 1.2, 1, (0.0, 0.1), (2.1, 5.2), "", "hyperbilirubinemia"
    ),
    "lipase": LabDef("Lipase", "IU/L", 13, 60, 0, (1, 8), (240, 2100), "", "elevated lipase"),
    "tsh": LabDef(
        "TSH", "uIU/mL", 0.4, 4.5, 2, (0.01, 0.2), (6.1, 18.0), "low TSH", "elevated TSH"
    ),
    "a1c": LabDef("HbA1c", "%", 4.0, 5.6, 1, (3.0, 3.6), (7.4, 12.8), "", "poor glycemic control"),
    "ddimer": LabDef("D-dimer", "ng/mL", 0, 500, 0, (0, 0), (780, 4200), "", "elevated D-dimer"),
}
BASIC_PANEL = ("wbc", "hgb", "plt", "na", "k", "cl", "hco3", "bun", "cr", "glu")


@dataclass(frozen=True)
class Chronic:
    key: str
    name: str
    abbr: str
    meds: tuple[tuple[str, ...], ...]  # alternatives, each a group of drugs taken together
    course: tuple[str, ...]  # "{meds}" = the continued home meds of this condition


def _c(key, name, abbr, meds, *course) -> Chronic:
    return Chronic(key, name, abbr, tuple(tuple(g.split(",")) for g in meds.split("|")), course)


CHRONIC: dict[str, Chronic] = {
    c.key: c
    for c in (
        _c(
            "htn",
            "Hypertension",
            "HTN",
            "lisinopril|amlodipine|losartan|lisinopril,amlodipine|hydrochlorothiazide,losartan",
            "Blood pressure was well controlled; continued home {meds}.",
            "Normotensive to mildly hypertensive during the stay on home {meds}.",
        ),
        _c(
            "dm2",
            "Type 2 diabetes mellitus",
            "T2DM",
            "metformin|metformin,glipizide|insulin glargine",
            "Home oral agents were held and {he} was covered with an insulin sliding scale; "
            "home {meds} resumed at discharge as {he} was eating well.",
            "Glucose 120s-180s on sliding scale; discharged on home {meds}.",
        ),
        _c(
            "hld",
            "Hyperlipidemia",
            "HLD",
            "atorvastatin|rosuvastatin|simvastatin",
            "Continued home {meds}.",
            "Stable; home {meds} continued.",
        ),
        _c(
            "cad",
            "Coronary artery disease",
            "CAD",
            "aspirin,metoprolol tartrate|aspirin",
            "No chest pain during the stay; continued {meds}.",
            "Stable without anginal symptoms; continued home {meds}.",
        ),
        _c(
            "afib",
            "Paroxysmal atrial fibrillation",
            "pAF",
            "apixaban,metoprolol succinate|rivaroxaban,diltiazem ER|warfarin,metoprolol succinate|"
            "apixaban,amiodarone|warfarin,digoxin",
            "Rate controlled in sinus rhythm; anticoagulation and rate "
            "control with home {meds} continued.",
            "Remained in sinus rhythm on telemetry; continued home {meds}.",
        ),
        _c(
            "hypothyroid",
            "Hypothyroidism",
            "hypothyroidism",
            "levothyroxine",
            "Continued home {meds}.",
            "Clinically euthyroid; continued {meds}.",
        ),
        _c(
            "gerd",
            "Gastroesophageal reflux disease",
            "GERD",
            "omeprazole|pantoprazole",
            "Continued home {meds}.",
            "Asymptomatic; continued {meds}.",
        ),
        _c(
            "depression",
            "Depression",
            "depression",
            "sertraline|citalopram",
            "Mood stable; continued home {meds}.",
            "Continued home {meds}; no safety concerns.",
        ),
        _c(
            "copd",
            "Chronic obstructive pulmonary disease",
            "COPD",
            "tiotropium,albuterol inhaler|fluticasone-salmeterol,albuterol inhaler",
            "At baseline on room air; continued home inhalers ({meds}).",
            "No exacerbation; continued {meds}.",
        ),
        _c(
            "oa",
            "Osteoarthritis of the knees",
            "OA",
            "acetaminophen",
            "Pain controlled with {meds}.",
            "Continued {meds} as needed for joint pain.",
        ),
        _c(
            "bph",
            "Benign prostatic hyperplasia",
            "BPH",
            "tamsulosin",
            "Voiding without difficulty; continued {meds}.",
            "Continued home {meds}.",
        ),
        _c(
            "gout",
            "Gout",
            "gout",
            "allopurinol",
            "No flare during admission; continued {meds}.",
            "Continued home {meds}.",
        ),
        _c(
            "ckd",
            "Chronic kidney disease stage 3a",
            "CKD 3a",
            "",
            "Creatinine at baseline by discharge; renally dosed medications.",
            "Creatinine stable at baseline; avoided nephrotoxins.",
        ),
        _c(
            "obesity",
            "Obesity",
            "obesity",
            "",
            "Counseled on diet and exercise.",
        ),
        _c(
            "tobacco",
            "Tobacco use disorder",
            "tobacco use",
            "nicotine patch",
            "Counseled on cessation for more than 3 minutes; {meds} started per patient preference.",
            "Smoking cessation counseling provided; discharged on {meds}.",
        ),
        _c(
            "seizure",
            "Seizure disorder",
            "seizure disorder",
            "levetiracetam",
            "No seizure activity during the stay; continued home {meds}.",
            "Seizure-free; continued {meds}.",
        ),
        _c(
            "dementia",
            "Alzheimer dementia",
            "dementia",
            "donepezil",
            "At cognitive baseline per family; continued home {meds}.",
            "No delirium; continued {meds}.",
        ),
        _c(
            "neuropathy",
            "Peripheral neuropathy",
            "neuropathy",
            "gabapentin",
            "Neuropathic pain controlled on home {meds}.",
            "Continued home {meds}.",
        ),
    )
}

# What drugs are held on admission (and why), and how a good note explains resuming them.
HOLD_REASONS: dict[str, tuple[str, str]] = {
    "lisinopril": ("acute kidney injury", "creatinine returned to baseline"),
    "losartan": ("acute kidney injury", "creatinine returned to baseline"),
    "metformin": ("IV contrast and acute illness", "renal function remained normal"),
    "amlodipine": ("soft blood pressures", "blood pressure recovered to the 140s"),
    "hydrochlorothiazide": ("hyponatremia", "sodium normalized to 138"),
    "apixaban": ("the planned procedure", "hemostasis was confirmed"),
    "rivaroxaban": ("the planned procedure", "hemostasis was confirmed"),
    "glipizide": ("poor oral intake", "oral intake returned to baseline"),
    "metoprolol succinate": ("soft blood pressures", "blood pressure and heart rate recovered"),
    "metoprolol tartrate": ("soft blood pressures", "blood pressure and heart rate recovered"),
}
# Why a home drug would be permanently stopped.
STOP_REASONS: dict[str, str] = {
    "hydrochlorothiazide": "recurrent hyponatremia",
    "glipizide": "hypoglycemia to the 50s",
    "amlodipine": "lower extremity edema",
    "simvastatin": "a drug interaction with the new regimen",
    "citalopram": "QTc prolongation to 510 ms",
    "metformin": "a reduced eGFR",
    "aspirin": "no clear indication for primary prevention and bleeding risk",
    "omeprazole": "no ongoing indication",
    "allopurinol": "a rash",
}

CONDITION_NAMES: dict[str, str] = {k: c.name for k, c in CHRONIC.items()}
CONDITION_NAMES.update({"pain": "pain", "hypokalemia": "hypokalemia"})

SERVICES = (
    "MEDICINE",
    "MEDICINE",
    "MEDICINE",
    "CARDIOLOGY",
    "ORTHOPAEDICS",
    "SURGERY",
    "UROLOGY",
    "HOSPITALIST",
)

PROCEDURE_POOL = (
    "Diagnostic paracentesis",
    "Lumbar puncture",
    "Bronchoscopy with bronchoalveolar lavage",
    "Bone marrow biopsy",
    "Thoracentesis",
    "Colonoscopy",
    "Transesophageal echocardiogram",
    "Tunneled dialysis catheter placement",
)
