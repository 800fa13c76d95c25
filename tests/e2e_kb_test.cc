// End-to-end tests of knowledge-base versions, imports and hot reload
// against a real server process.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"
#include "vigil/v1/admin.grpc.pb.h"
#include "vigil/v1/decision_support.grpc.pb.h"
#include "vigil/v1/drug_catalog.grpc.pb.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;
using ::vigil::testing::ServerProcess;

// A copy of the bundled knowledge base that a test may edit.
class KbCopy {
 public:
  KbCopy() {
    std::string pattern = (fs::temp_directory_path() / "vigil-kb-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
    for (const auto& entry : fs::directory_iterator(VIGIL_BUNDLED_KB)) {
      fs::copy_file(entry.path(), fs::path(path_) / entry.path().filename());
    }
  }
  ~KbCopy() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }
  void Write(const std::string& name, const std::string& text) const {
    std::ofstream(fs::path(path_) / name) << text;
  }
  void Remove(const std::string& name) const { fs::remove(fs::path(path_) / name); }

 private:
  std::string path_;
};

std::string ServingVersion(grpc::Channel& channel) {
  auto stub = v1::DrugCatalog::NewStub(std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  grpc::ClientContext context;
  v1::KnowledgeBase kb;
  const auto status = stub->GetKnowledgeBase(&context, v1::GetKnowledgeBaseRequest(), &kb);
  return status.ok() ? kb.version() : "";
}

grpc::Status Reload(const std::shared_ptr<grpc::Channel>& channel, v1::ReloadKnowledgeBaseResponse* response) {
  auto stub = v1::Admin::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return stub->ReloadKnowledgeBase(&context, v1::ReloadKnowledgeBaseRequest(), response);
}

// Checks silperisone for a patient with eGFR 20; returns the version that answered, or "" on failure.
std::string CheckVersion(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::DecisionSupport::NewStub(channel);
  v1::CheckMedicationsRequest request;
  request.mutable_patient()->set_id("reload");
  auto* lab = request.mutable_patient()->add_labs();
  lab->mutable_code()->set_system("http://loinc.org");
  lab->mutable_code()->set_code("62238-1");
  lab->set_value(20);
  lab->set_unit("mL/min/{1.73_m2}");
  request.add_proposed_medications()->set_drug("silperisone");
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto reader = stub->CheckMedications(&context, request);
  v1::CheckMedicationsResponse response;
  std::string version;
  bool contraindication = false;
  while (reader->Read(&response)) {
    if (response.has_alert() && response.alert().rule_id() == "silperisone-ci-severe-renal-impairment") {
      contraindication = true;
    }
    if (response.has_summary()) {
      version = response.summary().knowledge_base_version();
    }
  }
  if (!reader->Finish().ok() || !contraindication) {
    return "";
  }
  return version;
}

constexpr char kExtraSource[] = "sources { id: \"reload-test\" title: \"A source added by the reload test\" }\n";

TEST(KnowledgeBaseReloadTest, RpcReloadSwapsInANewVersion) {
  KbCopy kb;
  ServerProcess server({absl::StrCat("--kb=", kb.path())});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  const std::string v1 = ServingVersion(*channel);
  ASSERT_EQ(v1.size(), 64u);

  v1::ReloadKnowledgeBaseResponse response;
  ASSERT_TRUE(Reload(channel, &response).ok());
  EXPECT_FALSE(response.changed());
  EXPECT_EQ(response.knowledge_base().version(), v1);

  kb.Write("zz_extra.textproto", kExtraSource);
  ASSERT_TRUE(Reload(channel, &response).ok());
  EXPECT_TRUE(response.changed());
  EXPECT_EQ(response.previous_version(), v1);
  const std::string v2 = response.knowledge_base().version();
  EXPECT_NE(v2, v1);
  EXPECT_EQ(ServingVersion(*channel), v2);
  EXPECT_EQ(CheckVersion(channel), v2);
}

TEST(KnowledgeBaseReloadTest, BrokenBaseIsRefusedAndTheOldOneKeepsServing) {
  KbCopy kb;
  ServerProcess server({absl::StrCat("--kb=", kb.path())});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  const std::string v1 = ServingVersion(*channel);

  kb.Write("zz_broken.textproto", "drugs { id: \"x\" name: \"X\" classes: \"no-such-class\" sources: \"who-atc\" }\n");
  v1::ReloadKnowledgeBaseResponse response;
  const auto status = Reload(channel, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("zz_broken.textproto:1:"), std::string::npos) << status.error_message();
  EXPECT_NE(status.error_message().find("keeps serving"), std::string::npos);
  EXPECT_EQ(ServingVersion(*channel), v1);
  EXPECT_EQ(CheckVersion(channel), v1);

  // A truncated file is refused the same way.
  kb.Write("zz_broken.textproto", "drugs { id: \"x\" name: ");
  EXPECT_EQ(Reload(channel, &response).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ServingVersion(*channel), v1);
}

TEST(KnowledgeBaseReloadTest, SighupReloads) {
  KbCopy kb;
  ServerProcess server({absl::StrCat("--kb=", kb.path()), "--shutdown_grace_seconds=2"});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  const std::string v1 = ServingVersion(*channel);
  kb.Write("zz_extra.textproto", kExtraSource);
  server.Signal(SIGHUP);
  std::string now = v1;
  for (int i = 0; i < 100 && now == v1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    now = ServingVersion(*channel);
  }
  EXPECT_NE(now, v1);
  EXPECT_EQ(now.size(), 64u);
  const int status = server.Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_NE(server.log().find("\"trigger\":\"SIGHUP\""), std::string::npos) << server.log();
}

TEST(KnowledgeBaseReloadTest, ReloadUnderLoadLosesNoCheck) {
  KbCopy kb;
  ServerProcess server({absl::StrCat("--kb=", kb.path())});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  const std::string v1 = ServingVersion(*channel);

  std::atomic<bool> stop{false};
  std::atomic<int> checks{0};
  std::atomic<int> failures{0};
  absl::Mutex mu;
  std::set<std::string> versions_seen;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      auto own = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
      while (!stop.load()) {
        const std::string version = CheckVersion(own);
        ++checks;
        if (version.empty()) {
          ++failures;
        } else {
          absl::MutexLock lock(&mu);
          versions_seen.insert(version);
        }
      }
    });
  }
  std::set<std::string> versions_served = {v1};
  for (int i = 0; i < 6; ++i) {
    if (i % 2 == 0) {
      kb.Write("zz_extra.textproto", kExtraSource);
    } else {
      kb.Remove("zz_extra.textproto");
    }
    v1::ReloadKnowledgeBaseResponse response;
    ASSERT_TRUE(Reload(channel, &response).ok());
    versions_served.insert(response.knowledge_base().version());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stop = true;
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(checks.load(), 20);
  EXPECT_EQ(versions_served.size(), 2u);
  for (const auto& v : versions_seen) {
    EXPECT_EQ(versions_served.count(v), 1u) << v;
  }
}

TEST(KnowledgeBaseImportTest, ServerStartsWithDdinterAndAlertsFromIt) {
  const std::string ddinter = std::string(VIGIL_SHARED_DATA) + "/ddinter";
  if (!fs::exists(ddinter)) {
    GTEST_SKIP() << ddinter << " is not present";
  }
  ServerProcess server({absl::StrCat("--kb=", VIGIL_BUNDLED_KB), absl::StrCat("--import=", ddinter)});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  {
    auto stub = v1::DrugCatalog::NewStub(channel);
    grpc::ClientContext context;
    v1::KnowledgeBase kb;
    ASSERT_TRUE(stub->GetKnowledgeBase(&context, v1::GetKnowledgeBaseRequest(), &kb).ok());
    EXPECT_GE(kb.imported_interaction_count(), 159000);
    int ddinter_files = 0;
    for (const auto& s : kb.sources()) {
      ddinter_files += s.kind() == "ddinter" ? 1 : 0;
    }
    EXPECT_EQ(ddinter_files, 8);
  }
  // DDInter lists naltrexone + abacavir (Moderate).
  auto stub = v1::DecisionSupport::NewStub(channel);
  v1::CheckMedicationsRequest request;
  request.mutable_patient()->set_id("import");
  request.mutable_patient()->add_medications()->set_drug("Naltrexone");
  request.add_proposed_medications()->set_drug("Abacavir");
  grpc::ClientContext context;
  auto reader = stub->CheckMedications(&context, request);
  v1::CheckMedicationsResponse response;
  bool found = false;
  while (reader->Read(&response)) {
    if (response.has_alert() && response.alert().kind() == v1::ALERT_KIND_DRUG_INTERACTION) {
      found = true;
      EXPECT_EQ(response.alert().rule_origin(), v1::RULE_ORIGIN_IMPORTED);
      EXPECT_EQ(response.alert().severity(), v1::SEVERITY_MODERATE);
    }
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_TRUE(found);
}

TEST(KnowledgeBaseImportTest, MalformedImportRefusesStart) {
  KbCopy kb;
  const std::string csv = (fs::path(kb.path()) / "bad.csv").string();
  std::ofstream(csv) << "DDInterID_A,Drug_A,DDInterID_B,Drug_B,Level\nDDI1,A,DDI2,B,Major\nDDI1,A,DDI3\n";
  ServerProcess server({absl::StrCat("--kb=", VIGIL_BUNDLED_KB), absl::StrCat("--import=", csv)});
  EXPECT_FALSE(server.ok());
  const int status = server.Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0);
  EXPECT_NE(server.log().find("bad.csv:3: expected 5 columns"), std::string::npos) << server.log();
}

}  // namespace
}  // namespace vigil
