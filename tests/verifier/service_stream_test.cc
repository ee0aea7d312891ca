// VerifyStream, backpressure, the result cache and code items, through
// VerifierServiceImpl over a real loopback channel (port 0).

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/grpc_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlpost/v1/verifier.grpc.pb.h"
#include "verifier/verifier_service.h"

namespace rlpost {
namespace {

using ::testing::HasSubstr;

v1::VerifyItem MathItem(const std::string& id, const std::string& response,
                        const std::string& reference) {
  v1::VerifyItem item;
  item.set_id(id);
  item.set_kind("math");
  item.set_response(response);
  item.set_reference(reference);
  return item;
}

// A code judge that accepts programs printing exactly "ok".
class FakeCodeJudge final : public CodeItemJudge {
 public:
  std::string version() const override { return "fake-code/1"; }
  void Judge(const v1::VerifyItem& item, v1::Verdict* verdict) const override {
    const bool ok = item.code().code() == "print('ok')";
    verdict->set_status(v1::VERDICT_STATUS_OK);
    verdict->set_verdict(ok ? "accepted" : "wrong_answer");
    verdict->set_correct(ok);
    verdict->set_score(ok ? 1.0f : 0.0f);
    v1::TestResult* t = verdict->add_tests();
    t->set_index(0);
    t->set_verdict(verdict->verdict());
  }
};

class VerifierStreamTest : public ::testing::Test {
 protected:
  void Start(VerifierServiceImpl::Options options = {}) {
    service_ = std::make_unique<VerifierServiceImpl>(std::move(options));
    auto host = ServerHost::Start("127.0.0.1:0", {service_.get()}, "", "verifier-test");
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = *std::move(host);
    stub_ = v1::VerifierService::NewStub(MakeChannel(host_->address()));
  }

  void TearDown() override {
    if (host_) host_->Shutdown();
  }

  // Sends every item, half-closes, and collects the verdicts by id.
  grpc::Status Stream(const std::vector<v1::VerifyItem>& items,
                      std::map<std::string, v1::Verdict>* verdicts) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto stream = stub_->VerifyStream(&context);
    for (const v1::VerifyItem& item : items) {
      if (!stream->Write(item)) break;
    }
    stream->WritesDone();
    v1::Verdict v;
    while (stream->Read(&v)) (*verdicts)[v.id()] = v;
    return stream->Finish();
  }

  std::unique_ptr<VerifierServiceImpl> service_;
  std::unique_ptr<ServerHost> host_;
  std::unique_ptr<v1::VerifierService::Stub> stub_;
};

TEST_F(VerifierStreamTest, EveryItemGetsOneVerdictWithItsIdAndVersion) {
  Start();
  std::vector<v1::VerifyItem> items;
  for (int i = 0; i < 200; ++i) {
    const std::string n = std::to_string(i);
    items.push_back(MathItem("item-" + n, "\\boxed{" + n + "}", i % 3 == 0 ? "-1" : n));
  }
  items.push_back(MathItem("none", "no idea", "4"));
  std::map<std::string, v1::Verdict> verdicts;
  ASSERT_TRUE(Stream(items, &verdicts).ok());
  ASSERT_EQ(verdicts.size(), items.size());
  for (int i = 0; i < 200; ++i) {
    const v1::Verdict& v = verdicts["item-" + std::to_string(i)];
    EXPECT_EQ(v.verdict(), i % 3 == 0 ? "incorrect" : "correct") << i;
    EXPECT_EQ(v.correct(), i % 3 != 0);
    EXPECT_EQ(v.verifier_version(), kMathVerifierVersion);
    EXPECT_GE(v.latency_ms(), 0.0);
  }
  EXPECT_EQ(verdicts["none"].verdict(), "no_answer");
  EXPECT_EQ(verdicts["none"].status(), v1::VERDICT_STATUS_NO_ANSWER);
  EXPECT_EQ(service_->items_verified(), 201);
  EXPECT_EQ(service_->metrics().verdicts("math", "correct"), 133);
}

TEST_F(VerifierStreamTest, EmptyStreamEndsOk) {
  Start();
  std::map<std::string, v1::Verdict> verdicts;
  EXPECT_TRUE(Stream({}, &verdicts).ok());
  EXPECT_TRUE(verdicts.empty());
}

TEST_F(VerifierStreamTest, PerItemDeadlineFromArrival) {
  // The clock advances 1 ms per read; an item reads it on arrival and before
  // judging, so a 1 ms budget has passed and a 10 ms budget has not.
  auto reads = std::make_shared<std::atomic<int64_t>>(0);
  VerifierServiceImpl::Options options;
  options.now = [reads] { return absl::UnixEpoch() + absl::Milliseconds(reads->fetch_add(1)); };
  options.max_concurrency = 1;
  Start(options);
  v1::VerifyItem late = MathItem("late", "\\boxed{1}", "1");
  late.set_deadline_ms(1);
  v1::VerifyItem fine = MathItem("fine", "\\boxed{1}", "1");
  fine.set_deadline_ms(10000);
  v1::VerifyItem negative = MathItem("negative", "\\boxed{1}", "1");
  negative.set_deadline_ms(-3);
  std::map<std::string, v1::Verdict> verdicts;
  ASSERT_TRUE(Stream({late, fine, negative}, &verdicts).ok());
  EXPECT_EQ(verdicts["late"].status(), v1::VERDICT_STATUS_TIMEOUT);
  EXPECT_EQ(verdicts["late"].verdict(), "timeout");
  EXPECT_THAT(verdicts["late"].reason(), HasSubstr("deadline"));
  EXPECT_EQ(verdicts["fine"].verdict(), "correct");
  EXPECT_EQ(verdicts["negative"].verdict(), "error");
  EXPECT_THAT(verdicts["negative"].reason(), HasSubstr("deadline_ms must be >= 0"));
}

TEST_F(VerifierStreamTest, FullQueueEndsTheStreamWithResourceExhausted) {
  // One judge thread held inside the first item, one queue slot: the third
  // item is refused. The held item is released once the refusal is seen, so
  // both accepted items still get their verdicts.
  auto release = std::make_shared<absl::Notification>();
  auto first_started = std::make_shared<absl::Notification>();
  VerifierServiceImpl::Options options;
  options.max_concurrency = 1;
  options.max_queue = 1;
  options.before_judge = [release, first_started](const v1::VerifyItem& item) {
    if (item.id() == "held") {
      first_started->Notify();
      release->WaitForNotification();
    }
  };
  Start(options);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto stream = stub_->VerifyStream(&context);
  ASSERT_TRUE(stream->Write(MathItem("held", "\\boxed{1}", "1")));
  first_started->WaitForNotification();
  ASSERT_TRUE(stream->Write(MathItem("queued", "\\boxed{2}", "2")));
  stream->Write(MathItem("refused", "\\boxed{3}", "3"));
  // Metrics count the refusal once the reader has seen it.
  while (service_->metrics().rejected() == 0) std::this_thread::yield();
  release->Notify();
  stream->WritesDone();
  std::map<std::string, v1::Verdict> verdicts;
  v1::Verdict v;
  while (stream->Read(&v)) verdicts[v.id()] = v;
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("--max-queue=1"));
  EXPECT_EQ(verdicts.size(), 2u);
  EXPECT_EQ(verdicts["held"].verdict(), "correct");
  EXPECT_EQ(verdicts["queued"].verdict(), "correct");
  EXPECT_EQ(verdicts.count("refused"), 0u);
}

TEST_F(VerifierStreamTest, ClientCancellingMidStreamLeavesTheServerUsable) {
  // The client gives up while an item is being judged and another waits; the
  // server finishes both jobs, drops their verdicts and serves the next call.
  auto release = std::make_shared<absl::Notification>();
  auto started = std::make_shared<absl::Notification>();
  VerifierServiceImpl::Options options;
  options.max_concurrency = 1;
  options.before_judge = [release, started](const v1::VerifyItem& item) {
    if (item.id() == "held") {
      started->Notify();
      release->WaitForNotification();
    }
  };
  Start(options);
  {
    grpc::ClientContext context;
    auto stream = stub_->VerifyStream(&context);
    ASSERT_TRUE(stream->Write(MathItem("held", "\\boxed{1}", "1")));
    started->WaitForNotification();
    stream->Write(MathItem("waiting", "\\boxed{2}", "2"));
    context.TryCancel();
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  release->Notify();
  std::map<std::string, v1::Verdict> verdicts;
  ASSERT_TRUE(Stream({MathItem("after", "\\boxed{3}", "3")}, &verdicts).ok());
  EXPECT_EQ(verdicts["after"].verdict(), "correct");
}

TEST_F(VerifierStreamTest, UnaryVerifyIsRefusedWhenTheQueueIsFull) {
  auto release = std::make_shared<absl::Notification>();
  auto started = std::make_shared<absl::Notification>();
  VerifierServiceImpl::Options options;
  options.max_concurrency = 1;
  options.max_queue = 0;
  options.before_judge = [release, started](const v1::VerifyItem&) {
    started->Notify();
    release->WaitForNotification();
  };
  Start(options);
  std::thread busy([&] {
    v1::VerifyRequest request;
    *request.add_items() = MathItem("a", "\\boxed{1}", "1");
    v1::VerifyResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(stub_->Verify(&context, request, &response).ok());
  });
  started->WaitForNotification();
  v1::VerifyRequest request;
  *request.add_items() = MathItem("b", "\\boxed{1}", "1");
  v1::VerifyResponse response;
  grpc::ClientContext context;
  grpc::Status status = stub_->Verify(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("verifier queue is full"));
  release->Notify();
  busy.join();
  EXPECT_THAT(service_->RenderMetrics(), HasSubstr("rlpost_verifier_rejected_total 1\n"));
}

TEST_F(VerifierStreamTest, RepeatedItemsAreAnsweredFromTheCache) {
  auto judged = std::make_shared<std::atomic<int>>(0);
  VerifierServiceImpl::Options options;
  options.max_concurrency = 1;  // the second item arrives after the first is cached
  options.before_judge = [judged](const v1::VerifyItem&) { judged->fetch_add(1); };
  Start(options);
  std::map<std::string, v1::Verdict> first, second;
  ASSERT_TRUE(Stream({MathItem("a", "\\boxed{\\frac12}", "0.5")}, &first).ok());
  ASSERT_TRUE(Stream({MathItem("b", "\\boxed{\\frac12}", "0.5")}, &second).ok());
  EXPECT_FALSE(first["a"].cached());
  ASSERT_EQ(second.count("b"), 1u);
  EXPECT_TRUE(second["b"].cached());
  EXPECT_EQ(second["b"].id(), "b");
  EXPECT_EQ(second["b"].verdict(), "correct");
  EXPECT_EQ(second["b"].extracted(), first["a"].extracted());
  EXPECT_EQ(judged->load(), 1);
  EXPECT_EQ(service_->cache().hits(), 1);
  EXPECT_THAT(service_->RenderMetrics(), HasSubstr("rlpost_verifier_cache_hits_total 1\n"));

  grpc::ClientContext context;
  v1::VerifierInfo info;
  ASSERT_TRUE(stub_->GetInfo(&context, v1::GetInfoRequest(), &info).ok());
  EXPECT_EQ(info.cache_hits(), 1);
  EXPECT_EQ(info.items_verified(), 2);
}

TEST_F(VerifierStreamTest, AnswerOnlyModeTakesTheWholeResponse) {
  Start();
  v1::VerifyItem plain = MathItem("plain", "\\frac{1}{2}", "0.5");
  plain.set_mode("answer_only");
  v1::VerifyItem empty = MathItem("empty", "  ", "0.5");
  empty.set_mode("answer_only");
  v1::VerifyItem unbalanced = MathItem("unbalanced", "}{", "0.5");
  unbalanced.set_mode("answer_only");
  v1::VerifyItem bad_mode = MathItem("bad-mode", "1", "1");
  bad_mode.set_mode("guess");
  std::map<std::string, v1::Verdict> verdicts;
  ASSERT_TRUE(Stream({plain, empty, unbalanced, bad_mode}, &verdicts).ok());
  EXPECT_EQ(verdicts["plain"].verdict(), "correct");
  EXPECT_EQ(verdicts["empty"].verdict(), "no_answer");
  EXPECT_EQ(verdicts["unbalanced"].verdict(), "incorrect");
  EXPECT_EQ(verdicts["bad-mode"].verdict(), "error");
  EXPECT_THAT(verdicts["bad-mode"].reason(), HasSubstr("unknown math mode 'guess'"));
}

TEST_F(VerifierStreamTest, MathChecksCanRunInForkedWorkers) {
  auto pool = MathWorkerPool::Create(2);
  ASSERT_TRUE(pool.ok()) << pool.status();
  VerifierServiceImpl::Options options;
  options.math_workers = std::shared_ptr<MathWorkerPool>(*std::move(pool));
  options.default_deadline = absl::Seconds(60);
  Start(options);
  v1::VerifyItem answer_only = MathItem("answer-only", "0.5", "\\frac{1}{2}");
  answer_only.set_mode("answer_only");
  std::map<std::string, v1::Verdict> verdicts;
  ASSERT_TRUE(Stream({MathItem("right", "\\boxed{4}", "4"), MathItem("wrong", "\\boxed{5}", "4"),
                      MathItem("none", "no idea", "4"), answer_only},
                     &verdicts)
                  .ok());
  EXPECT_EQ(verdicts["right"].verdict(), "correct");
  EXPECT_EQ(verdicts["wrong"].verdict(), "incorrect");
  EXPECT_EQ(verdicts["none"].verdict(), "no_answer");
  EXPECT_EQ(verdicts["answer-only"].verdict(), "correct");
}

TEST_F(VerifierStreamTest, CodeItemsWithoutAJudgeGetAnErrorVerdict) {
  Start();
  v1::VerifyItem item;
  item.set_id("c");
  item.set_kind("code");
  item.mutable_code()->set_language("python");
  item.mutable_code()->set_code("print('ok')");
  std::map<std::string, v1::Verdict> verdicts;
  ASSERT_TRUE(Stream({item}, &verdicts).ok());
  EXPECT_EQ(verdicts["c"].verdict(), "error");
  EXPECT_THAT(verdicts["c"].reason(), HasSubstr("code verifier not built"));
  EXPECT_EQ(service_->items_verified(), 0);
}

TEST_F(VerifierStreamTest, CodeItemsGoToTheCodeJudgeWithItsVersion) {
  VerifierServiceImpl::Options options;
  options.code = std::make_shared<FakeCodeJudge>();
  Start(options);
  v1::VerifyItem good;
  good.set_id("good");
  good.set_kind("code");
  good.mutable_code()->set_code("print('ok')");
  v1::VerifyItem bad = good;
  bad.set_id("bad");
  bad.mutable_code()->set_code("print('no')");
  std::map<std::string, v1::Verdict> verdicts;
  ASSERT_TRUE(Stream({good, bad, MathItem("m", "\\boxed{1}", "1")}, &verdicts).ok());
  EXPECT_EQ(verdicts["good"].verdict(), "accepted");
  EXPECT_EQ(verdicts["good"].verifier_version(), "fake-code/1");
  ASSERT_EQ(verdicts["good"].tests_size(), 1);
  EXPECT_EQ(verdicts["bad"].verdict(), "wrong_answer");
  EXPECT_EQ(verdicts["m"].verifier_version(), kMathVerifierVersion);
  EXPECT_EQ(service_->metrics().verdicts("code", "accepted"), 1);

  grpc::ClientContext context;
  v1::VerifierInfo info;
  ASSERT_TRUE(stub_->GetInfo(&context, v1::GetInfoRequest(), &info).ok());
  ASSERT_EQ(info.kinds_size(), 2);
  EXPECT_EQ(info.kinds(1), "code");
  EXPECT_EQ(info.kind_versions(1), "fake-code/1");
}

}  // namespace
}  // namespace rlpost
