#include "server/api/validation.h"

#include <cmath>
#include <string>
#include <tuple>
#include <type_traits>

#include "server/api/defaults.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/common/text.h"
#include "server/codes/clinical_codes.h"
#include "server/common/dates.h"

namespace vigil {
namespace {

// The path of a field, as error messages name it ("patient.labs[2].unit"),
// written out only when an error needs it: validating a valid request
// builds no strings. A path refers to its parent, which must outlive it.
class FieldPath {
 public:
  explicit FieldPath(absl::string_view root) : root_(root) {}
  // `name` under this path (".unit"); with `index`, its element ("[2]").
  FieldPath Field(absl::string_view name) const { return FieldPath(this, name, -1); }
  FieldPath Element(absl::string_view name, int index) const { return FieldPath(this, name, index); }

  std::string ToString() const {
    std::string out;
    AppendTo(&out);
    return out;
  }

 private:
  FieldPath(const FieldPath* parent, absl::string_view name, int index)
      : parent_(parent), root_(name), index_(index) {}

  void AppendTo(std::string* out) const {
    if (parent_ != nullptr) {
      parent_->AppendTo(out);
    }
    out->append(root_.data(), root_.size());
    if (index_ >= 0) {
      absl::StrAppend(out, "[", index_, "]");
    }
  }

  const FieldPath* parent_ = nullptr;
  absl::string_view root_;  // the root's name, or this field's name
  int index_ = -1;
};

absl::Status Invalid(const FieldPath& path, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(path.ToString(), ": ", message));
}

// Checks size and encoding of a string field.
absl::Status CheckString(absl::string_view value, const FieldPath& path, size_t max_bytes) {
  if (value.size() > max_bytes) {
    return Invalid(path, absl::StrCat("is ", value.size(), " bytes; at most ", max_bytes, " are allowed"));
  }
  if (!IsValidUtf8(value)) {
    return Invalid(path, "is not valid UTF-8");
  }
  return absl::OkStatus();
}

absl::Status CheckRequired(absl::string_view value, const FieldPath& path, size_t max_bytes) {
  if (auto st = CheckString(value, path, max_bytes); !st.ok()) {
    return st;
  }
  if (absl::StripAsciiWhitespace(value).empty()) {
    return Invalid(path, "is required and is empty");
  }
  return absl::OkStatus();
}

absl::Status ValidateCoding(const v1::Coding& coding, const FieldPath& path) {
  if (auto st = CheckRequired(coding.system(), path.Field(".system"), kMaxIdBytes); !st.ok()) {
    return st;
  }
  if (auto st = CheckRequired(coding.code(), path.Field(".code"), kMaxIdBytes); !st.ok()) {
    return st;
  }
  if (auto st = CheckString(coding.display(), path.Field(".display"), kMaxStringBytes); !st.ok()) {
    return st;
  }
  if (auto st = ValidateCode(coding.system(), coding.code()); !st.ok()) {
    return Invalid(path.Field(".code"), st.message());
  }
  return absl::OkStatus();
}

// A date as YYYY-MM-DD, and one that exists (not February 30).
bool IsDate(absl::string_view s) { return s.size() == 10 && ParseIsoDate(s).has_value(); }

// An order names its drug in `drug`, or in `coding` and `text` as an EHR
// sends them; a coding with a system or code needs both (a display alone is
// text).
absl::Status ValidateOrderDrug(const v1::MedicationOrder& order, const FieldPath& path) {
  const v1::Coding& coding = order.coding();
  if (!coding.system().empty() || !coding.code().empty()) {
    if (auto st = ValidateCoding(coding, path.Field(".coding")); !st.ok()) {
      return st;
    }
  } else if (auto st = CheckString(coding.display(), path.Field(".coding.display"), kMaxStringBytes); !st.ok()) {
    return st;
  }
  if (auto st = CheckString(order.text(), path.Field(".text"), kMaxStringBytes); !st.ok()) {
    return st;
  }
  const bool named_otherwise = !coding.code().empty() || !absl::StripAsciiWhitespace(coding.display()).empty() ||
                               !absl::StripAsciiWhitespace(order.text()).empty();
  if (named_otherwise) {
    return CheckString(order.drug(), path.Field(".drug"), kMaxStringBytes);
  }
  if (auto st = CheckString(order.drug(), path.Field(".drug"), kMaxStringBytes); !st.ok()) {
    return st;
  }
  if (absl::StripAsciiWhitespace(order.drug()).empty()) {
    return Invalid(path.Field(".drug"), "is required and is empty (or give coding or text)");
  }
  return absl::OkStatus();
}

absl::Status ValidateMedicationOrder(const v1::MedicationOrder& order, const FieldPath& path) {
  if (auto st = ValidateOrderDrug(order, path); !st.ok()) {
    return st;
  }
  if (auto st = CheckString(order.order_id(), path.Field(".order_id"), kMaxIdBytes); !st.ok()) {
    return st;
  }
  if (!std::isfinite(order.dose_value()) || order.dose_value() < 0) {
    return Invalid(path.Field(".dose_value"), "must be a finite number, 0 or more");
  }
  if (order.dose_value() > 0 && absl::StripAsciiWhitespace(order.dose_unit()).empty()) {
    return Invalid(path.Field(".dose_unit"), "is required when dose_value is given");
  }
  for (const auto& [value, name] :
       {std::pair<const std::string&, const char*>{order.dose_unit(), ".dose_unit"},
        {order.route(), ".route"},
        {order.frequency(), ".frequency"}}) {
    if (auto st = CheckString(value, path.Field(name), kMaxStringBytes); !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePatient(const v1::Patient& patient, const FieldPath& prefix) {
  if (auto st = CheckString(patient.id(), prefix.Field(".id"), kMaxIdBytes); !st.ok()) {
    return st;
  }
  if (const absl::string_view problem = IdentifierProblem(patient.id()); !problem.empty()) {
    return Invalid(prefix.Field(".id"), problem);
  }
  for (const auto& [count, limit, field] :
       {std::tuple<int, int, const char*>{patient.medications_size(), kMaxMedications, ".medications"},
        {patient.conditions_size(), kMaxConditions, ".conditions"},
        {patient.allergies_size(), kMaxAllergies, ".allergies"},
        {patient.labs_size(), kMaxLabs, ".labs"}}) {
    if (count > limit) {
      return Invalid(prefix.Field(field), absl::StrCat("has ", count, " entries; at most ", limit, " are allowed"));
    }
  }
  for (int i = 0; i < patient.conditions_size(); ++i) {
    const FieldPath condition = prefix.Element(".conditions", i);
    const FieldPath path = condition.Field(".code");
    if (!patient.conditions(i).has_code()) {
      return Invalid(path, "is required");
    }
    if (auto st = ValidateCoding(patient.conditions(i).code(), path); !st.ok()) {
      return st;
    }
  }
  for (int i = 0; i < patient.allergies_size(); ++i) {
    const auto& allergy = patient.allergies(i);
    const FieldPath path = prefix.Element(".allergies", i);
    if (auto st = CheckRequired(allergy.substance(), path.Field(".substance"), kMaxStringBytes); !st.ok()) {
      return st;
    }
    if (auto st = CheckString(allergy.reaction(), path.Field(".reaction"), kMaxStringBytes); !st.ok()) {
      return st;
    }
    if (!v1::AllergyCriticality_IsValid(allergy.criticality())) {
      return Invalid(path.Field(".criticality"), absl::StrCat("unknown value ", allergy.criticality()));
    }
  }
  for (int i = 0; i < patient.medications_size(); ++i) {
    if (auto st = ValidateMedicationOrder(patient.medications(i), prefix.Element(".medications", i)); !st.ok()) {
      return st;
    }
  }
  for (int i = 0; i < patient.labs_size(); ++i) {
    const auto& lab = patient.labs(i);
    const FieldPath path = prefix.Element(".labs", i);
    const FieldPath code = path.Field(".code");
    if (!lab.has_code()) {
      return Invalid(code, "is required");
    }
    if (lab.code().system() != kLoincSystem) {
      return Invalid(code.Field(".system"),
                     absl::StrCat("must be ", kLoincSystem, " (lab results are coded in LOINC)"));
    }
    if (auto st = ValidateCoding(lab.code(), code); !st.ok()) {
      return st;
    }
    if (!std::isfinite(lab.value())) {
      return Invalid(path.Field(".value"), "must be a finite number");
    }
    if (std::fabs(lab.value()) > 1e9) {
      return Invalid(path.Field(".value"), absl::StrCat(lab.value(), " is not a plausible lab value"));
    }
    if (auto st = CheckRequired(lab.unit(), path.Field(".unit"), kMaxIdBytes); !st.ok()) {
      return st;
    }
    // Every unit Vigil converts measures a quantity that cannot be negative
    // (clearances, concentrations, enzyme activities, INR, durations, mass).
    // A negative value there is a data error; screened, it would raise or
    // clear alerts on a number nobody measured. Units Vigil does not convert
    // are left to screening, which reports them as uninterpretable.
    if (lab.value() < 0 && CanonicalizeUnit(lab.unit()).has_value()) {
      return Invalid(path.Field(".value"), absl::StrCat(lab.value(), " is negative, which a measurement in '",
                                                          lab.unit(), "' cannot be"));
    }
    if (auto st = CheckString(lab.effective_time(), path.Field(".effective_time"), kMaxIdBytes); !st.ok()) {
      return st;
    }
    // The latest result decides and its age is weighed: a time that cannot
    // be read would decide wrongly.
    if (!lab.effective_time().empty() && !ParseIsoDate(lab.effective_time()).has_value()) {
      return Invalid(path.Field(".effective_time"), "must be an ISO 8601 date or date-time (YYYY-MM-DD...)");
    }
  }
  if (!patient.birth_date().empty() && !IsDate(patient.birth_date())) {
    return Invalid(prefix.Field(".birth_date"), "must be a date as YYYY-MM-DD");
  }
  if (!v1::Sex_IsValid(patient.sex())) {
    return Invalid(prefix.Field(".sex"), absl::StrCat("unknown value ", patient.sex()));
  }
  if (!std::isfinite(patient.weight_kg()) || patient.weight_kg() < 0 || patient.weight_kg() > 1000) {
    return Invalid(prefix.Field(".weight_kg"), "must be a number from 0 (unknown) to 1000");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidatePatient(const v1::Patient& patient, const std::string& prefix) {
  return ValidatePatient(patient, FieldPath(prefix));
}

absl::Status ValidateMedicationOrder(const v1::MedicationOrder& order, const std::string& path) {
  return ValidateMedicationOrder(order, FieldPath(path));
}

template <typename CheckRequest>
absl::Status ValidateCheckRequest(const CheckRequest& request) {
  const FieldPath proposed("proposed_medications");
  if (!v1::AlertView_IsValid(request.view())) {
    return Invalid(FieldPath("view"), absl::StrCat("unknown alert view ", request.view()));
  }
  if constexpr (std::is_same_v<CheckRequest, v1::CheckMedicationsRequest>) {
    if (request.max_alerts_per_message() < 0 || request.max_alerts_per_message() > api::kMaxAlertsPerMessage) {
      return Invalid(FieldPath("max_alerts_per_message"),
                     absl::StrCat("must be from 0 to ", api::kMaxAlertsPerMessage, "; got ",
                                  request.max_alerts_per_message()));
    }
  }
  if (!request.as_of().empty() &&
      (request.as_of().size() > 64 || !ParseIsoDate(request.as_of()).has_value())) {
    return Invalid(FieldPath("as_of"), "must be an ISO 8601 date or date-time (YYYY-MM-DD...)");
  }
  if (!request.patient_id().empty()) {
    if (request.has_patient()) {
      return Invalid(FieldPath("patient_id"), "give either patient or patient_id, not both");
    }
    if (auto st = CheckRequired(request.patient_id(), FieldPath("patient_id"), kMaxIdBytes); !st.ok()) {
      return st;
    }
    if (const absl::string_view problem = IdentifierProblem(request.patient_id()); !problem.empty()) {
      return Invalid(FieldPath("patient_id"), problem);
    }
    if (request.proposed_medications_size() > kMaxMedications) {
      return Invalid(proposed,
                     absl::StrCat("has ", request.proposed_medications_size(), " entries; at most ",
                                  kMaxMedications, " are allowed"));
    }
    for (int i = 0; i < request.proposed_medications_size(); ++i) {
      if (auto st = ValidateMedicationOrder(request.proposed_medications(i), proposed.Element("", i)); !st.ok()) {
        return st;
      }
    }
    return absl::OkStatus();
  }
  if (!request.has_patient()) {
    return Invalid(FieldPath("patient"), "is required (or patient_id of a stored patient)");
  }
  if (request.proposed_medications_size() > kMaxMedications) {
    return Invalid(proposed,
                   absl::StrCat("has ", request.proposed_medications_size(), " entries; at most ",
                                kMaxMedications, " are allowed"));
  }
  if (auto st = ValidatePatient(request.patient(), FieldPath("patient")); !st.ok()) {
    return st;
  }
  for (int i = 0; i < request.proposed_medications_size(); ++i) {
    if (auto st = ValidateMedicationOrder(request.proposed_medications(i), proposed.Element("", i)); !st.ok()) {
      return st;
    }
  }
  if (request.proposed_medications_size() == 0 && request.patient().medications_size() == 0) {
    return Invalid(proposed,
                   "nothing to screen: give proposed_medications, or patient.medications to review the current list");
  }
  return absl::OkStatus();
}

template absl::Status ValidateCheckRequest(const v1::CheckMedicationsRequest&);
template absl::Status ValidateCheckRequest(const v1::CheckMedicationsUnaryRequest&);

absl::Status ValidatePatientId(const std::string& patient_id, const std::string& field) {
  if (absl::StripAsciiWhitespace(patient_id).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": is required and is empty"));
  }
  if (patient_id.size() > kMaxIdBytes || !IsValidUtf8(patient_id)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must be valid UTF-8 of at most ", kMaxIdBytes, " bytes"));
  }
  if (const absl::string_view problem = IdentifierProblem(patient_id); !problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
  }
  return absl::OkStatus();
}

absl::Status ValidateSubscribeRequest(const v1::SubscribeRequest& request) {
  if (request.patient_ids_size() > api::kMaxSubscribedPatients) {
    return absl::InvalidArgumentError("patient_ids: at most 1000 are allowed");
  }
  for (int i = 0; i < request.patient_ids_size(); ++i) {
    if (auto st = ValidatePatientId(request.patient_ids(i), absl::StrCat("patient_ids[", i, "]")); !st.ok()) {
      return st;
    }
  }
  for (int i = 0; i < request.kinds_size(); ++i) {
    if (!v1::AlertKind_IsValid(request.kinds(i)) || request.kinds(i) == v1::ALERT_KIND_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat("kinds[", i, "]: unknown alert kind ", request.kinds(i)));
    }
  }
  if (!v1::Severity_IsValid(request.min_severity())) {
    return absl::InvalidArgumentError(absl::StrCat("min_severity: unknown severity ", request.min_severity()));
  }
  if (request.has_after_event_number() && request.after_event_number() < 0) {
    return absl::InvalidArgumentError("after_event_number: must be 0 or more");
  }
  if (request.heartbeat_interval_seconds() < 0 || request.heartbeat_interval_seconds() > api::kMaxHeartbeatSeconds) {
    return absl::InvalidArgumentError("heartbeat_interval_seconds: must be from 1 to 300, or 0 for the default");
  }
  if (request.max_events_per_message() < 0 || request.max_events_per_message() > api::kMaxEventsPerMessage) {
    return absl::InvalidArgumentError(absl::StrCat("max_events_per_message: must be from 0 to ", api::kMaxEventsPerMessage,
                                                   " (0 or 1: one event per message), not ",
                                                   request.max_events_per_message()));
  }
  return absl::OkStatus();
}

absl::Status ValidateAcknowledgeRequest(const v1::AcknowledgeAlertRequest& request) {
  if (absl::StripAsciiWhitespace(request.alert_id()).empty()) {
    return absl::InvalidArgumentError("alert_id: is required and is empty");
  }
  if (request.alert_id().size() > kMaxIdBytes) {
    return absl::InvalidArgumentError("alert_id: is too long");
  }
  if (request.outcome() != v1::ACKNOWLEDGEMENT_OUTCOME_ACCEPTED &&
      request.outcome() != v1::ACKNOWLEDGEMENT_OUTCOME_OVERRIDDEN) {
    return absl::InvalidArgumentError("outcome: must be ACKNOWLEDGEMENT_OUTCOME_ACCEPTED or _OVERRIDDEN");
  }
  if (request.outcome() == v1::ACKNOWLEDGEMENT_OUTCOME_OVERRIDDEN &&
      absl::StripAsciiWhitespace(request.reason().code()).empty()) {
    return absl::InvalidArgumentError("reason.code: an override needs a reason");
  }
  if (absl::StripAsciiWhitespace(request.user()).empty()) {
    return absl::InvalidArgumentError("user: is required and is empty");
  }
  if (request.user().size() > kMaxIdBytes || !IsValidUtf8(request.user())) {
    return absl::InvalidArgumentError("user: must be valid UTF-8 of at most 256 bytes");
  }
  if (request.comment().size() > 4096 || !IsValidUtf8(request.comment())) {
    return absl::InvalidArgumentError("comment: must be valid UTF-8 of at most 4096 bytes");
  }
  for (const auto* field : {&request.reason().system(), &request.reason().code(), &request.reason().display()}) {
    if (field->size() > 1024 || !IsValidUtf8(*field)) {
      return absl::InvalidArgumentError("reason: fields must be valid UTF-8 of at most 1024 bytes");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateListAlertsRequest(const v1::ListAlertsRequest& request) {
  if (auto st = ValidatePatientId(request.patient_id(), "patient_id"); !st.ok()) {
    return st;
  }
  if (request.page_size() < 0 || request.page_size() > api::kMaxAlertsPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: must be from 0 to ", api::kMaxAlertsPageSize));
  }
  return absl::OkStatus();
}

absl::Status ValidateListAuditEventsRequest(const v1::ListAuditEventsRequest& request) {
  if (request.page_size() < 0 || request.page_size() > api::kMaxAuditPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: must be from 0 to ", api::kMaxAuditPageSize));
  }
  if (request.after_id() < 0) {
    return absl::InvalidArgumentError("after_id: must be 0 or more");
  }
  return absl::OkStatus();
}

}  // namespace vigil
