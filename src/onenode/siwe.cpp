#include "onenode/siwe.hpp"

#include <charconv>

#include "core/time.hpp"

namespace kaisar::onenode {

namespace {

constexpr std::string_view kHeaderSuffix = " wants you to sign in with your Ethereum account:";

bool is_alnum(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool valid_domain(std::string_view d) {
  if (d.empty() || d.size() > 255) return false;
  for (char c : d) {
    if (!(is_alnum(c) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_')) return false;
  }
  return true;
}

bool valid_uri(std::string_view u) {
  // scheme ":" rest, printable ASCII without spaces
  auto colon = u.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  for (std::size_t i = 0; i < colon; ++i) {
    char c = u[i];
    if (!(is_alnum(c) || c == '+' || c == '-' || c == '.')) return false;
  }
  for (char c : u) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

class Lines {
 public:
  explicit Lines(std::string_view text) : text_(text) {}
  bool done() const { return pos_ > text_.size(); }
  std::optional<std::string_view> peek() const {
    if (pos_ > text_.size()) return std::nullopt;
    auto nl = text_.find('\n', pos_);
    return text_.substr(pos_, nl == std::string_view::npos ? std::string_view::npos : nl - pos_);
  }
  std::optional<std::string_view> next() {
    auto line = peek();
    if (!line) return std::nullopt;
    pos_ += line->size() + 1;
    ++number_;
    return line;
  }
  int number() const { return number_; }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  int number_ = 0;
};

std::unexpected<Error> bad(int line, std::string_view what) {
  return fail(ErrorCode::kInvalidArgument,
              "SIWE message line " + std::to_string(line) + ": expected " + std::string(what));
}

// Reads "Tag: value" where the tag is required; returns the value.
Result<std::string_view> tagged(Lines& lines, std::string_view tag) {
  auto line = lines.next();
  std::string prefix = std::string(tag) + ": ";
  if (!line || line->substr(0, prefix.size()) != prefix) return bad(lines.number(), "\"" + prefix + "…\"");
  return line->substr(prefix.size());
}

bool optional_tag(Lines& lines, std::string_view tag, std::optional<std::string>& out) {
  auto line = lines.peek();
  std::string prefix = std::string(tag) + ": ";
  if (!line || line->substr(0, prefix.size()) != prefix) return false;
  lines.next();
  out = std::string(line->substr(prefix.size()));
  return true;
}

}  // namespace

std::string SiweMessage::to_string() const {
  std::string s;
  if (scheme) s += *scheme + "://";
  s += domain;
  s += kHeaderSuffix;
  s += "\n";
  s += address.to_checksum();
  s += "\n\n";
  if (statement) s += *statement + "\n\n";
  s += "URI: " + uri + "\n";
  s += "Version: " + version + "\n";
  s += "Chain ID: " + std::to_string(chain_id) + "\n";
  s += "Nonce: " + nonce + "\n";
  s += "Issued At: " + issued_at;
  if (expiration_time) s += "\nExpiration Time: " + *expiration_time;
  if (not_before) s += "\nNot Before: " + *not_before;
  if (request_id) s += "\nRequest ID: " + *request_id;
  if (!resources.empty()) {
    s += "\nResources:";
    for (const auto& r : resources) s += "\n- " + r;
  }
  return s;
}

Result<SiweMessage> SiweMessage::parse(std::string_view text) noexcept {
  try {
    if (text.size() > kMaxSiweMessageBytes) return fail(ErrorCode::kInvalidArgument, "SIWE message is too long");
    for (char c : text) {
      if (c == '\r') return fail(ErrorCode::kInvalidArgument, "SIWE message must use \\n line endings");
      if (c == '\0') return fail(ErrorCode::kInvalidArgument, "SIWE message contains a NUL byte");
    }
    SiweMessage m;
    Lines lines(text);

    auto header = lines.next();
    if (!header || header->size() <= kHeaderSuffix.size() ||
        header->substr(header->size() - kHeaderSuffix.size()) != kHeaderSuffix) {
      return bad(1, "\"<domain> wants you to sign in with your Ethereum account:\"");
    }
    std::string_view domain = header->substr(0, header->size() - kHeaderSuffix.size());
    if (auto sep = domain.find("://"); sep != std::string_view::npos) {
      m.scheme = std::string(domain.substr(0, sep));
      domain.remove_prefix(sep + 3);
    }
    if (!valid_domain(domain)) return bad(1, "a domain (host[:port])");
    m.domain = std::string(domain);

    auto address_line = lines.next();
    if (!address_line) return bad(2, "an Ethereum address");
    auto address = crypto::Address::parse(*address_line);
    if (!address) return bad(2, "an EIP-55 Ethereum address (" + address.error().message + ")");
    m.address = *address;

    auto blank = lines.next();
    if (!blank || !blank->empty()) return bad(3, "an empty line");

    auto maybe_statement = lines.peek();
    if (maybe_statement && maybe_statement->substr(0, 5) != "URI: ") {
      if (maybe_statement->empty()) return bad(4, "a statement or \"URI: …\"");
      m.statement = std::string(*maybe_statement);
      lines.next();
      auto blank2 = lines.next();
      if (!blank2 || !blank2->empty()) return bad(lines.number(), "an empty line after the statement");
    }

    auto uri = tagged(lines, "URI");
    if (!uri) return std::unexpected(uri.error());
    if (!valid_uri(*uri)) return bad(lines.number(), "an RFC 3986 URI");
    m.uri = std::string(*uri);

    auto version = tagged(lines, "Version");
    if (!version) return std::unexpected(version.error());
    if (*version != "1") return bad(lines.number(), "Version: 1");
    m.version = "1";

    auto chain = tagged(lines, "Chain ID");
    if (!chain) return std::unexpected(chain.error());
    if (chain->empty() || chain->size() > 19) return bad(lines.number(), "a decimal chain id");
    auto [ptr, ec] = std::from_chars(chain->data(), chain->data() + chain->size(), m.chain_id);
    if (ec != std::errc{} || ptr != chain->data() + chain->size() || m.chain_id == 0) {
      return bad(lines.number(), "a decimal chain id");
    }

    auto nonce = tagged(lines, "Nonce");
    if (!nonce) return std::unexpected(nonce.error());
    if (nonce->size() < 8 || nonce->size() > 128) return bad(lines.number(), "a nonce of 8 to 128 alphanumerics");
    for (char c : *nonce) {
      if (!is_alnum(c)) return bad(lines.number(), "a nonce of 8 to 128 alphanumerics");
    }
    m.nonce = std::string(*nonce);

    auto issued = tagged(lines, "Issued At");
    if (!issued) return std::unexpected(issued.error());
    if (!parse_rfc3339(*issued)) return bad(lines.number(), "an RFC 3339 Issued At time");
    m.issued_at = std::string(*issued);

    if (optional_tag(lines, "Expiration Time", m.expiration_time) && !parse_rfc3339(*m.expiration_time)) {
      return bad(lines.number(), "an RFC 3339 Expiration Time");
    }
    if (optional_tag(lines, "Not Before", m.not_before) && !parse_rfc3339(*m.not_before)) {
      return bad(lines.number(), "an RFC 3339 Not Before time");
    }
    optional_tag(lines, "Request ID", m.request_id);
    if (auto r = lines.peek(); r && *r == "Resources:") {
      lines.next();
      while (auto item = lines.peek()) {
        if (item->substr(0, 2) != "- ") break;
        lines.next();
        auto res = item->substr(2);
        if (!valid_uri(res)) return bad(lines.number(), "a resource URI");
        if (m.resources.size() >= 64) return bad(lines.number(), "at most 64 resources");
        m.resources.emplace_back(res);
      }
    }
    if (!lines.done()) return bad(lines.number() + 1, "the end of the message");
    return m;
  } catch (const std::exception& e) {
    return fail(ErrorCode::kInvalidArgument, std::string("SIWE message: ") + e.what());
  }
}

}  // namespace kaisar::onenode
