#include "provider/image_policy.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <memory>

#include "core/image_reference.hpp"

namespace kaisar::provider {

Result<std::vector<std::string>> resolve_host(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0) {
    return fail(ErrorCode::kUnavailable, std::string("cannot resolve ") + host + ": " + ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(found, &::freeaddrinfo);
  std::vector<std::string> out;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char text[NI_MAXHOST];
    if (::getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) == 0) out.emplace_back(text);
  }
  return out;
}

Result<std::string> admit_image(std::string_view image, const std::set<std::string>& local_images,
                                const HostResolver& resolve) {
  auto ref = parse_image_reference(image);
  if (!ref) return std::unexpected(ref.error());
  const std::string name = ref->to_string();
  if (ref->local()) {
    if (!local_images.contains(name)) {
      return fail(ErrorCode::kPermissionDenied,
                  "image " + name + " is local to the provider and not offered for rent; use an image from a registry "
                  "(docker.io/…, ghcr.io/…)");
    }
    return name;
  }
  if (auto checked = check_registry(*ref); !checked) return std::unexpected(checked.error());
  const std::string host = ref->host();
  if (ip_literal(host)) return name;  // check_registry judged the literal
  // A name can point at this machine or its network too; the engine resolves it again when
  // it pulls, so this stops mistakes and plain tricks, not a rebinding DNS server.
  auto addresses = resolve(host);
  if (!addresses) {
    return fail(ErrorCode::kNotFound, "image " + name + ": its registry " + host + " cannot be found");
  }
  for (const auto& address : *addresses) {
    if (internal_address(address)) {
      return fail(ErrorCode::kInvalidArgument,
                  "image " + name + ": its registry is a loopback or private address; use a public registry");
    }
  }
  return name;
}

}  // namespace kaisar::provider
