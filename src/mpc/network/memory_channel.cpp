#include <condition_variable>
#include <deque>
#include <mutex>

#include "veil/core/error.hpp"
#include "veil/mpc/network/channel.hpp"

namespace veil::mpc {

ChannelStats Channel::stats() const {
  return {bytes_sent_.load(), bytes_received_.load(), messages_sent_.load(),
          messages_received_.load()};
}

namespace {

// One direction of the link.
struct Queue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Message> items;
  bool closed = false;  // the sending end has gone
};

class MemoryChannel final : public Channel {
 public:
  MemoryChannel(std::shared_ptr<Queue> out, std::shared_ptr<Queue> in,
                std::chrono::milliseconds timeout)
      : out_(std::move(out)), in_(std::move(in)), timeout_(timeout) {}
  ~MemoryChannel() override { close(); }

  void send(Message m) override {
    uint64_t n = m.payload.size();
    {
      std::lock_guard lock(out_->mu);
      if (out_->closed) throw ProtocolError("in-memory channel: link closed (peer disconnected)");
      // Our receive side being closed means the peer is gone.
      out_->items.push_back(std::move(m));
    }
    out_->cv.notify_all();
    count_sent(n);
  }

  Message recv() override {
    std::unique_lock lock(in_->mu);
    if (!in_->cv.wait_for(lock, timeout_, [&] { return !in_->items.empty() || in_->closed; }))
      throw ProtocolError("in-memory channel: timed out waiting for the peer");
    if (in_->items.empty()) throw ProtocolError("in-memory channel: peer disconnected");
    Message m = std::move(in_->items.front());
    in_->items.pop_front();
    lock.unlock();
    count_received(m.payload.size());
    return m;
  }

  void close() override {
    for (auto* q : {out_.get(), in_.get()}) {
      {
        std::lock_guard lock(q->mu);
        q->closed = true;
      }
      q->cv.notify_all();
    }
  }

 private:
  std::shared_ptr<Queue> out_, in_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>> make_memory_channel_pair(
    std::chrono::milliseconds timeout) {
  auto ab = std::make_shared<Queue>();
  auto ba = std::make_shared<Queue>();
  return {std::make_unique<MemoryChannel>(ab, ba, timeout),
          std::make_unique<MemoryChannel>(ba, ab, timeout)};
}

}  // namespace veil::mpc
