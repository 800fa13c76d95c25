// Holds the knowledge base that is serving, so it can be replaced while
// checks run: readers take a reference and finish on the base they took.
#ifndef VIGIL_SERVER_KB_HOLDER_H_
#define VIGIL_SERVER_KB_HOLDER_H_

#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/kb/knowledge_base.h"

namespace vigil {

class KnowledgeBaseHolder {
 public:
  explicit KnowledgeBaseHolder(std::shared_ptr<const KnowledgeBase> kb) : kb_(std::move(kb)) {}

  // The serving base; never null.
  std::shared_ptr<const KnowledgeBase> Get() const {
    absl::MutexLock lock(&mu_);
    return kb_;
  }

  // Replaces the serving base. Checks in flight keep the one they took.
  void Set(std::shared_ptr<const KnowledgeBase> kb) {
    absl::MutexLock lock(&mu_);
    kb_ = std::move(kb);
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const KnowledgeBase> kb_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vigil

#endif  // VIGIL_SERVER_KB_HOLDER_H_
