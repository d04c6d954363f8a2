#include "kernels/dlrm.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <string>
#include <type_traits>

#include "kernels/lanes.h"
#include "kernels/quant.h"

namespace ipt::kernels {
namespace {

using detail::kLanes;
using detail::Lanes;
using detail::Load;
using detail::Sum;

// Dot products of `a` with four vectors at once: the loads of `a` are shared. Vector lanes
// (kernels/lanes.h): the plain loop ran 2.5x slower than stock's bmm.
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void Dot4(
    const float* a, const float* const* b, int64_t n, float* out) {
  Lanes s0 = {}, s1 = {}, s2 = {}, s3 = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    Lanes x, y0, y1, y2, y3;
    Load(x, a + i);
    Load(y0, b[0] + i);
    Load(y1, b[1] + i);
    Load(y2, b[2] + i);
    Load(y3, b[3] + i);
    s0 += x * y0;
    s1 += x * y1;
    s2 += x * y2;
    s3 += x * y3;
  }
  float r[4] = {Sum(s0), Sum(s1), Sum(s2), Sum(s3)};
  for (; i < n; ++i)
    for (int v = 0; v < 4; ++v) r[v] += a[i] * b[v][i];
  std::copy(r, r + 4, out);
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) float Dot(
    const float* a, const float* b, int64_t n) {
  Lanes lanes = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    Lanes x, y;
    Load(x, a + i);
    Load(y, b + i);
    lanes += x * y;
  }
  float sum = Sum(lanes);
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void Accumulate(const float* row,
                                                                             float* out,
                                                                             int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] += row[i];
}

void Accumulate(const c10::BFloat16* row, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] += static_cast<float>(row[i]);
}
__attribute__((target_clones("avx512f", "avx2", "default"))) void AccumulateScaled(
    const int8_t* row, float scale, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] += scale * static_cast<float>(row[i]);
}

struct Table {
  const void* weight;
  bool bf16;
  const float* row_scales;  // int8 tables: weight row r is row_scales[r] * q
  int64_t rows, dim, bags, total;
  const int64_t* indices;
  const int64_t* offsets;
  void* out;
};

// The bag's rows, after checking each index. T: the table's dtype; the output's is T, fp32 for
// int8 tables. fp32 outputs are the accumulator themselves; bf16 ones get the fp32 sum rounded
// once.
template <typename T>
void SumBag(const Table& table, int64_t t, int64_t b, std::vector<float>& scratch) {
  using Out = std::conditional_t<std::is_same_v<T, int8_t>, float, T>;
  Out* out = static_cast<Out*>(table.out) + b * table.dim;
  float* sum = nullptr;
  if constexpr (std::is_same_v<Out, float>) {
    sum = out;
  } else {
    scratch.resize(table.dim);
    sum = scratch.data();
  }
  std::fill(sum, sum + table.dim, 0.F);
  const T* w = static_cast<const T*>(table.weight);
  const int64_t stop = b + 1 < table.bags ? table.offsets[b + 1] : table.total;
  for (int64_t j = table.offsets[b]; j < stop; ++j) {
    const int64_t row = table.indices[j];
    TORCH_CHECK(row >= 0 && row < table.rows, "embedding bag ", t, ": index ", row,
                " out of range for a table of ", table.rows, " rows");
    if constexpr (std::is_same_v<T, int8_t>) {
      AccumulateScaled(w + row * table.dim, table.row_scales[row], sum, table.dim);
    } else {
      Accumulate(w + row * table.dim, sum, table.dim);
    }
  }
  if constexpr (!std::is_same_v<Out, float>) std::copy(sum, sum + table.dim, out);
}

// Asks for the rows of bag b ahead of their use: lookups land all over tables much larger than
// the caches, and the out-of-order window alone overlaps only the few rows of one bag.
void PrefetchBag(const Table& table, int64_t b) {
  const int64_t row_bytes = table.dim * (table.row_scales ? 1 : table.bf16 ? 2 : 4);
  const int64_t stop = b + 1 < table.bags ? table.offsets[b + 1] : table.total;
  for (int64_t j = table.offsets[b]; j < stop; ++j) {
    const int64_t row = table.indices[j];
    if (row < 0 || row >= table.rows) continue;  // SumBag reports it
    const char* p = static_cast<const char*>(table.weight) + row * row_bytes;
    for (int64_t line = 0; line < row_bytes; line += 64) __builtin_prefetch(p + line);
    if (table.row_scales) __builtin_prefetch(table.row_scales + row);
  }
}

// The tables' sums, for fp32 or bf16 tables, or int8 ones with one fp32 tensor [rows] of row
// scales each.
std::vector<at::Tensor> SumBags(const std::vector<at::Tensor>& weights,
                                const std::vector<at::Tensor>& row_scales,
                                const std::vector<at::Tensor>& indices,
                                const std::vector<at::Tensor>& offsets, bool int8) {
  TORCH_CHECK(weights.size() == indices.size() && weights.size() == offsets.size() &&
                  (!int8 || row_scales.size() == weights.size()),
              "ipt merged embedding bag: ", weights.size(), " tables but ", indices.size(),
              " index and ", offsets.size(), " offset tensors",
              int8 ? " and " + std::to_string(row_scales.size()) + " scale tensors" : "");
  std::vector<at::Tensor> outputs;
  for (size_t t = 0; t < weights.size(); ++t) {
    const at::Tensor& w = weights[t];
    if (int8) {
      TORCH_CHECK(w.dim() == 2 && w.scalar_type() == at::kChar, "embedding bag ", t,
                  ": the table must be a 2-D int8 tensor");
      TORCH_CHECK(row_scales[t].dim() == 1 && row_scales[t].scalar_type() == at::kFloat &&
                      row_scales[t].size(0) == w.size(0),
                  "embedding bag ", t, ": expected ", w.size(0), " fp32 row scales, got ",
                  row_scales[t].sizes());
    } else {
      TORCH_CHECK(
          w.dim() == 2 && (w.scalar_type() == at::kFloat || w.scalar_type() == at::kBFloat16),
          "embedding bag ", t, ": the table must be a 2-D fp32 or bf16 tensor");
    }
    TORCH_CHECK(indices[t].dim() == 1 && offsets[t].dim() == 1, "embedding bag ", t,
                ": indices and offsets must be 1-D");
    outputs.push_back(at::empty({offsets[t].size(0), w.size(1)},
                                w.options().dtype(int8 ? at::kFloat : w.scalar_type())));
  }
  // One parallel loop over the bags of every table: 26 small tables are one OpenMP region,
  // not 26.
  std::vector<at::Tensor> keep;  // contiguous copies the raw pointers below point into
  std::vector<Table> tables;
  std::vector<int64_t> first_bag{0};
  for (size_t t = 0; t < weights.size(); ++t) {
    at::Tensor w = weights[t].contiguous();
    keep.push_back(w);
    const float* scales = nullptr;
    if (int8) {
      keep.push_back(row_scales[t].contiguous());
      scales = keep.back().data_ptr<float>();
    }
    keep.push_back(indices[t].to(at::kLong).contiguous());
    const int64_t* idx = keep.back().data_ptr<int64_t>();
    const int64_t total = keep.back().size(0);
    keep.push_back(offsets[t].to(at::kLong).contiguous());
    const int64_t* off = keep.back().data_ptr<int64_t>();
    const int64_t bags = keep.back().size(0);
    for (int64_t b = 0; b < bags; ++b)
      TORCH_CHECK(off[b] >= 0 && off[b] <= total && (b == 0 || off[b] >= off[b - 1]),
                  "embedding bag ", t, ": offsets must ascend within [0, ", total, "], got ",
                  off[b], " at bag ", b);
    tables.push_back({w.data_ptr(), w.scalar_type() == at::kBFloat16, scales, w.size(0), w.size(1),
                      bags, total, idx, off, outputs[t].data_ptr()});
    first_bag.push_back(first_bag.back() + bags);
  }
  // Far enough ahead to cover a miss to memory with the sums of the bags between.
  constexpr int64_t kPrefetchBags = 8;
  at::parallel_for(0, first_bag.back(), 32, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch;
    auto t = static_cast<size_t>(std::upper_bound(first_bag.begin(), first_bag.end(), begin) -
                                 first_bag.begin() - 1);
    size_t ahead_t = t;
    for (int64_t item = begin; item < std::min(end, begin + kPrefetchBags); ++item) {
      while (item >= first_bag[ahead_t + 1]) ++ahead_t;
      PrefetchBag(tables[ahead_t], item - first_bag[ahead_t]);
    }
    for (int64_t item = begin; item < end; ++item) {
      if (const int64_t ahead = item + kPrefetchBags; ahead < end) {
        while (ahead >= first_bag[ahead_t + 1]) ++ahead_t;
        PrefetchBag(tables[ahead_t], ahead - first_bag[ahead_t]);
      }
      while (item >= first_bag[t + 1]) ++t;
      const int64_t b = item - first_bag[t];
      if (tables[t].row_scales)
        SumBag<int8_t>(tables[t], static_cast<int64_t>(t), b, scratch);
      else if (tables[t].bf16)
        SumBag<c10::BFloat16>(tables[t], static_cast<int64_t>(t), b, scratch);
      else
        SumBag<float>(tables[t], static_cast<int64_t>(t), b, scratch);
    }
  });
  return outputs;
}

}  // namespace

at::Tensor Interaction(const std::vector<at::Tensor>& features, bool with_first) {
  TORCH_CHECK(!features.empty(), "ipt interaction: no features");
  const int64_t batch = features[0].size(0), dim = features[0].size(1);
  for (const at::Tensor& f : features)
    TORCH_CHECK(f.dim() == 2 && f.size(0) == batch && f.size(1) == dim,
                "ipt interaction: every feature must be [", batch, ", ", dim, "], got ", f.sizes());
  const auto vectors = static_cast<int64_t>(features.size());
  const int64_t pairs = vectors * (vectors - 1) / 2;
  const at::ScalarType dtype = features[0].scalar_type();
  // Read in place: a copy into [B, V, D] cost as much as the products.
  std::vector<at::Tensor> inputs;
  std::vector<const float*> data;
  for (const at::Tensor& f : features) {
    inputs.push_back(f.to(at::kFloat).contiguous());
    data.push_back(inputs.back().data_ptr<float>());
  }
  const int64_t offset = with_first ? dim : 0;
  at::Tensor out = at::empty({batch, offset + pairs}, inputs[0].options());
  float* o = out.data_ptr<float>();
  at::parallel_for(0, batch, 8, [&](int64_t begin, int64_t end) {
    std::vector<const float*> sample(vectors);
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t v = 0; v < vectors; ++v) sample[v] = data[v] + b * dim;
      float* row = o + b * (offset + pairs);
      if (with_first) std::copy(sample[0], sample[0] + dim, row);
      float* p = row + offset;
      for (int64_t i = 1; i < vectors; ++i) {
        int64_t j = 0;
        for (; j + 4 <= i; j += 4, p += 4) Dot4(sample[i], &sample[j], dim, p);
        for (; j < i; ++j) *p++ = Dot(sample[i], sample[j], dim);
      }
    }
  });
  return dtype == at::kFloat ? out : out.to(dtype);
}

std::vector<at::Tensor> MergedEmbeddingBagSum(const std::vector<at::Tensor>& weights,
                                              const std::vector<at::Tensor>& indices,
                                              const std::vector<at::Tensor>& offsets) {
  return SumBags(weights, {}, indices, offsets, /*int8=*/false);
}

QuantizedEmbeddingTable QuantizeEmbeddingTable(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2 && weight.is_floating_point(),
              "ipt quantize embedding table: expected a 2-D floating-point table, got ",
              weight.scalar_type(), " ", weight.sizes());
  // A row is an output channel: the same scheme as a linear layer's weights.
  QuantizedWeight q = QuantizeWeightPerChannel(weight);
  return {q.data, at::tensor(q.scales, at::kFloat)};
}

std::vector<at::Tensor> QuantizedMergedEmbeddingBagSum(const std::vector<at::Tensor>& weights,
                                                       const std::vector<at::Tensor>& row_scales,
                                                       const std::vector<at::Tensor>& indices,
                                                       const std::vector<at::Tensor>& offsets) {
  TORCH_CHECK(!weights.empty(), "ipt quantized merged embedding bag: no tables");
  return SumBags(weights, row_scales, indices, offsets, /*int8=*/true);
}

}  // namespace ipt::kernels
