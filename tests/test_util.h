// Helpers shared by the unit tests.
#ifndef VIGIL_TESTS_TEST_UTIL_H_
#define VIGIL_TESTS_TEST_UTIL_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/engine/screening.h"
#include "server/kb/knowledge_base.h"
#include "vigil/v1/decision_support.pb.h"

namespace vigil::testing {

// Runs `sql` on the SQLite file at `path` through a connection of its own
// (as another process would), failing the test on an error.
void Exec(const std::string& path, const char* sql);

// The bytes of the file at `path`; empty when it cannot be read.
std::string FileBytes(const std::string& path);

// `request` as the request of CheckMedicationsUnary (the same fields).
inline v1::CheckMedicationsUnaryRequest Unary(const v1::CheckMedicationsRequest& request) {
  v1::CheckMedicationsUnaryRequest unary;
  unary.ParseFromString(request.SerializeAsString());
  return unary;
}

inline constexpr char kIcd10Cm[] = "http://hl7.org/fhir/sid/icd-10-cm";
inline constexpr char kSnomed[] = "http://snomed.info/sct";
inline constexpr char kLoinc[] = "http://loinc.org";

// A fresh temporary folder, removed when the object goes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // Writes `content` to `name` inside the folder and returns its path.
  std::string Write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// The bundled knowledge base (data/kb), loaded once per process.
std::shared_ptr<const KnowledgeBase> BundledKb();

// Loads a knowledge base from the given files' contents (name -> text).
absl::StatusOr<std::shared_ptr<const KnowledgeBase>> LoadFromTexts(
    const std::vector<std::pair<std::string, std::string>>& files);

// Builds check requests fluently.
class RequestBuilder {
 public:
  explicit RequestBuilder(std::string patient_id = "test-patient");
  RequestBuilder& Propose(const std::string& drug);
  RequestBuilder& Current(const std::string& drug);
  RequestBuilder& Condition(const std::string& system, const std::string& code);
  RequestBuilder& Icd10(const std::string& code) { return Condition(kIcd10Cm, code); }
  RequestBuilder& Snomed(const std::string& code) { return Condition(kSnomed, code); }
  RequestBuilder& Lab(const std::string& loinc, double value, const std::string& unit);
  RequestBuilder& Egfr(double value) { return Lab("62238-1", value, "mL/min/{1.73_m2}"); }
  RequestBuilder& Allergy(const std::string& substance);
  RequestBuilder& Allergy(const std::string& substance, const std::string& reaction, v1::AllergyCriticality criticality);
  // A lab result with its effective time.
  RequestBuilder& DatedLab(const std::string& loinc, double value, const std::string& unit, const std::string& when);
  RequestBuilder& BirthDate(const std::string& date);
  // The check's as-of date (default: today).
  RequestBuilder& AsOf(const std::string& date);
  const v1::CheckMedicationsRequest& request() const { return request_; }

  // Screens against `kb`.
  ScreeningResult Screen(const KnowledgeBase& kb) const;

 private:
  v1::CheckMedicationsRequest request_;
};

// Alerts of a result with the given rule id.
std::vector<v1::Alert> WithRule(const ScreeningResult& result, const std::string& rule_id);

// Alerts of a result with the given kind.
std::vector<v1::Alert> OfKind(const ScreeningResult& result, v1::AlertKind kind);

// A readable list of a result's alerts, for failure messages.
std::string Describe(const ScreeningResult& result);

}  // namespace vigil::testing

#endif  // VIGIL_TESTS_TEST_UTIL_H_
