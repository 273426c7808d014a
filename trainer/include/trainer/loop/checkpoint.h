// Checkpoints of the bundled trainers (format 3, data only: nothing in a checkpoint is code).
// OUT/checkpoints/step_<N>/ holds
//   model.safetensors      every parameter and buffer by name (docs/architecture.md); Python
//                          reads it with safetensors.torch.load_file
//   optimizer.safetensors  AdamW's moments and step count, by parameter name
//   rng.safetensors        [ranks, S] every data-parallel rank's LibTorch generator state
//   state.json             step, sampler RNG state, tokens seen, training seconds, callbacks' state
//   config.toml            the run's configuration
//   manifest.json          the format version and the size and SHA-256 of each file above,
//                          verified before anything is loaded
// A checkpoint is written into a fresh temporary directory and renamed into place, so a crash
// never leaves a half-written step_<N>. Format 1 (TorchScript archives, which can run code when
// loaded) is refused without being opened.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace torch {
namespace nn {
class Module;
}
namespace optim {
class Optimizer;
}
}  // namespace torch

namespace trainer {

/// Everything besides the model and optimizer needed to continue a run exactly.
struct TrainerState {
  int64_t step = 0;         ///< optimizer steps completed
  std::string sampler_rng;  ///< std::mt19937_64 state (operator<< text)
  int64_t tokens_seen = 0;
  double train_seconds = 0.0;                         ///< wall time spent training, summed over resumed sessions
  std::string data_sha256;                            ///< of the training data: a resume on other data is refused
  std::map<std::string, std::string> callback_state;  ///< what the training callbacks saved
  /// The checkpoint format it was read from: 2 keys callback_state by the callback's position in
  /// the list ("0.key"), 3 by its name ("coupling.key": CallbackList::keyed_by_name converts).
  int format = 3;
  /// [ranks, S] the LibTorch generator state of every data-parallel rank (dropout); its row count
  /// is the world size that wrote the checkpoint. Undefined when saving = this process's only.
  at::Tensor torch_rng;
};

/// The checkpoint format this code writes (manifest.json's "version"); it reads this and
/// kOldestCheckpointFormat.
constexpr int kCheckpointFormat = 3;
constexpr int kOldestCheckpointFormat = 2;

/// Writes every parameter and buffer of `model` by name to a safetensors file. Throws
/// coupling::IoError.
void save_model_safetensors(const torch::nn::Module& model, const std::string& path);

/// Directory of the checkpoint for `step` under run directory `out`.
std::string checkpoint_dir(const std::string& out, int64_t step);

/// Every complete checkpoint under `out`/checkpoints: step -> directory, in step order.
std::map<int64_t, std::string> checkpoints(const std::string& out);

/// The newest complete checkpoint under `out`/checkpoints, if any.
std::optional<std::string> latest_checkpoint(const std::string& out);

/// Writes a checkpoint atomically. Throws coupling::IoError.
void save_checkpoint(const std::string& out, const TrainerState& state, const torch::nn::Module& model,
                     const torch::optim::Optimizer& optimizer, const std::string& config_toml);

/// Checks checkpoint directory `dir` against its manifest (format 2 or 3, every file present with
/// its size and SHA-256) and returns the format. Every loader below verifies the bytes it loads
/// itself (each file is read once, hashed and parsed from memory); this is the early check. Throws
/// coupling::CheckpointError naming the file or the format.
int verify_checkpoint(const std::string& dir);

/// The config.toml of checkpoint `dir`, read once and checked against its manifest: the text
/// returned is the text hashed. Throws coupling::CheckpointError as verify_checkpoint does.
std::string read_checkpoint_config(const std::string& dir);

/// Restores only the model's parameters and buffers from checkpoint directory `dir` (for
/// analysis). Throws coupling::CheckpointError if the checkpoint fails its manifest, has another
/// format, or holds a model of another shape.
void load_model(const std::string& dir, torch::nn::Module& model);

/// Restores model, optimizer and the LibTorch default generator (rank `rank`'s row) from checkpoint
/// directory `dir` and returns the trainer state. Throws coupling::CheckpointError if a file is
/// missing, fails its SHA-256, is malformed, the format is not this code's, or the checkpoint was
/// written by a job of another world size; nothing is loaded until every file has passed.
TrainerState load_checkpoint(const std::string& dir, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                             int64_t rank = 0, int64_t world_size = 1);

}  // namespace trainer
