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
      Renew();
      owner_->Return(this);
    }

   private:
    static google::protobuf::ArenaOptions Options(char* block, size_t size) {
      google::protobuf::ArenaOptions options;
      options.initial_block = block;
      options.initial_block_size = size;
      return options;
    }

    void Renew() {
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_));
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

}  // namespace vigil

#endif  // VIGIL_SERVER_SERVICE_ARENA_POOL_H_
