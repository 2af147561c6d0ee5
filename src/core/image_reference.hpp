#pragma once

#include <array>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace kaisar {

// A container image reference in Docker's grammar: [registry/]repository[:tag][@digest].
// A first component with '.' or ':' in it, or "localhost", is a registry; without one the
// image is Docker Hub's (as both Docker and Podman-with-docker.io read it), so a reference
// always names where it comes from.
struct ImageReference {
  std::string registry;    // "docker.io", "ghcr.io", "registry.example:5000", "localhost"
  std::string repository;  // "library/nginx"
  std::string tag;         // "1.27"; empty when only a digest is given
  std::string digest;      // "sha256:…" or empty

  // The registry's host, without its port.
  std::string host() const;
  // registry/repository[:tag][@digest]: what the agent hands the engine.
  std::string to_string() const;
  // Podman's name for images that come from no registry (built or imported on the machine).
  bool local() const { return registry == "localhost"; }
};

// Parses and checks the characters (the reference goes into engine API paths: no "..",
// nothing but letters, digits and /:.-_@). A short name gets docker.io (and library/).
Result<ImageReference> parse_image_reference(std::string_view text) noexcept;

// Address ranges that are not the public internet: this host, private networks, CGNAT,
// link-local (cloud metadata at 169.254.169.254), documentation, multicast, reserved.
// The agent's firewall drops lease traffic to them; a registry there is refused.
inline constexpr std::array<std::string_view, 15> kInternalIpv4 = {
    "0.0.0.0/8",       "10.0.0.0/8",     "100.64.0.0/10",    "127.0.0.0/8",    "169.254.0.0/16",
    "172.16.0.0/12",   "192.0.0.0/24",   "192.0.2.0/24",     "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15",   "198.51.100.0/24", "203.0.113.0/24",  "224.0.0.0/4",    "240.0.0.0/4"};
inline constexpr std::array<std::string_view, 8> kInternalIpv6 = {
    "::/127", "::ffff:0:0/96", "64:ff9b::/96", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8"};

// Whether `literal` is an IP address (IPv4 in any form inet_aton takes: "127.1",
// "2130706433", "0x7f.0.0.1"; or IPv6) in one of the ranges above. False for names.
bool internal_address(std::string_view literal) noexcept;
// Whether `host` is written as an IP address at all.
bool ip_literal(std::string_view host) noexcept;

// Refuses a registry that is this machine or its network by name or literal
// ("localhost:5000/x", "10.0.0.5/x", "127.1:80/x", "x.localhost/y"). "localhost/x" names a
// local image, not a registry, and passes: whether one may run is the provider's choice.
Result<void> check_registry(const ImageReference& image) noexcept;

}  // namespace kaisar
