#include "gateway/mux.hpp"

#include <algorithm>

namespace kaisar::gateway {

namespace {

Error broken(const std::string& what) { return Error{ErrorCode::kInvalidArgument, "tunnel protocol: " + what}; }

}  // namespace

Mux::Mux(Role role, std::uint32_t window, std::size_t max_streams)
    : role_(role), window_(std::clamp<std::uint32_t>(window, kMaxData, kMaxWindowIncrement)), max_streams_(max_streams) {}

Mux::Stream* Mux::find(std::uint32_t stream) {
  auto it = streams_.find(stream);
  return it == streams_.end() ? nullptr : &it->second;
}

void Mux::close_if_done(std::uint32_t stream) {
  auto it = streams_.find(stream);
  if (it != streams_.end() && it->second.fin_sent && it->second.fin_received) streams_.erase(it);
}

Result<Frame> Mux::open(const std::string& lease_id, std::uint16_t port) {
  if (role_ != Role::kGateway) return fail(ErrorCode::kInternal, "only the gateway opens streams");
  if (streams_.size() >= max_streams_) return fail(ErrorCode::kUnavailable, "too many streams on this tunnel");
  if (next_stream_ > 0x7ffffffd) return fail(ErrorCode::kUnavailable, "this tunnel has used up its stream ids");
  const std::uint32_t id = next_stream_;
  next_stream_ += 2;
  Stream s;
  s.send_window = window_;
  s.receive_window = window_;
  streams_.emplace(id, s);
  return Frame{id, Open{port, lease_id}};
}

Result<Mux::Event> Mux::receive(Frame frame) {
  const std::uint32_t id = frame.stream;
  if (const auto* ping = std::get_if<Ping>(&frame.body)) return Event{Reply{Frame{0, Pong{ping->opaque}}}};
  if (std::holds_alternative<Pong>(frame.body)) return Event{Nothing{}};

  if (const auto* o = std::get_if<Open>(&frame.body)) {
    if (role_ != Role::kAgent) return std::unexpected(broken("the agent side may not open streams"));
    if (id % 2 == 0 || id <= highest_seen_) return std::unexpected(broken("OPEN must use a new, odd, higher stream id"));
    if (streams_.size() >= max_streams_) return std::unexpected(broken("more streams than agreed"));
    highest_seen_ = id;
    Stream s;
    s.accepted = true;  // this side accepts or resets; data may follow either way
    s.send_window = window_;
    s.receive_window = window_;
    streams_.emplace(id, s);
    return Event{Opened{id, o->lease_id, o->port}};
  }

  Stream* s = find(id);
  if (s == nullptr) {
    // Frames for a stream this side ended may still be on the way: drop them. Frames for a
    // stream that never was are an error.
    const bool was = role_ == Role::kGateway ? (id % 2 == 1 && id < next_stream_) : (id <= highest_seen_);
    if (!was) return std::unexpected(broken("frame for stream " + std::to_string(id) + " that was never opened"));
    return Event{Nothing{}};
  }
  if (std::holds_alternative<Accept>(frame.body)) {
    if (role_ != Role::kGateway || s->accepted) return std::unexpected(broken("unexpected ACCEPT"));
    s->accepted = true;
    return Event{Accepted{id}};
  }
  if (auto* d = std::get_if<Data>(&frame.body)) {
    if (!s->accepted) return std::unexpected(broken("DATA before the stream was accepted"));
    if (s->fin_received) return std::unexpected(broken("DATA after FIN"));
    if (d->bytes.size() > s->receive_window) return std::unexpected(broken("DATA beyond the stream's window"));
    s->receive_window -= static_cast<std::uint32_t>(d->bytes.size());
    return Event{Received{id, std::move(d->bytes)}};
  }
  if (const auto* w = std::get_if<Window>(&frame.body)) {
    if (s->send_window + w->increment > kMaxWindowIncrement) return std::unexpected(broken("WINDOW overflow"));
    s->send_window += w->increment;
    return Event{Writable{id}};
  }
  if (std::holds_alternative<Fin>(frame.body)) {
    if (s->fin_received) return std::unexpected(broken("a second FIN"));
    if (!s->accepted) return std::unexpected(broken("FIN before the stream was accepted"));
    s->fin_received = true;
    close_if_done(id);
    return Event{Finished{id}};
  }
  const auto& r = std::get<Reset>(frame.body);
  streams_.erase(id);
  return Event{ResetByPeer{id, r.code, r.message}};
}

Frame Mux::accept(std::uint32_t stream) { return Frame{stream, Accept{}}; }

std::size_t Mux::sendable(std::uint32_t stream) const {
  auto it = streams_.find(stream);
  if (it == streams_.end() || !it->second.accepted || it->second.fin_sent || it->second.send_window <= 0) return 0;
  return static_cast<std::size_t>(it->second.send_window);
}

std::vector<Frame> Mux::send(std::uint32_t stream, ByteView bytes, std::size_t* taken) {
  std::vector<Frame> out;
  std::size_t n = std::min(bytes.size(), sendable(stream));
  *taken = n;
  if (n == 0) return out;
  find(stream)->send_window -= static_cast<std::int64_t>(n);
  for (std::size_t at = 0; at < n; at += kMaxData) {
    const std::size_t len = std::min(kMaxData, n - at);
    out.push_back(Frame{stream, Data{Bytes(bytes.begin() + static_cast<std::ptrdiff_t>(at),
                                           bytes.begin() + static_cast<std::ptrdiff_t>(at + len))}});
  }
  return out;
}

std::optional<Frame> Mux::consumed(std::uint32_t stream, std::size_t n) {
  Stream* s = find(stream);
  if (s == nullptr || s->fin_received) return std::nullopt;
  s->unacknowledged += static_cast<std::uint32_t>(n);
  if (s->unacknowledged < window_ / 2) return std::nullopt;
  const std::uint32_t increment = s->unacknowledged;
  s->unacknowledged = 0;
  s->receive_window += increment;
  return Frame{stream, Window{increment}};
}

Frame Mux::fin(std::uint32_t stream) {
  if (Stream* s = find(stream)) {
    s->fin_sent = true;
    close_if_done(stream);
  }
  return Frame{stream, Fin{}};
}

Frame Mux::reset(std::uint32_t stream, ResetCode code, std::string message) {
  streams_.erase(stream);
  if (message.size() > kMaxResetMessage) message.resize(kMaxResetMessage);
  for (char& c : message) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return Frame{stream, Reset{code, std::move(message)}};
}

Frame Mux::ping(std::uint64_t opaque) const { return Frame{0, Ping{opaque}}; }

}  // namespace kaisar::gateway
