// Measure a bundled-trainer GPT run at random initialisation (step 0, re-created from the run's
// seed) and at its newest checkpoint, on fixed validation windows, and print coupling, LSS and
// norm growth side by side.
//
//   build/bin/measure_gpt RUN_DIR [PROBES=8] [--device cpu|cuda|cuda:N|auto] [--spectrum auto|exact|randomized]
#include "coupling/engine/device.h"
#include "coupling/engine/measurement.h"
#include "coupling/error.h"
#include "trainer/apps/command_line.h"
#include "trainer/data/byte_corpus.h"
#include "trainer/loop/checkpoint.h"
#include "trainer/loop/run_config.h"
#include "trainer/loop/runtime.h"
#include "trainer/loop/training_loop.h"
#include "trainer/models/gpt.h"
#include "trainer/models/transformer_adapter.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

namespace {

struct Column {
  std::string name;
  coupling::Measurement m;
};

double average(const at::Tensor& t) { return t.mean().item<double>(); }

void print_report(const std::vector<Column>& columns) {
  const auto& k_grid = columns.front().m.k_grid;
  std::printf("\n%-44s", "metric (mean over probes)");
  for (const auto& c : columns) std::printf(" %14s", c.name.c_str());
  std::printf("\n");
  auto row = [&](const std::string& label, auto&& value) {
    std::printf("%-44s", label.c_str());
    for (const auto& c : columns) std::printf(" %14.6f", value(c.m));
    std::printf("\n");
  };
  for (size_t k = 0; k < k_grid.size(); ++k) {
    const auto ki = static_cast<int64_t>(k);
    row("depth m_K ujv/norm, mean off-diag, K=" + std::to_string(k_grid[k]),
        [&](const coupling::Measurement& m) { return coupling::depth_coupling_summary(m)[ki].item<double>(); });
    row("depth m_K ujv/norm, |i-j|=1, K=" + std::to_string(k_grid[k]), [&](const coupling::Measurement& m) {
      return average(m.depth_mean_adjacent.select(2, 0).select(2, 0).select(2, ki));
    });
    row("depth m_K ujv/trace, mean off-diag, K=" + std::to_string(k_grid[k]), [&](const coupling::Measurement& m) {
      return coupling::depth_coupling_summary(m, coupling::Orientation::kUJV, coupling::Normalisation::kTrace)[ki]
          .item<double>();
    });
  }
  row("line-shape score (1 = straight)", [](const coupling::Measurement& m) { return average(m.line_shape_score); });
  row("norm growth factor per block exp(b)",
      [](const coupling::Measurement& m) { return average(m.norm_growth_factor); });
  row("norm growth fit R^2", [](const coupling::Measurement& m) { return average(m.norm_growth_r2); });
  row("||x^0||", [](const coupling::Measurement& m) { return average(m.residual_norms.select(2, 0)); });
  row("||x^L||", [](const coupling::Measurement& m) { return average(m.residual_norms.select(2, m.blocks)); });
  row("step CV(d_l)", [](const coupling::Measurement& m) { return average(m.step_cv); });
  for (int64_t l = 0; l < columns.front().m.blocks; ++l) {
    row("s_1(J^" + std::to_string(l + 1) + ")",
        [l](const coupling::Measurement& m) { return average(m.singular_values.select(2, l).select(2, 0)); });
  }
  row("1/s_1 vs depth: slope", [](const coupling::Measurement& m) { return average(m.inverse_sigma_slope); });
  row("measurement seconds", [](const coupling::Measurement& m) { return m.timings.total; });
}

}  // namespace

int main(int argc, char** argv) {
  trainer::reexec_with_tuned_openblas(argv);
  CLI::App app("measure_gpt: a coupling-train GPT run at step 0 and at its newest checkpoint");
  std::string run, device_spec = "auto", spectrum = "auto";
  int64_t probes = 8;
  app.add_option("run", run, "The coupling-train run directory")->required();
  app.add_option("probes", probes, "Validation windows to measure")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--device", device_spec, std::string("Where to measure: ") + coupling::kDeviceChoices)
      ->capture_default_str();
  app.add_option("--spectrum", spectrum, "Top-K estimator: auto, exact or randomized")->capture_default_str();
  trainer::add_standard_flags(app);
  if (const auto exit_status = trainer::parse_command_line(app, argc, argv)) return *exit_status;
  try {
    const c10::Device device = coupling::resolve_device(device_spec);
    trainer::CouplingConfig engine;  // the trainer's defaults: K 10,30,50, the last token
    engine.spectrum = spectrum;
    engine.validate();
    const auto options = trainer::measurement_options(engine, {});
    trainer::setup_compute(0);
    const auto checkpoint = trainer::latest_checkpoint(run);
    if (!checkpoint) throw coupling::CheckpointError("no checkpoint under " + run + "/checkpoints");
    const auto config = trainer::read_config_file(*checkpoint + "/config.toml");
    const auto corpus = trainer::ByteCorpus::from_file(config.train.data);
    const auto windows = corpus.evaluation_windows(trainer::Split::kValidation, config.model.context, probes);

    at::manual_seed(static_cast<uint64_t>(config.train.seed));  // the trainer's exact initial weights
    trainer::Gpt model(config.model);
    model->to(device);  // initialised on the CPU, then moved: the same weights on every device
    trainer::GptAdapter adapter(model);
    const auto inputs = windows.inputs.to(device);
    std::vector<Column> columns;
    columns.push_back({"step 0", coupling::measure(adapter, inputs, options)});
    trainer::load_model(*checkpoint, *model);
    const std::string step = checkpoint->substr(checkpoint->rfind("step_") + 5);
    columns.push_back({"step " + step, coupling::measure(adapter, inputs, options)});
    std::printf("run %s: %lld probes of %lld tokens, last token (t1 = t2 = T-1), %s spectra, on %s\n", run.c_str(),
                static_cast<long long>(windows.inputs.size(0)), static_cast<long long>(config.model.context),
                spectrum.c_str(), device.str().c_str());
    print_report(columns);
    return 0;
  } catch (const coupling::Error& e) {
    spdlog::error("{}", e.what());
    return 2;
  }
}
