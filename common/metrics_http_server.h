#pragma once
// MetricsHttpServer: a tiny HTTP/1.0 server on its own thread that answers
// `GET /metrics` with the text a callback renders (Prometheus scrapes), 404
// for other paths and 405 for other methods. One connection at a time, one
// request per connection; requests are capped at 8 KiB and a client gets 5 s
// to send its request line, so a slow client cannot wedge it for long.
//
// Thread-safety: Start and Stop from one owner; `render` is called on the
// server thread and must be safe to call concurrently with everything else.
// Shutdown: Stop (or the destructor) closes the listening socket, wakes the
// thread through a pipe and joins it.

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace rlpost {

class MetricsHttpServer {
 public:
  // Binds `listen` (HOST:PORT; port 0 picks a free one). kInvalidArgument
  // for a malformed address, kUnavailable when the bind fails.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& listen, std::function<std::string()> render);
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }
  void Stop();

 private:
  MetricsHttpServer() = default;
  void Serve();
  void Answer(int fd);

  std::function<std::string()> render_;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  int port_ = 0;
  std::thread thread_;
};

// What every rlpost binary does with --metrics-listen / --metrics-port-file:
// serves DefaultMetrics() followed by `extra()` (may be empty) on `listen`,
// prints "<role> metrics on http://HOST:PORT/metrics" and writes the port to
// `port_file` (write-then-rename; empty: none). Errors name the flag:
// kInvalidArgument for a bad address or port file, kUnavailable for a failed
// bind.
absl::StatusOr<std::unique_ptr<MetricsHttpServer>> StartMetricsEndpoint(
    const std::string& listen, const std::string& port_file, const std::string& role,
    std::function<std::string()> extra = nullptr);

}  // namespace rlpost
