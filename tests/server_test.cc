// The Server built in-process (server/service/server.h), with a store that
// injects the faults a disk gives: full, read-only. The store is the real
// SQLite store; the wrapper only answers as SQLite does when the disk
// refuses a write (the same status SqliteStore maps SQLITE_FULL and
// SQLITE_READONLY to), which needs no root and no tmpfs.
// (tests/e2e_faults_test.cc fills a real tmpfs where the machine allows it.)
#include "server/service/server.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_store.h"
#include "tests/forwarding_store.h"
#include "tests/test_util.h"
#include "vigil/v1/admin.grpc.pb.h"
#include "vigil/v1/decision_support.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"

namespace vigil {
namespace {

using ::vigil::testing::ForwardingStore;
using ::vigil::testing::TempDir;

enum class Fault { kNone, kDiskFull, kReadOnly };

// The SQLite store, with writes refused while a fault is set.
class FaultyStore final : public ForwardingStore {
 public:
  FaultyStore(std::unique_ptr<Store> real, std::shared_ptr<std::atomic<Fault>> fault)
      : ForwardingStore(std::move(real)), fault_(std::move(fault)) {}

  absl::StatusOr<CommitResult> Commit(const PatientChange& change) override {
    if (auto st = Refusal(); !st.ok()) {
      return st;
    }
    return ForwardingStore::Commit(change);
  }
  absl::Status Health() override {
    if (auto st = Refusal(); !st.ok()) {
      return st;
    }
    return ForwardingStore::Health();
  }
  absl::Status AppendAudit(const std::vector<v1::AuditEvent>& events, AuditDurability durability) override {
    if (auto st = Refusal(); !st.ok()) {
      return st;
    }
    return ForwardingStore::AppendAudit(events, durability);
  }
  absl::Status SyncAudit() override {
    if (auto st = Refusal(); !st.ok()) {
      return st;
    }
    return ForwardingStore::SyncAudit();
  }

 private:
  // What SqliteStore answers for SQLITE_FULL and SQLITE_READONLY.
  absl::Status Refusal() const {
    switch (fault_->load()) {
      case Fault::kDiskFull:
        return absl::UnavailableError(
            "database or disk is full (13); the disk is full: writes resume when space is freed");
      case Fault::kReadOnly:
        return absl::UnavailableError(
            "attempt to write a readonly database (8); the database is read-only: writes resume when it is writable");
      case Fault::kNone:
        break;
    }
    return absl::OkStatus();
  }

  std::shared_ptr<std::atomic<Fault>> fault_;
};

class ServerFaultTest : public ::testing::TestWithParam<Fault> {};

grpc::Status Put(const std::shared_ptr<grpc::Channel>& channel, const std::string& id) {
  grpc::ClientContext context;
  v1::PutPatientRequest request;
  request.mutable_patient()->set_id(id);
  request.mutable_patient()->add_medications()->set_drug("warfarin");
  request.mutable_patient()->add_medications()->set_drug("aspirin");
  v1::PutPatientResponse response;
  return v1::Patients::NewStub(channel)->PutPatient(&context, request, &response);
}

grpc::health::v1::HealthCheckResponse::ServingStatus PatientsHealth(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("vigil.v1.Patients");
  grpc::health::v1::HealthCheckResponse response;
  if (!grpc::health::v1::Health::NewStub(channel)->Check(&context, request, &response).ok()) {
    return grpc::health::v1::HealthCheckResponse::UNKNOWN;
  }
  return response.status();
}

// Waits (up to 10 s) for the Patients service's health to be `want`.
bool AwaitPatientsHealth(const std::shared_ptr<grpc::Channel>& channel,
                         grpc::health::v1::HealthCheckResponse::ServingStatus want) {
  for (int i = 0; i < 100; ++i) {
    if (PatientsHealth(channel) == want) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return false;
}

TEST_P(ServerFaultTest, WritesFailClearlyScreeningGoesOnAndWritesResume) {
  TempDir dir;
  auto fault = std::make_shared<std::atomic<Fault>>(Fault::kNone);
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.kb.curated = {VIGIL_BUNDLED_KB};
  options.db = absl::StrCat(dir.path(), "/vigil.db");
  options.open_store = [&]() -> absl::StatusOr<std::unique_ptr<Store>> {
    auto real = SqliteStore::Open(absl::StrCat(dir.path(), "/vigil.db"));
    if (!real.ok()) {
      return real.status();
    }
    return std::unique_ptr<Store>(std::make_unique<FaultyStore>(*std::move(real), fault));
  };
  options.shutdown_grace = absl::Seconds(2);
  auto server = Server::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()), grpc::InsecureChannelCredentials());

  ASSERT_TRUE(Put(channel, "before").ok());
  fault->store(GetParam());
  const grpc::Status refused = Put(channel, "during");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  EXPECT_NE(refused.error_message().find(GetParam() == Fault::kDiskFull ? "the disk is full" : "read-only"),
            std::string::npos)
      << refused.error_message();
  EXPECT_TRUE(AwaitPatientsHealth(channel, grpc::health::v1::HealthCheckResponse::NOT_SERVING));
  {
    // Screening needs no database.
    grpc::ClientContext context;
    v1::CheckMedicationsRequest request;
    request.mutable_patient()->add_medications()->set_drug("warfarin");
    request.add_proposed_medications()->set_drug("aspirin");
    v1::CheckMedicationsUnaryResponse result;
    ASSERT_TRUE(v1::DecisionSupport::NewStub(channel)->CheckMedicationsUnary(&context, testing::Unary(request), &result).ok());
    EXPECT_GT(result.alerts_size(), 0);
  }
  fault->store(Fault::kNone);
  EXPECT_TRUE(AwaitPatientsHealth(channel, grpc::health::v1::HealthCheckResponse::SERVING));
  ASSERT_TRUE(Put(channel, "after").ok());
  for (const std::string id : {"before", "after"}) {
    grpc::ClientContext context;
    v1::GetPatientRequest request;
    request.set_patient_id(id);
    v1::Patient patient;
    EXPECT_TRUE(v1::Patients::NewStub(channel)->GetPatient(&context, request, &patient).ok()) << id;
  }
  {
    grpc::ClientContext context;
    v1::GetPatientRequest request;
    request.set_patient_id("during");
    v1::Patient patient;
    EXPECT_EQ(v1::Patients::NewStub(channel)->GetPatient(&context, request, &patient).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  // The audit records of the calls made during the fault were kept and
  // written once it cleared: the refused write and the check among them.
  bool refused_write_audited = false;
  bool check_audited = false;
  for (int attempt = 0; attempt < 50 && !(refused_write_audited && check_audited); ++attempt) {
    grpc::ClientContext context;
    v1::ListAuditEventsRequest request;
    request.set_page_size(1000);
    v1::ListAuditEventsResponse response;
    ASSERT_TRUE(v1::Admin::NewStub(channel)->ListAuditEvents(&context, request, &response).ok());
    for (const auto& event : response.events()) {
      refused_write_audited = refused_write_audited || (event.patient_id() == "during" && event.outcome() == google::rpc::UNAVAILABLE);
      check_audited = check_audited || absl::EndsWith(event.method(), "/CheckMedicationsUnary");
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(refused_write_audited);
  EXPECT_TRUE(check_audited);
  (*server)->Stop();
}

INSTANTIATE_TEST_SUITE_P(Faults, ServerFaultTest, ::testing::Values(Fault::kDiskFull, Fault::kReadOnly),
                         [](const ::testing::TestParamInfo<Fault>& param_info) { return param_info.param == Fault::kDiskFull ? "DiskFull" : "ReadOnly"; });

}  // namespace
}  // namespace vigil
