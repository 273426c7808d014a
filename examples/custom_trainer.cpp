// A user's own minimal training loop with the coupling callback: the user's model (mixer_model.h),
// the user's data (noisy counting sequences) and optimizer; libcoupling adds a few lines:
// an adapter, the callback, and the hook calls. Writes the HDF5 log given on the command line,
// and TensorBoard event files when a directory is given too.
//
//   custom_trainer LOG.h5 [STEPS=60] [TENSORBOARD_DIR]
//   (plot it: scripts/plot_coupling.py LOG.h5; or tensorboard --logdir TENSORBOARD_DIR)
#include "coupling/error.h"
#include "coupling/training/callback.h"
#include "coupling/training/coupling_callback.h"
#include "coupling/training/tensorboard_callback.h"
#include "mixer_model.h"

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace {

/// Sequences t -> (start + t) mod vocab with 10% of the tokens replaced by noise.
at::Tensor counting_batch(int64_t batch, int64_t tokens, int64_t vocab, at::Generator generator) {
  auto start = at::randint(vocab, {batch, 1}, generator, at::kLong);
  auto ids = (start + at::arange(tokens, at::kLong).unsqueeze(0)).remainder(vocab);
  auto noise = at::randint(vocab, {batch, tokens}, generator, at::kLong);
  return at::where(at::rand({batch, tokens}, generator) < 0.1, noise, ids);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s LOG.h5 [STEPS=60] [TENSORBOARD_DIR]\n", argv[0]);
    return 2;
  }
  const int64_t steps = argc > 2 ? std::stoll(argv[2]) : 60;
  const int64_t vocab = 32, tokens = 24, batch = 16;
  at::manual_seed(0);
  auto data_rng = at::detail::createCPUGenerator(1);
  MixerModel model(vocab, /*d=*/32, /*layers=*/3);
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(3e-3));

  // libcoupling: adapter + callback (measure at step 0, every 20 steps and at the end).
  coupling::CouplingCallbackOptions options;
  options.log_path = argv[1];
  options.measurement.k_grid = {4, 8, 16};
  options.schedule = coupling::MeasurementSchedule::parse("every:20");
  options.model = "mixer";
  coupling::CallbackList callbacks;
  std::shared_ptr<coupling::CouplingCallback> coupling_callback;
  try {
    coupling_callback = std::make_shared<coupling::CouplingCallback>(
        mixer_adapter(model), counting_batch(4, tokens, vocab, at::detail::createCPUGenerator(2)), options);
    callbacks.add(coupling_callback);
    // Optional: losses and every measurement's summaries in TensorBoard too (on_measurement).
    if (argc > 3) callbacks.add(std::make_shared<coupling::TensorBoardCallback>(argv[3]));
    callbacks.on_train_begin({0, steps, false});
  } catch (const coupling::Error& e) {
    std::fprintf(stderr, "custom_trainer: %s\n", e.what());
    return 2;
  }

  const auto start = std::chrono::steady_clock::now();
  double loss_value = 0.0;
  for (int64_t step = 1; step <= steps; ++step) {
    const auto ids = counting_batch(batch, tokens + 1, vocab, data_rng);
    const auto inputs = ids.narrow(1, 0, tokens), targets = ids.narrow(1, 1, tokens);
    auto loss = at::cross_entropy_loss(mixer_logits(model, inputs).reshape({-1, vocab}), targets.reshape({-1}));
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    loss_value = loss.item<double>();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    auto end =
        coupling::StepEnd(step, steps).with_loss(loss_value).with_lr(3e-3).with_tokens_seen(step * batch * tokens);
    callbacks.on_step_end(end.with_wall_seconds(wall));
    if (step == steps) callbacks.on_train_end(end);
  }
  std::printf("custom_trainer: %lld steps, final loss %.4f, coupling log %s\n", static_cast<long long>(steps),
              loss_value, argv[1]);
  const auto first = coupling::depth_coupling_summary(*coupling_callback->first()),
             last = coupling::depth_coupling_summary(*coupling_callback->latest());
  for (int64_t k = 0; k < first.numel(); ++k) {
    std::printf("  depth m_K, K=%lld: %.4f at step 0 -> %.4f at step %lld\n",
                static_cast<long long>(options.measurement.k_grid[k]), first[k].item<double>(), last[k].item<double>(),
                static_cast<long long>(steps));
  }
  return 0;
}
