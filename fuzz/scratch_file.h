// A per-process scratch file for harnesses whose parser reads a path; removed at exit.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <string>

struct ScratchFile {
  std::string path;
  explicit ScratchFile(const std::string& name)
      : path("/tmp/coupling-fuzz-" + std::to_string(::getpid()) + "-" + name) {}
  ~ScratchFile() { std::remove(path.c_str()); }
};
