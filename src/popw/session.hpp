#pragma once

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/error.hpp"
#include "popw/evidence.hpp"

namespace kaisar::popw {

// The provider's side of checks: answers each checker message of one check with the next
// message (challenge → commit, audit → openings, memory_fill → memory_ready, memory_query →
// memory_answer), or with {"type":"error","message"} when it cannot. Holds the product and
// the dataset of the current check only; a new challenge replaces them.
class ProverSession {
 public:
  ProverSession();
  ~ProverSession();
  ProverSession(ProverSession&&) noexcept;
  ProverSession& operator=(ProverSession&&) noexcept;

  boost::json::object handle(const boost::json::object& message);
  // Frees the current check's memory.
  void reset();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The checker's side of one check: draws the seed, the audit rows and the memory walks
// (after the provider committed), times each phase itself and judges the evidence.
class CheckerSession {
 public:
  explicit CheckerSession(CheckParams params);
  ~CheckerSession();
  CheckerSession(CheckerSession&&) noexcept;
  CheckerSession& operator=(CheckerSession&&) noexcept;

  // The first message (the challenge); call once.
  boost::json::object start();
  // The provider's answer: the next message to send, or nullopt when the check is over
  // (then verdict()). Errors are the provider's protocol violations (the check fails).
  Result<std::optional<boost::json::object>> on_answer(const boost::json::object& answer);
  bool finished() const;
  // The verdict on what this checker saw and timed.
  Result<Verdict> verdict() const;
  const Evidence& evidence() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace kaisar::popw
