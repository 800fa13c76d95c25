// vigil.v1 is frozen: changes are additive only. The released API is
// recorded in proto/frozen/vigil_v1.descriptor.textproto
// (scripts/freeze-api.sh); every message field, enum value and method in it
// must still exist in the generated API with the same number, name and type.
// A renamed or renumbered field, a removed enum value or a changed method
// fails here.
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "vigil/v1/admin.pb.h"
#include "vigil/v1/alert_feed.pb.h"
#include "vigil/v1/audit.pb.h"
#include "vigil/v1/decision_support.pb.h"
#include "vigil/v1/drug_catalog.pb.h"
#include "vigil/v1/patients.pb.h"

namespace vigil {
namespace {

using google::protobuf::DescriptorPool;

google::protobuf::FileDescriptorSet Released() {
  // Every file of vigil.v1 linked in (a static library's object is linked
  // only when something refers to it), so that the generated pool has it.
  for (const auto* d : {v1::ReloadKnowledgeBaseRequest::descriptor(), v1::AlertEvent::descriptor(),
                        v1::CheckMedicationsRequest::descriptor(), v1::Drug::descriptor(),
                        v1::PutPatientRequest::descriptor(), v1::AuditEvent::descriptor()}) {
    EXPECT_NE(d, nullptr);
  }
  std::ifstream in(absl::StrCat(VIGIL_SOURCE_DIR, "/proto/frozen/vigil_v1.descriptor.textproto"));
  std::stringstream text;
  text << in.rdbuf();
  google::protobuf::FileDescriptorSet set;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text.str(), &set));
  return set;
}

// Every difference between the released message `was` (full name `name`)
// and the generated one, nested messages and enums included.
void CompareMessage(const std::string& name, const google::protobuf::DescriptorProto& was,
                    std::vector<std::string>* problems);

void CompareEnum(const std::string& name, const google::protobuf::EnumDescriptorProto& was,
                 std::vector<std::string>* problems) {
  const auto* now = DescriptorPool::generated_pool()->FindEnumTypeByName(name);
  if (now == nullptr) {
    problems->push_back(absl::StrCat("enum ", name, " was removed or renamed"));
    return;
  }
  for (const auto& value : was.value()) {
    const auto* current = now->FindValueByNumber(value.number());
    if (current == nullptr || current->name() != value.name()) {
      problems->push_back(absl::StrCat("enum value ", name, ".", value.name(), " = ", value.number(),
                                       " was removed, renamed or renumbered"));
    }
  }
}

void CompareMessage(const std::string& name, const google::protobuf::DescriptorProto& was,
                    std::vector<std::string>* problems) {
  const auto* now = DescriptorPool::generated_pool()->FindMessageTypeByName(name);
  if (now == nullptr) {
    problems->push_back(absl::StrCat("message ", name, " was removed or renamed"));
    return;
  }
  google::protobuf::DescriptorProto current;
  now->CopyTo(&current);
  for (const auto& field : was.field()) {
    const google::protobuf::FieldDescriptorProto* same = nullptr;
    for (const auto& f : current.field()) {
      if (f.number() == field.number()) {
        same = &f;
      }
    }
    const std::string where = absl::StrCat(name, ".", field.name(), " = ", field.number());
    if (same == nullptr) {
      problems->push_back(absl::StrCat("field ", where, " was removed or renumbered"));
      continue;
    }
    if (same->name() != field.name()) {
      problems->push_back(absl::StrCat("field ", where, " was renamed to ", same->name()));
    }
    if (same->type() != field.type() || same->label() != field.label() ||
        absl::StripPrefix(same->type_name(), ".") != absl::StripPrefix(field.type_name(), ".")) {
      problems->push_back(absl::StrCat("field ", where, " changed its type or label"));
    }
  }
  for (const auto& nested : was.nested_type()) {
    CompareMessage(absl::StrCat(name, ".", nested.name()), nested, problems);
  }
  for (const auto& e : was.enum_type()) {
    CompareEnum(absl::StrCat(name, ".", e.name()), e, problems);
  }
}

std::vector<std::string> Differences(const google::protobuf::FileDescriptorSet& released) {
  std::vector<std::string> problems;
  for (const auto& file : released.file()) {
    for (const auto& message : file.message_type()) {
      CompareMessage(absl::StrCat(file.package(), ".", message.name()), message, &problems);
    }
    for (const auto& e : file.enum_type()) {
      CompareEnum(absl::StrCat(file.package(), ".", e.name()), e, &problems);
    }
    for (const auto& service : file.service()) {
      const std::string name = absl::StrCat(file.package(), ".", service.name());
      const auto* now = DescriptorPool::generated_pool()->FindServiceByName(name);
      if (now == nullptr) {
        problems.push_back(absl::StrCat("service ", name, " was removed or renamed"));
        continue;
      }
      for (const auto& method : service.method()) {
        const auto* m = now->FindMethodByName(method.name());
        if (m == nullptr) {
          problems.push_back(absl::StrCat("method ", name, ".", method.name(), " was removed or renamed"));
        } else if (absl::StripPrefix(method.input_type(), ".") != m->input_type()->full_name() ||
                   absl::StripPrefix(method.output_type(), ".") != m->output_type()->full_name() ||
                   method.client_streaming() != m->client_streaming() ||
                   method.server_streaming() != m->server_streaming()) {
          problems.push_back(absl::StrCat("method ", name, ".", method.name(), " changed its request, response or streaming"));
        }
      }
    }
  }
  return problems;
}

TEST(ApiFreezeTest, TheReleasedApiIsStillThere) {
  const auto released = Released();
  ASSERT_GE(released.file_size(), 8);
  for (const std::string& problem : Differences(released)) {
    ADD_FAILURE() << problem;
  }
}

// The check itself can fail: a released API with a field renamed and one
// renumbered is caught.
TEST(ApiFreezeTest, ARenamedOrRenumberedFieldIsCaught) {
  auto released = Released();
  google::protobuf::DescriptorProto* alert = nullptr;
  for (auto& file : *released.mutable_file()) {
    for (auto& message : *file.mutable_message_type()) {
      if (file.package() == "vigil.v1" && message.name() == "Alert") {
        alert = &message;
      }
    }
  }
  ASSERT_NE(alert, nullptr);
  alert->mutable_field(0)->set_name("identifier");
  alert->mutable_field(1)->set_number(99);
  const auto problems = Differences(released);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("was renamed to id"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find("removed or renumbered"), std::string::npos) << problems[1];
}

}  // namespace
}  // namespace vigil
