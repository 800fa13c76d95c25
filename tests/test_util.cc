#include "tests/test_util.h"

#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/kb/loader.h"

namespace vigil::testing {

std::string FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

void Exec(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &error), SQLITE_OK) << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "vigil-test-XXXXXX").string();
  char* made = mkdtemp(pattern.data());
  if (made == nullptr) {
    std::abort();
  }
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::Write(const std::string& name, const std::string& content) const {
  const std::string file = (std::filesystem::path(path_) / name).string();
  std::ofstream out(file, std::ios::binary);
  out << content;
  return file;
}

std::shared_ptr<const KnowledgeBase> BundledKb() {
  static const auto* const kb = [] {
    auto loaded = LoadKnowledgeBase({VIGIL_BUNDLED_KB});
    if (!loaded.ok()) {
      ADD_FAILURE() << "bundled knowledge base failed to load: " << loaded.status();
      std::abort();
    }
    return new std::shared_ptr<const KnowledgeBase>(*loaded);
  }();
  return *kb;
}

absl::StatusOr<std::shared_ptr<const KnowledgeBase>> LoadFromTexts(
    const std::vector<std::pair<std::string, std::string>>& files) {
  TempDir dir;
  for (const auto& [name, text] : files) {
    dir.Write(name, text);
  }
  return LoadKnowledgeBase({dir.path()});
}

RequestBuilder::RequestBuilder(std::string patient_id) {
  request_.mutable_patient()->set_id(std::move(patient_id));
}

RequestBuilder& RequestBuilder::Propose(const std::string& drug) {
  request_.add_proposed_medications()->set_drug(drug);
  return *this;
}

RequestBuilder& RequestBuilder::Current(const std::string& drug) {
  request_.mutable_patient()->add_medications()->set_drug(drug);
  return *this;
}

RequestBuilder& RequestBuilder::Condition(const std::string& system, const std::string& code) {
  auto* coding = request_.mutable_patient()->add_conditions()->mutable_code();
  coding->set_system(system);
  coding->set_code(code);
  return *this;
}

RequestBuilder& RequestBuilder::Lab(const std::string& loinc, double value, const std::string& unit) {
  auto* lab = request_.mutable_patient()->add_labs();
  lab->mutable_code()->set_system(kLoinc);
  lab->mutable_code()->set_code(loinc);
  lab->set_value(value);
  lab->set_unit(unit);
  return *this;
}

RequestBuilder& RequestBuilder::Allergy(const std::string& substance) {
  request_.mutable_patient()->add_allergies()->set_substance(substance);
  return *this;
}

RequestBuilder& RequestBuilder::DatedLab(const std::string& loinc, double value, const std::string& unit,
                                         const std::string& when) {
  Lab(loinc, value, unit);
  request_.mutable_patient()->mutable_labs(request_.patient().labs_size() - 1)->set_effective_time(when);
  return *this;
}

RequestBuilder& RequestBuilder::Allergy(const std::string& substance, const std::string& reaction,
                                        v1::AllergyCriticality criticality) {
  Allergy(substance);
  auto* allergy = request_.mutable_patient()->mutable_allergies(request_.patient().allergies_size() - 1);
  allergy->set_reaction(reaction);
  allergy->set_criticality(criticality);
  return *this;
}

RequestBuilder& RequestBuilder::BirthDate(const std::string& date) {
  request_.mutable_patient()->set_birth_date(date);
  return *this;
}

RequestBuilder& RequestBuilder::AsOf(const std::string& date) {
  request_.set_as_of(date);
  return *this;
}

ScreeningResult RequestBuilder::Screen(const KnowledgeBase& kb) const {
  ScreenOptions options = ScreenOptions::Today();
  if (const auto as_of = ParseIsoDate(request_.as_of()); as_of.has_value()) {
    options.as_of = *as_of;
  }
  return vigil::Screen(kb, request_.patient(), request_.proposed_medications(), options);
}

std::vector<v1::Alert> WithRule(const ScreeningResult& result, const std::string& rule_id) {
  std::vector<v1::Alert> out;
  for (const auto& a : result.alerts) {
    if (a.rule_id() == rule_id) {
      out.push_back(a);
    }
  }
  return out;
}

std::vector<v1::Alert> OfKind(const ScreeningResult& result, v1::AlertKind kind) {
  std::vector<v1::Alert> out;
  for (const auto& a : result.alerts) {
    if (a.kind() == kind) {
      out.push_back(a);
    }
  }
  return out;
}

std::string Describe(const ScreeningResult& result) {
  std::string out = absl::StrCat(result.alerts.size(), " alerts:");
  for (const auto& a : result.alerts) {
    absl::StrAppend(&out, "\n  ", v1::Severity_Name(a.severity()), " ", v1::AlertKind_Name(a.kind()), " rule=",
                    a.rule_id(), " : ", a.summary());
  }
  return out;
}

}  // namespace vigil::testing
