// Measurement schedules, the callback list, and the coupling callback's scheduling, overhead
// deferral and checkpoint state.
#include "coupling/error.h"
#include "coupling/log/coupling_log.h"
#include "coupling/training/callback.h"
#include "coupling/training/coupling_callback.h"
#include "coupling/training/schedule.h"
#include "engine_support.h"
#include "temp_files.h"

#include <gtest/gtest.h>

namespace {

using coupling::MeasurementSchedule;

TEST(Schedule, ParsesAndDecides) {
  const auto s = MeasurementSchedule::parse("every:5 log:4 steps:7,3 checkpoints");
  EXPECT_EQ(s.str(), "every:5 log:4 steps:3,7 checkpoints");
  EXPECT_EQ(MeasurementSchedule::parse(s.str()).str(), s.str());
  const int64_t total = 1000;
  EXPECT_TRUE(s.due(0, total, false));      // random-init baseline
  EXPECT_TRUE(s.due(total, total, false));  // final
  EXPECT_TRUE(s.due(25, total, false));     // every:5
  EXPECT_TRUE(s.due(3, total, false));      // steps
  EXPECT_TRUE(s.due(10, total, false));     // log:4 over 1000 -> 1, 10, 100, 1000
  EXPECT_TRUE(s.due(101, total, true));     // checkpoints
  EXPECT_FALSE(s.due(101, total, false));
  EXPECT_FALSE(s.due(11, total, false));
}

TEST(Schedule, PlannedSteps) {
  EXPECT_EQ(MeasurementSchedule::parse("every:5").planned(20), (std::vector<int64_t>{0, 5, 10, 15, 20}));
  EXPECT_EQ(MeasurementSchedule::parse("log:3").planned(100), (std::vector<int64_t>{0, 1, 10, 100}));
  EXPECT_EQ(MeasurementSchedule::parse("").planned(7), (std::vector<int64_t>{0, 7}));
}

TEST(Schedule, LogSpacedStepsAreTheFormulasForAnyCount) {
  // Brute force: every i of round(total^(i / (points - 1))), against due() for every step.
  for (const int64_t total : {1, 2, 7, 100, 1000, 12345}) {
    for (const int64_t points : {2, 3, 8, 50, 999, 100000}) {
      std::set<int64_t> expected;
      for (int64_t i = 0; i < points; ++i) {
        const double x =
            std::exp(std::log(static_cast<double>(total)) * static_cast<double>(i) / static_cast<double>(points - 1));
        expected.insert(std::clamp<int64_t>(std::llround(x), 1, total));
      }
      const auto schedule = MeasurementSchedule::parse("log:" + std::to_string(points));
      for (int64_t step = 1; step < total; ++step) {
        EXPECT_EQ(schedule.due(step, total, false), expected.count(step) > 0)
            << step << " of " << total << ", log:" << points;
      }
    }
  }
}

TEST(Schedule, BadItemsAreRejected) {
  for (const char* bad : {"often", "every:x", "log:-3", "steps:1,b", "every"}) {
    EXPECT_THROW(MeasurementSchedule::parse(bad), coupling::ConfigError) << bad;
  }
}

struct Recorder : coupling::TrainingCallback {
  explicit Recorder(std::string name_) : name_of(std::move(name_)) {}
  std::string name() const override { return name_of; }
  std::string name_of;
  std::vector<std::string> events;
  std::string saved;
  void on_train_begin(const coupling::TrainBegin& b) override {
    events.push_back("begin " + std::to_string(b.start_step));
  }
  void on_step_end(const coupling::StepEnd& s) override { events.push_back("step " + std::to_string(s.step)); }
  void on_checkpoint_save(int64_t step, coupling::CallbackState& state) override { state["at"] = std::to_string(step); }
  void on_checkpoint_load(int64_t, const coupling::CallbackState& state) override { saved = state.at("at"); }
};

TEST(CallbackList, ForwardsHooksAndKeepsEachCallbacksStateApartByName) {
  auto a = std::make_shared<Recorder>("a"), b = std::make_shared<Recorder>("b");
  coupling::CallbackList list;
  list.add(b);  // state follows the name, whatever the order
  list.add(a);
  list.on_train_begin({3, 10, true});
  list.on_step_end(coupling::StepEnd(4, 10));
  EXPECT_EQ(a->events, (std::vector<std::string>{"begin 3", "step 4"}));
  EXPECT_EQ(b->events, a->events);
  coupling::CallbackState state;
  list.on_checkpoint_save(4, state);
  EXPECT_EQ(state, (coupling::CallbackState{{"a.at", "4"}, {"b.at", "4"}}));
  state["b.at"] = "9";
  list.on_checkpoint_load(4, state);
  EXPECT_EQ(a->saved, "4");
  EXPECT_EQ(b->saved, "9");
  // Checkpoint format 2 keyed state by position in the list.
  EXPECT_EQ(list.keyed_by_name({{"0.at", "1"}, {"1.at", "2"}}),
            (coupling::CallbackState{{"b.at", "1"}, {"a.at", "2"}}));
  EXPECT_TRUE(list.keyed_by_name({{"2.at", "1"}, {"x.at", "1"}}).empty());  // no such callback: dropped
  // Names key the state, so they must differ; state needs a name.
  EXPECT_THROW(list.add(std::make_shared<Recorder>("a")), coupling::ConfigError);
  coupling::CallbackList unnamed;
  unnamed.add(std::make_shared<Recorder>(""));
  EXPECT_THROW(unnamed.on_checkpoint_save(1, state), coupling::ConfigError);
  // A named list inside a list keys its callbacks' state under its own name.
  coupling::CallbackList outer;
  auto inner = std::make_shared<coupling::CallbackList>("inner");
  inner->add(std::make_shared<Recorder>("c"));
  outer.add(inner);
  coupling::CallbackState nested;
  outer.on_checkpoint_save(3, nested);
  EXPECT_EQ(nested, (coupling::CallbackState{{"inner.c.at", "3"}}));
}

/// Hears the measurements a list's coupling callback publishes.
struct MeasurementListener : coupling::TrainingCallback {
  std::vector<int64_t> steps;
  std::vector<double> blocks;
  void on_measurement(const coupling::Measurement& m, int64_t step) override {
    steps.push_back(step);
    blocks.push_back(static_cast<double>(m.singular_values.size(2)));  // [P, n, L, Kmax]
  }
};

struct CallbackRun {
  std::vector<int64_t> logged;    ///< the log's measured steps
  MeasurementListener published;  ///< what another callback of the list heard
};

/// Runs a coupling callback, in a list with a listener, over `steps` fake updates whose wall clock
/// advances by `seconds_per_step`.
CallbackRun run_callback(const std::string& log, const std::string& schedule, double max_overhead,
                         double seconds_per_step, int64_t steps) {
  auto g = at::detail::createCPUGenerator(51);
  std::shared_ptr<coupling::ModelAdapter> adapter = engine_support::linear_blocks(
      {at::randn({6, 6}, g, at::TensorOptions()), at::randn({6, 6}, g, at::TensorOptions())});
  coupling::CouplingCallbackOptions options;
  options.log_path = log;
  options.measurement.k_grid = {2};
  options.schedule = MeasurementSchedule::parse(schedule);
  options.max_overhead = max_overhead;
  auto listener = std::make_shared<MeasurementListener>();
  coupling::CallbackList list;
  list.add(
      std::make_shared<coupling::CouplingCallback>(adapter, at::randn({2, 3, 6}, g, at::TensorOptions()), options));
  list.add(listener);
  list.on_train_begin({0, steps, false});
  for (int64_t step = 1; step <= steps; ++step) {
    list.on_step_end(coupling::StepEnd(step, steps)
                         .with_loss(1.0)
                         .with_lr(1e-3)
                         .with_wall_seconds(seconds_per_step * static_cast<double>(step)));
  }
  coupling::LogMetadata metadata;
  metadata.model = "model";
  metadata.engine_config = options.measurement.str();
  return {coupling::CouplingLog::resume(log, metadata, steps).measured_steps(), *listener};
}

TEST(CouplingCallback, MeasuresTheScheduleAndDefersBeyondTheBudget) {
  test_support::TempDir dir;
  EXPECT_EQ(run_callback(dir.file("a.h5"), "every:4", 0.0, 1.0, 10).logged, (std::vector<int64_t>{0, 4, 8, 10}));
  // A generous budget (100 s of training per step) measures everything...
  EXPECT_EQ(run_callback(dir.file("b.h5"), "every:4", 0.5, 100.0, 10).logged, (std::vector<int64_t>{0, 4, 8, 10}));
  // ...a tiny one defers every scheduled measurement to the final step, which is never skipped.
  EXPECT_EQ(run_callback(dir.file("c.h5"), "every:4", 1e-9, 1e-9, 10).logged, (std::vector<int64_t>{0, 10}));
}

TEST(CouplingCallback, PublishesEveryMeasurementToTheOtherCallbacksOfItsList) {
  test_support::TempDir dir;
  for (const double budget : {0.0, 1e-9}) {
    const auto run = run_callback(dir.file(budget > 0 ? "deferred.h5" : "all.h5"), "every:4", budget, 1e-9, 10);
    EXPECT_EQ(run.published.steps, run.logged) << "budget " << budget;
    EXPECT_EQ(run.published.blocks, std::vector<double>(run.logged.size(), 2.0));
  }
}

TEST(CouplingCallback, RejectsMissingProbesAndMissingCheckpointState) {
  auto g = at::detail::createCPUGenerator(52);
  std::shared_ptr<coupling::ModelAdapter> adapter =
      engine_support::linear_blocks({at::randn({4, 4}, g, at::TensorOptions())});
  EXPECT_THROW(coupling::CouplingCallback(adapter, at::Tensor(), {}), coupling::ConfigError);
  test_support::TempDir dir;
  coupling::CouplingCallbackOptions options;
  options.log_path = dir.file("c.h5");
  const auto probes = at::randn({1, 2, 4}, g, at::TensorOptions());
  coupling::CouplingCallback callback(adapter, probes, options);
  callback.on_checkpoint_load(0, {});  // refused in on_setup, once the log has had its say
  EXPECT_THROW(callback.on_setup({0, 10, true}), coupling::CheckpointError);
  EXPECT_FALSE(std::filesystem::exists(options.log_path));
  coupling::CouplingCallback resumed(adapter, probes, options);
  coupling::CallbackState state;
  resumed.on_checkpoint_save(0, state);
  resumed.on_checkpoint_load(0, state);
  EXPECT_NO_THROW(resumed.on_setup({0, 10, true}));
}

}  // namespace
