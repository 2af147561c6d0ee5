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

// Checker channel, version 1: one outbound WebSocket per checker to
// /api/v1/checkers/connect, authenticated like an agent's (challenge, hello with the node
// key's signature and the owner's checker binding), then (docs/checkers.md):
//
//   server → checker {"type":"assignment","check_id","provider","epoch","class","n","samples",
//                     "memory_bytes","memory_walks","memory_steps","deadline_s"}
//   server → checker {"type":"verify","check_id","provider","epoch","evidence":{…}}  (a second opinion)
//   checker → server {"type":"popw","check_id","message":{…}}   relayed to the provider's agent
//   server → checker {"type":"popw","check_id","message":{…}}   the agent's answer
//   checker → server {"type":"attestation","check_id","attestation":{…},"signature":"0x…"}
//   server → checker {"type":"attested","check_id"} | {"type":"refused","check_id","message"}
//
// The agent's side of a check is the same "popw" envelope on its control channel.
inline constexpr std::string_view kCheckerConnectPath = "/api/v1/checkers/connect";

// What the owner's wallet signs to let a node key check providers in its name. A provider
// binding does not make a checker, nor the other way round.
inline std::string checker_binding_message(std::string_view node_checksum, std::string_view owner_checksum,
                                           std::string_view issued_at) {
  return "Kaisar checker binding\nI authorize node " + std::string(node_checksum) +
         " to check providers for my wallet " + std::string(owner_checksum) + ".\nIssued At: " +
         std::string(issued_at);
}

}  // namespace kaisar::protocol
