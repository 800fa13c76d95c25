// Protobuf arenas whose first block is reused from call to call: for the
// request and response of a unary callback method (PooledArenaAllocator) and
// for what no MessageAllocator covers (ArenaPool: the streamed check's
// answer).
//
// A check builds hundreds of small objects (alerts, their evidence and
// sources, the request's parsed patient): on an arena they are carved from
// one block and freed together when the call ends, instead of one heap
// allocation and one free each; and a call that fits in the first block
// makes no large heap allocation (a large malloc also makes glibc
// consolidate its fast bins: measured at 5% of the server's CPU for the
// streamed check).
#ifndef VIGIL_SERVER_SERVICE_ARENA_POOL_H_
#define VIGIL_SERVER_SERVICE_ARENA_POOL_H_

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "google/protobuf/arena.h"
#include "grpcpp/support/message_allocator.h"

namespace vigil {
namespace arena_pool_internal {

// An arena that starts on a block of its own, kept across resets.
struct BlockArena {
  explicit BlockArena(size_t bytes) : block(new char[bytes]), arena(Options(block.get(), bytes)) {}

  // Frees what the last call built and keeps the first block, which becomes
  // the calling thread's. Protobuf gives each thread its own part of an
  // arena, and the first block is the part of the thread that last reset
  // it: any other thread would allocate from fresh heap blocks. So whoever
  // takes an arena from a pool resets it again, on the thread that uses it.
  void Reset() { arena.Reset(); }

  static google::protobuf::ArenaOptions Options(char* first_block, size_t size) {
    google::protobuf::ArenaOptions options;
    options.initial_block = first_block;
    options.initial_block_size = size;
    return options;
  }

  const std::unique_ptr<char[]> block;
  google::protobuf::Arena arena;
};

// At most `max` idle objects kept for reuse; the others are deleted.
template <typename T>
class IdleList {
 public:
  explicit IdleList(size_t max) : max_(max) {}
  ~IdleList() {
    absl::MutexLock lock(&mu_);
    for (T* item : idle_) {
      delete item;
    }
  }
  IdleList(const IdleList&) = delete;
  IdleList& operator=(const IdleList&) = delete;

  // An idle object, or nullptr.
  T* Pop() {
    absl::MutexLock lock(&mu_);
    if (idle_.empty()) {
      return nullptr;
    }
    T* item = idle_.back();
    idle_.pop_back();
    return item;
  }

  // Keeps `item` for reuse, or deletes it when `max` are already kept.
  void Push(T* item) {
    {
      absl::MutexLock lock(&mu_);
      if (idle_.size() < max_) {
        idle_.push_back(item);
        return;
      }
    }
    delete item;
  }

 private:
  const size_t max_;
  absl::Mutex mu_;
  std::vector<T*> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace arena_pool_internal

// Set on a method with its generated SetMessageAllocatorFor_<Method>(); the
// allocator must outlive the server.
template <typename Request, typename Response>
class PooledArenaAllocator final : public grpc::MessageAllocator<Request, Response> {
 public:
  // Each arena starts with `block_bytes` of its own (larger messages grow
  // it from the heap for that call only); at most `max_pooled` idle arenas
  // are kept.
  explicit PooledArenaAllocator(size_t block_bytes = 32 * 1024, size_t max_pooled = 256)
      : block_bytes_(block_bytes), idle_(max_pooled) {}

  PooledArenaAllocator(const PooledArenaAllocator&) = delete;
  PooledArenaAllocator& operator=(const PooledArenaAllocator&) = delete;

  grpc::MessageHolder<Request, Response>* AllocateMessages() override {
    if (Holder* holder = idle_.Pop(); holder != nullptr) {
      holder->Renew();
      return holder;
    }
    return new Holder(this);
  }

 private:
  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    explicit Holder(PooledArenaAllocator* owner) : owner_(owner), arena_(owner->block_bytes_) { Renew(); }

    // Called by gRPC when the call is done with both messages.
    void Release() override {
      arena_.Reset();
      owner_->idle_.Push(this);
    }

    // New messages for the next call, on the thread that takes the holder
    // (see BlockArena::Reset).
    void Renew() {
      arena_.Reset();
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_.arena));
      this->set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_.arena));
    }

   private:
    PooledArenaAllocator* const owner_;
    arena_pool_internal::BlockArena arena_;
  };

  const size_t block_bytes_;
  arena_pool_internal::IdleList<Holder> idle_;
};

// A pool of arenas, each leased to one call.
class ArenaPool {
 public:
  class Lease;

  explicit ArenaPool(size_t block_bytes = 32 * 1024, size_t max_pooled = 256)
      : block_bytes_(block_bytes), idle_(max_pooled) {}
  ArenaPool(const ArenaPool&) = delete;
  ArenaPool& operator=(const ArenaPool&) = delete;

  // An arena of the pool until the lease is destroyed (then reset and
  // returned). A lease is used on the thread that takes it. The pool must
  // outlive its leases.
  Lease Take();

 private:
  using Pooled = arena_pool_internal::BlockArena;

  void Return(Pooled* pooled) {
    pooled->Reset();
    idle_.Push(pooled);
  }

  const size_t block_bytes_;
  arena_pool_internal::IdleList<Pooled> idle_;
};

class ArenaPool::Lease {
 public:
  Lease(ArenaPool* pool, Pooled* pooled) : pool_(pool), pooled_(pooled) {}
  ~Lease() {
    if (pooled_ != nullptr) {
      pool_->Return(pooled_);
    }
  }
  Lease(Lease&& other) noexcept : pool_(other.pool_), pooled_(other.pooled_) { other.pooled_ = nullptr; }
  Lease& operator=(Lease&&) = delete;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  google::protobuf::Arena* arena() const { return &pooled_->arena; }

 private:
  ArenaPool* const pool_;
  Pooled* pooled_;
};

inline ArenaPool::Lease ArenaPool::Take() {
  if (Pooled* pooled = idle_.Pop(); pooled != nullptr) {
    pooled->Reset();  // the first block becomes this thread's
    return Lease(this, pooled);
  }
  return Lease(this, new Pooled(block_bytes_));
}

}  // namespace vigil

#endif  // VIGIL_SERVER_SERVICE_ARENA_POOL_H_
