#include <gtest/gtest.h>

#include "gateway/frame.hpp"
#include "gateway/mux.hpp"
#include "gateway/ports.hpp"

namespace kaisar::gateway {
namespace {

Bytes encoded(const Frame& f) {
  auto e = encode_frame(f);
  EXPECT_TRUE(e) << (e ? "" : e.error().message);
  return e ? *e : Bytes{};
}

TEST(Frame, EveryTypeRoundTrips) {
  const std::vector<Frame> frames = {
      Frame{1, Open{8080, "3f2c1a9e-0b7d-4c52-9a51-2f0e6f1d7b11"}},
      Frame{1, Accept{}},
      Frame{3, Data{Bytes(kMaxData, 0xab)}},
      Frame{3, Window{kMaxWindowIncrement}},
      Frame{5, Fin{}},
      Frame{7, Reset{ResetCode::kNotAllowed, "no port 9 on lease x"}},
      Frame{0, Ping{0x0102030405060708ULL}},
      Frame{0, Pong{42}},
  };
  for (const auto& f : frames) {
    auto back = decode_frame(encoded(f));
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->stream, f.stream);
    EXPECT_EQ(back->body.index(), f.body.index());
  }
  auto open = decode_frame(encoded(frames[0])).value();
  EXPECT_EQ(std::get<Open>(open.body).port, 8080);
  EXPECT_EQ(std::get<Open>(open.body).lease_id, "3f2c1a9e-0b7d-4c52-9a51-2f0e6f1d7b11");
  // The layout is the documented one: type, stream, then the payload, big-endian.
  EXPECT_EQ(encoded(Frame{0x01020304, Window{0x05060708}}), (Bytes{4, 1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(Frame, MalformedFramesAreRefused) {
  auto bad = [](Bytes b) {
    auto f = decode_frame(b);
    EXPECT_FALSE(f) << "accepted " << to_hex(b);
    if (!f) {
      EXPECT_EQ(f.error().code, ErrorCode::kInvalidArgument);
    }
  };
  bad({});
  bad({3, 0, 0, 0});                         // short header
  bad({9, 0, 0, 0, 1});                      // unknown type
  bad({0, 0, 0, 0, 1});
  bad({3, 0, 0, 0, 1});                      // DATA without bytes
  bad({3, 0, 0, 0, 0, 7});                   // DATA on stream 0
  bad({7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1});  // PING on a stream
  bad({7, 0, 0, 0, 0, 1});                   // PING too short
  bad({4, 0, 0, 0, 1, 0, 0, 0, 0});          // WINDOW of 0
  bad({4, 0, 0, 0, 1, 0x80, 0, 0, 0});       // WINDOW over 2^31 - 1
  bad({4, 0, 0, 0, 1, 0, 0, 1});             // WINDOW short
  bad({2, 0, 0, 0, 1, 0});                   // ACCEPT with payload
  bad({5, 0, 0, 0, 1, 0});                   // FIN with payload
  bad({6, 0, 0, 0, 1});                      // RESET without code
  bad({6, 0, 0, 0, 1, 9});                   // RESET unknown code
  bad({6, 0, 0, 0, 1, 1, '\n'});             // RESET message not printable
  bad({1, 0, 0, 0, 1, 0x1f, 0x90, 3, 'a', 'b'});       // OPEN length mismatch
  bad({1, 0, 0, 0, 1, 0, 0, 1, 'a'});                  // OPEN port 0
  bad({1, 0, 0, 0, 1, 0x1f, 0x90, 0});                 // OPEN without lease
  bad({1, 0, 0, 0, 1, 0x1f, 0x90, 2, '.', '/'});       // OPEN lease id with odd characters
  Bytes too_big{3, 0, 0, 0, 1};
  too_big.resize(5 + kMaxData + 1, 1);
  bad(too_big);
  // Frames we would refuse, we do not send.
  EXPECT_FALSE(encode_frame(Frame{0, Data{Bytes{1}}}));
  EXPECT_FALSE(encode_frame(Frame{1, Open{0, "lease"}}));
  EXPECT_FALSE(encode_frame(Frame{1, Reset{ResetCode::kGone, std::string(300, 'x')}}));
}

// Two ends wired back to back: frames from one go through the codec into the other.
struct Pair {
  Mux gateway{Mux::Role::kGateway, 128 * 1024};
  Mux agent{Mux::Role::kAgent, 128 * 1024};
  static Mux::Event deliver(Mux& to, const Frame& f) {
    auto decoded = decode_frame(encoded(f)).value();
    auto event = to.receive(decoded);
    EXPECT_TRUE(event) << event.error().message;
    return event ? *event : Mux::Event{Mux::Nothing{}};
  }
};

TEST(Mux, StreamsOpenCarryDataUnderTheirWindowsAndClose) {
  Pair p;
  auto open = p.gateway.open("lease-1", 22).value();
  auto opened = std::get<Mux::Opened>(Pair::deliver(p.agent, open));
  EXPECT_EQ(opened.lease_id, "lease-1");
  EXPECT_EQ(opened.port, 22);
  EXPECT_EQ(p.gateway.sendable(opened.stream), 0u) << "nothing before the agent accepts";
  std::get<Mux::Accepted>(Pair::deliver(p.gateway, p.agent.accept(opened.stream)));

  // 300 KiB from the gateway: only the 128 KiB window goes out until the agent consumes.
  const Bytes payload(300 * 1024, 0x5a);
  std::size_t taken = 0;
  auto frames = p.gateway.send(opened.stream, payload, &taken);
  EXPECT_EQ(taken, 128u * 1024);
  EXPECT_EQ(frames.size(), 2u);  // 64 KiB each
  EXPECT_EQ(p.gateway.sendable(opened.stream), 0u);
  std::size_t received = 0;
  for (const auto& f : frames) received += std::get<Mux::Received>(Pair::deliver(p.agent, f)).bytes.size();
  EXPECT_EQ(received, taken);
  // The agent wrote it out: half a window consumed gives a WINDOW back.
  EXPECT_FALSE(p.agent.consumed(opened.stream, 1000));
  auto window = p.agent.consumed(opened.stream, received - 1000);
  ASSERT_TRUE(window);
  std::get<Mux::Writable>(Pair::deliver(p.gateway, *window));
  EXPECT_EQ(p.gateway.sendable(opened.stream), 128u * 1024);

  // Both sides finish: the stream is gone from both.
  std::get<Mux::Finished>(Pair::deliver(p.agent, p.gateway.fin(opened.stream)));
  EXPECT_EQ(p.gateway.sendable(opened.stream), 0u) << "nothing after FIN";
  std::get<Mux::Finished>(Pair::deliver(p.gateway, p.agent.fin(opened.stream)));
  EXPECT_EQ(p.gateway.open_streams(), 0u);
  EXPECT_EQ(p.agent.open_streams(), 0u);
}

TEST(Mux, APeerBreakingTheRulesBreaksTheTunnel) {
  Pair p;
  auto open = p.gateway.open("lease-1", 8080).value();
  const std::uint32_t id = open.stream;
  Pair::deliver(p.agent, open);
  // The agent cannot open streams of its own.
  EXPECT_FALSE(p.gateway.receive(Frame{2, Open{22, "lease-1"}}));
  // Data before ACCEPT, beyond the window, after FIN; streams never opened; reused ids.
  EXPECT_FALSE(p.gateway.receive(Frame{id, Data{Bytes{1}}}));
  Pair::deliver(p.gateway, p.agent.accept(id));
  EXPECT_FALSE(p.gateway.receive(Frame{id, Accept{}})) << "a second ACCEPT";
  EXPECT_FALSE(p.agent.receive(Frame{id, Data{Bytes(128 * 1024 + 1, 0)}}));
  EXPECT_FALSE(p.gateway.receive(Frame{99, Data{Bytes{1}}}));
  EXPECT_FALSE(p.agent.receive(Frame{id, Open{22, "lease-1"}})) << "a stream id used again";
  EXPECT_FALSE(p.agent.receive(Frame{4, Open{22, "lease-1"}})) << "an even id";
  EXPECT_FALSE(p.gateway.receive(Frame{id, Window{kMaxWindowIncrement}})) << "window overflow";
  Pair::deliver(p.gateway, p.agent.fin(id));
  EXPECT_FALSE(p.gateway.receive(Frame{id, Data{Bytes{1}}})) << "data after FIN";
  // FIN on a stream the agent has not accepted (the gateway's client would hang half-closed).
  auto second = p.gateway.open("lease-1", 8080).value();
  EXPECT_FALSE(p.gateway.receive(Frame{second.stream, Fin{}})) << "FIN before ACCEPT";
}

TEST(Mux, ResetsEndStreamsAndLateFramesAreDropped) {
  Pair p;
  auto open = p.gateway.open("lease-1", 8080).value();
  Pair::deliver(p.agent, open);
  // The agent cannot reach the port.
  auto reset = p.agent.reset(open.stream, ResetCode::kRefused, "connection refused\n");
  auto event = std::get<Mux::ResetByPeer>(Pair::deliver(p.gateway, reset));
  EXPECT_EQ(event.code, ResetCode::kRefused);
  EXPECT_EQ(event.message, "connection refused?");
  EXPECT_EQ(p.gateway.open_streams(), 0u);
  // Frames already on their way for that stream are dropped, not errors.
  std::get<Mux::Nothing>(Pair::deliver(p.agent, Frame{open.stream, Window{10}}));
  std::get<Mux::Nothing>(Pair::deliver(p.gateway, Frame{open.stream, Fin{}}));
  // Pings are answered.
  auto pong = std::get<Mux::Reply>(Pair::deliver(p.agent, p.gateway.ping(7)));
  EXPECT_EQ(std::get<Pong>(pong.frame.body).opaque, 7u);
}

TEST(Mux, StreamsAreBounded) {
  Mux gateway(Mux::Role::kGateway, Mux::kDefaultWindow, 3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(gateway.open("lease-1", 22));
  auto fourth = gateway.open("lease-1", 22);
  ASSERT_FALSE(fourth);
  EXPECT_EQ(fourth.error().code, ErrorCode::kUnavailable);
  Mux agent(Mux::Role::kAgent, Mux::kDefaultWindow, 1);
  ASSERT_TRUE(agent.receive(Frame{1, Open{22, "lease-1"}}));
  EXPECT_FALSE(agent.receive(Frame{3, Open{22, "lease-1"}}));
}

}  // namespace
}  // namespace kaisar::gateway


namespace kaisar::gateway {
namespace {

TEST(PortPool, EachLeasePortGetsOnePublicPortThatRestsAfterTheLeaseEnds) {
  auto pool = PortPool::create(40000, 40002, std::chrono::seconds{60}).value();
  const auto t0 = PortPool::Clock::time_point{} + std::chrono::hours{1};
  EXPECT_EQ(pool.allocate("lease-a", 22, t0).value(), 40000);
  EXPECT_EQ(pool.allocate("lease-a", 8080, t0).value(), 40001);
  EXPECT_EQ(pool.allocate("lease-a", 22, t0).value(), 40000) << "asked again: the same port";
  EXPECT_EQ(pool.allocate("lease-b", 22, t0).value(), 40002);
  auto full = pool.allocate("lease-c", 22, t0);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(pool.owner(40001)->lease_id, "lease-a");
  EXPECT_EQ(pool.owner(40001)->container_port, 8080);

  // lease-a ends: its ports rest for the cool-down, then go to someone else.
  auto freed = pool.release("lease-a", t0);
  EXPECT_EQ(freed, (std::vector<std::uint16_t>{40000, 40001}));
  EXPECT_FALSE(pool.owner(40000));
  EXPECT_FALSE(pool.allocate("lease-c", 22, t0 + std::chrono::seconds{59}));
  EXPECT_EQ(pool.allocate("lease-c", 22, t0 + std::chrono::seconds{60}).value(), 40000);
  EXPECT_EQ(pool.in_use(), 2u);

  // After a restart, stored allocations come back; a clash is refused.
  auto restarted = PortPool::create(40000, 40002, std::chrono::seconds{60}).value();
  ASSERT_TRUE(restarted.restore(40002, "lease-b", 22));
  EXPECT_TRUE(restarted.restore(40002, "lease-b", 22)) << "the same again is fine";
  EXPECT_EQ(restarted.restore(40002, "lease-c", 22).error().code, ErrorCode::kConflict);
  EXPECT_EQ(restarted.restore(39999, "lease-c", 22).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(restarted.allocate("lease-b", 22, t0).value(), 40002);

  EXPECT_FALSE(PortPool::create(0, 10, std::chrono::seconds{1}));
  EXPECT_FALSE(PortPool::create(20, 10, std::chrono::seconds{1}));
  auto whole = PortPool::create(65535, 65535, std::chrono::seconds{0}).value();
  EXPECT_EQ(whole.allocate("x", 1, t0).value(), 65535);
}

}  // namespace
}  // namespace kaisar::gateway
