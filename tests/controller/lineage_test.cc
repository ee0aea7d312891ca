// Sample lineage records and their audit.
#include "controller/lineage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace rlpost {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Dir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "/lineage_" + name;
  fs::remove_all(d);
  return d;
}

nlohmann::ordered_json Issued(int64_t step, int64_t group, int64_t n = 2) {
  return {{"type", "issued"}, {"step", step}, {"round", 0}, {"group", group}, {"n", n}};
}

nlohmann::ordered_json Sample(int64_t step, int64_t group, int64_t index, bool used = true) {
  return {{"type", "sample"}, {"step", step},          {"round", 0},
          {"group", group},   {"sample_index", index}, {"used", used}};
}

void Write(LineageLog* log, const std::vector<nlohmann::ordered_json>& records) {
  for (const auto& r : records) ASSERT_TRUE(log->Append(r).ok());
}

TEST(LineageTest, VersionSegmentsAreRunsOfOneVersion) {
  EXPECT_EQ(VersionSegments({5, 5, 6, 6, 6, 5}).dump(),
            R"([{"version":5,"tokens":2},{"version":6,"tokens":3},{"version":5,"tokens":1}])");
  EXPECT_EQ(VersionSegments({}).dump(), "[]");
}

TEST(LineageTest, FilesRotateBySizeAndAReopenedLogStartsANewFile) {
  const std::string run = Dir("rotate");
  {
    auto log = LineageLog::Open(run + "/samples", /*rotate_bytes=*/50);
    ASSERT_TRUE(log.ok());
    Write(log->get(), {Issued(1, 0), Issued(1, 1), Issued(1, 2)});  // over 50 bytes each
    EXPECT_EQ(fs::path((*log)->current_file()).filename(), "samples-00002.jsonl");
  }
  auto log = LineageLog::Open(run + "/samples", 50);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(fs::path((*log)->current_file()).filename(), "samples-00003.jsonl");
  Write(log->get(), {Sample(1, 0, 0), Sample(1, 0, 1), Sample(1, 1, 0), Sample(1, 1, 1),
                     Sample(1, 2, 0), Sample(1, 2, 1, false)});
  auto report = AuditRun(run);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->issued, 6);
  EXPECT_EQ(report->samples, 6);
  EXPECT_EQ(report->used, 5);
}

TEST(LineageTest, AuditCountsLostAndDuplicatedSamples) {
  const std::string run = Dir("audit");
  auto log = LineageLog::Open(run + "/samples");
  ASSERT_TRUE(log.ok());
  Write(log->get(), {Issued(1, 0), Sample(1, 0, 0),  // sample 1 lost
                     Issued(1, 1), Sample(1, 1, 0), Sample(1, 1, 1), Sample(1, 1, 1),  // twice
                     Sample(2, 0, 0)});  // never issued
  auto report = AuditRun(run);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_FALSE(report->ok());
  EXPECT_EQ(report->samples, 4);
  EXPECT_EQ(report->lost, 1);
  EXPECT_EQ(report->duplicated, 2);
  EXPECT_THAT(report->problems,
              ::testing::UnorderedElementsAre("step 1 round 0 group 0 sample 1: lost (issued, never recorded)",
                                              "step 1 round 0 group 1 sample 1: recorded 2 times",
                                              "step 2 round 0 group 0 sample 0: recorded but never issued"));
}

TEST(LineageTest, AResumeSupersedesTheInterruptedAttemptsLaterSteps) {
  const std::string run = Dir("resume");
  auto log = LineageLog::Open(run + "/samples");
  ASSERT_TRUE(log.ok());
  // Step 2 was checkpointed; step 3 crashed half-way and is re-run.
  Write(log->get(), {Issued(2, 0), Sample(2, 0, 0), Sample(2, 0, 1), Issued(3, 0),
                     Sample(3, 0, 0),
                     {{"type", "resume"}, {"after_step", 2}},
                     Issued(3, 0), Sample(3, 0, 0), Sample(3, 0, 1)});
  auto report = AuditRun(run);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok()) << report->problems.front();
  EXPECT_EQ(report->samples, 4);
}

TEST(LineageTest, UnreadableRecordsNameFileAndLine) {
  const std::string run = Dir("bad");
  EXPECT_EQ(AuditRun(run).status().code(), absl::StatusCode::kNotFound);
  fs::create_directories(run + "/samples");
  std::ofstream(run + "/samples/samples-00000.jsonl")
      << R"({"type":"issued","step":1,"round":0,"group":0,"n":1})" << "\n"
      << R"({"type":"sample","step":1})" << "\n";
  auto report = AuditRun(run);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(report.status().message()),
              HasSubstr("samples-00000.jsonl:2: sample record lacks its key fields"));
  std::ofstream(run + "/samples/samples-00000.jsonl") << "not json\n";
  EXPECT_THAT(std::string(AuditRun(run).status().message()),
              HasSubstr("samples-00000.jsonl:1: not a lineage record"));
}

}  // namespace
TEST(LineageTest, AUsedSampleOverTheStalenessBoundFailsTheAudit) {
  const std::string run = Dir("stale");
  auto log = LineageLog::Open(run + "/samples");
  ASSERT_TRUE(log.ok());
  auto stale = [](int64_t index, int64_t oldest, int64_t learner, bool used) {
    nlohmann::ordered_json j = Sample(4, 0, index, used);
    j["segments"] = VersionSegments({oldest, oldest, learner});
    j["learner_version"] = used ? nlohmann::ordered_json(learner) : nlohmann::ordered_json(nullptr);
    j["max_staleness"] = 1;
    return j;
  };
  Write(log->get(), {Issued(4, 0, 3), stale(0, 9, 10, true), stale(1, 7, 10, true),
                     stale(2, 5, 10, false)});  // unused: not checked
  auto report = AuditRun(run);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_FALSE(report->ok());
  EXPECT_EQ(report->lost, 0);
  EXPECT_EQ(report->stale, 1);
  EXPECT_EQ(report->staleness_max, 3);
  EXPECT_EQ(report->staleness_bound, 1);
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_THAT(report->problems[0],
              HasSubstr("sample 1: trained 3 weight versions behind (bound 1)"));
}

}  // namespace rlpost
