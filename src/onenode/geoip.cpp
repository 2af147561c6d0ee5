#include "onenode/geoip.hpp"

#include <GeoIP.h>
#include <arpa/inet.h>

#include <filesystem>

namespace kaisar::onenode {

namespace {
GeoIP* as_geoip(void* p) { return static_cast<GeoIP*>(p); }

bool is_loopback(const std::string& ip) {
  in_addr a4{};
  if (inet_pton(AF_INET, ip.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6{};
  if (inet_pton(AF_INET6, ip.c_str(), &a6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) return a6.s6_addr[12] == 127;
  }
  return false;
}

bool is_private(const std::string& ip) {
  in_addr a4{};
  if (inet_pton(AF_INET, ip.c_str(), &a4) == 1) {
    const std::uint32_t a = ntohl(a4.s_addr);
    return (a >> 24) == 10 || (a >> 20) == 0xAC1 || (a >> 16) == 0xC0A8 || (a >> 16) == 0xA9FE ||
           (a >> 22) == (100u << 2 | 1u);  // 100.64/10 carrier-grade NAT
  }
  in6_addr a6{};
  if (inet_pton(AF_INET6, ip.c_str(), &a6) == 1) {
    return (a6.s6_addr[0] & 0xfe) == 0xfc || IN6_IS_ADDR_LINKLOCAL(&a6);
  }
  return false;
}
}  // namespace

GeoIpLocator::GeoIpLocator(const std::string& database_path) {
  if (std::filesystem::exists(database_path)) {
    v4_ = GeoIP_open(database_path.c_str(), GEOIP_MEMORY_CACHE | GEOIP_SILENCE);
  }
  auto v6_path = std::filesystem::path(database_path).parent_path() / "GeoIPv6.dat";
  if (std::filesystem::exists(v6_path)) {
    v6_ = GeoIP_open(v6_path.c_str(), GEOIP_MEMORY_CACHE | GEOIP_SILENCE);
  }
}

GeoIpLocator::~GeoIpLocator() {
  if (v4_ != nullptr) GeoIP_delete(as_geoip(v4_));
  if (v6_ != nullptr) GeoIP_delete(as_geoip(v6_));
}

std::string GeoIpLocator::country(const std::string& ip_in) const {
  std::string ip = ip_in;
  if (ip.rfind("::ffff:", 0) == 0 && ip.find('.') != std::string::npos) ip = ip.substr(7);
  if (is_loopback(ip)) return "local";
  if (is_private(ip)) return "private";
  std::lock_guard lock(mutex_);
  const char* code = nullptr;
  if (ip.find(':') == std::string::npos) {
    if (v4_ != nullptr) code = GeoIP_country_code_by_addr(as_geoip(v4_), ip.c_str());
  } else if (v6_ != nullptr) {
    code = GeoIP_country_code_by_addr_v6(as_geoip(v6_), ip.c_str());
  }
  return code != nullptr ? std::string(code) : "unknown";
}

}  // namespace kaisar::onenode
