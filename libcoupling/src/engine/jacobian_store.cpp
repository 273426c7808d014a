#include "jacobian_store.h"

#include "coupling/error.h"
#include "internal/positioned_io.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace coupling {
namespace {

std::string temporary_directory() {
  const char* dir = std::getenv("TMPDIR");
  return dir != nullptr && *dir != '\0' ? dir : "/tmp";
}

}  // namespace

JacobianStore::JacobianStore(int64_t count, int64_t d, const at::TensorOptions& options, int64_t max_memory_bytes)
    : count_(count), d_(d), options_(options.dtype(at::kFloat)) {
  const int64_t bytes = count * d * d * static_cast<int64_t>(sizeof(float));
  if (bytes <= max_memory_bytes || options_.device().type() != c10::kCPU) {
    memory_ = at::empty({count, d, d}, options_);
    return;
  }
  std::string path = temporary_directory() + "/libcoupling-jacobians-XXXXXX";
  fd_ = ::mkstemp(path.data());
  if (fd_ < 0) {
    throw Error(
        fmt::format("cannot create a temporary file in {} for {:.0f} MiB of Jacobians ({}): set TMPDIR to a "
                    "writable directory with that much space",
                    temporary_directory(), bytes / 1048576.0, std::strerror(errno)));
  }
  ::unlink(path.c_str());  // gone with the descriptor, whatever ends the process
}

JacobianStore::~JacobianStore() {
  if (fd_ >= 0) ::close(fd_);
}

void JacobianStore::put(int64_t index, const at::Tensor& jacobian) {
  if (!spilled()) {
    memory_.select(0, index).copy_(jacobian);
    return;
  }
  const auto data = jacobian.to(at::kFloat).contiguous();
  const uint64_t size = static_cast<uint64_t>(d_ * d_) * sizeof(float);
  if (!detail::pwrite_fully(fd_, data.data_ptr(), size, static_cast<uint64_t>(index) * size)) {
    const int error = errno;
    throw Error(
        fmt::format("cannot spill a Jacobian to a temporary file in {} ({}): free {:.0f} MiB there, or set "
                    "TMPDIR to a directory with room",
                    temporary_directory(), error != 0 ? std::strerror(error) : "no space written",
                    static_cast<double>(count_) * static_cast<double>(size) / 1048576.0));
  }
}

at::Tensor JacobianStore::get(const std::vector<int64_t>& indices) const {
  if (!spilled()) {
    return memory_.index_select(0, at::tensor(indices, at::kLong).to(memory_.device()));
  }
  auto result = at::empty({static_cast<int64_t>(indices.size()), d_, d_}, options_);
  const uint64_t size = static_cast<uint64_t>(d_ * d_) * sizeof(float);
  auto* into = static_cast<char*>(result.data_ptr());
  for (size_t i = 0; i < indices.size(); ++i) {
    const int64_t got = detail::pread_fully(fd_, into + i * size, size, static_cast<uint64_t>(indices[i]) * size);
    if (got != static_cast<int64_t>(size)) {
      throw Error("cannot read back a spilled Jacobian from its temporary file: " +
                  std::string(got < 0 ? std::strerror(errno) : "it is shorter than written"));
    }
  }
  return result;
}

const at::Tensor& JacobianStore::all() const {
  if (spilled()) throw Error("JacobianStore::all: the Jacobians were spilled to a file, not kept in memory");
  return memory_;
}

}  // namespace coupling
