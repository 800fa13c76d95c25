// vigil-bench-replicas: PutPatient throughput and alert-feed delivery latency
// across replicas. Subscribes (AlertFeed/Subscribe) on the subscriber server,
// then K writers put N new patients through the writer server, each raising
// at least one alert (silperisone with ICD-10-CM N18.4, severe chronic kidney
// disease: a contraindication). The two addresses are the same for one
// server; for replicas of one PostgreSQL database, the subscriber's server
// learns of the writes through the database (LISTEN/NOTIFY), not in process.
//
//   vigil-bench-replicas --writer=127.0.0.1:50051 [--subscriber=127.0.0.1:50052] --patients=2000 --writers=4
//                        [--label=NAME] [--token=T]
//
// Measures, all on this process's clocks:
//   - puts/s: N divided by the time from the first put sent to the last
//     answer received; put latency (sent to answered) p50/p99/max;
//   - delivery latency of each patient's first RAISED event, matched by
//     patient id, p50/p99/max, from three starting points:
//       "sent":     just before its PutPatient is sent (steady clock); an
//                   upper bound of commit-to-subscriber, which includes the
//                   put's own latency (queueing behind the other writers);
//       "answered": when the writer received the put's answer (steady
//                   clock); about commit-to-subscriber minus the answer's
//                   trip back; negative when the event reached the
//                   subscriber before the answer reached the writer;
//       "stamped":  AlertEvent.event_time, stamped by the writing server
//                   inside the transaction just before it commits (system
//                   clock; same machine, so comparable).
// The last line, "RESULT ...", is for scripts (bench/replicas.sh). Nothing is
// asserted on time: the exit status is non-zero only for failed puts or
// events that never arrived.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "vigil/v1/alert_feed.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"

ABSL_FLAG(std::string, writer, "127.0.0.1:50051", "Address of the server the puts go to.");
ABSL_FLAG(std::string, subscriber, "", "Address of the server subscribed to; empty: the writer's.");
ABSL_FLAG(int, patients, 2000, "Patients put (one PutPatient each, each a new patient).");
ABSL_FLAG(int, writers, 4, "Concurrent writers (each its own connection, one put in flight).");
ABSL_FLAG(std::string, label, "", "Name of the setup, repeated in the RESULT line.");
ABSL_FLAG(std::string, token, "", "Bearer token (needs the ehr and feed roles).");
ABSL_FLAG(double, drain_seconds, 60, "How long to wait after the last put for events still on their way.");

namespace {

using Clock = std::chrono::steady_clock;

std::shared_ptr<grpc::Channel> OwnChannel(const std::string& address, int id) {
  grpc::ChannelArguments args;
  args.SetInt("grpc.channel_id", id);  // a connection of its own
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

void AddToken(grpc::ClientContext* context, const std::string& token) {
  if (!token.empty()) {
    context->AddMetadata("authorization", "Bearer " + token);
  }
}

// A new patient whose put raises a contraindication (as tests/feed_client.cc
// MakePatient with severe_renal).
vigil::v1::PutPatientRequest RaisingPut(const std::string& id) {
  vigil::v1::PutPatientRequest request;
  auto* p = request.mutable_patient();
  p->set_id(id);
  p->add_medications()->set_drug("silperisone");
  auto* c = p->add_conditions()->mutable_code();
  c->set_system("http://hl7.org/fhir/sid/icd-10-cm");
  c->set_code("N18.4");
  return request;
}

// Per patient: when its put was sent and answered, when its first RAISED
// event arrived, and that event's stamped time.
struct Timing {
  Clock::time_point sent;
  Clock::time_point answered;
  Clock::time_point received;
  absl::Duration stamped_to_received;
  int raised = 0;
  bool put_ok = false;
  bool got = false;
};

// The feed on the subscriber's server, read on a thread of its own; each
// patient of the run is matched by its id ("<run>-<index>").
class FeedReader {
 public:
  FeedReader(std::shared_ptr<grpc::Channel> channel, const std::string& token, std::string prefix,
             std::vector<Timing>* timings, Timing* sync)
      : stub_(vigil::v1::AlertFeed::NewStub(std::move(channel))),
        prefix_(std::move(prefix)),
        timings_(timings),
        sync_(sync) {
    AddToken(&context_, token);
    vigil::v1::SubscribeRequest request;
    // No after_event_number: only events written from now on, i.e. after
    // the latest event when the server takes the subscription.
    request.set_heartbeat_interval_seconds(300);
    reader_ = stub_->Subscribe(&context_, request);
    thread_ = std::thread([this] { Read(); });
  }

  ~FeedReader() {
    context_.TryCancel();
    thread_.join();
  }

  // Waits until `done()` holds (checked under the lock) or the stream ends
  // or `timeout` passes; returns done().
  template <typename Done>
  bool WaitUntil(Done done, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (done()) {
          return true;
        }
        if (ended_ || absl::Now() >= deadline) {
          return false;
        }
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

  std::string EndStatus() {
    std::lock_guard<std::mutex> lock(mu);
    return ended_ ? absl::StrCat("the feed ended: ", status_.error_message()) : "the feed is open";
  }

  std::mutex mu;  // guards *timings_ (received, got) and *sync_
  int64_t events = 0;

 private:
  void Read() {
    vigil::v1::SubscribeResponse response;
    while (reader_->Read(&response)) {
      const auto now = Clock::now();
      const absl::Time wall = absl::Now();
      std::lock_guard<std::mutex> lock(mu);
      if (response.has_batch()) {
        for (const auto& event : response.batch().events()) {
          OnEvent(event.alert_event(), now, wall);
        }
      } else if (response.has_alert_event()) {
        OnEvent(response.alert_event(), now, wall);
      }
    }
    grpc::Status status = reader_->Finish();
    std::lock_guard<std::mutex> lock(mu);
    status_ = status;
    ended_ = true;
  }

  void OnEvent(const vigil::v1::AlertEvent& event, Clock::time_point now, absl::Time wall) {
    ++events;
    if (event.type() != vigil::v1::ALERT_EVENT_TYPE_RAISED) {
      return;
    }
    Timing* t = nullptr;
    absl::string_view id = event.patient_id();
    if (absl::StartsWith(id, prefix_ + "sync-")) {
      t = sync_;
      t->got = false;  // any of them will do
    } else if (absl::ConsumePrefix(&id, prefix_)) {
      size_t index = 0;
      if (absl::SimpleAtoi(id, &index) && index < timings_->size()) {
        t = &(*timings_)[index];
      }
    }
    if (t == nullptr || t->got) {
      return;
    }
    t->got = true;
    t->received = now;
    const auto& stamp = event.event_time();
    t->stamped_to_received = wall - (absl::FromUnixSeconds(stamp.seconds()) + absl::Nanoseconds(stamp.nanos()));
  }

  std::unique_ptr<vigil::v1::AlertFeed::Stub> stub_;
  const std::string prefix_;
  std::vector<Timing>* const timings_;
  Timing* const sync_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<vigil::v1::SubscribeResponse>> reader_;
  std::thread thread_;
  grpc::Status status_;
  bool ended_ = false;
};

double Pct(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) {
    return 0;
  }
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size())))];
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Summary {
  double p50, p99, max;
};

Summary Summarize(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return {Pct(values, 0.5), Pct(values, 0.99), values.empty() ? 0.0 : values.back()};
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string writer = absl::GetFlag(FLAGS_writer);
  const std::string subscriber =
      absl::GetFlag(FLAGS_subscriber).empty() ? writer : absl::GetFlag(FLAGS_subscriber);
  const int patients = std::max(1, absl::GetFlag(FLAGS_patients));
  const int writers = std::max(1, absl::GetFlag(FLAGS_writers));
  const std::string token = absl::GetFlag(FLAGS_token);
  const std::string label = absl::GetFlag(FLAGS_label).empty() ? "run" : absl::GetFlag(FLAGS_label);
  const std::string prefix = absl::StrCat("replicas-", absl::ToUnixMicros(absl::Now()), "-");

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < writers; ++i) {
    channels.push_back(OwnChannel(writer, i));
  }
  auto put = [&](vigil::v1::Patients::Stub* stub, const vigil::v1::PutPatientRequest& request,
                 vigil::v1::PutPatientResponse* response) {
    grpc::ClientContext context;
    AddToken(&context, token);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub->PutPatient(&context, request, response);
  };

  std::vector<Timing> timings(static_cast<size_t>(patients));
  Timing sync;
  FeedReader feed(OwnChannel(subscriber, writers), token, prefix, &timings, &sync);

  // Raising puts of patients of their own, one every half second, until the
  // RAISED event of one reaches the subscriber: the subscription is live
  // (and the subscriber's server follows the writer's) before the measured
  // puts.
  auto sync_stub = vigil::v1::Patients::NewStub(channels[0]);
  bool live = false;
  for (int k = 0; k < 60 && !live; ++k) {
    vigil::v1::PutPatientResponse response;
    if (auto st = put(sync_stub.get(), RaisingPut(absl::StrCat(prefix, "sync-", k)), &response);
        !st.ok() || response.raised_size() == 0) {
      std::fprintf(stderr, "PutPatient to %s failed or raised nothing: %s\n", writer.c_str(),
                   st.error_message().c_str());
      return 1;
    }
    live = feed.WaitUntil([&] { return sync.got; }, absl::Milliseconds(500));
  }
  if (!live) {
    std::fprintf(stderr, "no RAISED event reached the subscriber on %s: %s\n", subscriber.c_str(),
                 feed.EndStatus().c_str());
    return 1;
  }

  std::atomic<int> next{0};
  std::atomic<int64_t> errors{0};
  std::string first_error;
  std::mutex error_mu;
  const auto begin = Clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      auto stub = vigil::v1::Patients::NewStub(channels[static_cast<size_t>(w)]);
      for (int i = next.fetch_add(1); i < patients; i = next.fetch_add(1)) {
        const auto request = RaisingPut(absl::StrCat(prefix, i));
        vigil::v1::PutPatientResponse response;
        Timing& t = timings[static_cast<size_t>(i)];
        const auto sent = Clock::now();
        const grpc::Status st = put(stub.get(), request, &response);
        const auto answered = Clock::now();
        std::lock_guard<std::mutex> lock(feed.mu);  // the reader may be writing this patient's entry
        t.sent = sent;
        t.answered = answered;
        t.put_ok = st.ok();
        t.raised = response.raised_size();
        if (!st.ok() || response.raised_size() == 0) {
          ++errors;
          std::lock_guard<std::mutex> elock(error_mu);
          if (first_error.empty()) {
            first_error = st.ok() ? "a put raised no alert" : st.error_message();
          }
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  const auto end = Clock::now();
  const double write_seconds = std::chrono::duration<double>(end - begin).count();

  // Every patient whose put succeeded must reach the subscriber.
  auto all_in = [&] {
    for (const auto& t : timings) {
      if (t.put_ok && t.raised > 0 && !t.got) {
        return false;
      }
    }
    return true;
  };
  feed.WaitUntil(all_in, absl::Seconds(absl::GetFlag(FLAGS_drain_seconds)));

  std::vector<double> put_ms, from_sent_ms, from_answered_ms, from_stamped_ms;
  int64_t missing = 0;
  int64_t raised = 0;
  {
    std::lock_guard<std::mutex> lock(feed.mu);
    for (const auto& t : timings) {
      if (!t.put_ok) {
        continue;
      }
      raised += t.raised;
      put_ms.push_back(Ms(t.answered - t.sent));
      if (t.raised == 0) {
        continue;
      }
      if (!t.got) {
        ++missing;
        continue;
      }
      from_sent_ms.push_back(Ms(t.received - t.sent));
      from_answered_ms.push_back(Ms(t.received - t.answered));
      from_stamped_ms.push_back(absl::ToDoubleMilliseconds(t.stamped_to_received));
    }
  }
  const double puts_per_second = static_cast<double>(put_ms.size()) / write_seconds;
  const Summary put_s = Summarize(put_ms);
  const Summary sent_s = Summarize(from_sent_ms);
  const Summary answered_s = Summarize(from_answered_ms);
  const Summary stamped_s = Summarize(from_stamped_ms);

  std::printf("setup    %s: writes to %s, subscribed on %s, %d patients, %d writers\n", label.c_str(), writer.c_str(),
              subscriber.c_str(), patients, writers);
  std::printf("puts     %zu PutPatient in %.2f s: %.1f/s, %lld errors%s%s; %lld alerts raised\n", put_ms.size(),
              write_seconds, puts_per_second, static_cast<long long>(errors.load()),
              first_error.empty() ? "" : " (first: ", first_error.empty() ? "" : (first_error + ")").c_str(),
              static_cast<long long>(raised));
  std::printf("put      latency p50 %.2f ms  p99 %.2f ms  max %.2f ms\n", put_s.p50, put_s.p99, put_s.max);
  std::printf("delivery first RAISED event of %zu patients (%lld missing); %lld events read in all\n",
              from_sent_ms.size(), static_cast<long long>(missing), static_cast<long long>(feed.events));
  std::printf("delivery from put sent      p50 %.2f ms  p99 %.2f ms  max %.2f ms\n", sent_s.p50, sent_s.p99,
              sent_s.max);
  std::printf("delivery from put answered  p50 %.2f ms  p99 %.2f ms  max %.2f ms\n", answered_s.p50, answered_s.p99,
              answered_s.max);
  std::printf("delivery from event_time    p50 %.2f ms  p99 %.2f ms  max %.2f ms\n", stamped_s.p50, stamped_s.p99,
              stamped_s.max);
  std::printf("RESULT label=%s puts_per_s=%.1f put_p50_ms=%.3f put_p99_ms=%.3f sent_p50_ms=%.3f sent_p99_ms=%.3f "
              "sent_max_ms=%.3f answered_p50_ms=%.3f answered_p99_ms=%.3f answered_max_ms=%.3f stamped_p50_ms=%.3f "
              "stamped_p99_ms=%.3f stamped_max_ms=%.3f errors=%lld missing=%lld\n",
              label.c_str(), puts_per_second, put_s.p50, put_s.p99, sent_s.p50, sent_s.p99, sent_s.max,
              answered_s.p50, answered_s.p99, answered_s.max, stamped_s.p50, stamped_s.p99, stamped_s.max,
              static_cast<long long>(errors.load()), static_cast<long long>(missing));
  std::fflush(stdout);
  return errors.load() == 0 && missing == 0 ? 0 : 1;
}
