#include "fuzz/fuzz_support.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "server/common/text.h"
#include "server/kb/loader.h"

namespace vigil::fuzz {
namespace {

// Summaries are one sentence under 140 characters (README, alert.proto).
constexpr size_t kMaxSummaryBytes = 139;

const std::string& ScratchDir() {
  static const std::string* const dir = [] {
    std::string pattern = (std::filesystem::temp_directory_path() / "vigil-fuzz-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      std::perror("vigil fuzz: mkdtemp");
      std::abort();
    }
    auto* path = new std::string(pattern);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(ScratchDir(), ec);
    });
    return path;
  }();
  return *dir;
}

// Every string field of `message`, recursively, must be valid UTF-8: proto3
// strings that are not cannot be serialized for a client.
void CheckUtf8(const google::protobuf::Message& message, const std::string& path) {
  const auto* reflection = message.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const auto* field : fields) {
    const std::string where = absl::StrCat(path, ".", field->name());
    if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_STRING) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
          VIGIL_FUZZ_CHECK(IsValidUtf8(reflection->GetRepeatedString(message, field, i)), where);
        }
      } else {
        VIGIL_FUZZ_CHECK(IsValidUtf8(reflection->GetString(message, field)), where);
      }
    } else if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
          CheckUtf8(reflection->GetRepeatedMessage(message, field, i), where);
        }
      } else {
        CheckUtf8(reflection->GetMessage(message, field), where);
      }
    }
  }
}

std::string Serialized(const ScreeningResult& result) {
  std::string out;
  for (const auto& alert : result.alerts) {
    absl::StrAppend(&out, alert.SerializeAsString(), "\n");
  }
  absl::StrAppend(&out, result.summary.SerializeAsString());
  return out;
}

void CheckResult(const KnowledgeBase& kb, const ScreeningResult& result) {
  VIGIL_FUZZ_CHECK(result.summary.alert_count() == static_cast<int>(result.alerts.size()),
                   "summary.alert_count differs from the number of alerts");
  VIGIL_FUZZ_CHECK(result.summary.knowledge_base_version() == kb.version(), "summary names another version");
  CheckUtf8(result.summary, "summary");
  absl::flat_hash_set<std::string> ids;
  for (size_t i = 0; i < result.alerts.size(); ++i) {
    const v1::Alert& alert = result.alerts[i];
    VIGIL_FUZZ_CHECK(ids.insert(alert.id()).second, absl::StrCat("duplicate alert id ", alert.id()));
    VIGIL_FUZZ_CHECK(v1::AlertKind_IsValid(alert.kind()) && alert.kind() != v1::ALERT_KIND_UNSPECIFIED,
                     alert.id());
    VIGIL_FUZZ_CHECK(v1::Severity_IsValid(alert.severity()) && alert.severity() != v1::SEVERITY_UNSPECIFIED,
                     alert.id());
    VIGIL_FUZZ_CHECK(!alert.summary().empty() && alert.summary().size() <= kMaxSummaryBytes,
                     absl::StrCat(alert.id(), " summary '", alert.summary(), "'"));
    if (i > 0) {
      VIGIL_FUZZ_CHECK(result.alerts[i - 1].severity() >= alert.severity(), "alerts are not most severe first");
    }
    CheckUtf8(alert, absl::StrCat("alerts[", i, "]"));
  }
}

}  // namespace

void Fail(const char* file, int line, const char* condition, absl::string_view message) {
  std::fprintf(stderr, "%s:%d: invariant broken: %s: %.*s\n", file, line, condition,
               static_cast<int>(message.size()), message.data());
  std::abort();
}

std::string WriteScratchFile(const std::string& name, absl::string_view content) {
  const std::string path = (std::filesystem::path(ScratchDir()) / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  out.close();
  if (!out) {
    std::perror("vigil fuzz: writing a scratch file");
    std::abort();
  }
  return path;
}

const KnowledgeBase& BundledKb() {
  static const auto* const kb = [] {
    auto loaded = LoadKnowledgeBase({VIGIL_BUNDLED_KB});
    if (!loaded.ok()) {
      std::fprintf(stderr, "vigil fuzz: the bundled knowledge base does not load: %s\n",
                   std::string(loaded.status().message()).c_str());
      std::abort();
    }
    return new std::shared_ptr<const KnowledgeBase>(*std::move(loaded));
  }();
  return **kb;
}

ScreeningResult ScreenAndCheck(const KnowledgeBase& kb, const v1::Patient& patient,
                               const google::protobuf::RepeatedPtrField<v1::MedicationOrder>& proposed) {
  ScreeningResult first = Screen(kb, patient, proposed);
  CheckResult(kb, first);
  const ScreeningResult second = Screen(kb, patient, proposed);
  VIGIL_FUZZ_CHECK(Serialized(first) == Serialized(second), "screening the same input twice differs");
  return first;
}

void CheckAcceptedBase(const KnowledgeBase& kb, size_t max_drugs) {
  absl::flat_hash_set<std::string> ids;
  v1::Patient patient;
  patient.set_id("fuzz-patient");
  for (DrugIndex d = 0; d < kb.drug_count(); ++d) {
    const std::string& id = kb.drug(d).proto.id();
    VIGIL_FUZZ_CHECK(!id.empty(), absl::StrCat("drug ", d, " (", kb.drug(d).proto.name(), ") has no id"));
    VIGIL_FUZZ_CHECK(ids.insert(id).second, absl::StrCat("two drugs have the id '", id, "'"));
    const auto found = kb.FindDrug(id);
    VIGIL_FUZZ_CHECK(found.has_value() && *found == d, absl::StrCat("drug id '", id, "' resolves to another drug"));
    if (d < max_drugs) {
      patient.add_medications()->set_drug(id);
    }
  }
  if (patient.medications_size() > 0) {
    ScreenAndCheck(kb, patient, {});
  }
}

}  // namespace vigil::fuzz
