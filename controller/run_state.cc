// TrainingRun: the controller's state in checkpoints (step, data cursor,
// held-out baseline, carried partial rollouts) and resuming from it.
#include "controller/run.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "controller/run_internal.h"
#include "absl/strings/escaping.h"

namespace rlpost {

using run_internal::Clock;
using run_internal::SecondsSince;

absl::Status TrainingRun::MaybeCheckpoint(int64_t step, double before_accuracy,
                                          const ProblemCursor::Position& cursor,
                                          const std::vector<CarriedGroup>& carried) {
  const bool asked = control_->TakeCheckpointRequest();  // rlctl checkpoint
  if (asked || (config_.run_checkpoint_every > 0 && step % config_.run_checkpoint_every == 0 &&
                step < config_.rl_steps)) {
    return SaveRunCheckpoint(step, before_accuracy, cursor, carried);
  }
  return absl::OkStatus();
}

nlohmann::json TrainingRun::CarriedToJson(const std::vector<CarriedGroup>& carried) const {
  nlohmann::json out = nlohmann::json::array();
  for (const CarriedGroup& c : carried) {
    nlohmann::json members = nlohmann::json::array();
    for (const v1::Completion& m : c.members) members.push_back(absl::Base64Escape(m.SerializeAsString()));
    out.push_back({{"step", c.origin.step},
                   {"round", c.origin.round},
                   {"group", c.origin.group},
                   {"problem", c.problem - train_.data()},
                   {"carries", c.carries},
                   {"request", absl::Base64Escape(c.request.SerializeAsString())},
                   {"members", members}});
  }
  return out;
}

absl::Status TrainingRun::CarriedFromJson(const nlohmann::json& j) {
  carried_.clear();
  if (!j.is_array()) return absl::DataLossError("'carried' is not a list");
  for (const nlohmann::json& c : j) {
    CarriedGroup g;
    std::string bytes;
    const int64_t problem = c.value("problem", int64_t{-1});
    if (!c.is_object() || problem < 0 || problem >= static_cast<int64_t>(train_.size()) ||
        !absl::Base64Unescape(c.value("request", std::string()), &bytes) ||
        !g.request.ParseFromString(bytes) || !c.contains("members") || !c["members"].is_array()) {
      return absl::DataLossError("a carried partial rollout is unreadable");
    }
    g.origin = {c.value("step", int64_t{0}), c.value("round", int64_t{0}),
                c.value("group", int64_t{0})};
    g.problem = &train_[static_cast<size_t>(problem)];
    g.carries = c.value("carries", int64_t{0});
    for (const nlohmann::json& m : c["members"]) {
      v1::Completion completion;
      if (!m.is_string() || !absl::Base64Unescape(m.get<std::string>(), &bytes) ||
          !completion.ParseFromString(bytes)) {
        return absl::DataLossError("a carried partial rollout's sample is unreadable");
      }
      g.members.push_back(std::move(completion));
    }
    carried_.push_back(std::move(g));
  }
  return absl::OkStatus();
}

absl::Status TrainingRun::DropCarried(int64_t step) {
  for (const CarriedGroup& c : carried_) {
    absl::Status s = lineage_->Append(nlohmann::ordered_json{{"type", "dropped"},
                                                             {"step", c.origin.step},
                                                             {"round", c.origin.round},
                                                             {"group", c.origin.group},
                                                             {"at_step", step},
                                                             {"reason", "partial at run end"}});
    if (!s.ok()) return s;
  }
  carried_.clear();
  return absl::OkStatus();
}

absl::Status TrainingRun::SaveRunCheckpoint(int64_t step, double before_accuracy,
                                            const ProblemCursor::Position& cursor,
                                            const std::vector<CarriedGroup>& carried) {
  control_->SetActivity(absl::StrCat("step ", step, ": saving checkpoint"));
  const nlohmann::json state = {
      {"format", 1},
      {"run", config_.name},
      {"step", step},
      {"sft_steps", sft_steps_done_},
      {"cursor", {{"epoch", cursor.epoch}, {"next", cursor.next}}},
      {"heldout_accuracy_before", before_accuracy},
      {"carried", CarriedToJson(carried)},
  };
  std::error_code ec;
  const std::string root = std::filesystem::absolute(config_.CheckpointRoot(), ec).string();
  absl::StatusOr<v1::SaveCheckpointResponse> saved = clients_->SaveCheckpoint(
      root, static_cast<int>(config_.run_keep_checkpoints), state.dump());
  if (!saved.ok()) return saved.status();
  Print(absl::StrCat("checkpoint after step ", step, " (version ", saved->weight_version(),
                     ") written to ", saved->directory()));
  return absl::OkStatus();
}

absl::StatusOr<double> TrainingRun::ResumeFromLearner() {
  control_->SetActivity("restoring the last checkpoint");
  std::error_code ec;
  const std::string root = std::filesystem::absolute(config_.CheckpointRoot(), ec).string();
  absl::StatusOr<v1::LearnerInfo> restored = clients_->Restore(root);
  if (!restored.ok()) {
    return absl::Status(restored.status().code(),
                        absl::StrCat("run.resume: ", restored.status().message(),
                                     " (a run saves checkpoints with run.checkpoint_every > 0)"));
  }
  learner_info_ = *restored;
  version_ = restored->weight_version();
  rollback_next_sync_ = true;
  const std::string& dir = learner_info_.resumed_from();
  if (learner_info_.client_state().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run.resume: checkpoint ", dir, " holds no controller state (it was not written by a run)"));
  }
  const nlohmann::json state =
      nlohmann::json::parse(learner_info_.client_state(), nullptr, /*allow_exceptions=*/false);
  if (!state.is_object() || state.value("format", 0) != 1 || !state.contains("step") ||
      !state["step"].is_number_integer() || !state.contains("cursor") ||
      !state["cursor"].is_object()) {
    return absl::DataLossError(absl::StrCat("checkpoint ", dir,
                                            " holds no controller state this build reads"));
  }
  if (state.value("run", std::string()) != config_.name) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", dir, " belongs to run '", state.value("run", std::string()),
        "', not '", config_.name, "'"));
  }
  steps_done_ = state["step"].get<int64_t>();
  sft_steps_done_ = state.value("sft_steps", int64_t{0});
  ProblemCursor::Position cursor;
  cursor.epoch = state["cursor"].value("epoch", uint64_t{0});
  cursor.next = state["cursor"].value("next", uint64_t{0});
  rl_cursor_->Restore(cursor);
  if (state.contains("carried")) {
    absl::Status carried = CarriedFromJson(state["carried"]);
    if (!carried.ok()) {
      return absl::DataLossError(absl::StrCat("checkpoint ", dir, ": ", carried.message()));
    }
  }
  // Records of later steps from the interrupted attempt are superseded, and
  // metrics.jsonl keeps only the steps the checkpoint covers.
  absl::Status s =
      lineage_->Append(nlohmann::ordered_json{{"type", "resume"}, {"after_step", steps_done_}});
  if (!s.ok()) return s;
  {
    std::ifstream in(metrics_path_);
    std::string line, kept;
    while (std::getline(in, line)) {
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.value("step", int64_t{0}) <= steps_done_) {
        kept += line + "\n";
        control_->AppendMetricsLine(line);  // rlctl metrics shows them too
      }
    }
    in.close();
    std::ofstream out(metrics_path_, std::ios::trunc);
    out << kept;
    if (!out) return absl::InternalError(absl::StrCat("cannot rewrite '", metrics_path_, "'"));
  }
  control_->RecordStep(steps_done_, 0.0, 0.0);
  Print(absl::StrCat("resumed from ", dir, " after step ", steps_done_, " (weight version ",
                     version_, ")"));
  return state.value("heldout_accuracy_before", 0.0);
}

}  // namespace rlpost
