// Request and response messages of a unary callback method on a protobuf
// arena, from a pool of arenas whose first block is reused from call to call.
//
// A check builds hundreds of small objects (alerts, their evidence and
// sources, the request's parsed patient): on an arena they are carved from
// one block and freed together when the call ends, instead of one heap
// allocation and one free each. Set on a method with its generated
// SetMessageAllocatorFor_<Method>(); the allocator must outlive the server.
#ifndef VIGIL_SERVER_SERVICE_ARENA_POOL_H_
#define VIGIL_SERVER_SERVICE_ARENA_POOL_H_

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "google/protobuf/arena.h"
#include "grpcpp/support/message_allocator.h"

namespace vigil {

template <typename Request, typename Response>
class PooledArenaAllocator final : public grpc::MessageAllocator<Request, Response> {
 public:
  // Each arena starts with `block_bytes` of its own (larger messages grow
  // it from the heap for that call only); at most `max_pooled` idle arenas
  // are kept.
  explicit PooledArenaAllocator(size_t block_bytes = 32 * 1024, size_t max_pooled = 256)
      : block_bytes_(block_bytes), max_pooled_(max_pooled) {}

  ~PooledArenaAllocator() override {
    absl::MutexLock lock(&mu_);
    for (Holder* holder : idle_) {
      delete holder;
    }
  }

  PooledArenaAllocator(const PooledArenaAllocator&) = delete;
  PooledArenaAllocator& operator=(const PooledArenaAllocator&) = delete;

  grpc::MessageHolder<Request, Response>* AllocateMessages() override {
    {
      absl::MutexLock lock(&mu_);
      if (!idle_.empty()) {
        Holder* holder = idle_.back();
        idle_.pop_back();
        holder->Renew();
        return holder;
      }
    }
    return new Holder(this);
  }

 private:
  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    explicit Holder(PooledArenaAllocator* owner)
        : owner_(owner), block_(new char[owner->block_bytes_]), arena_(Options(block_.get(), owner->block_bytes_)) {
      Renew();
    }

    // Called by gRPC when the call is done with both messages.
    void Release() override {
      arena_.Reset();  // frees what the call built; keeps the first block
      owner_->Return(this);
    }

    // New messages for the next call, on the thread that takes the holder.
    // Protobuf gives each thread its own part of an arena, and the first
    // block is the part of the thread that last reset it: any other thread
    // would allocate from fresh heap blocks. The taker resets it again,
    // which makes the first block its own.
    void Renew() {
      arena_.Reset();
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }

   private:
    static google::protobuf::ArenaOptions Options(char* block, size_t size) {
      google::protobuf::ArenaOptions options;
      options.initial_block = block;
      options.initial_block_size = size;
      return options;
    }

    PooledArenaAllocator* const owner_;
    const std::unique_ptr<char[]> block_;
    google::protobuf::Arena arena_;
  };

  void Return(Holder* holder) {
    {
      absl::MutexLock lock(&mu_);
      if (idle_.size() < max_pooled_) {
        idle_.push_back(holder);
        return;
      }
    }
    delete holder;
  }

  const size_t block_bytes_;
  const size_t max_pooled_;
  absl::Mutex mu_;
  std::vector<Holder*> idle_ ABSL_GUARDED_BY(mu_);
};

// A pool of protobuf arenas for what no MessageAllocator covers (the
// streamed check builds its answer on one). Each arena starts on a block of
// its own that is kept from lease to lease, so a call that fits in it makes
// no large heap allocation (a large malloc also makes glibc consolidate its
// fast bins: measured at 5% of the server's CPU for the streamed check).
class ArenaPool {
 public:
  class Lease;

  explicit ArenaPool(size_t block_bytes = 32 * 1024, size_t max_pooled = 256)
      : block_bytes_(block_bytes), max_pooled_(max_pooled) {}
  ~ArenaPool() {
    absl::MutexLock lock(&mu_);
    for (Pooled* pooled : idle_) {
      delete pooled;
    }
  }
  ArenaPool(const ArenaPool&) = delete;
  ArenaPool& operator=(const ArenaPool&) = delete;

  // An arena of the pool until the lease is destroyed (then reset and
  // returned). The pool must outlive its leases.
  Lease Take();

 private:
  struct Pooled {
    explicit Pooled(size_t bytes) : block(new char[bytes]), arena(Options(block.get(), bytes)) {}
    static google::protobuf::ArenaOptions Options(char* block, size_t size) {
      google::protobuf::ArenaOptions options;
      options.initial_block = block;
      options.initial_block_size = size;
      return options;
    }
    const std::unique_ptr<char[]> block;
    google::protobuf::Arena arena;
  };

  void Return(Pooled* pooled) {
    pooled->arena.Reset();  // frees what the call built; keeps the first block
    {
      absl::MutexLock lock(&mu_);
      if (idle_.size() < max_pooled_) {
        idle_.push_back(pooled);
        return;
      }
    }
    delete pooled;
  }

  const size_t block_bytes_;
  const size_t max_pooled_;
  absl::Mutex mu_;
  std::vector<Pooled*> idle_ ABSL_GUARDED_BY(mu_);
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
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      Pooled* pooled = idle_.back();
      idle_.pop_back();
      // The first block becomes this thread's (see PooledArenaAllocator::
      // Holder::Renew): a lease is used on the thread that takes it.
      pooled->arena.Reset();
      return Lease(this, pooled);
    }
  }
  return Lease(this, new Pooled(block_bytes_));
}

}  // namespace vigil

#endif  // VIGIL_SERVER_SERVICE_ARENA_POOL_H_
