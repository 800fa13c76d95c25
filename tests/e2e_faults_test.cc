// Fault injection against a real server process: the database's disk fills
// up. Writes must fail with UNAVAILABLE and a message that says why,
// screening must keep working, nothing that was acknowledged may be lost, and
// writes must resume once space is freed.
//
// The fault is real: the database lives on a small tmpfs the test mounts and
// fills. Mounting needs CAP_SYS_ADMIN, which the project's machines and CI
// have (they run as root); elsewhere the test is skipped with that reason.
// (A read-only remount is refused by the kernel while the server holds the
// file open for writing, so that variant is not injectable this way.)
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"
#include "vigil/v1/admin.grpc.pb.h"
#include "vigil/v1/decision_support.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;
using ::vigil::testing::ServerProcess;

// A tmpfs of a few MiB mounted for the test's life.
class SmallDisk {
 public:
  SmallDisk() {
    char pattern[] = "/tmp/vigil-disk-XXXXXX";
    const char* dir = mkdtemp(pattern);
    if (dir == nullptr) {
      error_ = std::strerror(errno);
      return;
    }
    path_ = dir;
    if (mount("tmpfs", path_.c_str(), "tmpfs", 0, "size=8m,mode=0700") != 0) {
      error_ = absl::StrCat("cannot mount a tmpfs at ", path_, ": ", std::strerror(errno));
      return;
    }
    mounted_ = true;
  }
  ~SmallDisk() {
    if (mounted_) {
      umount2(path_.c_str(), MNT_DETACH);
    }
    if (!path_.empty()) {
      rmdir(path_.c_str());
    }
  }
  bool ok() const { return mounted_; }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }

  // Fills the disk with a filler file until no byte more fits.
  void Fill() {
    std::FILE* f = std::fopen((path_ + "/filler").c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::vector<char> block(64 * 1024, 'x');
    while (std::fwrite(block.data(), 1, block.size(), f) == block.size()) {
    }
    // The last partial block: byte by byte up to the limit.
    while (std::fputc('x', f) != EOF && std::fflush(f) == 0) {
    }
    std::fclose(f);
  }
  void Free() { fs::remove(path_ + "/filler"); }


 private:
  std::string path_;
  std::string error_;
  bool mounted_ = false;
};

v1::Patient Patient(const std::string& id, int variant) {
  v1::Patient p;
  p.set_id(id);
  p.add_medications()->set_drug("silperisone");
  // Each variant is a different context, so that every write changes data.
  p.add_medications()->set_drug(variant % 2 == 0 ? "diazepam" : "sertraline");
  p.set_weight_kg(40.0 + variant);
  return p;
}

class Api {
 public:
  explicit Api(const std::string& address)
      : channel_(grpc::CreateChannel(address, grpc::InsecureChannelCredentials())),
        patients_(v1::Patients::NewStub(channel_)),
        checks_(v1::DecisionSupport::NewStub(channel_)),
        admin_(v1::Admin::NewStub(channel_)) {}

  grpc::Status Put(const v1::Patient& patient) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::PutPatientRequest request;
    *request.mutable_patient() = patient;
    v1::PutPatientResponse response;
    return patients_->PutPatient(&context, request, &response);
  }

  grpc::Status Get(const std::string& id, v1::Patient* patient) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::GetPatientRequest request;
    request.set_patient_id(id);
    return patients_->GetPatient(&context, request, patient);
  }

  // A check of an inline context; returns the status and counts the alerts.
  grpc::Status Check(const std::string& patient_id, int* alerts) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::CheckMedicationsRequest request;
    request.mutable_patient()->set_id(patient_id);
    request.mutable_patient()->add_medications()->set_drug("diazepam");
    request.add_proposed_medications()->set_drug("silperisone");
    v1::CheckMedicationsResult result;
    const grpc::Status status = checks_->CheckMedicationsUnary(&context, request, &result);
    *alerts = result.alerts_size();
    return status;
  }

  // Every audit record's patient id, in order.
  std::vector<std::string> AuditedPatients() {
    std::vector<std::string> ids;
    int64_t after = 0;
    while (true) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      v1::ListAuditEventsRequest request;
      request.set_after_id(after);
      request.set_page_size(1000);
      v1::ListAuditEventsResponse response;
      const grpc::Status status = admin_->ListAuditEvents(&context, request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok() || response.events().empty()) {
        return ids;
      }
      for (const auto& e : response.events()) {
        ids.push_back(e.patient_id());
      }
      after = response.next_after_id();
    }
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Patients::Stub> patients_;
  std::unique_ptr<v1::DecisionSupport::Stub> checks_;
  std::unique_ptr<v1::Admin::Stub> admin_;
};

// Writes new contexts until one fails; returns the failure (OK if none did
// within `attempts`). Every write that succeeded is recorded in `acked`.
grpc::Status WriteUntilFailure(Api& api, int attempts, int* variant, std::vector<v1::Patient>* acked) {
  for (int i = 0; i < attempts; ++i) {
    const v1::Patient p = Patient(absl::StrCat("fault-", *variant % 5), *variant);
    ++*variant;
    const grpc::Status status = api.Put(p);
    if (!status.ok()) {
      return status;
    }
    acked->push_back(p);
  }
  return grpc::Status::OK;
}

// Retries a write until it succeeds, for at most `timeout`.
grpc::Status WriteEventually(Api& api, const v1::Patient& p, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  grpc::Status status;
  do {
    status = api.Put(p);
    if (status.ok()) {
      return status;
    }
    absl::SleepFor(absl::Milliseconds(200));
  } while (absl::Now() < deadline);
  return status;
}

// The latest acknowledged context of each patient must be what is stored.
void ExpectAcknowledgedWritesStored(Api& api, const std::vector<v1::Patient>& acked) {
  std::map<std::string, v1::Patient> latest;
  for (const auto& p : acked) {
    latest[p.id()] = p;
  }
  for (const auto& [id, expected] : latest) {
    v1::Patient stored;
    const grpc::Status status = api.Get(id, &stored);
    ASSERT_TRUE(status.ok()) << id << ": " << status.error_message();
    EXPECT_EQ(stored.weight_kg(), expected.weight_kg()) << id;
    EXPECT_EQ(stored.medications_size(), expected.medications_size()) << id;
  }
}

TEST(FaultTest, FullDiskFailsWritesClearlyScreeningGoesOnAndWritesResume) {
  SmallDisk disk;
  if (!disk.ok()) {
    GTEST_SKIP() << "this test needs to mount a tmpfs (CAP_SYS_ADMIN): " << disk.error();
  }
  const std::string db = disk.path() + "/vigil.db";
  std::vector<v1::Patient> acked;
  int variant = 0;
  {
    ServerProcess server({absl::StrCat("--kb=", VIGIL_BUNDLED_KB), absl::StrCat("--db=", db)});
    ASSERT_TRUE(server.ok()) << server.log();
    Api api(server.address());
    ASSERT_TRUE(WriteUntilFailure(api, 10, &variant, &acked).ok());
    ASSERT_EQ(acked.size(), 10u);

    // The disk fills up: some write fails (SQLite may still have room in
    // pages it holds), with UNAVAILABLE and the reason.
    disk.Fill();
    const grpc::Status full = WriteUntilFailure(api, 200, &variant, &acked);
    ASSERT_FALSE(full.ok()) << "200 writes succeeded on a full disk";
    EXPECT_EQ(full.error_code(), grpc::StatusCode::UNAVAILABLE) << full.error_message();
    EXPECT_NE(full.error_message().find("disk is full"), std::string::npos) << full.error_message();
    // Screening does not need the disk: checks go on, with their alerts.
    for (int i = 0; i < 20; ++i) {
      int alerts = 0;
      const grpc::Status check = api.Check(absl::StrCat("during-full-", i), &alerts);
      ASSERT_TRUE(check.ok()) << check.error_message();
      EXPECT_GT(alerts, 0);
    }
    // Reads of what was acknowledged still work.
    ExpectAcknowledgedWritesStored(api, acked);

    // Space comes back: writes resume.
    disk.Free();
    const v1::Patient after_full = Patient("fault-after-full", variant++);
    const grpc::Status resumed = WriteEventually(api, after_full, absl::Seconds(20));
    ASSERT_TRUE(resumed.ok()) << resumed.error_message();
    acked.push_back(after_full);

    ExpectAcknowledgedWritesStored(api, acked);

    // The audit records of the checks made while the disk was full were kept
    // and written once it recovered.
    const std::vector<std::string> audited = api.AuditedPatients();
    for (const char* prefix : {"during-full-"}) {
      for (int i = 0; i < 20; ++i) {
        const std::string id = absl::StrCat(prefix, i);
        EXPECT_NE(std::find(audited.begin(), audited.end(), id), audited.end()) << "no audit record of " << id;
      }
    }
    const int status = server.Stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << server.log();
  }
  // After a restart on the same file, every acknowledged write is there.
  ServerProcess restarted({absl::StrCat("--kb=", VIGIL_BUNDLED_KB), absl::StrCat("--db=", db)});
  ASSERT_TRUE(restarted.ok()) << restarted.log();
  Api api(restarted.address());
  ExpectAcknowledgedWritesStored(api, acked);
}

}  // namespace
}  // namespace vigil
