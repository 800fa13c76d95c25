// vigil-bench-fanout: the alert feed under fan-out. S subscribers hold
// AlertFeed/Subscribe streams (callback client API) while W writers call
// Patients/PutPatient concurrently, switching each of their patients between
// a medication list that raises alerts and one that resolves them. Reports
// events published per second, events delivered per second (all subscribers
// together and per subscriber), and the latency from the event's commit time
// (AlertEvent.event_time, stamped inside the write transaction, so it
// includes the commit itself) to its delivery, p50/p99/p99.9. Checks that
// every subscriber received every event exactly once, in order, with no gap.
//
//   vigil-bench-fanout --server=127.0.0.1:50051 --subscribers=100 --writers=4 --seconds=10 [--token=T]
//
// The client runs on the same machine as the server: its cost (decoding
// S copies of every event) is part of what is measured.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "vigil/v1/alert_feed.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "Server address.");
ABSL_FLAG(int, subscribers, 100, "Subscribers (streams).");
ABSL_FLAG(int, channels, 4, "Connections the subscribers share.");
ABSL_FLAG(int, writers, 4, "Concurrent PutPatient loops.");
ABSL_FLAG(double, seconds, 10, "Measured seconds of writing.");
ABSL_FLAG(double, rate, 5000, "Events per second to publish (writers pace themselves); 0: as fast as they can.");
ABSL_FLAG(std::string, token, "", "Bearer token (needs the ehr and feed roles).");

namespace {

// A polypharmacy medication list that raises 43 alerts in review (CNS
// depressants, serotonergic and QT partners from the bundled base), and one
// that resolves them: each write publishes tens of events, as a busy ward's
// writes would.
const std::vector<const char*> kRaising = {"silperisone", "diazepam",   "tramadol",    "zolpidem",
                                           "oxycodone",   "sertraline", "phenobarbital", "lorazepam",
                                           "morphine",    "fluoxetine", "quetiapine",  "amitriptyline"};
const std::vector<const char*> kResolving = {"silperisone"};

void AddToken(grpc::ClientContext* context, const std::string& token) {
  if (!token.empty()) {
    context->AddMetadata("authorization", "Bearer " + token);
  }
}

// One subscriber: records, for each event, its number and its latency.
class Subscriber final : public grpc::ClientReadReactor<vigil::v1::SubscribeResponse> {
 public:
  Subscriber(vigil::v1::AlertFeed::Stub* stub, int64_t after, const std::string& token) {
    AddToken(&context_, token);
    request_.set_after_event_number(after);
    request_.set_heartbeat_interval_seconds(300);
    stub->async()->Subscribe(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      return;
    }
    if (response_.has_alert_event()) {
      const auto now = absl::Now();
      absl::Time committed;
      std::string error;
      const int64_t number = response_.event_number();
      std::lock_guard<std::mutex> lock(mu_);
      if (absl::ParseTime(absl::RFC3339_full, response_.alert_event().event_time(), &committed, &error)) {
        latencies_us_.push_back(absl::ToDoubleMicroseconds(now - committed));
      } else {
        ++unparsed_times_;
      }
      if (number != last_ + 1) {
        (number <= last_ ? repeated_ : gaps_) += 1;
      }
      last_ = number;
      ++events_;
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
    done_ = true;
    cv_.notify_all();
  }

  void Cancel() { context_.TryCancel(); }

  void WaitDone() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
  }

  // Waits until event `number` has arrived, at most `timeout`; false at
  // once if the stream ended (the server cuts off a subscriber that falls
  // more than --subscriber_queue events behind).
  bool WaitFor(int64_t number, absl::Duration timeout) {
    const auto deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (last_ >= number) {
          return true;
        }
        if (done_) {
          return false;
        }
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<double> latencies_us_;
  int64_t last_ = 0;
  int64_t events_ = 0;
  int64_t gaps_ = 0;
  int64_t repeated_ = 0;
  int64_t unparsed_times_ = 0;
  bool done_ = false;
  grpc::Status status_;

 private:
  grpc::ClientContext context_;
  vigil::v1::SubscribeRequest request_;
  vigil::v1::SubscribeResponse response_;
};

double Pct(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) {
    return 0;
  }
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int subscribers = std::max(1, absl::GetFlag(FLAGS_subscribers));
  const int channels = std::max(1, absl::GetFlag(FLAGS_channels));
  const int writers = std::max(1, absl::GetFlag(FLAGS_writers));
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const std::string token = absl::GetFlag(FLAGS_token);
  const double rate = absl::GetFlag(FLAGS_rate);
  const std::string run = absl::StrCat("fanout-", absl::ToUnixMicros(absl::Now()));

  std::vector<std::shared_ptr<grpc::Channel>> chans;
  std::vector<std::unique_ptr<vigil::v1::AlertFeed::Stub>> feeds;
  for (int i = 0; i < channels + writers; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", i);  // distinct connections
    chans.push_back(grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials(), args));
  }
  for (int i = 0; i < channels; ++i) {
    feeds.push_back(vigil::v1::AlertFeed::NewStub(chans[static_cast<size_t>(i)]));
  }

  // The head of the feed before the run: one write, read back.
  auto put = [&](vigil::v1::Patients::Stub* stub, const std::string& id, const std::vector<const char*>& meds,
                 vigil::v1::PutPatientResponse* response) {
    vigil::v1::PutPatientRequest request;
    request.mutable_patient()->set_id(id);
    for (const char* drug : meds) {
      request.mutable_patient()->add_medications()->set_drug(drug);
    }
    grpc::ClientContext context;
    AddToken(&context, token);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub->PutPatient(&context, request, response);
  };
  auto head_stub = vigil::v1::Patients::NewStub(chans.back());
  vigil::v1::PutPatientResponse head_response;
  if (auto st = put(head_stub.get(), run + "-head", kResolving, &head_response); !st.ok()) {
    std::fprintf(stderr, "PutPatient failed: %s\n", st.error_message().c_str());
    return 1;
  }
  // Subscribers start right after the head of the feed: every event of the
  // run must reach each of them, once, in order (a gap or a repeat shows).
  const int64_t start_number = head_response.last_event_number();
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (int i = 0; i < subscribers; ++i) {
    subs.push_back(std::make_unique<Subscriber>(feeds[static_cast<size_t>(i % channels)].get(), start_number, token));
    std::lock_guard<std::mutex> lock(subs.back()->mu_);
    subs.back()->last_ = start_number;
  }
  // Let the streams open before the first write.
  absl::SleepFor(absl::Milliseconds(500));

  // Writers: each switches its own patients between the two lists.
  std::atomic<int64_t> puts{0};
  std::atomic<int64_t> put_errors{0};
  std::atomic<int64_t> published{0};
  const auto begin = std::chrono::steady_clock::now();
  const auto deadline = begin + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      auto stub = vigil::v1::Patients::NewStub(chans[static_cast<size_t>(channels + w)]);
      for (int64_t k = 0; std::chrono::steady_clock::now() < deadline; ++k) {
        // Pacing: wait while more events are out than the rate allows.
        while (rate > 0 && std::chrono::steady_clock::now() < deadline &&
               static_cast<double>(published.load()) >
                   rate * std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count()) {
          std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
        vigil::v1::PutPatientResponse response;
        const auto st = put(stub.get(), absl::StrCat(run, "-w", w, "-p", k % 8), (k / 8) % 2 == 0 ? kRaising : kResolving,
                            &response);
        if (!st.ok()) {
          ++put_errors;
          continue;
        }
        ++puts;
        published += response.raised_size() + response.resolved_size();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  const double write_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  const int64_t expected = published.load();
  // Every subscriber must reach the last event; then verify each.
  bool complete = true;
  for (auto& s : subs) {
    complete = s->WaitFor(start_number + expected, absl::Seconds(120)) && complete;
  }
  const double drain_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  std::vector<double> all;
  int64_t delivered = 0;
  int64_t gaps = 0;
  int64_t repeated = 0;
  int64_t short_subscribers = 0;
  int64_t unparsed = 0;
  int64_t cut_off = 0;
  std::string cut_off_status;
  for (auto& s : subs) {
    {
      std::lock_guard<std::mutex> lock(s->mu_);
      if (s->done_) {
        ++cut_off;
        cut_off_status = s->status_.error_message();
      }
    }
    s->Cancel();
    s->WaitDone();
    std::lock_guard<std::mutex> lock(s->mu_);
    all.insert(all.end(), s->latencies_us_.begin(), s->latencies_us_.end());
    delivered += s->events_;
    gaps += s->gaps_;
    repeated += s->repeated_;
    unparsed += s->unparsed_times_;
    short_subscribers += s->events_ == expected ? 0 : 1;
  }
  std::sort(all.begin(), all.end());
  std::printf("server %s: %d subscribers on %d connections, %d writers, %.1f s of writes, target %.0f events/s\n",
              absl::GetFlag(FLAGS_server).c_str(), subscribers, channels, writers, write_seconds, rate);
  std::printf("writes   %lld PutPatient (%.0f/s, %lld errors), %lld events published (%.0f events/s)\n",
              static_cast<long long>(puts.load()), static_cast<double>(puts.load()) / write_seconds,
              static_cast<long long>(put_errors.load()), static_cast<long long>(expected),
              static_cast<double>(expected) / write_seconds);
  std::printf("delivery %lld events delivered in all (%.0f/s; %.0f per subscriber per second), drained after %.1f s\n",
              static_cast<long long>(delivered), static_cast<double>(delivered) / drain_seconds,
              static_cast<double>(delivered) / drain_seconds / subscribers, drain_seconds);
  std::printf("latency  commit-to-delivery p50 %.1f ms  p99 %.1f ms  p99.9 %.1f ms  max %.1f ms\n", Pct(all, 0.5) / 1000,
              Pct(all, 0.99) / 1000, Pct(all, 0.999) / 1000, all.empty() ? 0.0 : all.back() / 1000);
  if (cut_off > 0) {
    std::printf("cut off  %lld subscribers fell too far behind and were closed by the server: %s\n",
                static_cast<long long>(cut_off), cut_off_status.c_str());
  }
  std::printf("check    every subscriber got all %lld events: %s (gaps %lld, repeats %lld, short %lld, unparsed %lld)\n",
              static_cast<long long>(expected), complete && gaps == 0 && repeated == 0 && short_subscribers == 0 ? "yes" : "NO",
              static_cast<long long>(gaps), static_cast<long long>(repeated), static_cast<long long>(short_subscribers),
              static_cast<long long>(unparsed));
  return complete && gaps == 0 && repeated == 0 && short_subscribers == 0 && put_errors.load() == 0 ? 0 : 1;
}
