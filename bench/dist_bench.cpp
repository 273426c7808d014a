// coupling-dist-bench: one coupling measurement shared by the ranks of a data-parallel job
// (launch it with scripts/launch.sh N, or run it alone for the 1-rank baseline). Prints the
// median wall time of the shared measurement on rank 0. bench/dist_speedup.sh runs 1 and 2
// ranks side by side and prints the ratio (docs/performance.md).
//   coupling-dist-bench [--d-model 256] [--layers 4] [--context 64] [--probes 8] [--repeats 3] [--threads 1]
#include "bench_support.h"
#include "coupling/dist/distributed_measurement.h"
#include "coupling/engine/measurement.h"
#include "trainer/apps/command_line.h"
#include "trainer/loop/runtime.h"
#include "trainer/models/gpt.h"
#include "trainer/models/transformer_adapter.h"
#include "trainer/parallel/env.h"
#include "trainer/parallel/rendezvous.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <optional>

int main(int argc, char** argv) {
  trainer::reexec_with_tuned_openblas(argv);
  CLI::App app("coupling-dist-bench: a coupling measurement shared across data-parallel ranks");
  trainer::GptConfig config;
  config.d_model = 256;
  config.context = 64;
  config.heads = 4;
  int64_t probes = 8, threads = 1;
  int repeats = 3;
  app.add_option("--d-model", config.d_model)->capture_default_str();
  app.add_option("--layers", config.layers)->capture_default_str();
  app.add_option("--context", config.context)->capture_default_str();
  app.add_option("--probes", probes)->capture_default_str();
  app.add_option("--repeats", repeats)->capture_default_str();
  app.add_option("--threads", threads, "Intra-op threads per rank")->capture_default_str();
  trainer::add_standard_flags(app);
  if (const auto exit_status = trainer::parse_command_line(app, argc, argv)) return *exit_status;
  try {
    trainer::configure_threads(threads);
    const auto env = trainer::resolve_dist_env();
    std::optional<coupling::Communicator> communicator;
    if (env.distributed()) communicator.emplace(trainer::connect(env));
    at::manual_seed(0);
    trainer::Gpt model(config);
    trainer::GptAdapter adapter(model);
    const auto inputs = at::randint(0, config.vocab, {probes, config.context}, at::kLong);
    coupling::MeasurementOptions options;  // defaults: last token, K = 10, 30, 50, auto spectra
    options.progress_seconds = 0;          // no progress lines inside the table
    coupling::Measurement m;
    const double seconds = bench::median_seconds(
        [&] {
          m = communicator ? coupling::measure(adapter, inputs, options, *communicator)
                           : coupling::measure(adapter, inputs, options);
        },
        repeats);
    if (env.rank == 0) {
      fmt::print(
          "ranks {} | d={} L={} T={} probes={} threads/rank={} | measurement {:.3f} s (median of {}) | "
          "m_K(K={}) {:.6f}\n",
          env.world_size, config.d_model, config.layers, config.context, probes, threads, seconds, repeats,
          m.k_grid.front(), coupling::depth_coupling_summary(m)[0].item<double>());
    }
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "coupling-dist-bench: {}\n", e.what());
    return 2;
  }
}
