#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "eth/rpc.hpp"

namespace kaisar::chain {

// JSON-RPC over HTTP(S) POST to an Ethereum node (anvil, peaq, any EVM chain).
class HttpRpcTransport final : public eth::RpcTransport {
 public:
  explicit HttpRpcTransport(std::string url, std::chrono::milliseconds timeout = std::chrono::seconds{15})
      : url_(std::move(url)), timeout_(timeout) {}

  Result<std::string> post(std::string_view json_body) override;
  const std::string& url() const { return url_; }

 private:
  std::string url_;
  std::chrono::milliseconds timeout_;
};

}  // namespace kaisar::chain
