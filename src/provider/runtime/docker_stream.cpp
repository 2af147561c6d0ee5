#include "provider/runtime/docker_stream.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace kaisar::provider::runtime {

namespace json = boost::json;

Result<std::vector<LogFrame>> LogDemuxer::feed(std::string_view bytes) {
  if (broken_) return fail(ErrorCode::kInvalidArgument, "log stream: already broken");
  pending_.append(bytes);
  std::vector<LogFrame> frames;
  std::size_t at = 0;
  while (pending_.size() - at >= 8) {
    const auto* h = reinterpret_cast<const unsigned char*>(pending_.data() + at);
    if (h[0] > 2 || h[1] != 0 || h[2] != 0 || h[3] != 0) {
      broken_ = true;
      return fail(ErrorCode::kInvalidArgument, "log stream: bad frame header");
    }
    const std::size_t size = (std::size_t{h[4]} << 24) | (std::size_t{h[5]} << 16) | (std::size_t{h[6]} << 8) | h[7];
    if (size > max_frame_) {
      broken_ = true;
      return fail(ErrorCode::kPayloadTooLarge, "log stream: frame of " + std::to_string(size) + " bytes");
    }
    if (pending_.size() - at - 8 < size) break;
    frames.push_back(LogFrame{static_cast<LogFrame::Stream>(h[0]), pending_.substr(at + 8, size)});
    at += 8 + size;
  }
  pending_.erase(0, at);
  return frames;
}

Result<PullProgress> parse_pull_progress(std::string_view line) {
  boost::system::error_code ec;
  json::value v = json::parse(line, ec);
  if (ec || !v.is_object()) return fail(ErrorCode::kInvalidArgument, "pull progress: not a JSON object");
  const json::object& o = v.get_object();
  PullProgress p;
  auto text = [&](std::string_view key, std::string& out) {
    if (const json::value* f = o.if_contains(key); f != nullptr && f->is_string()) out = std::string(f->get_string());
  };
  text("status", p.status);
  text("id", p.id);
  text("error", p.error);
  if (const json::value* e = o.if_contains("errorDetail"); p.error.empty() && e != nullptr && e->is_object()) {
    if (const json::value* m = e->get_object().if_contains("message"); m != nullptr && m->is_string()) {
      p.error = std::string(m->get_string());
    }
  }
  if (const json::value* d = o.if_contains("progressDetail"); d != nullptr && d->is_object()) {
    auto number = [&](std::string_view key) -> std::optional<std::uint64_t> {
      const json::value* n = d->get_object().if_contains(key);
      if (n != nullptr && n->is_uint64()) return n->get_uint64();
      if (n != nullptr && n->is_int64() && n->get_int64() >= 0) return static_cast<std::uint64_t>(n->get_int64());
      return std::nullopt;
    };
    p.current = number("current");
    p.total = number("total");
  }
  return p;
}

Result<std::vector<PullProgress>> PullProgressReader::feed(std::string_view bytes) {
  pending_.append(bytes);
  if (pending_.size() > (1 << 20)) return fail(ErrorCode::kPayloadTooLarge, "pull progress: line over 1 MiB");
  std::vector<PullProgress> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t nl = pending_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(pending_.data() + start, nl - start);
    start = nl + 1;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty()) continue;
    auto p = parse_pull_progress(line);
    if (!p) return std::unexpected(p.error());
    out.push_back(std::move(*p));
  }
  pending_.erase(0, start);
  return out;
}

}  // namespace kaisar::provider::runtime
