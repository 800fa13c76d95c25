// A thread the application owns, for work that must not run on gRPC's
// callback threads (loading files, database I/O). Tasks run in order.
#ifndef VIGIL_SERVER_COMMON_WORKER_H_
#define VIGIL_SERVER_COMMON_WORKER_H_

#include <deque>
#include <functional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace vigil {

class Worker {
 public:
  Worker() : thread_([this] { Run(); }) {}
  ~Worker() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Tasks waiting to run.
  size_t queued() const {
    absl::MutexLock lock(&mu_);
    return tasks_.size();
  }

  // Queues `task`. Tasks queued before destruction still run.
  void Post(std::function<void()> task) {
    absl::MutexLock lock(&mu_);
    tasks_.push_back(std::move(task));
  }

 private:
  void Run() {
    while (true) {
      std::function<void()> task;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](Worker* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) { return w->stopping_ || !w->tasks_.empty(); }, this));
        if (tasks_.empty()) {
          return;  // Stopping, and nothing left to do.
        }
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_COMMON_WORKER_H_
