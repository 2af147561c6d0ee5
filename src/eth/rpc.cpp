#include "eth/rpc.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <thread>

namespace kaisar::eth {

namespace json = boost::json;

RpcTransport::~RpcTransport() = default;

namespace {

// Node text goes into our error messages; keep it short and printable.
std::string sanitize(std::string_view text) {
  constexpr std::size_t kMax = 300;
  std::string out;
  for (char c : text.substr(0, kMax)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7f ? c : '?');
  }
  if (text.size() > kMax) out += "...";
  return out;
}

std::unexpected<Error> bad_response(std::string_view method, const std::string& what) {
  return fail(ErrorCode::kUnavailable, "invalid response from the Ethereum node to " + std::string(method) + ": " +
                                           what + " (check the RPC URL points at a JSON-RPC node)");
}

bool contains_lower(std::string_view haystack, std::string_view needle) {
  std::string lower(haystack);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find(needle) != std::string::npos;
}

// Maps a JSON-RPC error object to our vocabulary, keeping the node's own message.
Error node_error(std::string_view method, const json::value& error) {
  const json::object* obj = error.if_object();
  if (obj == nullptr) return bad_response(method, "'error' is not an object").error();
  std::int64_t code = 0;
  if (const json::value* c = obj->if_contains("code"); c != nullptr && c->is_int64()) code = c->get_int64();
  std::string message;
  if (const json::value* m = obj->if_contains("message"); m != nullptr && m->is_string()) {
    message = sanitize(m->get_string());
  }
  std::string text = "node rejected " + std::string(method) + ": " + (message.empty() ? "(no message)" : message) +
                     " (JSON-RPC code " + std::to_string(code) + ")";
  if (const json::value* d = obj->if_contains("data"); d != nullptr && d->is_string()) {
    text += ", data " + sanitize(d->get_string());
  }

  ErrorCode mapped = ErrorCode::kUnavailable;
  if (code == 3 || contains_lower(message, "revert") || contains_lower(message, "nonce too") ||
      contains_lower(message, "insufficient funds") || contains_lower(message, "already known") ||
      contains_lower(message, "underpriced")) {
    mapped = ErrorCode::kConflict;
  } else if (code == -32601) {
    mapped = ErrorCode::kNotFound;
  } else if (code == -32700 || code == -32600 || code == -32602) {
    mapped = ErrorCode::kInvalidArgument;
  } else if (code == -32603 || code == -32002 || code == -32005) {
    mapped = ErrorCode::kUnavailable;
  } else if (code <= -32000 && code >= -32099) {
    mapped = ErrorCode::kInvalidArgument;  // server-side rejection of what we sent
  }
  return Error{mapped, std::move(text)};
}

std::optional<std::uint64_t> id_of(const json::value& v) {
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
  if (v.is_uint64()) return v.get_uint64();
  return std::nullopt;
}

// Validates one response object against the id we sent and returns its result.
Result<json::value> take_result(std::string_view method, const json::value& response, std::uint64_t id) {
  const json::object* obj = response.if_object();
  if (obj == nullptr) return bad_response(method, "response is not a JSON object");
  const json::value* version = obj->if_contains("jsonrpc");
  if (version == nullptr || !version->is_string() || version->get_string() != "2.0") {
    return bad_response(method, "response lacks \"jsonrpc\":\"2.0\"");
  }
  const json::value* result = obj->if_contains("result");
  const json::value* error = obj->if_contains("error");
  const json::value* got_id = obj->if_contains("id");
  if (got_id == nullptr) return bad_response(method, "response has no id");
  // A node that could not parse our request answers with a null id and an error.
  if (got_id->is_null() && error != nullptr && result == nullptr) return std::unexpected(node_error(method, *error));
  const std::optional<std::uint64_t> got = id_of(*got_id);
  if (!got || *got != id) {
    return bad_response(method, "response id " + sanitize(json::serialize(*got_id)) + " does not match request id " +
                                    std::to_string(id));
  }
  if (result != nullptr && error != nullptr) return bad_response(method, "response has both result and error");
  if (error != nullptr) return std::unexpected(node_error(method, *error));
  if (result == nullptr) return bad_response(method, "response has neither result nor error");
  return *result;
}

json::value request_object(std::uint64_t id, std::string_view method, const json::array& params) {
  json::object req;
  req["jsonrpc"] = "2.0";
  req["id"] = id;
  req["method"] = method;
  req["params"] = params;
  return req;
}

std::string address_json(const crypto::Address& a) { return a.to_lower_hex(); }

json::object call_object(const CallRequest& call) {
  json::object obj;
  if (call.from) obj["from"] = address_json(*call.from);
  if (call.to) obj["to"] = address_json(*call.to);
  if (!call.value.is_zero()) obj["value"] = call.value.to_hex();
  if (!call.data.empty()) obj["data"] = to_hex(call.data);
  if (call.gas) obj["gas"] = Uint256(*call.gas).to_hex();
  return obj;
}

Result<std::string_view> string_of(const json::value& v, std::string_view what) {
  const json::string* s = v.if_string();
  if (s == nullptr) return fail(ErrorCode::kUnavailable, std::string(what) + " is not a string");
  return std::string_view(*s);
}

// Required string field `name` of `obj`, decoded by `parse`.
template <class Parse>
auto field(const json::object& obj, std::string_view name, Parse parse)
    -> Result<typename decltype(parse(std::string_view{}))::value_type> {
  const json::value* v = obj.if_contains(name);
  if (v == nullptr || v->is_null()) return fail(ErrorCode::kUnavailable, "missing field '" + std::string(name) + "'");
  auto text = string_of(*v, "field '" + std::string(name) + "'");
  if (!text) return std::unexpected(text.error());
  auto parsed = parse(*text);
  if (!parsed) return fail(ErrorCode::kUnavailable, "field '" + std::string(name) + "': " + parsed.error().message);
  return *parsed;
}

// Optional field: absent or null is empty.
template <class Parse>
auto optional_field(const json::object& obj, std::string_view name, Parse parse)
    -> Result<std::optional<typename decltype(parse(std::string_view{}))::value_type>> {
  const json::value* v = obj.if_contains(name);
  if (v == nullptr || v->is_null()) return std::nullopt;
  auto parsed = field(obj, name, parse);
  if (!parsed) return std::unexpected(parsed.error());
  return *parsed;
}

const auto kQuantity = [](std::string_view t) { return parse_quantity(t); };
const auto kU64 = [](std::string_view t) { return parse_quantity_u64(t); };
const auto kHash = [](std::string_view t) { return parse_hash(t); };
const auto kData = [](std::string_view t) { return parse_data(t); };
const auto kAddress = [](std::string_view t) { return crypto::Address::parse(t); };

template <class T>
Result<T> in_response(std::string_view method, Result<T> parsed) {
  if (!parsed) return bad_response(method, parsed.error().message);
  return parsed;
}

}  // namespace

Result<Uint256> parse_quantity(std::string_view text) noexcept {
  if (!text.starts_with("0x")) return fail(ErrorCode::kInvalidArgument, "quantity must start with 0x");
  const std::string_view digits = text.substr(2);
  if (digits.empty()) return fail(ErrorCode::kInvalidArgument, "quantity has no digits");
  if (digits.size() > 64) return fail(ErrorCode::kInvalidArgument, "quantity exceeds 256 bits");
  if (digits.size() > 1 && digits[0] == '0') return fail(ErrorCode::kInvalidArgument, "quantity has leading zeros");
  for (char c : digits) {
    if (std::isxdigit(static_cast<unsigned char>(c)) == 0) {
      return fail(ErrorCode::kInvalidArgument, "quantity has a non-hex digit");
    }
  }
  return Uint256::from_hex(text);
}

Result<std::uint64_t> parse_quantity_u64(std::string_view text) noexcept {
  auto value = parse_quantity(text);
  if (!value) return std::unexpected(value.error());
  if (!value->fits_u64()) return fail(ErrorCode::kInvalidArgument, "quantity exceeds 64 bits");
  return value->low_u64();
}

Result<Bytes> parse_data(std::string_view text) noexcept {
  if (!text.starts_with("0x")) return fail(ErrorCode::kInvalidArgument, "data must start with 0x");
  return from_hex(text);
}

Result<Hash32> parse_hash(std::string_view text) noexcept {
  if (!text.starts_with("0x")) return fail(ErrorCode::kInvalidArgument, "hash must start with 0x");
  return from_hex_fixed<32>(text);
}

Result<Log> parse_log(const json::value& value) noexcept {
  const json::object* obj = value.if_object();
  if (obj == nullptr) return fail(ErrorCode::kUnavailable, "log is not an object");
  Log log;
  auto address = field(*obj, "address", kAddress);
  if (!address) return std::unexpected(address.error());
  log.address = *address;
  const json::value* topics = obj->if_contains("topics");
  if (topics == nullptr || !topics->is_array()) return fail(ErrorCode::kUnavailable, "log has no topics array");
  if (topics->get_array().size() > 4) return fail(ErrorCode::kUnavailable, "log has more than 4 topics");
  for (const json::value& t : topics->get_array()) {
    auto text = string_of(t, "topic");
    if (!text) return std::unexpected(text.error());
    auto hash = parse_hash(*text);
    if (!hash) return fail(ErrorCode::kUnavailable, "topic: " + hash.error().message);
    log.topics.push_back(*hash);
  }
  auto data = field(*obj, "data", kData);
  if (!data) return std::unexpected(data.error());
  log.data = std::move(*data);
  auto block = optional_field(*obj, "blockNumber", kU64);
  if (!block) return std::unexpected(block.error());
  log.block_number = *block;
  auto tx = optional_field(*obj, "transactionHash", kHash);
  if (!tx) return std::unexpected(tx.error());
  log.transaction_hash = *tx;
  auto index = optional_field(*obj, "logIndex", kU64);
  if (!index) return std::unexpected(index.error());
  log.log_index = *index;
  return log;
}

Result<Receipt> parse_receipt(const json::value& value) noexcept {
  const json::object* obj = value.if_object();
  if (obj == nullptr) return fail(ErrorCode::kUnavailable, "receipt is not an object");
  Receipt r;
  auto hash = field(*obj, "transactionHash", kHash);
  if (!hash) return std::unexpected(hash.error());
  r.transaction_hash = *hash;
  auto status = field(*obj, "status", kU64);
  if (!status) return std::unexpected(status.error());
  if (*status > 1) return fail(ErrorCode::kUnavailable, "receipt status is neither 0 nor 1");
  r.status = *status;
  auto number = field(*obj, "blockNumber", kU64);
  if (!number) return std::unexpected(number.error());
  r.block_number = *number;
  auto block_hash = field(*obj, "blockHash", kHash);
  if (!block_hash) return std::unexpected(block_hash.error());
  r.block_hash = *block_hash;
  auto gas = field(*obj, "gasUsed", kU64);
  if (!gas) return std::unexpected(gas.error());
  r.gas_used = *gas;
  auto price = optional_field(*obj, "effectiveGasPrice", kQuantity);
  if (!price) return std::unexpected(price.error());
  r.effective_gas_price = *price;
  auto created = optional_field(*obj, "contractAddress", kAddress);
  if (!created) return std::unexpected(created.error());
  r.contract_address = *created;
  const json::value* logs = obj->if_contains("logs");
  if (logs == nullptr || !logs->is_array()) return fail(ErrorCode::kUnavailable, "receipt has no logs array");
  for (const json::value& l : logs->get_array()) {
    auto log = parse_log(l);
    if (!log) return fail(ErrorCode::kUnavailable, "receipt log: " + log.error().message);
    r.logs.push_back(std::move(*log));
  }
  return r;
}

Result<Block> parse_block(const json::value& value) noexcept {
  const json::object* obj = value.if_object();
  if (obj == nullptr) return fail(ErrorCode::kUnavailable, "block is not an object");
  Block b;
  auto number = field(*obj, "number", kU64);
  if (!number) return std::unexpected(number.error());
  b.number = *number;
  auto hash = field(*obj, "hash", kHash);
  if (!hash) return std::unexpected(hash.error());
  b.hash = *hash;
  auto parent = field(*obj, "parentHash", kHash);
  if (!parent) return std::unexpected(parent.error());
  b.parent_hash = *parent;
  auto timestamp = field(*obj, "timestamp", kU64);
  if (!timestamp) return std::unexpected(timestamp.error());
  b.timestamp = *timestamp;
  auto base_fee = optional_field(*obj, "baseFeePerGas", kQuantity);
  if (!base_fee) return std::unexpected(base_fee.error());
  b.base_fee_per_gas = *base_fee;
  return b;
}

Result<json::value> RpcClient::checked_body(std::string_view body) const {
  if (body.size() > max_response_bytes_) {
    return fail(ErrorCode::kPayloadTooLarge, "Ethereum node response of " + std::to_string(body.size()) +
                                                 " bytes exceeds the limit of " + std::to_string(max_response_bytes_));
  }
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  if (ec) return fail(ErrorCode::kUnavailable, "Ethereum node response is not JSON (" + ec.message() + "): " +
                                                   sanitize(body));
  return parsed;
}

Result<json::value> RpcClient::request(std::string_view method, json::array params) {
  const std::uint64_t id = next_id_++;
  const std::string body = json::serialize(request_object(id, method, params));
  auto response = transport_.post(body);
  if (!response) return std::unexpected(response.error());
  auto parsed = checked_body(*response);
  if (!parsed) return std::unexpected(parsed.error());
  return take_result(method, *parsed, id);
}

Result<std::vector<Result<json::value>>> RpcClient::batch(std::span<const RpcCall> calls) {
  std::vector<Result<json::value>> results;
  if (calls.empty()) return results;
  const std::uint64_t first_id = next_id_;
  next_id_ += calls.size();
  json::array request;
  for (std::size_t i = 0; i < calls.size(); ++i) {
    request.push_back(request_object(first_id + i, calls[i].method, calls[i].params));
  }
  auto response = transport_.post(json::serialize(request));
  if (!response) return std::unexpected(response.error());
  auto parsed = checked_body(*response);
  if (!parsed) return std::unexpected(parsed.error());
  constexpr std::string_view kWhat = "a batch request";
  // A node that rejects the whole batch answers with one error object.
  if (parsed->is_object()) {
    const json::object& obj = parsed->get_object();
    if (const json::value* error = obj.if_contains("error"); error != nullptr) {
      return std::unexpected(node_error(kWhat, *error));
    }
    return bad_response(kWhat, "expected an array of responses");
  }
  const json::array* answers = parsed->if_array();
  if (answers == nullptr) return bad_response(kWhat, "expected an array of responses");
  if (answers->size() != calls.size()) {
    return bad_response(kWhat, std::to_string(answers->size()) + " responses for " + std::to_string(calls.size()) +
                                   " calls");
  }
  // Responses may come in any order; match them by id.
  std::vector<const json::value*> by_index(calls.size(), nullptr);
  for (const json::value& answer : *answers) {
    const json::object* obj = answer.if_object();
    const json::value* id_value = obj != nullptr ? obj->if_contains("id") : nullptr;
    const std::optional<std::uint64_t> id = id_value != nullptr ? id_of(*id_value) : std::nullopt;
    if (!id || *id < first_id || *id - first_id >= calls.size()) {
      return bad_response(kWhat, "a response has a missing or unknown id");
    }
    const std::size_t index = static_cast<std::size_t>(*id - first_id);
    if (by_index[index] != nullptr) return bad_response(kWhat, "two responses carry id " + std::to_string(*id));
    by_index[index] = &answer;
  }
  for (std::size_t i = 0; i < calls.size(); ++i) {
    results.push_back(take_result(calls[i].method, *by_index[i], first_id + i));
  }
  return results;
}

Result<std::uint64_t> RpcClient::chain_id() {
  auto v = request("eth_chainId");
  if (!v) return std::unexpected(v.error());
  auto text = string_of(*v, "result");
  if (!text) return bad_response("eth_chainId", text.error().message);
  return in_response("eth_chainId", parse_quantity_u64(*text));
}

Result<std::uint64_t> RpcClient::block_number() {
  auto v = request("eth_blockNumber");
  if (!v) return std::unexpected(v.error());
  auto text = string_of(*v, "result");
  if (!text) return bad_response("eth_blockNumber", text.error().message);
  return in_response("eth_blockNumber", parse_quantity_u64(*text));
}

namespace {
Result<Uint256> quantity_result(RpcClient& rpc, std::string_view method, json::array params) {
  auto v = rpc.request(method, std::move(params));
  if (!v) return std::unexpected(v.error());
  auto text = string_of(*v, "result");
  if (!text) return bad_response(method, text.error().message);
  return in_response(method, parse_quantity(*text));
}

Result<std::uint64_t> u64_result(RpcClient& rpc, std::string_view method, json::array params) {
  auto v = quantity_result(rpc, method, std::move(params));
  if (!v) return std::unexpected(v.error());
  if (!v->fits_u64()) return bad_response(method, "quantity exceeds 64 bits");
  return v->low_u64();
}
}  // namespace

Result<Uint256> RpcClient::get_balance(const crypto::Address& address, const BlockId& block) {
  return quantity_result(*this, "eth_getBalance",
                         json::array{json::value(address_json(address)), json::value(block.to_json())});
}

Result<std::uint64_t> RpcClient::get_transaction_count(const crypto::Address& address, const BlockId& block) {
  return u64_result(*this, "eth_getTransactionCount",
                    json::array{json::value(address_json(address)), json::value(block.to_json())});
}

Result<Uint256> RpcClient::gas_price() { return quantity_result(*this, "eth_gasPrice", {}); }

Result<Uint256> RpcClient::max_priority_fee() { return quantity_result(*this, "eth_maxPriorityFeePerGas", {}); }

Result<FeeEstimate> RpcClient::estimate_fees() {
  auto block = get_block(BlockId::latest());
  if (!block) return std::unexpected(block.error());
  if (!*block) return bad_response("eth_getBlockByNumber", "the node has no latest block");
  if (!(*block)->base_fee_per_gas) {
    return fail(ErrorCode::kUnavailable, "the chain's latest block has no base fee; EIP-1559 transactions need a "
                                         "London-enabled chain");
  }
  auto tip = max_priority_fee();
  if (!tip) return std::unexpected(tip.error());
  auto doubled = Uint256::checked_mul(*(*block)->base_fee_per_gas, 2);
  if (!doubled) return bad_response("eth_getBlockByNumber", "base fee is out of range");
  auto max_fee = Uint256::checked_add(*doubled, *tip);
  if (!max_fee) return bad_response("eth_maxPriorityFeePerGas", "priority fee is out of range");
  return FeeEstimate{*max_fee, *tip};
}

Result<std::uint64_t> RpcClient::estimate_gas(const CallRequest& call) {
  return u64_result(*this, "eth_estimateGas", json::array{json::value(call_object(call))});
}

Result<Bytes> RpcClient::call(const CallRequest& call, const BlockId& block) {
  auto v = request("eth_call", json::array{json::value(call_object(call)), json::value(block.to_json())});
  if (!v) return std::unexpected(v.error());
  auto text = string_of(*v, "result");
  if (!text) return bad_response("eth_call", text.error().message);
  return in_response("eth_call", parse_data(*text));
}

Result<Hash32> RpcClient::send_raw_transaction(ByteView raw) {
  auto v = request("eth_sendRawTransaction", json::array{json::value(to_hex(raw))});
  if (!v) return std::unexpected(v.error());
  auto text = string_of(*v, "result");
  if (!text) return bad_response("eth_sendRawTransaction", text.error().message);
  return in_response("eth_sendRawTransaction", parse_hash(*text));
}

Result<std::optional<Receipt>> RpcClient::get_transaction_receipt(const Hash32& hash) {
  constexpr std::string_view kMethod = "eth_getTransactionReceipt";
  auto v = request(kMethod, json::array{json::value(to_hex(hash))});
  if (!v) return std::unexpected(v.error());
  if (v->is_null()) return std::nullopt;
  auto receipt = parse_receipt(*v);
  if (!receipt) return bad_response(kMethod, receipt.error().message);
  if (receipt->transaction_hash != hash) return bad_response(kMethod, "receipt is for another transaction");
  return std::optional<Receipt>(std::move(*receipt));
}

Result<Receipt> RpcClient::wait_for_receipt(const Hash32& hash, std::chrono::milliseconds timeout,
                                            std::chrono::milliseconds poll_interval) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto receipt = get_transaction_receipt(hash);
    if (!receipt) return std::unexpected(receipt.error());
    if (*receipt) return std::move(**receipt);
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return fail(ErrorCode::kTimeout, "transaction " + to_hex(hash) + " has no receipt after " +
                                           std::to_string(timeout.count()) +
                                           " ms; it may still be pending or was never received by the node");
    }
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(poll_interval, deadline - now));
  }
}

Result<std::vector<Log>> RpcClient::get_logs(const LogFilter& filter) {
  constexpr std::string_view kMethod = "eth_getLogs";
  json::object obj;
  if (filter.address) obj["address"] = address_json(*filter.address);
  json::array topics;
  for (const auto& t : filter.topics) {
    if (t) {
      topics.push_back(json::value(to_hex(*t)));
    } else {
      topics.push_back(nullptr);
    }
  }
  if (!topics.empty()) obj["topics"] = std::move(topics);
  obj["fromBlock"] = filter.from_block.to_json();
  obj["toBlock"] = filter.to_block.to_json();
  auto v = request(kMethod, json::array{json::value(std::move(obj))});
  if (!v) return std::unexpected(v.error());
  const json::array* list = v->if_array();
  if (list == nullptr) return bad_response(kMethod, "result is not an array");
  std::vector<Log> logs;
  logs.reserve(list->size());
  for (const json::value& item : *list) {
    auto log = parse_log(item);
    if (!log) return bad_response(kMethod, log.error().message);
    logs.push_back(std::move(*log));
  }
  return logs;
}

Result<std::optional<Block>> RpcClient::get_block(const BlockId& block) {
  constexpr std::string_view kMethod = "eth_getBlockByNumber";
  auto v = request(kMethod, json::array{json::value(block.to_json()), json::value(false)});
  if (!v) return std::unexpected(v.error());
  if (v->is_null()) return std::nullopt;
  auto parsed = parse_block(*v);
  if (!parsed) return bad_response(kMethod, parsed.error().message);
  return std::optional<Block>(*parsed);
}

}  // namespace kaisar::eth
