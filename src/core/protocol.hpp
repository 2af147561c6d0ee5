#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace kaisar::protocol {

// Agent control channel, version 1. One outbound WebSocket per agent to
// /api/v1/agents/connect; every message is a JSON object with "type".
//
//   server → agent  {"type":"challenge","v":1,"nonce":"<hex>"}
//   agent  → server {"type":"hello","v":1,"node":"0x…","signature":"0x…",      (node key signs
//                    "binding":{"owner","issued_at","signature"},                 auth_message)
//                    "hardware":{…},"region":"…","agent_version":"…"}
//   server → agent  {"type":"welcome","v":1,"provider_id":"0x…","heartbeat_interval_s":N}
//   agent  → server {"type":"heartbeat","seq":N,"available":{"gpus":N,"cpu_cores":N,"ram_bytes":N}}
//   server → agent  {"type":"ack","seq":N}
//   server → agent  {"type":"error","code":"…","message":"…"}  then close
//
// The session is authenticated by the node key once, in the challenge; messages on it are
// attributed to that node (the architecture's "session authenticated by that key").
inline constexpr int kVersion = 1;
inline constexpr std::string_view kConnectPath = "/api/v1/agents/connect";
inline constexpr std::chrono::seconds kDefaultHeartbeatInterval{5};

// What the node key signs (EIP-191 personal_sign) to answer a challenge. The nonce is
// single-use and the text names the purpose, so the signature is useless elsewhere.
inline std::string auth_message(std::string_view nonce) {
  return "Kaisar agent authentication\nNonce: " + std::string(nonce);
}

// What the owner's wallet signs (EIP-191 personal_sign) to bind a node key to it.
inline std::string binding_message(std::string_view node_checksum, std::string_view owner_checksum,
                                   std::string_view issued_at) {
  return "Kaisar provider binding\nI authorize node " + std::string(node_checksum) +
         " to provide compute for my wallet " + std::string(owner_checksum) + ".\nIssued At: " +
         std::string(issued_at);
}

}  // namespace kaisar::protocol
