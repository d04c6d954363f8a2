#include "tuner/strategy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <unordered_map>

#include <fmt/format.h>

#include "base/error.h"
#include "base/stats.h"
#include "tuner/space.h"

namespace ipt::tuner {
namespace {

using nlohmann::json;

// The candidate list with what each strategy needs: which are untried, which were measured and
// how they did. Subclasses only decide the order.
class ListStrategy : public Strategy {
 public:
  explicit ListStrategy(std::vector<json> candidates) {
    for (json& c : candidates) {
      std::string hash = ConfigHash(c);
      if (index_.count(hash)) continue;
      index_.emplace(std::move(hash), candidates_.size());
      candidates_.push_back(std::move(c));
    }
    tried_.assign(candidates_.size(), false);
    objective_.assign(candidates_.size(), std::nullopt);
  }

  void Tell(const json& candidate, std::optional<double> objective) override {
    const auto it = index_.find(ConfigHash(candidate));
    if (it == index_.end()) return;
    tried_[it->second] = true;
    objective_[it->second] = objective;
  }

 protected:
  size_t size() const { return candidates_.size(); }
  bool Untried(size_t i) const { return !tried_[i]; }
  std::optional<json> Take(size_t i) {
    tried_[i] = true;
    return candidates_[i];
  }
  // Failed, proposed but never told, or untried: no objective.
  const std::optional<double>& Objective(size_t i) const { return objective_[i]; }
  bool Better(size_t i, size_t than) const {
    return objective_[i] && (!objective_[than] || *objective_[i] > *objective_[than]);
  }
  const json& At(size_t i) const { return candidates_[i]; }

  // Every key of any candidate, sorted.
  std::vector<std::string> Dimensions() const {
    std::set<std::string> keys;
    for (const json& c : candidates_) {
      for (const auto& item : c.items()) keys.insert(item.key());
    }
    return {keys.begin(), keys.end()};
  }

 private:
  std::vector<json> candidates_;
  std::unordered_map<std::string, size_t> index_;  // ConfigHash -> position
  std::vector<bool> tried_;                        // proposed or told
  std::vector<std::optional<double>> objective_;
};

class GridStrategy : public ListStrategy {
 public:
  using ListStrategy::ListStrategy;
  std::string name() const override { return "grid"; }

  std::optional<json> Propose() override {
    while (next_ < size() && !Untried(next_)) ++next_;
    if (next_ == size()) return std::nullopt;
    return Take(next_);
  }

 private:
  size_t next_ = 0;
};

// Fisher-Yates through UniformIndex rather than std::shuffle, whose draws the standard leaves to
// each library: one seed must give one order everywhere.
std::vector<size_t> Permutation(size_t n, std::mt19937_64& engine) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  for (size_t i = n; i > 1; --i) {
    std::swap(order[i - 1], order[stats::UniformIndex(engine, i)]);
  }
  return order;
}

class RandomStrategy : public ListStrategy {
 public:
  RandomStrategy(std::vector<json> candidates, uint64_t seed)
      : ListStrategy(std::move(candidates)), engine_(seed), order_(Permutation(size(), engine_)) {}
  std::string name() const override { return "random"; }

  std::optional<json> Propose() override {
    while (next_ < order_.size() && !Untried(order_[next_])) ++next_;
    if (next_ == order_.size()) return std::nullopt;
    return Take(order_[next_]);
  }

 private:
  std::mt19937_64 engine_;
  std::vector<size_t> order_;
  size_t next_ = 0;
};

// Resumes exactly: results already told are looked up instead of proposed, so a resumed study
// walks the same path as the interrupted one and only proposes what that one had not measured.
class CoordinateDescentStrategy : public ListStrategy {
 public:
  explicit CoordinateDescentStrategy(std::vector<json> candidates)
      : ListStrategy(std::move(candidates)), dimensions_(Dimensions()) {}
  std::string name() const override { return "coordinate"; }

  std::optional<json> Propose() override {
    if (done_ || size() == 0) return std::nullopt;
    if (!started_) {
      started_ = true;
      if (Untried(best_)) return Take(best_);
    }
    while (lines_without_move_ < dimensions_.size()) {
      if (!line_) line_ = Line(best_, dimensions_[dimension_]);
      for (size_t i : *line_) {
        if (Untried(i)) return Take(i);
      }
      size_t winner = best_;
      for (size_t i : *line_) {
        if (Better(i, winner)) winner = i;
      }
      line_.reset();
      lines_without_move_ = winner == best_ ? lines_without_move_ + 1 : 0;
      best_ = winner;
      dimension_ = (dimension_ + 1) % dimensions_.size();
    }
    done_ = true;
    return std::nullopt;
  }

 private:
  // The candidates that differ from candidate `from` in `dimension`, and otherwise only in keys
  // one of the two lacks: changing dtype away from int8 drops calibration, and is still a move
  // along dtype.
  std::vector<size_t> Line(size_t from, const std::string& dimension) const {
    const json& x = At(from);
    std::vector<size_t> line;
    for (size_t i = 0; i < size(); ++i) {
      const json& y = At(i);
      if (!y.contains(dimension) || (x.contains(dimension) && x[dimension] == y[dimension])) {
        continue;
      }
      bool same_elsewhere = true;
      for (const auto& item : y.items()) {
        if (item.key() == dimension) continue;
        const auto other = x.find(item.key());
        if (other != x.end() && *other != item.value()) same_elsewhere = false;
      }
      if (same_elsewhere) line.push_back(i);
    }
    return line;
  }

  std::vector<std::string> dimensions_;
  bool started_ = false;
  bool done_ = false;
  size_t best_ = 0;
  size_t dimension_ = 0;
  size_t lines_without_move_ = 0;
  std::optional<std::vector<size_t>> line_;
};

class TpeStrategy : public ListStrategy {
 public:
  TpeStrategy(std::vector<json> candidates, uint64_t seed, const TpeOptions& options)
      : ListStrategy(std::move(candidates)),
        options_(options),
        engine_(seed),
        order_(Permutation(size(), engine_)) {
    if (!(options_.gamma > 0 && options_.gamma < 1)) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("tpe: gamma must be in (0, 1), got {}", options_.gamma));
    }
    if (!(options_.prior_weight > 0)) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("tpe: prior_weight must be > 0, got {}", options_.prior_weight));
    }
    if (options_.n_startup && *options_.n_startup < 1) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("tpe: n_startup must be >= 1, got {}", *options_.n_startup));
    }
    const int64_t n = static_cast<int64_t>(size());
    n_startup_ = options_.n_startup.value_or(std::max<int64_t>(2, std::min<int64_t>(5, n / 10)));
    // Each candidate as one category index per dimension; absence is a category too.
    const std::vector<std::string> dimensions = Dimensions();
    categories_.assign(dimensions.size(), 0);
    category_.assign(size(), std::vector<size_t>(dimensions.size()));
    for (size_t d = 0; d < dimensions.size(); ++d) {
      std::map<std::string, size_t> ids;
      for (size_t i = 0; i < size(); ++i) {
        const auto it = At(i).find(dimensions[d]);
        const std::string key = it == At(i).end() ? "" : it->dump();
        category_[i][d] = ids.emplace(key, ids.size()).first->second;
      }
      categories_[d] = ids.size();
    }
  }
  std::string name() const override { return "tpe"; }

  std::optional<json> Propose() override {
    std::vector<size_t> observed;
    std::vector<size_t> succeeded;
    for (size_t i = 0; i < size(); ++i) {
      if (Untried(i)) continue;
      observed.push_back(i);
      if (Objective(i)) succeeded.push_back(i);
    }
    if (observed.size() == size()) return std::nullopt;
    if (static_cast<int64_t>(observed.size()) < n_startup_ || succeeded.empty()) {
      while (!Untried(order_[next_random_])) ++next_random_;
      return Take(order_[next_random_]);
    }

    std::stable_sort(succeeded.begin(), succeeded.end(),
                     [this](size_t a, size_t b) { return *Objective(a) > *Objective(b); });
    const size_t n_good = std::min(
        succeeded.size(),
        std::max<size_t>(1, static_cast<size_t>(
                                std::ceil(options_.gamma * static_cast<double>(observed.size())))));
    std::vector<bool> good(size(), false);
    for (size_t k = 0; k < n_good; ++k) good[succeeded[k]] = true;

    // log l(v) - log g(v) for every value of every dimension.
    std::vector<std::vector<double>> log_ratio(categories_.size());
    for (size_t d = 0; d < categories_.size(); ++d) {
      std::vector<double> in_good(categories_[d], 0);
      std::vector<double> in_bad(categories_[d], 0);
      for (size_t i : observed) (good[i] ? in_good : in_bad)[category_[i][d]] += 1;
      const double prior = options_.prior_weight;
      const double smoothing = prior * static_cast<double>(categories_[d]);
      const double good_total = static_cast<double>(n_good) + smoothing;
      const double bad_total = static_cast<double>(observed.size() - n_good) + smoothing;
      log_ratio[d].resize(categories_[d]);
      for (size_t v = 0; v < categories_[d]; ++v) {
        log_ratio[d][v] =
            std::log((in_good[v] + prior) / good_total) - std::log((in_bad[v] + prior) / bad_total);
      }
    }

    // Scores equal in exact arithmetic can differ in the last bits of a sum of logs.
    constexpr double kTie = 1e-9;
    double best = -std::numeric_limits<double>::infinity();
    std::vector<size_t> leaders;
    for (size_t i = 0; i < size(); ++i) {
      if (!Untried(i)) continue;
      double score = 0;
      for (size_t d = 0; d < categories_.size(); ++d) score += log_ratio[d][category_[i][d]];
      if (score > best + kTie) {
        best = score;
        leaders = {i};
      } else if (score >= best - kTie) {
        leaders.push_back(i);
      }
    }
    return Take(leaders[stats::UniformIndex(engine_, leaders.size())]);
  }

 private:
  TpeOptions options_;
  std::mt19937_64 engine_;
  std::vector<size_t> order_;  // the startup proposals' order
  size_t next_random_ = 0;
  int64_t n_startup_ = 0;
  std::vector<size_t> categories_;             // per dimension: how many values, absence included
  std::vector<std::vector<size_t>> category_;  // per candidate, per dimension: which value
};

}  // namespace

const std::vector<std::string>& StrategyNames() {
  static const std::vector<std::string> names = {"grid", "random", "coordinate", "tpe"};
  return names;
}

std::unique_ptr<Strategy> MakeGridStrategy(std::vector<json> candidates) {
  return std::make_unique<GridStrategy>(std::move(candidates));
}

std::unique_ptr<Strategy> MakeRandomStrategy(std::vector<json> candidates, uint64_t seed) {
  return std::make_unique<RandomStrategy>(std::move(candidates), seed);
}

std::unique_ptr<Strategy> MakeCoordinateDescentStrategy(std::vector<json> candidates) {
  return std::make_unique<CoordinateDescentStrategy>(std::move(candidates));
}

std::unique_ptr<Strategy> MakeTpeStrategy(std::vector<json> candidates, uint64_t seed,
                                          const TpeOptions& options) {
  return std::make_unique<TpeStrategy>(std::move(candidates), seed, options);
}

std::unique_ptr<Strategy> MakeStrategy(const std::string& name, std::vector<json> candidates,
                                       uint64_t seed) {
  if (name == "grid") return MakeGridStrategy(std::move(candidates));
  if (name == "random") return MakeRandomStrategy(std::move(candidates), seed);
  if (name == "coordinate") return MakeCoordinateDescentStrategy(std::move(candidates));
  if (name == "tpe") return MakeTpeStrategy(std::move(candidates), seed);
  std::string known;
  for (const std::string& n : StrategyNames()) known += (known.empty() ? "" : ", ") + n;
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("unknown strategy '{}'; known: {}", name, known));
}

}  // namespace ipt::tuner
