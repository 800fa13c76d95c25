// Per-caller limits: a token bucket of requests per caller name, and the
// slots (subscriptions) each caller may hold at once.
#ifndef VIGIL_SERVER_SECURITY_RATE_LIMITER_H_
#define VIGIL_SERVER_SECURITY_RATE_LIMITER_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/strings/str_cat.h"
#include <algorithm>

namespace vigil {

class RateLimiter {
 public:
  // `per_second` requests a second on average, bursts up to `burst`;
  // per_second <= 0 disables the limit.
  RateLimiter(double per_second, double burst) : rate_(per_second), burst_(burst) {}

  // OK, or RESOURCE_EXHAUSTED when `caller` is over its rate.
  absl::Status Admit(const std::string& caller, absl::Time now = absl::Now()) {
    if (rate_ <= 0) {
      return absl::OkStatus();
    }
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = buckets_.try_emplace(caller, Bucket{burst_, now});
    Bucket& b = it->second;
    b.tokens = std::min(burst_, b.tokens + absl::ToDoubleSeconds(now - b.last) * rate_);
    b.last = now;
    if (b.tokens < 1.0) {
      return absl::ResourceExhaustedError(
          absl::StrCat("caller '", caller, "' is over its rate limit of ", rate_, " requests a second; retry later"));
    }
    b.tokens -= 1.0;
    return absl::OkStatus();
  }

 private:
  struct Bucket {
    double tokens;
    absl::Time last;
  };
  const double rate_;
  const double burst_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

// Slots each caller may hold at once (open subscriptions, checks in
// flight), so that one caller cannot take every slot the server has.
class CallerSlots {
 public:
  // `per_caller` slots for each caller; 0 disables the limit. `what` names
  // a slot in messages ("subscriptions").
  CallerSlots(size_t per_caller, std::string what) : per_caller_(per_caller), what_(std::move(what)) {}

  // Takes a slot for `caller`: OK, or RESOURCE_EXHAUSTED when it holds
  // its maximum already.
  absl::Status Acquire(const std::string& caller) {
    absl::MutexLock lock(&mu_);
    size_t& held = held_[caller];
    if (per_caller_ > 0 && held >= per_caller_) {
      return absl::ResourceExhaustedError(absl::StrCat("caller '", caller, "' holds its maximum of ", per_caller_,
                                                       " ", what_, "; retry later"));
    }
    ++held;
    return absl::OkStatus();
  }

  // A slot held until the handle (and every copy of it) is destroyed.
  using Held = std::shared_ptr<const void>;

  // Acquire, as a handle that gives the slot back when destroyed.
  absl::StatusOr<Held> Hold(const std::string& caller) {
    if (auto st = Acquire(caller); !st.ok()) {
      return st;
    }
    return Held(nullptr, [this, caller](const void*) { Release(caller); });
  }

  // Gives back a slot taken by Acquire.
  void Release(const std::string& caller) {
    absl::MutexLock lock(&mu_);
    auto it = held_.find(caller);
    if (it != held_.end() && --it->second == 0) {
      held_.erase(it);
    }
  }

 private:
  const size_t per_caller_;
  const std::string what_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, size_t> held_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vigil

#endif  // VIGIL_SERVER_SECURITY_RATE_LIMITER_H_
