// coupling._engine: libcoupling's C++ engine in a Python process, a thin binding of the library
// (docs/python.md). The Python package wraps it: coupling.measure, coupling.hf.CouplingCallback,
// coupling.Monitor; nothing here is meant to be called directly.
#include "callback_session.h"
#include "live_models.h"
#include "measurement_dict.h"

#include "coupling/engine/memory_estimate.h"
#include "coupling/error.h"
#include "coupling/memory_size.h"
#include "coupling/models/hf/config.h"
#include "coupling/training/schedule.h"

#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#include <optional>

namespace py = pybind11;
using namespace coupling;

namespace {

/// Measures once, after the memory check of the command-line tools.
py::dict measure_once(ModelAdapter& adapter, const at::Tensor& probes, const MeasurementOptions& options,
                      std::optional<int64_t> max_memory_bytes) {
  const auto layout = resolve_layout(adapter, probes, options);
  const auto estimate = estimate_measurement_memory(layout, options, {adapter.tensor_bytes(), 0}, probes.device(),
                                                    adapter.supports_token_local());
  check_memory(estimate, probes.device(), 1, max_memory_bytes, kMeasurementMemoryAdvice);
  std::optional<Measurement> m;
  {
    py::gil_scoped_release released;
    m.emplace(measure(adapter, probes, options));
  }
  return python::measurement_dict(*m);
}

}  // namespace

PYBIND11_MODULE(_engine, m) {
  m.doc() = "libcoupling's C++ engine (internal: use coupling.measure, coupling.hf, coupling.Monitor)";
  // Errors in the library's own terms: a bad option or input is a ValueError, a file an OSError.
  auto base = py::register_exception<Error>(m, "CouplingError", PyExc_RuntimeError);
  py::register_exception<ConfigError>(m, "ConfigError", PyExc_ValueError);
  py::register_exception<DataError>(m, "DataError", PyExc_ValueError);
  py::register_exception<IoError>(m, "IoError", PyExc_OSError);
  py::register_exception<CheckpointError>(m, "CheckpointError", base.ptr());
  py::register_exception<LogError>(m, "LogError", PyExc_OSError);
  py::register_exception<CommunicationError>(m, "CommunicationError", base.ptr());

  py::class_<ModelAdapter, std::shared_ptr<ModelAdapter>>(m, "ModelAdapter");

  py::class_<hf::HfConfig>(m, "HfConfig")
      .def_static("parse", &hf::parse_hf_config, py::arg("json_text"), py::arg("source"))
      .def("summary", &hf::HfConfig::summary)
      .def("check_probes", &hf::HfConfig::check_probes, py::arg("tokens"), py::arg("smallest_id"),
           py::arg("largest_id"));
  m.attr("supported_families") = hf::kSupportedFamilies;

  py::class_<python::LiveHfAdapter, ModelAdapter, std::shared_ptr<python::LiveHfAdapter>>(m, "LiveHfModel")
      .def(py::init<hf::HfConfig, py::object>(), py::arg("config"), py::arg("tensors"));
  py::class_<python::CallableAdapter, ModelAdapter, std::shared_ptr<python::CallableAdapter>>(m, "CallableModel")
      .def(py::init<py::object, std::vector<py::object>, bool>(), py::arg("embed"), py::arg("blocks"),
           py::arg("causal"));

  py::class_<MeasurementOptions>(m, "MeasurementOptions")
      .def_static(
          "parse",
          [](const std::string& k, const std::string& tokens, const std::string& context_pairs,
             const std::string& spectrum, const std::string& jacobian, int64_t depth_band) {
            return MeasurementOptions::parse(k, tokens, context_pairs, spectrum, {}, jacobian, depth_band);
          },
          py::arg("k"), py::arg("tokens"), py::arg("context_pairs"), py::arg("spectrum"), py::arg("jacobian"),
          py::arg("depth_band"))
      .def_readwrite("progress_seconds", &MeasurementOptions::progress_seconds)
      .def("__str__", &MeasurementOptions::str);

  m.def("measure", &measure_once, py::arg("model"), py::arg("probes"), py::arg("options"),
        py::arg("max_memory_bytes") = std::nullopt);
  m.def("parse_memory_size", &parse_memory_size, py::arg("text"), py::arg("flag"));

  py::class_<TrainBegin>(m, "TrainBegin")
      .def(py::init([](int64_t start_step, int64_t total_steps, bool resumed, double wall_seconds) {
             return TrainBegin{start_step, total_steps, resumed, wall_seconds};
           }),
           py::arg("start_step"), py::arg("total_steps"), py::arg("resumed"), py::arg("wall_seconds"));
  py::class_<StepEnd>(m, "StepEnd")
      .def(py::init([](int64_t step, int64_t total_steps, double loss, double lr, int64_t tokens_seen,
                       double wall_seconds, bool checkpoint, bool training_row) {
             return StepEnd(step, total_steps)
                 .with_loss(loss)
                 .with_lr(lr)
                 .with_tokens_seen(tokens_seen)
                 .with_wall_seconds(wall_seconds)
                 .with_checkpoint(checkpoint)
                 .with_training_row(training_row);
           }),
           py::arg("step"), py::arg("total_steps"), py::arg("loss"), py::arg("lr"), py::arg("tokens_seen"),
           py::arg("wall_seconds"), py::arg("checkpoint"), py::arg("training_row"));

  py::class_<python::CallbackSession>(m, "CallbackSession")
      .def(py::init([](std::shared_ptr<ModelAdapter> model, at::Tensor probes, const std::string& log,
                       const std::string& schedule, const MeasurementOptions& options, double max_overhead,
                       const std::string& model_name, const std::string& model_config, int64_t seed,
                       int64_t training_bytes, std::optional<int64_t> max_memory_bytes,
                       const py::object& process_group) {
             CouplingCallbackOptions o;
             o.log_path = log;
             o.schedule = MeasurementSchedule::parse(schedule);
             o.measurement = options;
             o.max_overhead = max_overhead;
             o.model = model_name;
             o.model_config = model_config;
             o.seed = seed;
             o.training_bytes = training_bytes;
             o.max_memory_bytes = max_memory_bytes;
             return std::make_unique<python::CallbackSession>(std::move(model), std::move(probes), std::move(o),
                                                              process_group);
           }),
           py::arg("model"), py::arg("probes"), py::arg("log"), py::arg("schedule"), py::arg("options"),
           py::arg("max_overhead"), py::arg("model_name"), py::arg("model_config"), py::arg("seed"),
           py::arg("training_bytes"), py::arg("max_memory_bytes"), py::arg("process_group"))
      .def_static("takes_process_group", &python::CallbackSession::takes_process_group)
      .def("load_state", &python::CallbackSession::load_state)
      .def("save_state", &python::CallbackSession::save_state)
      .def("setup", &python::CallbackSession::setup)
      .def("train_begin", &python::CallbackSession::train_begin)
      .def("step_end", &python::CallbackSession::step_end)
      .def("record_training",
           [](python::CallbackSession& s, int64_t step, double loss, double lr, int64_t tokens, double wall) {
             s.record_training({step, loss, lr, tokens, wall});
           })
      .def("eval", &python::CallbackSession::eval)
      .def_property_readonly("measure_seconds", &python::CallbackSession::measure_seconds)
      .def("overhead_fraction", &python::CallbackSession::overhead_fraction)
      .def("close", &python::CallbackSession::close);
}
