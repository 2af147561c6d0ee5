#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>

#include "core/error.hpp"
#include "crypto/random.hpp"

namespace kaisar::net {

struct RedialOptions {
  std::chrono::milliseconds initial{500};
  std::chrono::milliseconds max{30000};
};

// Keeps an outbound connection: runs `session()` (an awaitable of Result<void>) again and
// again until `stopping()`. After each end it tells `down(result, delay)` and waits a
// jittered backoff (crypto::jittered: peers that lost the server together do not all come
// back at once) that doubles up to `options.max`, and starts again from `options.initial`
// when the session had come up meanwhile (`ups()` changed). Cancelling `wake` cuts a wait
// short. The agents' control channel, the checkers' channel and the gateway's link use it.
template <class Stopping, class Ups, class Session, class Down>
boost::asio::awaitable<void> redial(boost::asio::steady_timer& wake, RedialOptions options, Stopping stopping, Ups ups,
                                    Session session, Down down) {
  std::chrono::milliseconds backoff = options.initial;
  while (!stopping()) {
    const auto before = ups();
    Result<void> result = co_await session();
    if (stopping()) break;
    if (ups() != before) backoff = options.initial;  // it was up: start over
    const auto delay = crypto::jittered(backoff);
    down(result, delay);
    wake.expires_after(delay);
    boost::system::error_code ec;
    co_await wake.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    backoff = std::min(backoff * 2, options.max);
  }
}

}  // namespace kaisar::net
