// A small synthetic knowledge base for testing the engine's mechanics. Its
// drugs and rules are made up ("drug-a", "class-x") and say nothing clinical.
#ifndef VIGIL_TESTS_TEST_KB_H_
#define VIGIL_TESTS_TEST_KB_H_

namespace vigil::testing {

inline constexpr char kSyntheticKb[] = R"pb(
sources { id: "test-source" title: "Synthetic test source" }

classes { id: "class-x" name: "Class X" synonyms: "x agents" duplicate_sensitive: true
          additive_effects: "sleepy" sources: "test-source" }
classes { id: "class-x-sub" name: "Class X subclass" parents: "class-x" }
classes { id: "class-y" name: "Class Y" }

condition_sets {
  id: "set-renal" name: "Test renal set"
  codes { system: "http://hl7.org/fhir/sid/icd-10-cm" code: "N18.4" display: "CKD 4" }
  codes { system: "http://snomed.info/sct" code: "431857002" display: "CKD stage 4" }
  labs { name: "eGFR" loinc_codes: "62238-1" comparator: COMPARATOR_LESS_THAN value: 30 unit: "mL/min/{1.73_m2}"
         max_age_days: 365 estimate_from_creatinine: true }
}
condition_sets { id: "set-child" name: "Children under 12" age { below_years: 12 } }
condition_sets { id: "set-young-viral" name: "Under 19 with a viral illness" age { below_years: 19 }
  codes { system: "http://hl7.org/fhir/sid/icd-10-cm" code: "J10" display: "Influenza" } }
condition_sets { id: "set-older" name: "Adults 65 and over" age { min_years: 65 } }

drugs { id: "drug-a" name: "Drug A" synonyms: "Alpha" brand_names: "Abrand" classes: "class-x-sub"
        codes { system: "http://www.whocc.no/atc" code: "Z99ZZ01" }
        sources: "test-source" interaction_review: INTERACTION_REVIEW_REVIEWED
        contraindications { id: "drug-a-renal" condition_set: "set-renal" severity: SEVERITY_CONTRAINDICATED
                            summary: "Drug A in renal test set." sources: "test-source" }
        contraindications { id: "drug-a-hyper" hypersensitivity: true severity: SEVERITY_CONTRAINDICATED
                            summary: "Drug A hypersensitivity." sources: "test-source" } }
drugs { id: "drug-b" name: "Drug B" classes: "class-x" sources: "test-source"
        contraindications { id: "drug-b-child" condition_set: "set-child" severity: SEVERITY_CONTRAINDICATED
                            summary: "Drug B in children under 12." sources: "test-source" }
        contraindications { id: "drug-b-viral" condition_set: "set-young-viral" severity: SEVERITY_MAJOR
                            summary: "Drug B under 19 with a viral illness." sources: "test-source" }
        contraindications { id: "drug-b-older" condition_set: "set-older" severity: SEVERITY_MODERATE
                            summary: "Drug B in older adults." sources: "test-source" } }
drugs { id: "drug-c" name: "Drug C" classes: "class-y" sources: "test-source" }
drugs { id: "drug-d" name: "Drug D" classes: "class-y" additive_effects: "sleepy" sources: "test-source" }
drugs { id: "drug-e" name: "Drug E" sources: "test-source" }
drugs { id: "drug-f" name: "Drug F" sources: "test-source" interaction_review: INTERACTION_REVIEW_REVIEWED_NONE_KNOWN }

interactions { id: "ddi-a-y" a { drug: "drug-a" } b { drug_class: "class-y" } severity: SEVERITY_MODERATE
               summary: "A with class Y." management: "Watch." sources: "test-source" }
interactions { id: "ddi-a-c" a { drug: "drug-a" } b { drug: "drug-c" } severity: SEVERITY_MAJOR
               summary: "A with C." management: "Avoid." sources: "test-source" }
interactions { id: "ddi-x-d" a { drug_class: "class-x" } b { drug: "drug-d" } severity: SEVERITY_MINOR
               summary: "Class X with D." management: "Note." sources: "test-source" }

cross_sensitivities { id: "cross-a-c" members { drug: "drug-a" } members { drug: "drug-c" }
                      severity: SEVERITY_MAJOR summary: "A and C cross-react." sources: "test-source" }

products { id: "product-ac" name: "Drug A / Drug C" brand_names: "ACombo" ingredients: "drug-a" ingredients: "drug-c"
           sources: "test-source" }
products { id: "product-b-gel" name: "Drug B gel" ingredients: "drug-b" route: "topical" sources: "test-source" }

cross_sensitivities { id: "cross-d-e" members { drug: "drug-d" } members { drug: "drug-e" }
                      severity: SEVERITY_MODERATE summary: "D and E cross-react in true allergy." sources: "test-source"
                      reaction_terms: "urticaria" reaction_terms: "rash" }

additive_effects { id: "additive-sleepy" effect: "sleepy" min_drugs: 3 severity: SEVERITY_MAJOR
                   summary: "Three sleepy drugs." sources: "test-source" }
)pb";

// Drugs scored on a burden scale, loaded beside kSyntheticKb.
inline constexpr char kSyntheticBurdenKb[] = R"pb(
drugs { id: "drug-g" name: "Drug G" sources: "test-source" interaction_review: INTERACTION_REVIEW_REVIEWED
        effect_scores { effect: "drying" score: 3 sources: "test-source" } }
drugs { id: "drug-h" name: "Drug H" sources: "test-source" interaction_review: INTERACTION_REVIEW_REVIEWED
        additive_effects: "drying" }
drugs { id: "drug-i" name: "Drug I" sources: "test-source" interaction_review: INTERACTION_REVIEW_REVIEWED
        additive_effects: "drying" }
additive_effects { id: "burden-drying" effect: "drying" min_drugs: 2 min_score: 3 severity: SEVERITY_MODERATE
                   summary: "Drying burden of 3 or more." sources: "test-source" }

)pb";

}  // namespace vigil::testing

#endif  // VIGIL_TESTS_TEST_KB_H_
