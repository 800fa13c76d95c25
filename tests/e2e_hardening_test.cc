// End-to-end tests of issue 13's token and file hardening against a real
// server: blank tokens, the tokens file's permissions and reload, the files
// the server creates, tokens over plaintext, and patient ids that look alike.
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/common/text.h"
#include "tests/server_process.h"
#include "vigil/v1/drug_catalog.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;
using ::vigil::testing::ServerProcess;

// A temporary folder, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "vigil-harden-XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

 private:
  std::string dir_;
};

void WriteTokens(const std::string& path, const std::string& text, mode_t mode) {
  {
    std::ofstream out(path, std::ios::trunc);
    out << text;
  }
  chmod(path.c_str(), mode);
}

grpc::StatusCode GetKb(const ServerProcess& server, const std::string& authorization) {
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!authorization.empty()) {
    context.AddMetadata("authorization", authorization);
  }
  v1::KnowledgeBase kb;
  return v1::DrugCatalog::NewStub(channel)->GetKnowledgeBase(&context, v1::GetKnowledgeBaseRequest(), &kb).error_code();
}

TEST(HardeningTest, TheDigestOfAnEmptyTokenIsRefusedAndBlankTokensNeverPass) {
  TempDir dir;
  WriteTokens(dir.path("tokens"), absl::StrCat(Sha256Hex(""), " admin blank\n"), 0600);
  ServerProcess refused({absl::StrCat("--tokens_file=", dir.path("tokens"))});
  EXPECT_FALSE(refused.ok());
  refused.Stop(SIGTERM);
  EXPECT_NE(refused.log().find("empty token"), std::string::npos) << refused.log();

  WriteTokens(dir.path("tokens"), absl::StrCat(Sha256Hex("good-token"), " admin operator\n"), 0600);
  ServerProcess server({absl::StrCat("--tokens_file=", dir.path("tokens"))});
  ASSERT_TRUE(server.ok()) << server.log();
  EXPECT_EQ(GetKb(server, "Bearer good-token"), grpc::StatusCode::OK);
  for (const char* blank : {"Bearer ", "Bearer    ", "bearer", "Bearer"}) {
    EXPECT_EQ(GetKb(server, blank), grpc::StatusCode::UNAUTHENTICATED) << "'" << blank << "'";
  }
}

TEST(HardeningTest, ATokensFileOthersCanWriteIsRefusedAndAReadableOneWarned) {
  TempDir dir;
  const std::string tokens = absl::StrCat(Sha256Hex("good-token"), " admin operator\n");
  for (mode_t mode : {mode_t{0666}, mode_t{0620}, mode_t{0602}}) {
    WriteTokens(dir.path("tokens"), tokens, mode);
    ServerProcess server({absl::StrCat("--tokens_file=", dir.path("tokens"))});
    EXPECT_FALSE(server.ok()) << std::oct << mode;
    server.Stop(SIGTERM);
    EXPECT_NE(server.log().find("writable by its group or by everyone"), std::string::npos) << server.log();
  }
  WriteTokens(dir.path("tokens"), tokens, 0644);
  ServerProcess readable({absl::StrCat("--tokens_file=", dir.path("tokens"))});
  ASSERT_TRUE(readable.ok()) << readable.log();
  EXPECT_NE(readable.log().find("tokens_file_world_readable"), std::string::npos) << readable.log();
}

TEST(HardeningTest, SighupReloadsTheTokensFileAndARemovedLineRevokesItsToken) {
  TempDir dir;
  WriteTokens(dir.path("tokens"),
              absl::StrCat(Sha256Hex("keep-token"), " admin keeper\n", Sha256Hex("gone-token"), " admin leaver\n"),
              0600);
  ServerProcess server({absl::StrCat("--tokens_file=", dir.path("tokens"))});
  ASSERT_TRUE(server.ok()) << server.log();
  ASSERT_EQ(GetKb(server, "Bearer gone-token"), grpc::StatusCode::OK);
  WriteTokens(dir.path("tokens"), absl::StrCat(Sha256Hex("keep-token"), " admin keeper\n"), 0600);
  server.Signal(SIGHUP);
  grpc::StatusCode code = grpc::StatusCode::OK;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    code = GetKb(server, "Bearer gone-token");
    if (code == grpc::StatusCode::UNAUTHENTICATED) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(code, grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(GetKb(server, "Bearer keep-token"), grpc::StatusCode::OK);
  // A reload that would break the file keeps the tokens in force.
  WriteTokens(dir.path("tokens"), "not a tokens file\n", 0600);
  server.Signal(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(GetKb(server, "Bearer keep-token"), grpc::StatusCode::OK);
  server.Stop(SIGTERM);
  EXPECT_NE(server.log().find("tokens_reload_refused"), std::string::npos) << server.log();
}

TEST(HardeningTest, TheDatabaseAndItsWalAreReadableByTheServersUserOnly) {
  TempDir dir;
  // Even when started with a permissive umask.
  const mode_t previous = umask(0);
  ServerProcess server({absl::StrCat("--db=", dir.path("vigil.db"))});
  umask(previous);
  ASSERT_TRUE(server.ok()) << server.log();
  {
    auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
    grpc::ClientContext context;
    v1::PutPatientRequest request;
    request.mutable_patient()->set_id("perm-1");
    request.mutable_patient()->add_medications()->set_drug("silperisone");
    v1::PutPatientResponse response;
    ASSERT_TRUE(v1::Patients::NewStub(channel)->PutPatient(&context, request, &response).ok());
  }
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(dir.path("vigil.db")).parent_path())) {
    struct stat st;
    ASSERT_EQ(stat(entry.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 077, 0u) << entry.path() << " mode " << std::oct << (st.st_mode & 0777);
    ++checked;
  }
  EXPECT_GE(checked, 2);  // the database and its WAL at least
}

TEST(HardeningTest, TokensOverPlaintextToTheNetworkAreWarnedAboutLoudly) {
  TempDir dir;
  WriteTokens(dir.path("tokens"), absl::StrCat(Sha256Hex("good-token"), " admin operator\n"), 0600);
  ServerProcess server(
      {"--listen=0.0.0.0:0", "--allow_plaintext", absl::StrCat("--tokens_file=", dir.path("tokens"))});
  ASSERT_TRUE(server.ok()) << server.log();
  EXPECT_NE(server.log().find("TOKENS_OVER_PLAINTEXT"), std::string::npos) << server.log();
}

TEST(HardeningTest, PatientIdsThatLookAlikeAreOnePatientOrAnError) {
  ServerProcess server({});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  auto put = [&](const std::string& id, const std::string& drug, v1::PutPatientResponse* response) {
    grpc::ClientContext context;
    v1::PutPatientRequest request;
    request.mutable_patient()->set_id(id);
    request.mutable_patient()->add_medications()->set_drug(drug);
    return v1::Patients::NewStub(channel)->PutPatient(&context, request, response);
  };
  auto get = [&](const std::string& id, v1::Patient* patient) {
    grpc::ClientContext context;
    v1::GetPatientRequest request;
    request.set_patient_id(id);
    return v1::Patients::NewStub(channel)->GetPatient(&context, request, patient);
  };
  const std::string nfc = "jos\xC3\xA9";          // "josé", precomposed (NFC)
  const std::string decomposed = "jose\xCC\x81";  // e + combining acute accent
  v1::PutPatientResponse first;
  ASSERT_TRUE(put(nfc, "silperisone", &first).ok());
  EXPECT_TRUE(first.created());
  // The decomposed spelling is the same patient: it replaces, not creates.
  v1::PutPatientResponse second;
  ASSERT_TRUE(put(decomposed, "warfarin", &second).ok());
  EXPECT_FALSE(second.created());
  v1::Patient stored;
  ASSERT_TRUE(get(nfc, &stored).ok());
  EXPECT_EQ(stored.id(), nfc);
  ASSERT_EQ(stored.medications_size(), 1);
  EXPECT_EQ(stored.medications(0).drug(), "warfarin");
  v1::Patient by_decomposed;
  ASSERT_TRUE(get(decomposed, &by_decomposed).ok());
  EXPECT_EQ(by_decomposed.id(), nfc);
  // U+212B ANGSTROM SIGN and U+00C5 are one patient too.
  v1::PutPatientResponse angstrom;
  ASSERT_TRUE(put("\xE2\x84\xAB" "ngstr\xC3\xB6m", "silperisone", &angstrom).ok());
  EXPECT_TRUE(angstrom.created());
  v1::PutPatientResponse a_ring;
  ASSERT_TRUE(put("\xC3\x85ngstr\xC3\xB6m", "silperisone", &a_ring).ok());
  EXPECT_FALSE(a_ring.created());
  // What no normalization can make one id is an error.
  for (const std::string& lookalike :
       {std::string(" jos\xC3\xA9"),           // leading space
        std::string("jos\xC3\xA9 "),           // trailing space
        std::string("jos\xC3\xA9\xE2\x80\x8B"),  // zero-width space
        std::string("\xE2\x80\xAEjos\xC3\xA9"),  // right-to-left override
        std::string("jos\xC3\xA9\xC2\xA0")}) {  // trailing no-break space
    v1::PutPatientResponse response;
    const auto status = put(lookalike, "silperisone", &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << lookalike;
    EXPECT_NE(status.error_message().find("patient.id"), std::string::npos) << status.error_message();
  }
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST(HardeningTest, TheClientRefusesToSendATokenInClearToAnotherMachine) {
  using ::vigil::testing::RunCommand;
  // 192.0.2.1 is TEST-NET-1 (RFC 5737): never a real host.
  const auto refused = RunCommand({VIGIL_CLIENT_BIN, "--server=192.0.2.1:50051", "--token=secret", "--timeout=1", "kb"});
  EXPECT_EQ(refused.exit_code, 64) << refused.output;
  // With --insecure it tries (and finds no server there).
  const auto tried =
      RunCommand({VIGIL_CLIENT_BIN, "--server=192.0.2.1:50051", "--token=secret", "--insecure", "--timeout=1", "kb"});
  EXPECT_EQ(tried.exit_code, 69) << tried.output;
  // To this machine, a token in clear does not cross a network.
  ServerProcess server({});
  ASSERT_TRUE(server.ok()) << server.log();
  for (const std::string& target : {server.address(), absl::StrCat("localhost:", server.port())}) {
    const auto local = RunCommand({VIGIL_CLIENT_BIN, absl::StrCat("--server=", target), "--token=secret", "kb"});
    EXPECT_EQ(local.exit_code, 0) << target << ": " << local.output;
  }
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST(ClientCommandLineTest, SnakeCaseFlagsOldSpellingsAndEmptyValues) {
  using ::vigil::testing::RunCommand;
  ServerProcess server({});
  ASSERT_TRUE(server.ok()) << server.log();
  const std::string target = absl::StrCat("--server=", server.address());
  // Every command has its own --help, naming the snake_case flags.
  const auto help = RunCommand({VIGIL_CLIENT_BIN, "check", "--help"});
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_NE(help.output.find("--patient_id"), std::string::npos) << help.output;
  // The old kebab-case spelling still works for this release, with a note.
  // (Through a shell, to read standard error too.)
  auto with_stderr = [](const std::string& command) { return RunCommand({"/bin/sh", "-c", command + " 2>&1"}); };
  const auto old_spelling =
      with_stderr(absl::StrCat(VIGIL_CLIENT_BIN, " ", target, " --json check --patient-id=mrn-42 silperisone"));
  EXPECT_EQ(old_spelling.exit_code, 0) << old_spelling.output;
  // The flag was read: alert ids derive from the patient id, so the old
  // and the new spelling give the same ids, and no id gives others.
  auto first_alert_id = [&](const std::string& flags) {
    const auto result =
        with_stderr(absl::StrCat(VIGIL_CLIENT_BIN, " ", target, " --json check ", flags, " --egfr=20 silperisone"));
    EXPECT_EQ(result.exit_code, 2) << result.output;
    const size_t at = result.output.find("\"al-");
    return at == std::string::npos ? std::string() : result.output.substr(at + 1, 35);
  };
  const std::string old_id = first_alert_id("--patient-id=mrn-42");
  ASSERT_EQ(old_id.size(), 35u);
  EXPECT_EQ(old_id, first_alert_id("--patient_id=mrn-42"));
  EXPECT_NE(old_id, first_alert_id(""));
  EXPECT_NE(old_spelling.output.find("--patient-id is deprecated; use --patient_id"), std::string::npos)
      << old_spelling.output;
  // An option with nothing after "=" is a usage error, never ignored: a
  // check without the patient meant would answer for no patient at all.
  const auto empty = with_stderr(absl::StrCat(VIGIL_CLIENT_BIN, " ", target, " check --patient= silperisone"));
  EXPECT_EQ(empty.exit_code, 64) << empty.output;
  EXPECT_NE(empty.output.find("--patient needs a value"), std::string::npos) << empty.output;
}

}  // namespace
}  // namespace vigil
