// actors/wire_traffic.hpp — the bytes this process really sent and received on the TCP connections of one port.
//
// The computed bytes_up / bytes_down of a round count tensor payloads; what crosses the network
// also carries CAF's message headers, the other messages of a round (evaluations, plans) and,
// with TLS, the record overhead. The kernel counts it per connection (TCP_INFO), which is what
// this reads: no hook into CAF's middleman is needed.
#pragma once

#include <cstdint>
#include <map>
#include <utility>

namespace fedvlm {

struct WireBytes {
  int64_t sent = 0;     ///< payload bytes sent (retransmissions included: what went out)
  int64_t received = 0; ///< payload bytes received
};

/// Totals over this process's open TCP connections whose local or remote port is `port` (not
/// the listening socket itself), as the kernel counts them. Linux only; elsewhere zeros.
[[nodiscard]] WireBytes tcp_bytes_on_port(uint16_t port);

/// Bytes on the connections of one port between two readings; connections opened in between
/// count from their start, those closed in between lose what was not read before they closed.
class WireTrafficMeter {
public:
  explicit WireTrafficMeter(uint16_t port) : port_(port) {}
  /// Bytes since the previous call (the first call: since each connection opened).
  WireBytes take();

private:
  uint16_t port_;
  std::map<std::pair<int, uint64_t>, WireBytes> last_; ///< (fd, socket inode) → totals at the last take
};

} // namespace fedvlm
