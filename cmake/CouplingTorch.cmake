# Finding LibTorch, for the build and for the installed CMake package: Debian's libtorch-dev 1.13
# (CPU) and LibTorch 2.x with CUDA (PyPI's torch wheel, PyTorch's libtorch zip, conda).
#
#   coupling_prepare_torch_cuda()   call before find_package(Torch)
#   coupling_link_torch(TARGET DIR) after it: TARGET (an INTERFACE library) carries LibTorch
#   coupling_torch_has_nccl(VAR)    whether LibTorch's c10d was built with NCCL
#
# Why each exists:
# - The torch wheel brings its own CUDA runtime, NCCL and cuDNN (nvidia-* wheels), which its
#   libtorch_cuda finds through its RUNPATH. TorchConfig would instead look for a CUDA toolkit
#   (nvcc) and link the toolkit's libcudart and libnvrtc into every program: a second, possibly
#   older runtime loaded first, and no build at all on a machine without a toolkit. When the
#   wheel's CUDA headers are there, torch::cudart is defined from them first (TorchConfig then
#   skips its toolkit search) and links nothing. We compile no CUDA code.
# - TORCH_LIBRARIES also names libc10 found by find_library, which prefers the system's
#   /usr/lib copy (Debian's 1.13) over the LibTorch being used: we link torch's targets only.
# - LibTorch 2.x ships fmt 12 headers in its include directory, ahead of the system's fmt 9
#   that spdlog is built against: a directory holding only a link to the system's fmt goes first.
#   LibTorch's public headers that we include do not use fmt.
# - TorchConfig.cmake does not say whether c10d has NCCL: libtorch_cuda's symbols do.
# - TorchConfig finds Caffe2 (where the imported targets live) with PATHS, which come after the
#   system's: given only Torch_DIR, a machine with Debian's libtorch-dev gets Debian's targets.

macro(coupling_prepare_torch_cuda)
  if(Torch_DIR AND NOT Caffe2_DIR AND EXISTS "${Torch_DIR}/../Caffe2/Caffe2Config.cmake")
    get_filename_component(Caffe2_DIR "${Torch_DIR}/../Caffe2" ABSOLUTE)
  endif()
  if(NOT TARGET torch::cudart)
    set(_coupling_cuda_includes)
    foreach(_prefix IN LISTS Torch_DIR CMAKE_PREFIX_PATH)
      # <site-packages>/torch/share/cmake[/Torch] -> <site-packages>/nvidia/*/include
      file(GLOB _found "${_prefix}/../../../nvidia/*/include" "${_prefix}/../../../../nvidia/*/include")
      list(APPEND _coupling_cuda_includes ${_found})
    endforeach()
    set(_coupling_has_runtime OFF)
    foreach(_dir IN LISTS _coupling_cuda_includes)
      if(EXISTS "${_dir}/cuda_runtime_api.h")
        set(_coupling_has_runtime ON)
      endif()
    endforeach()
    if(_coupling_has_runtime)
      add_library(torch::cudart INTERFACE IMPORTED)
      set_property(TARGET torch::cudart PROPERTY INTERFACE_INCLUDE_DIRECTORIES ${_coupling_cuda_includes})
    endif()
  endif()
endmacro()

function(coupling_link_torch target shim_dir)
  target_link_libraries(${target} INTERFACE torch torch_library)
  if(NOT TORCH_INSTALL_PREFIX OR NOT EXISTS "${TORCH_INSTALL_PREFIX}/include/fmt")
    return()
  endif()
  find_package(fmt CONFIG REQUIRED)
  get_target_property(fmt_includes fmt::fmt INTERFACE_INCLUDE_DIRECTORIES)
  foreach(dir IN LISTS fmt_includes)
    if(EXISTS "${dir}/fmt/format.h")
      file(MAKE_DIRECTORY "${shim_dir}")
      file(CREATE_LINK "${dir}/fmt" "${shim_dir}/fmt" SYMBOLIC)
      target_include_directories(${target} SYSTEM BEFORE INTERFACE "$<BUILD_INTERFACE:${shim_dir}>")
      return()
    endif()
  endforeach()
  message(FATAL_ERROR "LibTorch at ${TORCH_INSTALL_PREFIX} ships fmt headers, and the system fmt's "
                      "headers were not found (${fmt_includes}): install libfmt-dev")
endfunction()

function(coupling_torch_has_nccl out_var)
  set(${out_var} OFF PARENT_SCOPE)
  if(NOT TARGET torch_cuda)
    return()
  endif()
  get_target_property(library torch_cuda LOCATION)
  execute_process(COMMAND ${CMAKE_NM} -D --defined-only "${library}" OUTPUT_VARIABLE symbols ERROR_QUIET)
  string(FIND "${symbols}" "ProcessGroupNCCL" found)
  if(NOT found EQUAL -1)
    set(${out_var} ON PARENT_SCOPE)
  endif()
endfunction()
