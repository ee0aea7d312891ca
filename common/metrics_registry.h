#pragma once
// MetricsRegistry: counters, gauges and histograms with labels, rendered in
// the Prometheus text exposition format (0.0.4) for a process's /metrics.
// Families are declared once (name, type, help); samples are addressed by
// their label values. DefaultMetrics() is the process-wide registry that
// ServerHost's gRPC interceptor counts into and every binary renders.
//
// Thread-safety: every method may be called concurrently (one mutex; the work
// under it is a map update).

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace rlpost {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class MetricsRegistry {
 public:
  enum class Type { kCounter, kGauge, kHistogram };

  // Declares a family; a second declaration of the same name is ignored.
  // `buckets`: upper bounds for a histogram (+Inf implied).
  void Declare(const std::string& name, Type type, const std::string& help,
               std::vector<double> buckets = {});

  // Counter += delta. Undeclared names are declared as counters.
  void Add(const std::string& name, const MetricLabels& labels, double delta = 1.0);
  // Gauge = value. Undeclared names are declared as gauges.
  void Set(const std::string& name, const MetricLabels& labels, double value);
  // Histogram observation (the family must be declared with buckets).
  void Observe(const std::string& name, const MetricLabels& labels, double value);

  // The current value of a counter or gauge sample (0 when absent).
  double Value(const std::string& name, const MetricLabels& labels = {}) const;

  std::string Render() const;

 private:
  struct Histogram {
    std::vector<int64_t> buckets;  // non-cumulative, one per bound
    int64_t count = 0;
    double sum = 0;
  };
  struct Family {
    Type type = Type::kCounter;
    std::string help;
    std::vector<double> bounds;
    std::map<std::string, double> values;         // rendered labels -> value
    std::map<std::string, Histogram> histograms;  // rendered labels -> histogram
  };
  Family& FamilyLocked(const std::string& name, Type type) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Family> families_ ABSL_GUARDED_BY(mu_);
};

// `{a="x",b="y"}` with Prometheus escaping, or "" for no labels.
std::string RenderLabels(const MetricLabels& labels);

// The process-wide registry.
MetricsRegistry& DefaultMetrics();

}  // namespace rlpost
