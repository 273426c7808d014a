// Models exported from PyTorch with torch.jit.script or torch.jit.trace, measured through
// libcoupling's ModelAdapter. The module must follow a small convention (checked on load; see
// examples/export_torchscript.py):
//   embed(inputs) -> X^0 [B, T, d]   a method: the input embedding (tokens, patches, ...)
//   blocks                           a ModuleList whose l-th module maps X^{l} [B, T, d] to X^{l+1}
//                                    (the whole block, skip connection included)
//   causal                           a bool attribute: True when token t only sees tokens <= t
// Block l's residual branch is then f_l(X) = blocks[l](X) - X. Jacobians use the generic
// autograd path (the token-local fast path needs the bundled TransformerBlock).
#pragma once

#include "coupling/engine/model_adapter.h"

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

namespace coupling {

/// Loads `path` and checks the convention. Throws coupling::ConfigError explaining what is
/// missing or of the wrong type, or coupling::IoError when the file cannot be read as TorchScript.
/// The module's parameters and buffers are put on `device`.
std::shared_ptr<ModelAdapter> load_torchscript_model(const std::string& path,
                                                     c10::Device device = c10::Device(c10::kCPU));

/// Loads a tensor saved from Python with torch.save(tensor, path) (probe inputs). Throws
/// coupling::IoError when the file cannot be read or holds something else.
at::Tensor load_saved_tensor(const std::string& path);

}  // namespace coupling
