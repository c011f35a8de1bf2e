#include "io/buffer_pool.h"

#include <cstdlib>
#include <new>

namespace strait {

static constexpr size_t kAllocSize = offsetof(Chunk, data) + BufferPool::kChunkSize;

BufferPool::~BufferPool() {
  while (free_) {
    Chunk* c = free_;
    free_ = c->next;
    std::free(c);
  }
}

Chunk* BufferPool::Take() {
  Chunk* c = free_;
  if (c) {
    free_ = c->next;
    free_count_--;
  } else {
    c = static_cast<Chunk*>(std::malloc(kAllocSize));
    if (!c) throw std::bad_alloc();
    allocated_++;
  }
  in_use_++;
  c->next = nullptr;
  c->len = 0;
  c->off = 0;
  return c;
}

void BufferPool::Give(Chunk* c) {
  in_use_--;
  if (free_count_ < kMaxFree) {
    c->next = free_;
    free_ = c;
    free_count_++;
    return;
  }
  allocated_--;
  std::free(c);
}

}  // namespace strait
