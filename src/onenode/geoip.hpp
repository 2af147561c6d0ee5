#pragma once

#include <memory>
#include <mutex>
#include <string>

namespace kaisar::onenode {

// Country of an IP address from Debian's GeoIP database (geoip-database). Loopback
// addresses are "local", private and link-local ones "private", unknown ones "unknown".
class GeoIpLocator {
 public:
  explicit GeoIpLocator(const std::string& database_path);
  ~GeoIpLocator();
  GeoIpLocator(const GeoIpLocator&) = delete;
  GeoIpLocator& operator=(const GeoIpLocator&) = delete;

  std::string country(const std::string& ip) const;
  bool available() const { return v4_ != nullptr; }

 private:
  void* v4_ = nullptr;  // GeoIP*
  void* v6_ = nullptr;
  mutable std::mutex mutex_;
};

}  // namespace kaisar::onenode
