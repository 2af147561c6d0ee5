#pragma once

// Private to net: the write side shared by server and client WebSocket sessions.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

namespace kaisar::net {

// A message waiting to be written: text (UTF-8) or binary.
struct Outgoing {
  std::string data;
  bool binary = false;
};

// Writes the queued messages in order, taking batches so that messages queued while a
// write is in flight go out in the next round. Returns false when a write failed or the
// session finished meanwhile; the queue is then cleared.
// `queued` counts the bytes waiting (for backpressure); each written message is taken off.
template <class WebSocketStream>
boost::asio::awaitable<bool> write_queued(WebSocketStream& ws, std::vector<Outgoing>& queue, const bool& finished,
                                          std::atomic<std::size_t>& queued) {
  while (!queue.empty() && !finished) {
    std::vector<Outgoing> batch;
    batch.swap(queue);
    for (const Outgoing& message : batch) {
      ws.binary(message.binary);
      auto [ec, n] = co_await ws.async_write(boost::asio::buffer(message.data),
                                             boost::asio::as_tuple(boost::asio::use_awaitable));
      queued.fetch_sub(std::min(queued.load(std::memory_order_relaxed), message.data.size()),
                       std::memory_order_relaxed);
      if (ec || finished) {
        queue.clear();
        queued.store(0, std::memory_order_relaxed);
        co_return false;
      }
    }
  }
  co_return true;
}

}  // namespace kaisar::net
