#include <gtest/gtest.h>

#include "core/image_reference.hpp"

namespace kaisar {
namespace {

TEST(ImageReference, ShortNamesAreDockerHubs) {
  EXPECT_EQ(parse_image_reference("nginx").value().to_string(), "docker.io/library/nginx:latest");
  EXPECT_EQ(parse_image_reference("nginx:1.27").value().to_string(), "docker.io/library/nginx:1.27");
  EXPECT_EQ(parse_image_reference("grafana/grafana:11").value().to_string(), "docker.io/grafana/grafana:11");
  const auto ghcr = parse_image_reference("GHCR.io/owner/app:v1@sha256:abc").value();
  EXPECT_EQ(ghcr.registry, "ghcr.io");
  EXPECT_EQ(ghcr.repository, "owner/app");
  EXPECT_EQ(ghcr.tag, "v1");
  EXPECT_EQ(ghcr.digest, "sha256:abc");
  const auto port = parse_image_reference("registry.example:5000/team/app").value();
  EXPECT_EQ(port.host(), "registry.example");
  EXPECT_EQ(port.to_string(), "registry.example:5000/team/app:latest");
  EXPECT_TRUE(parse_image_reference("localhost/kaisar/demo:latest").value().local());
}

TEST(ImageReference, MalformedReferencesAreRefused) {
  for (const char* bad : {"", "/etc", "../x", "a b", "x:", "x/", "a//b", "x@nodigest", "x@sha256:a/b",
                          "evil image; rm -rf /", ":5000/x", "a::b/c"}) {
    EXPECT_FALSE(parse_image_reference(bad)) << bad;
  }
}

TEST(ImageReference, InternalAddressesInEverySpelling) {
  for (const char* internal : {"127.0.0.1", "127.1", "2130706433", "0x7f.0.0.1", "10.1.2.3", "172.31.255.255",
                               "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "::", "fe80::1",
                               "fd00::5", "::ffff:10.0.0.1", "224.0.0.1"}) {
    EXPECT_TRUE(internal_address(internal)) << internal;
  }
  for (const char* outside : {"1.1.1.1", "172.32.0.1", "100.128.0.1", "8.8.8.8", "2606:4700::1111", "docker.io"}) {
    EXPECT_FALSE(internal_address(outside)) << outside;
  }
}

TEST(ImageReference, RegistriesOnThisMachineOrItsNetworkAreRefused) {
  for (const char* bad : {"localhost:5000/x", "127.0.0.1:5000/x", "127.1:80/x", "2130706433:5000/x", "10.0.0.5/x:1",
                          "169.254.169.254/latest/meta-data", "evil.localhost/x", "192.168.0.10:443/team/app"}) {
    auto ref = parse_image_reference(bad);
    ASSERT_TRUE(ref) << bad;
    auto checked = check_registry(*ref);
    ASSERT_FALSE(checked) << bad;
    EXPECT_NE(checked.error().message.find("loopback or private"), std::string::npos) << checked.error().message;
  }
  for (const char* good : {"nginx", "ghcr.io/owner/app:1", "1.1.1.1:5000/x", "localhost/kaisar/demo:latest"}) {
    EXPECT_TRUE(check_registry(parse_image_reference(good).value())) << good;
  }
}

}  // namespace
}  // namespace kaisar
