// VerifierServiceImpl over a real loopback channel (port 0).

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/grpc_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlpost/v1/verifier.grpc.pb.h"
#include "verifier/verifier_service.h"

namespace rlpost {
namespace {

using ::testing::HasSubstr;

// A clock that moves forward by `step` every time it is read, so a batch's
// deadline passes after a known number of items, whatever the machine speed.
class SteppingClock {
 public:
  explicit SteppingClock(absl::Duration step) : step_(step) {}
  absl::Time Now() { return absl::UnixEpoch() + step_ * reads_.fetch_add(1); }

 private:
  const absl::Duration step_;
  std::atomic<int64_t> reads_{0};
};

class VerifierServiceTest : public ::testing::Test {
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

  grpc::Status Verify(const v1::VerifyRequest& request, v1::VerifyResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->Verify(&context, request, response);
  }

  static void AddItem(v1::VerifyRequest* request, const std::string& id, const std::string& kind,
                      const std::string& response, const std::string& reference) {
    v1::VerifyItem* item = request->add_items();
    item->set_id(id);
    item->set_kind(kind);
    item->set_response(response);
    item->set_reference(reference);
  }

  std::unique_ptr<VerifierServiceImpl> service_;
  std::unique_ptr<ServerHost> host_;
  std::unique_ptr<v1::VerifierService::Stub> stub_;
};

TEST_F(VerifierServiceTest, JudgesMathItemsInRequestOrder) {
  Start();
  v1::VerifyRequest request;
  AddItem(&request, "right", "math", "so \\boxed{\\frac{1}{2}}", "0.5");
  AddItem(&request, "wrong", "math", "\\boxed{3}", "4");
  AddItem(&request, "none", "math", "no idea", "4");
  AddItem(&request, "bad-ref", "math", "\\boxed{3}", "");
  v1::VerifyResponse response;
  ASSERT_TRUE(Verify(request, &response).ok());
  EXPECT_EQ(response.verifier_version(), "rlpost-math/0.2.0");
  ASSERT_EQ(response.verdicts_size(), 4);

  const v1::Verdict& right = response.verdicts(0);
  EXPECT_EQ(right.id(), "right");
  EXPECT_EQ(right.status(), v1::VERDICT_STATUS_OK);
  EXPECT_TRUE(right.correct());
  EXPECT_EQ(right.score(), 1.0f);
  EXPECT_EQ(right.extracted(), "\\frac{1}{2}");

  const v1::Verdict& wrong = response.verdicts(1);
  EXPECT_EQ(wrong.id(), "wrong");
  EXPECT_EQ(wrong.status(), v1::VERDICT_STATUS_OK);
  EXPECT_FALSE(wrong.correct());
  EXPECT_EQ(wrong.score(), 0.0f);
  EXPECT_EQ(wrong.extracted(), "3");

  const v1::Verdict& none = response.verdicts(2);
  EXPECT_EQ(none.id(), "none");
  EXPECT_EQ(none.status(), v1::VERDICT_STATUS_NO_ANSWER);
  EXPECT_FALSE(none.correct());
  EXPECT_EQ(none.score(), 0.0f);

  const v1::Verdict& bad_ref = response.verdicts(3);
  EXPECT_EQ(bad_ref.status(), v1::VERDICT_STATUS_ERROR);
  EXPECT_THAT(bad_ref.reason(), HasSubstr("reference answer is empty"));

  for (const v1::Verdict& v : response.verdicts()) {
    EXPECT_EQ(v.verifier_version(), kMathVerifierVersion) << v.id();
  }
  EXPECT_EQ(right.verdict(), "correct");
  EXPECT_EQ(wrong.verdict(), "incorrect");
  EXPECT_EQ(none.verdict(), "no_answer");
  EXPECT_EQ(bad_ref.verdict(), "error");
}

TEST_F(VerifierServiceTest, EmptyKindMeansMath) {
  Start();
  v1::VerifyRequest request;
  AddItem(&request, "x", "", "\\boxed{12}", "12");
  v1::VerifyResponse response;
  ASSERT_TRUE(Verify(request, &response).ok());
  ASSERT_EQ(response.verdicts_size(), 1);
  EXPECT_EQ(response.verdicts(0).status(), v1::VERDICT_STATUS_OK);
  EXPECT_TRUE(response.verdicts(0).correct());
}

TEST_F(VerifierServiceTest, UnknownKindIsAnItemErrorNotAnRpcFailure) {
  Start();
  v1::VerifyRequest request;
  AddItem(&request, "a", "math", "\\boxed{1}", "1");
  AddItem(&request, "b", "chess", "e4", "1");
  AddItem(&request, "c", "math", "\\boxed{2}", "2");
  v1::VerifyResponse response;
  ASSERT_TRUE(Verify(request, &response).ok());
  ASSERT_EQ(response.verdicts_size(), 3);
  const v1::Verdict& b = response.verdicts(1);
  EXPECT_EQ(b.id(), "b");
  EXPECT_EQ(b.status(), v1::VERDICT_STATUS_ERROR);
  EXPECT_FALSE(b.correct());
  EXPECT_THAT(b.reason(), HasSubstr("unknown verifier kind 'chess'"));
  EXPECT_EQ(b.verifier_version(), kMathVerifierVersion);
  EXPECT_EQ(b.verdict(), "error");
  EXPECT_TRUE(response.verdicts(0).correct());
  EXPECT_TRUE(response.verdicts(2).correct());
}

TEST_F(VerifierServiceTest, EmptyBatchGivesEmptyResponse) {
  Start();
  v1::VerifyRequest request;
  v1::VerifyResponse response;
  ASSERT_TRUE(Verify(request, &response).ok());
  EXPECT_EQ(response.verdicts_size(), 0);
  EXPECT_EQ(response.verifier_version(), kMathVerifierVersion);
}

TEST_F(VerifierServiceTest, NegativeDeadlineIsInvalidArgument) {
  Start();
  v1::VerifyRequest request;
  request.set_deadline_ms(-5);
  AddItem(&request, "a", "math", "\\boxed{1}", "1");
  v1::VerifyResponse response;
  grpc::Status status = Verify(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("deadline_ms must be >= 0"));
}

TEST_F(VerifierServiceTest, ItemsPastTheDeadlineTimeOut) {
  // 100us per clock read and a 1 ms budget: the batch start reads the clock
  // once, each item once more, so items 1..9 see times below the deadline
  // and every later item is past it.
  auto clock = std::make_shared<SteppingClock>(absl::Microseconds(100));
  VerifierServiceImpl::Options options;
  options.now = [clock] { return clock->Now(); };
  Start(options);

  v1::VerifyRequest request;
  request.set_deadline_ms(1);
  const int kItems = 2000;
  for (int i = 0; i < kItems; ++i) {
    AddItem(&request, "item-" + std::to_string(i), "math", "\\boxed{" + std::to_string(i) + "}",
            std::to_string(i));
  }
  v1::VerifyResponse response;
  ASSERT_TRUE(Verify(request, &response).ok());
  ASSERT_EQ(response.verdicts_size(), kItems);

  int judged = 0;
  while (judged < kItems && response.verdicts(judged).status() != v1::VERDICT_STATUS_TIMEOUT) {
    ++judged;
  }
  EXPECT_EQ(judged, 9);
  for (int i = 0; i < kItems; ++i) {
    const v1::Verdict& v = response.verdicts(i);
    EXPECT_EQ(v.id(), "item-" + std::to_string(i));
    EXPECT_EQ(v.verifier_version(), kMathVerifierVersion);
    if (i < judged) {
      EXPECT_EQ(v.status(), v1::VERDICT_STATUS_OK);
      EXPECT_TRUE(v.correct());
    } else {
      // Once out of time, every later item is a timeout too.
      EXPECT_EQ(v.status(), v1::VERDICT_STATUS_TIMEOUT) << i;
      EXPECT_FALSE(v.correct());
      EXPECT_EQ(v.score(), 0.0f);
      EXPECT_THAT(v.reason(), HasSubstr("deadline"));
      EXPECT_EQ(v.verdict(), "timeout");
    }
  }
  EXPECT_EQ(service_->items_verified(), judged);
}

TEST_F(VerifierServiceTest, ZeroDeadlineUsesTheServerDefault) {
  auto clock = std::make_shared<SteppingClock>(absl::Milliseconds(1));
  VerifierServiceImpl::Options options;
  options.now = [clock] { return clock->Now(); };
  options.default_deadline = absl::Milliseconds(3);
  Start(options);

  v1::VerifyRequest request;  // deadline_ms = 0
  for (int i = 0; i < 5; ++i) AddItem(&request, std::to_string(i), "math", "\\boxed{1}", "1");
  v1::VerifyResponse response;
  ASSERT_TRUE(Verify(request, &response).ok());
  ASSERT_EQ(response.verdicts_size(), 5);
  EXPECT_EQ(response.verdicts(1).status(), v1::VERDICT_STATUS_OK);
  EXPECT_EQ(response.verdicts(2).status(), v1::VERDICT_STATUS_TIMEOUT);
  EXPECT_THAT(response.verdicts(2).reason(), HasSubstr("3ms"));
}

TEST_F(VerifierServiceTest, GetInfoReportsVersionKindsAndCount) {
  Start();
  v1::VerifyRequest request;
  AddItem(&request, "a", "math", "\\boxed{1}", "1");
  AddItem(&request, "b", "math", "nothing", "1");
  AddItem(&request, "c", "chess", "", "");  // not verified: unknown kind
  v1::VerifyResponse response;
  ASSERT_TRUE(Verify(request, &response).ok());

  grpc::ClientContext context;
  v1::VerifierInfo info;
  ASSERT_TRUE(stub_->GetInfo(&context, v1::GetInfoRequest(), &info).ok());
  EXPECT_EQ(info.verifier_version(), "rlpost-math/0.2.0");
  ASSERT_EQ(info.kinds_size(), 1);
  EXPECT_EQ(info.kinds(0), "math");
  EXPECT_EQ(info.items_verified(), 2);
}

TEST_F(VerifierServiceTest, ConcurrentCallsAreCountedExactly) {
  Start();
  const int kThreads = 4;
  const int kCallsPerThread = 10;
  const int kItemsPerCall = 25;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < kCallsPerThread; ++c) {
        v1::VerifyRequest request;
        for (int i = 0; i < kItemsPerCall; ++i) {
          std::string n = std::to_string(t * 1000 + i);
          AddItem(&request, n, "math", "\\boxed{" + n + "}", n);
        }
        v1::VerifyResponse response;
        grpc::Status status = Verify(request, &response);
        if (!status.ok() || response.verdicts_size() != kItemsPerCall) {
          failures.fetch_add(1);
          continue;
        }
        for (int i = 0; i < kItemsPerCall; ++i) {
          const v1::Verdict& v = response.verdicts(i);
          if (v.id() != std::to_string(t * 1000 + i) || !v.correct()) failures.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(service_->items_verified(), kThreads * kCallsPerThread * kItemsPerCall);
}

// Arbitrary client items (any kind, mode, bytes, code fields) each get one
// verdict with their id, a verdict word and a version; nothing fails the call.
TEST(VerifierServiceFuzzTest, RandomItemsEachGetOneVerdict) {
  VerifierServiceImpl service;
  std::mt19937 rng(5);
  const std::string kinds[] = {"", "math", "code", "Math", "\xff", "chess"};
  const std::string modes[] = {"", "full_text", "answer_only", "guess"};
  const std::string bits[] = {"\\boxed{", "}", "{", "1", "\\frac", "x", "$", "\\sqrt", "-",
                              "\xe2\x88\x92", "\0", "print(1)", "\n", "#### 4"};
  auto random_text = [&] {
    std::string t;
    const int n = static_cast<int>(rng() % 16);
    for (int j = 0; j < n; ++j) t += bits[rng() % std::size(bits)];
    return t;
  };
  v1::VerifyRequest request;
  for (int i = 0; i < 500; ++i) {
    v1::VerifyItem* item = request.add_items();
    item->set_id("i" + std::to_string(i));
    item->set_kind(kinds[rng() % std::size(kinds)]);
    item->set_mode(modes[rng() % std::size(modes)]);
    item->set_response(random_text());
    item->set_reference(random_text());
    item->set_deadline_ms(static_cast<int32_t>(rng() % 3) - 1);
    item->mutable_code()->set_code(random_text());
  }
  v1::VerifyResponse response;
  ASSERT_TRUE(service.VerifyBatch(request, &response, nullptr).ok());
  ASSERT_EQ(response.verdicts_size(), request.items_size());
  for (int i = 0; i < response.verdicts_size(); ++i) {
    const v1::Verdict& v = response.verdicts(i);
    EXPECT_EQ(v.id(), "i" + std::to_string(i));
    EXPECT_FALSE(v.verdict().empty()) << i;
    EXPECT_FALSE(v.verifier_version().empty()) << i;
    EXPECT_NE(v.status(), v1::VERDICT_STATUS_UNSPECIFIED) << i;
  }
}

}  // namespace
}  // namespace rlpost
