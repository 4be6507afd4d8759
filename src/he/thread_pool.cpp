#include "thread_pool.hpp"

#include <exception>

#include "veil/he/context.hpp"

namespace veil::he {

namespace {
thread_local bool t_inside_task = false;
}

int default_thread_count() {
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::run_items() {
  // Items are claimed under the lock; the work itself runs unlocked.
  std::unique_lock<std::mutex> lock(mutex_);
  while (next_ < count_) {
    const size_t i = next_++;
    const auto* job = job_;
    lock.unlock();
    t_inside_task = true;
    (*job)(i);
    t_inside_task = false;
    lock.lock();
    ++finished_;
  }
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      ++active_workers_;
    }
    run_items();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --active_workers_;
    }
    done_cv_.notify_all();
  }
}

void ThreadPool::parallel_for(size_t count, size_t words_per_item,
                              const std::function<void(size_t)>& fn) {
  if (count * words_per_item < kMinParallelWords) {
    for (size_t i = 0; i < count; ++i) fn(i);
    return;
  }
  parallel_for(count, fn);
}

void ThreadPool::parallel_for(size_t count, const std::function<void(size_t)>& fn) {
  if (count == 0) return;
  if (workers_.empty() || count == 1 || t_inside_task) {
    for (size_t i = 0; i < count; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> call_lock(call_mutex_);
  // Exceptions inside tasks are captured and rethrown on the calling thread.
  std::exception_ptr error;
  std::mutex error_mutex;
  std::function<void(size_t)> guarded = [&](size_t i) {
    try {
      fn(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &guarded;
    count_ = count;
    next_ = 0;
    finished_ = 0;
    ++generation_;
  }
  start_cv_.notify_all();
  run_items();
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_cv_.wait(lock, [&] { return finished_ == count_ && active_workers_ == 0; });
    job_ = nullptr;
    count_ = 0;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace veil::he
