// Compiled only by the ThreadSafetyAnalysisCatchesAnUnguardedAccess test,
// which expects clang with the project's -Wthread-safety -Werror=thread-safety
// to refuse it: a member guarded by a mutex, written without the lock.
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

class Counter {
 public:
  void Increment() { ++count_; }  // No lock: the analysis must refuse this.

 private:
  absl::Mutex mu_;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
};

int main() {
  Counter c;
  c.Increment();
  return 0;
}
