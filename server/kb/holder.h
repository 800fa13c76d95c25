// Holds the knowledge base that is serving and reloads it: a new base is
// loaded and validated beside the serving one, then swapped in atomically.
// Readers take a reference and finish on the base they took.
#ifndef VIGIL_SERVER_KB_HOLDER_H_
#define VIGIL_SERVER_KB_HOLDER_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/kb/knowledge_base.h"
#include "server/kb/loader.h"

namespace vigil {

class KnowledgeBaseHolder {
 public:
  // Serves `kb`; Reload() loads again from `spec`.
  KnowledgeBaseHolder(std::shared_ptr<const KnowledgeBase> kb, KnowledgeBaseSpec spec = {})
      : spec_(std::move(spec)), kb_(std::move(kb)), serving_since_(absl::Now()) {}

  // The serving base; never null.
  std::shared_ptr<const KnowledgeBase> Get() const {
    absl::MutexLock lock(&mu_);
    return kb_;
  }

  // When the serving base was swapped in.
  absl::Time serving_since() const {
    absl::MutexLock lock(&mu_);
    return serving_since_;
  }

  // The outcome of a successful reload.
  struct Reloaded {
    std::string previous_version;
    std::shared_ptr<const KnowledgeBase> kb;
  };

  // Loads the base again from its spec. On success the new base serves from
  // now on; on failure the old one keeps serving and the status says why
  // (FailedPrecondition with every problem). Reloads are serialized; this
  // blocks for the load, so never call it on a gRPC callback thread.
  absl::StatusOr<Reloaded> Reload() {
    absl::MutexLock reload_lock(&reload_mu_);
    auto loaded = LoadKnowledgeBase(spec_);
    if (!loaded.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat(loaded.status().message(), "\nthe previous knowledge base keeps serving"));
    }
    Reloaded out;
    {
      absl::MutexLock lock(&mu_);
      out.previous_version = kb_->version();
      kb_ = *loaded;
      serving_since_ = absl::Now();
    }
    out.kb = *std::move(loaded);
    return out;
  }

 private:
  const KnowledgeBaseSpec spec_;
  absl::Mutex reload_mu_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const KnowledgeBase> kb_ ABSL_GUARDED_BY(mu_);
  absl::Time serving_since_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vigil

#endif  // VIGIL_SERVER_KB_HOLDER_H_
