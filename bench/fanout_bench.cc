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
//                      [--max_events_per_message=N] [--parse=full|needed]
//
// --max_events_per_message asks the server for batches of up to N events
// (SubscribeRequest.max_events_per_message); 0, the default, is one event per
// message, as every earlier run of this benchmark measured.
//
// The client runs on the same machine as the server: its cost (decoding
// S copies of every event) is part of what is measured. --parse=full (the
// default) parses every message with the generated classes (on an arena), as
// a real subscriber would; --parse=needed reads only what the check and the latency
// need from the wire format (each event's event_number and event_time),
// skipping the alert's bytes, to show how much of the machine the
// load generator's own parsing takes.
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
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/arena.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "vigil/v1/alert_feed.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "Server address.");
ABSL_FLAG(int, subscribers, 100, "Subscribers (streams).");
ABSL_FLAG(int, channels, 4, "Connections the subscribers share.");
ABSL_FLAG(int, writers, 4, "Concurrent PutPatient loops.");
ABSL_FLAG(double, seconds, 10, "Measured seconds of writing.");
ABSL_FLAG(double, rate, 5000, "Events per second to publish (writers pace themselves); 0: as fast as they can.");
ABSL_FLAG(std::string, token, "", "Bearer token (needs the ehr and feed roles).");
ABSL_FLAG(int, max_events_per_message, 0,
          "SubscribeRequest.max_events_per_message: 0 or 1, one event per message; 2 to 1000, batches of up to that "
          "many waiting events.");
ABSL_FLAG(std::string, parse, "full",
          "full: parse every message with the generated classes; needed: read only each event's number and time "
          "from the wire format.");

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

using google::protobuf::io::CodedInputStream;
using google::protobuf::internal::WireFormatLite;

// The tags of the fields it reads, from the generated field numbers.
constexpr uint32_t Tag(int field, WireFormatLite::WireType type) {
  return (static_cast<uint32_t>(field) << 3) | static_cast<uint32_t>(type);
}
constexpr uint32_t kTagEventNumber =
    Tag(vigil::v1::SubscribeResponse::kEventNumberFieldNumber, WireFormatLite::WIRETYPE_VARINT);
constexpr uint32_t kTagAlertEvent =
    Tag(vigil::v1::SubscribeResponse::kAlertEventFieldNumber, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
constexpr uint32_t kTagBatch =
    Tag(vigil::v1::SubscribeResponse::kBatchFieldNumber, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
constexpr uint32_t kTagBatchEvent =
    Tag(vigil::v1::EventBatch::kEventsFieldNumber, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
constexpr uint32_t kTagEventTime =
    Tag(vigil::v1::AlertEvent::kEventTimeFieldNumber, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);

// Reads one SubscribeResponse up to the stream's current limit, taking only
// event_number and, for an event, alert_event.event_time (the alert's other
// fields are skipped over); a batch's elements likewise. Calls
// on_event(number, time) for each event. False when the bytes are malformed.
template <typename OnEvent>
bool ScanResponse(CodedInputStream* in, bool in_batch, OnEvent& on_event) {
  int64_t number = 0;
  bool is_event = false;
  std::string time;
  for (uint32_t tag = in->ReadTag(); tag != 0; tag = in->ReadTag()) {
    if (tag == kTagEventNumber) {
      uint64_t value = 0;
      if (!in->ReadVarint64(&value)) {
        return false;
      }
      number = static_cast<int64_t>(value);
    } else if (tag == kTagAlertEvent) {
      is_event = true;
      uint32_t length = 0;
      if (!in->ReadVarint32(&length)) {
        return false;
      }
      const auto limit = in->PushLimit(static_cast<int>(length));
      for (uint32_t t = in->ReadTag(); t != 0; t = in->ReadTag()) {
        if (t == kTagEventTime) {
          if (!WireFormatLite::ReadString(in, &time)) {
            return false;
          }
        } else if (!WireFormatLite::SkipField(in, t)) {
          return false;
        }
      }
      if (in->BytesUntilLimit() != 0) {
        return false;
      }
      in->PopLimit(limit);
    } else if (tag == kTagBatch && !in_batch) {
      uint32_t length = 0;
      if (!in->ReadVarint32(&length)) {
        return false;
      }
      const auto limit = in->PushLimit(static_cast<int>(length));
      for (uint32_t t = in->ReadTag(); t != 0; t = in->ReadTag()) {
        if (t != kTagBatchEvent) {
          if (!WireFormatLite::SkipField(in, t)) {
            return false;
          }
          continue;
        }
        uint32_t element = 0;
        if (!in->ReadVarint32(&element)) {
          return false;
        }
        const auto element_limit = in->PushLimit(static_cast<int>(element));
        if (!ScanResponse(in, /*in_batch=*/true, on_event) || in->BytesUntilLimit() != 0) {
          return false;
        }
        in->PopLimit(element_limit);
      }
      if (in->BytesUntilLimit() != 0) {
        return false;
      }
      in->PopLimit(limit);
    } else if (!WireFormatLite::SkipField(in, tag)) {
      return false;
    }
  }
  if (is_event) {
    google::protobuf::Timestamp when;
    if (!when.ParseFromString(time)) {
      return false;
    }
    on_event(number, when);
  }
  return true;
}

google::protobuf::ArenaOptions ArenaOptionsFor(std::vector<char>* block) {
  google::protobuf::ArenaOptions options;
  options.initial_block = block->data();
  options.initial_block_size = block->size();
  return options;
}

// One subscriber: records, for each event, its number and its latency. The
// stream is read as bytes (a generic call), parsed as --parse says.
class Subscriber final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  Subscriber(grpc::GenericStub* stub, int64_t after, const std::string& token, int max_events_per_message,
             bool full_parse)
      : full_parse_(full_parse) {
    AddToken(&context_, token);
    vigil::v1::SubscribeRequest request;
    request.set_after_event_number(after);
    request.set_heartbeat_interval_seconds(300);
    request.set_max_events_per_message(max_events_per_message);
    const std::string bytes = request.SerializeAsString();
    grpc::Slice slice(bytes);
    request_ = grpc::ByteBuffer(&slice, 1);
    stub->PrepareBidiStreamingCall(&context_, "/vigil.v1.AlertFeed/Subscribe", grpc::StubOptions(), this);
    StartWriteLast(&request_, grpc::WriteOptions());
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      return;
    }
    const auto now = absl::Now();
    std::lock_guard<std::mutex> lock(mu_);
    ++messages_;
    bytes_ += static_cast<int64_t>(response_.Length());
    auto on_event = [&](int64_t number, const google::protobuf::Timestamp& time) {
      if (time.seconds() > 0) {
        const absl::Time committed = absl::FromUnixSeconds(time.seconds()) + absl::Nanoseconds(time.nanos());
        latencies_us_.push_back(absl::ToDoubleMicroseconds(now - committed));
      } else {
        ++unparsed_times_;
      }
      if (number != last_ + 1) {
        (number <= last_ ? repeated_ : gaps_) += 1;
      }
      last_ = number;
      ++events_;
    };
    if (full_parse_) {
      // Every field of every event, parsed into an arena that is emptied
      // after each message (a batch is hundreds of objects: allocating each
      // on the heap made the load generator's malloc its bottleneck).
      auto* parsed = google::protobuf::Arena::CreateMessage<vigil::v1::SubscribeResponse>(&arena_);
      if (!grpc::SerializationTraits<vigil::v1::SubscribeResponse>::Deserialize(&response_, parsed).ok()) {
        ++unparsed_messages_;
      } else if (parsed->has_batch()) {
        for (const auto& event : parsed->batch().events()) {
          on_event(event.event_number(), event.alert_event().event_time());
        }
      } else if (parsed->has_alert_event()) {
        on_event(parsed->event_number(), parsed->alert_event().event_time());
      }
      arena_.Reset();
    } else {
      grpc::ProtoBufferReader reader(&response_);
      CodedInputStream in(&reader);
      if (!ScanResponse(&in, /*in_batch=*/false, on_event) || !in.ConsumedEntireMessage()) {
        ++unparsed_messages_;
      }
    }
    response_.Clear();
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
  int64_t unparsed_messages_ = 0;
  int64_t messages_ = 0;
  int64_t bytes_ = 0;
  bool done_ = false;
  grpc::Status status_;

 private:
  const bool full_parse_;
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  // Its first block is reused from message to message.
  std::vector<char> arena_block_ = std::vector<char>(512 * 1024);
  google::protobuf::Arena arena_{ArenaOptionsFor(&arena_block_)};
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
  const int max_events_per_message = absl::GetFlag(FLAGS_max_events_per_message);
  const std::string parse = absl::GetFlag(FLAGS_parse);
  if (parse != "full" && parse != "needed") {
    std::fprintf(stderr, "--parse is full or needed\n");
    return 64;
  }
  const std::string run = absl::StrCat("fanout-", absl::ToUnixMicros(absl::Now()));

  std::vector<std::shared_ptr<grpc::Channel>> chans;
  std::vector<std::unique_ptr<grpc::GenericStub>> feeds;
  for (int i = 0; i < channels + writers; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", i);  // distinct connections
    chans.push_back(grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials(), args));
  }
  for (int i = 0; i < channels; ++i) {
    feeds.push_back(std::make_unique<grpc::GenericStub>(chans[static_cast<size_t>(i)]));
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
    subs.push_back(std::make_unique<Subscriber>(feeds[static_cast<size_t>(i % channels)].get(), start_number, token,
                                                max_events_per_message, parse == "full"));
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
  int64_t unparsed_messages = 0;
  int64_t messages = 0;
  int64_t bytes = 0;
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
    unparsed_messages += s->unparsed_messages_;
    messages += s->messages_;
    bytes += s->bytes_;
    short_subscribers += s->events_ == expected ? 0 : 1;
  }
  std::sort(all.begin(), all.end());
  std::printf("server %s: %d subscribers on %d connections, %d writers, %.1f s of writes, target %.0f events/s, "
              "max_events_per_message %d, parse %s\n",
              absl::GetFlag(FLAGS_server).c_str(), subscribers, channels, writers, write_seconds, rate,
              max_events_per_message, parse.c_str());
  std::printf("writes   %lld PutPatient (%.0f/s, %lld errors), %lld events published (%.0f events/s)\n",
              static_cast<long long>(puts.load()), static_cast<double>(puts.load()) / write_seconds,
              static_cast<long long>(put_errors.load()), static_cast<long long>(expected),
              static_cast<double>(expected) / write_seconds);
  std::printf("delivery %lld events delivered in all (%.0f/s; %.0f per subscriber per second), drained after %.1f s\n",
              static_cast<long long>(delivered), static_cast<double>(delivered) / drain_seconds,
              static_cast<double>(delivered) / drain_seconds / subscribers, drain_seconds);
  std::printf("messages %lld messages in all (%.0f/s), %.1f events per message, %.0f bytes per event, %.0f MB/s\n",
              static_cast<long long>(messages), static_cast<double>(messages) / drain_seconds,
              messages == 0 ? 0.0 : static_cast<double>(delivered) / static_cast<double>(messages),
              delivered == 0 ? 0.0 : static_cast<double>(bytes) / static_cast<double>(delivered),
              static_cast<double>(bytes) / drain_seconds / 1e6);
  std::printf("latency  commit-to-delivery p50 %.1f ms  p99 %.1f ms  p99.9 %.1f ms  max %.1f ms\n", Pct(all, 0.5) / 1000,
              Pct(all, 0.99) / 1000, Pct(all, 0.999) / 1000, all.empty() ? 0.0 : all.back() / 1000);
  if (cut_off > 0) {
    std::printf("cut off  %lld subscribers fell too far behind and were closed by the server: %s\n",
                static_cast<long long>(cut_off), cut_off_status.c_str());
  }
  const bool all_good = complete && gaps == 0 && repeated == 0 && short_subscribers == 0 && unparsed_messages == 0;
  std::printf("check    every subscriber got all %lld events: %s (gaps %lld, repeats %lld, short %lld, unparsed %lld)\n",
              static_cast<long long>(expected), all_good ? "yes" : "NO", static_cast<long long>(gaps),
              static_cast<long long>(repeated), static_cast<long long>(short_subscribers),
              static_cast<long long>(unparsed + unparsed_messages));
  return all_good && put_errors.load() == 0 ? 0 : 1;
}
