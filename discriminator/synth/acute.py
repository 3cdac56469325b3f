"""Reasons for admission: the clinical scripts a patient story is built around.

Each script is a small bundle of consistent facts: presenting complaint, exam findings, the labs it
moves (and in which direction), studies, inpatient treatment, the new discharge drugs it
justifies, an optional procedure, alternatives that get ruled out, follow-up and instructions.

Text fields are templates. Story-time fields ({side}, {Side}, {days}) are filled when the story
is built; render-time fields ({pt}, {age}, {man}, {he}, {his}, {him}, {He}, {His}) are filled by
the renderer, so identity errors can be injected in one place and re-rendered.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Acute:
    key: str
    dx: str
    lateral: bool
    service: str
    cc: tuple[str, ...]
    hpi: tuple[str, ...]  # symptom sentences, in order
    ed: str  # emergency-department sentence
    exam: tuple[tuple[str, str], ...]  # (system, finding)
    labs: tuple[tuple[str, str], ...]  # (lab key, "H"/"L") on admission
    studies: tuple[str, ...]  # imaging / tests, first one always rendered
    inpatient: tuple[str, ...]  # drugs given in hospital (allergy checks include them)
    course: tuple[str, ...]  # course sentences, the first ones matter most
    dc_meds: tuple[tuple[str, ...], ...]  # alternatives: groups of new discharge drugs
    procedure: str | None  # name template ({side})
    proc_day: int  # hospital day of the procedure (0 = admission day)
    ruled_out: tuple[tuple[str, str], ...]  # (diagnosis, how it was excluded)
    revised_from: tuple[str, str] | None  # (initial diagnosis, why it was revised)
    specialty: str
    los: tuple[int, int]
    why: str  # lay explanation for the instructions
    same_day_ok: bool = False


def _a(**kw) -> Acute:
    return Acute(**kw)


ACUTES: dict[str, Acute] = {
    a.key: a
    for a in (
        _a(
            key="cap",
            dx="Community-acquired pneumonia, {side} lower lobe",
            lateral=True,
            service="MEDICINE",
            cc=("Cough, fever", "Shortness of breath", "Fever and productive cough"),
            hpi=(
                "{He} reports {days} days of productive cough with yellow sputum, subjective fevers "
                "and chills, and progressive dyspnea on exertion.",
                "{He} also notes {side}-sided pleuritic chest pain and decreased appetite.",
                "Denies hemoptysis, sick contacts or recent travel.",
            ),
            ed="In the ED, T 101.8, HR 108, BP 128/72, RR 24, SpO2 89% on RA improving to 95% on "
            "2L NC. {He} received ceftriaxone, azithromycin and 1L of lactated Ringer's.",
            exam=(("Lungs", "crackles at the {side} base with egophony"),),
            labs=(("wbc", "H"), ("lactate", "H")),
            studies=(
                "CXR: {Side} lower lobe consolidation without effusion.",
                "Blood cultures x2: no growth to date. Urine Legionella and pneumococcal "
                "antigens negative.",
            ),
            inpatient=("ceftriaxone", "azithromycin"),
            course=(
                "Presented with fever, leukocytosis and {side} lower lobe consolidation "
                "consistent with community-acquired pneumonia.",
                "Treated with ceftriaxone and azithromycin with defervescence by hospital day 2.",
                "Oxygen was weaned to room air and {he} ambulated with SpO2 above 93%.",
                "Transitioned to oral antibiotics to complete a 5-day course.",
            ),
            dc_meds=(("cefpodoxime",), ("amoxicillin-clavulanate",), ("doxycycline",)),
            procedure=None,
            proc_day=0,
            ruled_out=(
                ("Pulmonary embolism", "CTA chest was negative for pulmonary embolism."),
                ("Influenza", "Influenza and COVID-19 PCR were negative."),
            ),
            revised_from=None,
            specialty="Primary Care",
            los=(2, 5),
            why="you had a pneumonia (an infection of the lung)",
        ),
        _a(
            key="chf",
            dx="Acute on chronic systolic heart failure exacerbation",
            lateral=False,
            service="CARDIOLOGY",
            cc=("Dyspnea, leg swelling", "Shortness of breath", "Orthopnea"),
            hpi=(
                "{He} reports {days} days of worsening dyspnea on exertion, three-pillow orthopnea "
                "and bilateral leg swelling with a 4 kg weight gain.",
                "{He} admits to dietary indiscretion with salty foods over a recent holiday.",
                "Denies chest pain, palpitations or syncope.",
            ),
            ed="In the ED, BP 158/90, HR 96, SpO2 91% on RA. {He} received furosemide 40 mg IV "
            "with brisk urine output.",
            exam=(
                ("Neck", "JVP elevated to 12 cm"),
                ("Lungs", "bibasilar crackles"),
                ("Extremities", "2+ pitting edema to the knees bilaterally"),
            ),
            labs=(("bnp", "H"), ("na", "L")),
            studies=(
                "CXR: pulmonary vascular congestion with small bilateral effusions.",
                "TTE: LVEF 30% with global hypokinesis, unchanged from prior.",
            ),
            inpatient=("furosemide",),
            course=(
                "Presented with volume overload and elevated NT-proBNP consistent with acute on "
                "chronic systolic heart failure, likely triggered by dietary sodium.",
                "Diuresed with IV furosemide with net negative 5 L; weight decreased from 92 kg "
                "to 87 kg (dry weight).",
                "Transitioned to oral diuretic on hospital day 3 with stable creatinine.",
                "Guideline-directed therapy was optimized.",
            ),
            dc_meds=(
                ("furosemide", "spironolactone"),
                ("torsemide",),
                ("furosemide", "carvedilol"),
            ),
            procedure=None,
            proc_day=0,
            ruled_out=(
                (
                    "Acute coronary syndrome",
                    "Troponins were negative x2 and the ECG was "
                    "unchanged from prior, ruling out acute coronary syndrome.",
                ),
            ),
            revised_from=(
                "Community-acquired pneumonia",
                "Initially treated empirically for "
                "pneumonia; antibiotics were stopped once the CXR opacities were attributed "
                "to pulmonary edema, BNP returned elevated and the patient improved with "
                "diuresis alone.",
            ),
            specialty="Cardiology",
            los=(3, 7),
            why="fluid built up in your lungs and legs because your heart is not pumping strongly",
        ),
        _a(
            key="nstemi",
            dx="Non-ST elevation myocardial infarction",
            lateral=False,
            service="CARDIOLOGY",
            cc=("Chest pain",),
            hpi=(
                "{He} developed substernal chest pressure radiating to the left arm while walking "
                "{days} hours prior to presentation, associated with diaphoresis and nausea.",
                "The pain improved partially with rest but recurred at rest.",
                "{He} has a family history of premature coronary disease.",
            ),
            ed="In the ED, ECG showed 1 mm ST depressions in V4-V6. {He} received aspirin 324 mg, "
            "a heparin drip and sublingual nitroglycerin with resolution of pain.",
            exam=(("CV", "regular rate and rhythm, no murmurs"),),
            labs=(("trop", "H"),),
            studies=(
                "ECG: sinus rhythm, 1 mm ST depressions V4-V6.",
                "TTE: LVEF 50% with mild anterior hypokinesis.",
            ),
            inpatient=("heparin", "aspirin"),
            course=(
                "Presented with typical chest pain, ST depressions and rising troponin "
                "consistent with NSTEMI.",
                "Treated with aspirin, heparin drip and high-intensity statin.",
                "Underwent {proc:0} on {procdate:0} via right radial access without complication.",
                "Chest pain free after revascularization; started dual antiplatelet therapy.",
            ),
            dc_meds=(
                ("aspirin", "ticagrelor", "atorvastatin", "metoprolol succinate"),
                ("aspirin", "clopidogrel", "atorvastatin", "metoprolol tartrate"),
            ),
            procedure="Cardiac catheterization with drug-eluting stent to the proximal LAD",
            proc_day=1,
            ruled_out=(("Aortic dissection", "CTA chest showed no aortic dissection."),),
            revised_from=None,
            specialty="Cardiology",
            los=(2, 4),
            why="you had a heart attack caused by a blocked artery, which was opened with a stent",
        ),
        _a(
            key="hipfx",
            dx="{Side} femoral neck fracture",
            lateral=True,
            service="ORTHOPAEDICS",
            cc=("{Side} hip pain after fall", "Fall"),
            hpi=(
                "{He} sustained a mechanical fall at home {days} hours prior to presentation, "
                "tripping over a rug and landing on {his} {side} side.",
                "{He} was unable to bear weight afterwards. Denies head strike, loss of "
                "consciousness, chest pain or lightheadedness before the fall.",
            ),
            ed="In the ED, the {side} leg was shortened and externally rotated. Orthopaedics was "
            "consulted.",
            exam=(
                (
                    "Extremities",
                    "{side} lower extremity shortened and externally rotated, "
                    "neurovascularly intact distally",
                ),
            ),
            labs=(("hgb", "L"),),
            studies=(
                "X-ray {side} hip: displaced {side} femoral neck fracture.",
                "CT head: no acute intracranial process.",
            ),
            inpatient=("cefazolin", "enoxaparin"),
            course=(
                "Admitted with a displaced {side} femoral neck fracture after a mechanical fall.",
                "Underwent {proc:0} on {procdate:0} under spinal anesthesia without complication.",
                "{pod:0} {he} ambulated 50 feet with physical therapy using a rolling walker.",
                "Postoperative anemia was stable without transfusion.",
                "Pain controlled on oral regimen; DVT prophylaxis with enoxaparin for 4 weeks.",
            ),
            dc_meds=(
                ("oxycodone", "acetaminophen", "enoxaparin", "docusate"),
                ("oxycodone", "enoxaparin", "senna"),
            ),
            procedure="{Side} hip hemiarthroplasty",
            proc_day=1,
            ruled_out=(
                (
                    "Syncope",
                    "The fall was mechanical; telemetry and orthostatic vitals were "
                    "unremarkable, so syncope was felt unlikely.",
                ),
            ),
            revised_from=None,
            specialty="Orthopaedics",
            los=(3, 6),
            why="you broke your hip in a fall and had surgery to repair it",
        ),
        _a(
            key="cellulitis",
            dx="Cellulitis of the {side} lower extremity",
            lateral=True,
            service="MEDICINE",
            cc=("{Side} leg redness and swelling",),
            hpi=(
                "{He} noticed redness over the {side} shin {days} days ago that spread despite "
                "warm compresses, with fevers and pain with walking.",
                "{He} recalls a small abrasion from gardening the week before.",
            ),
            ed="In the ED, T 100.9, HR 102. The erythema was demarcated and {he} received "
            "vancomycin.",
            exam=(
                (
                    "Skin",
                    "warm, tender erythema of the {side} anterior shin, 12 x 8 cm, no fluctuance",
                ),
            ),
            labs=(("wbc", "H"),),
            studies=(
                "{Side} lower extremity venous duplex: no deep vein thrombosis.",
                "X-ray {side} tibia/fibula: soft tissue swelling, no gas or osteomyelitis.",
            ),
            inpatient=("vancomycin", "cefazolin"),
            course=(
                "Presented with non-purulent cellulitis of the {side} lower extremity.",
                "Treated with IV cefazolin with receding erythema within the marked borders.",
                "Transitioned to oral antibiotics to complete a 7-day course.",
            ),
            dc_meds=(("cephalexin",), ("cephalexin", "acetaminophen")),
            procedure=None,
            proc_day=0,
            ruled_out=(
                ("Deep vein thrombosis", "Venous duplex of the {side} leg was negative for DVT."),
            ),
            revised_from=None,
            specialty="Primary Care",
            los=(2, 4),
            why="you had a skin infection of your leg (cellulitis)",
        ),
        _a(
            key="uti",
            dx="Acute pyelonephritis",
            lateral=False,
            service="MEDICINE",
            cc=("Fever, dysuria", "Flank pain"),
            hpi=(
                "{He} reports {days} days of dysuria and urinary frequency followed by fevers, "
                "rigors and right flank pain.",
                "{He} had nausea with one episode of non-bloody emesis.",
            ),
            ed="In the ED, T 102.3, HR 112. Urinalysis showed >182 WBC, positive nitrites. "
            "{He} received ceftriaxone.",
            exam=(("Back", "right costovertebral angle tenderness"),),
            labs=(("wbc", "H"), ("lactate", "H")),
            studies=(
                "Urine culture: >100,000 CFU/mL E. coli, pan-sensitive.",
                "Renal ultrasound: no hydronephrosis or abscess.",
            ),
            inpatient=("ceftriaxone",),
            course=(
                "Presented with fever, flank pain and pyuria consistent with pyelonephritis.",
                "Treated with IV ceftriaxone; fevers resolved within 48 hours.",
                "Urine culture grew pan-sensitive E. coli and antibiotics were narrowed.",
            ),
            dc_meds=(("ciprofloxacin",), ("cefpodoxime",)),
            procedure=None,
            proc_day=0,
            ruled_out=(
                (
                    "Obstructing nephrolithiasis",
                    "Renal ultrasound showed no hydronephrosis, "
                    "making an obstructing stone unlikely.",
                ),
            ),
            revised_from=None,
            specialty="Primary Care",
            los=(2, 4),
            why="you had a kidney infection",
        ),
        _a(
            key="dka",
            dx="Diabetic ketoacidosis",
            lateral=False,
            service="MEDICINE",
            cc=("Nausea, vomiting", "Hyperglycemia"),
            hpi=(
                "{He} reports {days} days of polyuria, polydipsia, nausea and vomiting after "
                "running out of insulin.",
                "{He} denies fevers, abdominal pain or recent infection.",
            ),
            ed="In the ED, glucose {lab:glu} with an anion gap of 28. An insulin drip and IV fluids were "
            "started.",
            exam=(("General", "dry mucous membranes, Kussmaul respirations"),),
            labs=(("glu", "H"), ("hco3", "L")),
            studies=("Beta-hydroxybutyrate 6.2 mmol/L.", "HbA1c 11.2%."),
            inpatient=("insulin",),
            course=(
                "Presented with DKA precipitated by insulin nonadherence due to cost.",
                "Treated with insulin drip and IV fluids per protocol; anion gap closed within "
                "18 hours and {he} was transitioned to subcutaneous insulin.",
                "Seen by diabetes educators; insulin teaching completed and social work helped "
                "with medication coverage.",
            ),
            dc_meds=(("insulin glargine", "insulin lispro"),),
            procedure=None,
            proc_day=0,
            ruled_out=(),
            revised_from=None,
            specialty="Endocrinology",
            los=(2, 4),
            why="your blood sugar was dangerously high and acids built up in your blood",
        ),
        _a(
            key="copd_ex",
            dx="COPD exacerbation",
            lateral=False,
            service="MEDICINE",
            cc=("Shortness of breath", "Wheezing"),
            hpi=(
                "{He} reports {days} days of increased dyspnea, wheezing and sputum production "
                "after a viral upper respiratory illness.",
                "{He} has been using {his} rescue inhaler every 2 hours without relief.",
            ),
            ed="In the ED, SpO2 86% on RA with diffuse wheezes. {He} received nebulizers, "
            "methylprednisolone 125 mg IV and azithromycin.",
            exam=(("Lungs", "diffuse expiratory wheezes, prolonged expiratory phase"),),
            labs=(("wbc", "H"),),
            studies=(
                "CXR: hyperinflation without focal consolidation.",
                "VBG: 7.36/52 on arrival.",
            ),
            inpatient=("methylprednisolone", "azithromycin"),
            course=(
                "Presented with an acute COPD exacerbation likely triggered by a viral infection.",
                "Treated with nebulizers, systemic steroids and azithromycin, with improvement in "
                "work of breathing.",
                "Weaned to room air with ambulatory saturation of 91%; to complete a 5-day "
                "prednisone course.",
            ),
            dc_meds=(("prednisone", "azithromycin"), ("prednisone",)),
            procedure=None,
            proc_day=0,
            ruled_out=(("Pneumonia", "CXR showed no consolidation, so pneumonia was ruled out."),),
            revised_from=None,
            specialty="Pulmonology",
            los=(2, 5),
            why="your COPD flared up and you had trouble breathing",
        ),
        _a(
            key="gib",
            dx="Upper gastrointestinal bleed due to duodenal ulcer",
            lateral=False,
            service="MEDICINE",
            cc=("Melena", "Black stools, lightheadedness"),
            hpi=(
                "{He} reports {days} days of black tarry stools and lightheadedness on standing.",
                "{He} has been taking ibuprofen daily for back pain.",
                "Denies hematemesis or abdominal pain.",
            ),
            ed="In the ED, HR 118, BP 96/58. Hgb {lab:hgb} from a baseline of 12. {He} received 2 units "
            "of pRBCs and a pantoprazole drip.",
            exam=(("Rectal", "melena on digital rectal exam"),),
            labs=(("hgb", "L"), ("bun", "H")),
            studies=(
                "EGD: 1 cm clean-based duodenal bulb ulcer, no active bleeding.",
                "H. pylori stool antigen: positive.",
            ),
            inpatient=("pantoprazole",),
            course=(
                "Presented with melena and acute blood loss anemia from a duodenal ulcer "
                "related to NSAID use.",
                "Underwent {proc:0} on {procdate:0}; no intervention was required.",
                "Transfused 2 units pRBCs with an appropriate rise in Hgb that remained stable "
                "for 48 hours.",
                "NSAIDs were discontinued and {he} was counseled to avoid them.",
            ),
            dc_meds=(("pantoprazole",),),
            procedure="Esophagogastroduodenoscopy (EGD)",
            proc_day=1,
            ruled_out=(),
            revised_from=None,
            specialty="Gastroenterology",
            los=(2, 4),
            why="you had bleeding from an ulcer in your intestine",
        ),
        _a(
            key="aki",
            dx="Acute kidney injury, prerenal",
            lateral=False,
            service="MEDICINE",
            cc=("Weakness, poor oral intake",),
            hpi=(
                "{He} reports {days} days of diarrhea and poor oral intake with generalized "
                "weakness.",
                "Labs at {his} PCP office showed a creatinine of {lab:cr} from a baseline of 0.9.",
            ),
            ed="In the ED, BP 102/60, HR 98, dry mucous membranes. {He} received 2L of normal "
            "saline.",
            exam=(("General", "dry mucous membranes, no edema"),),
            labs=(("cr", "H"), ("bun", "H")),
            studies=(
                "Renal ultrasound: normal-sized kidneys without hydronephrosis.",
                "Urine sodium <10, FENa 0.4%.",
            ),
            inpatient=(),
            course=(
                "Presented with prerenal acute kidney injury from volume depletion in the "
                "setting of diarrhea.",
                "Creatinine improved with IV fluids from {lab:cr} to {lablast:cr} by discharge.",
                "Diarrhea resolved; stool studies were negative.",
            ),
            dc_meds=((),),
            procedure=None,
            proc_day=0,
            ruled_out=(("Obstructive uropathy", "Renal ultrasound excluded obstruction."),),
            revised_from=None,
            specialty="Primary Care",
            los=(2, 4),
            why="your kidneys were injured from dehydration",
        ),
        _a(
            key="afib_rvr",
            dx="Atrial fibrillation with rapid ventricular response",
            lateral=False,
            service="CARDIOLOGY",
            cc=("Palpitations",),
            hpi=(
                "{He} reports {days} days of palpitations and fatigue with mild dyspnea on "
                "exertion.",
                "No prior history of arrhythmia.",
            ),
            ed="In the ED, ECG showed atrial fibrillation at 146 bpm. {He} received IV diltiazem "
            "with improvement in rate.",
            exam=(("CV", "irregularly irregular rhythm"),),
            labs=(("k", "L"),),
            studies=(
                "TSH 1.8, within normal limits.",
                "TTE: normal biventricular function, moderate left atrial enlargement.",
            ),
            inpatient=("diltiazem",),
            course=(
                "Presented with new-onset atrial fibrillation with rapid ventricular response.",
                "Rate controlled with IV then oral agents to heart rates in the 70s-80s.",
                "CHA2DS2-VASc score of 3; started on anticoagulation after shared decision-making.",
                "Hypokalemia was repleted.",
            ),
            dc_meds=(("metoprolol succinate", "apixaban"), ("diltiazem ER", "rivaroxaban")),
            procedure=None,
            proc_day=0,
            ruled_out=(("Hyperthyroidism", "TSH was normal, ruling out hyperthyroidism."),),
            revised_from=None,
            specialty="Cardiology",
            los=(1, 3),
            why="your heart was beating fast and irregularly (atrial fibrillation)",
        ),
        _a(
            key="dvt",
            dx="Acute deep vein thrombosis of the {side} femoral vein",
            lateral=True,
            service="MEDICINE",
            cc=("{Side} leg swelling",),
            hpi=(
                "{He} reports {days} days of {side} calf swelling and pain after a long car trip.",
                "Denies chest pain, dyspnea or hemoptysis.",
            ),
            ed="In the ED, the {side} calf was 4 cm larger than the contralateral side. A heparin "
            "drip was started.",
            exam=(("Extremities", "{side} calf swollen and tender, 2+ edema"),),
            labs=(("ddimer", "H"),),
            studies=(
                "{Side} lower extremity duplex: occlusive thrombus in the {side} femoral and "
                "popliteal veins.",
                "CTA chest: no pulmonary embolism.",
            ),
            inpatient=("heparin",),
            course=(
                "Presented with a provoked {side} femoral DVT after prolonged travel.",
                "Treated with heparin drip, transitioned to a direct oral anticoagulant.",
                "Plan for at least 3 months of anticoagulation.",
            ),
            dc_meds=(("apixaban",), ("rivaroxaban",)),
            procedure=None,
            proc_day=0,
            ruled_out=(("Pulmonary embolism", "CTA chest was negative for pulmonary embolism."),),
            revised_from=None,
            specialty="Primary Care",
            los=(1, 3),
            why="you had a blood clot in your leg",
        ),
        _a(
            key="appy",
            dx="Acute appendicitis",
            lateral=False,
            service="SURGERY",
            cc=("Abdominal pain",),
            hpi=(
                "{He} reports periumbilical pain beginning {days} hours ago that migrated to the "
                "right lower quadrant, with anorexia and nausea.",
            ),
            ed="In the ED, T 100.6 with right lower quadrant tenderness and rebound.",
            exam=(("Abdomen", "tender in the right lower quadrant with voluntary guarding"),),
            labs=(("wbc", "H"),),
            studies=("CT abdomen/pelvis: dilated, inflamed appendix without perforation.",),
            inpatient=("ceftriaxone", "metronidazole"),
            course=(
                "Presented with acute uncomplicated appendicitis.",
                "Underwent {proc:0} on {procdate:0} without complication.",
                "{pod:0} {he} tolerated a regular diet with pain controlled on oral medications.",
            ),
            dc_meds=(("oxycodone", "acetaminophen", "docusate"), ("acetaminophen", "ondansetron")),
            procedure="Laparoscopic appendectomy",
            proc_day=0,
            ruled_out=(),
            revised_from=None,
            specialty="General Surgery",
            los=(1, 2),
            why="your appendix was inflamed and it was removed",
            same_day_ok=True,
        ),
        _a(
            key="chole",
            dx="Acute calculous cholecystitis",
            lateral=False,
            service="SURGERY",
            cc=("Right upper quadrant pain",),
            hpi=(
                "{He} reports {days} days of constant right upper quadrant pain after fatty meals, "
                "radiating to the right shoulder, with nausea and fevers.",
            ),
            ed="In the ED, positive Murphy sign. {He} was started on IV antibiotics.",
            exam=(("Abdomen", "tender in the right upper quadrant, positive Murphy sign"),),
            labs=(("wbc", "H"), ("alt", "H")),
            studies=(
                "RUQ ultrasound: gallstones, gallbladder wall thickening and pericholecystic "
                "fluid.",
                "MRCP: no choledocholithiasis.",
            ),
            inpatient=("piperacillin-tazobactam",),
            course=(
                "Presented with acute calculous cholecystitis.",
                "Underwent {proc:0} on {procdate:0} without complication.",
                "{pod:0} {he} tolerated a regular diet and pain was controlled.",
            ),
            dc_meds=(("oxycodone", "acetaminophen", "docusate"), ("acetaminophen", "ondansetron")),
            procedure="Laparoscopic cholecystectomy",
            proc_day=1,
            ruled_out=(("Choledocholithiasis", "MRCP showed no common bile duct stones."),),
            revised_from=None,
            specialty="General Surgery",
            los=(2, 4),
            why="your gallbladder was inflamed and it was removed",
        ),
        _a(
            key="stone",
            dx="Obstructing {side} ureteral stone",
            lateral=True,
            service="UROLOGY",
            cc=("{Side} flank pain",),
            hpi=(
                "{He} reports sudden-onset {side} flank pain radiating to the groin {days} hours "
                "ago, with nausea and hematuria.",
            ),
            ed="In the ED, {he} received ketorolac and IV fluids. Urinalysis showed blood without "
            "signs of infection.",
            exam=(("Back", "{side} costovertebral angle tenderness"),),
            labs=(("cr", "H"),),
            studies=(
                "CT abdomen/pelvis: 7 mm {side} proximal ureteral stone with moderate "
                "hydronephrosis.",
            ),
            inpatient=("ketorolac",),
            course=(
                "Presented with an obstructing {side} ureteral stone and mild AKI.",
                "Underwent {proc:0} on {procdate:0} for persistent pain and obstruction.",
                "Creatinine returned to baseline; definitive ureteroscopy planned as an "
                "outpatient.",
            ),
            dc_meds=(("tamsulosin", "oxycodone", "acetaminophen"), ("tamsulosin", "acetaminophen")),
            procedure="Cystoscopy with {side} ureteral stent placement",
            proc_day=0,
            ruled_out=(),
            revised_from=None,
            specialty="Urology",
            los=(1, 2),
            why="a kidney stone was blocking the flow of urine",
            same_day_ok=True,
        ),
        _a(
            key="syncope",
            dx="Vasovagal syncope",
            lateral=False,
            service="MEDICINE",
            cc=("Syncope", "Loss of consciousness"),
            hpi=(
                "{He} had a brief loss of consciousness while standing in a hot church service, "
                "preceded by nausea and warmth, with rapid recovery and no confusion.",
                "No tongue biting, incontinence or chest pain.",
            ),
            ed="In the ED, orthostatic vitals were negative and the ECG was normal.",
            exam=(("Neuro", "alert and oriented, non-focal"),),
            labs=(("hgb", "L"),),
            studies=(
                "Telemetry: sinus rhythm without arrhythmia over 24 hours.",
                "TTE: normal biventricular function, no valvular disease.",
            ),
            inpatient=(),
            course=(
                "Presented with a syncopal episode with a clear vasovagal prodrome.",
                "Monitored on telemetry without arrhythmia; echocardiogram was normal.",
                "Counseled on hydration and avoiding triggers.",
            ),
            dc_meds=((),),
            procedure=None,
            proc_day=0,
            ruled_out=(
                (
                    "Cardiac arrhythmia",
                    "Telemetry showed no arrhythmia, so an arrhythmic cause was ruled out.",
                ),
                ("Seizure", "There was no post-ictal state, so seizure was felt unlikely."),
            ),
            revised_from=None,
            specialty="Primary Care",
            los=(1, 2),
            why="you fainted, most likely from a common reflex (vasovagal syncope)",
            same_day_ok=True,
        ),
    )
}
