// Tests of reading CDS Hooks 2.0 requests (order-select, order-sign) and
// their FHIR R4 (and STU3) prefetch into vigil.v1, from the shapes the
// specifications give.
#include "server/fhir/cds_request.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "server/api/validation.h"

namespace vigil::fhir {
namespace {

using Strings = std::vector<std::string>;

// An order-sign request as an EHR sends it: two draft orders and a
// prefetch of the patient, conditions, allergies, medications and labs.
constexpr char kOrderSignRequest[] = R"json({
  "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
  "fhirServer": "https://ehr.example.org/fhir",
  "hook": "order-sign",
  "fhirAuthorization": {
    "access_token": "opaque-token-123",
    "token_type": "Bearer",
    "expires_in": 300,
    "scope": "user/Patient.read user/Observation.read",
    "subject": "cds-service"
  },
  "context": {
    "userId": "Practitioner/example",
    "patientId": "1288992",
    "encounterId": "89284",
    "draftOrders": {
      "resourceType": "Bundle",
      "type": "collection",
      "entry": [
        {
          "fullUrl": "https://ehr.example.org/fhir/MedicationRequest/smart-MedicationRequest-103",
          "resource": {
            "resourceType": "MedicationRequest",
            "id": "smart-MedicationRequest-103",
            "status": "draft",
            "intent": "order",
            "medicationCodeableConcept": {
              "coding": [
                {"system": "http://www.whocc.no/atc", "code": "B01AA03", "display": "warfarin"},
                {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "855332",
                 "display": "Warfarin Sodium 5 MG Oral Tablet"}
              ],
              "text": "Warfarin Sodium 5 MG Oral Tablet"
            },
            "subject": {"reference": "Patient/1288992"},
            "dosageInstruction": [
              {
                "text": "5 mg by mouth once daily",
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006",
                                      "display": "Oral route"}]},
                "doseAndRate": [
                  {"type": {"text": "ordered"},
                   "doseQuantity": {"value": 5, "unit": "milligram", "system": "http://unitsofmeasure.org",
                                    "code": "mg"}}
                ]
              }
            ]
          }
        },
        {
          "resource": {
            "resourceType": "MedicationRequest",
            "status": "draft",
            "intent": "order",
            "medicationCodeableConcept": {"text": "ibuprofen 400 mg tablet"},
            "subject": {"reference": "https://ehr.example.org/fhir/Patient/1288992/_history/3"}
          }
        }
      ]
    }
  },
  "prefetch": {
    "patient": {
      "resourceType": "Patient",
      "id": "1288992",
      "gender": "female",
      "birthDate": "1948-03-14"
    },
    "conditions": {
      "resourceType": "Bundle",
      "type": "searchset",
      "entry": [
        {
          "resource": {
            "resourceType": "Condition",
            "id": "afib",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                               "code": "confirmed"}]},
            "code": {
              "coding": [
                {"system": "http://example.org/local-problems", "code": "AF-1"},
                {"system": "http://snomed.info/sct", "code": "49436004", "display": "Atrial fibrillation"},
                {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I48.91",
                 "display": "Unspecified atrial fibrillation"}
              ],
              "text": "Atrial fibrillation"
            },
            "subject": {"reference": "Patient/1288992"}
          },
          "search": {"mode": "match"}
        },
        {
          "resource": {
            "resourceType": "Condition",
            "id": "bronchitis",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "resolved"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "10509002",
                                 "display": "Acute bronchitis"}]},
            "subject": {"reference": "Patient/1288992"}
          }
        }
      ]
    },
    "allergies": {
      "resourceType": "Bundle",
      "type": "searchset",
      "entry": [
        {
          "resource": {
            "resourceType": "AllergyIntolerance",
            "id": "pen",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                                           "code": "active"}]},
            "verificationStatus": {"coding": [{"code": "confirmed"}]},
            "criticality": "high",
            "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "70618",
                                 "display": "Penicillin"}],
                     "text": "penicillin allergy"},
            "patient": {"reference": "Patient/1288992"},
            "reaction": [{"manifestation": [{"coding": [{"system": "http://snomed.info/sct", "code": "39579001",
                                                         "display": "Anaphylaxis"}]}]}]
          }
        },
        {
          "resource": {
            "resourceType": "AllergyIntolerance",
            "id": "sulfa",
            "verificationStatus": {"coding": [{"code": "entered-in-error"}]},
            "code": {"text": "sulfonamides"},
            "patient": {"reference": "Patient/1288992"}
          }
        }
      ]
    },
    "medications": {
      "resourceType": "Bundle",
      "type": "searchset",
      "entry": [
        {
          "resource": {
            "resourceType": "MedicationRequest",
            "id": "amlo",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                      "code": "197361",
                                                      "display": "Amlodipine 5 MG Oral Tablet"}]},
            "subject": {"reference": "Patient/1288992"},
            "dosageInstruction": [{"timing": {"code": {"text": "once daily"}},
                                   "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}]}]
          }
        },
        {
          "resource": {
            "resourceType": "MedicationRequest",
            "id": "old",
            "status": "stopped",
            "intent": "order",
            "medicationCodeableConcept": {"text": "simvastatin 40 mg"},
            "subject": {"reference": "Patient/1288992"}
          }
        }
      ]
    },
    "labs": {
      "resourceType": "Bundle",
      "type": "searchset",
      "entry": [
        {"resource": {"resourceType": "Observation", "id": "egfr", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "62238-1",
                                           "display": "eGFR CKD-EPI"}]},
                      "subject": {"reference": "Patient/1288992"},
                      "effectiveDateTime": "2024-05-02T08:30:00Z",
                      "valueQuantity": {"value": 38, "unit": "mL/min/{1.73_m2}", "system": "http://unitsofmeasure.org",
                                        "code": "mL/min/{1.73_m2}"}}},
        {"resource": {"resourceType": "Observation", "id": "egfr-mdrd", "status": "amended",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "33914-3"}]},
                      "effectivePeriod": {"start": "2024-04-01", "end": "2024-04-02"},
                      "valueQuantity": {"value": 41.5, "unit": "mL/min/{1.73_m2}"}}},
        {"resource": {"resourceType": "Observation", "id": "creat", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
                      "effectiveDateTime": "2024-05",
                      "issued": "2024-05-02T09:00:00+02:00",
                      "valueQuantity": {"value": 1.6, "unit": "mg/dL", "system": "http://unitsofmeasure.org",
                                        "code": "mg/dL"}}},
        {"resource": {"resourceType": "Observation", "id": "k", "status": "preliminary",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
                      "valueQuantity": {"value": 5.1, "unit": "mmol/L"}}},
        {"resource": {"resourceType": "Observation", "id": "inr", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "6301-6"}]},
                      "effectiveDateTime": "2024-05-01",
                      "valueQuantity": {"value": 2.4, "unit": "{INR}"}}},
        {"resource": {"resourceType": "Observation", "id": "inr-cancelled", "status": "cancelled",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "6301-6"}]},
                      "valueQuantity": {"value": 9.9, "unit": "{INR}"}}},
        {"resource": {"resourceType": "Observation", "id": "egfr-text", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "62238-1"}]},
                      "valueString": ">60"}},
        {"resource": {"resourceType": "Observation", "id": "w1", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                      "effectiveDateTime": "2023-01-10",
                      "valueQuantity": {"value": 80, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}},
        {"resource": {"resourceType": "Observation", "id": "w2", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                      "effectiveDateTime": "2024-04-20T10:00:00Z",
                      "valueQuantity": {"value": 160, "unit": "lb", "system": "http://unitsofmeasure.org",
                                        "code": "[lb_av]"}}},
        {"resource": {"resourceType": "OperationOutcome",
                      "issue": [{"severity": "information", "code": "informational"}]},
         "search": {"mode": "outcome"}}
      ]
    }
  }
})json";

// Expects INVALID_ARGUMENT whose message starts with `path` and ": ".
void ExpectInvalid(const absl::Status& status, const std::string& path) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(std::string(status.message()).rfind(path + ": ", 0), 0u)
      << "message '" << status.message() << "' does not start with " << path;
}

// An order-sign request with `entries` as draftOrders.entry and `prefetch`.
std::string Request(const std::string& entries, const std::string& prefetch = "{}") {
  return absl::StrCat(R"({"hook": "order-sign", "hookInstance": "abc", "context": {"patientId": "p1",
      "draftOrders": {"resourceType": "Bundle", "entry": [)",
                      entries, R"(]}}, "prefetch": )", prefetch, "}");
}

constexpr char kIbuprofenEntry[] = R"({"resource": {"resourceType": "MedicationRequest",
    "medicationCodeableConcept": {"text": "ibuprofen 400 mg"}}})";

// A prefetch with one key holding `value`.
std::string Prefetch(const std::string& key, const std::string& value) {
  return absl::StrCat("{\"", key, "\": ", value, "}");
}

TEST(CdsRequestTest, OrderSignReadsContextAndHeader) {
  const absl::StatusOr<CdsRequest> request = ParseCdsRequest(kOrderSignRequest);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->hook, kOrderSign);
  EXPECT_EQ(request->hook_instance, "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea");
  EXPECT_EQ(request->fhir_server, "https://ehr.example.org/fhir");
  EXPECT_EQ(request->fhir_access_token, "opaque-token-123");
  EXPECT_EQ(request->fhir_token_type, "Bearer");
  EXPECT_EQ(request->user_id, "Practitioner/example");
  EXPECT_EQ(request->patient_id, "1288992");
  EXPECT_EQ(request->encounter_id, "89284");
  EXPECT_TRUE(request->selections.empty());
  EXPECT_EQ(request->missing_prefetch, (Strings{"statements"}));
}

TEST(CdsRequestTest, OrderSignReadsDraftOrders) {
  const absl::StatusOr<CdsRequest> request = ParseCdsRequest(kOrderSignRequest);
  ASSERT_TRUE(request.ok()) << request.status();
  ASSERT_EQ(request->draft_orders.size(), 2u);
  const v1::MedicationOrder& warfarin = request->draft_orders[0];
  EXPECT_EQ(warfarin.drug(), "");
  EXPECT_EQ(warfarin.order_id(), "MedicationRequest/smart-MedicationRequest-103");
  // The RxNorm coding is chosen over the ATC one listed first.
  EXPECT_EQ(warfarin.coding().system(), "http://www.nlm.nih.gov/research/umls/rxnorm");
  EXPECT_EQ(warfarin.coding().code(), "855332");
  EXPECT_EQ(warfarin.coding().display(), "Warfarin Sodium 5 MG Oral Tablet");
  EXPECT_EQ(warfarin.text(), "Warfarin Sodium 5 MG Oral Tablet");
  EXPECT_EQ(warfarin.dose_value(), 5);
  EXPECT_EQ(warfarin.dose_unit(), "mg");  // The UCUM code, not the unit's words.
  EXPECT_EQ(warfarin.route(), "Oral route");
  EXPECT_EQ(warfarin.frequency(), "once a day");

  const v1::MedicationOrder& ibuprofen = request->draft_orders[1];
  EXPECT_EQ(ibuprofen.drug(), "");
  EXPECT_EQ(ibuprofen.order_id(), "draftOrders.entry[1]");
  EXPECT_FALSE(ibuprofen.has_coding());
  EXPECT_EQ(ibuprofen.text(), "ibuprofen 400 mg tablet");
  EXPECT_EQ(ibuprofen.dose_value(), 0);
  EXPECT_EQ(ibuprofen.route(), "");
  for (const auto& order : request->draft_orders) {
    EXPECT_TRUE(ValidateMedicationOrder(order, "order").ok()) << ValidateMedicationOrder(order, "order");
  }
}

TEST(CdsRequestTest, OrderSignReadsPatientConditionsAndAllergies) {
  const absl::StatusOr<CdsRequest> request = ParseCdsRequest(kOrderSignRequest);
  ASSERT_TRUE(request.ok()) << request.status();
  const v1::Patient& patient = request->patient;
  EXPECT_EQ(patient.id(), "1288992");
  EXPECT_EQ(patient.birth_date(), "1948-03-14");
  EXPECT_EQ(patient.sex(), v1::SEX_FEMALE);
  // The active condition, in both of its matchable systems; the local code
  // and the resolved bronchitis are not read.
  ASSERT_EQ(patient.conditions_size(), 2);
  EXPECT_EQ(patient.conditions(0).code().system(), "http://snomed.info/sct");
  EXPECT_EQ(patient.conditions(0).code().code(), "49436004");
  EXPECT_EQ(patient.conditions(0).code().display(), "Atrial fibrillation");
  EXPECT_EQ(patient.conditions(1).code().system(), "http://hl7.org/fhir/sid/icd-10-cm");
  EXPECT_EQ(patient.conditions(1).code().code(), "I48.91");
  // The entered-in-error allergy is not read.
  ASSERT_EQ(patient.allergies_size(), 1);
  EXPECT_EQ(patient.allergies(0).substance(), "Penicillin");
  EXPECT_EQ(patient.allergies(0).reaction(), "Anaphylaxis");
  EXPECT_EQ(patient.allergies(0).criticality(), v1::ALLERGY_CRITICALITY_HIGH);
  // The stopped order is not a current medication.
  ASSERT_EQ(patient.medications_size(), 1);
  const v1::MedicationOrder& amlodipine = patient.medications(0);
  EXPECT_EQ(amlodipine.drug(), "");
  EXPECT_EQ(amlodipine.order_id(), "MedicationRequest/amlo");
  EXPECT_EQ(amlodipine.coding().code(), "197361");
  EXPECT_EQ(amlodipine.frequency(), "once daily");
  EXPECT_EQ(amlodipine.dose_value(), 1);
  EXPECT_EQ(amlodipine.dose_unit(), "tablet");
}

TEST(CdsRequestTest, OrderSignReadsLabsAndWeight) {
  const absl::StatusOr<CdsRequest> request = ParseCdsRequest(kOrderSignRequest);
  ASSERT_TRUE(request.ok()) << request.status();
  const v1::Patient& patient = request->patient;
  // Every readable result is kept (the engine picks); the cancelled one and
  // the one without a valueQuantity are not.
  ASSERT_EQ(patient.labs_size(), 7);
  const v1::LabResult& egfr = patient.labs(0);
  EXPECT_EQ(egfr.code().system(), "http://loinc.org");
  EXPECT_EQ(egfr.code().code(), "62238-1");
  EXPECT_EQ(egfr.code().display(), "eGFR CKD-EPI");
  EXPECT_EQ(egfr.value(), 38);
  EXPECT_EQ(egfr.unit(), "mL/min/{1.73_m2}");
  EXPECT_EQ(egfr.effective_time(), "2024-05-02T08:30:00Z");
  EXPECT_EQ(patient.labs(1).code().code(), "33914-3");
  EXPECT_EQ(patient.labs(1).value(), 41.5);
  EXPECT_EQ(patient.labs(1).effective_time(), "2024-04-01");  // effectivePeriod.start
  EXPECT_EQ(patient.labs(2).code().code(), "2160-0");
  EXPECT_EQ(patient.labs(2).unit(), "mg/dL");
  // A month is no day: the issued time is taken instead.
  EXPECT_EQ(patient.labs(2).effective_time(), "2024-05-02T09:00:00+02:00");
  EXPECT_EQ(patient.labs(3).code().code(), "2823-3");
  EXPECT_EQ(patient.labs(3).value(), 5.1);
  EXPECT_EQ(patient.labs(3).unit(), "mmol/L");
  EXPECT_EQ(patient.labs(3).effective_time(), "");
  EXPECT_EQ(patient.labs(4).code().code(), "6301-6");
  EXPECT_EQ(patient.labs(4).value(), 2.4);
  EXPECT_EQ(patient.labs(4).unit(), "{INR}");
  EXPECT_EQ(patient.labs(5).code().code(), "29463-7");
  EXPECT_EQ(patient.labs(6).unit(), "[lb_av]");
  // The latest weight, 160 lb, in kilograms.
  EXPECT_NEAR(patient.weight_kg(), 72.57, 0.01);
  EXPECT_TRUE(ValidatePatient(patient, "patient").ok()) << ValidatePatient(patient, "patient");
}

TEST(CdsRequestTest, OrderSelectReadsSelections) {
  const std::string body = R"json({
    "hook": "order-select",
    "hookInstance": "6a9a1f8c-1b4e-4f50-9d1a-1d2f3c4b5a69",
    "context": {
      "userId": "PractitionerRole/123",
      "patientId": "1288992",
      "selections": ["MedicationRequest/smart-MR-2"],
      "draftOrders": {
        "resourceType": "Bundle",
        "entry": [
          {"resource": {"resourceType": "MedicationRequest", "id": "smart-MR-1", "status": "draft",
                        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                                  "code": "617314", "display": "atorvastatin 10 MG Oral Tablet"}]}}},
          {"resource": {"resourceType": "MedicationRequest", "id": "smart-MR-2", "status": "draft",
                        "medicationCodeableConcept": {"text": "clarithromycin 500 mg tablet"}}},
          {"resource": {"resourceType": "ServiceRequest", "id": "lab-1", "status": "draft",
                        "code": {"text": "Lipid panel"}}}
        ]
      }
    }
  })json";
  const absl::StatusOr<CdsRequest> request = ParseCdsRequest(body);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->hook, "order-select");
  EXPECT_EQ(request->user_id, "PractitionerRole/123");
  EXPECT_EQ(request->selections, (Strings{"MedicationRequest/smart-MR-2"}));
  // The ServiceRequest is no medication order.
  ASSERT_EQ(request->draft_orders.size(), 2u);
  EXPECT_EQ(request->draft_orders[0].order_id(), "MedicationRequest/smart-MR-1");
  EXPECT_EQ(request->draft_orders[0].coding().display(), "atorvastatin 10 MG Oral Tablet");
  EXPECT_EQ(request->draft_orders[1].order_id(), "MedicationRequest/smart-MR-2");
  EXPECT_EQ(request->draft_orders[1].text(), "clarithromycin 500 mg tablet");
  // No prefetch at all: every key is missing, in template order.
  EXPECT_EQ(request->missing_prefetch, (Strings{"patient", "conditions", "allergies", "medications", "statements", "labs"}));

  // A selection must name one of the draft orders.
  const std::string unknown = absl::StrReplaceAll(body, {{"\"MedicationRequest/smart-MR-2\"]", "\"MedicationRequest/x\"]"}});
  ExpectInvalid(ParseCdsRequest(unknown).status(), "context.selections[0]");
}

TEST(CdsRequestTest, ReadsStu3Shapes) {
  const std::string prefetch = R"json({
    "conditions": {"resourceType": "Bundle", "entry": [
      {"resource": {"resourceType": "Condition", "clinicalStatus": "active", "verificationStatus": "confirmed",
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "N18.4"}]}}},
      {"resource": {"resourceType": "Condition", "clinicalStatus": "resolved",
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "J20.9"}]}}},
      {"resource": {"resourceType": "Condition", "clinicalStatus": "active", "verificationStatus": "refuted",
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "K72.10"}]}}}
    ]},
    "allergies": {"resourceType": "AllergyIntolerance", "clinicalStatus": "active", "verificationStatus": "confirmed",
                  "criticality": "low", "code": {"text": "codeine"},
                  "reaction": [{"description": "nausea"}]},
    "medications": {"resourceType": "Bundle", "entry": [
      {"resource": {"resourceType": "MedicationRequest", "id": "m1", "status": "active",
                    "medicationCodeableConcept": {"text": "metformin 500 mg tablet"},
                    "dosageInstruction": [{"doseQuantity": {"value": 500, "unit": "mg"},
                                           "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                                           "route": {"text": "by mouth"}}]}}
    ]},
    "statements": {"resourceType": "Bundle", "entry": [
      {"resource": {"resourceType": "MedicationStatement", "id": "s1", "status": "active", "taken": "y",
                    "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                              "code": "310965", "display": "Ibuprofen 200 MG Oral Tablet"}]},
                    "dosage": [{"doseQuantity": {"value": 400, "unit": "mg"},
                                "timing": {"repeat": {"frequency": 1, "period": 8, "periodUnit": "h"}},
                                "asNeededBoolean": true}]}},
      {"resource": {"resourceType": "MedicationStatement", "id": "s2", "status": "active", "taken": "n",
                    "medicationCodeableConcept": {"text": "St John's wort"}}},
      {"resource": {"resourceType": "MedicationStatement", "id": "s3", "status": "completed", "taken": "y",
                    "medicationCodeableConcept": {"text": "amoxicillin"}}}
    ]}
  })json";
  const absl::StatusOr<CdsRequest> request = ParseCdsRequest(Request(kIbuprofenEntry, prefetch));
  ASSERT_TRUE(request.ok()) << request.status();
  const v1::Patient& patient = request->patient;
  ASSERT_EQ(patient.conditions_size(), 1);
  EXPECT_EQ(patient.conditions(0).code().code(), "N18.4");
  ASSERT_EQ(patient.allergies_size(), 1);
  EXPECT_EQ(patient.allergies(0).substance(), "codeine");
  EXPECT_EQ(patient.allergies(0).reaction(), "nausea");
  EXPECT_EQ(patient.allergies(0).criticality(), v1::ALLERGY_CRITICALITY_LOW);
  ASSERT_EQ(patient.medications_size(), 2);
  EXPECT_EQ(patient.medications(0).order_id(), "MedicationRequest/m1");
  EXPECT_EQ(patient.medications(0).dose_value(), 500);
  EXPECT_EQ(patient.medications(0).dose_unit(), "mg");
  EXPECT_EQ(patient.medications(0).frequency(), "twice a day");
  EXPECT_EQ(patient.medications(0).route(), "by mouth");
  EXPECT_EQ(patient.medications(1).order_id(), "MedicationStatement/s1");
  EXPECT_EQ(patient.medications(1).coding().code(), "310965");
  EXPECT_EQ(patient.medications(1).dose_value(), 400);
  EXPECT_EQ(patient.medications(1).frequency(), "every 8 hours as needed");
  EXPECT_EQ(request->missing_prefetch, (Strings{"patient", "labs"}));
  EXPECT_TRUE(ValidatePatient(patient, "patient").ok()) << ValidatePatient(patient, "patient");
}

TEST(CdsRequestTest, FollowsMedicationReferences) {
  const std::string entries = R"json(
    {"resource": {"resourceType": "MedicationRequest", "id": "a",
                  "contained": [{"resourceType": "Medication", "id": "med1",
                                 "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                      "code": "855332", "display": "Warfarin Sodium 5 MG Oral Tablet"}]}}],
                  "medicationReference": {"reference": "#med1"}}},
    {"resource": {"resourceType": "MedicationRequest", "id": "b",
                  "medicationReference": {"reference": "Medication/m2"}}},
    {"fullUrl": "https://ehr.example.org/fhir/Medication/m2",
     "resource": {"resourceType": "Medication", "id": "m2", "code": {"text": "fluconazole 150 mg capsule"}}},
    {"resource": {"resourceType": "MedicationRequest", "id": "c",
                  "medicationReference": {"reference": "Medication/elsewhere", "display": "simvastatin 40 mg tablet"}}}
  )json";
  const absl::StatusOr<CdsRequest> request = ParseCdsRequest(Request(entries));
  ASSERT_TRUE(request.ok()) << request.status();
  ASSERT_EQ(request->draft_orders.size(), 3u);
  EXPECT_EQ(request->draft_orders[0].coding().code(), "855332");
  EXPECT_EQ(request->draft_orders[0].coding().display(), "Warfarin Sodium 5 MG Oral Tablet");
  EXPECT_EQ(request->draft_orders[1].text(), "fluconazole 150 mg capsule");
  EXPECT_EQ(request->draft_orders[2].text(), "simvastatin 40 mg tablet");

  // A reference that leads nowhere, with no display, names no drug.
  const std::string dangling = R"json(
    {"resource": {"resourceType": "MedicationRequest", "medicationReference": {"reference": "#nothing"}}})json";
  ExpectInvalid(ParseCdsRequest(Request(dangling)).status(), "context.draftOrders.entry[0].resource.medicationReference");
}

TEST(CdsRequestTest, MissingAndNullPrefetchKeysAreListed) {
  const std::string prefetch = R"json({"patient": null, "conditions": {"resourceType": "Bundle", "type": "searchset"},
                                      "labs": null, "unrelated": {"resourceType": "Practitioner"}})json";
  const absl::StatusOr<CdsRequest> request = ParseCdsRequest(Request(kIbuprofenEntry, prefetch));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->missing_prefetch, (Strings{"patient", "allergies", "medications", "statements", "labs"}));
  EXPECT_EQ(request->patient.id(), "p1");
}

TEST(CdsRequestTest, PrefetchTemplates) {
  const std::vector<PrefetchTemplate> templates = PrefetchTemplates({"6301-6", "62238-1", "2160-0", "6301-6"});
  ASSERT_EQ(templates.size(), 6u);
  std::vector<std::string> keys;
  for (const auto& t : templates) {
    keys.push_back(t.key);
  }
  EXPECT_EQ(keys, (Strings{"patient", "conditions", "allergies", "medications", "statements", "labs"}));
  EXPECT_EQ(templates[0].query, "Patient/{{context.patientId}}");
  EXPECT_EQ(templates[1].query, "Condition?patient={{context.patientId}}&clinical-status=active,recurrence,relapse");
  EXPECT_EQ(templates[3].query, "MedicationRequest?patient={{context.patientId}}&status=active,on-hold");
  EXPECT_EQ(templates[5].query,
            "Observation?patient={{context.patientId}}&code=http://loinc.org|2160-0,http://loinc.org|29463-7,"
            "http://loinc.org|62238-1,http://loinc.org|6301-6&_sort=-date");
}

TEST(CdsRequestTest, ApplyPrefetchReadsABundle) {
  absl::StatusOr<CdsRequest> request = ParseCdsRequest(Request(kIbuprofenEntry));
  ASSERT_TRUE(request.ok()) << request.status();
  const std::string labs = R"json({"resourceType": "Bundle", "type": "searchset", "entry": [
    {"resource": {"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/p1"},
                  "code": {"coding": [{"system": "http://loinc.org", "code": "62238-1"}]},
                  "effectiveDateTime": "2024-05-02", "valueQuantity": {"value": 25, "unit": "mL/min/{1.73_m2}"}}},
    {"resource": {"resourceType": "Observation", "status": "final",
                  "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                  "valueQuantity": {"value": 61000, "unit": "g"}}}
  ]})json";
  ASSERT_TRUE(ApplyPrefetch("labs", labs, *request).ok());
  ASSERT_EQ(request->patient.labs_size(), 2);
  EXPECT_EQ(request->patient.labs(0).value(), 25);
  EXPECT_DOUBLE_EQ(request->patient.weight_kg(), 61);
  EXPECT_EQ(request->missing_prefetch, (Strings{"patient", "conditions", "allergies", "medications", "statements"}));

  // Applying a key twice would read its resources twice.
  EXPECT_EQ(ApplyPrefetch("labs", labs, *request).code(), absl::StatusCode::kFailedPrecondition);
  ExpectInvalid(ApplyPrefetch("vitals", labs, *request), "key");
  // A single resource, and null (no data).
  ASSERT_TRUE(ApplyPrefetch("patient", R"({"resourceType": "Patient", "id": "p1", "birthDate": "1970-06"})", *request).ok());
  EXPECT_EQ(request->patient.birth_date(), "");  // A month is no birth date.
  ASSERT_TRUE(ApplyPrefetch("statements", "null", *request).ok());
  EXPECT_EQ(request->missing_prefetch, (Strings{"conditions", "allergies", "medications"}));

  // An error names the key's path and leaves the request as it was.
  const std::string bad = R"json({"resourceType": "Bundle", "entry": [
    {"resource": {"resourceType": "Condition", "clinicalStatus": "active",
                  "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "N18.4"}]}}},
    {"resource": {"resourceType": "Condition", "code": "N18.4"}}]})json";
  ExpectInvalid(ApplyPrefetch("conditions", bad, *request), "conditions.entry[1].resource.code");
  EXPECT_EQ(request->patient.conditions_size(), 0);
  EXPECT_EQ(request->missing_prefetch, (Strings{"conditions", "allergies", "medications"}));
  ExpectInvalid(ApplyPrefetch("conditions", "{\"resourceType\": ", *request), "conditions");
}

TEST(CdsRequestTest, ErrorsNameTheirPath) {
  ExpectInvalid(ParseCdsRequest("{\"hook\": \"order-sign\", ").status(), "body");
  EXPECT_NE(ParseCdsRequest("{\"hook\": ").status().message().find("is not JSON"), absl::string_view::npos);
  ExpectInvalid(ParseCdsRequest("").status(), "body");
  ExpectInvalid(ParseCdsRequest(R"([{"hook": "order-sign"}])").status(), "body");
  ExpectInvalid(ParseCdsRequest(R"({"hookInstance": "abc", "context": {}})").status(), "hook");
  ExpectInvalid(ParseCdsRequest(R"({"hook": 7, "hookInstance": "abc"})").status(), "hook");
  ExpectInvalid(ParseCdsRequest(R"({"hook": "order-sign", "hookInstance": "abc"})").status(), "context");
  ExpectInvalid(ParseCdsRequest(R"({"hook": "order-sign", "hookInstance": "abc", "context": "p1"})").status(),
                "context");
  ExpectInvalid(ParseCdsRequest(R"({"hook": "order-sign", "hookInstance": "abc", "context": {"draftOrders": {}}})")
                    .status(),
                "context.patientId");
  ExpectInvalid(ParseCdsRequest(R"({"hook": "order-sign", "hookInstance": "abc", "context": {"patientId": "p1"}})")
                    .status(),
                "context.draftOrders");
  ExpectInvalid(ParseCdsRequest(R"({"hook": "order-sign", "hookInstance": "abc", "fhirAuthorization": "token",
                                    "context": {"patientId": "p1"}})")
                    .status(),
                "fhirAuthorization");
}

TEST(CdsRequestTest, DraftOrderErrorsNameTheirPath) {
  const std::string not_bundle = R"({"hook": "order-sign", "hookInstance": "abc", "context": {"patientId": "p1",
      "draftOrders": {"resourceType": "MedicationRequest", "status": "draft"}}})";
  ExpectInvalid(ParseCdsRequest(not_bundle).status(), "context.draftOrders.resourceType");
  const std::string string_orders = R"({"hook": "order-sign", "hookInstance": "abc", "context": {"patientId": "p1",
      "draftOrders": "MedicationRequest/1"}})";
  ExpectInvalid(ParseCdsRequest(string_orders).status(), "context.draftOrders");

  const std::string observation = absl::StrCat(kIbuprofenEntry, R"(, {"resource": {"resourceType": "Observation",
      "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]}}})");
  const absl::Status status = ParseCdsRequest(Request(observation)).status();
  ExpectInvalid(status, "context.draftOrders.entry[1].resource.resourceType");
  EXPECT_NE(status.message().find("a draft order is a MedicationRequest"), absl::string_view::npos) << status;

  // Neither a coding with a code nor text: the order is never dropped.
  const std::string nameless = R"({"resource": {"resourceType": "MedicationRequest",
      "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm"}]}}})";
  ExpectInvalid(ParseCdsRequest(Request(absl::StrCat(kIbuprofenEntry, ",", nameless))).status(),
                "context.draftOrders.entry[1].resource.medicationCodeableConcept");
  ExpectInvalid(ParseCdsRequest(Request(R"({"resource": {"resourceType": "MedicationRequest"}})")).status(),
                "context.draftOrders.entry[0].resource.medicationCodeableConcept");
  ExpectInvalid(ParseCdsRequest(Request(R"({"fullUrl": "urn:uuid:1"})")).status(),
                "context.draftOrders.entry[0].resource");
  // A malformed RxNorm code, a text that is not a string, a dose without a unit.
  ExpectInvalid(ParseCdsRequest(Request(R"({"resource": {"resourceType": "MedicationRequest",
      "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "85x"}]}}})"))
                    .status(),
                "context.draftOrders.entry[0].resource.medicationCodeableConcept.coding[0].code");
  ExpectInvalid(ParseCdsRequest(Request(R"({"resource": {"resourceType": "MedicationRequest",
      "medicationCodeableConcept": {"text": ["warfarin"]}}})"))
                    .status(),
                "context.draftOrders.entry[0].resource.medicationCodeableConcept.text");
  ExpectInvalid(ParseCdsRequest(Request(R"({"resource": {"resourceType": "MedicationRequest",
      "medicationCodeableConcept": {"text": "warfarin"},
      "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 5}}]}]}})"))
                    .status(),
                "context.draftOrders.entry[0].resource.dosageInstruction[0].doseAndRate[0].doseQuantity");
}

TEST(CdsRequestTest, PrefetchErrorsNameTheirPath) {
  const std::string number_code = R"json({"resourceType": "Bundle", "entry": [
      {"resource": {"resourceType": "Condition", "clinicalStatus": {"coding": [{"code": "active"}]}, "code": 4917}}]})json";
  ExpectInvalid(ParseCdsRequest(Request(kIbuprofenEntry, Prefetch("conditions", number_code))).status(),
                "prefetch.conditions.entry[0].resource.code");
  const std::string no_code = R"json({"resourceType": "Condition", "clinicalStatus": "active",
      "code": {"text": "feels unwell"}})json";
  ExpectInvalid(ParseCdsRequest(Request(kIbuprofenEntry, Prefetch("conditions", no_code))).status(),
                "prefetch.conditions.code");
  ExpectInvalid(ParseCdsRequest(Request(kIbuprofenEntry, Prefetch("labs", "\"none\""))).status(), "prefetch.labs");
  ExpectInvalid(ParseCdsRequest(Request(kIbuprofenEntry, "[]")).status(), "prefetch");
  // Data about another patient is refused.
  const std::string other = R"json({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Condition",
      "subject": {"reference": "Patient/p2"},
      "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "N18.4"}]}}}]})json";
  ExpectInvalid(ParseCdsRequest(Request(kIbuprofenEntry, Prefetch("conditions", other))).status(),
                "prefetch.conditions.entry[0].resource.subject.reference");
  ExpectInvalid(ParseCdsRequest(Request(kIbuprofenEntry, Prefetch("patient", R"({"resourceType": "Patient",
      "id": "p2"})"))).status(),
                "prefetch.patient.id");
  // A lab without a unit, or coded outside LOINC.
  const std::string unitless = R"json({"resourceType": "Observation", "status": "final",
      "code": {"coding": [{"system": "http://loinc.org", "code": "6301-6"}]}, "valueQuantity": {"value": 2.1}})json";
  ExpectInvalid(ParseCdsRequest(Request(kIbuprofenEntry, Prefetch("labs", unitless))).status(),
                "prefetch.labs.valueQuantity");
  const std::string local = R"json({"resourceType": "Observation", "status": "final",
      "code": {"coding": [{"system": "http://lab.example.org", "code": "K"}]}, "valueQuantity": {"value": 4, "unit": "mmol/L"}})json";
  ExpectInvalid(ParseCdsRequest(Request(kIbuprofenEntry, Prefetch("labs", local))).status(), "prefetch.labs.code");
  ExpectInvalid(ParseCdsRequest(Request(kIbuprofenEntry, Prefetch("patient", R"({"resourceType": "Patient",
      "birthDate": "14/03/1948"})"))).status(),
                "prefetch.patient.birthDate");
  ExpectInvalid(ParseCdsRequest(Request(kIbuprofenEntry, Prefetch("allergies", R"({"resourceType": "Encounter"})")))
                    .status(),
                "prefetch.allergies.resourceType");
}

TEST(CdsRequestTest, TooManyEntriesAreRefused) {
  std::string entries = kIbuprofenEntry;
  for (int i = 0; i < 1000; ++i) {
    absl::StrAppend(&entries, ",", kIbuprofenEntry);
  }
  ExpectInvalid(ParseCdsRequest(Request(entries)).status(), "context.draftOrders.entry");
  // 1000 are read.
  const size_t last = entries.rfind(",{");
  const absl::StatusOr<CdsRequest> thousand = ParseCdsRequest(Request(entries.substr(0, last)));
  ASSERT_TRUE(thousand.ok()) << thousand.status();
  EXPECT_EQ(thousand->draft_orders.size(), 1000u);

  std::string labs;
  for (int i = 0; i < 1001; ++i) {
    absl::StrAppend(&labs, i == 0 ? "" : ",", R"({"resource": {"resourceType": "OperationOutcome"}})");
  }
  ExpectInvalid(ParseCdsRequest(Request(kIbuprofenEntry, Prefetch("labs", absl::StrCat(
                                                                             R"({"resourceType": "Bundle", "entry": [)",
                                                                             labs, "]}"))))
                    .status(),
                "prefetch.labs.entry");
}

TEST(CdsRequestTest, DeepNestingIsRefused) {
  const std::string deep = absl::StrCat(std::string(100000, '['), std::string(100000, ']'));
  ExpectInvalid(ParseCdsRequest(absl::StrCat(R"({"hook": "order-sign", "extension": )", deep, "}")).status(), "body");
}

// Every prefix of a valid request, and the request with any one byte
// replaced, is read or refused: never a crash or an exception.
TEST(CdsRequestTest, TruncatedAndMutatedRequestsNeverCrash) {
  const std::string body = kOrderSignRequest;
  ASSERT_TRUE(ParseCdsRequest(body).ok());
  size_t refused = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    refused += ParseCdsRequest(absl::string_view(body).substr(0, i)).ok() ? 0u : 1u;
  }
  EXPECT_EQ(refused, body.size());
  for (size_t i = 0; i < body.size(); i += 7) {
    for (const char c : {'"', '1', '{'}) {
      std::string mutated = body;
      mutated[i] = c;
      const absl::StatusOr<CdsRequest> request = ParseCdsRequest(mutated);
      if (!request.ok()) {
        EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument) << request.status();
      }
    }
  }
}

}  // namespace
}  // namespace vigil::fhir
