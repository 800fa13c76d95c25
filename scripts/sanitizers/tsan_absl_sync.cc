// Makes Abseil's synchronization visible to ThreadSanitizer when Abseil
// itself is not instrumented (Debian's libabsl_synchronization.so is not).
// TSan sees neither the atomics nor the futex waits inside an uninstrumented
// absl::Mutex, so without this every access that a Mutex guards, in Vigil and
// in gRPC (whose locks are absl::Mutex), is reported as a data race.
//
// scripts/sanitize.sh builds this into a shared library and LD_PRELOADs it
// into the TSan test run (tests and the servers they spawn). Each function
// below interposes the library's exported one of the same name, calls it
// through dlsym(RTLD_NEXT), and tells TSan about the happens-before edge it
// creates: acquire after taking a lock or returning from a wait, release
// before unlocking or waiting, and both around a wait condition evaluated
// inside those calls. It adds edges only, so it can hide a missing lock
// nowhere: an access without the Mutex still races with one under it.
//
// Not modelled: reader/writer exclusion (a reader lock is treated as a full
// acquire/release, which can hide a race between two readers, and readers
// only read) and lock-order checking (TSan's deadlock detector never sees
// these locks either way).
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

// From the TSan runtime of the process. Weak, so that the non-TSan processes
// that inherit LD_PRELOAD (ctest, shells, tools) still load this library.
extern "C" void __tsan_acquire(void* addr) __attribute__((weak));
extern "C" void __tsan_release(void* addr) __attribute__((weak));

namespace {

#define VIGIL_STRINGIFY_INNER(x) #x
#define VIGIL_STRINGIFY(x) VIGIL_STRINGIFY_INNER(x)

// The real function `suffix` of absl's inline namespace, e.g. "5Mutex4LockEv"
// for absl::Mutex::Lock(); `prefix` is "_ZN" or "_ZNK" (const members).
template <typename Fn>
Fn Real(const char* prefix, const char* suffix) {
  const std::string ns = VIGIL_STRINGIFY(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name = std::string(prefix) + "4absl" + std::to_string(ns.size()) + ns + suffix;
  void* fn = dlsym(RTLD_NEXT, name.c_str());
  if (fn == nullptr) {
    std::fprintf(stderr, "tsan_absl_sync: %s not found: %s\n", name.c_str(), dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

void Acquire(const void* sync) {
  if (__tsan_acquire != nullptr) {
    __tsan_acquire(const_cast<void*>(sync));
  }
}

void Release(const void* sync) {
  if (__tsan_release != nullptr) {
    __tsan_release(const_cast<void*>(sync));
  }
}

// The Mutex whose real Lock/Unlock/Await call this thread is inside. absl
// evaluates wait conditions (Condition::Eval below) inside those calls: the
// releasing thread evaluates other threads' conditions, and a waiter or a
// LockWhen caller its own, before the annotations around the call run.
thread_local const absl::Mutex* inside = nullptr;

// Marks the calling thread as inside a real call on `mu` for its lifetime.
class Inside {
 public:
  explicit Inside(const absl::Mutex* mu) : saved_(inside) { inside = mu; }
  ~Inside() { inside = saved_; }
  Inside(const Inside&) = delete;
  Inside& operator=(const Inside&) = delete;

 private:
  const absl::Mutex* const saved_;
};

}  // namespace

// Each real function is looked up once (a function-local static).
#define VIGIL_REAL(type, prefix, suffix) static const auto real = Real<type>(prefix, suffix)

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  VIGIL_REAL(void (*)(Mutex*), "_ZN", "5Mutex4LockEv");
  real(this);
  Acquire(this);
}

void Mutex::ReaderLock() {
  VIGIL_REAL(void (*)(Mutex*), "_ZN", "5Mutex10ReaderLockEv");
  real(this);
  Acquire(this);
}

bool Mutex::TryLock() {
  VIGIL_REAL(bool (*)(Mutex*), "_ZN", "5Mutex7TryLockEv");
  const bool locked = real(this);
  if (locked) {
    Acquire(this);
  }
  return locked;
}

bool Mutex::ReaderTryLock() {
  VIGIL_REAL(bool (*)(Mutex*), "_ZN", "5Mutex13ReaderTryLockEv");
  const bool locked = real(this);
  if (locked) {
    Acquire(this);
  }
  return locked;
}

void Mutex::Unlock() {
  VIGIL_REAL(void (*)(Mutex*), "_ZN", "5Mutex6UnlockEv");
  Release(this);
  Inside scope(this);
  real(this);
}

void Mutex::ReaderUnlock() {
  VIGIL_REAL(void (*)(Mutex*), "_ZN", "5Mutex12ReaderUnlockEv");
  Release(this);
  Inside scope(this);
  real(this);
}

// A condition is evaluated with the Mutex held, whichever thread does it:
// it sees the last holder's writes, and its reads are released to the next
// holder (the woken waiter among them) like the rest of a critical section.
bool Condition::Eval() const {
  VIGIL_REAL(bool (*)(const Condition*), "_ZNK", "9Condition4EvalEv");
  if (inside != nullptr) {
    Acquire(inside);
  }
  const bool met = real(this);
  if (inside != nullptr) {
    Release(inside);
  }
  return met;
}

void Mutex::LockWhen(const Condition& cond) {
  VIGIL_REAL(void (*)(Mutex*, const Condition&), "_ZN", "5Mutex8LockWhenERKNS0_9ConditionE");
  Inside scope(this);
  real(this, cond);
  Acquire(this);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  VIGIL_REAL(void (*)(Mutex*, const Condition&), "_ZN", "5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Inside scope(this);
  real(this, cond);
  Acquire(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  VIGIL_REAL(bool (*)(Mutex*, const Condition&, absl::Duration), "_ZN",
             "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Inside scope(this);
  const bool met = real(this, cond, timeout);
  Acquire(this);  // Held on return either way.
  return met;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  VIGIL_REAL(bool (*)(Mutex*, const Condition&, absl::Duration), "_ZN",
             "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Inside scope(this);
  const bool met = real(this, cond, timeout);
  Acquire(this);
  return met;
}

// Await releases the lock while it waits and holds it again on return.
void Mutex::Await(const Condition& cond) {
  VIGIL_REAL(void (*)(Mutex*, const Condition&), "_ZN", "5Mutex5AwaitERKNS0_9ConditionE");
  Release(this);
  Inside scope(this);
  real(this, cond);
  Acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  VIGIL_REAL(bool (*)(Mutex*, const Condition&, absl::Duration), "_ZN",
             "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Release(this);
  Inside scope(this);
  const bool met = real(this, cond, timeout);
  Acquire(this);
  return met;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  VIGIL_REAL(bool (*)(Mutex*, const Condition&, absl::Time), "_ZN",
             "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Release(this);
  Inside scope(this);
  const bool met = real(this, cond, deadline);
  Acquire(this);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  VIGIL_REAL(void (*)(CondVar*, Mutex*), "_ZN", "7CondVar4WaitEPNS0_5MutexE");
  Release(mu);
  Inside scope(mu);
  real(this, mu);
  Acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  VIGIL_REAL(bool (*)(CondVar*, Mutex*, absl::Duration), "_ZN",
             "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  Release(mu);
  Inside scope(mu);
  const bool timed_out = real(this, mu, timeout);
  Acquire(mu);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  VIGIL_REAL(bool (*)(CondVar*, Mutex*, absl::Time), "_ZN",
             "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Release(mu);
  Inside scope(mu);
  const bool timed_out = real(this, mu, deadline);
  Acquire(mu);
  return timed_out;
}

// A Notification orders everything before Notify() before every waiter that
// sees it.
void Notification::Notify() {
  VIGIL_REAL(void (*)(Notification*), "_ZN", "12Notification6NotifyEv");
  Release(this);
  real(this);
}

void Notification::WaitForNotification() const {
  VIGIL_REAL(void (*)(const Notification*), "_ZNK", "12Notification19WaitForNotificationEv");
  real(this);
  Acquire(this);
}

bool Notification::WaitForNotificationWithTimeout(absl::Duration timeout) const {
  VIGIL_REAL(bool (*)(const Notification*, absl::Duration), "_ZNK",
             "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool notified = real(this, timeout);
  if (notified) {
    Acquire(this);
  }
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
