#pragma once

// Private to net: the write side shared by server and client WebSocket sessions.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <string>
#include <vector>

namespace kaisar::net {

// Writes the queued text messages in order, taking batches so that messages queued while
// a write is in flight go out in the next round. Returns false when a write failed or the
// session finished meanwhile; the queue is then cleared.
template <class WebSocketStream>
boost::asio::awaitable<bool> write_queued_text(WebSocketStream& ws, std::vector<std::string>& queue,
                                               const bool& finished) {
  while (!queue.empty() && !finished) {
    std::vector<std::string> batch;
    batch.swap(queue);
    for (const std::string& message : batch) {
      ws.text(true);
      auto [ec, n] = co_await ws.async_write(boost::asio::buffer(message),
                                             boost::asio::as_tuple(boost::asio::use_awaitable));
      if (ec || finished) {
        queue.clear();
        co_return false;
      }
    }
  }
  co_return true;
}

}  // namespace kaisar::net
