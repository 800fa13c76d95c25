#include "server/fhir/cds_request.h"

#include <algorithm>
#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "server/codes/clinical_codes.h"
#include "server/common/dates.h"

namespace vigil::fhir {
namespace {

using Json = nlohmann::json;

// The most draft orders, selections, entries of one prefetched Bundle and
// codings of one CodeableConcept read: more is refused, never truncated.
constexpr size_t kMaxEntries = 1000;
// JSON nested deeper than this is refused. FHIR resources nest about ten
// levels (a Bundle in the prefetch, a contained Medication, an extension in
// an extension); nlohmann's parser keeps its own stack on the heap, and
// nothing here recurses over the document.
constexpr int kMaxDepth = 64;
constexpr char kUcumSystem[] = "http://unitsofmeasure.org";
constexpr char kBodyWeightLoinc[] = "29463-7";

// The prefetch keys, in template order.
constexpr const char* kPrefetchKeys[] = {"patient", "conditions", "allergies", "medications", "statements", "labs"};

// The path of a JSON value, as error messages name it
// ("context.draftOrders.entry[1].resource.code"), written out only when an
// error needs it. A path refers to its parent, which must outlive it: pass
// `path.Member("x")` as an argument, never keep a chain of temporaries.
class Path {
 public:
  // The root ("context", "prefetch", a prefetch key); "" for the body's own
  // members ("hook").
  explicit Path(absl::string_view root) : name_(root) {}
  // The member `name` (which may itself be a chain: "doseRange.high").
  Path Member(absl::string_view name) const { return Path(this, name, kNoIndex); }
  // The element `index` of this array.
  Path Index(size_t index) const { return Path(this, "", index); }

  std::string ToString() const {
    std::string out;
    AppendTo(&out);
    return out;
  }

 private:
  static constexpr size_t kNoIndex = static_cast<size_t>(-1);

  Path(const Path* parent, absl::string_view name, size_t index) : parent_(parent), name_(name), index_(index) {}

  void AppendTo(std::string* out) const {
    if (parent_ != nullptr) {
      parent_->AppendTo(out);
    }
    if (index_ != kNoIndex) {
      absl::StrAppend(out, "[", index_, "]");
      return;
    }
    if (!out->empty()) {
      out->push_back('.');
    }
    out->append(name_.data(), name_.size());
  }

  const Path* parent_ = nullptr;
  absl::string_view name_;
  size_t index_ = kNoIndex;
};

absl::Status Invalid(const Path& path, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(path.ToString(), ": ", message));
}

// A value from the request, quoted for a message: escaped, at most 64 bytes.
std::string Quote(absl::string_view value) {
  const bool clamped = value.size() > 64;
  return absl::StrCat("\"", absl::CHexEscape(value.substr(0, 64)), clamped ? "...\"" : "\"");
}

absl::string_view TypeName(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::binary:
    case Json::value_t::discarded:
      return "not a JSON value";
    default:
      return "a number";
  }
}

absl::Status WrongType(const Json& value, const Path& path, absl::string_view expected) {
  return Invalid(path, absl::StrCat("is ", TypeName(value), "; ", expected, " is expected"));
}

// The member `name` of `object` (an object), or null when it is absent or
// JSON null.
const Json* Find(const Json& object, const char* name) {
  const auto it = object.find(name);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

// True when `value` is the string `text`.
bool IsText(const Json* value, absl::string_view text) {
  return value != nullptr && value->is_string() && value->get_ref<const std::string&>() == text;
}

// Reads the string member `name` of `object`: empty when absent.
absl::Status GetString(const Json& object, const char* name, const Path& path, std::string* out) {
  out->clear();
  const Json* value = Find(object, name);
  if (value == nullptr) {
    return absl::OkStatus();
  }
  if (!value->is_string()) {
    return WrongType(*value, path.Member(name), "a string");
  }
  *out = value->get_ref<const std::string&>();
  return absl::OkStatus();
}

// As GetString, for a member that must be there and not be blank.
absl::Status GetRequiredString(const Json& object, const char* name, const Path& path, std::string* out) {
  if (auto st = GetString(object, name, path, out); !st.ok()) {
    return st;
  }
  if (absl::StripAsciiWhitespace(*out).empty()) {
    return Invalid(path.Member(name), out->empty() ? "is required" : "is required and is blank");
  }
  return absl::OkStatus();
}

// Points `out` at the object member `name` of `object`, or null when absent.
absl::Status GetObject(const Json& object, const char* name, const Path& path, const Json** out) {
  *out = Find(object, name);
  if (*out != nullptr && !(*out)->is_object()) {
    return WrongType(**out, path.Member(name), "an object");
  }
  return absl::OkStatus();
}

// Points `out` at the array member `name` of `object` (at most kMaxEntries
// elements), or null when absent.
absl::Status GetArray(const Json& object, const char* name, const Path& path, const Json** out) {
  *out = Find(object, name);
  if (*out == nullptr) {
    return absl::OkStatus();
  }
  if (!(*out)->is_array()) {
    return WrongType(**out, path.Member(name), "an array");
  }
  if ((*out)->size() > kMaxEntries) {
    return Invalid(path.Member(name),
                   absl::StrCat("has ", (*out)->size(), " elements; at most ", kMaxEntries, " are read"));
  }
  return absl::OkStatus();
}

// Reads the number member `name` of `object`: nullopt when absent.
absl::Status GetNumber(const Json& object, const char* name, const Path& path, std::optional<double>* out) {
  out->reset();
  const Json* value = Find(object, name);
  if (value == nullptr) {
    return absl::OkStatus();
  }
  if (!value->is_number()) {
    return WrongType(*value, path.Member(name), "a number");
  }
  *out = value->get<double>();
  return absl::OkStatus();
}

// Parses `body`; errors name `path` ("body", or a prefetch key).
absl::Status ParseJson(absl::string_view body, absl::string_view path, Json* out) {
  bool too_deep = false;
  const Json::parser_callback_t limit = [&too_deep](int depth, Json::parse_event_t, Json&) {
    if (depth > kMaxDepth) {
      too_deep = true;
      return false;
    }
    return true;
  };
  try {
    *out = Json::parse(body.begin(), body.end(), limit);
  } catch (const Json::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is not JSON (syntax error at byte ", e.byte, ")"));
  } catch (const Json::exception&) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is not JSON (a number is out of range)"));
  }
  if (too_deep) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": nests JSON deeper than ", kMaxDepth, " levels"));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// FHIR datatypes.

// One Coding of a CodeableConcept, with its index in `coding`.
struct Coded {
  std::string system;
  std::string code;
  std::string display;
  size_t index = 0;
};

struct Concept {
  std::vector<Coded> codings;
  std::string text;

  // The first coding in `system` with a code, else the first coding with a
  // system and a code (a code without its system means nothing); null when
  // there is none.
  const Coded* Choose(absl::string_view system) const {
    for (const Coded& c : codings) {
      if (c.system == system && !c.code.empty()) {
        return &c;
      }
    }
    for (const Coded& c : codings) {
      if (!c.system.empty() && !c.code.empty()) {
        return &c;
      }
    }
    return nullptr;
  }

  // The first non-blank display, or empty.
  std::string FirstDisplay() const {
    for (const Coded& c : codings) {
      if (!absl::StripAsciiWhitespace(c.display).empty()) {
        return c.display;
      }
    }
    return "";
  }

  // Text for people: `text`, else the first display, else the first code.
  std::string Name() const {
    if (!absl::StripAsciiWhitespace(text).empty()) {
      return text;
    }
    std::string display = FirstDisplay();
    if (display.empty() && !codings.empty()) {
      return codings.front().code;
    }
    return display;
  }
};

absl::Status ReadConcept(const Json& value, const Path& path, Concept* out) {
  if (!value.is_object()) {
    return WrongType(value, path, "a CodeableConcept (an object)");
  }
  if (auto st = GetString(value, "text", path, &out->text); !st.ok()) {
    return st;
  }
  const Json* codings = nullptr;
  if (auto st = GetArray(value, "coding", path, &codings); !st.ok() || codings == nullptr) {
    return st;
  }
  const Path codings_path = path.Member("coding");
  for (size_t i = 0; i < codings->size(); ++i) {
    const Json& coding = (*codings)[i];
    const Path element = codings_path.Index(i);
    if (!coding.is_object()) {
      return WrongType(coding, element, "a Coding (an object)");
    }
    Coded c;
    c.index = i;
    for (const auto& [name, field] : {std::pair<const char*, std::string*>{"system", &c.system},
                                      {"code", &c.code},
                                      {"display", &c.display}}) {
      if (auto st = GetString(coding, name, element, field); !st.ok()) {
        return st;
      }
    }
    out->codings.push_back(std::move(c));
  }
  return absl::OkStatus();
}

// Checks the shape of a chosen code (RxNorm digits, LOINC check digit...).
absl::Status CheckCode(const Coded& coded, const Path& concept_path) {
  if (auto st = ValidateCode(coded.system, coded.code); !st.ok()) {
    const Path codings = concept_path.Member("coding");
    return Invalid(codings.Index(coded.index).Member("code"), st.message());
  }
  return absl::OkStatus();
}

void SetCoding(const Coded& coded, v1::Coding* coding) {
  coding->set_system(coded.system);
  coding->set_code(coded.code);
  coding->set_display(coded.display);
}

// A Quantity: its value (nullopt when absent) and unit (the UCUM code when
// the system is UCUM, else `unit`, else `code`).
struct Quantity {
  std::optional<double> value;
  std::string unit;
};

absl::Status ReadQuantity(const Json& value, const Path& path, Quantity* out) {
  if (!value.is_object()) {
    return WrongType(value, path, "a Quantity (an object)");
  }
  if (auto st = GetNumber(value, "value", path, &out->value); !st.ok()) {
    return st;
  }
  std::string unit, system, code;
  for (const auto& [name, field] : {std::pair<const char*, std::string*>{"unit", &unit},
                                    {"system", &system},
                                    {"code", &code}}) {
    if (auto st = GetString(value, name, path, field); !st.ok()) {
      return st;
    }
  }
  out->unit = system == kUcumSystem && !code.empty() ? code : !unit.empty() ? unit : code;
  return absl::OkStatus();
}

// The code of a status: an R4 CodeableConcept (its first code, else its
// text) or an STU3 code string; lowercase, empty when absent.
absl::Status ReadStatus(const Json& resource, const char* name, const Path& path, std::string* out) {
  out->clear();
  const Json* value = Find(resource, name);
  if (value == nullptr) {
    return absl::OkStatus();
  }
  if (value->is_string()) {
    *out = absl::AsciiStrToLower(value->get_ref<const std::string&>());
    return absl::OkStatus();
  }
  if (!value->is_object()) {
    return WrongType(*value, path.Member(name), "a code (a string) or a CodeableConcept (an object)");
  }
  Concept concept;
  if (auto st = ReadConcept(*value, path.Member(name), &concept); !st.ok()) {
    return st;
  }
  for (const Coded& c : concept.codings) {
    if (!c.code.empty()) {
      *out = absl::AsciiStrToLower(c.code);
      return absl::OkStatus();
    }
  }
  *out = absl::AsciiStrToLower(absl::StripAsciiWhitespace(concept.text));
  return absl::OkStatus();
}

bool IsOneOf(absl::string_view value, std::initializer_list<absl::string_view> values) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

// How a FHIR date reads: a full date (YYYY-MM-DD, possibly with a time), a
// partial one (YYYY or YYYY-MM), or not a date.
enum class DateShape { kFull, kPartial, kInvalid };

DateShape ShapeOfDate(absl::string_view text) {
  if (ParseIsoDate(text).has_value()) {
    return DateShape::kFull;
  }
  const auto digits = [&text](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) {
        return false;
      }
    }
    return true;
  };
  if ((text.size() == 4 && digits(0, 4)) ||
      (text.size() == 7 && digits(0, 4) && text[4] == '-' && digits(5, 7) && text[5] <= '1')) {
    return DateShape::kPartial;
  }
  return DateShape::kInvalid;
}

// ---------------------------------------------------------------------------
// References.

// Where a resource was found: the entries of its Bundle (null for a lone
// resource), for references to other entries, and the patient in context.
struct Source {
  absl::string_view patient_id;
  const Json* entries = nullptr;
  const Path* bundle = nullptr;
};

// Refuses a resource about another patient: its reference `name`
// ("subject", "patient") names Patient/<id> with an id other than the
// patient's. Other references (urn:uuid:..., contained) are not checked.
absl::Status CheckPatient(const Json& resource, const char* name, const Path& path, const Source& source) {
  const Json* subject = nullptr;
  if (auto st = GetObject(resource, name, path, &subject); !st.ok() || subject == nullptr) {
    return st;
  }
  const Path subject_path = path.Member(name);
  std::string reference;
  if (auto st = GetString(*subject, "reference", subject_path, &reference); !st.ok()) {
    return st;
  }
  absl::string_view ref = reference;
  if (const size_t history = ref.find("/_history/"); history != absl::string_view::npos) {
    ref = ref.substr(0, history);
  }
  const size_t at = ref.rfind("Patient/");
  if (at == absl::string_view::npos || (at > 0 && ref[at - 1] != '/') || source.patient_id.empty()) {
    return absl::OkStatus();
  }
  if (ref.substr(at + 8) != source.patient_id) {
    return Invalid(subject_path.Member("reference"),
                   absl::StrCat("is ", Quote(reference), ", another patient than context.patientId ",
                                Quote(source.patient_id)));
  }
  return absl::OkStatus();
}

// A Medication a medicationReference names, with the path of its code.
struct FoundMedication {
  const Json* resource = nullptr;
  std::string code_path;
};

bool IsMedication(const Json& value, absl::string_view id) {
  if (!value.is_object()) {
    return false;
  }
  const Json* type = Find(value, "resourceType");
  const Json* value_id = Find(value, "id");
  return IsText(type, "Medication") && value_id != nullptr && value_id->is_string() &&
         (id.empty() || IsText(value_id, id));
}

// Finds the Medication `reference` names: "#id" among the resource's
// contained resources; "Medication/id", an absolute URL ending so, or an
// entry's fullUrl among the Bundle's entries.
FoundMedication FindMedication(const Json& resource, const Path& path, absl::string_view reference,
                               const Source& source) {
  FoundMedication found;
  if (absl::StartsWith(reference, "#")) {
    const Json* contained = Find(resource, "contained");
    for (size_t i = 0; contained != nullptr && contained->is_array() && i < contained->size(); ++i) {
      if (IsMedication((*contained)[i], reference.substr(1))) {
        found.resource = &(*contained)[i];
        found.code_path = absl::StrCat(path.ToString(), ".contained[", i, "].code");
        return found;
      }
    }
    return found;
  }
  for (size_t i = 0; source.entries != nullptr && i < source.entries->size(); ++i) {
    const Json& entry = (*source.entries)[i];
    const Json* medication = entry.is_object() ? Find(entry, "resource") : nullptr;
    if (medication == nullptr || !IsMedication(*medication, "")) {
      continue;
    }
    const Json* full_url = Find(entry, "fullUrl");
    const std::string local = absl::StrCat("Medication/", Find(*medication, "id")->get_ref<const std::string&>());
    if (IsText(full_url, reference) || reference == local ||
        absl::EndsWith(reference, absl::StrCat("/", local))) {
      found.resource = medication;
      found.code_path = absl::StrCat(source.bundle->ToString(), ".entry[", i, "].resource.code");
      return found;
    }
  }
  return found;
}

// ---------------------------------------------------------------------------
// MedicationRequest and MedicationStatement.

// Sets the order's coding (the first RxNorm coding, else the first with a
// system and code) and text (the concept's text, else a display when no
// coding has a code). False when the concept names no drug.
absl::Status FillDrug(const Concept& concept, const Path& path, v1::MedicationOrder* order, bool* named) {
  if (const Coded* coded = concept.Choose(kRxNormSystem); coded != nullptr) {
    if (auto st = CheckCode(*coded, path); !st.ok()) {
      return st;
    }
    SetCoding(*coded, order->mutable_coding());
  }
  order->set_text(concept.text);
  if (!order->has_coding() && absl::StripAsciiWhitespace(concept.text).empty()) {
    order->set_text(concept.FirstDisplay());
  }
  *named = order->has_coding() || !absl::StripAsciiWhitespace(order->text()).empty();
  return absl::OkStatus();
}

absl::Status ReadDrugReference(const Json& resource, const Json& ref, const Path& path, const Source& source,
                               v1::MedicationOrder* order) {
  const Path ref_path = path.Member("medicationReference");
  std::string reference, display;
  if (auto st = GetString(ref, "reference", ref_path, &reference); !st.ok()) {
    return st;
  }
  if (auto st = GetString(ref, "display", ref_path, &display); !st.ok()) {
    return st;
  }
  const FoundMedication found = FindMedication(resource, path, reference, source);
  const Json* code = nullptr;
  if (found.resource != nullptr && (code = Find(*found.resource, "code")) != nullptr) {
    const Path code_path(found.code_path);
    Concept concept;
    bool named = false;
    if (auto st = ReadConcept(*code, code_path, &concept); !st.ok()) {
      return st;
    }
    if (auto st = FillDrug(concept, code_path, order, &named); !st.ok() || named) {
      return st;
    }
  }
  if (!absl::StripAsciiWhitespace(display).empty()) {
    order->set_text(display);
    return absl::OkStatus();
  }
  if (found.resource != nullptr) {
    return Invalid(ref_path, absl::StrCat("refers to ", Quote(reference),
                                          ", a Medication with no coded code or text, and has no display"));
  }
  return Invalid(ref_path, absl::StrCat("refers to ", Quote(reference),
                                        ", which is neither contained nor in the Bundle, and has no display"));
}

// The drug of an order: medicationCodeableConcept, or the Medication its
// medicationReference names. An order that does not say which drug is an
// error: it is never dropped.
absl::Status ReadDrug(const Json& resource, const Path& path, const Source& source, v1::MedicationOrder* order) {
  const Json* concept_json = Find(resource, "medicationCodeableConcept");
  const Json* reference = nullptr;
  if (auto st = GetObject(resource, "medicationReference", path, &reference); !st.ok()) {
    return st;
  }
  if (concept_json == nullptr && reference != nullptr) {
    return ReadDrugReference(resource, *reference, path, source, order);
  }
  const Path concept_path = path.Member("medicationCodeableConcept");
  if (concept_json == nullptr) {
    return Invalid(concept_path, "is required (or medicationReference): the order must say which drug");
  }
  Concept concept;
  bool named = false;
  if (auto st = ReadConcept(*concept_json, concept_path, &concept); !st.ok()) {
    return st;
  }
  if (auto st = FillDrug(concept, concept_path, order, &named); !st.ok()) {
    return st;
  }
  if (!named) {
    return Invalid(concept_path, "has no coding with a system and code and no text: Vigil cannot tell the drug");
  }
  return absl::OkStatus();
}

// "twice a day", "every 8 hours", "3 times every 2 days" from Timing.repeat.
absl::Status ReadRepeat(const Json& repeat, const Path& path, std::string* out) {
  std::optional<double> frequency, period;
  std::string unit;
  if (auto st = GetNumber(repeat, "frequency", path, &frequency); !st.ok()) {
    return st;
  }
  if (auto st = GetNumber(repeat, "period", path, &period); !st.ok()) {
    return st;
  }
  if (auto st = GetString(repeat, "periodUnit", path, &unit); !st.ok()) {
    return st;
  }
  static constexpr std::pair<const char*, const char*> kUnits[] = {
      {"s", "second"}, {"min", "minute"}, {"h", "hour"}, {"d", "day"}, {"wk", "week"}, {"mo", "month"}, {"a", "year"}};
  const char* unit_name = nullptr;
  for (const auto& [code, name] : kUnits) {
    unit_name = unit == code ? name : unit_name;
  }
  if (unit_name == nullptr || (!frequency.has_value() && !period.has_value())) {
    return absl::OkStatus();  // No frequency Vigil can put in words.
  }
  const double f = frequency.value_or(1);
  const double p = period.value_or(1);
  const std::string times = f == 1 ? "once" : f == 2 ? "twice" : absl::StrCat(f, " times");
  if (p == 1) {
    *out = absl::StrCat(times, " a ", unit_name);
  } else {
    *out = absl::StrCat(f == 1 ? "" : absl::StrCat(times, " "), "every ", p, " ", unit_name, "s");
  }
  return absl::OkStatus();
}

// Frequency from Timing: its code's text or display, else its repeat.
absl::Status ReadTiming(const Json& dosage, const Path& path, v1::MedicationOrder* order) {
  const Json* timing = nullptr;
  if (auto st = GetObject(dosage, "timing", path, &timing); !st.ok() || timing == nullptr) {
    return st;
  }
  const Path timing_path = path.Member("timing");
  const Json* code = Find(*timing, "code");
  if (code != nullptr) {
    Concept concept;
    if (auto st = ReadConcept(*code, timing_path.Member("code"), &concept); !st.ok()) {
      return st;
    }
    order->set_frequency(concept.Name());
  }
  const Json* repeat = nullptr;
  if (auto st = GetObject(*timing, "repeat", timing_path, &repeat); !st.ok() || repeat == nullptr) {
    return st;
  }
  std::string described;
  if (auto st = ReadRepeat(*repeat, timing_path.Member("repeat"), &described); !st.ok()) {
    return st;
  }
  if (order->frequency().empty()) {
    order->set_frequency(described);
  }
  return absl::OkStatus();
}

absl::Status SetDose(const Json& value, const Path& path, v1::MedicationOrder* order) {
  Quantity dose;
  if (auto st = ReadQuantity(value, path, &dose); !st.ok() || !dose.value.has_value()) {
    return st;
  }
  if (*dose.value < 0) {
    return Invalid(path.Member("value"), "is negative");
  }
  if (*dose.value > 0 && absl::StripAsciiWhitespace(dose.unit).empty()) {
    return Invalid(path, "has a value and no unit (unit, or a UCUM code)");
  }
  order->set_dose_value(*dose.value);
  order->set_dose_unit(dose.unit);
  return absl::OkStatus();
}

// The dose: R4 doseAndRate[0].doseQuantity, or the high end of its
// doseRange (the most the order allows); STU3 has both on the Dosage.
absl::Status ReadDose(const Json& dosage, const Path& path, v1::MedicationOrder* order) {
  const Json* rates = nullptr;
  if (auto st = GetArray(dosage, "doseAndRate", path, &rates); !st.ok()) {
    return st;
  }
  const Path rates_path = path.Member("doseAndRate");
  const Path first_rate = rates_path.Index(0);
  const bool r4 = rates != nullptr && !rates->empty();
  if (r4 && !(*rates)[0].is_object()) {
    return WrongType((*rates)[0], first_rate, "an object");
  }
  const Json& holder = r4 ? (*rates)[0] : dosage;
  const Path& holder_path = r4 ? first_rate : path;
  if (const Json* quantity = Find(holder, "doseQuantity"); quantity != nullptr) {
    return SetDose(*quantity, holder_path.Member("doseQuantity"), order);
  }
  const Json* range = nullptr;
  if (auto st = GetObject(holder, "doseRange", holder_path, &range); !st.ok() || range == nullptr) {
    return st;
  }
  if (const Json* high = Find(*range, "high"); high != nullptr) {
    return SetDose(*high, holder_path.Member("doseRange.high"), order);
  }
  return absl::OkStatus();
}

// Route, frequency and dose from the first Dosage of `name`
// (dosageInstruction, or a MedicationStatement's dosage).
absl::Status ReadDosage(const Json& resource, const char* name, const Path& path, v1::MedicationOrder* order) {
  const Json* dosages = nullptr;
  if (auto st = GetArray(resource, name, path, &dosages); !st.ok() || dosages == nullptr || dosages->empty()) {
    return st;
  }
  const Path dosages_path = path.Member(name);
  const Path first = dosages_path.Index(0);
  const Json& dosage = (*dosages)[0];
  if (!dosage.is_object()) {
    return WrongType(dosage, first, "a Dosage (an object)");
  }
  if (const Json* route = Find(dosage, "route"); route != nullptr) {
    Concept concept;
    if (auto st = ReadConcept(*route, first.Member("route"), &concept); !st.ok()) {
      return st;
    }
    order->set_route(concept.Name());
  }
  if (auto st = ReadTiming(dosage, first, order); !st.ok()) {
    return st;
  }
  const Json* as_needed = Find(dosage, "asNeededBoolean");
  if (as_needed != nullptr && as_needed->is_boolean() && as_needed->get<bool>()) {
    order->set_frequency(order->frequency().empty() ? "as needed" : absl::StrCat(order->frequency(), " as needed"));
  }
  return ReadDose(dosage, first, order);
}

// A MedicationRequest or MedicationStatement as an order: order_id
// ("<type>/<id>", else `label`), drug, and dosage from `dosage_name`.
absl::Status ReadOrder(const Json& resource, const Path& path, const Source& source, absl::string_view type,
                       absl::string_view label, const char* dosage_name, v1::MedicationOrder* order) {
  std::string id;
  if (auto st = GetString(resource, "id", path, &id); !st.ok()) {
    return st;
  }
  order->set_order_id(id.empty() ? std::string(label) : absl::StrCat(type, "/", id));
  if (auto st = CheckPatient(resource, "subject", path, source); !st.ok()) {
    return st;
  }
  if (auto st = ReadDrug(resource, path, source, order); !st.ok()) {
    return st;
  }
  return ReadDosage(resource, dosage_name, path, order);
}

// ---------------------------------------------------------------------------
// The patient's context.

absl::Status ReadPatient(const Json& resource, const Path& path, const Source& source, v1::Patient* patient) {
  std::string id, birth_date, gender;
  if (auto st = GetString(resource, "id", path, &id); !st.ok()) {
    return st;
  }
  if (!id.empty() && !source.patient_id.empty() && id != source.patient_id) {
    return Invalid(path.Member("id"), absl::StrCat("is ", Quote(id), ", another patient than context.patientId ",
                                                   Quote(source.patient_id)));
  }
  if (auto st = GetString(resource, "birthDate", path, &birth_date); !st.ok()) {
    return st;
  }
  const DateShape shape = ShapeOfDate(birth_date);
  if (!birth_date.empty() && (shape == DateShape::kInvalid || (shape == DateShape::kFull && birth_date.size() != 10))) {
    return Invalid(path.Member("birthDate"), absl::StrCat("is ", Quote(birth_date), "; a FHIR date is expected"));
  }
  // A partial date (YYYY, YYYY-MM) stays unknown: inventing a day could
  // move the patient across an age limit.
  patient->set_birth_date(shape == DateShape::kFull ? birth_date : "");
  if (auto st = GetString(resource, "gender", path, &gender); !st.ok()) {
    return st;
  }
  static constexpr std::pair<const char*, v1::Sex> kSexes[] = {{"female", v1::SEX_FEMALE},
                                                               {"male", v1::SEX_MALE},
                                                               {"other", v1::SEX_OTHER},
                                                               {"unknown", v1::SEX_UNKNOWN}};
  patient->set_sex(v1::SEX_UNSPECIFIED);
  for (const auto& [code, sex] : kSexes) {
    if (gender == code) {
      patient->set_sex(sex);
    }
  }
  if (!gender.empty() && patient->sex() == v1::SEX_UNSPECIFIED) {
    return Invalid(path.Member("gender"),
                   absl::StrCat("is ", Quote(gender), "; FHIR gender is male, female, other or unknown"));
  }
  return absl::OkStatus();
}

// Conditions: each ICD-10-CM or SNOMED CT coding (both are matched), else
// the first coding with a system and code (screening reports its system as
// unsupported). Inactive, remission, resolved, refuted and entered-in-error
// ones are skipped.
absl::Status ReadCondition(const Json& resource, const Path& path, const Source& source, v1::Patient* patient) {
  std::string clinical, verification;
  if (auto st = ReadStatus(resource, "clinicalStatus", path, &clinical); !st.ok()) {
    return st;
  }
  if (auto st = ReadStatus(resource, "verificationStatus", path, &verification); !st.ok()) {
    return st;
  }
  if (auto st = CheckPatient(resource, "subject", path, source); !st.ok()) {
    return st;
  }
  if (IsOneOf(clinical, {"inactive", "remission", "resolved"}) || IsOneOf(verification, {"refuted", "entered-in-error"})) {
    return absl::OkStatus();
  }
  const Path code_path = path.Member("code");
  const Json* code = nullptr;
  if (auto st = GetObject(resource, "code", path, &code); !st.ok()) {
    return st;
  }
  if (code == nullptr) {
    return Invalid(code_path, "is required: Vigil screens coded conditions");
  }
  Concept concept;
  if (auto st = ReadConcept(*code, code_path, &concept); !st.ok()) {
    return st;
  }
  std::vector<const Coded*> chosen;
  for (const Coded& c : concept.codings) {
    if (IsConditionSystem(c.system) && !c.code.empty()) {
      chosen.push_back(&c);
    }
  }
  if (chosen.empty() && concept.Choose("") != nullptr) {
    chosen.push_back(concept.Choose(""));
  }
  if (chosen.empty()) {
    return Invalid(code_path, "has no coding with a system and code: Vigil screens coded conditions");
  }
  std::set<std::pair<std::string, std::string>> seen;
  for (const Coded* c : chosen) {
    if (auto st = CheckCode(*c, code_path); !st.ok()) {
      return st;
    }
    if (seen.emplace(c->system, c->code).second) {
      SetCoding(*c, patient->add_conditions()->mutable_code());
    }
  }
  return absl::OkStatus();
}

// SNOMED CT codes that record the absence of allergies.
bool IsNoKnownAllergy(const Concept& concept) {
  for (const Coded& c : concept.codings) {
    if (c.system == kSnomedSystem &&
        IsOneOf(c.code, {"716186003", "409137002", "428607008", "429625007", "428197003"})) {
      return true;
    }
  }
  return false;
}

// The substance: the display of an RxNorm coding, else the text, else any
// display, else "system|code".
std::string SubstanceOf(const Concept& concept) {
  for (const Coded& c : concept.codings) {
    if (c.system == kRxNormSystem && !absl::StripAsciiWhitespace(c.display).empty()) {
      return c.display;
    }
  }
  if (!absl::StripAsciiWhitespace(concept.text).empty()) {
    return concept.text;
  }
  if (std::string display = concept.FirstDisplay(); !display.empty()) {
    return display;
  }
  const Coded* coded = concept.Choose("");
  return coded == nullptr ? "" : absl::StrCat(coded->system, "|", coded->code);
}

// The first reaction's first manifestation, else its description.
absl::Status ReadReaction(const Json& resource, const Path& path, v1::Allergy* allergy) {
  const Json* reactions = nullptr;
  if (auto st = GetArray(resource, "reaction", path, &reactions); !st.ok() || reactions == nullptr ||
                                                                   reactions->empty()) {
    return st;
  }
  const Path reactions_path = path.Member("reaction");
  const Path first = reactions_path.Index(0);
  const Json& reaction = (*reactions)[0];
  if (!reaction.is_object()) {
    return WrongType(reaction, first, "an object");
  }
  const Json* manifestations = nullptr;
  if (auto st = GetArray(reaction, "manifestation", first, &manifestations); !st.ok()) {
    return st;
  }
  if (manifestations != nullptr && !manifestations->empty()) {
    const Path list = first.Member("manifestation");
    Concept concept;
    if (auto st = ReadConcept((*manifestations)[0], list.Index(0), &concept); !st.ok()) {
      return st;
    }
    allergy->set_reaction(concept.Name());
  }
  std::string description;
  if (auto st = GetString(reaction, "description", first, &description); !st.ok()) {
    return st;
  }
  if (allergy->reaction().empty()) {
    allergy->set_reaction(description);
  }
  return absl::OkStatus();
}

absl::Status ReadAllergy(const Json& resource, const Path& path, const Source& source, v1::Patient* patient) {
  std::string clinical, verification, criticality;
  if (auto st = ReadStatus(resource, "clinicalStatus", path, &clinical); !st.ok()) {
    return st;
  }
  if (auto st = ReadStatus(resource, "verificationStatus", path, &verification); !st.ok()) {
    return st;
  }
  if (auto st = CheckPatient(resource, "patient", path, source); !st.ok()) {
    return st;
  }
  if (IsOneOf(clinical, {"inactive", "resolved"}) || IsOneOf(verification, {"refuted", "entered-in-error"})) {
    return absl::OkStatus();
  }
  const Path code_path = path.Member("code");
  const Json* code = Find(resource, "code");
  if (code == nullptr) {
    return Invalid(code_path, "is required: Vigil cannot tell the substance");
  }
  Concept concept;
  if (auto st = ReadConcept(*code, code_path, &concept); !st.ok()) {
    return st;
  }
  if (IsNoKnownAllergy(concept)) {
    return absl::OkStatus();
  }
  v1::Allergy allergy;
  allergy.set_substance(SubstanceOf(concept));
  if (absl::StripAsciiWhitespace(allergy.substance()).empty()) {
    return Invalid(code_path, "has no coding and no text: Vigil cannot tell the substance");
  }
  if (auto st = GetString(resource, "criticality", path, &criticality); !st.ok()) {
    return st;
  }
  static constexpr std::pair<const char*, v1::AllergyCriticality> kCriticalities[] = {
      {"low", v1::ALLERGY_CRITICALITY_LOW},
      {"high", v1::ALLERGY_CRITICALITY_HIGH},
      {"unable-to-assess", v1::ALLERGY_CRITICALITY_UNABLE_TO_ASSESS}};
  for (const auto& [name, value] : kCriticalities) {
    if (criticality == name) {
      allergy.set_criticality(value);
    }
  }
  if (!criticality.empty() && allergy.criticality() == v1::ALLERGY_CRITICALITY_UNSPECIFIED) {
    return Invalid(path.Member("criticality"),
                   absl::StrCat("is ", Quote(criticality), "; FHIR criticality is low, high or unable-to-assess"));
  }
  if (auto st = ReadReaction(resource, path, &allergy); !st.ok()) {
    return st;
  }
  *patient->add_allergies() = std::move(allergy);
  return absl::OkStatus();
}

// When an Observation was taken: effectiveDateTime, effectivePeriod.start,
// effectiveInstant, else issued; the first that is a full date. A partial
// date (YYYY-MM) is passed over; text that is no date is an error.
absl::Status ReadEffectiveTime(const Json& resource, const Path& path, std::string* out) {
  out->clear();
  const Json* period = nullptr;
  if (auto st = GetObject(resource, "effectivePeriod", path, &period); !st.ok()) {
    return st;
  }
  const std::pair<const Json*, const char*> candidates[] = {{&resource, "effectiveDateTime"},
                                                            {period, "start"},
                                                            {&resource, "effectiveInstant"},
                                                            {&resource, "issued"}};
  const Path period_path = path.Member("effectivePeriod");
  for (const auto& [object, name] : candidates) {
    if (object == nullptr) {
      continue;
    }
    const Path& parent = object == period ? period_path : path;
    std::string text;
    if (auto st = GetString(*object, name, parent, &text); !st.ok()) {
      return st;
    }
    const DateShape shape = ShapeOfDate(text);
    if (!text.empty() && shape == DateShape::kInvalid) {
      return Invalid(parent.Member(name), absl::StrCat("is ", Quote(text), "; a FHIR dateTime is expected"));
    }
    if (shape == DateShape::kFull) {
      *out = text;
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

// Kilograms per unit of a body weight, or nullopt for a unit Vigil does
// not convert.
std::optional<double> KilogramsPer(absl::string_view unit) {
  const std::string u = absl::AsciiStrToLower(absl::StripAsciiWhitespace(unit));
  if (u == "kg") {
    return 1.0;
  }
  if (u == "g") {
    return 0.001;
  }
  if (u == "[lb_av]" || u == "lb" || u == "lbs") {
    return 0.45359237;
  }
  return std::nullopt;
}

// Lab results: Observations with a valueQuantity whose status is final,
// amended, corrected or preliminary (or not given), coded in LOINC. One
// without a valueQuantity (a text result, a dataAbsentReason) has no value
// to screen and is passed over.
absl::Status ReadObservation(const Json& resource, const Path& path, const Source& source, v1::Patient* patient) {
  std::string status;
  if (auto st = GetString(resource, "status", path, &status); !st.ok()) {
    return st;
  }
  if (auto st = CheckPatient(resource, "subject", path, source); !st.ok()) {
    return st;
  }
  const Json* value = Find(resource, "valueQuantity");
  if ((!status.empty() && !IsOneOf(status, {"final", "amended", "corrected", "preliminary"})) || value == nullptr) {
    return absl::OkStatus();
  }
  const Path value_path = path.Member("valueQuantity");
  Quantity quantity;
  if (auto st = ReadQuantity(*value, value_path, &quantity); !st.ok() || !quantity.value.has_value()) {
    return st;
  }
  const Path code_path = path.Member("code");
  const Json* code = Find(resource, "code");
  if (code == nullptr) {
    return Invalid(code_path, "is required");
  }
  Concept concept;
  if (auto st = ReadConcept(*code, code_path, &concept); !st.ok()) {
    return st;
  }
  const Coded* loinc = concept.Choose(kLoincSystem);
  if (loinc == nullptr || loinc->system != kLoincSystem) {
    return Invalid(code_path, "has no LOINC coding: Vigil reads lab results coded in LOINC");
  }
  if (auto st = CheckCode(*loinc, code_path); !st.ok()) {
    return st;
  }
  if (absl::StripAsciiWhitespace(quantity.unit).empty()) {
    return Invalid(value_path, "has no unit (unit, or a UCUM code): a result is never read without one");
  }
  const std::optional<double> kg_per = KilogramsPer(quantity.unit);
  if (loinc->code == kBodyWeightLoinc && kg_per.has_value() &&
      !(*quantity.value * *kg_per > 0 && *quantity.value * *kg_per <= 1000)) {
    return Invalid(value_path.Member("value"), "is not a plausible body weight");
  }
  v1::LabResult lab;
  SetCoding(*loinc, lab.mutable_code());
  lab.set_value(*quantity.value);
  lab.set_unit(quantity.unit);
  if (auto st = ReadEffectiveTime(resource, path, lab.mutable_effective_time()); !st.ok()) {
    return st;
  }
  *patient->add_labs() = std::move(lab);
  return absl::OkStatus();
}

// When a lab was taken, for ordering; InfinitePast when unknown.
absl::Time TimeOf(const v1::LabResult& lab) {
  absl::Time t;
  std::string error;
  if (absl::ParseTime(absl::RFC3339_full, lab.effective_time(), &t, &error)) {
    return t;
  }
  if (const auto day = ParseIsoDate(lab.effective_time()); day.has_value()) {
    return absl::FromCivil(*day, absl::UTCTimeZone());
  }
  return absl::InfinitePast();
}

// weight_kg: the latest body weight (LOINC 29463-7) in a mass unit.
void UpdateWeight(v1::Patient* patient) {
  const v1::LabResult* latest = nullptr;
  double kg = 0;
  for (const v1::LabResult& lab : patient->labs()) {
    const std::optional<double> kg_per = KilogramsPer(lab.unit());
    if (lab.code().system() != kLoincSystem || lab.code().code() != kBodyWeightLoinc || !kg_per.has_value()) {
      continue;
    }
    if (latest == nullptr || TimeOf(lab) >= TimeOf(*latest)) {
      latest = &lab;
      kg = lab.value() * *kg_per;
    }
  }
  if (latest != nullptr) {
    patient->set_weight_kg(kg);
  }
}

// ---------------------------------------------------------------------------
// The prefetch.

absl::Status ReadMedicationResource(const Json& resource, const Path& path, const Source& source,
                                    absl::string_view type, absl::string_view label, v1::Patient* patient) {
  const bool request = type == "MedicationRequest";
  std::string status, taken;
  if (auto st = ReadStatus(resource, "status", path, &status); !st.ok()) {
    return st;
  }
  if (auto st = GetString(resource, "taken", path, &taken); !st.ok()) {
    return st;
  }
  const bool current = status.empty() || (request ? IsOneOf(status, {"active", "on-hold"})
                                                  : IsOneOf(status, {"active", "intended"}) && taken != "n");
  if (!current) {
    return absl::OkStatus();
  }
  v1::MedicationOrder order;
  if (auto st = ReadOrder(resource, path, source, type, label, request ? "dosageInstruction" : "dosage", &order);
      !st.ok()) {
    return st;
  }
  *patient->add_medications() = std::move(order);
  return absl::OkStatus();
}

// Reads one prefetched resource by its type. `included` is an entry a
// search added (_include): other types are passed over there.
absl::Status ReadPrefetchedResource(const Json& resource, const Path& path, const Source& source,
                                    absl::string_view label, bool included, v1::Patient* patient) {
  std::string type;
  if (auto st = GetRequiredString(resource, "resourceType", path, &type); !st.ok()) {
    return st;
  }
  if (type == "Patient") {
    return ReadPatient(resource, path, source, patient);
  }
  if (type == "Condition") {
    return ReadCondition(resource, path, source, patient);
  }
  if (type == "AllergyIntolerance") {
    return ReadAllergy(resource, path, source, patient);
  }
  if (type == "MedicationRequest" || type == "MedicationStatement") {
    return ReadMedicationResource(resource, path, source, type, label, patient);
  }
  if (type == "Observation") {
    return ReadObservation(resource, path, source, patient);
  }
  if (type == "OperationOutcome" || type == "Medication" || included) {
    return absl::OkStatus();  // Warnings, and targets of references.
  }
  return Invalid(path.Member("resourceType"),
                 absl::StrCat("is ", Quote(type),
                              "; Vigil reads Patient, Condition, AllergyIntolerance, MedicationRequest, "
                              "MedicationStatement and Observation"));
}

// Reads the value of prefetch key `key` (a resource or a Bundle) at `path`.
absl::Status ReadPrefetchValue(const Json& value, const Path& path, absl::string_view key,
                               absl::string_view patient_id, v1::Patient* patient) {
  if (!value.is_object()) {
    return WrongType(value, path, "a FHIR resource or Bundle (an object)");
  }
  std::string type;
  if (auto st = GetRequiredString(value, "resourceType", path, &type); !st.ok()) {
    return st;
  }
  if (type != "Bundle") {
    return ReadPrefetchedResource(value, path, Source{patient_id}, key, false, patient);
  }
  const Json* entries = nullptr;
  if (auto st = GetArray(value, "entry", path, &entries); !st.ok() || entries == nullptr) {
    return st;
  }
  const Source source{patient_id, entries, &path};
  const Path entries_path = path.Member("entry");
  for (size_t i = 0; i < entries->size(); ++i) {
    const Json& entry = (*entries)[i];
    const Path element = entries_path.Index(i);
    if (!entry.is_object()) {
      return WrongType(entry, element, "a Bundle entry (an object)");
    }
    const Json* resource = nullptr;
    const Json* search = nullptr;
    if (auto st = GetObject(entry, "resource", element, &resource); !st.ok() || resource == nullptr) {
      return st;  // An entry with no resource (a batch response's status) holds nothing to read.
    }
    if (auto st = GetObject(entry, "search", element, &search); !st.ok()) {
      return st;
    }
    const Json* mode = search == nullptr ? nullptr : Find(*search, "mode");
    const bool included = IsText(mode, "include");
    if (resource->is_object() && IsText(Find(*resource, "resourceType"), "Bundle")) {
      return Invalid(element.Member("resource.resourceType"), "is \"Bundle\"; a Bundle in a Bundle is not read");
    }
    const std::string label = absl::StrCat(key, ".entry[", i, "]");
    if (auto st = ReadPrefetchedResource(*resource, element.Member("resource"), source, label, included, patient);
        !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

bool IsPrefetchKey(absl::string_view key) {
  return std::find(std::begin(kPrefetchKeys), std::end(kPrefetchKeys), key) != std::end(kPrefetchKeys);
}

absl::Status ReadPrefetch(const Json& root, CdsRequest* request) {
  const Path prefetch_path("prefetch");
  const Json* prefetch = Find(root, "prefetch");
  if (prefetch != nullptr && !prefetch->is_object()) {
    return WrongType(*prefetch, prefetch_path, "an object");
  }
  for (const char* key : kPrefetchKeys) {
    const Json* value = prefetch == nullptr ? nullptr : Find(*prefetch, key);
    if (value == nullptr) {
      request->missing_prefetch.push_back(key);
      continue;
    }
    if (auto st = ReadPrefetchValue(*value, prefetch_path.Member(key), key, request->patient_id, &request->patient);
        !st.ok()) {
      return st;
    }
  }
  UpdateWeight(&request->patient);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// The hook request.

bool IsOrderHook(absl::string_view hook) { return hook == kOrderSelect || hook == kOrderSign; }

// One entry of context.draftOrders: a MedicationRequest is read as a
// proposed order. Medication resources (targets of medicationReference) and
// the other order types the hooks carry are not medication orders.
absl::Status ReadDraftEntry(const Json& entry, const Path& path, size_t index, const Source& source,
                            CdsRequest* request) {
  if (!entry.is_object()) {
    return WrongType(entry, path, "a Bundle entry (an object)");
  }
  const Path resource_path = path.Member("resource");
  const Json* resource = nullptr;
  if (auto st = GetObject(entry, "resource", path, &resource); !st.ok()) {
    return st;
  }
  if (resource == nullptr) {
    return Invalid(resource_path, "is required: each draft order is a resource");
  }
  std::string type;
  if (auto st = GetRequiredString(*resource, "resourceType", resource_path, &type); !st.ok()) {
    return st;
  }
  if (type == "MedicationRequest") {
    v1::MedicationOrder order;
    const std::string label = absl::StrCat("draftOrders.entry[", index, "]");
    if (auto st = ReadOrder(*resource, resource_path, source, type, label, "dosageInstruction", &order); !st.ok()) {
      return st;
    }
    request->draft_orders.push_back(std::move(order));
    return absl::OkStatus();
  }
  if (IsOneOf(type, {"Medication", "ServiceRequest", "NutritionOrder", "DeviceRequest", "VisionPrescription",
                     "CommunicationRequest", "ImmunizationRecommendation", "SupplyRequest"})) {
    return absl::OkStatus();
  }
  return Invalid(resource_path.Member("resourceType"),
                 absl::StrCat("is ", Quote(type), "; a draft order is a MedicationRequest"));
}

// The references an entry answers to: "<type>/<id>" and its fullUrl.
void AddEntryReferences(const Json& entry, std::set<std::string>* references) {
  const Json* resource = entry.is_object() ? Find(entry, "resource") : nullptr;
  const Json* full_url = entry.is_object() ? Find(entry, "fullUrl") : nullptr;
  if (full_url != nullptr && full_url->is_string()) {
    references->insert(full_url->get<std::string>());
  }
  const Json* type = resource != nullptr && resource->is_object() ? Find(*resource, "resourceType") : nullptr;
  const Json* id = resource != nullptr && resource->is_object() ? Find(*resource, "id") : nullptr;
  if (type != nullptr && type->is_string() && id != nullptr && id->is_string()) {
    references->insert(absl::StrCat(type->get_ref<const std::string&>(), "/", id->get_ref<const std::string&>()));
  }
}

// context.selections: each names a draft order, so that the gateway never
// screens an empty selection by mistake.
absl::Status ReadSelections(const Json& context, const Path& path, const Json* entries, CdsRequest* request) {
  const Json* selections = nullptr;
  if (auto st = GetArray(context, "selections", path, &selections); !st.ok() || selections == nullptr) {
    return st;
  }
  std::set<std::string> references;
  for (size_t i = 0; entries != nullptr && i < entries->size(); ++i) {
    AddEntryReferences((*entries)[i], &references);
  }
  const Path selections_path = path.Member("selections");
  for (size_t i = 0; i < selections->size(); ++i) {
    const Json& selection = (*selections)[i];
    if (!selection.is_string()) {
      return WrongType(selection, selections_path.Index(i), "a reference (a string)");
    }
    const std::string& reference = selection.get_ref<const std::string&>();
    const bool found = references.count(reference) > 0 ||
                       std::any_of(references.begin(), references.end(), [&reference](const std::string& r) {
                         return absl::EndsWith(reference, absl::StrCat("/", r));
                       });
    if (!found) {
      return Invalid(selections_path.Index(i),
                     absl::StrCat("is ", Quote(reference), ", which is not an entry of context.draftOrders"));
    }
    request->selections.push_back(reference);
  }
  return absl::OkStatus();
}

absl::Status ReadContext(const Json& root, CdsRequest* request) {
  const Path path("context");
  const Json* context = Find(root, "context");
  if (context == nullptr) {
    return Invalid(path, "is required");
  }
  if (!context->is_object()) {
    return WrongType(*context, path, "an object");
  }
  if (auto st = GetString(*context, "userId", path, &request->user_id); !st.ok()) {
    return st;
  }
  if (auto st = GetRequiredString(*context, "patientId", path, &request->patient_id); !st.ok()) {
    return st;
  }
  request->patient.set_id(request->patient_id);
  if (auto st = GetString(*context, "encounterId", path, &request->encounter_id); !st.ok()) {
    return st;
  }
  const Path orders_path = path.Member("draftOrders");
  const Json* orders = Find(*context, "draftOrders");
  if (orders == nullptr) {
    return IsOrderHook(request->hook)
               ? Invalid(orders_path, "is required for order-select and order-sign (a Bundle of MedicationRequest)")
               : ReadSelections(*context, path, nullptr, request);
  }
  if (!orders->is_object()) {
    return WrongType(*orders, orders_path, "a Bundle (an object)");
  }
  std::string type;
  if (auto st = GetString(*orders, "resourceType", orders_path, &type); !st.ok()) {
    return st;
  }
  if (type != "Bundle") {
    return Invalid(orders_path.Member("resourceType"),
                   type.empty() ? "is required; draftOrders is a Bundle" : absl::StrCat("is ", Quote(type), "; draftOrders is a Bundle"));
  }
  const Json* entries = nullptr;
  if (auto st = GetArray(*orders, "entry", orders_path, &entries); !st.ok()) {
    return st;
  }
  const Source source{request->patient_id, entries, &orders_path};
  const Path entries_path = orders_path.Member("entry");
  for (size_t i = 0; entries != nullptr && i < entries->size(); ++i) {
    if (auto st = ReadDraftEntry((*entries)[i], entries_path.Index(i), i, source, request); !st.ok()) {
      return st;
    }
  }
  return ReadSelections(*context, path, entries, request);
}

absl::Status ReadHeader(const Json& root, CdsRequest* request) {
  const Path path("");
  if (auto st = GetRequiredString(root, "hook", path, &request->hook); !st.ok()) {
    return st;
  }
  if (auto st = GetRequiredString(root, "hookInstance", path, &request->hook_instance); !st.ok()) {
    return st;
  }
  if (auto st = GetString(root, "fhirServer", path, &request->fhir_server); !st.ok()) {
    return st;
  }
  const Json* authorization = nullptr;
  if (auto st = GetObject(root, "fhirAuthorization", path, &authorization); !st.ok() || authorization == nullptr) {
    return st;
  }
  const Path auth_path("fhirAuthorization");
  if (auto st = GetString(*authorization, "access_token", auth_path, &request->fhir_access_token); !st.ok()) {
    return st;
  }
  return GetString(*authorization, "token_type", auth_path, &request->fhir_token_type);
}

}  // namespace

std::vector<PrefetchTemplate> PrefetchTemplates(const std::vector<std::string>& lab_loinc_codes) {
  std::vector<std::string> codes;
  for (const std::string& code : lab_loinc_codes) {
    const absl::string_view trimmed = absl::StripAsciiWhitespace(code);
    if (!trimmed.empty()) {
      codes.emplace_back(trimmed);
    }
  }
  codes.push_back(kBodyWeightLoinc);
  std::sort(codes.begin(), codes.end());
  codes.erase(std::unique(codes.begin(), codes.end()), codes.end());
  const std::string labs = absl::StrJoin(codes, ",", [](std::string* out, const std::string& code) {
    absl::StrAppend(out, kLoincSystem, "|", code);
  });
  return {
      {"patient", "Patient/{{context.patientId}}"},
      {"conditions", "Condition?patient={{context.patientId}}&clinical-status=active,recurrence,relapse"},
      {"allergies", "AllergyIntolerance?patient={{context.patientId}}"},
      {"medications", "MedicationRequest?patient={{context.patientId}}&status=active,on-hold"},
      {"statements", "MedicationStatement?patient={{context.patientId}}&status=active,intended"},
      {"labs", absl::StrCat("Observation?patient={{context.patientId}}&code=", labs, "&_sort=-date")},
  };
}

absl::StatusOr<CdsRequest> ParseCdsRequest(absl::string_view body) {
  Json root;
  if (auto st = ParseJson(body, "body", &root); !st.ok()) {
    return st;
  }
  if (!root.is_object()) {
    return WrongType(root, Path("body"), "a hook request (an object)");
  }
  CdsRequest request;
  if (auto st = ReadHeader(root, &request); !st.ok()) {
    return st;
  }
  if (auto st = ReadContext(root, &request); !st.ok()) {
    return st;
  }
  if (auto st = ReadPrefetch(root, &request); !st.ok()) {
    return st;
  }
  return request;
}

absl::Status ApplyPrefetch(absl::string_view key, absl::string_view body, CdsRequest& request) {
  if (!IsPrefetchKey(key)) {
    return absl::InvalidArgumentError(absl::StrCat("key: ", Quote(key), " is not a prefetch key of Vigil's services (",
                                                   absl::StrJoin(kPrefetchKeys, ", "), ")"));
  }
  const auto missing = std::find(request.missing_prefetch.begin(), request.missing_prefetch.end(), key);
  if (missing == request.missing_prefetch.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat(key, ": was prefetched already; applying it again would read its resources twice"));
  }
  Json value;
  if (auto st = ParseJson(body, key, &value); !st.ok()) {
    return st;
  }
  // Read into a scratch patient, so that a failure leaves `request` as it was.
  v1::Patient scratch;
  if (!value.is_null()) {
    if (auto st = ReadPrefetchValue(value, Path(key), key, request.patient_id, &scratch); !st.ok()) {
      return st;
    }
  }
  request.patient.MergeFrom(scratch);
  request.missing_prefetch.erase(missing);
  UpdateWeight(&request.patient);
  return absl::OkStatus();
}

}  // namespace vigil::fhir
