// vigil-bench: drives a running server with N channels and M requests in
// flight (callback client API) for a fixed time, for CheckMedications (one
// message per alert, then the summary), CheckMedicationsUnary (the same answer
// in one message) and, in the same run with the same channels and
// concurrency, for the floor: grpc.health.v1.Health/Check. Reports throughput, p50/p90/p99/p99.9 latency,
// and the ratios check / floor. The two workloads alternate in short rounds
// (health, check, check, health, ...) so that drift in a noisy machine falls
// on both alike.
//
//   vigil-bench --server=127.0.0.1:50051 --channels=2 --in_flight=1 --seconds=5 --rounds=5 [--token=T]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <unistd.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "bench/workload.h"
#include "grpcpp/grpcpp.h"
#include "vigil/v1/decision_support.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "Server address.");
ABSL_FLAG(int, channels, 2, "Channels (connections).");
ABSL_FLAG(int, in_flight, 1, "Requests in flight in total.");
ABSL_FLAG(double, seconds, 5, "Measured seconds per workload.");
ABSL_FLAG(int, rounds, 5, "Rounds the measured seconds are split into, alternating the workloads.");
ABSL_FLAG(std::string, token, "", "Bearer token for the check calls.");
ABSL_FLAG(std::string, workloads, "health,stream,unary",
          "Which workloads to run, of health (the floor), stream (CheckMedications) and unary "
          "(CheckMedicationsUnary); a subset is for profiling one of them.");
ABSL_FLAG(int, server_pid, 0,
          "The server's process id, when it runs on this machine: the CPU time it spends per call is reported "
          "beside the load generator's own.");
ABSL_FLAG(std::string, request, "realistic",
          "Check request: 'realistic' (10 current medications, 2 proposed, 5 conditions, 3 labs: several alerts) or "
          "'clean' (one proposed drug, nothing found: the summary alone).");
ABSL_FLAG(std::string, view, "full", "The alert view both checks ask for: full or basic.");
ABSL_FLAG(bool, sources_by_reference, false, "Both checks ask for sources cited by several alerts once per answer.");
ABSL_FLAG(int, max_alerts_per_message, 0, "The streamed check asks for batches of at most this many alerts.");
ABSL_FLAG(std::string, write_requests, "",
          "Instead of a run: write the three workloads' requests, framed as gRPC sends them, into this directory "
          "(health.grpc, stream.grpc, unary.grpc) with a manifest of their paths and their answers' sizes "
          "(workloads.tsv), for a load generator outside gRPC (scripts/bench.sh runs h2load with them).");

namespace {

using Clock = std::chrono::steady_clock;

struct Result {
  std::vector<double> latencies_us;
  double seconds = 0;
  int64_t errors = 0;
  double server_cpu_seconds = 0;  // with --server_pid
  double client_cpu_seconds = 0;
};

// User plus system CPU seconds of process `pid` so far (0: this process),
// from /proc; -1 when it cannot be read.
double CpuSeconds(int pid) {
  const std::string path = pid == 0 ? "/proc/self/stat" : "/proc/" + std::to_string(pid) + "/stat";
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) {
    return -1;
  }
  char buf[1024];
  const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  // Fields after the command name (which is in parentheses and may hold
  // spaces): state is field 3, utime 14, stime 15.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) {
    return -1;
  }
  unsigned long utime = 0;
  unsigned long stime = 0;
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) {
    return -1;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Runs `workload` and adds the CPU time the server and this process spent
// meanwhile to its result.
template <typename F>
Result Measured(F workload, double seconds) {
  const int pid = absl::GetFlag(FLAGS_server_pid);
  const double server0 = pid > 0 ? CpuSeconds(pid) : 0;
  const double client0 = CpuSeconds(0);
  Result r = workload(seconds);
  r.server_cpu_seconds = pid > 0 ? CpuSeconds(pid) - server0 : 0;
  r.client_cpu_seconds = CpuSeconds(0) - client0;
  return r;
}

vigil::v1::CheckMedicationsRequest CheckRequest() {
  vigil::v1::CheckMedicationsRequest request;
  if (absl::GetFlag(FLAGS_request) == "clean") {
    request.mutable_patient()->set_id("bench");
    request.add_proposed_medications()->set_drug("silperisone");
  } else {
    request = vigil::bench::RealisticCheck("bench");
  }
  request.set_view(absl::GetFlag(FLAGS_view) == "basic" ? vigil::v1::ALERT_VIEW_BASIC : vigil::v1::ALERT_VIEW_FULL);
  request.set_sources_by_reference(absl::GetFlag(FLAGS_sources_by_reference));
  request.set_max_alerts_per_message(absl::GetFlag(FLAGS_max_alerts_per_message));
  return request;
}

// Per slot: how long each streamed check took to deliver its first alert
// (calls of one slot run one at a time, so each slot's vector has one writer).
std::vector<std::vector<double>> g_first_alert_us;

// Runs `in_flight` independent loops, each issuing one call at a time through
// `start_call(done)` until the deadline.
Result Drive(int in_flight, double seconds,
             const std::function<void(int slot, std::function<void(bool)> done)>& start_call) {
  Result result;
  std::mutex mu;
  std::condition_variable cv;
  int active = in_flight;
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::vector<double>> per_slot(static_cast<size_t>(in_flight));
  std::atomic<int64_t> errors{0};
  std::function<void(int)> issue = [&](int slot) {
    const auto start = Clock::now();
    start_call(slot, [&, slot, start](bool ok) {
      const auto end = Clock::now();
      if (!ok) {
        ++errors;
      }
      per_slot[static_cast<size_t>(slot)].push_back(std::chrono::duration<double, std::micro>(end - start).count());
      if (end < deadline) {
        issue(slot);
      } else {
        std::lock_guard<std::mutex> lock(mu);
        if (--active == 0) {
          cv.notify_all();
        }
      }
    });
  };
  const auto begin = Clock::now();
  for (int slot = 0; slot < in_flight; ++slot) {
    issue(slot);
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return active == 0; });
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  for (auto& v : per_slot) {
    result.latencies_us.insert(result.latencies_us.end(), v.begin(), v.end());
  }
  std::sort(result.latencies_us.begin(), result.latencies_us.end());
  result.errors = errors.load();
  return result;
}

double Pct(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) {
    return 0;
  }
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size())));
  return sorted[i];
}

// One server-streaming check read to its end.
class CheckCall final : public grpc::ClientReadReactor<vigil::v1::CheckMedicationsResponse> {
 public:
  CheckCall(vigil::v1::DecisionSupport::Stub* stub, const vigil::v1::CheckMedicationsRequest& request,
            const std::string& token, std::vector<double>* first_alert_us, std::function<void(bool)> done)
      : first_alert_us_(first_alert_us), done_(std::move(done)) {
    if (!token.empty()) {
      context_.AddMetadata("authorization", "Bearer " + token);
    }
    stub->async()->CheckMedications(&context_, &request, this);
    StartRead(&response_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (ok) {
      if (!first_seen_ && (response_.has_alert() || response_.has_alert_batch())) {
        first_seen_ = true;
        first_alert_us_->push_back(std::chrono::duration<double, std::micro>(Clock::now() - start_).count());
      }
      StartRead(&response_);
    }
  }
  void OnDone(const grpc::Status& status) override {
    auto done = std::move(done_);
    const bool ok = status.ok();
    delete this;
    done(ok);
  }

 private:
  const Clock::time_point start_ = Clock::now();
  std::vector<double>* const first_alert_us_;
  bool first_seen_ = false;
  grpc::ClientContext context_;
  vigil::v1::CheckMedicationsResponse response_;
  std::function<void(bool)> done_;
};

// One answer to `request`, asked both ways: the unary answer, and what the
// stream carried on the wire (each message with gRPC's 5-byte prefix).
struct AnswerBothWays {
  vigil::v1::CheckMedicationsUnaryResponse unary;
  size_t stream_messages = 0;
  size_t stream_bytes = 0;
};

// The answer, or nullopt with `*failed` naming the call that failed.
std::optional<AnswerBothWays> AskBothWays(vigil::v1::DecisionSupport::Stub& stub,
                                          const vigil::v1::CheckMedicationsRequest& request,
                                          const vigil::v1::CheckMedicationsUnaryRequest& unary_request,
                                          const std::string& token, std::string* failed) {
  auto prepare = [&token](grpc::ClientContext* context) {
    if (!token.empty()) {
      context->AddMetadata("authorization", "Bearer " + token);
    }
  };
  AnswerBothWays answer;
  grpc::ClientContext unary_context;
  prepare(&unary_context);
  if (!stub.CheckMedicationsUnary(&unary_context, unary_request, &answer.unary).ok()) {
    *failed = "the unary check";
    return std::nullopt;
  }
  grpc::ClientContext stream_context;
  prepare(&stream_context);
  auto reader = stub.CheckMedications(&stream_context, request);
  vigil::v1::CheckMedicationsResponse message;
  while (reader->Read(&message)) {
    ++answer.stream_messages;
    answer.stream_bytes += message.ByteSizeLong() + 5;
  }
  if (!reader->Finish().ok()) {
    *failed = "the streamed check";
    return std::nullopt;
  }
  return answer;
}

// Prints what one answer to `request` weighs on the wire: its alerts, the
// unary answer's bytes (and per alert), the stream's messages and bytes.
void PrintAnswerSize(vigil::v1::DecisionSupport::Stub& stub, const vigil::v1::CheckMedicationsRequest& request,
                     const vigil::v1::CheckMedicationsUnaryRequest& unary_request, const std::string& token) {
  std::string failed;
  const auto answer = AskBothWays(stub, request, unary_request, token, &failed);
  if (!answer.has_value()) {
    return;
  }
  const auto& unary = answer->unary;
  const size_t bytes = unary.ByteSizeLong();
  std::printf("answer: %d alerts; unary %zu bytes (%.0f per alert); stream %zu messages, %zu bytes\n",
              unary.alerts_size(), bytes,
              unary.alerts_size() > 0 ? static_cast<double>(bytes - unary.summary().ByteSizeLong()) / unary.alerts_size()
                                      : 0.0,
              answer->stream_messages, answer->stream_bytes);
}

// A message as gRPC frames it on the wire: an uncompressed flag, its
// length (4 bytes, big-endian), then its bytes.
std::string GrpcFramed(const google::protobuf::MessageLite& message) {
  const std::string bytes = message.SerializeAsString();
  std::string framed(5, '\0');
  for (int i = 0; i < 4; ++i) {
    framed[static_cast<size_t>(1 + i)] = static_cast<char>((bytes.size() >> (8 * (3 - i))) & 0xff);
  }
  return framed + bytes;
}

// --write_requests: each workload's framed request, and a manifest line per
// workload: name, HTTP/2 path, file, and the bytes of gRPC messages its
// answer carries (asked of the server here), so that a load generator that
// cannot read gRPC statuses can still tell full answers from errors.
int WriteRequests(const std::string& dir, vigil::v1::DecisionSupport::Stub& stub,
                  grpc::health::v1::Health::Stub& health, const vigil::v1::CheckMedicationsRequest& request,
                  const vigil::v1::CheckMedicationsUnaryRequest& unary_request) {
  if (!absl::GetFlag(FLAGS_token).empty()) {
    std::fprintf(stderr, "vigil-bench: --write_requests is for a server without tokens (h2load sends no credentials)\n");
    return 1;
  }
  auto write = [&dir](const std::string& name, const std::string& bytes) {
    FILE* f = std::fopen((dir + "/" + name).c_str(), "wb");
    const bool ok = f != nullptr && std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    return (f == nullptr || std::fclose(f) == 0) && ok;
  };
  size_t health_bytes = 0;
  {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckResponse response;
    if (!health.Check(&context, grpc::health::v1::HealthCheckRequest(), &response).ok()) {
      std::fprintf(stderr, "vigil-bench: the health check failed\n");
      return 1;
    }
    health_bytes = response.ByteSizeLong() + 5;
  }
  std::string failed;
  const auto answer = AskBothWays(stub, request, unary_request, "", &failed);
  if (!answer.has_value()) {
    std::fprintf(stderr, "vigil-bench: %s failed\n", failed.c_str());
    return 1;
  }
  const size_t unary_bytes = answer->unary.ByteSizeLong() + 5;
  const size_t stream_bytes = answer->stream_bytes;
  const std::string manifest = absl::StrCat(
      "health\t/grpc.health.v1.Health/Check\thealth.grpc\t", health_bytes, "\n",
      "stream\t/vigil.v1.DecisionSupport/CheckMedications\tstream.grpc\t", stream_bytes, "\n",
      "unary\t/vigil.v1.DecisionSupport/CheckMedicationsUnary\tunary.grpc\t", unary_bytes, "\n");
  if (!write("health.grpc", GrpcFramed(grpc::health::v1::HealthCheckRequest())) ||
      !write("stream.grpc", GrpcFramed(request)) || !write("unary.grpc", GrpcFramed(unary_request)) ||
      !write("workloads.tsv", manifest)) {
    std::fprintf(stderr, "vigil-bench: cannot write into %s\n", dir.c_str());
    return 1;
  }
  return 0;
}

void Report(const char* name, const Result& r) {
  std::printf("%-8s  %9.0f req/s  p50 %8.1f us  p90 %8.1f us  p99 %8.1f us  p99.9 %8.1f us  (%zu calls, %lld errors)\n",
              name, static_cast<double>(r.latencies_us.size()) / r.seconds, Pct(r.latencies_us, 0.5),
              Pct(r.latencies_us, 0.9), Pct(r.latencies_us, 0.99), Pct(r.latencies_us, 0.999), r.latencies_us.size(),
              static_cast<long long>(r.errors));
  const double calls = std::max<double>(1, static_cast<double>(r.latencies_us.size()));
  if (absl::GetFlag(FLAGS_server_pid) > 0) {
    std::printf("%-8s  cpu per call: server %.1f us, load generator %.1f us\n", name,
                r.server_cpu_seconds * 1e6 / calls, r.client_cpu_seconds * 1e6 / calls);
  } else {
    std::printf("%-8s  cpu per call: load generator %.1f us\n", name, r.client_cpu_seconds * 1e6 / calls);
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int channels = std::max(1, absl::GetFlag(FLAGS_channels));
  const int in_flight = std::max(1, absl::GetFlag(FLAGS_in_flight));
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const std::string token = absl::GetFlag(FLAGS_token);
  std::vector<std::unique_ptr<vigil::v1::DecisionSupport::Stub>> checks;
  std::vector<std::unique_ptr<grpc::health::v1::Health::Stub>> healths;
  for (int i = 0; i < channels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", i);  // distinct connections
    auto channel = grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials(), args);
    checks.push_back(vigil::v1::DecisionSupport::NewStub(channel));
    healths.push_back(grpc::health::v1::Health::NewStub(channel));
  }
  const auto request = CheckRequest();
  // The unary method's request has the same fields.
  vigil::v1::CheckMedicationsUnaryRequest unary_request;
  unary_request.ParseFromString(request.SerializeAsString());
  if (const std::string dir = absl::GetFlag(FLAGS_write_requests); !dir.empty()) {
    return WriteRequests(dir, *checks[0], *healths[0], request, unary_request);
  }
  const grpc::health::v1::HealthCheckRequest health_request;
  auto run_health = [&](double secs) {
    return Drive(in_flight, secs, [&](int slot, std::function<void(bool)> done) {
      auto* context = new grpc::ClientContext();
      auto* response = new grpc::health::v1::HealthCheckResponse();
      healths[static_cast<size_t>(slot % channels)]->async()->Check(
          context, &health_request, response, [context, response, done](grpc::Status status) {
            delete context;
            delete response;
            done(status.ok());
          });
    });
  };
  auto run_check = [&](double secs) {
    return Drive(in_flight, secs, [&](int slot, std::function<void(bool)> done) {
      new CheckCall(checks[static_cast<size_t>(slot % channels)].get(), request, token,
                    &g_first_alert_us[static_cast<size_t>(slot)], std::move(done));
    });
  };
  std::vector<std::unique_ptr<google::protobuf::Arena>> arenas;
  for (int i = 0; i < in_flight; ++i) {
    arenas.push_back(std::make_unique<google::protobuf::Arena>());
  }
  auto run_unary = [&](double secs) {
    return Drive(in_flight, secs, [&](int slot, std::function<void(bool)> done) {
      auto* context = new grpc::ClientContext();
      if (!token.empty()) {
        context->AddMetadata("authorization", "Bearer " + token);
      }
      // Each slot has one call at a time: its answer is parsed onto the
      // slot's arena, which is reset when the call is done (as a client
      // that cares about allocation would; the server does the same).
      google::protobuf::Arena* arena = arenas[static_cast<size_t>(slot)].get();
      auto* response = google::protobuf::Arena::CreateMessage<vigil::v1::CheckMedicationsUnaryResponse>(arena);
      checks[static_cast<size_t>(slot % channels)]->async()->CheckMedicationsUnary(
          context, &unary_request, response, [context, arena, done](grpc::Status status) {
            delete context;
            arena->Reset();
            done(status.ok());
          });
    });
  };
  const std::string workloads = absl::GetFlag(FLAGS_workloads);
  const bool want_health = workloads.find("health") != std::string::npos;
  const bool want_stream = workloads.find("stream") != std::string::npos;
  const bool want_unary = workloads.find("unary") != std::string::npos;
  auto skip = [](double) { return Result(); };
  auto health_or_skip = [&](double secs) { return want_health ? run_health(secs) : skip(secs); };
  auto stream_or_skip = [&](double secs) { return want_stream ? run_check(secs) : skip(secs); };
  auto unary_or_skip = [&](double secs) { return want_unary ? run_unary(secs) : skip(secs); };
  g_first_alert_us.assign(static_cast<size_t>(in_flight), {});
  PrintAnswerSize(*checks[0], request, unary_request, token);
  // Warm up each, then measure them in alternating rounds.
  health_or_skip(0.5);
  stream_or_skip(0.5);
  unary_or_skip(0.5);
  g_first_alert_us.assign(static_cast<size_t>(in_flight), {});
  const int rounds = std::max(1, absl::GetFlag(FLAGS_rounds));
  Result floor;
  Result check;
  Result unary;
  auto merge = [](Result* into, const Result& r) {
    into->latencies_us.insert(into->latencies_us.end(), r.latencies_us.begin(), r.latencies_us.end());
    into->seconds += r.seconds;
    into->errors += r.errors;
    into->server_cpu_seconds += r.server_cpu_seconds;
    into->client_cpu_seconds += r.client_cpu_seconds;
  };
  for (int round = 0; round < rounds; ++round) {
    const double secs = seconds / rounds;
    if (round % 2 == 0) {
      merge(&floor, Measured(health_or_skip, secs));
      merge(&check, Measured(stream_or_skip, secs));
      merge(&unary, Measured(unary_or_skip, secs));
    } else {
      merge(&unary, Measured(unary_or_skip, secs));
      merge(&check, Measured(stream_or_skip, secs));
      merge(&floor, Measured(health_or_skip, secs));
    }
  }
  for (Result* r : {&floor, &check, &unary}) {
    std::sort(r->latencies_us.begin(), r->latencies_us.end());
  }
  std::printf("server %s, %d channels, %d in flight, %.1f s each in %d alternating rounds\n",
              absl::GetFlag(FLAGS_server).c_str(), channels, in_flight, seconds, rounds);
  if (want_health) Report("health", floor);
  if (want_stream) Report("stream", check);
  if (want_unary) Report("unary", unary);
  auto ratios = [&floor](const char* name, const Result& r) {
    std::printf("ratio %s/health: p50 %.2f  p99 %.2f  throughput %.2f\n", name,
                Pct(r.latencies_us, 0.5) / Pct(floor.latencies_us, 0.5),
                Pct(r.latencies_us, 0.99) / Pct(floor.latencies_us, 0.99),
                (static_cast<double>(r.latencies_us.size()) / r.seconds) /
                    (static_cast<double>(floor.latencies_us.size()) / floor.seconds));
  };
  if (want_health && want_stream) ratios("stream", check);
  if (want_health && want_unary) ratios("unary", unary);
  if (want_stream && want_unary) {
    std::printf("ratio stream/unary: p50 %.2f  p99 %.2f  throughput %.2f\n",
                Pct(check.latencies_us, 0.5) / Pct(unary.latencies_us, 0.5),
                Pct(check.latencies_us, 0.99) / Pct(unary.latencies_us, 0.99),
                (static_cast<double>(check.latencies_us.size()) / check.seconds) /
                    (static_cast<double>(unary.latencies_us.size()) / unary.seconds));
  }
  if (want_stream) {
    std::vector<double> first;
    for (const auto& v : g_first_alert_us) {
      first.insert(first.end(), v.begin(), v.end());
    }
    std::sort(first.begin(), first.end());
    if (!first.empty()) {
      std::printf("stream first alert: p50 %.1f us  p99 %.1f us\n", Pct(first, 0.5), Pct(first, 0.99));
    }
  }
  return check.errors == 0 && floor.errors == 0 && unary.errors == 0 ? 0 : 1;
}
