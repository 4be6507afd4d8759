// A small fixed-size thread pool for per-limb parallelism. Work items are indices; each index is
// run exactly once and writes only its own outputs, so results do not depend on the number of
// threads or on scheduling (deterministic output).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace veil::he {

class ThreadPool {
 public:
  // threads <= 1 runs everything on the calling thread.
  explicit ThreadPool(int threads = 1);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(i) for every i in [0, count) and returns when all are done. A call made from inside
  // a running task (nested) runs serially on that thread.
  void parallel_for(size_t count, const std::function<void(size_t)>& fn);
  // The same for light, memory-bound items of about `words_per_item` coefficient words each
  // (element-wise ops): below kMinParallelWords in total the hand-off to the workers costs more
  // than it saves (add at N = 8192 took 2.5x longer on two threads), so it runs serially.
  static constexpr size_t kMinParallelWords = size_t{1} << 17;
  void parallel_for(size_t count, size_t words_per_item, const std::function<void(size_t)>& fn);

 private:
  void worker_loop();
  void run_items();

  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // one parallel_for at a time
  std::mutex mutex_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(size_t)>* job_ = nullptr;
  size_t count_ = 0;
  size_t next_ = 0;
  size_t finished_ = 0;
  size_t active_workers_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

}  // namespace veil::he
