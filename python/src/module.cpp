// uotflow._uotflow: the library's metrics, differentiable losses and run handle for Python, on
// torch tensors without copies (the module shares LibTorch with Debian's python3-torch). JSON
// crosses as text; python/uotflow/__init__.py turns it into dicts. The GIL is released while C++
// works; a pending Ctrl-C stops a training at the next step, with a checkpoint.
#include <ATen/CPUGeneratorImpl.h>
#include <pybind11/functional.h>
#include <pybind11/stl.h>
#include <torch/extension.h>

#include <chrono>
#include <iostream>
#include <optional>

#include "uotflow/core/blas.h"
#include "uotflow/core/error.h"
#include "uotflow/data/tensor_dataset.h"
#include "uotflow/io/checkpoint.h"
#include "uotflow/metrics/gaussian.h"
#include "uotflow/metrics/metrics.h"
#include "uotflow/metrics/mmd.h"
#include "uotflow/ot/exact.h"
#include "uotflow/ot/phi.h"
#include "uotflow/ot/semidual.h"
#include "uotflow/ot/sinkhorn.h"
#include "uotflow/ot/sliced.h"
#include "uotflow/run/commands.h"
#include "uotflow/run/config.h"
#include "uotflow/run/run.h"
#include "uotflow/run/trainer.h"
#include "uotflow_build_info.h"

namespace py = pybind11;
using torch::Tensor;
using OptTensor = std::optional<Tensor>;

namespace uotflow {
namespace {

Tensor or_undefined(const OptTensor& t) {
  return t.has_value() ? *t : Tensor();
}

py::dict sinkhorn_dict(const SinkhornResult& r) {
  py::dict out;
  out["value"] = r.value;
  out["transport_cost"] = r.transport_cost;
  out["f"] = r.f;
  out["g"] = r.g;
  if (r.plan.defined()) {
    out["plan"] = r.plan;
  }
  out["iterations"] = r.iterations;
  out["marginal_error"] = r.marginal_error;
  return out;
}

SinkhornOptions sinkhorn_options(double epsilon, double rho, int64_t max_iter, double tolerance,
                                 double epsilon_scaling, bool return_plan) {
  SinkhornOptions o;
  o.epsilon = epsilon;
  o.rho = rho;
  o.max_iter = max_iter;
  o.tolerance = tolerance;
  o.epsilon_scaling = epsilon_scaling;
  o.return_plan = return_plan;
  return o;
}

std::vector<std::string> json_rows(const std::vector<Json>& rows) {
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (const auto& r : rows) {
    out.push_back(r.dump());
  }
  return out;
}

// A Trainer driven from Python: stepping releases the GIL; every 0.1 s it takes the GIL back to
// see whether Python has a signal pending (Ctrl-C), and if so the run stops with a checkpoint and
// the signal's exception (KeyboardInterrupt) is raised once C++ has returned.
class PyTrainer {
 public:
  PyTrainer(Trainer trainer, std::shared_ptr<bool> pending)
      : trainer_(std::move(trainer)), pending_(std::move(pending)) {}

  static TrainOptions options(const std::string& out, const std::string& name, bool progress,
                              const std::string& command_line, std::shared_ptr<bool> pending,
                              std::shared_ptr<std::optional<py::error_already_set>> error) {
    TrainOptions o;
    o.out_root = out;
    o.name = name;
    o.command_line = command_line;
    if (progress) {
      o.progress = &std::cerr;
    }
    auto last = std::make_shared<std::chrono::steady_clock::time_point>();
    o.stop_requested = [pending, error, last]() {
      if (*pending) {
        return true;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now - *last < std::chrono::milliseconds(100)) {
        return false;
      }
      *last = now;
      py::gil_scoped_acquire gil;
      if (PyErr_CheckSignals() != 0) {
        error->emplace();  // takes the pending exception out of the interpreter
        *pending = true;
      }
      return *pending;
    };
    return o;
  }

  int64_t step(int64_t n) {
    {
      py::gil_scoped_release release;
      trainer_.step(n);
    }
    raise_pending();
    return trainer_.current_step();
  }

  void attach(std::shared_ptr<std::optional<py::error_already_set>> error) {
    error_ = std::move(error);
  }

  Trainer& trainer() {
    return trainer_;
  }

 private:
  void raise_pending() {
    if (*pending_) {
      *pending_ = false;
      if (error_ && error_->has_value()) {
        py::error_already_set e = std::move(**error_);
        error_->reset();
        throw e;
      }
    }
  }

  Trainer trainer_;
  std::shared_ptr<bool> pending_;
  std::shared_ptr<std::optional<py::error_already_set>> error_;
};

std::unique_ptr<PyTrainer> make_trainer(
    const std::string& config_json, const OptTensor& data, const std::string& out,
    const std::string& name, bool progress, const std::string& command_line,
    const std::string& resume_dir, const std::vector<std::pair<std::string, std::string>>& flags,
    const OptTensor& source, bool distributed) {
  auto pending = std::make_shared<bool>(false);
  auto error = std::make_shared<std::optional<py::error_already_set>>();
  auto options = PyTrainer::options(out, name, progress, command_line, pending, error);
  if (distributed) {
    const auto dist = DistOptions::from_env();
    if (!dist) {
      throw ConfigError(
          "distributed=True joins the processes the environment names: set WORLD_SIZE, RANK, "
          "MASTER_ADDR and MASTER_PORT (torchrun does)");
    }
    py::gil_scoped_release release;
    options.collective = Collective::connect(*dist);
  }
  auto in_memory = [](const OptTensor& t) -> std::shared_ptr<const Dataset> {
    return t.has_value() ? std::make_shared<TensorDataset>(*t) : nullptr;
  };
  const auto dataset = in_memory(data);
  const auto source_set = in_memory(source);
  std::unique_ptr<PyTrainer> out_trainer;
  {
    py::gil_scoped_release release;
    if (resume_dir.empty()) {
      out_trainer = std::make_unique<PyTrainer>(
          Trainer(parse_json(config_json, "config"), dataset, source_set, options), pending);
    } else {
      std::vector<std::pair<std::string, Json>> changes;
      for (const auto& [key, value] : flags) {
        changes.emplace_back(key, parse_json(value, key));
      }
      out_trainer = std::make_unique<PyTrainer>(
          Trainer::resume(resume_dir, dataset, options, changes, source_set), pending);
    }
  }
  out_trainer->attach(error);
  return out_trainer;
}

}  // namespace
}  // namespace uotflow

PYBIND11_MODULE(_uotflow, m) {
  using namespace uotflow;
  m.doc() = "uotflow's C++ core: OT metrics, differentiable losses and training runs on tensors.";
  m.attr("__version__") = UOTFLOW_VERSION;
  m.attr("torch_version") = TORCH_VERSION;

  // Errors: a problem with the input is a ValueError with the library's one-line message.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) {
        std::rethrow_exception(p);
      }
    } catch (const ConfigError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const uotflow::RuntimeError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  const auto nogil = py::call_guard<py::gil_scoped_release>();

  // ---- metrics ----
  m.def(
      "sliced_wasserstein",
      [](const Tensor& x, const Tensor& y, int64_t n_projections, double p, uint64_t seed,
         const OptTensor& weights_x, const OptTensor& weights_y, const OptTensor& directions) {
        if (directions.has_value()) {
          return sliced_wasserstein_pp(x, y, *directions, p, or_undefined(weights_x),
                                       or_undefined(weights_y))
              .clamp_min(0)
              .pow(1.0 / p);
        }
        return sliced_wasserstein(x, y, n_projections, seed, p, or_undefined(weights_x),
                                  or_undefined(weights_y));
      },
      py::arg("x"), py::arg("y"), py::arg("n_projections") = 500, py::arg("p") = 2.0,
      py::arg("seed") = 0, py::arg("weights_x") = py::none(), py::arg("weights_y") = py::none(),
      py::arg("directions") = py::none(), nogil,
      R"(Sliced Wasserstein distance SW_p (p-th root taken) along n_projections random directions.

x: [N, D] or [B, N, D]; y: [M, D] or [B, M, D] (float32/float64, any device).
weights_x: [N] or [B, N], weights_y: [M] or [B, M] (None: uniform; normalised to sum 1).
The same seed gives the same directions (random_directions(D, n_projections, seed)); directions:
[D, L] unit columns to use instead (as POT's `projections`). Differentiable in x and y.
Returns a tensor: [] or [B].)");
  m.def(
      "random_directions",
      [](int64_t dim, int64_t n_projections, uint64_t seed, py::object dtype) {
        auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
        auto options = torch::TensorOptions();
        if (!dtype.is_none()) {
          options = options.dtype(torch::python::detail::py_object_to_dtype(dtype));
        }
        return random_directions(dim, n_projections, gen, options);
      },
      py::arg("dim"), py::arg("n_projections"), py::arg("seed") = 0, py::arg("dtype") = py::none(),
      R"(The directions sliced_wasserstein(seed=seed) uses: [dim, n_projections], unit columns.)");
  m.def(
      "wasserstein",
      [](const Tensor& x, const Tensor& y, double p, const OptTensor& weights_x,
         const OptTensor& weights_y) {
        return wasserstein_exact(x, y, p, or_undefined(weights_x), or_undefined(weights_y));
      },
      py::arg("x"), py::arg("y"), py::arg("p") = 2.0, py::arg("weights_x") = py::none(),
      py::arg("weights_y") = py::none(), nogil,
      R"(Exact W_p (p-th root taken) between empirical measures, by network simplex.

x: [N, D], y: [M, D]; weights_x: [N], weights_y: [M] (None: uniform). Returns a float.)");
  m.def(
      "exact_ot",
      [](const Tensor& a, const Tensor& b, const Tensor& cost, bool return_plan) {
        auto r = exact_ot(a, b, cost, return_plan);
        py::gil_scoped_acquire gil;
        py::dict out;
        out["cost"] = r.cost;
        if (r.plan.defined()) {
          out["plan"] = r.plan;
        }
        return out;
      },
      py::arg("a"), py::arg("b"), py::arg("cost"), py::arg("return_plan") = false, nogil,
      R"(Exact OT for a cost matrix: min <P, C> with P 1 = a, P^T 1 = b (like POT's ot.emd).

a: [N], b: [M] non-negative weights, cost: [N, M]. Returns {"cost": float, "plan": [N, M]}.)");
  m.def(
      "sinkhorn",
      [](const Tensor& x, const Tensor& y, double epsilon, double rho, const OptTensor& weights_x,
         const OptTensor& weights_y, int64_t max_iter, double tolerance, double epsilon_scaling,
         bool return_plan) {
        auto r = sinkhorn_points(
            x, y, sinkhorn_options(epsilon, rho, max_iter, tolerance, epsilon_scaling, return_plan),
            or_undefined(weights_x), or_undefined(weights_y));
        py::gil_scoped_acquire gil;
        return sinkhorn_dict(r);
      },
      py::arg("x"), py::arg("y"), py::arg("epsilon") = 0.1, py::arg("rho") = -1.0,
      py::arg("weights_x") = py::none(), py::arg("weights_y") = py::none(),
      py::arg("max_iter") = 1000, py::arg("tolerance") = 1e-9, py::arg("epsilon_scaling") = 0.5,
      py::arg("return_plan") = false, nogil,
      R"(Entropic OT between point clouds with cost |x - y|^2 (log-stabilised Sinkhorn).

x: [N, D] or [B, N, D], y: [M, D] or [B, M, D]; weights [N] / [M] (None: uniform).
epsilon: regularisation (absolute, in cost units); rho > 0: KL-relaxed marginals (unbalanced).
Returns a dict: value (OT_eps, [] or [B]), transport_cost (<P, C>), f, g (dual potentials),
plan ([N, M], when return_plan), iterations, marginal_error.)");
  m.def(
      "sinkhorn_cost",
      [](const Tensor& cost, const OptTensor& a, const OptTensor& b, double epsilon, double rho,
         int64_t max_iter, double tolerance, double epsilon_scaling, bool return_plan) {
        auto r = sinkhorn(
            cost, or_undefined(a), or_undefined(b),
            sinkhorn_options(epsilon, rho, max_iter, tolerance, epsilon_scaling, return_plan));
        py::gil_scoped_acquire gil;
        return sinkhorn_dict(r);
      },
      py::arg("cost"), py::arg("a") = py::none(), py::arg("b") = py::none(),
      py::arg("epsilon") = 0.1, py::arg("rho") = -1.0, py::arg("max_iter") = 1000,
      py::arg("tolerance") = 1e-9, py::arg("epsilon_scaling") = 0.5, py::arg("return_plan") = false,
      nogil, R"(Entropic OT for a given cost matrix [N, M] or [B, N, M]; as sinkhorn().)");
  m.def(
      "squared_euclidean_cost", &squared_euclidean_cost, py::arg("x"), py::arg("y"), nogil,
      R"(|x_i - y_j|^2 for x: [N, D] or [B, N, D], y: [M, D] or [B, M, D] -> [N, M] or [B, N, M].)");
  m.def(
      "sinkhorn_divergence",
      [](const Tensor& x, const Tensor& y, double epsilon, double rho, const OptTensor& weights_x,
         const OptTensor& weights_y, int64_t max_iter, double tolerance) {
        return sinkhorn_divergence(x, y,
                                   sinkhorn_options(epsilon, rho, max_iter, tolerance, 0.5, false),
                                   or_undefined(weights_x), or_undefined(weights_y));
      },
      py::arg("x"), py::arg("y"), py::arg("epsilon") = 0.1, py::arg("rho") = -1.0,
      py::arg("weights_x") = py::none(), py::arg("weights_y") = py::none(),
      py::arg("max_iter") = 1000, py::arg("tolerance") = 1e-9, nogil,
      R"(Debiased Sinkhorn divergence OT_eps(x, y) - (OT_eps(x, x) + OT_eps(y, y)) / 2, cost |x - y|^2.

x: [N, D] or [B, N, D], y: [M, D] or [B, M, D]. Returns a tensor [] or [B]; 0 for identical inputs.)");
  m.def(
      "mmd",
      [](const Tensor& x, const Tensor& y, const std::string& kernel,
         const std::vector<double>& bandwidths, double degree) {
        Kernel k{kernel, {}, degree};
        if (kernel == "gaussian" || kernel == "laplacian") {
          k.bandwidths = resolve_bandwidths(x, y, bandwidths);
        }
        return mmd2_unbiased(x, y, k);
      },
      py::arg("x"), py::arg("y"), py::arg("kernel") = "gaussian",
      py::arg("bandwidths") = std::vector<double>{}, py::arg("degree") = 3.0, nogil,
      R"(Unbiased MMD^2 (U-statistic) between x: [N, D] and y: [M, D], N, M >= 2.

kernel: "gaussian" (sum over bandwidths of exp(-|x-y|^2 / (2 s^2))), "laplacian" (exp(-|x-y| / s)),
"energy" (-|x - y|) or "polynomial" ((x.y / D + 1)^degree). bandwidths: empty = the median
distance x {1/2, 1, 2}. Returns a float.)");
  m.def(
      "energy",
      [](const Tensor& x, const Tensor& y, int64_t n_projections, uint64_t seed) -> double {
        if (n_projections <= 0) {
          return energy_distance(x, y);
        }
        return sliced_energy_distance(x, y, n_projections, seed).item<double>();
      },
      py::arg("x"), py::arg("y"), py::arg("n_projections") = 0, py::arg("seed") = 0, nogil,
      R"(Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between x: [N, D] and y: [M, D].

n_projections = 0: exact, O(N M); > 0: the sliced estimate by sorting along that many seeded
directions, O(L (N + M) log(N + M)). Returns a float.)");
  m.def(
      "sliced_energy",
      [](const Tensor& x, const Tensor& y, int64_t n_projections, uint64_t seed) {
        return sliced_energy_distance(x, y, n_projections, seed);
      },
      py::arg("x"), py::arg("y"), py::arg("n_projections") = 500, py::arg("seed") = 0, nogil,
      R"(Sliced energy distance as a differentiable tensor []. x: [N, D], y: [M, D].)");
  m.def(
      "gaussian_w2",
      [](const Tensor& x, const Tensor& y) { return std::sqrt(frechet_distance(x, y)); },
      py::arg("x"), py::arg("y"), nogil,
      R"(W2 (Bures, square root taken) between the Gaussian fits of x: [N, D] and y: [M, D].)");
  m.def(
      "fid_from_features",
      [](const Tensor& features_x, const Tensor& features_y) {
        return frechet_distance(features_x, features_y);
      },
      py::arg("features_x"), py::arg("features_y"), nogil,
      R"(Frechet distance between feature sets [N, F] and [M, F] (the FID formula on features).)");
  m.def(
      "metric",
      [](const std::string& name, const Tensor& x, const Tensor& y, uint64_t seed,
         int64_t n_projections, double epsilon) {
        MetricContext c;
        c.seed = seed;
        c.n_projections = n_projections;
        c.epsilon = epsilon;
        return compute_metric(name, x, y, c);
      },
      py::arg("name"), py::arg("x"), py::arg("y"), py::arg("seed") = 0,
      py::arg("n_projections") = 1000, py::arg("epsilon") = 0.01, nogil,
      R"(Any registered metric by name (uotflow.info()["metrics"]): x: [N, D], y: [M, D] -> float.)");

  // ---- differentiable losses ----
  m.def(
      "sliced_wasserstein_loss",
      [](const Tensor& x, const Tensor& y, int64_t n_projections, double p, uint64_t seed) {
        auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
        const auto theta = random_directions(x.size(-1), n_projections, gen, x.options());
        return sliced_wasserstein_pp(x, y, theta, p);
      },
      py::arg("x"), py::arg("y"), py::arg("n_projections") = 500, py::arg("p") = 2.0,
      py::arg("seed") = 0, nogil,
      R"(SW_p^p (no root) along seeded directions, with autograd: a loss for your own loop.

x: [N, D] or [B, N, D], y: [M, D] or [B, M, D] -> [] or [B].)");
  m.def(
      "psi_star",
      [](const std::string& name, const Tensor& s, double marginal_weight) {
        return Phi(name, marginal_weight)(s);
      },
      py::arg("name"), py::arg("s"), py::arg("marginal_weight") = 1.0, nogil,
      R"(The conjugate alpha Psi*(s / alpha) by name (linear, kl, chi2, softplus), elementwise, differentiable.)");
  m.def(
      "semidual_potential_loss",
      [](const Tensor& v_fake, const Tensor& cost_fake, const Tensor& v_real,
         const std::string& phi1, const std::string& phi2, double marginal_weight) {
        return SemiDualLoss{Phi(phi1, marginal_weight), Phi(phi2, marginal_weight)}.potential(
            v_fake, cost_fake, v_real);
      },
      py::arg("v_fake"), py::arg("cost_fake"), py::arg("v_real"), py::arg("phi1") = "kl",
      py::arg("phi2") = "kl", py::arg("marginal_weight") = 1.0, nogil,
      R"(The potential's semi-dual loss E Psi1*(v(T(x)) - c(x, T(x))) + E Psi2*(-v(y)).

v_fake: [B] potential at generated points, cost_fake: [B] cost of each pair, v_real: [M] -> [].)");
  m.def(
      "semidual_generator_loss",
      [](const Tensor& v_fake, const Tensor& cost_fake) {
        return SemiDualLoss{Phi("linear"), Phi("linear")}.generator(v_fake, cost_fake);
      },
      py::arg("v_fake"), py::arg("cost_fake"), nogil,
      R"(The generator's semi-dual loss E[c(x, T(x)) - v(T(x))]. v_fake: [B], cost_fake: [B] -> [].)");
  m.def("gradient_penalty", &gradient_penalty, py::arg("v_real"), py::arg("real"), nogil,
        R"(E ||grad_y v(y)||^2 at data points, differentiable (R1 = r1_gamma / 2 times it).

v_real: [M] = v(real), real: [M, ...] with requires_grad -> [].)");

  // ---- configs and runs ----
  m.def(
      "resolve_config",
      [](const std::string& config_json, const std::vector<std::string>& sets,
         const std::string& default_method) {
        return resolve_config(parse_json(config_json, "config"), sets, {}, default_method).dump();
      },
      py::arg("config_json"), py::arg("sets") = std::vector<std::string>{},
      py::arg("default_method") = "uotm");
  m.def("read_config_file", [](const std::string& path) { return read_json_file(path).dump(); });
  m.def("default_config", [](const std::string& method) { return default_config(method).dump(); });
  m.def("registries", [] { return registry_listing(); });
  m.def("blas_core", [] { return blas_core_name(); });
  m.def(
      "sample_run",
      [](const std::string& run_dir, int64_t n, uint64_t seed, bool ema, int64_t phase) {
        return sample_run(run_dir, n, seed, ema, phase);
      },
      py::arg("run_dir"), py::arg("n"), py::arg("seed") = 0, py::arg("ema") = true,
      py::arg("phase") = -1, nogil);
  m.def(
      "map_run",
      [](const std::string& run_dir, const Tensor& x, uint64_t seed, bool ema, int64_t phase) {
        return map_run(run_dir, x, seed, ema, phase);
      },
      py::arg("run_dir"), py::arg("x"), py::arg("seed") = 0, py::arg("ema") = true,
      py::arg("phase") = -1, nogil);

  py::class_<PyTrainer>(m, "Trainer")
      .def(py::init(&make_trainer), py::arg("config_json"), py::arg("data") = py::none(),
           py::arg("out") = "", py::arg("name") = "", py::arg("progress") = false,
           py::arg("command_line") = "", py::arg("resume_dir") = "",
           py::arg("flags") = std::vector<std::pair<std::string, std::string>>{},
           py::arg("source") = py::none(), py::arg("distributed") = false)
      .def("step", &PyTrainer::step, py::arg("n") = 1)
      .def(
          "checkpoint", [](PyTrainer& t) { t.trainer().checkpoint(); }, nogil)
      .def(
          "sample",
          [](PyTrainer& t, int64_t n, uint64_t seed, bool ema) {
            return t.trainer().sample(n, seed, ema);
          },
          py::arg("n"), py::arg("seed") = 0, py::arg("ema") = true, nogil)
      .def(
          "map",
          [](PyTrainer& t, const Tensor& x, uint64_t seed, bool ema) {
            return t.trainer().map(x, seed, ema);
          },
          py::arg("x"), py::arg("seed") = 0, py::arg("ema") = true, nogil)
      .def("evaluate", [](PyTrainer& t) { return json_rows(t.trainer().evaluate()); })
      .def("metrics", [](PyTrainer& t) { return json_rows(t.trainer().metrics()); })
      .def("evaluations", [](PyTrainer& t) { return json_rows(t.trainer().evaluations()); })
      .def("weights", [](PyTrainer& t) { return t.trainer().weights(); })
      .def_property_readonly("current_step",
                             [](PyTrainer& t) { return t.trainer().current_step(); })
      .def_property_readonly("total_steps", [](PyTrainer& t) { return t.trainer().total_steps(); })
      .def_property_readonly("finished", [](PyTrainer& t) { return t.trainer().finished(); })
      .def_property_readonly("run_dir", [](PyTrainer& t) { return t.trainer().run_dir(); })
      .def_property_readonly("config_json",
                             [](PyTrainer& t) { return t.trainer().config().dump(); });
}
