// A CDS Hooks 2.0 request (order-select, order-sign) read into vigil.v1: the
// draft orders of context.draftOrders (a FHIR R4 Bundle of MedicationRequest)
// become the proposed medications; the prefetched Patient, Condition,
// AllergyIntolerance, MedicationRequest / MedicationStatement and Observation
// resources become the patient's context. Tolerates the STU3 shapes real test
// data still uses (a string clinicalStatus or verificationStatus, a
// MedicationRequest's dosageInstruction[].doseQuantity, a
// MedicationStatement's `taken`...).
#ifndef VIGIL_SERVER_FHIR_CDS_REQUEST_H_
#define VIGIL_SERVER_FHIR_CDS_REQUEST_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "vigil/v1/patient.pb.h"

namespace vigil::fhir {

inline constexpr char kOrderSelect[] = "order-select";
inline constexpr char kOrderSign[] = "order-sign";

// The prefetch keys Vigil's services ask for, with their FHIR queries.
struct PrefetchTemplate {
  std::string key;
  // A FHIR query with CDS Hooks tokens, such as
  // "Condition?patient={{context.patientId}}&clinical-status=active".
  std::string query;
};

// The prefetch templates: "patient", "conditions" (clinical-status active,
// recurrence or relapse), "allergies" (all: their status is read here),
// "medications" (active or on-hold MedicationRequest), "statements" (active
// or intended MedicationStatement) and "labs" (Observation with the LOINC
// codes given: the codes the knowledge base's lab rules read, and body
// weight 29463-7; sorted, deduplicated, newest first with _sort=-date).
std::vector<PrefetchTemplate> PrefetchTemplates(const std::vector<std::string>& lab_loinc_codes);

struct CdsRequest {
  std::string hook;           // "order-select" or "order-sign"
  std::string hook_instance;  // hookInstance
  std::string fhir_server;    // fhirServer, may be empty
  // fhirAuthorization.access_token and token_type, when given.
  std::string fhir_access_token;
  std::string fhir_token_type;
  // context.userId ("Practitioner/123"), context.patientId, context.encounterId.
  std::string user_id;
  std::string patient_id;
  std::string encounter_id;
  // context.selections: the references ("MedicationRequest/abc") of the draft
  // orders the user selected (order-select); empty for order-sign. Each
  // names an entry of draftOrders ("<type>/<id>" or its fullUrl), or the
  // request is refused.
  std::vector<std::string> selections;
  // The draft orders, in Bundle order. Each has `coding` (the first RxNorm
  // coding of medicationCodeableConcept, else its first coding; a
  // medicationReference to a contained Medication or one in the Bundle is
  // followed), `text` (CodeableConcept.text), `order_id` ("MedicationRequest/
  // <id>", or "draftOrders.entry[i]" without an id), dose, route and
  // frequency from the first dosageInstruction. `drug` stays empty. When no
  // coding has a system and a code, a coding's display serves as text. The
  // dose is doseAndRate[0].doseQuantity (STU3: doseQuantity), else the high
  // end of doseRange; its unit is the UCUM code, else Quantity.unit. The
  // route is route.text, else a display; frequency is timing.code's text or
  // display, else timing.repeat in words ("twice a day", "every 8 hours").
  // Entries that are other order types the hooks carry (ServiceRequest,
  // NutritionOrder, DeviceRequest...) and Medication resources (targets of
  // medicationReference) are not medication orders; any other resource
  // type is an error.
  std::vector<v1::MedicationOrder> draft_orders;
  // The patient's context from the prefetch: id (context.patientId),
  // birth_date and sex (Patient), weight_kg (the latest body weight
  // Observation, LOINC 29463-7, in kg), conditions (active ones; a resolved,
  // inactive or refuted condition is skipped, entered-in-error too),
  // allergies (active; refuted and entered-in-error skipped; substance is
  // the code's display or text, else "system|code"; criticality), current
  // medications (active or on-hold MedicationRequest, active or intended
  // MedicationStatement, orders as draft_orders are read) and labs
  // (Observation with a valueQuantity; final, amended, corrected or
  // preliminary; code is the first LOINC coding).
  //
  // In detail: a status that is absent is read as current. A condition
  // becomes one v1 Condition per ICD-10-CM or SNOMED CT coding (both are
  // matched), else its first coding with a system and code; a condition
  // with no such coding (text only) is an error. The allergy substance is
  // an RxNorm coding's display, else the text, else any display, else
  // "system|code"; a "no known allergy" SNOMED CT code is no allergy;
  // reaction is the first manifestation, else the reaction's description.
  // A STU3 MedicationStatement with taken "n" is not current. A birthDate
  // with a day is kept; a partial one (YYYY, YYYY-MM) leaves birth_date
  // empty (unknown) rather than invent a day. A lab's unit is the UCUM
  // code, else Quantity.unit, and is required; a comparator (">60") is
  // dropped and the bound read as the value; effective_time is the first
  // full date of effectiveDateTime, effectivePeriod.start,
  // effectiveInstant and issued, as FHIR wrote it (partial dates are passed
  // over). Body-weight Observations are labs too; weight_kg is the latest
  // in kg, g or [lb_av]. Codes chosen are checked (ValidateCode); a
  // resource whose subject or patient reference, or a Patient whose id,
  // names another patient than context.patientId is an error.
  v1::Patient patient;
  // The prefetch keys of PrefetchTemplates that were absent or null in the
  // request, in template order: the caller fetches them from fhir_server or
  // answers 412. (CDS Hooks sends null when the client has no data: the
  // fetch then finds none, at the cost of a round trip.) Keys of `prefetch`
  // that are not Vigil's are ignored.
  std::vector<std::string> missing_prefetch;
};

// Reads a hook request body. Malformed JSON, or JSON that is not the shape
// CDS Hooks and FHIR R4 give it, fails with INVALID_ARGUMENT and a message
// that starts with the path of the problem, such as
// "context.draftOrders.entry[1].resource.resourceType: is \"Observation\";
// a draft order is a MedicationRequest". Unknown members are ignored (FHIR
// resources carry many). A draft order or a resource Vigil cannot read
// (no code, no text) is an error naming its path, never skipped silently.
// Limits: at most 1000 draft orders, selections, entries of one prefetched
// Bundle and codings of one CodeableConcept; JSON nested at most 64 deep.
// Malformed JSON is "body: is not JSON (syntax error at byte N)". Nothing
// throws.
absl::StatusOr<CdsRequest> ParseCdsRequest(absl::string_view body);

// Applies what the FHIR server returned for prefetch key `key` (a resource
// or a searchset Bundle) to `request` as if it had been prefetched, and
// removes `key` from missing_prefetch. Errors as ParseCdsRequest's, with the
// path starting at "<key>" ("conditions.entry[0].resource.code: ..."); on
// an error `request` is unchanged. A key that is not one of
// PrefetchTemplates is INVALID_ARGUMENT ("key: ..."); a key not in
// missing_prefetch (already read) is FAILED_PRECONDITION, since reading it
// twice would list its medications twice. A body of JSON null is no data.
absl::Status ApplyPrefetch(absl::string_view key, absl::string_view body, CdsRequest& request);

}  // namespace vigil::fhir

#endif  // VIGIL_SERVER_FHIR_CDS_REQUEST_H_
