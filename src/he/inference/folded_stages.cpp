#include "veil/he/inference/folded_stages.hpp"

#include <cmath>

#include "veil/core/error.hpp"

namespace veil::he {

std::vector<Folded> fold_stages(const std::vector<Stage>& stages) {
  std::vector<Folded> out;
  const PolyStage* pending = nullptr;
  for (const auto& st : stages) {
    if (const auto* p = std::get_if<PolyStage>(&st)) {
      for (double v : p->p2)
        if (v == 0 || !std::isfinite(v))
          throw Unsupported("activation " + p->name +
                            ": a square whose factor is zero for some elements and not others "
                            "cannot be folded");
      FoldedSquare sq{p->name, {}};
      for (size_t i = 0; i < p->p2.size(); ++i) sq.shift.push_back(p->p1[i] / p->p2[i]);
      out.push_back(std::move(sq));
      pending = p;
      continue;
    }
    const auto& a = std::get<AffineStage>(st);
    FoldedLinear l{a.name, a.out_dim, a.in_dim, a.weight, a.bias};
    if (pending) {
      if (pending->p2.size() != a.in_dim) throw Error("he: activation and layer sizes differ");
      for (size_t r = 0; r < l.m; ++r)
        for (size_t c = 0; c < l.n; ++c) {
          const double w = a.weight[r * l.n + c];
          l.w[r * l.n + c] = w * pending->p2[c];
          l.b[r] += w * pending->p0[c];
        }
      pending = nullptr;
    }
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace veil::he
