// libcoupling, all layers (docs/design.md). Include the narrower headers to pay for less:
//   engine    measure() and what it computes, with no I/O and no distribution
//   formats   safetensors and SHA-256 (files from outside)
//   models    ready-made adapters: Hugging Face checkpoints, TorchScript modules
//   log       the crash-safe HDF5 coupling log, TensorBoard event files
//   dist      a measurement shared by the ranks of a job, over a c10d process group
//   training  callbacks for a training loop, measurement schedules, CouplingCallback,
//             TensorBoardCallback
#pragma once

#include "coupling/error.h"
#include "coupling/version.h"

#include "coupling/engine/coupling_metric.h"
#include "coupling/engine/device.h"
#include "coupling/engine/fields.h"
#include "coupling/engine/jacobian.h"
#include "coupling/engine/measurement.h"
#include "coupling/engine/model_adapter.h"
#include "coupling/engine/progress.h"
#include "coupling/engine/spectrum.h"
#include "coupling/engine/trajectory.h"

#include "coupling/formats/safetensors.h"
#include "coupling/formats/sha256.h"
#include "coupling/models/hf/config.h"
#include "coupling/models/hf/directory.h"
#include "coupling/models/hf/model.h"
#include "coupling/models/torchscript_model.h"

#include "coupling/log/coupling_log.h"
#include "coupling/log/records.h"
#include "coupling/log/tensorboard_events.h"

#include "coupling/dist/communicator.h"
#include "coupling/dist/distributed_measurement.h"
#include "coupling/dist/share.h"

#include "coupling/training/callback.h"
#include "coupling/training/coupling_callback.h"
#include "coupling/training/schedule.h"
#include "coupling/training/tensorboard_callback.h"
