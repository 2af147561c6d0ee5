#include "chain/http_transport.hpp"

#include "net/client.hpp"

namespace kaisar::chain {

Result<std::string> HttpRpcTransport::post(std::string_view json_body) {
  auto response = net::http_request("POST", url_, json_body, {{"content-type", "application/json"}}, timeout_);
  if (!response) {
    return fail(response.error().code, "Ethereum node at " + url_ + ": " + response.error().message);
  }
  if (response->status != 200) {
    std::string body = response->body.substr(0, 200);
    return fail(ErrorCode::kUnavailable,
                "Ethereum node at " + url_ + " answered HTTP " + std::to_string(response->status) + ": " + body);
  }
  return std::move(response->body);
}

}  // namespace kaisar::chain
