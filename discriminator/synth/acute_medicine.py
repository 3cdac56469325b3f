"""Admission scripts of the general medicine service: infections, metabolic, GI, renal, syncope."""

from __future__ import annotations

from .story import Acute

MEDICINE: tuple[Acute, ...] = (
    Acute(
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
    Acute(
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
        ed="In the ED, T 100.9, HR 102. The erythema was demarcated and {he} received vancomycin.",
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
    Acute(
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
                "Renal ultrasound showed no hydronephrosis, making an obstructing stone unlikely.",
            ),
        ),
        revised_from=None,
        specialty="Primary Care",
        los=(2, 4),
        why="you had a kidney infection",
    ),
    Acute(
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
    Acute(
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
    Acute(
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
    Acute(
        key="aki",
        dx="Acute kidney injury, prerenal",
        lateral=False,
        service="MEDICINE",
        cc=("Weakness, poor oral intake",),
        hpi=(
            "{He} reports {days} days of diarrhea and poor oral intake with generalized weakness.",
            "Labs at {his} PCP office showed a creatinine of {lab:cr} from a baseline of 0.9.",
        ),
        ed="In the ED, BP 102/60, HR 98, dry mucous membranes. {He} received 2L of normal saline.",
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
    Acute(
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
    Acute(
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
