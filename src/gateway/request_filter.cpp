#include "gateway/request_filter.hpp"

#include <openssl/crypto.h>

#include <algorithm>

namespace kaisar::gateway {

namespace {

constexpr std::size_t kMaxChunkLine = 4096;

char lower_ascii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower_ascii(a[i]) != lower_ascii(b[i])) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_tchar(c)) return false;
  }
  return true;
}

bool same_token(std::string_view a, std::string_view b) {
  return a.size() == b.size() && !a.empty() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Whether the comma-separated list has `item` (case-insensitive): Connection, Transfer-Encoding.
bool list_has(std::string_view list, std::string_view item) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), item)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

std::string_view last_item(std::string_view list) {
  const auto comma = list.rfind(',');
  return trim(comma == std::string_view::npos ? list : list.substr(comma + 1));
}

// Removes the `name=` items of a `sep`-separated list; `found` is set when one of them is `token`.
std::string without_pairs(std::string_view list, char sep, std::string_view name, std::string_view token, bool& found) {
  std::string kept;
  const std::string joiner = sep == ';' ? "; " : std::string(1, sep);
  while (!list.empty()) {
    const auto end = list.find(sep);
    const std::string_view raw = list.substr(0, end);
    const std::string_view item = trim(raw);
    const bool ours = item.size() >= name.size() + 1 && item.substr(0, name.size()) == name && item[name.size()] == '=';
    if (ours) {
      if (same_token(item.substr(name.size() + 1), token)) found = true;
    } else if (!item.empty()) {
      if (!kept.empty()) kept += joiner;
      kept += sep == ';' ? item : raw;
    }
    if (end == std::string_view::npos) break;
    list.remove_prefix(end + 1);
  }
  return kept;
}

}  // namespace

std::string plain_response(int status, std::string_view reason, std::string_view body, std::string_view extra_headers) {
  std::string text = std::string(body) + "\n";
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
         "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + std::to_string(text.size()) +
         "\r\nConnection: close\r\n" + std::string(extra_headers) + "\r\n" + text;
}

RequestFilter::RequestFilter(std::string token, std::size_t max_head) : token_(std::move(token)), max_head_(max_head) {}

bool RequestFilter::refuse(int status, std::string_view reason, std::string_view body, std::string_view extra_headers) {
  state_ = State::kRefused;
  std::string().swap(head_);
  std::string().swap(line_);
  refusal_ = plain_response(status, reason, body, extra_headers);
  return false;
}

RequestFilter::Line RequestFilter::collect_line(std::string_view& in, std::size_t limit) {
  const auto nl = in.find('\n');
  const std::size_t take = nl == std::string_view::npos ? in.size() : nl + 1;
  line_.append(in.substr(0, take));
  in.remove_prefix(take);
  if (nl == std::string_view::npos) return line_.size() > limit + 1 ? Line::kBad : Line::kMore;  // + a CR
  if (line_.size() < 2 || line_[line_.size() - 2] != '\r' || line_.size() - 2 > limit) return Line::kBad;
  return Line::kComplete;
}

bool RequestFilter::pass_counted(std::string_view& in, std::string& out) {
  const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size()));
  out.append(in.substr(0, n));
  in.remove_prefix(n);
  remaining_ -= n;
  return remaining_ == 0;
}

bool RequestFilter::feed(std::string_view in, std::string& out) {
  while (!in.empty()) {
    switch (state_) {
      case State::kRefused:
        return false;
      case State::kPassThrough:
        out.append(in);
        return true;
      case State::kHead: {
        // Empty lines before a request line are allowed (RFC 9112 2.2) and dropped.
        while (head_.empty() && !in.empty() && (in.front() == '\r' || in.front() == '\n')) in.remove_prefix(1);
        if (in.empty()) return true;
        const std::size_t before = head_.size();
        const std::size_t take = std::min(in.size(), max_head_ + 1 - before);
        head_.append(in.substr(0, take));
        const auto end = head_.find("\r\n\r\n", before < 3 ? 0 : before - 3);
        const std::size_t head_size = end == std::string::npos ? head_.size() : end + 4;
        if (head_size > max_head_) {
          return refuse(431, "Request Header Fields Too Large",
                        "a request head is over " + std::to_string(max_head_ / 1024) + " KiB");
        }
        if (end == std::string::npos) return true;  // took all of `in`
        // Bytes after the head stay in `in`: the body or the next request.
        in.remove_prefix(head_size - before);
        head_.resize(head_size);
        if (!take_head(out)) return false;
        break;
      }
      case State::kBody:
        if (pass_counted(in, out)) state_ = State::kHead;
        break;
      case State::kChunkSize: {
        const Line got = collect_line(in, kMaxChunkLine);
        if (got == Line::kBad) return refuse(400, "Bad Request", "a chunk-size line is malformed or too long");
        if (got == Line::kMore) return true;
        // chunk-size [BWS ; extensions] CRLF
        std::uint64_t size = 0;
        std::size_t digits = 0;
        for (; digits < line_.size() - 2; ++digits) {
          const char c = lower_ascii(line_[digits]);
          const int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
          if (v < 0) break;
          if (digits == 15) return refuse(400, "Bad Request", "a chunk is too large");
          size = size * 16 + static_cast<std::uint64_t>(v);
        }
        const std::string_view rest = trim(std::string_view(line_).substr(digits, line_.size() - 2 - digits));
        if (digits == 0 || (!rest.empty() && rest.front() != ';')) {
          return refuse(400, "Bad Request", "a chunk-size line is malformed");
        }
        out += line_;
        line_.clear();
        remaining_ = size;
        state_ = size == 0 ? State::kTrailer : State::kChunkData;
        trailer_bytes_ = 0;
        break;
      }
      case State::kChunkData:
        if (pass_counted(in, out)) state_ = State::kChunkDataEnd;
        break;
      case State::kChunkDataEnd: {
        const Line got = collect_line(in, 0);
        if (got == Line::kBad) return refuse(400, "Bad Request", "a chunk does not end with CRLF");
        if (got == Line::kMore) return true;
        out += line_;
        line_.clear();
        state_ = State::kChunkSize;
        break;
      }
      case State::kTrailer: {
        const Line got = collect_line(in, max_head_);
        if (got != Line::kBad) trailer_bytes_ += got == Line::kComplete ? line_.size() : 0;
        if (got == Line::kBad || trailer_bytes_ > max_head_) return refuse(400, "Bad Request", "the trailer is malformed or too long");
        if (got == Line::kMore) return true;
        const bool last = line_.size() == 2;
        out += line_;
        line_.clear();
        if (last) state_ = State::kHead;
        break;
      }
    }
  }
  return state_ != State::kRefused;
}

bool RequestFilter::take_head(std::string& out) {
  const std::string_view head(head_);
  // Lines end with CRLF only: a bare CR or LF could split lines differently in the container.
  for (std::size_t i = 0; i < head.size(); ++i) {
    const bool cr_ok = head[i] != '\r' || (i + 1 < head.size() && head[i + 1] == '\n');
    const bool lf_ok = head[i] != '\n' || (i > 0 && head[i - 1] == '\r');
    if (!cr_ok || !lf_ok || head[i] == '\0') return refuse(400, "Bad Request", "the request head has a bare CR, LF or NUL");
  }
  const auto line_end = head.find("\r\n");
  const std::string_view request_line = head.substr(0, line_end);
  const auto sp1 = request_line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : request_line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || request_line.find(' ', sp2 + 1) != std::string_view::npos) {
    return refuse(400, "Bad Request", "the request line is not METHOD TARGET HTTP/1.x");
  }
  const std::string_view method = request_line.substr(0, sp1);
  const std::string_view target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = request_line.substr(sp2 + 1);
  if (!is_token(method) || target.empty() || (version != "HTTP/1.1" && version != "HTTP/1.0")) {
    return refuse(400, "Bad Request", "the request line is not METHOD TARGET HTTP/1.x");
  }

  bool found = false;
  std::string rewritten(method);
  rewritten += ' ';
  if (const auto q = target.find('?'); q != std::string_view::npos) {
    const std::string query = without_pairs(target.substr(q + 1), '&', "kaisar_token", token_, found);
    rewritten += target.substr(0, q);
    if (!query.empty()) rewritten += "?" + query;
  } else {
    rewritten += target;
  }
  rewritten += ' ';
  rewritten += version;
  rewritten += "\r\n";

  std::optional<std::uint64_t> content_length;
  std::string transfer_encoding;
  bool connection_upgrade = false;
  bool upgrade = false;
  std::size_t at = line_end + 2;
  while (at < head.size()) {
    const auto end = head.find("\r\n", at);
    const std::string_view line = head.substr(at, end - at);
    at = end + 2;
    if (line.empty()) break;
    if (line.front() == ' ' || line.front() == '\t') return refuse(400, "Bad Request", "folded header lines are not allowed");
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
      return refuse(400, "Bad Request", "a header line is not NAME: VALUE");
    }
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "x-kaisar-token")) {
      if (same_token(value, token_)) found = true;
      continue;  // ours: never passed on
    }
    if (iequals(name, "authorization")) {
      // Only the lease's token is taken out; the container's own credentials pass.
      if (value.size() > 7 && iequals(value.substr(0, 7), "bearer ") && same_token(trim(value.substr(7)), token_)) {
        found = true;
        continue;
      }
    } else if (iequals(name, "cookie")) {
      const std::string kept = without_pairs(value, ';', "kaisar_token", token_, found);
      if (!kept.empty()) rewritten += std::string(name) + ": " + kept + "\r\n";
      continue;
    } else if (iequals(name, "content-length")) {
      std::uint64_t n = 0;
      if (value.empty() || value.size() > 15 || value.find_first_not_of("0123456789") != std::string_view::npos) {
        return refuse(400, "Bad Request", "Content-Length is not a number");
      }
      for (char c : value) n = n * 10 + static_cast<std::uint64_t>(c - '0');
      if (content_length && *content_length != n) return refuse(400, "Bad Request", "two different Content-Lengths");
      content_length = n;
    } else if (iequals(name, "transfer-encoding")) {
      if (!transfer_encoding.empty()) transfer_encoding += ", ";
      transfer_encoding += value;
    } else if (iequals(name, "connection")) {
      connection_upgrade = connection_upgrade || list_has(value, "upgrade");
    } else if (iequals(name, "upgrade")) {
      upgrade = true;
    }
    rewritten += line;
    rewritten += "\r\n";
  }
  if (!found) {
    return refuse(401, "Unauthorized",
                  "this port needs the lease's access token (kaisar lease show) in every request: "
                  "send Authorization: Bearer <token>",
                  "WWW-Authenticate: Bearer realm=\"kaisar lease\"\r\n");
  }
  if (!transfer_encoding.empty() && content_length) {
    return refuse(400, "Bad Request", "a request may not have both Content-Length and Transfer-Encoding");
  }
  if (!transfer_encoding.empty() && !iequals(last_item(transfer_encoding), "chunked")) {
    return refuse(400, "Bad Request", "a request's Transfer-Encoding must end with chunked");
  }
  rewritten += "\r\n";
  out += rewritten;
  // Decided before head_ goes: method views it.
  const bool pass_through = (upgrade && connection_upgrade) || iequals(method, "connect");
  std::string().swap(head_);
  ++requests_;
  if (pass_through) {
    state_ = State::kPassThrough;  // one authorized request, then the upgraded protocol's bytes
  } else if (!transfer_encoding.empty()) {
    state_ = State::kChunkSize;
  } else if (content_length.value_or(0) > 0) {
    remaining_ = *content_length;
    state_ = State::kBody;
  } else {
    state_ = State::kHead;
  }
  return true;
}

}  // namespace kaisar::gateway
