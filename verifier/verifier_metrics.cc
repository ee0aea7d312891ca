#include "verifier/verifier_metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace rlpost {

namespace {

// Label values are client-controlled (the kind); escape as the format asks.
std::string LabelValue(const std::string& v) {
  return absl::StrReplaceAll(v, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
}

}  // namespace

void VerifierMetrics::RecordVerdict(const std::string& kind, const std::string& verdict,
                                    absl::Duration latency) {
  const double seconds = absl::ToDoubleSeconds(latency);
  absl::MutexLock lock(&mu_);
  ++verdicts_[{kind, verdict}];
  Histogram& h = latency_[kind];
  size_t b = 0;
  while (b < kLatencyBuckets.size() && seconds > kLatencyBuckets[b]) ++b;
  if (b < kLatencyBuckets.size()) ++h.buckets[b];
  ++h.count;
  h.sum_seconds += seconds;
}

void VerifierMetrics::RecordRejected() {
  absl::MutexLock lock(&mu_);
  ++rejected_;
}

int64_t VerifierMetrics::verdicts(const std::string& kind, const std::string& verdict) const {
  absl::MutexLock lock(&mu_);
  auto it = verdicts_.find({kind, verdict});
  return it == verdicts_.end() ? 0 : it->second;
}

int64_t VerifierMetrics::rejected() const {
  absl::MutexLock lock(&mu_);
  return rejected_;
}

std::string VerifierMetrics::RenderPrometheus(const VerifierGauges& g) const {
  std::string out;
  absl::MutexLock lock(&mu_);
  absl::StrAppend(&out,
                  "# HELP rlpost_verifier_verdicts_total Verdicts sent, by item kind and verdict.\n"
                  "# TYPE rlpost_verifier_verdicts_total counter\n");
  for (const auto& [key, n] : verdicts_) {
    absl::StrAppend(&out, "rlpost_verifier_verdicts_total{kind=\"", LabelValue(key.first),
                    "\",verdict=\"", LabelValue(key.second), "\"} ", n, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP rlpost_verifier_latency_seconds Time from an item's arrival to its "
                  "verdict.\n"
                  "# TYPE rlpost_verifier_latency_seconds histogram\n");
  for (const auto& [kind, h] : latency_) {
    const std::string k = LabelValue(kind);
    int64_t cumulative = 0;
    for (size_t b = 0; b < kLatencyBuckets.size(); ++b) {
      cumulative += h.buckets[b];
      absl::StrAppend(&out, "rlpost_verifier_latency_seconds_bucket{kind=\"", k, "\",le=\"",
                      absl::StrFormat("%g", kLatencyBuckets[b]), "\"} ", cumulative, "\n");
    }
    absl::StrAppend(&out, "rlpost_verifier_latency_seconds_bucket{kind=\"", k,
                    "\",le=\"+Inf\"} ", h.count, "\n");
    absl::StrAppend(&out, "rlpost_verifier_latency_seconds_sum{kind=\"", k, "\"} ",
                    absl::StrFormat("%.9g", h.sum_seconds), "\n");
    absl::StrAppend(&out, "rlpost_verifier_latency_seconds_count{kind=\"", k, "\"} ", h.count,
                    "\n");
  }
  auto gauge = [&out](const char* name, const char* type, const char* help, int64_t v) {
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", name,
                    " ", v, "\n");
  };
  gauge("rlpost_verifier_queue_depth", "gauge", "Items waiting for a judge thread.",
        g.queue_depth);
  gauge("rlpost_verifier_in_flight", "gauge", "Items being judged now.", g.in_flight);
  gauge("rlpost_verifier_max_queue", "gauge", "Queue limit (--max-queue).", g.max_queue);
  gauge("rlpost_verifier_max_concurrency", "gauge", "Judge threads (--max-concurrency).",
        g.max_concurrency);
  gauge("rlpost_verifier_rejected_total", "counter",
        "Items or batches refused with RESOURCE_EXHAUSTED (queue full).", rejected_);
  gauge("rlpost_verifier_cache_hits_total", "counter", "Verdicts answered from the cache.",
        g.cache_hits);
  gauge("rlpost_verifier_cache_misses_total", "counter", "Cache lookups that missed.",
        g.cache_misses);
  gauge("rlpost_verifier_cache_entries", "gauge", "Verdicts held in the cache.",
        g.cache_entries);
  return out;
}

}  // namespace rlpost
