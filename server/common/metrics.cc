#include "server/common/metrics.h"

#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace vigil {
namespace {

// A label value as the exposition format requires: backslash, double quote
// and line feed escaped.
std::string Escaped(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

void Metrics::SetKnownMethods(const std::vector<std::string>& methods) {
  absl::MutexLock lock(&mu_);
  known_methods_.clear();
  known_methods_.insert(methods.begin(), methods.end());
}

void Metrics::ObserveRpc(const std::string& method_in, const std::string& code, double seconds) {
  absl::MutexLock lock(&mu_);
  static const std::string kUnknown = "unknown";
  const std::string& method = known_methods_.empty() || known_methods_.contains(method_in) ? method_in : kUnknown;
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

void Metrics::CountAlerts(const std::string& kind, const std::string& severity, uint64_t n) {
  absl::MutexLock lock(&mu_);
  alerts_[{kind, severity}] += n;
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
      absl::StrAppend(&out, "vigil_rpcs_total{method=\"", Escaped(key.first), "\",code=\"", Escaped(key.second), "\"} ", n, "\n");
    }
    absl::StrAppend(&out, "# HELP vigil_rpc_duration_seconds RPC duration (streams: until the stream ends).\n",
                    "# TYPE vigil_rpc_duration_seconds histogram\n");
    for (const auto& [method, h] : latency_) {
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        absl::StrAppend(&out, "vigil_rpc_duration_seconds_bucket{method=\"", Escaped(method), "\",le=\"",
                        absl::StrFormat("%g", kBuckets[i]), "\"} ", h.buckets[i], "\n");
      }
      absl::StrAppend(&out, "vigil_rpc_duration_seconds_bucket{method=\"", Escaped(method), "\",le=\"+Inf\"} ", h.count, "\n",
                      "vigil_rpc_duration_seconds_sum{method=\"", Escaped(method), "\"} ", absl::StrFormat("%.6f", h.sum), "\n",
                      "vigil_rpc_duration_seconds_count{method=\"", Escaped(method), "\"} ", h.count, "\n");
    }
    absl::StrAppend(&out, "# HELP vigil_alerts_total Alerts sent by checks, by kind and severity.\n",
                    "# TYPE vigil_alerts_total counter\n");
    for (const auto& [key, n] : alerts_) {
      absl::StrAppend(&out, "vigil_alerts_total{kind=\"", Escaped(key.first), "\",severity=\"", Escaped(key.second), "\"} ", n, "\n");
    }
    gauges = gauges_;
  }
  absl::StrAppend(&out, "# HELP vigil_unrecorded_rejections_total Calls refused without an audit record: a peer past ",
                  "its allowance of failed calls.\n# TYPE vigil_unrecorded_rejections_total counter\n",
                  "vigil_unrecorded_rejections_total ", unrecorded_rejections_.load(std::memory_order_relaxed), "\n");
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
