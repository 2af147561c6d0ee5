#include "core/image_reference.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cctype>
#include <cstring>

namespace kaisar {

namespace {

bool reference_chars(std::string_view image) {
  if (image.empty() || image.size() > 255 || image.front() == '/' || image.find("..") != std::string_view::npos) {
    return false;
  }
  for (const char ch : image) {
    const auto c = static_cast<unsigned char>(ch);
    if (!(std::isalnum(c) || c == '/' || c == ':' || c == '.' || c == '-' || c == '_' || c == '@')) return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The first `bits` bits of two byte strings of the same length agree.
bool prefix_matches(const unsigned char* a, const unsigned char* b, unsigned bits) {
  const unsigned whole = bits / 8;
  if (std::memcmp(a, b, whole) != 0) return false;
  if (bits % 8 == 0) return true;
  const auto mask = static_cast<unsigned char>(0xff << (8 - bits % 8));
  return (a[whole] & mask) == (b[whole] & mask);
}

template <std::size_t N>
bool in_ranges(const unsigned char* address, int family, const std::array<std::string_view, N>& ranges) {
  const std::size_t size = family == AF_INET ? 4 : 16;
  for (const std::string_view cidr : ranges) {
    const std::size_t slash = cidr.find('/');
    const std::string network(cidr.substr(0, slash));
    unsigned char bytes[16] = {};
    if (inet_pton(family, network.c_str(), bytes) != 1) continue;
    const auto bits = static_cast<unsigned>(std::stoul(std::string(cidr.substr(slash + 1))));
    if (bits <= size * 8 && prefix_matches(address, bytes, bits)) return true;
  }
  return false;
}

bool parse_ipv4(std::string_view literal, in_addr& out) {
  const std::string text(literal);
  return !text.empty() && inet_aton(text.c_str(), &out) != 0;
}

}  // namespace

std::string ImageReference::host() const {
  const std::size_t colon = registry.find(':');
  return registry.substr(0, colon);
}

std::string ImageReference::to_string() const {
  std::string out = registry + "/" + repository;
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  return out;
}

Result<ImageReference> parse_image_reference(std::string_view text) noexcept {
  if (!reference_chars(text)) {
    return fail(ErrorCode::kInvalidArgument, "image must be a reference like registry/name:tag (letters, digits, /:.-_@)");
  }
  ImageReference ref;
  std::string_view rest = text;
  if (const std::size_t at = rest.find('@'); at != std::string_view::npos) {
    ref.digest = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
    if (ref.digest.find(':') == std::string::npos || ref.digest.find('/') != std::string::npos) {
      return fail(ErrorCode::kInvalidArgument, "an image digest looks like sha256:<hex>");
    }
  }
  const std::size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    const std::string_view first = rest.substr(0, slash);
    if (first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos || first == "localhost") {
      ref.registry = lower(first);
      rest = rest.substr(slash + 1);
    }
  }
  const std::size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && rest.find('/', colon) == std::string_view::npos) {
    ref.tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (ref.tag.empty()) return fail(ErrorCode::kInvalidArgument, "an image tag cannot be empty");
  }
  if (rest.empty() || rest.back() == '/' || rest.find("//") != std::string_view::npos || rest.find(':') != std::string_view::npos) {
    return fail(ErrorCode::kInvalidArgument, "image must be a reference like registry/name:tag");
  }
  ref.repository = std::string(rest);
  if (ref.registry.empty()) {
    ref.registry = "docker.io";
    if (ref.repository.find('/') == std::string::npos) ref.repository = "library/" + ref.repository;
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  if (ref.to_string().size() > 255) return fail(ErrorCode::kInvalidArgument, "an image reference has at most 255 characters");
  if (const std::size_t colon_at = ref.registry.find(':'); colon_at != std::string::npos) {
    const std::string_view port = std::string_view(ref.registry).substr(colon_at + 1);
    const bool digits = !port.empty() && port.size() <= 5 &&
                        port.find_first_not_of("0123456789") == std::string_view::npos;
    if (colon_at == 0 || !digits) return fail(ErrorCode::kInvalidArgument, "an image's registry must be HOST or HOST:PORT");
  }
  return ref;
}

bool ip_literal(std::string_view host) noexcept {
  in_addr v4{};
  in6_addr v6{};
  return parse_ipv4(host, v4) || inet_pton(AF_INET6, std::string(host).c_str(), &v6) == 1;
}

bool internal_address(std::string_view literal) noexcept {
  in_addr v4{};
  if (parse_ipv4(literal, v4)) return in_ranges(reinterpret_cast<const unsigned char*>(&v4.s_addr), AF_INET, kInternalIpv4);
  in6_addr v6{};
  if (inet_pton(AF_INET6, std::string(literal).c_str(), &v6) != 1) return false;
  if (in_ranges(v6.s6_addr, AF_INET6, kInternalIpv6)) return true;
  return false;
}

Result<void> check_registry(const ImageReference& image) noexcept {
  if (image.local()) return {};
  const std::string host = image.host();
  const bool loopback_name = host == "localhost" || host.ends_with(".localhost");
  if (loopback_name || ip_literal(host)) {
    if (loopback_name || internal_address(host)) {
      return fail(ErrorCode::kInvalidArgument, "image " + image.to_string() +
                                                   ": its registry is a loopback or private address; use a public registry");
    }
  }
  return {};
}

}  // namespace kaisar
