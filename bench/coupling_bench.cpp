// coupling-bench: libcoupling's performance, every comparison measured side by side in one run
// (the machine is shared and noisy: ratios and medians). Results and the command that produced
// them are in docs/performance.md.
//
//   build/bin/coupling-bench [--quick] [--repeats N] [--train-steps N] [--json FILE]
//                            [--skip-training] [--skip-python] [--device cpu|cuda|cuda:N|auto]
//   build/bin/coupling-bench --hf DIR [--repeats N] [--json FILE]
// --device places cases 1, 2 and 6 (auto: CUDA when a device is visible); cases 3 and 4 are CPU.
//
// 1. Block Jacobian of a GPT block, d x T grid: the paper's algorithm (the generic path row by
//    row: one forward, then one backward per output coordinate of the last token over the whole
//    sequence), the generic path's replicated batch, the generic path as chosen by shape
//    (coupling::generic_strategy), our token-local path, and the GEMM bound 24 d^3 / sgemm rate.
//    Each method runs in its own child process, whose peak RSS is reported. The generic methods
//    are timed on their first 64 rows and scaled by d / 64 (their cost is linear in the rows;
//    marked "x").
// 2. One full measurement of a 12-layer d=768 T=128 GPT on 8 probes, K {10, 30, 50}, and first of
//    the trainer's default 4-layer d=128 GPT, with the shares of the null and layer linearity.
// 3. Training overhead: the default GPT for N steps with and without the coupling log.
// 4. C++ trainer step vs the same model and batch in PyTorch eager (bench/pytorch_reference.py).
// 5. Randomized vs exact top-K on the Jacobians of case 2.
// 6. (--hf DIR, alone) case 1's methods on a Hugging Face model's middle block, T = 128, and the
//    Jacobian time of a whole measurement (8 probes, last token) that each implies.
#include "bench_paths.h"
#include "bench_support.h"
#include "coupling/engine/coupling_metric.h"
#include "coupling/engine/device.h"
#include "coupling/engine/measurement.h"
#include "coupling/error.h"
#include "coupling/models/hf/directory.h"
#include "coupling/models/hf/model.h"
#include "trainer/apps/command_line.h"
#include "trainer/loop/runtime.h"
#include "trainer/models/block_adapter.h"
#include "trainer/models/gpt.h"
#include "trainer/models/transformer_adapter.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/optim/adamw.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>

namespace fs = std::filesystem;

namespace {

constexpr int64_t kTimedRows = 64;

/// The number after `prefix` (a regex) in `text`.
double parse_value(const std::string& text, const std::string& prefix) {
  std::smatch match;
  if (!std::regex_search(text, match, std::regex(prefix + "([0-9.eE+-]+)"))) {
    throw std::runtime_error("no '" + prefix + "' in child output: " + text);
  }
  return std::stod(match[1].str());
}

// ---- worker: one Jacobian method on one block, in its own process -------------------------------
/// Waits for the device's queued work (a copy to the CPU is synchronous): CUDA timings need it.
void wait_for(c10::Device device) {
  if (!device.is_cpu()) at::zeros({1}, at::TensorOptions().device(device)).cpu();
}

/// The Jacobian methods of case 1 and 6, in the order printed (ratios are against the first).
const std::vector<std::string> kJacobianMethods = {"paper", "replicated", "generic", "token-local"};

/// The engine's options for a method; "paper" is the generic path row by row (one forward, one
/// backward per output coordinate), "generic" the strategy coupling::generic_strategy picks.
coupling::JacobianOptions jacobian_options(const std::string& method) {
  using Options = coupling::JacobianOptions;
  Options options;
  options.method = method == "token-local" ? Options::Method::kTokenLocal : Options::Method::kGeneric;
  options.generic = method == "paper"        ? Options::Generic::kRowByRow
                    : method == "replicated" ? Options::Generic::kReplicated
                                             : Options::Generic::kAuto;
  return options;
}

/// Rows timed: all of them token-locally, the first kTimedRows otherwise (scaled by d / rows).
int64_t timed_rows(const std::string& method, int64_t d) {
  return method == "token-local" ? d : std::min(d, kTimedRows);
}

int jacobian_worker(const std::string& method, int64_t d, int64_t tokens, int repeats, c10::Device device) {
  trainer::configure_threads(0);
  at::manual_seed(0);
  trainer::TransformerBlock block(trainer::BlockConfig{d, std::max<int64_t>(1, d / 64), 0.0, /*causal=*/true});
  block->eval();
  block->to(device);
  trainer::BlockAdapter adapter(block);
  const auto x = at::randn({tokens, d}).to(device);
  const int64_t t2 = tokens - 1;
  const int64_t rows = timed_rows(method, d);
  const auto options = jacobian_options(method);
  const auto run = [&] { coupling::jacobian_rows(adapter, 0, x, t2, {t2}, 0, rows, options); };
  const double seconds = bench::median_seconds(
      [&] {
        run();
        wait_for(device);
      },
      repeats);
  std::printf("seconds=%.9f scale=%.6f\n", seconds, static_cast<double>(d) / static_cast<double>(rows));
  return 0;
}

std::string self_path() { return fs::read_symlink("/proc/self/exe").string(); }

struct Report {
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  void add(nlohmann::ordered_json row) { rows.push_back(std::move(row)); }
  std::string json() const { return rows.dump(2) + "\n"; }
};

// ---- 1. Jacobians ------------------------------------------------------------------------------
void bench_jacobians(Report& report, bool quick, int repeats, double gflops, c10::Device device) {
  std::printf("\n1. Block Jacobian J_{T-1,T-1} of a causal GPT block (heads = d/64), median of %d\n", repeats);
  std::printf("   sgemm rate %.0f GFLOP/s; bound = 24 d^3 flops at that rate; x = scaled from %lld rows\n", gflops,
              static_cast<long long>(kTimedRows));
  std::printf("   %5s %5s %-12s %12s %12s %10s %10s\n", "d", "T", "method", "seconds", "vs paper", "of bound",
              "peak MiB");
  // Small shapes find where the generic path's two strategies cross (coupling::generic_strategy).
  const std::vector<int64_t> widths =
      quick ? std::vector<int64_t>{32, 128} : std::vector<int64_t>{16, 32, 64, 128, 256, 512, 768};
  const std::vector<int64_t> lengths = quick ? std::vector<int64_t>{16, 64} : std::vector<int64_t>{16, 64, 128, 256};
  for (int64_t d : widths) {
    for (int64_t t : lengths) {
      const double bound = 24.0 * std::pow(static_cast<double>(d), 3) / (gflops * 1e9);
      double paper_seconds = 0.0;
      for (const std::string& method : kJacobianMethods) {
        const auto child = bench::run_child({self_path(), "--worker", method, std::to_string(d), std::to_string(t),
                                             "--repeats", std::to_string(repeats), "--device", device.str()});
        if (child.status != 0) throw std::runtime_error("worker failed: " + child.output);
        const double scale = parse_value(child.output, "scale=");
        const double seconds = parse_value(child.output, "seconds=") * scale;
        if (method == "paper") paper_seconds = seconds;
        std::printf("   %5lld %5lld %-12s %11.4f%s %11.1fx %9.1f%% %10.0f\n", static_cast<long long>(d),
                    static_cast<long long>(t), method.c_str(), seconds, scale > 1.0 ? "x" : " ",
                    paper_seconds / seconds, 100.0 * bound / seconds, child.peak_mib);
        report.add({{"case", std::string("jacobian")},
                    {"d", d},
                    {"T", t},
                    {"method", std::string(method)},
                    {"seconds", seconds},
                    {"scaled_from_rows", scale > 1.0 ? kTimedRows : d},
                    {"speedup_vs_paper", paper_seconds / seconds},
                    {"fraction_of_gemm_bound", bound / seconds},
                    {"peak_rss_mib", child.peak_mib}});
      }
    }
  }
}

// ---- 2 + 5. Full measurement and spectra -----------------------------------------------------------
/// One full measurement of a GPT of the given shape, exact and randomized; returns the exact one
/// with its Jacobians kept.
coupling::Measurement bench_measurement_shape(Report& report, bool quick, int repeats, c10::Device device, int64_t d,
                                              int64_t layers) {
  const int64_t tokens = 128, probes = 8;
  std::printf("\n2. Full measurement: %lld-layer GPT, d=%lld, T=%lld, %lld probes, K {10,30,50}, last token\n",
              static_cast<long long>(layers), static_cast<long long>(d), static_cast<long long>(tokens),
              static_cast<long long>(probes));
  at::manual_seed(0);
  trainer::GptConfig config;
  config.context = tokens;
  config.d_model = d;
  config.layers = layers;
  config.heads = d / 64;
  trainer::Gpt model(config);
  model->to(device);
  trainer::GptAdapter adapter(model);
  const auto inputs = at::randint(256, {probes, tokens}, at::kLong).to(device);
  std::printf("   %-11s %8s %8s %9s %8s %8s %8s %8s %8s\n", "spectrum", "total s", "forward", "jacobians", "spectra",
              "coupling", "nulls", "traject.", "linear.");
  coupling::Measurement kept;
  for (const auto spectrum : {coupling::SpectrumMethod::kExact, coupling::SpectrumMethod::kRandomized}) {
    coupling::MeasurementOptions options;
    options.progress_seconds = 0;  // no progress lines inside the table
    options.spectrum = spectrum;
    options.keep_jacobians = spectrum == coupling::SpectrumMethod::kExact;
    coupling::Measurement m;
    bench::median_seconds([&] { m = coupling::measure(adapter, inputs, options); },
                          quick ? 1 : std::max(1, repeats - 2),
                          /*warm_up=*/false);
    const auto& t = m.timings;
    const std::string name = spectrum == coupling::SpectrumMethod::kExact ? "exact" : "randomized";
    std::printf("   %-11s %8.2f %8.2f %9.2f %8.2f %8.2f %8.3f %8.2f %8.3f\n", name.c_str(), t.total, t.forward,
                t.jacobians, t.spectra, t.coupling, t.nulls, t.trajectories, t.linearity);
    report.add({{"case", std::string("measurement")},
                {"spectrum", name},
                {"layers", layers},
                {"d", d},
                {"T", tokens},
                {"probes", probes},
                {"total_seconds", t.total},
                {"forward_seconds", t.forward},
                {"jacobian_seconds", t.jacobians},
                {"spectra_seconds", t.spectra},
                {"coupling_seconds", t.coupling},
                {"null_seconds", t.nulls},
                {"trajectory_seconds", t.trajectories},
                {"linearity_seconds", t.linearity}});
    std::printf("   %-11s null %.1f%%, linearity %.1f%% of the total\n", "", 100 * t.nulls / t.total,
                100 * t.linearity / t.total);
    if (options.keep_jacobians) kept = std::move(m);
  }
  return kept;
}

void bench_measurement(Report& report, bool quick, int repeats, c10::Device device) {
  // The trainer's default GPT (4 x 128), then case 2 proper, whose Jacobians case 5 reuses.
  bench_measurement_shape(report, quick, repeats, device, 128, 4);
  const int64_t d = quick ? 256 : 768, layers = quick ? 4 : 12, probes = 8;
  const coupling::Measurement kept = bench_measurement_shape(report, quick, repeats, device, d, layers);

  std::printf("\n5. Randomized vs exact top-50 on the %lld Jacobians above (d=%lld)\n",
              static_cast<long long>(probes * layers), static_cast<long long>(d));
  std::printf("   %4s %4s %10s %10s %14s %14s\n", "p", "q", "seconds", "vs exact", "max rel err s", "max |dm_K|");
  const auto jac = kept.jacobians.select(1, 0);  // [P, L, d, d]
  coupling::TopK exact;
  const double exact_seconds = bench::median_seconds([&] { exact = coupling::exact_topk(jac, 50); }, 1, false);
  const auto exact_m = coupling::coupling_matrices(jac, exact, {10, 30, 50});
  for (const auto& [p, q] : std::vector<std::pair<int64_t, int64_t>>{{10, 2}, {10, 4}, {20, 4}}) {
    coupling::RandomizedOptions options;
    options.oversample = p;
    options.power_iterations = q;
    coupling::TopK approx;
    const double seconds = bench::median_seconds(
        [&] { approx = coupling::randomized_topk(coupling::dense_operator(jac), 50, options); }, 1, false);
    const double s_error = ((approx.s - exact.s).abs() / exact.s).max().item<double>();
    const double m_error =
        (coupling::coupling_matrices(jac, approx, {10, 30, 50}) - exact_m).abs().max().item<double>();
    std::printf("   %4lld %4lld %10.3f %9.1fx %14.2e %14.2e\n", static_cast<long long>(p), static_cast<long long>(q),
                seconds, exact_seconds / seconds, s_error, m_error);
    report.add({{"case", std::string("spectra")},
                {"oversample", p},
                {"power_iterations", q},
                {"seconds", seconds},
                {"exact_seconds", exact_seconds},
                {"max_rel_error_s", s_error},
                {"max_abs_error_m", m_error}});
  }
  std::printf("   exact (full SVD, fp32): %.3f s\n", exact_seconds);
}

// ---- 3. Training overhead ----------------------------------------------------------------------------
void bench_training_overhead(Report& report, int64_t steps) {
  std::printf("\n3. Training overhead: default GPT, %lld steps, default schedule vs --log none\n",
              static_cast<long long>(steps));
  const auto train = (fs::path(self_path()).parent_path() / "coupling-train").string();
  const auto dir = fs::temp_directory_path() / ("coupling-bench-" + std::to_string(::getpid()));
  double wall[2] = {0, 0}, measured = 0;
  for (int instrumented = 0; instrumented < 2; ++instrumented) {
    const auto out = (dir / (instrumented ? "instrumented" : "plain")).string();
    std::vector<std::string> argv = {train,   "gpt", "--steps",     std::to_string(steps),
                                     "--out", out,   "--log-every", "1000"};
    if (!instrumented) argv.insert(argv.end(), {"--log", "none"});
    const auto child = bench::run_child(argv);
    std::ifstream in(out + "/summary.json");
    if (child.status != 0 || !in) throw std::runtime_error("coupling-train failed");
    const auto summary = nlohmann::json::parse(in);
    wall[instrumented] = summary.at("wall_seconds").get<double>();
    if (instrumented) measured = summary.at("measure_seconds").get<double>();
  }
  fs::remove_all(dir);
  std::printf("   plain %.1f s, instrumented %.1f s (%.1f s measuring): ratio %.3f\n", wall[0], wall[1], measured,
              wall[1] / wall[0]);
  report.add({{"case", std::string("training_overhead")},
              {"steps", steps},
              {"plain_seconds", wall[0]},
              {"instrumented_seconds", wall[1]},
              {"measure_seconds", measured},
              {"ratio", wall[1] / wall[0]}});
}

// ---- 4. C++ vs PyTorch step --------------------------------------------------------------------------
void bench_step_time(Report& report, int repeats) {
  std::printf("\n4. Training step, default GPT (4x128, context 128, batch 32), AdamW: C++ vs PyTorch eager\n");
  at::manual_seed(0);
  trainer::Gpt model(trainer::GptConfig{});
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-3));
  const auto ids = at::randint(256, {32, 129}, at::kLong);
  const auto inputs = ids.narrow(1, 0, 128), targets = ids.narrow(1, 1, 128);
  const double cpp = bench::median_seconds(
      [&] {
        optimizer.zero_grad();
        trainer::next_token_loss(model->forward(inputs), targets).backward();
        optimizer.step();
      },
      std::max(repeats, 10));
  const auto child = bench::run_child(
      {bench_paths::kPython, std::string(bench_paths::kSourceDir) + "/bench/pytorch_reference.py", "--steps",
       std::to_string(std::max(repeats, 10)), "--threads", std::to_string(at::get_num_threads())});
  const double python = child.status == 0 ? parse_value(child.output, "step_seconds=") : std::nan("");
  std::printf("   C++ %.4f s/step, PyTorch %.4f s/step: C++ / PyTorch = %.3f\n", cpp, python, cpp / python);
  report.add(
      {{"case", std::string("step_time")}, {"cpp_seconds", cpp}, {"pytorch_seconds", python}, {"ratio", cpp / python}});
}

// ---- 6. A Hugging Face model's block ------------------------------------------------------------
void bench_hf(Report& report, const std::string& dir, int repeats, c10::Device device) {
  const auto directory = std::make_shared<const coupling::hf::HfDirectory>(dir);
  const auto& config = directory->config();
  coupling::hf::HfAdapter adapter(coupling::hf::HfTransformer(directory, device));
  const int64_t tokens = std::min<int64_t>(128, config.max_positions), block = config.layers / 2, d = config.d_model;
  at::manual_seed(0);
  at::Tensor x;
  {
    at::NoGradGuard no_grad;
    x = adapter.residual_states(
        at::randint(config.vocab, {1, tokens}, at::kLong).to(device))[static_cast<size_t>(block)][0];
  }
  std::printf("\n6. Block Jacobian J_{T-1,T-1} of %s (block %lld of %lld, d=%lld, T=%lld), median of %d\n", dir.c_str(),
              static_cast<long long>(block), static_cast<long long>(config.layers), static_cast<long long>(d),
              static_cast<long long>(tokens), repeats);
  std::printf("   %-12s %12s %12s %16s\n", "method", "seconds", "vs paper", "x L blocks x 8");
  double paper_seconds = 0.0;
  for (const auto& method : kJacobianMethods) {
    const int64_t rows = timed_rows(method, d);
    const auto options = jacobian_options(method);
    const double scale = static_cast<double>(d) / static_cast<double>(rows);
    const double seconds =
        scale * bench::median_seconds(
                    [&] {
                      coupling::jacobian_rows(adapter, block, x, tokens - 1, {tokens - 1}, 0, rows, options);
                      wait_for(device);
                    },
                    repeats);
    if (method == kJacobianMethods.front()) paper_seconds = seconds;
    const double per_measurement = seconds * static_cast<double>(config.layers) * 8.0;
    std::printf("   %-12s %11.4f%s %11.1fx %15.1f s\n", method.c_str(), seconds, scale > 1.0 ? "x" : " ",
                paper_seconds / seconds, per_measurement);
    report.add({{"case", std::string("hf_jacobian")},
                {"model", config.model_type},
                {"d", d},
                {"T", tokens},
                {"method", method},
                {"seconds", seconds},
                {"speedup_vs_paper", paper_seconds / seconds},
                {"jacobians_of_8_probes_seconds", per_measurement}});
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows line by line
  CLI::App app("coupling-bench: side-by-side performance of libcoupling");
  bool quick = false, skip_training = false, skip_python = false;
  int repeats = 3;
  int64_t train_steps = 300;
  std::string json = "bench_results.json";
  std::vector<std::string> worker;
  std::string device_spec = "auto";
  app.add_flag("--quick", quick, "Small grid, for a smoke test");
  app.add_option("--repeats", repeats, "Timed repeats per case (median)")->capture_default_str();
  app.add_option("--train-steps", train_steps, "Steps for the training-overhead case")->capture_default_str();
  app.add_option("--json", json, "Where to write the results")->capture_default_str();
  app.add_flag("--skip-training", skip_training, "Skip case 3");
  app.add_flag("--skip-python", skip_python, "Skip case 4");
  app.add_option("--device", device_spec, std::string("Where cases 1 and 2 run: ") + coupling::kDeviceChoices)
      ->capture_default_str();
  std::string hf_dir;
  app.add_option("--hf", hf_dir, "Case 6 alone: a Hugging Face model directory's block Jacobian by method");
  app.add_option("--worker", worker, "(internal) METHOD D T")->expected(3);
  trainer::add_standard_flags(app);
  if (const auto exit_status = trainer::parse_command_line(app, argc, argv)) return *exit_status;
  c10::Device device(c10::kCPU);
  try {
    device = coupling::resolve_device(device_spec);
  } catch (const coupling::Error& e) {
    std::fprintf(stderr, "coupling-bench: %s\n", e.what());
    return 2;
  }
  if (!worker.empty()) return jacobian_worker(worker[0], std::stoll(worker[1]), std::stoll(worker[2]), repeats, device);

  trainer::reexec_with_tuned_openblas(argv);
  const int64_t threads = trainer::configure_threads(0);
  const double gflops = bench::sgemm_gflops(1024);
  std::printf("coupling-bench: LibTorch %s, %lld threads, OpenBLAS core %s, sgemm(1024) %.0f GFLOP/s, device %s%s\n",
              coupling::torch_version().c_str(), static_cast<long long>(threads), trainer::openblas_core().c_str(),
              gflops, device.str().c_str(), quick ? ", --quick" : "");
  Report report;
  report.add({{"case", std::string("machine")},
              {"libtorch", coupling::torch_version()},
              {"device", device.str()},
              {"threads", threads},
              {"sgemm_gflops", gflops}});
  if (!hf_dir.empty()) {
    bench_hf(report, hf_dir, repeats, device);
    std::ofstream(json) << report.json();
    std::printf("\nresults: %s\n", json.c_str());
    return 0;
  }
  bench_jacobians(report, quick, repeats, gflops, device);
  bench_measurement(report, quick, repeats, device);
  if (!skip_training) bench_training_overhead(report, quick ? 40 : train_steps);
  if (!skip_python) bench_step_time(report, repeats);
  std::ofstream(json) << report.json();
  std::printf("\nresults: %s\n", json.c_str());
  return 0;
}
