// Metrics in the Prometheus text format: RPC counts, codes and latencies by
// method, alerts by kind and severity, and gauges read when scraped.
#ifndef VIGIL_SERVER_COMMON_METRICS_H_
#define VIGIL_SERVER_COMMON_METRICS_H_

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"

namespace vigil {

class Metrics {
 public:
  // Upper bounds of the latency histogram, in seconds.
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1.0,  5.0};

  // The methods the server serves ("/vigil.v1.Patients/PutPatient", ...).
  // Once set, any other method is counted as "unknown", so that callers
  // cannot grow the exposition with names of their own.
  void SetKnownMethods(const std::vector<std::string>& methods);

  // One finished RPC.
  void ObserveRpc(const std::string& method, const std::string& code, double seconds);

  // A call refused without an audit record (a peer past its allowance of
  // failed calls).
  void CountUnrecordedRejection() { unrecorded_rejections_.fetch_add(1, std::memory_order_relaxed); }

  // `n` alerts of one kind and severity sent by a check.
  void CountAlerts(const std::string& kind, const std::string& severity, uint64_t n = 1);

  // RPCs started and not yet finished (the interceptor counts them).
  void CallStarted() { in_flight_.fetch_add(1, std::memory_order_relaxed); }
  void CallEnded() { in_flight_.fetch_sub(1, std::memory_order_relaxed); }
  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

  // A gauge whose samples (label text, value) are read at each scrape.
  using GaugeFn = std::function<std::vector<std::pair<std::string, double>>()>;
  void AddGauge(const std::string& name, const std::string& help, GaugeFn fn);

  // The exposition text.
  std::string Render() const;

 private:
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};
    uint64_t count = 0;
    double sum = 0;
  };
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> unrecorded_rejections_{0};
  mutable absl::Mutex mu_;
  absl::flat_hash_set<std::string> known_methods_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, uint64_t> rpcs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Histogram> latency_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, uint64_t> alerts_ ABSL_GUARDED_BY(mu_);
  std::vector<std::tuple<std::string, std::string, GaugeFn>> gauges_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vigil

#endif  // VIGIL_SERVER_COMMON_METRICS_H_
