// vigil-soak: a bounded soak test of a running vigil-server.
//
// For --seconds it drives the server with mixed load on several threads:
// inline CheckMedications calls, writers that own a few stored patients each
// (PutPatient with changing medications, so that alerts are raised and
// resolved; DeletePatient; AcknowledgeAlert on raised alerts; checks and reads
// of their own patients), subscriber slots that join and leave the alert feed
// (resuming from their last event number, starting fresh, or replaying a
// filtered window), and one reference subscriber that reads every event from
// the first. Afterwards, with the load stopped and the feed drained, it checks
// that:
//   - the reference saw events 1..N exactly once each, in order, and a final
//     replay from 0 returns exactly the same events;
//   - every other subscription saw exactly the events of its window, in
//     order, with no gap and no duplicate, across its resumptions, and its
//     heartbeats never claimed a number it had not reached;
//   - every write the server acknowledged is in the feed with its events,
//     and GetPatient and ListAlerts agree with the last acknowledged write of
//     each patient and with the feed;
//   - the server's resident memory stayed flat after warm-up;
//   - every RPC ended with an expected status: OK; CANCELLED when the soak
//     cancelled it; UNAVAILABLE only during an outage the caller announced
//     (SIGUSR1 when the server is about to go down, SIGUSR2 when it is back);
//     RESOURCE_EXHAUSTED only with --rate_limited.
// It prints a summary (and writes it as Markdown with --report) and exits 1
// on any violation, 64 on a usage error.
//
//   vigil-soak --server=127.0.0.1:50051 --seconds=120 --server_pid=PID
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/store/store.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "vigil/v1/alert_feed.grpc.pb.h"
#include "vigil/v1/decision_support.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "Server address.");
ABSL_FLAG(double, seconds, 120, "Seconds of load.");
ABSL_FLAG(int, server_pid, 0, "Pid of the server, whose resident memory is sampled every second.");
ABSL_FLAG(std::string, server_pid_file, "",
          "File holding the server's pid, read again at every sample: use it instead of --server_pid when the "
          "server is restarted during the run.");
ABSL_FLAG(double, rss_tolerance, 0.2,
          "Largest allowed growth of resident memory: the maximum over the last third of a server process's life "
          "may exceed the maximum over its warm-up by at most this fraction.");
ABSL_FLAG(double, warmup_seconds, 20,
          "Warm-up of each server process (caches, connections, allocator arenas); a process whose last third "
          "overlaps it is not judged.");
ABSL_FLAG(int, writers, 3, "Writer threads; each owns --patients_per_writer stored patients.");
ABSL_FLAG(int, patients_per_writer, 12, "Stored patients per writer.");
ABSL_FLAG(int, checkers, 2, "Threads sending inline CheckMedications calls.");
ABSL_FLAG(int, subscribers, 4, "Subscriber slots that join and leave the feed (besides the reference subscriber).");
ABSL_FLAG(double, outage_grace_seconds, 5,
          "After the end of an announced outage (SIGUSR2), how long calls may still fail with UNAVAILABLE while "
          "channels reconnect.");
ABSL_FLAG(bool, rate_limited, false, "The server rate-limits this caller: RESOURCE_EXHAUSTED is an expected answer.");
ABSL_FLAG(std::string, token, "", "Bearer token (roles ehr, subscriber and clinician); empty in development mode.");
ABSL_FLAG(uint64_t, seed, 0, "Random seed; 0 picks one from the clock (printed, to rerun the same load).");
ABSL_FLAG(std::string, report, "", "Also write the summary as Markdown to this file.");

namespace vigil::soak {
namespace {

using ::vigil::v1::AlertEventType;

constexpr absl::Duration kCallDeadline = absl::Seconds(30);
// How long a writer keeps retrying a write cut by an outage before it gives
// up (and reports it): longer than any restart the soak script performs.
constexpr absl::Duration kRetryLimit = absl::Seconds(120);

// Drugs of the bundled knowledge base (data/kb) that interact with each
// other: silperisone with sedatives, antidepressants and other muscle
// relaxants; opioids with benzodiazepines, serotonergic drugs and CYP3A4
// inhibitors; tizanidine with CYP1A2 inhibitors and fluoroquinolones; QT
// prolongation; MAOIs. Lists drawn from them raise and resolve several
// alerts at each change.
const std::vector<std::string> kDrugs = {
    "silperisone", "diazepam",   "lorazepam",     "alprazolam",   "zolpidem",   "tramadol",    "oxycodone",
    "morphine",    "methadone",  "sertraline",    "fluoxetine",   "citalopram", "phenelzine",  "linezolid",
    "tizanidine",  "baclofen",   "cyclobenzaprine", "ciprofloxacin", "fluvoxamine", "clarithromycin",
    "ketoconazole", "ritonavir", "midazolam",     "simvastatin",  "warfarin",   "gabapentin"};

absl::Time ToTime(int64_t nanos) { return absl::FromUnixNanos(nanos); }

// An outage the caller announced: from SIGUSR1 (the server is about to go
// down) to SIGUSR2 (it is back), plus a grace period for reconnecting.
class Outages {
 public:
  explicit Outages(absl::Duration grace) : grace_(grace) {}

  void Begin() {
    absl::MutexLock lock(&mu_);
    windows_.push_back({absl::Now(), absl::InfiniteFuture()});
  }

  void End() {
    absl::MutexLock lock(&mu_);
    if (!windows_.empty() && windows_.back().second == absl::InfiniteFuture()) {
      windows_.back().second = absl::Now();
    }
  }

  // Whether a call that ran from `start` to `end` overlapped an outage.
  bool Covers(absl::Time start, absl::Time end) const {
    absl::MutexLock lock(&mu_);
    for (const auto& [begin, finish] : windows_) {
      if (start <= finish + grace_ && end >= begin) {
        return true;
      }
    }
    return false;
  }

  int count() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(windows_.size());
  }

 private:
  const absl::Duration grace_;
  mutable absl::Mutex mu_;
  std::vector<std::pair<absl::Time, absl::Time>> windows_ ABSL_GUARDED_BY(mu_);
};

// What a violation breaks.
enum class Check {
  kFeed,      // the alert feed: every event once, in order, in every window
  kWrites,    // acknowledged writes: stored, read back, and in the feed
  kStatuses,  // every RPC ended with an expected status
  kChecks,    // CheckMedications streams are well formed
  kMemory,    // the server's resident memory stayed flat
};

constexpr std::pair<Check, const char*> kChecksDone[] = {
    {Check::kFeed, "alert feed (every event once, in order, in every subscription's window)"},
    {Check::kWrites, "acknowledged writes (stored, read back, and in the feed)"},
    {Check::kStatuses, "RPC statuses"},
    {Check::kChecks, "CheckMedications streams"},
    {Check::kMemory, "server resident memory"},
};

// Every RPC outcome by kind of request and status code, and every violation.
class Tally {
 public:
  void Count(const std::string& kind, grpc::StatusCode code) {
    absl::MutexLock lock(&mu_);
    ++counts_[kind][code];
  }

  // Counts the outcome and, when it was not expected, records a violation.
  void Outcome(const std::string& kind, const grpc::Status& status, bool expected) {
    Count(kind, status.error_code());
    if (!expected) {
      Violation(Check::kStatuses, absl::StrCat(kind, " ended with unexpected status ", CodeName(status.error_code()), ": ",
                             status.error_message()));
    }
  }

  void Violation(Check check, std::string text) {
    absl::MutexLock lock(&mu_);
    ++violation_count_;
    ++by_check_[check];
    // The first ones tell the story; the count says how many there were.
    if (violations_.size() < 50) {
      violations_.push_back(std::move(text));
    }
  }

  std::map<std::string, std::map<grpc::StatusCode, int64_t>> counts() const {
    absl::MutexLock lock(&mu_);
    return counts_;
  }
  std::vector<std::string> violations() const {
    absl::MutexLock lock(&mu_);
    return violations_;
  }
  int64_t violation_count() const {
    absl::MutexLock lock(&mu_);
    return violation_count_;
  }
  int64_t violation_count(Check check) const {
    absl::MutexLock lock(&mu_);
    const auto it = by_check_.find(check);
    return it == by_check_.end() ? 0 : it->second;
  }

  static std::string CodeName(grpc::StatusCode code) {
    switch (code) {
      case grpc::StatusCode::OK: return "OK";
      case grpc::StatusCode::CANCELLED: return "CANCELLED";
      case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
      case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
      case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
      case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
      case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
      case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
      case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
      case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
      case grpc::StatusCode::ABORTED: return "ABORTED";
      case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
      case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
      case grpc::StatusCode::INTERNAL: return "INTERNAL";
      case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
      case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
      case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
      default: return absl::StrCat("code ", static_cast<int>(code));
    }
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::map<grpc::StatusCode, int64_t>> counts_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> violations_ ABSL_GUARDED_BY(mu_);
  int64_t violation_count_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<Check, int64_t> by_check_ ABSL_GUARDED_BY(mu_);
};

// A digest of an event as delivered: two deliveries of the same event
// number must carry the same event, byte for byte, unless the patient was
// deleted in between (see TombstoneDigest).
uint64_t Digest(const v1::AlertEvent& event) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    event.SerializeToCodedStream(&coded);
  }
  return std::hash<std::string>()(bytes);
}

// The digest of what an event keeps once its patient is deleted
// (AlertEvent.erased, the store's Tombstone): a delivery before the deletion
// and one after it are the same event when these agree.
uint64_t TombstoneDigest(const v1::AlertEvent& event) { return Digest(Tombstone(event)); }

// An event of the reference subscriber, with what the checks need.
struct EventRecord {
  int64_t number = 0;
  uint64_t digest = 0;
  uint64_t tombstone = 0;
  bool erased = false;
  AlertEventType type = v1::ALERT_EVENT_TYPE_UNSPECIFIED;
  v1::Severity severity = v1::SEVERITY_UNSPECIFIED;
  std::string patient_id;
  std::string alert_id;
};

// An event as another subscriber saw it.
struct Seen {
  int64_t number = 0;
  uint64_t digest = 0;
  uint64_t tombstone = 0;
  bool erased = false;
};

// Whether two deliveries carry the same event: byte for byte, or, when
// either came after the patient's deletion, the same tombstone.
bool SameEvent(const Seen& got, const EventRecord& reference) {
  return got.digest == reference.digest || ((got.erased || reference.erased) && got.tombstone == reference.tombstone);
}

// One subscription, from Subscribe to its end.
struct SessionRecord {
  enum class Mode { kResume, kFresh, kReplay };
  Mode mode = Mode::kFresh;
  // Resumed and replayed sessions start after this event number.
  std::optional<int64_t> after;
  // Filters of replayed sessions.
  std::set<std::string> patient_ids;
  v1::Severity min_severity = v1::SEVERITY_UNSPECIFIED;
  // The highest event number acknowledged to a writer before the call: a
  // fresh subscription must not deliver it again.
  int64_t known_latest = 0;
  std::vector<Seen> events;
  // Heartbeats: their event number and how many events came before them.
  std::vector<std::pair<int64_t, size_t>> heartbeats;
  // The event number of the last message (event or heartbeat), the point to
  // resume from; absent when nothing arrived.
  std::optional<int64_t> position;
  grpc::Status status;
  bool cancelled_by_us = false;
  absl::Time start;
};

// A write the server acknowledged, with the events it must have written:
// the last of them has number `last_event_number`, and they come right
// before it, in this order.
struct AckedWrite {
  std::string what;
  std::string patient_id;
  int64_t last_event_number = 0;
  std::vector<std::pair<AlertEventType, std::string>> events;
};

// A stored patient as its writer knows it from the acknowledged writes.
struct PatientState {
  std::string id;
  bool exists = false;
  v1::Patient stored;
  std::set<std::string> active;   // alert ids active after the last write
  std::vector<std::string> ackable;  // raised and not yet acknowledged or resolved
  // Events up to this number were erased by a deletion of the patient (a
  // deletion with no active alert writes no event of its own).
  int64_t erased_through = 0;
};

struct RssSample {
  absl::Time time;
  pid_t pid = 0;
  int64_t kib = 0;
};

// Resident memory of a process in KiB, or 0 when it is gone.
int64_t ResidentKib(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      int64_t kib = 0;
      std::string digits;
      for (char c : line.substr(6)) {
        if (c >= '0' && c <= '9') {
          digits.push_back(c);
        }
      }
      return absl::SimpleAtoi(digits, &kib) ? kib : 0;
    }
  }
  return 0;
}

class Soak {
 public:
  Soak()
      : address_(absl::GetFlag(FLAGS_server)),
        token_(absl::GetFlag(FLAGS_token)),
        rate_limited_(absl::GetFlag(FLAGS_rate_limited)),
        outages_(absl::Seconds(absl::GetFlag(FLAGS_outage_grace_seconds))) {
    seed_ = absl::GetFlag(FLAGS_seed);
    if (seed_ == 0) {
      seed_ = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
    }
    // Patient ids of this run: a rerun against the same database starts
    // from patients of its own.
    run_id_ = absl::StrFormat("%06x", seed_ % 0xffffff);
  }

  int Run();

 private:
  // Channels reconnect quickly after an outage (the default backoff grows
  // to two minutes). Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC takes it as
  // the least time a connection attempt is given (20 s by default). At
  // 100 ms, on a saturated machine no attempt finished its handshake in time
  // after the restart, and the channels never reconnected ("tcp handshaker
  // shutdown" for the rest of the run, while the server logged the
  // handshakes completing).
  std::shared_ptr<grpc::Channel> NewChannel() const {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // Separate connections per thread, as separate clients would have.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
  }

  // A call with a deadline waits for the channel to be ready (up to the
  // deadline) instead of failing at once while it reconnects, as a client
  // that expects restarts should: it neither spins on UNAVAILABLE nor
  // starves the channel's own reconnection of CPU.
  void Prepare(grpc::ClientContext* context, bool deadline = true) const {
    if (deadline) {
      context->set_deadline(absl::ToChronoTime(absl::Now() + kCallDeadline));
      context->set_wait_for_ready(true);
    }
    if (!token_.empty()) {
      context->AddMetadata("authorization", "Bearer " + token_);
    }
  }

  // Whether a call that started at `start` may end with `status`.
  bool Expected(const grpc::Status& status, absl::Time start, bool cancelled_by_us) const {
    switch (status.error_code()) {
      case grpc::StatusCode::OK:
        return true;
      case grpc::StatusCode::UNAVAILABLE:
        return outages_.Covers(start, absl::Now());
      case grpc::StatusCode::RESOURCE_EXHAUSTED:
        return rate_limited_;
      case grpc::StatusCode::CANCELLED:
        return cancelled_by_us;
      default:
        return false;
    }
  }

  bool CutByOutage(const grpc::Status& status, absl::Time start) const {
    return status.error_code() == grpc::StatusCode::UNAVAILABLE && outages_.Covers(start, absl::Now());
  }

  void NoteAcked(int64_t event_number) {
    int64_t seen = acked_latest_.load();
    while (event_number > seen && !acked_latest_.compare_exchange_weak(seen, event_number)) {
    }
  }

  bool LoadRunning() const { return absl::Now() < load_deadline_; }

  v1::Patient RandomContext(std::mt19937_64& rng, const std::string& id) const;
  void Checker(int index);
  void Writer(int index, std::vector<PatientState>* patients);
  // Sends `call` until its answer is not an outage's UNAVAILABLE: a write cut
  // by the outage has an unknown outcome, so the same request goes again.
  // `retried` tells whether an earlier attempt may have been applied.
  grpc::Status UntilDefinite(const std::string& kind, const std::function<grpc::Status()>& call, bool* retried);
  void Put(std::mt19937_64& rng, PatientState* patient, v1::Patients::Stub* stub);
  void Delete(PatientState* patient, v1::Patients::Stub* stub);
  void Acknowledge(std::mt19937_64& rng, PatientState* patient, v1::AlertFeed::Stub* stub);
  void CheckStored(std::mt19937_64& rng, const PatientState& patient, v1::DecisionSupport::Stub* stub);
  void ReadBack(const PatientState& patient, v1::Patients::Stub* stub);
  bool ReadCheckStream(v1::DecisionSupport::Stub* stub, const v1::CheckMedicationsRequest& request,
                       const std::string& kind, bool cancel_early);

  // Reads one subscription until `cancel()` asks to stop it (checked after
  // each message) or it ends. Events also go to `full` when given.
  void RunSession(v1::AlertFeed::Stub* stub, const v1::SubscribeRequest& request,
                  const std::function<bool(const SessionRecord&)>& cancel, SessionRecord* record,
                  std::vector<EventRecord>* full);
  void Reference();
  void Churn(int slot);
  void SampleRss();
  void WatchSignals();

  void Verify(const std::vector<std::vector<PatientState>>& patients, int64_t final_latest);
  void VerifySession(const SessionRecord& session, const std::string& name);
  void VerifyPatients(const std::vector<std::vector<PatientState>>& patients);
  void VerifyRss();
  std::string Summary(int64_t final_latest, absl::Duration load);

  const std::string address_;
  const std::string token_;
  const bool rate_limited_;
  uint64_t seed_ = 0;
  std::string run_id_;
  Outages outages_;
  Tally tally_;
  absl::Time load_deadline_;
  std::atomic<int64_t> acked_latest_{0};
  std::atomic<bool> stop_reference_{false};
  std::atomic<bool> stop_sampling_{false};
  std::atomic<bool> stop_signals_{false};

  // The reference subscriber: every event, from the first.
  std::vector<EventRecord> reference_;   // written by its thread only until joined
  std::vector<std::pair<int64_t, size_t>> reference_heartbeats_;
  absl::flat_hash_map<int64_t, size_t> reference_index_;  // built for verification
  std::atomic<int64_t> reference_caught_up_to_{-1};  // heartbeat equal to its last event
  std::atomic<int64_t> reference_caught_up_at_{0};   // when, in Unix nanos
  int reference_resumes_ = 0;
  int reference_refused_ = 0;

  absl::Mutex mu_;
  std::vector<SessionRecord> sessions_ ABSL_GUARDED_BY(mu_);
  std::vector<AckedWrite> acked_ ABSL_GUARDED_BY(mu_);
  std::vector<RssSample> rss_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> kb_versions_ ABSL_GUARDED_BY(mu_);

  std::atomic<int64_t> sessions_fresh_{0};
  std::atomic<int64_t> sessions_resumed_{0};
  std::atomic<int64_t> sessions_resumed_after_outage_{0};
  std::atomic<int64_t> sessions_cut_{0};
  std::atomic<int64_t> subscribe_refused_{0};
  std::atomic<int64_t> sessions_replayed_{0};
  std::atomic<int64_t> sessions_left_{0};
  std::atomic<int64_t> writes_retried_{0};
  std::atomic<int64_t> checks_with_alerts_{0};
  std::atomic<int64_t> alerts_in_checks_{0};
  int64_t final_replay_events_ = 0;
  int64_t session_events_ = 0;
  size_t acked_writes_ = 0;
  int64_t patients_verified_ = 0;
  std::vector<std::string> rss_lines_;
};

v1::Patient Soak::RandomContext(std::mt19937_64& rng, const std::string& id) const {
  auto chance = [&rng](int percent) { return std::uniform_int_distribution<int>(0, 99)(rng) < percent; };
  auto pick = [&rng](const std::vector<std::string>& from) {
    return from[std::uniform_int_distribution<size_t>(0, from.size() - 1)(rng)];
  };
  v1::Patient patient;
  patient.set_id(id);
  std::set<std::string> drugs;
  if (chance(60)) {
    drugs.insert("silperisone");
  }
  const int more = std::uniform_int_distribution<int>(0, 4)(rng);
  for (int i = 0; i < more; ++i) {
    drugs.insert(pick(kDrugs));
  }
  if (chance(10)) {
    // Not in the knowledge base: an unscreened-drug alert.
    drugs.insert(absl::StrCat("soak-unlisted-", std::uniform_int_distribution<int>(0, 2)(rng)));
  }
  for (const auto& drug : drugs) {
    auto* order = patient.add_medications();
    order->set_drug(drug);
  }
  if (chance(25)) {
    auto* code = patient.add_conditions()->mutable_code();
    code->set_system("http://hl7.org/fhir/sid/icd-10-cm");
    code->set_code("N18.4");
  }
  if (chance(10)) {
    auto* code = patient.add_conditions()->mutable_code();
    code->set_system("http://hl7.org/fhir/sid/icd-10-cm");
    code->set_code("K72.10");
  }
  if (chance(30)) {
    auto* lab = patient.add_labs();
    lab->mutable_code()->set_system("http://loinc.org");
    lab->mutable_code()->set_code("62238-1");
    lab->set_value(std::uniform_int_distribution<int>(15, 90)(rng));
    lab->set_unit("mL/min/{1.73_m2}");
  }
  if (chance(10)) {
    patient.add_allergies()->set_substance("penicillin");
  }
  return patient;
}

bool Soak::ReadCheckStream(v1::DecisionSupport::Stub* stub, const v1::CheckMedicationsRequest& request,
                           const std::string& kind, bool cancel_early) {
  grpc::ClientContext context;
  Prepare(&context);
  const absl::Time start = absl::Now();
  auto reader = stub->CheckMedications(&context, request);
  v1::CheckMedicationsResponse response;
  int alerts = 0;
  bool summary = false;
  bool after_summary = false;
  bool cancelled = false;
  std::string version;
  while (reader->Read(&response)) {
    if (summary) {
      after_summary = true;
    }
    if (response.has_alert()) {
      ++alerts;
    } else if (response.has_summary()) {
      summary = true;
      if (response.summary().alert_count() != alerts) {
        tally_.Violation(Check::kChecks, absl::StrCat(kind, ": the summary counts ", response.summary().alert_count(),
                                      " alerts, the stream carried ", alerts));
      }
      version = response.summary().knowledge_base_version();
    }
    if (cancel_early && !cancelled) {
      // A client that goes away mid-stream.
      context.TryCancel();
      cancelled = true;
    }
  }
  const grpc::Status status = reader->Finish();
  tally_.Outcome(kind, status, Expected(status, start, cancelled));
  if (status.ok()) {
    if (!summary || after_summary) {
      tally_.Violation(Check::kChecks, absl::StrCat(kind, ": a stream that ended OK ",
                                    summary ? "carried messages after its summary" : "had no summary"));
    }
    absl::MutexLock lock(&mu_);
    kb_versions_.insert(version);
  }
  if (status.ok() && alerts > 0) {
    ++checks_with_alerts_;
    alerts_in_checks_ += alerts;
  }
  return status.ok();
}

void Soak::Checker(int index) {
  std::mt19937_64 rng(seed_ + 1000 + static_cast<uint64_t>(index));
  auto stub = v1::DecisionSupport::NewStub(NewChannel());
  while (LoadRunning()) {
    v1::CheckMedicationsRequest request;
    *request.mutable_patient() = RandomContext(rng, absl::StrCat("soak-inline-", index));
    const int proposed = std::uniform_int_distribution<int>(1, 2)(rng);
    for (int i = 0; i < proposed; ++i) {
      request.add_proposed_medications()->set_drug(
          kDrugs[std::uniform_int_distribution<size_t>(0, kDrugs.size() - 1)(rng)]);
    }
    const bool cancel_early = std::uniform_int_distribution<int>(0, 19)(rng) == 0;
    if (!ReadCheckStream(stub.get(), request, "CheckMedications", cancel_early) &&
        outages_.Covers(absl::Now(), absl::Now())) {
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
}

grpc::Status Soak::UntilDefinite(const std::string& kind, const std::function<grpc::Status()>& call, bool* retried) {
  *retried = false;
  const absl::Time give_up = absl::Now() + kRetryLimit;
  while (true) {
    const absl::Time start = absl::Now();
    grpc::Status status = call();
    if (!CutByOutage(status, start)) {
      return status;
    }
    tally_.Count(kind, status.error_code());
    if (!*retried) {
      ++writes_retried_;
    }
    *retried = true;
    if (absl::Now() > give_up) {
      tally_.Violation(Check::kWrites, absl::StrCat(kind, ": still UNAVAILABLE after ", absl::FormatDuration(kRetryLimit),
                                    " of retries: ", status.error_message()));
      return grpc::Status(grpc::StatusCode::ABORTED, "gave up");
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
}

void Soak::Put(std::mt19937_64& rng, PatientState* patient, v1::Patients::Stub* stub) {
  v1::PutPatientRequest request;
  *request.mutable_patient() = RandomContext(rng, patient->id);
  // A marker of this write in the stored context (order ids are not
  // screened), so that reading it back tells which write is stored.
  static std::atomic<int64_t> write_number{0};
  const std::string marker = absl::StrCat("soak-write-", ++write_number);
  for (auto& order : *request.mutable_patient()->mutable_medications()) {
    order.set_order_id(marker);
  }
  v1::PutPatientResponse response;
  bool retried = false;
  const absl::Time start = absl::Now();
  const grpc::Status status = UntilDefinite(
      "PutPatient",
      [&] {
        grpc::ClientContext context;
        Prepare(&context);
        response.Clear();
        return stub->PutPatient(&context, request, &response);
      },
      &retried);
  tally_.Outcome("PutPatient", status, Expected(status, start, false));
  if (!status.ok()) {
    return;
  }
  if (!retried && response.created() == patient->exists) {
    tally_.Violation(Check::kWrites, absl::StrCat("PutPatient ", patient->id, ": created=", response.created(),
                                  " but the patient ", patient->exists ? "existed" : "did not exist"));
  }
  AckedWrite acked{"PutPatient", patient->id, response.last_event_number(), {}};
  for (const auto& a : response.raised()) {
    acked.events.emplace_back(v1::ALERT_EVENT_TYPE_RAISED, a.id());
  }
  for (const auto& a : response.resolved()) {
    acked.events.emplace_back(v1::ALERT_EVENT_TYPE_RESOLVED, a.id());
  }
  NoteAcked(response.last_event_number());
  patient->exists = true;
  patient->stored = request.patient();
  patient->active.clear();
  for (const auto& a : response.active()) {
    patient->active.insert(a.id());
  }
  for (const auto& a : response.raised()) {
    patient->ackable.push_back(a.id());
  }
  patient->ackable.erase(std::remove_if(patient->ackable.begin(), patient->ackable.end(),
                                        [&](const std::string& id) { return patient->active.count(id) == 0; }),
                         patient->ackable.end());
  absl::MutexLock lock(&mu_);
  acked_.push_back(std::move(acked));
}

void Soak::Delete(PatientState* patient, v1::Patients::Stub* stub) {
  v1::DeletePatientRequest request;
  request.set_patient_id(patient->id);
  v1::DeletePatientResponse response;
  bool retried = false;
  const absl::Time start = absl::Now();
  const grpc::Status status = UntilDefinite(
      "DeletePatient",
      [&] {
        grpc::ClientContext context;
        Prepare(&context);
        response.Clear();
        return stub->DeletePatient(&context, request, &response);
      },
      &retried);
  // A retried delete finds the patient gone when the first attempt was
  // applied before the outage cut its answer.
  const bool gone_already = retried && status.error_code() == grpc::StatusCode::NOT_FOUND;
  tally_.Outcome("DeletePatient", status, gone_already || Expected(status, start, false));
  if (!status.ok() && !gone_already) {
    return;
  }
  patient->exists = false;
  patient->stored.Clear();
  patient->active.clear();
  patient->ackable.clear();
  // A delete that found the patient gone was applied by an attempt whose
  // answer the outage cut: its events, if any, are tombstones the verifier
  // recognizes; every earlier acknowledged write is before acked_latest_.
  patient->erased_through = status.ok() ? response.last_event_number() : acked_latest_.load();
  if (!status.ok()) {
    return;
  }
  AckedWrite acked{"DeletePatient", patient->id, response.last_event_number(), {}};
  for (const auto& a : response.resolved()) {
    acked.events.emplace_back(v1::ALERT_EVENT_TYPE_RESOLVED, a.id());
  }
  NoteAcked(response.last_event_number());
  absl::MutexLock lock(&mu_);
  acked_.push_back(std::move(acked));
}

void Soak::Acknowledge(std::mt19937_64& rng, PatientState* patient, v1::AlertFeed::Stub* stub) {
  const size_t which = std::uniform_int_distribution<size_t>(0, patient->ackable.size() - 1)(rng);
  const std::string alert_id = patient->ackable[which];
  patient->ackable.erase(patient->ackable.begin() + static_cast<std::ptrdiff_t>(which));
  v1::AcknowledgeAlertRequest request;
  request.set_alert_id(alert_id);
  const bool override = std::uniform_int_distribution<int>(0, 1)(rng) == 0;
  request.set_outcome(override ? v1::ACKNOWLEDGEMENT_OUTCOME_OVERRIDDEN : v1::ACKNOWLEDGEMENT_OUTCOME_ACCEPTED);
  if (override) {
    request.mutable_reason()->set_code("benefit-outweighs-risk");
  }
  request.set_user("soak-clinician");
  request.set_comment("vigil-soak");
  v1::AcknowledgeAlertResponse response;
  bool retried = false;
  const absl::Time start = absl::Now();
  const grpc::Status status = UntilDefinite(
      "AcknowledgeAlert",
      [&] {
        grpc::ClientContext context;
        Prepare(&context);
        response.Clear();
        return stub->AcknowledgeAlert(&context, request, &response);
      },
      &retried);
  tally_.Outcome("AcknowledgeAlert", status, Expected(status, start, false));
  if (!status.ok()) {
    return;
  }
  const v1::AlertStatus want = override ? v1::ALERT_STATUS_OVERRIDDEN : v1::ALERT_STATUS_ACCEPTED;
  if (response.alert().status() != want || response.alert().alert().id() != alert_id) {
    tally_.Violation(Check::kWrites, absl::StrCat("AcknowledgeAlert ", alert_id, ": answered alert ", response.alert().alert().id(),
                                  " with status ", v1::AlertStatus_Name(response.alert().status())));
  }
  NoteAcked(response.event_number());
  absl::MutexLock lock(&mu_);
  acked_.push_back(
      AckedWrite{"AcknowledgeAlert", patient->id, response.event_number(), {{v1::ALERT_EVENT_TYPE_ACKNOWLEDGED, alert_id}}});
}

void Soak::CheckStored(std::mt19937_64& rng, const PatientState& patient, v1::DecisionSupport::Stub* stub) {
  v1::CheckMedicationsRequest request;
  request.set_patient_id(patient.id);
  request.add_proposed_medications()->set_drug(kDrugs[std::uniform_int_distribution<size_t>(0, kDrugs.size() - 1)(rng)]);
  ReadCheckStream(stub, request, "CheckMedications (stored patient)", false);
}

void Soak::ReadBack(const PatientState& patient, v1::Patients::Stub* stub) {
  grpc::ClientContext context;
  Prepare(&context);
  v1::GetPatientRequest request;
  request.set_patient_id(patient.id);
  v1::Patient stored;
  const absl::Time start = absl::Now();
  const grpc::Status status = stub->GetPatient(&context, request, &stored);
  tally_.Outcome("GetPatient", status, Expected(status, start, false));
  if (status.ok() && !google::protobuf::util::MessageDifferencer::Equals(stored, patient.stored)) {
    tally_.Violation(Check::kWrites, absl::StrCat("GetPatient ", patient.id, ": the stored context is not the last acknowledged one (",
                                  stored.ShortDebugString().substr(0, 200), ")"));
  }
}

void Soak::Writer(int index, std::vector<PatientState>* patients) {
  std::mt19937_64 rng(seed_ + static_cast<uint64_t>(index));
  auto channel = NewChannel();
  auto stub = v1::Patients::NewStub(channel);
  auto feed = v1::AlertFeed::NewStub(channel);
  auto check = v1::DecisionSupport::NewStub(channel);
  while (LoadRunning()) {
    PatientState& patient = (*patients)[std::uniform_int_distribution<size_t>(0, patients->size() - 1)(rng)];
    const int roll = std::uniform_int_distribution<int>(0, 99)(rng);
    if (!patient.exists || roll < 60 || (roll < 75 && patient.ackable.empty())) {
      Put(rng, &patient, stub.get());
    } else if (roll < 75) {
      Acknowledge(rng, &patient, feed.get());
    } else if (roll < 83) {
      Delete(&patient, stub.get());
    } else if (roll < 92) {
      CheckStored(rng, patient, check.get());
    } else {
      ReadBack(patient, stub.get());
    }
  }
}

void Soak::RunSession(v1::AlertFeed::Stub* stub, const v1::SubscribeRequest& request,
                      const std::function<bool(const SessionRecord&)>& cancel, SessionRecord* record,
                      std::vector<EventRecord>* full) {
  grpc::ClientContext context;
  Prepare(&context, /*deadline=*/false);
  record->start = absl::Now();
  if (request.has_after_event_number()) {
    record->after = request.after_event_number();
  }
  record->patient_ids.insert(request.patient_ids().begin(), request.patient_ids().end());
  record->min_severity = request.min_severity();
  auto reader = stub->Subscribe(&context, request);
  v1::SubscribeResponse response;
  while (reader->Read(&response)) {
    record->position = response.event_number();
    if (response.has_heartbeat()) {
      record->heartbeats.emplace_back(response.event_number(), record->events.size());
    } else {
      const auto& event = response.alert_event();
      const uint64_t digest = Digest(event);
      const uint64_t tombstone = TombstoneDigest(event);
      record->events.push_back({response.event_number(), digest, tombstone, event.erased()});
      if (full != nullptr) {
        full->push_back({response.event_number(), digest, tombstone, event.erased(), event.type(),
                         event.alert().severity(), event.patient_id(), event.alert().id()});
      }
    }
    if (!record->cancelled_by_us && cancel(*record)) {
      context.TryCancel();
      record->cancelled_by_us = true;
    }
  }
  record->status = reader->Finish();
  // A subscription never ends by itself with OK.
  const bool expected = !record->status.ok() && Expected(record->status, record->start, record->cancelled_by_us);
  tally_.Outcome("Subscribe", record->status, expected);
}

void Soak::Reference() {
  auto stub = v1::AlertFeed::NewStub(NewChannel());
  int64_t last = 0;
  while (true) {
    v1::SubscribeRequest request;
    request.set_after_event_number(last);
    request.set_heartbeat_interval_seconds(1);
    SessionRecord record;
    const size_t before = reference_.size();
    RunSession(
        stub.get(), request,
        [this](const SessionRecord& r) {
          // The message just read is a heartbeat at the last event: the
          // reference has every event up to it (Verify checks that claim).
          if (!r.heartbeats.empty() && r.heartbeats.back().second == r.events.size()) {
            const int64_t number = r.heartbeats.back().first;
            if ((reference_.empty() ? 0 : reference_.back().number) == number) {
              reference_caught_up_to_ = number;
              reference_caught_up_at_ = absl::ToUnixNanos(absl::Now());
            }
          }
          return stop_reference_.load();
        },
        &record, &reference_);
    for (const auto& [number, count] : record.heartbeats) {
      reference_heartbeats_.emplace_back(number, before + count);
    }
    if (!reference_.empty()) {
      last = reference_.back().number;
    }
    if (record.cancelled_by_us) {
      return;
    }
    // Cut by the outage (or failed, which is already a violation): resume
    // from the last event, as a real subscriber would.
    ++(record.position.has_value() ? reference_resumes_ : reference_refused_);
    absl::SleepFor(absl::Milliseconds(200));
  }
}

void Soak::Churn(int slot) {
  std::mt19937_64 rng(seed_ + 2000 + static_cast<uint64_t>(slot));
  auto stub = v1::AlertFeed::NewStub(NewChannel());
  const int writers = absl::GetFlag(FLAGS_writers);
  const int per_writer = absl::GetFlag(FLAGS_patients_per_writer);
  // Where this slot's chain of resumed sessions stands; -1: no chain.
  int64_t position = -1;
  bool must_resume = false;
  while (LoadRunning()) {
    SessionRecord record;
    v1::SubscribeRequest request;
    request.set_heartbeat_interval_seconds(1);
    const int roll = std::uniform_int_distribution<int>(0, 9)(rng);
    if (position >= 0 && (must_resume || roll < 5)) {
      record.mode = SessionRecord::Mode::kResume;
      request.set_after_event_number(position);
    } else if (roll < 8) {
      record.mode = SessionRecord::Mode::kFresh;
    } else {
      // A filtered replay from an earlier point: one writer's patients,
      // sometimes only major alerts and worse.
      record.mode = SessionRecord::Mode::kReplay;
      request.set_after_event_number(std::uniform_int_distribution<int64_t>(0, acked_latest_.load())(rng));
      const int writer = std::uniform_int_distribution<int>(0, writers - 1)(rng);
      for (int p = 0; p < per_writer; ++p) {
        request.add_patient_ids(absl::StrCat("soak-", run_id_, "-w", writer, "-p", p));
      }
      if (std::uniform_int_distribution<int>(0, 1)(rng) == 0) {
        request.set_min_severity(v1::SEVERITY_MAJOR);
      }
    }
    record.known_latest = acked_latest_.load();
    const absl::Time leave_at =
        std::min(absl::Now() + absl::Milliseconds(std::uniform_int_distribution<int>(300, 4000)(rng)), load_deadline_);
    RunSession(
        stub.get(), request, [leave_at](const SessionRecord&) { return absl::Now() >= leave_at; }, &record, nullptr);
    const bool forced = must_resume;
    must_resume = CutByOutage(record.status, record.start);
    if (!record.position.has_value()) {
      // Nothing arrived: a subscription refused while the server was down
      // (anything else is already a violation).
      ++subscribe_refused_;
    } else if (record.mode == SessionRecord::Mode::kResume) {
      ++(forced ? sessions_resumed_after_outage_ : sessions_resumed_);
    } else {
      ++(record.mode == SessionRecord::Mode::kFresh ? sessions_fresh_ : sessions_replayed_);
    }
    if (record.cancelled_by_us) {
      ++sessions_left_;
    } else if (must_resume && record.position.has_value()) {
      ++sessions_cut_;
    }
    if (record.mode == SessionRecord::Mode::kReplay) {
      // One-shot: its filtered position says nothing about other events.
    } else if (record.position.has_value()) {
      position = *record.position;
    } else if (record.mode == SessionRecord::Mode::kFresh) {
      // A fresh session that got nothing has no point to resume from.
      position = -1;
    }
    {
      absl::MutexLock lock(&mu_);
      sessions_.push_back(std::move(record));
    }
    absl::SleepFor(must_resume ? absl::Milliseconds(200)
                               : absl::Milliseconds(std::uniform_int_distribution<int>(0, 500)(rng)));
  }
}

void Soak::SampleRss() {
  const int fixed_pid = absl::GetFlag(FLAGS_server_pid);
  const std::string pid_file = absl::GetFlag(FLAGS_server_pid_file);
  while (!stop_sampling_.load()) {
    pid_t pid = fixed_pid;
    if (!pid_file.empty()) {
      std::ifstream in(pid_file);
      int from_file = 0;
      if (in >> from_file) {
        pid = from_file;
      }
    }
    if (pid > 0) {
      if (const int64_t kib = ResidentKib(pid); kib > 0) {
        absl::MutexLock lock(&mu_);
        rss_.push_back({absl::Now(), pid, kib});
      }
    }
    absl::SleepFor(absl::Seconds(1));
  }
}

void Soak::WatchSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGUSR1);
  sigaddset(&signals, SIGUSR2);
  const timespec timeout{0, 200 * 1000 * 1000};
  while (!stop_signals_.load()) {
    const int signal_number = sigtimedwait(&signals, nullptr, &timeout);
    if (signal_number == SIGUSR1) {
      outages_.Begin();
      std::cerr << "vigil-soak: outage announced" << std::endl;
    } else if (signal_number == SIGUSR2) {
      outages_.End();
      std::cerr << "vigil-soak: outage over" << std::endl;
    }
  }
}

void Soak::VerifySession(const SessionRecord& session, const std::string& name) {
  auto matches = [&session](const EventRecord& e) {
    return (session.patient_ids.empty() || session.patient_ids.count(e.patient_id) > 0) &&
           e.severity >= session.min_severity;
  };
  if (session.after.has_value()) {
    // Exactly the matching events after `after`, in order: walk the
    // reference from there.
    if (*session.after > (reference_.empty() ? 0 : reference_.back().number)) {
      tally_.Violation(Check::kFeed, absl::StrCat(name, ": resumed after event ", *session.after, ", beyond the reference"));
      return;
    }
    const size_t next = static_cast<size_t>(
        std::partition_point(reference_.begin(), reference_.end(),
                             [&session](const EventRecord& e) { return e.number <= *session.after; }) -
        reference_.begin());
    size_t seen = 0;
    for (size_t i = next; i < reference_.size() && seen < session.events.size(); ++i) {
      if (!matches(reference_[i])) {
        continue;
      }
      const Seen& got = session.events[seen];
      if (got.number != reference_[i].number || !SameEvent(got, reference_[i])) {
        tally_.Violation(Check::kFeed, absl::StrCat(name, ": after event ", *session.after, ", message ", seen, " is event ",
                                      got.number, !SameEvent(got, reference_[i]) ? " (different content)" : "",
                                      "; expected event ", reference_[i].number));
        return;
      }
      ++seen;
    }
    if (seen < session.events.size()) {
      tally_.Violation(Check::kFeed, absl::StrCat(name, ": got event ", session.events[seen].number, ", beyond the reference"));
      return;
    }
    // A heartbeat claims every matching event up to its number was sent.
    for (const auto& [number, count] : session.heartbeats) {
      size_t due = 0;
      for (size_t i = next; i < reference_.size() && reference_[i].number <= number; ++i) {
        if (matches(reference_[i])) {
          ++due;
        }
      }
      if (due != count) {
        tally_.Violation(Check::kFeed, absl::StrCat(name, ": a heartbeat at event ", number, " came after ", count,
                                      " events; the window held ", due));
        return;
      }
    }
    return;
  }
  // A fresh subscription: only events written after it started, then
  // contiguous.
  if (!session.events.empty() && session.events.front().number <= session.known_latest) {
    tally_.Violation(Check::kFeed, absl::StrCat(name, ": a fresh subscription delivered event ", session.events.front().number,
                                  ", acknowledged to a writer before it subscribed (", session.known_latest, ")"));
  }
  for (size_t i = 0; i < session.events.size(); ++i) {
    const Seen& got = session.events[i];
    if (i > 0 && got.number != session.events[i - 1].number + 1) {
      tally_.Violation(Check::kFeed, absl::StrCat(name, ": event ", got.number, " came after event ", session.events[i - 1].number));
      return;
    }
    const auto it = reference_index_.find(got.number);
    if (it == reference_index_.end() || !SameEvent(got, reference_[it->second])) {
      tally_.Violation(Check::kFeed, absl::StrCat(name, ": event ", got.number,
                                    it == reference_index_.end() ? " is not in the reference" : " differs from the reference"));
      return;
    }
  }
  for (const auto& [number, count] : session.heartbeats) {
    const bool ok = count > 0 ? session.events[count - 1].number == number
                              : number >= session.known_latest &&
                                    (session.events.empty() || session.events.front().number == number + 1);
    if (!ok) {
      tally_.Violation(Check::kFeed, absl::StrCat(name, ": a heartbeat at event ", number, " after ", count,
                                    " events does not match what the fresh subscription received"));
      return;
    }
  }
}

void Soak::VerifyPatients(const std::vector<std::vector<PatientState>>& patients) {
  // The reference's events by patient.
  absl::flat_hash_map<std::string, std::vector<const EventRecord*>> by_patient;
  for (const auto& e : reference_) {
    by_patient[e.patient_id].push_back(&e);
  }
  auto channel = NewChannel();
  auto stub = v1::Patients::NewStub(channel);
  auto feed = v1::AlertFeed::NewStub(channel);
  for (const auto& owned : patients) {
    for (const auto& patient : owned) {
      ++patients_verified_;
      {
        grpc::ClientContext context;
        Prepare(&context);
        v1::GetPatientRequest request;
        request.set_patient_id(patient.id);
        v1::Patient stored;
        const grpc::Status status = stub->GetPatient(&context, request, &stored);
        const bool expected = patient.exists ? status.ok() : status.error_code() == grpc::StatusCode::NOT_FOUND;
        tally_.Outcome("GetPatient (final check)", status, expected);
        if (status.ok() && !google::protobuf::util::MessageDifferencer::Equals(stored, patient.stored)) {
          tally_.Violation(Check::kWrites, absl::StrCat("patient ", patient.id, ": the stored context is not the last acknowledged one"));
        }
      }
      const auto events = by_patient.find(patient.id);
      // A deletion erases the alerts with their history: ListAlerts shows
      // the events since the patient's last deletion (whose own events
      // are tombstones).
      std::map<int64_t, std::pair<AlertEventType, std::string>> fed;
      if (events != by_patient.end()) {
        int64_t last_erasure = patient.erased_through;
        for (const EventRecord* e : events->second) {
          if (e->erased) {
            last_erasure = std::max(last_erasure, e->number);
          }
        }
        for (const EventRecord* e : events->second) {
          if (e->number > last_erasure) {
            fed[e->number] = {e->type, e->alert_id};
          }
        }
      }
      // Every page of the patient's alerts.
      v1::ListAlertsResponse list;
      grpc::Status status;
      std::string token;
      do {
        grpc::ClientContext context;
        Prepare(&context);
        v1::ListAlertsRequest request;
        request.set_patient_id(patient.id);
        request.set_include_resolved(true);
        request.set_page_size(1000);
        request.set_page_token(token);
        v1::ListAlertsResponse page;
        status = feed->ListAlerts(&context, request, &page);
        for (auto& record : *page.mutable_alerts()) {
          *list.add_alerts() = std::move(record);
        }
        token = page.next_page_token();
      } while (status.ok() && !token.empty());
      // NOT_FOUND only for a patient that is not stored and had no alert
      // since its last deletion.
      const bool expected = status.ok() || (status.error_code() == grpc::StatusCode::NOT_FOUND && !patient.exists &&
                                            fed.empty());
      tally_.Outcome("ListAlerts (final check)", status, expected);
      if (!status.ok()) {
        continue;
      }
      std::set<std::string> active;
      std::map<int64_t, std::pair<AlertEventType, std::string>> history;
      for (const auto& record : list.alerts()) {
        if (record.status() != v1::ALERT_STATUS_RESOLVED) {
          active.insert(record.alert().id());
        }
        for (const auto& h : record.history()) {
          history[h.event_number()] = {h.type(), record.alert().id()};
        }
      }
      if (active != patient.active) {
        tally_.Violation(Check::kWrites, absl::StrCat("patient ", patient.id, ": ListAlerts has ", active.size(),
                                      " active alerts, the last acknowledged write left ", patient.active.size()));
      }
      if (history != fed) {
        tally_.Violation(Check::kWrites, absl::StrCat("patient ", patient.id, ": the alert history in ListAlerts (", history.size(),
                                      " events) differs from the feed (", fed.size(), " events)"));
      }
    }
  }
}

void Soak::VerifyRss() {
  std::vector<RssSample> samples;
  {
    absl::MutexLock lock(&mu_);
    samples = rss_;
  }
  if (samples.empty()) {
    tally_.Violation(Check::kMemory, "no resident-memory sample of the server was taken (check --server_pid / --server_pid_file)");
    return;
  }
  const double tolerance = absl::GetFlag(FLAGS_rss_tolerance);
  const absl::Duration warmup = absl::Seconds(absl::GetFlag(FLAGS_warmup_seconds));
  // One series per server process: a restarted server starts from scratch.
  std::vector<std::vector<RssSample>> series;
  for (const auto& s : samples) {
    if (series.empty() || series.back().back().pid != s.pid) {
      series.emplace_back();
    }
    series.back().push_back(s);
  }
  for (const auto& run : series) {
    const absl::Time first = run.front().time;
    const absl::Duration span = run.back().time - first;
    const absl::Time last_third = first + span * 2 / 3;
    int64_t warm = 0;
    int64_t end = 0;
    for (const auto& s : run) {
      if (s.time <= first + warmup) {
        warm = std::max(warm, s.kib);
      }
      if (s.time >= last_third) {
        end = std::max(end, s.kib);
      }
    }
    const std::string head =
        absl::StrFormat("pid %d, %d samples over %.0f s: start %d KiB", run.front().pid, run.size(),
                        absl::ToDoubleSeconds(span), run.front().kib);
    if (last_third < first + warmup) {
      // Its last third would overlap its warm-up: no trend to judge (short
      // runs, such as the one ctest makes, prove the machinery only).
      rss_lines_.push_back(absl::StrFormat("%s, end %d KiB: not judged (the last third overlaps the %.0f s warm-up)",
                                           head, run.back().kib, absl::ToDoubleSeconds(warmup)));
      continue;
    }
    const double growth = static_cast<double>(end - warm) / static_cast<double>(warm);
    rss_lines_.push_back(absl::StrFormat("%s, warm (max of the first %.0f s) %d KiB, end (max of the last third) %d KiB: "
                                         "%+.1f%% (limit %+.0f%%)",
                                         head, absl::ToDoubleSeconds(warmup), warm, end, 100 * growth,
                                         100 * tolerance));
    if (growth > tolerance) {
      tally_.Violation(Check::kMemory, absl::StrFormat("server resident memory grew %.1f%% after warm-up (pid %d: %d KiB -> %d KiB), "
                                       "more than %.0f%%",
                                       100 * growth, run.front().pid, warm, end, 100 * tolerance));
    }
  }
}

void Soak::Verify(const std::vector<std::vector<PatientState>>& patients, int64_t final_latest) {
  // The reference: 1..N, each once, in order; heartbeats only at its last event.
  for (size_t i = 0; i < reference_.size(); ++i) {
    if (reference_[i].number != static_cast<int64_t>(i) + 1) {
      tally_.Violation(Check::kFeed, absl::StrCat("reference subscriber: message ", i, " is event ", reference_[i].number,
                                    ", expected ", i + 1));
      break;
    }
  }
  for (const auto& [number, count] : reference_heartbeats_) {
    const int64_t reached = count == 0 ? 0 : reference_[count - 1].number;
    if (number != reached) {
      tally_.Violation(Check::kFeed, absl::StrCat("reference subscriber: a heartbeat at event ", number, " came after event ", reached));
      break;
    }
  }
  for (size_t i = 0; i < reference_.size(); ++i) {
    reference_index_.emplace(reference_[i].number, i);
  }
  if (final_latest != (reference_.empty() ? 0 : reference_.back().number)) {
    tally_.Violation(Check::kFeed, absl::StrCat("reference subscriber ends at event ",
                                  reference_.empty() ? 0 : reference_.back().number, ", the feed at ", final_latest));
  }
  if (final_latest < acked_latest_.load()) {
    tally_.Violation(Check::kWrites, absl::StrCat("the feed ends at event ", final_latest, " but event ", acked_latest_.load(),
                                  " was acknowledged to a writer"));
  }
  if (outages_.count() > 0 && reference_resumes_ == 0) {
    tally_.Violation(Check::kFeed, "an outage was announced but the reference subscription was never cut: was the server down?");
  }

  // A final replay from the first event returns the same history.
  {
    auto stub = v1::AlertFeed::NewStub(NewChannel());
    v1::SubscribeRequest request;
    request.set_after_event_number(0);
    request.set_heartbeat_interval_seconds(1);
    SessionRecord replay;
    replay.mode = SessionRecord::Mode::kReplay;
    RunSession(
        stub.get(), request,
        [final_latest](const SessionRecord& r) { return r.position.has_value() && *r.position >= final_latest; },
        &replay, nullptr);
    final_replay_events_ = static_cast<int64_t>(replay.events.size());
    if (replay.events.size() != reference_.size()) {
      tally_.Violation(Check::kFeed, absl::StrCat("final replay from event 0: ", replay.events.size(), " events, the reference saw ",
                                    reference_.size()));
    }
    VerifySession(replay, "final replay from event 0");
  }

  std::vector<SessionRecord> sessions;
  std::vector<AckedWrite> acked;
  {
    absl::MutexLock lock(&mu_);
    sessions = std::move(sessions_);
    acked = std::move(acked_);
  }
  acked_writes_ = acked.size();
  for (size_t i = 0; i < sessions.size(); ++i) {
    session_events_ += static_cast<int64_t>(sessions[i].events.size());
    const char* mode = sessions[i].mode == SessionRecord::Mode::kResume  ? "resumed"
                       : sessions[i].mode == SessionRecord::Mode::kFresh ? "fresh"
                                                                         : "filtered replay";
    VerifySession(sessions[i], absl::StrCat("subscription ", i, " (", mode, ")"));
  }

  // Every acknowledged write is in the feed, with its events, in order.
  for (const auto& write : acked) {
    const int64_t first = write.last_event_number - static_cast<int64_t>(write.events.size()) + 1;
    for (size_t i = 0; i < write.events.size(); ++i) {
      const int64_t number = first + static_cast<int64_t>(i);
      const auto it = reference_index_.find(number);
      const auto& [type, alert_id] = write.events[i];
      if (it == reference_index_.end() || reference_[it->second].type != type ||
          reference_[it->second].alert_id != alert_id || reference_[it->second].patient_id != write.patient_id) {
        tally_.Violation(Check::kWrites, absl::StrCat(write.what, " of ", write.patient_id, " was acknowledged with event ", number,
                                      " (", v1::AlertEventType_Name(type), " ", alert_id, ") but the feed ",
                                      it == reference_index_.end() ? "lacks it" : "has another event there"));
        break;
      }
    }
  }
  VerifyPatients(patients);
  VerifyRss();
}

std::string Soak::Summary(int64_t final_latest, absl::Duration load) {
  std::string out;
  absl::StrAppend(&out, "- Load: ", absl::FormatDuration(load), " against ", address_, ", seed ", seed_, "; ",
                  absl::GetFlag(FLAGS_writers), " writers (", absl::GetFlag(FLAGS_patients_per_writer),
                  " patients each), ", absl::GetFlag(FLAGS_checkers), " checkers, ", absl::GetFlag(FLAGS_subscribers),
                  " subscriber slots and a reference subscriber.\n");
  absl::StrAppend(&out, "- Requests by kind and status:\n");
  int64_t total = 0;
  for (const auto& [kind, codes] : tally_.counts()) {
    std::vector<std::string> parts;
    int64_t sum = 0;
    for (const auto& [code, n] : codes) {
      parts.push_back(absl::StrCat(Tally::CodeName(code), " ", n));
      sum += n;
    }
    total += sum;
    absl::StrAppend(&out, "  - ", kind, ": ", sum, " (", absl::StrJoin(parts, ", "), ")\n");
  }
  absl::StrAppend(&out, "  - all: ", total, "; inline and stored checks with alerts: ", checks_with_alerts_.load(), " (",
                  alerts_in_checks_.load(), " alerts)\n");
  {
    absl::MutexLock lock(&mu_);
    absl::StrAppend(&out, "- Writes acknowledged: ", acked_writes_, " (", writes_retried_.load(),
                    " cut by the outage and sent again); knowledge-base versions answering checks: ",
                    kb_versions_.size(), ".\n");
  }
  const int64_t delivered = static_cast<int64_t>(reference_.size()) + final_replay_events_ + session_events_;
  absl::StrAppend(&out, "- Events: ", final_latest, " in the feed; ", delivered,
                  " delivered to all subscriptions together (reference ", reference_.size(), ", final replay ",
                  final_replay_events_, ").\n");
  absl::StrAppend(&out, "- Subscriptions: ",
                  sessions_fresh_.load() + sessions_resumed_.load() + sessions_resumed_after_outage_.load() +
                      sessions_replayed_.load(),
                  " joined (", sessions_fresh_.load(), " fresh, ", sessions_resumed_.load(), " resumed after leaving, ",
                  sessions_resumed_after_outage_.load(), " resumed after the outage, ", sessions_replayed_.load(),
                  " filtered replays from an earlier event), ", sessions_left_.load(), " left, ", sessions_cut_.load(),
                  " cut by the outage, ", subscribe_refused_.load(),
                  " attempts refused while the server was down; the reference subscriber was cut and resumed ",
                  reference_resumes_, " times (", reference_refused_, " attempts refused).\n");
  absl::StrAppend(&out, "- Outages announced: ", outages_.count(), ".\n");
  absl::StrAppend(&out, "- Server resident memory:\n");
  for (const auto& line : rss_lines_) {
    absl::StrAppend(&out, "  - ", line, "\n");
  }
  absl::StrAppend(&out, "- Patients checked against GetPatient and ListAlerts: ", patients_verified_, ".\n");
  absl::StrAppend(&out, "- Verdict by check:\n");
  for (const auto& [check, name] : kChecksDone) {
    const int64_t n = tally_.violation_count(check);
    absl::StrAppend(&out, "  - ", name, ": ", n == 0 ? "held" : absl::StrCat("FAILED (", n, " violations)"), "\n");
  }
  const int64_t violations = tally_.violation_count();
  absl::StrAppend(&out, "- Violations: ", violations, violations == 0 ? "" : ":", "\n");
  for (const auto& v : tally_.violations()) {
    absl::StrAppend(&out, "  - ", v, "\n");
  }
  return out;
}

int Soak::Run() {
  std::thread signal_watcher([this] { WatchSignals(); });
  std::thread sampler([this] { SampleRss(); });
  const absl::Time started = absl::Now();
  load_deadline_ = started + absl::Seconds(absl::GetFlag(FLAGS_seconds));
  std::cerr << "vigil-soak: " << absl::GetFlag(FLAGS_seconds) << " s of load against " << address_ << ", seed "
            << seed_ << std::endl;

  std::thread reference([this] { Reference(); });
  const int writer_count = absl::GetFlag(FLAGS_writers);
  std::vector<std::vector<PatientState>> patients(static_cast<size_t>(writer_count));
  std::vector<std::thread> threads;
  for (int w = 0; w < writer_count; ++w) {
    for (int p = 0; p < absl::GetFlag(FLAGS_patients_per_writer); ++p) {
      patients[static_cast<size_t>(w)].push_back({absl::StrCat("soak-", run_id_, "-w", w, "-p", p), false, {}, {}, {}});
    }
    threads.emplace_back([this, w, &patients] { Writer(w, &patients[static_cast<size_t>(w)]); });
  }
  for (int c = 0; c < absl::GetFlag(FLAGS_checkers); ++c) {
    threads.emplace_back([this, c] { Checker(c); });
  }
  for (int s = 0; s < absl::GetFlag(FLAGS_subscribers); ++s) {
    threads.emplace_back([this, s] { Churn(s); });
  }
  for (auto& t : threads) {
    t.join();
  }
  const absl::Time quiet = absl::Now();
  stop_sampling_ = true;
  sampler.join();
  const absl::Duration load = quiet - started;

  // Drain: every write has a definite outcome now, so nothing is written
  // any more. Wait until the reference gets a heartbeat at its last event,
  // at or past the last event acknowledged to a writer: that is the end of
  // the feed.
  const absl::Time drain_limit = quiet + absl::Seconds(60);
  auto drained = [this, quiet] {
    return ToTime(reference_caught_up_at_.load()) > quiet && reference_caught_up_to_.load() >= acked_latest_.load();
  };
  while (!drained() && absl::Now() < drain_limit) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  const bool was_drained = drained();
  const int64_t final_latest = reference_caught_up_to_.load();
  stop_reference_ = true;
  reference.join();
  stop_signals_ = true;
  signal_watcher.join();
  if (!was_drained) {
    tally_.Violation(Check::kFeed, absl::StrCat("the feed did not drain: no heartbeat at the reference's last event (at least ",
                                  acked_latest_.load(), ") within 60 s after the load"));
  }
  if (outages_.Covers(absl::Now(), absl::Now())) {
    tally_.Violation(Check::kFeed, "an announced outage never ended (no SIGUSR2)");
  }
  std::cerr << "vigil-soak: load stopped after " << absl::FormatDuration(load) << "; feed drained at event "
            << final_latest << "; verifying" << std::endl;

  Verify(patients, std::max<int64_t>(final_latest, 0));
  const std::string summary = Summary(std::max<int64_t>(final_latest, 0), load);
  const bool passed = tally_.violation_count() == 0;
  std::cout << "vigil-soak summary\n" << summary << (passed ? "PASSED\n" : "FAILED\n");
  if (const std::string report = absl::GetFlag(FLAGS_report); !report.empty()) {
    std::ofstream out(report);
    out << summary;
  }
  return passed ? 0 : 1;
}

}  // namespace
}  // namespace vigil::soak

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "vigil-soak --server=HOST:PORT --seconds=N (--server_pid=PID | --server_pid_file=FILE) [--report=FILE]");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_server_pid) <= 0 && absl::GetFlag(FLAGS_server_pid_file).empty()) {
    std::cerr << "vigil-soak: give --server_pid or --server_pid_file (the server's memory is part of the check)"
              << std::endl;
    return 64;
  }
  if (absl::GetFlag(FLAGS_writers) < 1 || absl::GetFlag(FLAGS_patients_per_writer) < 1 ||
      absl::GetFlag(FLAGS_seconds) <= 0) {
    std::cerr << "vigil-soak: --writers, --patients_per_writer and --seconds must be positive" << std::endl;
    return 64;
  }
  // The outage signals are taken by a thread of their own (sigtimedwait);
  // blocked here, before any thread starts, so that no other thread gets
  // them (their default action would end the process).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGUSR1);
  sigaddset(&signals, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  vigil::soak::Soak soak;
  return soak.Run();
}
