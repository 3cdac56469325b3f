"""Admission scripts of the cardiology, orthopaedic, surgical and urology services."""

from __future__ import annotations

from .story import Acute

SPECIALTY: tuple[Acute, ...] = (
    Acute(
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
    Acute(
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
    Acute(
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
    Acute(
        key="afib_rvr",
        dx="Atrial fibrillation with rapid ventricular response",
        lateral=False,
        service="CARDIOLOGY",
        cc=("Palpitations",),
        hpi=(
            "{He} reports {days} days of palpitations and fatigue with mild dyspnea on exertion.",
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
    Acute(
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
    Acute(
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
            "RUQ ultrasound: gallstones, gallbladder wall thickening and pericholecystic fluid.",
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
    Acute(
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
            "CT abdomen/pelvis: 7 mm {side} proximal ureteral stone with moderate hydronephrosis.",
        ),
        inpatient=("ketorolac",),
        course=(
            "Presented with an obstructing {side} ureteral stone and mild AKI.",
            "Underwent {proc:0} on {procdate:0} for persistent pain and obstruction.",
            "Creatinine returned to baseline; definitive ureteroscopy planned as an outpatient.",
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
)
