// Exact OT between weighted empirical measures: LEMON's network simplex with integer supplies and
// gridded integer costs, on an implicit complete bipartite graph or, for large low-dimensional
// point sets, on a sparse arc set grown by pricing until its potentials certify optimality.
#include "uotflow/ot/exact.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "uotflow/core/error.h"
#include "uotflow_build_info.h"

#if UOTFLOW_HAVE_LEMON
#include <lemon/bits/graph_extender.h>
#include <lemon/core.h>
#include <lemon/network_simplex.h>
#include <lemon/static_graph.h>
#endif

namespace uotflow {
namespace {

std::string shape_of(const torch::Tensor& t) {
  return c10::str(t.sizes());
}

#if UOTFLOW_HAVE_LEMON

// Checks one weight vector and returns it as a contiguous CPU float64 [size] tensor (not yet
// normalised: the integer supplies are scaled from the raw weights).
torch::Tensor checked_weights(const torch::Tensor& w, const char* name, const char* who) {
  if (!w.defined() || w.dim() != 1 || w.size(0) == 0) {
    throw ConfigError(std::string(who) + ": " + name +
                      " must be a non-empty 1-D weight vector, got " +
                      (w.defined() ? "shape " + shape_of(w) : std::string("an undefined tensor")));
  }
  auto out = w.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const double* p = out.data_ptr<double>();
  double total = 0.0;
  for (int64_t i = 0; i < out.size(0); ++i) {
    if (!std::isfinite(p[i]) || p[i] < 0.0) {
      throw ConfigError(std::string(who) + ": " + name + "[" + std::to_string(i) +
                        "] = " + c10::str(p[i]) + "; weights must be finite and >= 0");
    }
    total += p[i];
  }
  if (!(total > 0.0) || !std::isfinite(total)) {
    throw ConfigError(std::string(who) + ": the weights " + name + " sum to " + c10::str(total) +
                      "; need a finite, positive total mass");
  }
  return out;
}

// The cost as a contiguous CPU float64 [N, M] tensor, checked, with its range.
struct CheckedCost {
  torch::Tensor values;
  double min = 0.0;
  double max = 0.0;
};

// One pass over the matrix for the finiteness check and the range (torch's isfinite / min / max
// would be three, plus a [N, M] bool tensor).
CheckedCost checked_cost(const torch::Tensor& cost, int64_t n, int64_t m, const char* who) {
  if (!cost.defined() || cost.dim() != 2 || cost.size(0) != n || cost.size(1) != m) {
    throw ConfigError(std::string(who) + ": cost must be [N, M] = [" + std::to_string(n) + ", " +
                      std::to_string(m) + "] to match the weights, got " +
                      (cost.defined() ? "shape " + shape_of(cost) : std::string("undefined")));
  }
  CheckedCost out{cost.detach().to(torch::kCPU, torch::kFloat64).contiguous()};
  const double* p = out.values.data_ptr<double>();
  double lo = std::numeric_limits<double>::infinity();
  double hi = -lo;
  bool finite = true;
  for (int64_t k = 0; k < n * m; ++k) {
    finite &= std::isfinite(p[k]);
    lo = std::min(lo, p[k]);
    hi = std::max(hi, p[k]);
  }
  if (!finite) {
    const int64_t k = std::find_if(p, p + n * m, [](double v) { return !std::isfinite(v); }) - p;
    throw ConfigError(std::string(who) + ": cost[" + std::to_string(k / m) + ", " +
                      std::to_string(k % m) + "] = " + c10::str(p[k]) + " is not finite");
  }
  if (!std::isfinite(hi - lo)) {
    throw ConfigError(std::string(who) + ": the costs span [" + c10::str(lo) + ", " + c10::str(hi) +
                      "], beyond the double range; rescale them");
  }
  out.min = lo;
  out.max = hi;
  return out;
}

// Supplies are integers, the mass counted in units of 2^-56. LEMON's simplex compares flows
// exactly (the supplies must sum to exactly 0, a flow left on an artificial arc means INFEASIBLE),
// so double supplies can fail on rounding alone (POT patched its copy of this code with a
// tolerance, its issue #126); integer flows are exact.
//
// The quantisation must not move mass: with shares rounded to nearest, 1/40 twice against 1/20
// once can miss by a unit, which then crosses a costly arc, and W_2 of identical sets would come
// out as sqrt(1e-17) ~ 3e-9 instead of 0. So the sources ship floor(a_i 2^56) and the targets
// accept up to ceil(b_j 2^56): every source fits wherever its exact share fits, and LEMON's GEQ
// supply type (ship all supplies, receive at most the demands) lets the targets keep the spare
// units, at most N + M in all. The plan's marginals are then within N + M units (1.4e-13 at
// 5000 + 5000) of a and b, the cost within (N + M) units * max |C| of the exact one, and zero
// whenever the exact optimum is zero. Flows stay in [0, 2^56 + N + M], far from int64 overflow;
// 2^56 (not more) keeps the long double shares accurate to ~1/128 unit, so floor and ceil agree
// with the exact shares.
constexpr int64_t kMassUnits = int64_t{1} << 56;

// floor (or ceil) of w_i / sum(w) * kMassUnits; zero weights get zero units.
std::vector<int64_t> mass_units(const torch::Tensor& w, bool round_up) {
  const double* p = w.data_ptr<double>();
  const int64_t n = w.size(0);
  long double total = 0.0L;
  for (int64_t i = 0; i < n; ++i) {
    total += p[i];
  }
  const long double scale = static_cast<long double>(kMassUnits) / total;
  std::vector<int64_t> units(n);
  for (int64_t i = 0; i < n; ++i) {
    const long double share = p[i] * scale;
    units[i] = static_cast<int64_t>(round_up ? std::ceil(share) : std::floor(share));
  }
  return units;
}

// The complete bipartite digraph from n sources to m targets without stored arcs: arc k = i * m + j
// joins node i to node n + j. LEMON's StaticDigraph would hold 16 bytes per arc (and the arc list
// it is built from 8 more) beside the simplex's own ~53; at 5000 x 5000 that is 600 MB saved.
class BipartiteDigraphBase {
 public:
  class Node {
    friend class BipartiteDigraphBase;

   protected:
    int id;
    explicit Node(int node_id) : id(node_id) {}

   public:
    Node() = default;
    Node(lemon::Invalid) : id(-1) {}  // NOLINT(google-explicit-constructor): LEMON idiom
    bool operator==(const Node& other) const {
      return id == other.id;
    }
    bool operator!=(const Node& other) const {
      return id != other.id;
    }
    bool operator<(const Node& other) const {
      return id < other.id;
    }
  };

  // An arc keeps its source row beside its id, so that source() and target() (called for every
  // arc when the simplex copies the graph) need no division.
  class Arc {
    friend class BipartiteDigraphBase;

   protected:
    int id;
    int row;
    Arc(int arc_id, int source_row) : id(arc_id), row(source_row) {}

   public:
    Arc() = default;
    Arc(lemon::Invalid) : id(-1), row(-1) {}  // NOLINT(google-explicit-constructor): LEMON idiom
    bool operator==(const Arc& other) const {
      return id == other.id;
    }
    bool operator!=(const Arc& other) const {
      return id != other.id;
    }
    bool operator<(const Arc& other) const {
      return id < other.id;
    }
  };

  using NodeNumTag = lemon::True;
  using ArcNumTag = lemon::True;

  int nodeNum() const {
    return n_ + m_;
  }
  int arcNum() const {
    return n_ * m_;
  }
  Node source(const Arc& a) const {
    return Node(a.row);
  }
  Node target(const Arc& a) const {
    return Node(n_ + a.id - a.row * m_);
  }
  void first(Node& v) const {
    v.id = n_ + m_ - 1;
  }
  static void next(Node& v) {
    --v.id;
  }
  void first(Arc& a) const {
    a.id = n_ * m_ - 1;
    a.row = n_ - 1;
  }
  void next(Arc& a) const {
    if (--a.id < a.row * m_) {
      --a.row;
    }
  }
  void firstOut(Arc& a, const Node& v) const {
    a.id = v.id < n_ ? v.id * m_ : -1;
    a.row = v.id;
  }
  void nextOut(Arc& a) const {
    if (++a.id == (a.row + 1) * m_) {
      a.id = -1;
    }
  }
  void firstIn(Arc& a, const Node& v) const {
    a.id = v.id >= n_ ? v.id - n_ : -1;
    a.row = 0;
  }
  void nextIn(Arc& a) const {
    a.id += m_;
    if (++a.row == n_) {
      a.id = -1;
    }
  }
  static int id(const Node& v) {
    return v.id;
  }
  static int id(const Arc& a) {
    return a.id;
  }
  static Node nodeFromId(int node_id) {
    return Node(node_id);
  }
  Arc arcFromId(int arc_id) const {
    return Arc(arc_id, arc_id / m_);
  }
  int maxNodeId() const {
    return n_ + m_ - 1;
  }
  int maxArcId() const {
    return n_ * m_ - 1;
  }

 protected:
  void set_sizes(int n, int m) {
    n_ = n;
    m_ = m;
  }

 private:
  int n_ = 0;
  int m_ = 0;
};

class BipartiteDigraph : public lemon::DigraphExtender<BipartiteDigraphBase> {
 public:
  BipartiteDigraph(int n, int m) {
    set_sizes(n, m);
  }
};

// Grid bits for `nodes` nodes. LEMON's integer artificial cost is 2^62 and a potential is at most
// that plus a tree path of `nodes` arc costs <= 2^bits, so 2^62 + nodes * 2^bits must stay below
// 2^63 (this also bounds the reduced costs the multiscale pricing computes); past 52 bits the
// double costs themselves are the limit. 46 bits at 5000 + 5000 points: a grid of 1.4e-14 of the
// cost range.
int cost_bits(int64_t nodes) {
  int log2_nodes = 0;
  while ((int64_t{1} << log2_nodes) < nodes + 2) {
    ++log2_nodes;
  }
  return std::min(52, 60 - log2_nodes);
}

// A transport problem between the points with mass, in the integer form the simplex sees.
//
// Costs enter the simplex as integers on a grid: (C - min C) / range * 2^bits, rounded. LEMON's
// pivot rules test reduced costs for < 0 exactly; with double costs the reduced costs that are 0
// in exact arithmetic come out as +-1e-17, and on degenerate problems the simplex cycles forever
// (1-D W1 between 300 random points did not finish; POT guards its copy of this code with a
// relative epsilon). Integer potentials are exact, so LEMON's anti-cycling tree rules hold. The
// plan is optimal for the gridded costs and its cost is then summed with the double costs, so
// the result is within one grid step (range * 2^-bits, see cost_bits) of the optimum.
struct SimplexProblem {
  int64_t n = 0;                 // sources (rows of cost)
  int64_t m = 0;                 // targets (columns of cost)
  std::vector<int64_t> a_units;  // [n] what each source ships
  std::vector<int64_t> b_units;  // [m] what each target accepts at most
  const double* cost = nullptr;  // [n, m] row-major
  double min_cost = 0.0;
  double scale = 0.0;  // 2^bits / range, 0 when every cost is the same

  int64_t grid_cost(int64_t k) const {
    // The scaled cost is >= 0: truncating x + 0.5 rounds it, without llround's library call
    // (which cost 10 ms per 4M arcs); the rare half-way miss only moves a point on the grid, and
    // every use goes through this one function.
    // NOLINTNEXTLINE(bugprone-incorrect-roundings)
    return static_cast<int64_t>((cost[k] - min_cost) * scale + 0.5);
  }
};

// Arcs k = i * m + j that carry flow, with their flow in mass units.
using Flows = std::vector<std::pair<int64_t, int64_t>>;

// Read-only LEMON node map: node i < n supplies a_units[i], node n + j takes up to b_units[j].
template <typename Graph>
struct SupplyMap {
  using Key = typename Graph::Node;
  using Value = int64_t;
  const SimplexProblem& problem;
  int64_t operator[](const Key& v) const {
    const int64_t id = Graph::id(v);
    return id < problem.n ? problem.a_units[id] : -problem.b_units[id - problem.n];
  }
};

template <typename Graph>
using Simplex = lemon::NetworkSimplex<Graph, int64_t, int64_t>;

template <typename Graph>
void require_optimal(typename Simplex<Graph>::ProblemType status, const char* who) {
  if (status != Simplex<Graph>::OPTIMAL) {
    throw RuntimeError(std::string(who) + ": the network simplex stopped as " +
                       (status == Simplex<Graph>::INFEASIBLE ? "INFEASIBLE" : "UNBOUNDED") +
                       " on a transport problem whose targets can take all the supply");
  }
}

// --- The complete bipartite graph ----------------------------------------------------------------

struct CompleteCostMap {
  using Key = BipartiteDigraph::Arc;
  using Value = int64_t;
  const SimplexProblem& problem;
  int64_t operator[](const Key& a) const {
    return problem.grid_cost(BipartiteDigraph::id(a));
  }
};

// LEMON flow map keeping the arcs with flow.
struct FlowCollector {
  using Key = BipartiteDigraph::Arc;
  using Value = int64_t;
  Flows& flows;
  void set(const Key& a, int64_t flow) {
    if (flow != 0) {
      flows.emplace_back(BipartiteDigraph::id(a), flow);
    }
  }
};

Flows solve_complete(const SimplexProblem& problem, const char* who) {
  const BipartiteDigraph graph(static_cast<int>(problem.n), static_cast<int>(problem.m));
  // Pivot rule and arc order picked by measurement (bench_exact_ot BM_ExactOtSolve, 2-D
  // Gaussians, 1 thread, medians in ms at n = 500 / 2000 / 5000): block search in the graph's own
  // row order 20 / 470-560 / 3370-3600, with LEMON's arc mixing 19-20 / 460-480 / 3570-3730;
  // candidate list 29-35 / 570-770 / 4600-8100; first eligible 24-30 / 550-800 / 4500-7500.
  // (With double costs the order was the same, and sorted or clustered point sets agreed.)
  Simplex<BipartiteDigraph> simplex(graph, /*arc_mixing=*/false);
  simplex.supplyMap(SupplyMap<BipartiteDigraph>{problem}).costMap(CompleteCostMap{problem});
  require_optimal<BipartiteDigraph>(simplex.run(Simplex<BipartiteDigraph>::BLOCK_SEARCH), who);
  Flows flows;
  FlowCollector collector{flows};
  simplex.flowMap(collector);
  return flows;
}

// --- Multiscale: a sparse graph grown by pricing ----------------------------------------------
//
// The simplex on all N * M arcs spends most of its time scanning arcs that never carry flow. With
// the points at hand, wasserstein_exact starts from a small arc set that a coarse problem
// suggests, solves on it, and adds the arcs whose reduced cost under the solution's potentials is
// negative, until there are none: the potentials then certify optimality on the complete graph
// (every arc has reduced cost >= 0, exactly, in integers), so the result is the same optimum as
// solve_complete's. LEMON cannot start from a previous basis, so each round solves afresh; rounds
// are usually 5-7 (the last ones add a handful of arcs). bench_exact_ot, 2-D Gaussians, n = m,
// 1 thread, median ms of the whole wasserstein_exact: 2000: 290-310 (complete graph 470),
// 5000: 1600-1700 (complete graph 3100-3400). Adding each priced arc's whole target group too
// saved a round but not time.

// Above this many arcs, and up to this dimension (where clusters of nearby points make sense),
// wasserstein_exact goes multiscale; 1000 x 1000 takes ~100 ms on the complete graph.
constexpr int64_t kMultiscaleMinArcs = int64_t{1} << 20;
constexpr int64_t kMultiscaleMaxDim = 8;
// Pricing adds up to this many arcs per source and round (the most negative reduced costs).
constexpr int64_t kArcsAddedPerRow = 10;
// Past this many rounds, or a quarter of all arcs, the complete graph is cheaper.
constexpr int kMaxPricingRounds = 10;

struct ListCostMap {
  using Key = lemon::StaticDigraph::Arc;
  using Value = int64_t;
  const SimplexProblem& problem;
  const std::vector<int64_t>& arcs;
  int64_t operator[](const Key& a) const {
    return problem.grid_cost(arcs[lemon::StaticDigraph::index(a)]);
  }
};

struct SparseSolution {
  Flows flows;
  std::vector<int64_t> potentials;  // [n + m]: sources, then targets
};

// Solves on the given arcs (k = i * m + j, ascending). The arc set must admit a feasible flow.
SparseSolution solve_on_arcs(const SimplexProblem& problem, const std::vector<int64_t>& arcs,
                             const char* who) {
  std::vector<std::pair<int, int>> ends;
  ends.reserve(arcs.size());
  for (int64_t k : arcs) {
    ends.emplace_back(static_cast<int>(k / problem.m), static_cast<int>(problem.n + k % problem.m));
  }
  lemon::StaticDigraph graph;
  graph.build(static_cast<int>(problem.n + problem.m), ends.begin(), ends.end());
  Simplex<lemon::StaticDigraph> simplex(graph, /*arc_mixing=*/false);
  simplex.supplyMap(SupplyMap<lemon::StaticDigraph>{problem}).costMap(ListCostMap{problem, arcs});
  require_optimal<lemon::StaticDigraph>(simplex.run(Simplex<lemon::StaticDigraph>::BLOCK_SEARCH),
                                        who);
  SparseSolution solution;
  for (int e = 0; e < static_cast<int>(arcs.size()); ++e) {
    const int64_t flow = simplex.flow(lemon::StaticDigraph::arc(e));
    if (flow != 0) {
      solution.flows.emplace_back(arcs[e], flow);
    }
  }
  solution.potentials.resize(problem.n + problem.m);
  for (int v = 0; v < static_cast<int>(problem.n + problem.m); ++v) {
    solution.potentials[v] = simplex.potential(lemon::StaticDigraph::node(v));
  }
  return solution;
}

// Index of the nearest of `count` evenly spaced representatives, for every point.
// points: [N, D] contiguous CPU float64.
std::vector<int64_t> nearest_representative(const torch::Tensor& points, int64_t count,
                                            std::vector<int64_t>& representatives) {
  const int64_t n = points.size(0);
  const int64_t d = points.size(1);
  const double* p = points.data_ptr<double>();
  representatives.resize(count);
  for (int64_t r = 0; r < count; ++r) {
    representatives[r] = r * n / count;
  }
  std::vector<int64_t> label(n);
  for (int64_t i = 0; i < n; ++i) {
    double best = std::numeric_limits<double>::infinity();
    for (int64_t r = 0; r < count; ++r) {
      const double* q = p + representatives[r] * d;
      double dist = 0.0;
      for (int64_t k = 0; k < d; ++k) {
        dist += (p[i * d + k] - q[k]) * (p[i * d + k] - q[k]);
      }
      if (dist < best) {
        best = dist;
        label[i] = r;
      }
    }
  }
  return label;
}

// The starting arcs, as flags over all N * M arcs: both point sets are grouped around R evenly
// spaced representatives, the problem between the groups (summed masses, costs between the
// representatives) is solved on its complete graph, and each source gets arcs to every member of
// every group its group ships to. Feasible, since a coarse plan splits over complete blocks.
std::vector<uint8_t> coarse_arcs(const SimplexProblem& problem, const torch::Tensor& x,
                                 const torch::Tensor& y, const char* who) {
  // R = min(N, M) / 5 (at most 1000) measured best at 2000 and 5000 points (400 vs 100 or 200).
  const int64_t groups = std::clamp<int64_t>(std::min(problem.n, problem.m) / 5, 1, 1000);
  std::vector<int64_t> x_reps;
  std::vector<int64_t> y_reps;
  const auto x_group = nearest_representative(x, groups, x_reps);
  const auto y_group = nearest_representative(y, groups, y_reps);
  SimplexProblem coarse;
  coarse.n = groups;
  coarse.m = groups;
  coarse.a_units.assign(groups, 0);
  coarse.b_units.assign(groups, 0);
  for (int64_t i = 0; i < problem.n; ++i) {
    coarse.a_units[x_group[i]] += problem.a_units[i];
  }
  for (int64_t j = 0; j < problem.m; ++j) {
    coarse.b_units[y_group[j]] += problem.b_units[j];
  }
  std::vector<double> coarse_cost(groups * groups);
  for (int64_t r = 0; r < groups; ++r) {
    for (int64_t s = 0; s < groups; ++s) {
      coarse_cost[r * groups + s] = problem.cost[x_reps[r] * problem.m + y_reps[s]];
    }
  }
  coarse.cost = coarse_cost.data();
  coarse.min_cost = problem.min_cost;  // the fine grid: costs between representatives are on it
  coarse.scale = problem.scale;
  std::vector<std::vector<int64_t>> partners(groups);
  for (const auto& [k, flow] : solve_complete(coarse, who)) {
    partners[k / groups].push_back(k % groups);
  }
  std::vector<std::vector<int64_t>> members(groups);
  for (int64_t j = 0; j < problem.m; ++j) {
    members[y_group[j]].push_back(j);
  }
  std::vector<uint8_t> in(problem.n * problem.m, 0);
  for (int64_t i = 0; i < problem.n; ++i) {
    for (int64_t s : partners[x_group[i]]) {
      for (int64_t j : members[s]) {
        in[i * problem.m + j] = 1;
      }
    }
  }
  return in;
}

// Marks up to kArcsAddedPerRow arcs per source with the most negative reduced costs
// c_ij + pi_i - pi_j; returns how many it marked (0: the solution is optimal on all arcs).
int64_t add_priced_arcs(const SimplexProblem& problem, const std::vector<int64_t>& potentials,
                        std::vector<uint8_t>& in) {
  const int64_t* target_pi = potentials.data() + problem.n;
  std::vector<std::pair<int64_t, int64_t>> negative;  // (reduced cost, j)
  int64_t added = 0;
  for (int64_t i = 0; i < problem.n; ++i) {
    negative.clear();
    const int64_t source_pi = potentials[i];
    for (int64_t j = 0; j < problem.m; ++j) {
      const int64_t reduced = problem.grid_cost(i * problem.m + j) + source_pi - target_pi[j];
      if (reduced < 0) {
        negative.emplace_back(reduced, j);
      }
    }
    if (static_cast<int64_t>(negative.size()) > kArcsAddedPerRow) {
      std::nth_element(negative.begin(), negative.begin() + kArcsAddedPerRow, negative.end());
      negative.resize(kArcsAddedPerRow);
    }
    for (const auto& [reduced, j] : negative) {
      in[i * problem.m + j] = 1;  // arcs of the solved graph have reduced cost >= 0: all new
    }
    added += static_cast<int64_t>(negative.size());
  }
  return added;
}

// The optimal flows through pricing rounds, or nothing when the rounds do not settle (then the
// complete graph is the cheaper way). x: [N, D], y: [M, D] contiguous CPU float64.
std::optional<Flows> solve_multiscale(const SimplexProblem& problem, const torch::Tensor& x,
                                      const torch::Tensor& y, const char* who) {
  auto in = coarse_arcs(problem, x, y, who);
  std::vector<int64_t> arcs;
  for (int round = 0; round < kMaxPricingRounds; ++round) {
    arcs.clear();
    for (int64_t k = 0; k < problem.n * problem.m; ++k) {
      if (in[k] != 0) {
        arcs.push_back(k);
      }
    }
    if (static_cast<int64_t>(arcs.size()) > problem.n * problem.m / 4) {
      return std::nullopt;
    }
    auto solution = solve_on_arcs(problem, arcs, who);
    if (add_priced_arcs(problem, solution.potentials, in) == 0) {
      return std::move(solution.flows);
    }
  }
  return std::nullopt;
}

// --- Entry point -----------------------------------------------------------------------------

std::vector<int64_t> support_of(const std::vector<int64_t>& units) {
  std::vector<int64_t> support;
  for (int64_t i = 0; i < static_cast<int64_t>(units.size()); ++i) {
    if (units[i] > 0) {
      support.push_back(i);
    }
  }
  return support;
}

std::vector<int64_t> gather(const std::vector<int64_t>& values, const std::vector<int64_t>& index) {
  std::vector<int64_t> out;
  out.reserve(index.size());
  for (int64_t i : index) {
    out.push_back(values[i]);
  }
  return out;
}

torch::Tensor index_tensor(const std::vector<int64_t>& index) {
  return torch::tensor(index, torch::dtype(torch::kInt64));
}

// x: [N, D], y: [M, D] (contiguous CPU float64) when the cost comes from points, which allows the
// multiscale solver; undefined otherwise.
ExactOtResult solve(const torch::Tensor& a_in, const torch::Tensor& b_in,
                    const torch::Tensor& cost_in, bool return_plan, const char* who,
                    torch::Tensor x = {}, torch::Tensor y = {}) {
  const auto a = checked_weights(a_in, "a", who);
  const auto b = checked_weights(b_in, "b", who);
  const int64_t n = a.size(0);
  const int64_t m = b.size(0);
  const auto checked = checked_cost(cost_in, n, m, who);
  auto cost = checked.values;

  // Points without mass are left out; their rows and columns of the plan stay 0.
  const auto a_all = mass_units(a, /*round_up=*/false);
  const auto b_all = mass_units(b, /*round_up=*/true);
  const auto rows = support_of(a_all);
  const auto cols = support_of(b_all);
  SimplexProblem problem;
  problem.n = static_cast<int64_t>(rows.size());
  problem.m = static_cast<int64_t>(cols.size());
  problem.a_units = gather(a_all, rows);
  problem.b_units = gather(b_all, cols);
  // LEMON indexes arcs with int, and the simplex adds up to 2 artificial arcs per node.
  if (problem.n * problem.m + 2 * (problem.n + problem.m) + 1 > std::numeric_limits<int>::max()) {
    throw ConfigError(std::string(who) + ": " + std::to_string(problem.n) + " x " +
                      std::to_string(problem.m) +
                      " points with mass exceed the 2^31 arcs the network simplex can index");
  }
  if (problem.n != n || problem.m != m) {
    cost =
        cost.index_select(0, index_tensor(rows)).index_select(1, index_tensor(cols)).contiguous();
    if (x.defined()) {
      x = x.index_select(0, index_tensor(rows)).contiguous();
      y = y.index_select(0, index_tensor(cols)).contiguous();
    }
  }
  problem.cost = cost.data_ptr<double>();
  // The grid starts at the smallest cost (a shift changes no balanced plan), so the spare target
  // units are never worth routing through a source. The range is the full matrix's: valid, if
  // wider than the support's.
  problem.min_cost = checked.min;
  const double range = checked.max - checked.min;
  problem.scale = range > 0.0 ? std::ldexp(1.0, cost_bits(problem.n + problem.m)) / range : 0.0;

  std::optional<Flows> flows;
  if (x.defined() && x.size(1) <= kMultiscaleMaxDim &&
      problem.n * problem.m >= kMultiscaleMinArcs) {
    flows = solve_multiscale(problem, x, y, who);
  }
  if (!flows) {
    flows = solve_complete(problem, who);
  }

  ExactOtResult result;
  // Flows reach 2^56 units: a 64-bit mantissa keeps the sum's rounding at 1e-19 relative.
  long double total = 0.0L;
  for (const auto& [k, flow] : *flows) {
    total += static_cast<long double>(flow) * problem.cost[k];
  }
  result.cost = static_cast<double>(total / static_cast<long double>(kMassUnits));
  if (return_plan) {
    result.plan = torch::zeros({n, m}, torch::dtype(torch::kFloat64));
    double* plan = result.plan.data_ptr<double>();
    for (const auto& [k, flow] : *flows) {
      plan[rows[k / problem.m] * m + cols[k % problem.m]] =
          static_cast<double>(flow) / static_cast<double>(kMassUnits);
    }
  }
  return result;
}

#endif  // UOTFLOW_HAVE_LEMON

[[noreturn]] void throw_unavailable() {
  throw RuntimeError("exact OT needs LEMON: this build was configured without liblemon-dev");
}

// [N, M] float64 sum_k (x_ik - y_jk)^2 from the coordinate differences. The expansion
// |x|^2 + |y|^2 - 2 x.y (cdist's fast path, ot.dist) cancels catastrophically for nearby points far
// from the origin. x: [N, D], y: [M, D], both contiguous CPU float64.
torch::Tensor squared_distances(const torch::Tensor& x, const torch::Tensor& y) {
  const int64_t n = x.size(0);
  const int64_t m = y.size(0);
  const int64_t d = x.size(1);
  const auto yt = y.t().contiguous();  // [D, M]: the inner loop runs over contiguous targets
  auto out = torch::empty({n, m}, torch::dtype(torch::kFloat64));
  const double* xp = x.data_ptr<double>();
  const double* yp = yt.data_ptr<double>();
  double* op = out.data_ptr<double>();
  at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      double* row = op + i * m;
      const double xi0 = xp[i * d];
      for (int64_t j = 0; j < m; ++j) {
        const double diff = xi0 - yp[j];
        row[j] = diff * diff;
      }
      for (int64_t k = 1; k < d; ++k) {
        const double xik = xp[i * d + k];
        const double* yk = yp + k * m;
        for (int64_t j = 0; j < m; ++j) {
          const double diff = xik - yk[j];
          row[j] += diff * diff;
        }
      }
    }
  });
  return out;
}

torch::Tensor checked_points(const torch::Tensor& x, const char* name) {
  if (!x.defined() || x.dim() != 2 || x.size(0) == 0 || x.size(1) == 0) {
    throw ConfigError(std::string("wasserstein_exact: ") + name +
                      " must be a non-empty [N, D] point set, got " +
                      (x.defined() ? "shape " + shape_of(x) : std::string("an undefined tensor")));
  }
  auto out = x.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  if (!torch::isfinite(out).all().item<bool>()) {
    throw ConfigError(std::string("wasserstein_exact: ") + name +
                      " has a non-finite coordinate (NaN or inf)");
  }
  return out;
}

// The weights of the points of x (uniform when undefined), checked against the number of points;
// exact_ot checks the values.
torch::Tensor point_weights(const torch::Tensor& w, const torch::Tensor& x, const char* name,
                            const char* points) {
  if (!w.defined()) {
    return torch::ones({x.size(0)}, torch::dtype(torch::kFloat64));
  }
  if (w.dim() != 1 || w.size(0) != x.size(0)) {
    throw ConfigError(std::string("wasserstein_exact: ") + name + " must be [" +
                      std::to_string(x.size(0)) + "], one weight per point of " + points +
                      ", got shape " + shape_of(w));
  }
  return w;
}

}  // namespace

bool exact_ot_available() {
  return UOTFLOW_HAVE_LEMON != 0;
}

ExactOtResult exact_ot(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& cost,
                       bool return_plan) {
#if UOTFLOW_HAVE_LEMON
  return solve(a, b, cost, return_plan, "exact_ot");
#else
  (void)a, (void)b, (void)cost, (void)return_plan;
  throw_unavailable();
#endif
}

double wasserstein_exact(const torch::Tensor& x, const torch::Tensor& y, double p,
                         const torch::Tensor& a, const torch::Tensor& b) {
  if (!exact_ot_available()) {
    throw_unavailable();
  }
  if (!std::isfinite(p) || p < 1.0) {
    throw ConfigError("wasserstein_exact: p = " + c10::str(p) + "; need a finite p >= 1");
  }
  const auto xs = checked_points(x, "x");
  const auto ys = checked_points(y, "y");
  if (xs.size(1) != ys.size(1)) {
    throw ConfigError("wasserstein_exact: x is " + shape_of(xs) + " but y is " + shape_of(ys) +
                      "; the point dimensions must match");
  }
  const auto wa = point_weights(a, xs, "a", "x");
  const auto wb = point_weights(b, ys, "b", "y");
  auto cost = squared_distances(xs, ys);
  if (p == 1.0) {
    cost.sqrt_();
  } else if (p != 2.0) {
    cost.pow_(p / 2.0);
  }
#if UOTFLOW_HAVE_LEMON
  const double total = solve(wa, wb, cost, false, "wasserstein_exact", xs, ys).cost;
  return std::pow(std::max(total, 0.0), 1.0 / p);
#else
  throw_unavailable();
#endif
}

}  // namespace uotflow
