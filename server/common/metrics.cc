#include "server/common/metrics.h"

#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace vigil {

void Metrics::ObserveRpc(const std::string& method, const std::string& code, double seconds) {
  absl::MutexLock lock(&mu_);
  ++rpcs_[{method, code}];
  auto& h = latency_[method];
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) {
      ++h.buckets[i];
    }
  }
  ++h.count;
  h.sum += seconds;
}

void Metrics::CountAlert(const std::string& kind, const std::string& severity) {
  absl::MutexLock lock(&mu_);
  ++alerts_[{kind, severity}];
}

void Metrics::AddGauge(const std::string& name, const std::string& help, GaugeFn fn) {
  absl::MutexLock lock(&mu_);
  gauges_.emplace_back(name, help, std::move(fn));
}

std::string Metrics::Render() const {
  std::string out;
  std::vector<std::tuple<std::string, std::string, GaugeFn>> gauges;
  {
    absl::MutexLock lock(&mu_);
    absl::StrAppend(&out, "# HELP vigil_rpcs_total RPCs finished, by method and status code.\n",
                    "# TYPE vigil_rpcs_total counter\n");
    for (const auto& [key, n] : rpcs_) {
      absl::StrAppend(&out, "vigil_rpcs_total{method=\"", key.first, "\",code=\"", key.second, "\"} ", n, "\n");
    }
    absl::StrAppend(&out, "# HELP vigil_rpc_duration_seconds RPC duration (streams: until the stream ends).\n",
                    "# TYPE vigil_rpc_duration_seconds histogram\n");
    for (const auto& [method, h] : latency_) {
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        absl::StrAppend(&out, "vigil_rpc_duration_seconds_bucket{method=\"", method, "\",le=\"",
                        absl::StrFormat("%g", kBuckets[i]), "\"} ", h.buckets[i], "\n");
      }
      absl::StrAppend(&out, "vigil_rpc_duration_seconds_bucket{method=\"", method, "\",le=\"+Inf\"} ", h.count, "\n",
                      "vigil_rpc_duration_seconds_sum{method=\"", method, "\"} ", absl::StrFormat("%.6f", h.sum), "\n",
                      "vigil_rpc_duration_seconds_count{method=\"", method, "\"} ", h.count, "\n");
    }
    absl::StrAppend(&out, "# HELP vigil_alerts_total Alerts sent by checks, by kind and severity.\n",
                    "# TYPE vigil_alerts_total counter\n");
    for (const auto& [key, n] : alerts_) {
      absl::StrAppend(&out, "vigil_alerts_total{kind=\"", key.first, "\",severity=\"", key.second, "\"} ", n, "\n");
    }
    gauges = gauges_;
  }
  for (const auto& [name, help, fn] : gauges) {
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " gauge\n");
    for (const auto& [labels, value] : fn()) {
      absl::StrAppend(&out, name, labels.empty() ? "" : absl::StrCat("{", labels, "}"), " ",
                      absl::StrFormat("%g", value), "\n");
    }
  }
  return out;
}

}  // namespace vigil
