// Fixed-size chunks recycled through a free list. The data path takes a chunk when a read
// needs room and gives it back as soon as its bytes are written, so an idle connection holds
// no buffer at all and a busy one reuses warm memory instead of calling malloc per read.
#pragma once
#include <cstddef>
#include <cstdint>

namespace strait {

// One pooled buffer. The header lives in the same allocation as the bytes, and `next` lets
// queues chain chunks without a container: an empty queue is two null pointers, which keeps
// an idle pipe at zero buffer memory (std::deque would allocate a block per queue up front).
struct Chunk {
  Chunk* next;
  uint32_t len;  // bytes filled
  uint32_t off;  // bytes already written out
  char data[1];  // kChunkSize bytes follow (allocated with the header)
};

class BufferPool {
 public:
  static constexpr size_t kChunkSize = 64 * 1024;
  // Free chunks kept for reuse beyond this are returned to malloc, so a burst does not pin
  // memory forever; 128 x 64 KiB = 8 MiB, the working set of 4 busy pipes at 1 MiB per direction.
  static constexpr size_t kMaxFree = 128;

  BufferPool() = default;
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool();

  // Never returns null: a failed allocation aborts like operator new would, since the data
  // path has no sensible way to carry on without memory.
  Chunk* Take();
  void Give(Chunk* c);

  uint64_t allocated() const { return allocated_; }  // free + in use
  uint64_t in_use() const { return in_use_; }

 private:
  Chunk* free_ = nullptr;
  size_t free_count_ = 0;
  uint64_t allocated_ = 0;
  uint64_t in_use_ = 0;
};

}  // namespace strait
