# Sourced by setup.sh, build.sh and test.sh: which LibTorch to use, from `--torch debian|pip` in
# the script's arguments (removed from them; the rest stay in $@). One place for what follows:
#   debian (default): Debian's libtorch-dev 1.13 (CPU), build tree build/, Debian's python3;
#   pip: LibTorch 2.x with CUDA and NCCL from PyPI's torch wheel in .venv/, build tree build-torch2/,
#        the venv's python (torch 2.x, numpy, h5py, matplotlib, transformers, ...).
# Sets torch_flavour, build_dir, coupling_python (absolute) and venv_dir.
torch_flavour=${COUPLING_TORCH:-debian}
remaining_args=()
while (($# > 0)); do
  case $1 in
    --torch) torch_flavour=${2:-}; shift $(($# > 1 ? 2 : 1)) ;;
    --torch=*) torch_flavour=${1#--torch=}; shift ;;
    *) remaining_args+=("$1"); shift ;;
  esac
done
set -- ${remaining_args[@]+"${remaining_args[@]}"}
venv_dir=$PWD/.venv
case $torch_flavour in
  debian) build_dir=build coupling_python=/usr/bin/python3 ;;
  pip) build_dir=build-torch2 coupling_python=$venv_dir/bin/python ;;
  *) echo "$(basename "$0"): --torch must be 'debian' (Debian's LibTorch 1.13, the default) or 'pip' (LibTorch 2.x with CUDA in .venv/), not '$torch_flavour'" >&2
     exit 2 ;;
esac
export COUPLING_PYTHON=$coupling_python
