// Fixed-size chunks recycled through a free list: the data path takes a chunk when a read
// needs one and gives it back as soon as the bytes are written, so an idle connection holds
// no buffer at all and a busy one reuses warm memory instead of calling malloc per read.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace strait {

class BufferPool {
 public:
  static constexpr size_t kChunkSize = 64 * 1024;
  // Chunks kept for reuse beyond this are freed, so a burst does not pin memory forever.
  static constexpr size_t kMaxFree = 256;

  ~BufferPool();
  char* Take();
  void Give(char* chunk);

  uint64_t allocated() const { return allocated_; }
  uint64_t in_use() const { return in_use_; }

 private:
  std::vector<char*> free_;
  uint64_t allocated_ = 0;  // chunks currently allocated (free + in use)
  uint64_t in_use_ = 0;
};

}  // namespace strait
