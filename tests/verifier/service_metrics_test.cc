// VerifierMetrics' Prometheus text and the MetricsHttpServer that serves it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/metrics_http_server.h"
#include "tests/cli/cli_test_util.h"
#include "verifier/verifier_metrics.h"

namespace rlpost {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(VerifierMetricsTest, RendersCountersHistogramAndGauges) {
  VerifierMetrics m;
  m.RecordVerdict("math", "correct", absl::Microseconds(50));
  m.RecordVerdict("math", "correct", absl::Milliseconds(2));
  m.RecordVerdict("math", "incorrect", absl::Seconds(100));
  m.RecordRejected();
  VerifierGauges g;
  g.queue_depth = 3;
  g.cache_hits = 7;
  const std::string text = m.RenderPrometheus(g);
  EXPECT_THAT(text, HasSubstr("# TYPE rlpost_verifier_verdicts_total counter\n"));
  EXPECT_THAT(text,
              HasSubstr("rlpost_verifier_verdicts_total{kind=\"math\",verdict=\"correct\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("rlpost_verifier_verdicts_total{kind=\"math\",verdict=\"incorrect\"} 1\n"));
  // Buckets are cumulative; 100 s only lands in +Inf.
  EXPECT_THAT(text, HasSubstr("rlpost_verifier_latency_seconds_bucket{kind=\"math\",le=\"0.0001\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("rlpost_verifier_latency_seconds_bucket{kind=\"math\",le=\"0.005\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("rlpost_verifier_latency_seconds_bucket{kind=\"math\",le=\"30\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("rlpost_verifier_latency_seconds_bucket{kind=\"math\",le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("rlpost_verifier_latency_seconds_count{kind=\"math\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("rlpost_verifier_queue_depth 3\n"));
  EXPECT_THAT(text, HasSubstr("rlpost_verifier_cache_hits_total 7\n"));
  EXPECT_THAT(text, HasSubstr("rlpost_verifier_rejected_total 1\n"));
  EXPECT_EQ(m.verdicts("math", "correct"), 2);
}

TEST(VerifierMetricsTest, EscapesLabelValues) {
  VerifierMetrics m;
  m.RecordVerdict("a\"b\\c\nd", "x", absl::ZeroDuration());
  EXPECT_THAT(m.RenderPrometheus({}), HasSubstr("kind=\"a\\\"b\\\\c\\nd\""));
}

using ::rlpost::testing::HttpExchange;

TEST(MetricsHttpServerTest, AnswersGetMetricsAndRefusesTheRest) {
  int renders = 0;
  auto server = MetricsHttpServer::Start("127.0.0.1:0", [&renders] {
    ++renders;
    return std::string("rlpost_verifier_queue_depth 0\n");
  });
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);

  std::string ok = HttpExchange(port, "GET /metrics HTTP/1.0\r\n\r\n");
  EXPECT_THAT(ok, StartsWith("HTTP/1.0 200 OK\r\n"));
  EXPECT_THAT(ok, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(ok, HasSubstr("\r\n\r\nrlpost_verifier_queue_depth 0\n"));

  EXPECT_THAT(HttpExchange(port, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n"),
              StartsWith("HTTP/1.0 404"));
  EXPECT_THAT(HttpExchange(port, "POST /metrics HTTP/1.0\r\n\r\n"), StartsWith("HTTP/1.0 405"));
  EXPECT_THAT(HttpExchange(port, "garbage\r\n\r\n"), StartsWith("HTTP/1.0 400"));
  (*server)->Stop();
  EXPECT_EQ(renders, 1);  // read after Stop joined the server thread
}

TEST(MetricsHttpServerTest, RandomRequestsNeverStopIt) {
  auto server = MetricsHttpServer::Start("127.0.0.1:0", [] { return std::string("ok\n"); });
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  std::mt19937 rng(11);
  const std::string pieces[] = {"GET", " ", "/metrics", "HTTP/1.0", "\r\n", "\n", "\0", "?",
                                "POST", "\xff", "%", "/", "\r\n\r\n"};
  for (int i = 0; i < 200; ++i) {
    std::string request;
    const int n = static_cast<int>(rng() % 12);
    for (int j = 0; j < n; ++j) request += pieces[rng() % std::size(pieces)];
    // Always end the headers so the server answers instead of waiting.
    request += "\r\n\r\n";
    const std::string response = HttpExchange(port, request);
    EXPECT_THAT(response, StartsWith("HTTP/1.0 ")) << i;
  }
  EXPECT_THAT(HttpExchange(port, "GET /metrics HTTP/1.0\r\n\r\n"), HasSubstr("\r\n\r\nok\n"));
  // A request over the 8 KiB cap is answered too.
  EXPECT_THAT(HttpExchange(port, "GET /" + std::string(20000, 'a') + " HTTP/1.0\r\n\r\n"),
              StartsWith("HTTP/1.0 404"));
}

TEST(MetricsHttpServerTest, MalformedAddressIsInvalidArgument) {
  auto server = MetricsHttpServer::Start("no-port", [] { return std::string(); });
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), HasSubstr("--metrics-listen must be HOST:PORT"));
}

}  // namespace
}  // namespace rlpost
