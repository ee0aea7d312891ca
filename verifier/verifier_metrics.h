#pragma once
// VerifierMetrics: the counters behind rlpost-verifier's Prometheus endpoint
// (verdicts by kind and verdict word, a latency histogram per kind, rejected
// items) and their text exposition. Gauges that belong to other objects
// (queue depth, cache hits) are passed to RenderPrometheus by the caller.
//
// Thread-safety: every method may be called concurrently (one mutex; the
// work under it is a map update).

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace rlpost {

// Values read from elsewhere at scrape time.
struct VerifierGauges {
  int64_t queue_depth = 0;
  int64_t in_flight = 0;
  int64_t max_queue = 0;
  int64_t max_concurrency = 0;
  int64_t cache_hits = 0;
  int64_t cache_misses = 0;
  int64_t cache_entries = 0;
};

class VerifierMetrics {
 public:
  // Upper bounds of the latency buckets, in seconds (+Inf is implied).
  static constexpr std::array<double, 12> kLatencyBuckets = {
      0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30};

  // One verdict of `kind` with word `verdict`, `latency` from arrival.
  void RecordVerdict(const std::string& kind, const std::string& verdict, absl::Duration latency);
  // An item or batch refused because the queue was full.
  void RecordRejected();

  int64_t verdicts(const std::string& kind, const std::string& verdict) const;
  int64_t rejected() const;

  // The Prometheus text format (version 0.0.4) of everything.
  std::string RenderPrometheus(const VerifierGauges& gauges) const;

 private:
  struct Histogram {
    std::array<int64_t, kLatencyBuckets.size()> buckets{};  // non-cumulative
    int64_t count = 0;
    double sum_seconds = 0;
  };
  mutable absl::Mutex mu_;
  std::map<std::pair<std::string, std::string>, int64_t> verdicts_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Histogram> latency_ ABSL_GUARDED_BY(mu_);
  int64_t rejected_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rlpost
