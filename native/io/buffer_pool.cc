#include "io/buffer_pool.h"

#include <cstdlib>

namespace strait {

BufferPool::~BufferPool() {
  for (char* c : free_) std::free(c);
}

char* BufferPool::Take() {
  in_use_++;
  if (!free_.empty()) {
    char* c = free_.back();
    free_.pop_back();
    return c;
  }
  allocated_++;
  return static_cast<char*>(std::malloc(kChunkSize));
}

void BufferPool::Give(char* chunk) {
  in_use_--;
  if (free_.size() < kMaxFree) {
    free_.push_back(chunk);
    return;
  }
  allocated_--;
  std::free(chunk);
}

}  // namespace strait
