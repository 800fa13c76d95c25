// End-to-end tests of hostile and broken clients against a real vigil-server
// process: subscribers that stop reading and never come back, clients that
// vanish mid-stream (cancel, channel destruction, kill -9), and hundreds of
// calls whose 1 ms deadlines expire. Afterwards the server must have released
// everything those clients held (threads, file descriptors, memory,
// subscriptions), must have lost nothing it acknowledged, must still serve
// checks and subscriptions, and must exit 0 on SIGTERM within its grace
// period.
//
// e2e_feed_test's SlowSubscriberIsBoundedAndOthersKeepReceiving covers one
// slow subscriber that resumes reading; here the stalled ones never do.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/feed_client.h"
#include "tests/server_process.h"
#include "vigil/v1/alert_feed.grpc.pb.h"
#include "vigil/v1/decision_support.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"

namespace vigil {
namespace {

using ::vigil::testing::Contiguous;
using ::vigil::testing::From;
using ::vigil::testing::MakePatient;
using ::vigil::testing::OwnChannel;
using ::vigil::testing::RunCommand;
using ::vigil::testing::ServerProcess;
using ::vigil::testing::StalledChannel;
using ::vigil::testing::Subscriber;

constexpr char kIcd10Cm[] = "http://hl7.org/fhir/sid/icd-10-cm";

// How long the server may take to release what a vanished client held. Its
// own timers are far shorter (a stuck write is cancelled after 5 s); this is
// only generous for a loaded machine, and no assertion depends on it.
constexpr absl::Duration kSettleTimeout = absl::Seconds(30);

// What the server may still hold after the hostile clients are gone, beyond
// its state after the warm-up. gRPC sizes its own pools with load: its
// default executor grows up to two threads a core and keeps them, and its
// timer and event-engine threads vary by one or two; the test's own
// connections come and go. A leak per call would exceed these many times
// over, since each test makes hundreds of calls.
long ThreadTolerance() { return 4 + 2 * static_cast<long>(std::thread::hardware_concurrency()); }
constexpr long kFdTolerance = 4;
// Resident memory is coarse (the allocator keeps freed pages): this only
// catches backlogs kept for clients that are gone, as in e2e_feed_test.
constexpr long kRssToleranceKib = 32 * 1024;

std::chrono::system_clock::time_point In(std::chrono::milliseconds ms) { return std::chrono::system_clock::now() + ms; }

constexpr std::chrono::milliseconds kCallTimeout{30000};

// Threads, resident memory and open descriptors of a process, from /proc.
struct ProcessStats {
  long threads = -1;
  long rss_kib = -1;
  long fds = -1;
};

ProcessStats ReadStats(pid_t pid) {
  ProcessStats stats;
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "Threads:")) {
      stats.threads = std::stol(line.substr(8));
    } else if (absl::StartsWith(line, "VmRSS:")) {
      stats.rss_kib = std::stol(line.substr(6));
    }
  }
  std::error_code ec;
  long fds = 0;
  for (auto it = std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/fd"), ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++fds;
  }
  if (!ec) {
    stats.fds = fds;
  }
  return stats;
}

std::string Describe(const ProcessStats& s) {
  return absl::StrCat(s.threads, " threads, ", s.rss_kib, " KiB resident, ", s.fds, " descriptors");
}

// Sums the samples of the metric lines that start with `prefix` (a name, or
// a name with the start of its labels); nullopt when the scrape failed or no
// line matched.
std::optional<double> Metric(int port, const std::string& prefix) {
  const auto scrape = RunCommand({"/usr/bin/curl", "-sf", absl::StrCat("http://127.0.0.1:", port, "/metrics")});
  if (scrape.exit_code != 0) {
    return std::nullopt;
  }
  std::optional<double> sum;
  for (absl::string_view line : absl::StrSplit(scrape.output, '\n')) {
    if (!absl::StartsWith(line, prefix)) {
      continue;
    }
    const size_t space = line.rfind(' ');
    double value = 0;
    if (space != absl::string_view::npos && absl::SimpleAtod(line.substr(space + 1), &value)) {
      sum = sum.value_or(0) + value;
    }
  }
  return sum;
}

// Polls `done` every 200 ms until it holds or `timeout` passes; returns its
// last value.
template <typename Predicate>
bool Eventually(Predicate done, absl::Duration timeout = kSettleTimeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (done()) {
      return true;
    }
    if (absl::Now() > deadline) {
      return done();
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
}

v1::CheckMedicationsRequest NormalCheck() {
  v1::CheckMedicationsRequest request;
  auto* patient = request.mutable_patient();
  patient->set_id("clients-normal");
  auto* lab = patient->add_labs();
  lab->mutable_code()->set_system("http://loinc.org");
  lab->mutable_code()->set_code("62238-1");
  lab->set_value(22);
  lab->set_unit("mL/min/{1.73_m2}");
  patient->add_medications()->set_drug("sertraline");
  request.add_proposed_medications()->set_drug("silperisone");
  return request;
}

struct CheckCall {
  grpc::Status status;
  std::vector<v1::CheckMedicationsResponse> responses;
};

CheckCall Check(v1::DecisionSupport::Stub& stub, const v1::CheckMedicationsRequest& request,
                std::chrono::milliseconds timeout = kCallTimeout) {
  grpc::ClientContext context;
  context.set_deadline(In(timeout));
  CheckCall call;
  auto reader = stub.CheckMedications(&context, request);
  v1::CheckMedicationsResponse response;
  while (reader->Read(&response)) {
    call.responses.push_back(response);
  }
  call.status = reader->Finish();
  return call;
}

grpc::Status Put(v1::Patients::Stub& stub, const v1::Patient& patient, v1::PutPatientResponse* response,
                 std::chrono::milliseconds timeout = kCallTimeout) {
  grpc::ClientContext context;
  context.set_deadline(In(timeout));
  v1::PutPatientRequest request;
  *request.mutable_patient() = patient;
  return stub.PutPatient(&context, request, response);
}

// The answer to the reference check: the renal contraindication first,
// the interaction with sertraline, and a complete summary.
void ExpectNormalCheck(v1::DecisionSupport::Stub& stub) {
  const auto call = Check(stub, NormalCheck());
  ASSERT_TRUE(call.status.ok()) << call.status.error_code() << " " << call.status.error_message();
  ASSERT_GE(call.responses.size(), 3u);
  EXPECT_EQ(call.responses.front().alert().rule_id(), "silperisone-ci-severe-renal-impairment");
  ASSERT_TRUE(call.responses.back().has_summary());
  EXPECT_EQ(call.responses.back().summary().alert_count(), static_cast<int>(call.responses.size()) - 1);
  EXPECT_TRUE(call.responses.back().summary().complete());
}

class HostileClientsTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> args) {
    args.push_back("--metrics_listen=127.0.0.1:0");
    server_ = std::make_unique<ServerProcess>(args);
    ASSERT_TRUE(server_->ok()) << server_->log();
    metrics_port_ = server_->LoggedPort("metrics_listening");
    ASSERT_GT(metrics_port_, 0) << server_->log();
    channel_ = OwnChannel(server_->address());
    check_ = v1::DecisionSupport::NewStub(channel_);
    patients_ = v1::Patients::NewStub(channel_);
  }

  void TearDown() override {
    if (server_ == nullptr) {
      return;
    }
    check_.reset();
    patients_.reset();
    channel_.reset();
    // ServerProcess::Stop waits 20 s, past the server's 10 s grace period.
    const int status = server_->Stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "exit status " << status << "\n" << server_->log();
    EXPECT_NE(server_->log().find("\"event\":\"stopped\""), std::string::npos) << server_->log();
  }

  std::optional<double> Gauge(const std::string& name) { return Metric(metrics_port_, absl::StrCat(name, " ")); }

  // Every open subscription of the server, from its own gauge.
  std::optional<double> Subscriptions() { return Gauge("vigil_subscribers"); }

  v1::PutPatientResponse MustPut(const v1::Patient& patient) {
    v1::PutPatientResponse response;
    const auto status = Put(*patients_, patient, &response);
    EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
    return response;
  }

  // Calls every kind of RPC the test will make, a few times, with the
  // concurrency it will use, so that gRPC's lazily started threads and
  // buffers exist before the baseline is taken.
  void WarmUp() {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([this, t] {
        auto channel = OwnChannel(server_->address());
        auto check = v1::DecisionSupport::NewStub(channel);
        auto patients = v1::Patients::NewStub(channel);
        for (int i = 0; i < 10; ++i) {
          Check(*check, NormalCheck());
          v1::PutPatientResponse response;
          Put(*patients, MakePatient(absl::StrCat("warm-", t), i % 2 == 0), &response);
        }
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    {
      Subscriber sub(OwnChannel(server_->address()), From(0));
      sub.WaitForEvents(1);
    }
    ASSERT_TRUE(Eventually([&] { return Subscriptions() == 0.0; })) << "warm-up subscription not released";
    ExpectNormalCheck(*check_);
  }

  // Waits until the server is back near `baseline` and holds no
  // subscription beyond `subscriptions`, then asserts it.
  void ExpectReleased(const ProcessStats& baseline, double subscriptions) {
    ProcessStats now;
    std::optional<double> open;
    Eventually([&] {
      now = ReadStats(server_->pid());
      open = Subscriptions();
      return now.threads <= baseline.threads + ThreadTolerance() && now.fds <= baseline.fds + kFdTolerance &&
             open == subscriptions;
    });
    std::cout << "server after warm-up: " << Describe(baseline) << "; after the clients: " << Describe(now) << "\n";
    EXPECT_EQ(open, subscriptions) << "subscriptions still open";
    EXPECT_LE(now.threads, baseline.threads + ThreadTolerance()) << "threads: " << Describe(now);
    EXPECT_LE(now.fds, baseline.fds + kFdTolerance) << "descriptors: " << Describe(now);
    EXPECT_LE(now.rss_kib, baseline.rss_kib + kRssToleranceKib) << "memory: " << Describe(now);
    EXPECT_EQ(Gauge("vigil_subscriber_queued_events"), 0.0);
  }

  std::unique_ptr<ServerProcess> server_;
  int metrics_port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::DecisionSupport::Stub> check_;
  std::unique_ptr<v1::Patients::Stub> patients_;
};

TEST_F(HostileClientsTest, StalledSubscribersAreCutOffWithoutTheirHelpAndResumeLosingNothing) {
  // Four subscriptions at most: the slots the stalled ones hold must come
  // back without anything from them. A queue of 100 leaves the reading
  // subscribers a wide margin over one commit (30 events) on a loaded
  // machine, and is still far below the 900 events the stalled ones miss.
  StartServer({"--subscriber_queue=100", "--max_subscribers=4"});
  Subscriber fast(OwnChannel(server_->address()), From(0));
  v1::SubscribeRequest ward = From(0);
  ward.add_patient_ids("quiet-ward");
  Subscriber filtered(OwnChannel(server_->address()), ward);
  // Two clients that open a subscription, never read and never cancel.
  Subscriber stalled_a(StalledChannel(server_->address()), From(0), /*read=*/false);
  Subscriber stalled_b(StalledChannel(server_->address()), From(0), /*read=*/false);
  ASSERT_TRUE(Eventually([&] { return Subscriptions() == 4.0; })) << "subscriptions: " << Subscriptions().value_or(-1);
  {
    Subscriber fifth(OwnChannel(server_->address()), From(0));
    ASSERT_TRUE(fifth.WaitForEnd());
    EXPECT_EQ(fifth.status().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << fifth.status().error_message();
  }

  // About 900 events for "busy" (30 unknown drugs raised and resolved in
  // turn), with the ward patient's renal alert raised and resolved among
  // them. Writers are never held up by the stalled readers.
  int64_t last = 0;
  std::vector<int64_t> ward_events;
  for (int i = 0; i < 30; ++i) {
    last = MustPut(MakePatient("busy", false, i % 2 == 0 ? 30 : 0)).last_event_number();
    if (i % 10 == 5) {
      const auto raised = MustPut(MakePatient("quiet-ward", (i / 10) % 2 == 0));
      ASSERT_EQ(raised.raised_size() + raised.resolved_size(), 1);
      ward_events.push_back(raised.last_event_number());
      last = raised.last_event_number();
    }
  }
  ASSERT_GT(last, 400);

  ASSERT_TRUE(fast.WaitForEvents(static_cast<size_t>(last))) << fast.events().size() << " of " << last;
  EXPECT_TRUE(Contiguous(fast.events(), 1));
  ASSERT_TRUE(filtered.WaitForEvents(ward_events.size()));
  std::vector<int64_t> ward_seen;
  for (const auto& e : filtered.events()) {
    ward_seen.push_back(e.event_number());
    EXPECT_EQ(e.alert_event().patient_id(), "quiet-ward");
  }
  EXPECT_EQ(ward_seen, ward_events);

  // Without a byte read or a cancel from the stalled clients, the server
  // closes their subscriptions and gives their slots back.
  ASSERT_TRUE(Eventually([&] { return Subscriptions() == 2.0; }))
      << "stalled subscriptions still open: " << Subscriptions().value_or(-1);
  EXPECT_EQ(Gauge("vigil_subscriber_queued_events"), 0.0);
  {
    Subscriber newcomer(OwnChannel(server_->address()), From(last));
    ASSERT_TRUE(newcomer.WaitForAnything()) << newcomer.status().error_code() << " "
                                            << newcomer.status().error_message();
  }

  // When they finally read, they find a prefix of the feed, then the cut:
  // RESOURCE_EXHAUSTED naming the resume point, or CANCELLED when the server
  // gave up on a write stuck for good. Resuming from the last event each saw
  // yields exactly the rest: nothing lost across the cut.
  for (Subscriber* stalled : {&stalled_a, &stalled_b}) {
    stalled->StartReading();
    ASSERT_TRUE(stalled->WaitForEnd());
    const auto status = stalled->status();
    EXPECT_TRUE(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
                status.error_code() == grpc::StatusCode::CANCELLED)
        << status.error_code() << " " << status.error_message();
    const auto seen = stalled->events();
    EXPECT_LT(seen.size(), static_cast<size_t>(last));
    EXPECT_TRUE(Contiguous(seen, 1));
    const int64_t resume_from = seen.empty() ? 0 : seen.back().event_number();
    if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      EXPECT_NE(status.error_message().find(absl::StrCat("after_event_number=", resume_from)), std::string::npos)
          << status.error_message();
    }
    Subscriber resumed(OwnChannel(server_->address()), From(resume_from));
    ASSERT_TRUE(resumed.WaitForEvents(static_cast<size_t>(last - resume_from)));
    EXPECT_TRUE(Contiguous(resumed.events(), resume_from + 1));
    std::cout << "stalled subscriber saw " << seen.size() << " of " << last << " events, then " << status.error_code()
              << " '" << status.error_message() << "'; resumed from " << resume_from << "\n";
  }
  ExpectNormalCheck(*check_);
}

TEST_F(HostileClientsTest, ClientsThatVanishMidStreamLeaveNothingBehind) {
  StartServer({});
  // Events to stream, so subscriptions from 0 have something to send.
  for (int i = 0; i < 40; ++i) {
    MustPut(MakePatient("vanish", i % 2 == 0, 3));
  }
  ASSERT_NO_FATAL_FAILURE(WarmUp());
  const ProcessStats baseline = ReadStats(server_->pid());
  ASSERT_GT(baseline.threads, 0);
  ASSERT_GT(baseline.fds, 0);

  // Hundreds of rounds: cancelling a subscription while the server's write is
  // in flight is a race that a few rounds rarely hit.
  constexpr int kRounds = 200;
  int cancelled_checks = 0;
  for (int round = 0; round < kRounds; ++round) {
    // A check cancelled after its first alert.
    {
      auto channel = OwnChannel(server_->address());
      auto stub = v1::DecisionSupport::NewStub(channel);
      grpc::ClientContext context;
      auto reader = stub->CheckMedications(&context, NormalCheck());
      v1::CheckMedicationsResponse response;
      ASSERT_TRUE(reader->Read(&response));
      context.TryCancel();
      const auto status = reader->Finish();
      // The whole answer may already have arrived before the cancel.
      ASSERT_TRUE(status.error_code() == grpc::StatusCode::CANCELLED || status.ok()) << status.error_code();
      cancelled_checks += status.ok() ? 0 : 1;
    }
    // A check whose client goes away without reading anything: context and
    // channel destroyed with the answer in flight.
    {
      auto channel = OwnChannel(server_->address());
      auto stub = v1::DecisionSupport::NewStub(channel);
      grpc::ClientContext context;
      auto reader = stub->CheckMedications(&context, NormalCheck());
    }
    // A subscription cancelled after its first event.
    {
      auto channel = OwnChannel(server_->address());
      auto stub = v1::AlertFeed::NewStub(channel);
      grpc::ClientContext context;
      auto reader = stub->Subscribe(&context, From(0));
      v1::SubscribeResponse response;
      ASSERT_TRUE(reader->Read(&response));
      context.TryCancel();
      EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
    }
    // A subscription whose channel is destroyed mid-replay.
    {
      auto channel = OwnChannel(server_->address());
      auto stub = v1::AlertFeed::NewStub(channel);
      grpc::ClientContext context;
      auto reader = stub->Subscribe(&context, From(0));
      v1::SubscribeResponse response;
      ASSERT_TRUE(reader->Read(&response));
    }
  }
  std::cout << kRounds << " checks cancelled (" << cancelled_checks << " before their end), " << kRounds
            << " checks abandoned, " << 2 * kRounds << " subscriptions dropped\n";

  // A client process killed with SIGKILL mid-stream: no cancel, no HTTP/2
  // goodbye, only the kernel closing its socket.
  for (int i = 0; i < 10; ++i) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const std::string server_flag = absl::StrCat("--server=", server_->address());
    const pid_t pid = fork();
    if (pid == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
      execl(VIGIL_CLIENT_BIN, VIGIL_CLIENT_BIN, server_flag.c_str(), "subscribe", "--after=0",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    // Wait for its first event line: it is mid-stream.
    std::string out;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (out.find('\n') == std::string::npos && absl::Now() < deadline) {
      pollfd pfd{fds[0], POLLIN, 0};
      if (poll(&pfd, 1, 200) > 0) {
        char buffer[4096];
        const ssize_t n = read(fds[0], buffer, sizeof buffer);
        if (n <= 0) {
          break;
        }
        out.append(buffer, static_cast<size_t>(n));
      }
    }
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    close(fds[0]);
    ASSERT_TRUE(absl::StartsWith(out, "1  RAISED")) << "the client printed '" << out << "'";
  }

  ExpectReleased(baseline, 0);
  ExpectNormalCheck(*check_);
  // A normal subscription still gets the whole feed.
  const int64_t last = MustPut(MakePatient("vanish", true, 0)).last_event_number();
  Subscriber sub(OwnChannel(server_->address()), From(0));
  ASSERT_TRUE(sub.WaitForEvents(static_cast<size_t>(last)));
  EXPECT_TRUE(Contiguous(sub.events(), 1));
}

TEST_F(HostileClientsTest, ExpiredDeadlinesLoseNothingAcknowledged) {
  StartServer({});
  ASSERT_NO_FATAL_FAILURE(WarmUp());
  const ProcessStats baseline = ReadStats(server_->pid());

  // Four clients, each making 100 checks and 100 puts with 1 ms deadlines
  // (most expire, some in the server, some before leaving the client), and a
  // put with a normal deadline every tenth round, which must succeed.
  struct PutRecord {
    v1::Patient patient;
    grpc::StatusCode code;
  };
  constexpr int kClients = 4;
  constexpr int kRounds = 100;
  std::mutex mu;
  std::vector<PutRecord> puts;
  std::map<grpc::StatusCode, int> check_codes;
  std::map<grpc::StatusCode, int> put_codes;
  std::atomic<int> truncated_ok{0};
  std::atomic<int> normal_failures{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto channel = OwnChannel(server_->address());
      auto check = v1::DecisionSupport::NewStub(channel);
      auto patients = v1::Patients::NewStub(channel);
      for (int i = 0; i < kRounds; ++i) {
        const auto call = Check(*check, NormalCheck(), std::chrono::milliseconds(1));
        // An OK stream is a whole answer: it ends with its summary.
        if (call.status.ok() && (call.responses.empty() || !call.responses.back().has_summary())) {
          ++truncated_ok;
        }
        const v1::Patient patient = MakePatient(absl::StrCat("deadline-", c, "-", i), true);
        v1::PutPatientResponse response;
        const auto put = Put(*patients, patient, &response, std::chrono::milliseconds(1));
        std::optional<PutRecord> normal;
        if (i % 10 == 0) {
          normal = PutRecord{MakePatient(absl::StrCat("normal-", c, "-", i), true), grpc::StatusCode::OK};
          v1::PutPatientResponse ignored;
          normal->code = Put(*patients, normal->patient, &ignored).error_code();
          normal_failures += normal->code == grpc::StatusCode::OK ? 0 : 1;
        }
        std::lock_guard<std::mutex> lock(mu);
        ++check_codes[call.status.error_code()];
        ++put_codes[put.error_code()];
        puts.push_back({patient, put.error_code()});
        if (normal.has_value()) {
          puts.push_back(*std::move(normal));
        }
      }
    });
  }
  for (auto& t : clients) {
    t.join();
  }
  auto describe = [](const std::map<grpc::StatusCode, int>& codes) {
    std::string out;
    for (const auto& [code, n] : codes) {
      absl::StrAppend(&out, " code ", code, ": ", n, ";");
    }
    return out;
  };
  std::cout << "checks:" << describe(check_codes) << " puts:" << describe(put_codes) << "\n";
  // An expired deadline is the only failure a healthy server may cause.
  for (const auto& codes : {check_codes, put_codes}) {
    for (const auto& [code, n] : codes) {
      EXPECT_TRUE(code == grpc::StatusCode::OK || code == grpc::StatusCode::DEADLINE_EXCEEDED)
          << n << " calls ended with code " << code;
    }
  }
  EXPECT_EQ(truncated_ok.load(), 0) << "OK streams without a summary";
  EXPECT_EQ(normal_failures.load(), 0) << "puts with a normal deadline failed";
  EXPECT_GT(put_codes[grpc::StatusCode::DEADLINE_EXCEEDED], 0) << "no deadline expired: the test tests nothing";

  // Expired puts may still be committed after the client gave up (the
  // server's database worker finishes what it started). Wait until the
  // server has answered every put it received and its worker is idle, so
  // that what is read next does not change under the test.
  const std::string put_metric = "vigil_rpcs_total{method=\"/vigil.v1.Patients/PutPatient\"";
  std::optional<double> answered;
  int stable = 0;
  ASSERT_TRUE(Eventually([&] {
    const auto now = Metric(metrics_port_, put_metric);
    stable = now.has_value() && now == answered && Gauge("vigil_db_worker_queue") == 0.0 ? stable + 1 : 0;
    answered = now;
    return stable >= 10;  // Two seconds without a new answer.
  }));

  // Every put answered OK is stored as sent; every expired one is stored
  // whole or not at all; and the feed holds exactly one RAISED event for
  // each stored patient (its renal alert), none for the others.
  const int64_t last = MustPut(MakePatient("deadline-final", false)).last_event_number();
  Subscriber feed(OwnChannel(server_->address()), From(0));
  ASSERT_TRUE(feed.WaitForEvents(static_cast<size_t>(last)));
  const auto events = feed.events();
  EXPECT_TRUE(Contiguous(events, 1));
  std::map<std::string, int> raised;
  for (const auto& e : events) {
    if (e.alert_event().type() == v1::ALERT_EVENT_TYPE_RAISED) {
      ++raised[e.alert_event().patient_id()];
    }
  }
  int acknowledged = 0;
  int expired_but_stored = 0;
  for (const auto& put : puts) {
    grpc::ClientContext context;
    context.set_deadline(In(kCallTimeout));
    v1::GetPatientRequest request;
    request.set_patient_id(put.patient.id());
    v1::Patient stored;
    const auto status = patients_->GetPatient(&context, request, &stored);
    if (put.code == grpc::StatusCode::OK) {
      ++acknowledged;
      ASSERT_TRUE(status.ok()) << "acknowledged put of " << put.patient.id() << " is lost: " << status.error_message();
    } else {
      ASSERT_TRUE(status.ok() || status.error_code() == grpc::StatusCode::NOT_FOUND)
          << put.patient.id() << ": " << status.error_code() << " " << status.error_message();
    }
    if (status.ok()) {
      expired_but_stored += put.code == grpc::StatusCode::OK ? 0 : 1;
      EXPECT_EQ(stored.SerializeAsString(), put.patient.SerializeAsString()) << put.patient.id();
      EXPECT_EQ(raised[put.patient.id()], 1) << put.patient.id();
    } else {
      EXPECT_EQ(raised[put.patient.id()], 0) << put.patient.id() << " has events but no stored context";
    }
  }
  std::cout << acknowledged << " puts acknowledged, " << expired_but_stored
            << " expired puts committed anyway, all consistent\n";

  ExpectReleased(baseline, 1);  // The feed subscription above is still open.
  ExpectNormalCheck(*check_);
}

}  // namespace
}  // namespace vigil
