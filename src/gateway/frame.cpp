#include "gateway/frame.hpp"

#include <cctype>

namespace kaisar::gateway {

namespace {

constexpr std::size_t kHeader = 5;  // type + stream

Error bad(const std::string& what) { return Error{ErrorCode::kInvalidArgument, "tunnel frame: " + what}; }

std::uint64_t read_be(ByteView b, std::size_t at, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | b[at + i];
  return v;
}

void write_be(Bytes& out, std::uint64_t v, std::size_t n) {
  for (std::size_t i = n; i-- > 0;) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

bool printable(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool lease_id_ok(std::string_view id) {
  if (id.empty() || id.size() > kMaxLeaseId) return false;
  for (char ch : id) {
    const auto c = static_cast<unsigned char>(ch);
    if (!(std::isalnum(c) || ch == '-' || ch == '_')) return false;
  }
  return true;
}

// Whether frames of this type belong to a stream (true) or to the tunnel (stream 0).
bool on_stream(FrameType t) { return t != FrameType::kPing && t != FrameType::kPong; }

}  // namespace

Result<Frame> decode_frame(ByteView m) {
  if (m.size() < kHeader) return std::unexpected(bad("shorter than its 5-byte header"));
  const auto type = static_cast<FrameType>(m[0]);
  if (m[0] < 1 || m[0] > 8) return std::unexpected(bad("unknown type " + std::to_string(m[0])));
  Frame f;
  f.stream = static_cast<std::uint32_t>(read_be(m, 1, 4));
  if (on_stream(type) != (f.stream != 0)) {
    return std::unexpected(bad(on_stream(type) ? "stream 0 for a stream frame" : "a stream for a tunnel frame"));
  }
  const ByteView p = m.subspan(kHeader);
  switch (type) {
    case FrameType::kOpen: {
      if (p.size() < 3 || p.size() != 3 + std::size_t{p[2]}) return std::unexpected(bad("OPEN has the wrong length"));
      Open o;
      o.port = static_cast<std::uint16_t>(read_be(p, 0, 2));
      o.lease_id.assign(reinterpret_cast<const char*>(p.data() + 3), p[2]);
      if (o.port == 0) return std::unexpected(bad("OPEN of port 0"));
      if (!lease_id_ok(o.lease_id)) return std::unexpected(bad("OPEN with a malformed lease id"));
      f.body = std::move(o);
      break;
    }
    case FrameType::kAccept:
      if (!p.empty()) return std::unexpected(bad("ACCEPT carries no payload"));
      f.body = Accept{};
      break;
    case FrameType::kData:
      if (p.empty() || p.size() > kMaxData) return std::unexpected(bad("DATA must carry 1 to 65536 bytes"));
      f.body = Data{Bytes(p.begin(), p.end())};
      break;
    case FrameType::kWindow: {
      if (p.size() != 4) return std::unexpected(bad("WINDOW has the wrong length"));
      const auto inc = static_cast<std::uint32_t>(read_be(p, 0, 4));
      if (inc == 0 || inc > kMaxWindowIncrement) return std::unexpected(bad("WINDOW increment out of range"));
      f.body = Window{inc};
      break;
    }
    case FrameType::kFin:
      if (!p.empty()) return std::unexpected(bad("FIN carries no payload"));
      f.body = Fin{};
      break;
    case FrameType::kReset: {
      if (p.empty() || p.size() > 1 + kMaxResetMessage) return std::unexpected(bad("RESET has the wrong length"));
      if (p[0] < 1 || p[0] > 5) return std::unexpected(bad("RESET with an unknown code"));
      Reset r{static_cast<ResetCode>(p[0]), std::string(reinterpret_cast<const char*>(p.data() + 1), p.size() - 1)};
      if (!printable(r.message)) return std::unexpected(bad("RESET message is not printable"));
      f.body = std::move(r);
      break;
    }
    case FrameType::kPing:
    case FrameType::kPong: {
      if (p.size() != 8) return std::unexpected(bad("PING/PONG has the wrong length"));
      const std::uint64_t opaque = read_be(p, 0, 8);
      if (type == FrameType::kPing) f.body = Ping{opaque};
      else f.body = Pong{opaque};
      break;
    }
  }
  return f;
}

Result<Bytes> encode_frame(const Frame& f) {
  Bytes out;
  auto header = [&](FrameType t, std::size_t payload) {
    out.reserve(kHeader + payload);
    out.push_back(static_cast<std::uint8_t>(t));
    write_be(out, f.stream, 4);
  };
  if (const auto* o = std::get_if<Open>(&f.body)) {
    header(FrameType::kOpen, 3 + o->lease_id.size());
    write_be(out, o->port, 2);
    out.push_back(static_cast<std::uint8_t>(o->lease_id.size()));
    out.insert(out.end(), o->lease_id.begin(), o->lease_id.end());
  } else if (std::holds_alternative<Accept>(f.body)) {
    header(FrameType::kAccept, 0);
  } else if (const auto* d = std::get_if<Data>(&f.body)) {
    header(FrameType::kData, d->bytes.size());
    out.insert(out.end(), d->bytes.begin(), d->bytes.end());
  } else if (const auto* w = std::get_if<Window>(&f.body)) {
    header(FrameType::kWindow, 4);
    write_be(out, w->increment, 4);
  } else if (std::holds_alternative<Fin>(f.body)) {
    header(FrameType::kFin, 0);
  } else if (const auto* r = std::get_if<Reset>(&f.body)) {
    header(FrameType::kReset, 1 + r->message.size());
    out.push_back(static_cast<std::uint8_t>(r->code));
    out.insert(out.end(), r->message.begin(), r->message.end());
  } else if (const auto* ping = std::get_if<Ping>(&f.body)) {
    header(FrameType::kPing, 8);
    write_be(out, ping->opaque, 8);
  } else if (const auto* pong = std::get_if<Pong>(&f.body)) {
    header(FrameType::kPong, 8);
    write_be(out, pong->opaque, 8);
  }
  // What we send obeys the rules we hold the other side to (DATA checked here: decoding
  // would copy up to 64 KiB again).
  if (const auto* d = std::get_if<Data>(&f.body)) {
    if (f.stream == 0 || d->bytes.empty() || d->bytes.size() > kMaxData) {
      return std::unexpected(bad("DATA must carry 1 to 65536 bytes on a stream"));
    }
  } else if (auto check = decode_frame(out); !check) {
    return std::unexpected(check.error());
  }
  return out;
}

}  // namespace kaisar::gateway
