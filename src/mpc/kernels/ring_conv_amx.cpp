// conv2d_u64 on the AMX ring GEMM without a uint64 im2col matrix, by one of two paths.
//
// The GEMM's B operand is im2col(x): K = C * KH * KW rows of output pixels. Built in uint64 and
// then split into byte planes, it is written, read back and transposed once more (for ResNet-20's
// first stage, 0.9 MB per image, more than the products cost).
//
// The packed path: the input is split into its eight byte planes once, C x H x W elements
// instead of K x OH x OW, stored with four channels per 32-bit word ([plane][channel / 4][row]
// [column][channel % 4], zero-padded as the convolution pads). K is ordered tap by tap, channels
// innermost (k = tap * C4 + c, C rounded up to a multiple of 4, the weights reordered to match),
// so that each VNNI row of B, four consecutive k times 16 pixels, is 16 of those words: for
// stride 1 one or a few contiguous runs (an output row each), for stride 2 the even words of
// twice as many, otherwise a gather; then put in the packed layout's column order.
//
// The direct path (see its section below) reads A tiles in place from the input's planes and
// packs nothing of the im2col's size; it is taken where it measured faster.
#include "ring_conv_amx.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "amx_tile_kernel.hpp"
#include "ring_gemm_amx.hpp"
#include "veil/core/aligned.hpp"

namespace veil::mpc::detail {
namespace {

// Dwords of slack before and after the planes: the loads of a run read up to 30 words before
// its first one (stride 2, 15 lanes) and 31 after its last.
constexpr int64_t kSlack = 32;

// body(begin, end) over `workers` equal slices of [0, count), on this thread and workers - 1
// others (the convolution's images share their planes and weights read-only).
template <class Body>
void split_across(int64_t count, int workers, const Body& body) {
  const int64_t step = (count + workers - 1) / workers;
  const auto slice = [&](int i) {
    const int64_t begin = std::min(count, i * step), end = std::min(count, begin + step);
    if (begin < end) body(begin, end);
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < workers; ++i) pool.emplace_back(slice, i);
  slice(0);
  for (auto& t : pool) t.join();
}

// What decides where a byte-plane buffer's zero padding is: what one pixel holds (channel
// blocks, or the bytes of an expanded window), the input's height and width, and the padding on
// each side. All of them: the padded area alone would not tell 11 x 12 from 12 x 11 pixels.
struct PaddedLayout {
  int64_t per_pixel = -1, h = 0, w = 0, top = 0, bottom = 0, left = 0, right = 0;
  PaddedLayout() = default;
  PaddedLayout(int64_t pixel, const Conv2dGeometry& g)
      : per_pixel(pixel),
        h(g.in_h),
        w(g.in_w),
        top(g.pad_top),
        bottom(g.pad_bottom),
        left(g.pad_left),
        right(g.pad_right) {}
  bool operator==(const PaddedLayout&) const = default;
};

// One output channel's weights, cg x taps (channel-major, as ONNX stores them), -> taps x c4
// (tap-major, the channels padded with zeros to c4): a transpose, in 8 x 8 blocks of registers
// where they fit (an element at a time, the copy took a fifth of a 64-channel layer's time).
__attribute__((target("avx512f"))) void reorder_weights(const uint64_t* w, int64_t cg, int64_t taps,
                                                        int64_t c4, uint64_t* out) {
  int64_t c0 = 0;
  for (; c0 + 8 <= cg; c0 += 8) {
    int64_t t0 = 0;
    for (; t0 + 8 <= taps; t0 += 8) {
      __m512i r[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm512_loadu_si512(w + (c0 + i) * taps + t0);
      transpose_8x8_u64(r);  // r[q]: column t0 + q of the block
      for (int q = 0; q < 8; ++q) _mm512_storeu_si512(out + (t0 + q) * c4 + c0, r[q]);
    }
    for (; t0 < taps; ++t0)
      for (int64_t c = c0; c < c0 + 8; ++c) out[t0 * c4 + c] = w[c * taps + t0];
  }
  for (int64_t t = 0; t < taps; ++t) {
    for (int64_t c = c0; c < cg; ++c) out[t * c4 + c] = w[c * taps + t];
    std::fill(out + t * c4 + cg, out + (t + 1) * c4, 0);
  }
}

// One image and group's input as byte planes (see the file comment), and the convolution's
// geometry in those terms.
struct ImagePlanes {
  int64_t cb = 0;  // channel blocks of 4
  int64_t hp = 0;  // padded rows and columns
  int64_t wp = 0;
  int64_t plane = 0;              // dwords per byte plane: cb * hp * wp
  AlignedVector<uint32_t> words;  // 8 planes, kSlack before and after
  PaddedLayout zeroed;            // the layout whose padding `words` holds as zeros

  const uint32_t* plane_words(int j) const { return words.data() + kSlack + j * plane; }
};

// x: channels [0, cg) of one image, cg x H x W.
__attribute__((target("avx512f,avx512bw"))) void split_planes(const Conv2dGeometry& g,
                                                              const uint64_t* x, int64_t cg,
                                                              ImagePlanes& p) {
  p.cb = (cg + 3) / 4;
  p.hp = g.pad_top + g.in_h + g.pad_bottom;
  p.wp = g.pad_left + g.in_w + g.pad_right;
  p.plane = p.cb * p.hp * p.wp;
  const size_t need = static_cast<size_t>(8 * p.plane + 2 * kSlack);
  if (p.words.size() < need) p.words.resize(need);
  uint32_t* base = p.words.data() + kSlack;
  // The padding is zero: written once per layout (this thread's buffer is kept between calls,
  // and the inside, written below, never reaches it).
  const PaddedLayout layout(p.cb, g);
  if (p.zeroed != layout)
    for (int j = 0; j < 8; ++j)
      for (int64_t b = 0; b < p.cb; ++b) {
        uint32_t* img = base + j * p.plane + b * p.hp * p.wp;
        std::fill(img, img + g.pad_top * p.wp, 0);
        std::fill(img + (g.pad_top + g.in_h) * p.wp, img + p.hp * p.wp, 0);
        for (int64_t y = g.pad_top; y < g.pad_top + g.in_h; ++y) {
          std::fill(img + y * p.wp, img + y * p.wp + g.pad_left, 0);
          std::fill(img + y * p.wp + g.pad_left + g.in_w, img + (y + 1) * p.wp, 0);
        }
      }
  p.zeroed = layout;
  // vnni_rows_4x16 on 4 channels x 16 columns gives, per plane, the 16 words of those columns.
  const __m512i natural = _mm512_load_si512(kVnniToColumnOrder);
  const int64_t hw = g.in_h * g.in_w;
  for (int64_t b = 0; b < p.cb; ++b)
    for (int64_t y = 0; y < g.in_h; ++y)
      for (int64_t x0 = 0; x0 < g.in_w; x0 += 16) {
        __m512i in[4][2];
        load_4x16(x + 4 * b * hw + y * g.in_w + x0, hw, cg - 4 * b, g.in_w - x0, in);
        __m512i rows[8];
        vnni_rows_4x16(in, rows);
        const __mmask16 keep =
            static_cast<__mmask16>((1u << std::min<int64_t>(16, g.in_w - x0)) - 1);
        const int64_t at = b * p.hp * p.wp + (g.pad_top + y) * p.wp + g.pad_left + x0;
        for (int j = 0; j < 8; ++j)
          _mm512_mask_storeu_epi32(base + j * p.plane + at, keep,
                                   _mm512_maskz_permutexvar_epi32(0xffff, natural, rows[j]));
      }
}

// A = the weights in the tap-major K order (zero for the padding channels), each row reordered
// into a per-thread buffer just before it is split into byte planes: the reordered matrix is
// never written whole (it took as long to write and read back as to pack).
class WeightRows final : public APanelSource {
 public:
  WeightRows(const uint64_t* w, int64_t cg, int64_t taps, int64_t c4)
      : w_(w), cg_(cg), taps_(taps), c4_(c4) {}

  void pack(int64_t i0, int64_t mc, int64_t pc, int64_t kc, const PassShape& ps,
            uint8_t* out) const override {
    thread_local std::vector<uint64_t> row;
    row.resize(static_cast<size_t>(taps_ * c4_));
    for (int64_t r = 0; r < mc; ++r) {
      reorder_weights(w_ + (i0 + r) * cg_ * taps_, cg_, taps_, c4_, row.data());
      pack_a_row(row.data() + pc, kc, ps, out, r);
    }
  }

 private:
  const uint64_t* w_;
  int64_t cg_, taps_, c4_;
};

// B = im2col(x) in the tap-major K order, packed straight from the planes.
class ImagePanels final : public BPanelSource {
 public:
  // k: the K of the product (4 * p.cb taps).
  ImagePanels(const Conv2dGeometry& g, const ImagePlanes& p, int64_t k) : g_(g), p_(p) {
    // Where each VNNI row's four channels are for the tap's first pixel: divisions hoisted out
    // of the packing loop, which runs this per row and 16 pixels.
    row_at_.resize(static_cast<size_t>(k / 4));
    const int64_t c4 = 4 * p.cb;
    for (int64_t q = 0; q < k / 4; ++q) {
      const int64_t tap = 4 * q / c4, ky = tap / g.kernel_w, kx = tap % g.kernel_w;
      row_at_[q] = (4 * q % c4) / 4 * p.hp * p.wp + ky * g.dilation_h * p.wp + kx * g.dilation_w;
    }
  }

  __attribute__((target("avx512f,avx512bw"))) void pack(int64_t pc, int64_t kc, int64_t jc,
                                                        int64_t nc, const PassShape& ps,
                                                        uint8_t* out) const override {
    zero_b_tail_ends(out, ps, nc);
    const int64_t ow = g_.out_w();
    for (int64_t n0 = 0; n0 < nc; n0 += 16) {
      const Runs runs = pixel_runs(jc + n0, std::min<int64_t>(16, nc - n0), ow);
      // The runs of stride 1 or 2 are resolved once per 16 pixels, outside the loop over the
      // planes; their count is a template argument for the usual one to four (output rows of 5
      // pixels or more).
      if (runs.gather)
        pack_gathered(runs, pc, kc, n0, ps, out);
      else if (g_.stride_w == 1)
        dispatch_runs<1>(runs, pc, kc, n0, ps, out);
      else
        dispatch_runs<2>(runs, pc, kc, n0, ps, out);
    }
  }

 private:
  // Where the words of up to 16 consecutive output pixels are, relative to a tap's origin: with
  // stride 1 or 2, `count` runs, one per output row (lanes mask[r], lane l at at[r] + stride l);
  // otherwise a gather of lanes mask[0] at `index`.
  struct Runs {
    bool gather = false;
    int count = 0;
    __mmask16 mask[16] = {};
    int64_t at[16] = {};
    __m512i index;
  };

  __attribute__((target("avx512f"))) Runs pixel_runs(int64_t first, int64_t n, int64_t ow) const {
    Runs r;
    if (g_.stride_w > 2) {
      alignas(64) int32_t index[16] = {};
      for (int64_t l = 0; l < n; ++l) {
        const int64_t oy = (first + l) / ow, ox = (first + l) % ow;
        index[l] = static_cast<int32_t>(oy * g_.stride_h * p_.wp + ox * g_.stride_w);
      }
      r.gather = true;
      r.mask[0] = static_cast<__mmask16>((1u << n) - 1);
      r.index = _mm512_load_si512(index);
      return r;
    }
    for (int64_t l = 0; l < n;) {
      const int64_t oy = (first + l) / ow, ox = (first + l) % ow;
      const int64_t len = std::min(n - l, ow - ox);  // to the end of the output row
      r.mask[r.count] = static_cast<__mmask16>(((1u << len) - 1) << l);
      r.at[r.count] = oy * g_.stride_h * p_.wp + (ox - l) * g_.stride_w;
      ++r.count;
      l += len;
    }
    return r;
  }

  // Column order of a packed row (ring_gemm_amx.hpp): position 2i holds pixel i, 2i + 1 pixel
  // 8 + i. As vpermd indices, and as the map of pixel lanes to packed positions.
  static constexpr int32_t kPackedOrder[16] = {0, 8,  1, 9,  2, 10, 3, 11,
                                               4, 12, 5, 13, 6, 14, 7, 15};

  // The 16 pixels' rows for every VNNI row q of the pass, from kRuns runs at stride kStride
  // (kRuns = 0: runs.count of them, for output rows shorter than 5 pixels).
  // Stride 2 takes the even words of 32 with one two-source permute (a gather made ResNet-20's
  // stride-2 layers the slowest per product) whose indices also put them
  // in packed order, so the runs' lane masks are permuted to packed order too.
  template <int kStride, int kRuns>
  __attribute__((target("avx512f,avx512bw"))) void pack_runs(const Runs& runs, int64_t pc,
                                                             int64_t kc, int64_t n0,
                                                             const PassShape& ps,
                                                             uint8_t* out) const {
    alignas(64) int32_t order[16];
    for (int i = 0; i < 16; ++i) order[i] = kStride == 2 ? 2 * kPackedOrder[i] : kPackedOrder[i];
    const __m512i idx = _mm512_load_si512(order);
    const int count = kRuns > 0 ? kRuns : runs.count;
    __mmask16 mask[16];
    int64_t at[16];
    for (int r = 0; r < count; ++r) {
      at[r] = runs.at[r];
      mask[r] = runs.mask[r];
      if (kStride == 2) {
        unsigned m = 0;
        for (int i = 0; i < 16; ++i) m |= ((runs.mask[r] >> kPackedOrder[i]) & 1u) << i;
        mask[r] = static_cast<__mmask16>(m);
      }
    }
    const int64_t plane = p_.plane;
    for (int64_t q = 0; q < kc / 4; ++q) {
      const uint32_t* base = p_.plane_words(0) + row_at_[pc / 4 + q];
      const BRow row = b_row(out, ps, q, n0);
      for (int j = 0; j < 8; ++j, base += plane) {
        __m512i v = _mm512_setzero_si512();
        for (int r = 0; r < count; ++r) {
          const uint32_t* w = base + at[r];
          // Whole loads, blended by lane (the words around a run are in the buffer, kSlack): a
          // masked load whose masked-off lanes cross into another page can take a microcode
          // assist.
          const __m512i x = kStride == 2 ? _mm512_permutex2var_epi32(_mm512_loadu_si512(w), idx,
                                                                     _mm512_loadu_si512(w + 16))
                                         : _mm512_loadu_si512(w);
          v = _mm512_mask_blend_epi32(mask[r], v, x);
        }
        if (kStride == 1) v = _mm512_maskz_permutexvar_epi32(0xffff, idx, v);
        _mm512_storeu_si512(row.dst + j * row.plane_stride, v);
      }
    }
  }

  template <int kStride>
  void dispatch_runs(const Runs& runs, int64_t pc, int64_t kc, int64_t n0, const PassShape& ps,
                     uint8_t* out) const {
    switch (runs.count) {
      case 1:
        return pack_runs<kStride, 1>(runs, pc, kc, n0, ps, out);
      case 2:
        return pack_runs<kStride, 2>(runs, pc, kc, n0, ps, out);
      case 3:
        return pack_runs<kStride, 3>(runs, pc, kc, n0, ps, out);
      case 4:
        return pack_runs<kStride, 4>(runs, pc, kc, n0, ps, out);
      default:
        return pack_runs<kStride, 0>(runs, pc, kc, n0, ps, out);
    }
  }

  // Strides above 2: a gather per plane.
  __attribute__((target("avx512f,avx512bw"))) void pack_gathered(const Runs& runs, int64_t pc,
                                                                 int64_t kc, int64_t n0,
                                                                 const PassShape& ps,
                                                                 uint8_t* out) const {
    const __m512i packed_order = _mm512_loadu_si512(kPackedOrder);
    for (int64_t q = 0; q < kc / 4; ++q) {
      const int64_t tap_at = row_at_[pc / 4 + q];
      const BRow row = b_row(out, ps, q, n0);
      for (int j = 0; j < 8; ++j) {
        const __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), runs.mask[0],
                                                      runs.index, p_.plane_words(j) + tap_at, 4);
        _mm512_storeu_si512(row.dst + j * row.plane_stride,
                            _mm512_maskz_permutexvar_epi32(0xffff, packed_order, v));
      }
    }
  }

  const Conv2dGeometry& g_;
  const ImagePlanes& p_;
  std::vector<int64_t> row_at_;  // per VNNI row of K, in dwords
};

// ---- The direct path: A tiles read in place from the input's byte planes. ----
//
// Each input row is split pixel-major, channels innermost ([plane][column][channel], padded),
// then expanded along the kernel's width: for each pixel, the kw x C bytes of the pixels it
// starts (one kernel row's K for an output pixel there), padded to whole 64-byte steps. An A
// tile (16 output pixels x 64 bytes of K) is then one TILELOADD at a stride of stride_w such
// pixels, every row 64-byte aligned. (Reading the unexpanded planes at a stride of C bytes
// would do without the expansion, but the rows of such a tile straddle cache lines: the
// kernel took ~11 ns per TDPBUUD that way against ~9, about what the expansion costs.) That
// is kw times the input instead of kh x kw for an im2col matrix, and nothing is packed in
// the 8 bytes per element of B: ResNet-20's first-stage layer took 73-77 us against 100 on
// the packed path. The pixels are the tile rows, the output channels the columns (the
// weights are packed as B), and the combine writes columns of NCHW. Each kernel row's K is
// padded to 64-byte steps (48 of 64 bytes used for 16 channels), where the weights are zero.

struct NhwcPlanes {
  int64_t hp = 0, wp = 0, c = 0;  // padded height and width, channels
  // One padded input row per byte plane ([plane][wp pixels][c], `row` bytes apart), reused row
  // by row: the expansion reads each pixel kw times, from L1 this way (the whole image's planes,
  // as this path first kept them, were written once and read back from L2: 25 % of ResNet-20's
  // first-stage layer for the split and the expansion together).
  int64_t row = 0;
  AlignedVector<uint8_t> rows;
  // Expanded: per plane, hp x wp pixels of `seg` bytes (kw x c, padded to 64-byte steps).
  int64_t seg = 0, expanded_plane = 0;
  AlignedVector<uint8_t> expanded;
  PaddedLayout zeroed;  // the layout whose padding rows `expanded` holds as zeros

  uint8_t* row_bytes(int j) { return rows.data() + j * row; }
  const uint8_t* expanded_bytes(int j) const { return expanded.data() + j * expanded_plane; }
};

int64_t direct_steps(const Conv2dGeometry& g) {
  return (g.kernel_w * (g.in_channels / g.groups) + kAmxStep - 1) / kAmxStep;
}

bool direct_suits(const Conv2dGeometry& g) {
  const int64_t cg = g.in_channels / g.groups, ow = g.out_w();
  // Channels in whole sets of 16 (the plane split below), one pass over K (PassShape's
  // exactness bound), and output rows that fill at least 3/4 of their 16-pixel tiles and are
  // long: measured on ResNet-20's layers (`mpc_bench --benchmark_filter=RingConv`), the
  // direct path took 73-77 us against 100 for the 28-pixel rows of the first stage, and 89-92
  // against 88 for the 14-pixel rows of the second, where the packed path has less to pack.
  return g.dilation_w == 1 && cg % 16 == 0 && g.kernel_h * direct_steps(g) * kAmxStep <= 2048 &&
         ow >= 24 && 4 * ow >= 3 * 16 * ((ow + 15) / 16);
}

// One input row y of a group's cg channels (x: its cg x H x W) -> p's staged rows, plane by
// plane at the padded column; their padding columns stay zero.
__attribute__((target("avx512f,avx512bw"))) void split_row(const Conv2dGeometry& g,
                                                           const uint64_t* x, int64_t cg, int64_t y,
                                                           NhwcPlanes& p) {
  const __m512i natural = _mm512_load_si512(kVnniToColumnOrder);
  const int64_t hw = g.in_h * g.in_w;
  for (int64_t x0 = 0; x0 < g.in_w; x0 += 16)
    for (int64_t set = 0; set < cg / 16; ++set) {
      // words[j][b][i]: plane j of channels 16 set + 4b .. + 3 at pixel x0 + i.
      __m512i words[8][4];
      for (int b = 0; b < 4; ++b) {
        __m512i in[4][2];
        load_4x16(x + (16 * set + 4 * b) * hw + y * g.in_w + x0, hw, 4, g.in_w - x0, in);
        __m512i rows[8];
        vnni_rows_4x16(in, rows);
        for (int j = 0; j < 8; ++j)
          words[j][b] = _mm512_maskz_permutexvar_epi32(0xffff, natural, rows[j]);
      }
      // Per plane, a 4 x 16 -> 16 x 4 transpose of the words: lane L of u[p] is pixel
      // 4L + p's 16 channel bytes, stored with a one-lane mask.
      const int64_t pixels = std::min<int64_t>(16, g.in_w - x0);
      for (int j = 0; j < 8; ++j) {
        const __m512i t0 = _mm512_maskz_unpacklo_epi32(0xffff, words[j][0], words[j][1]);
        const __m512i t1 = _mm512_maskz_unpackhi_epi32(0xffff, words[j][0], words[j][1]);
        const __m512i t2 = _mm512_maskz_unpacklo_epi32(0xffff, words[j][2], words[j][3]);
        const __m512i t3 = _mm512_maskz_unpackhi_epi32(0xffff, words[j][2], words[j][3]);
        const __m512i u[4] = {
            _mm512_maskz_unpacklo_epi64(0xff, t0, t2), _mm512_maskz_unpackhi_epi64(0xff, t0, t2),
            _mm512_maskz_unpacklo_epi64(0xff, t1, t3), _mm512_maskz_unpackhi_epi64(0xff, t1, t3)};
        uint8_t* at = p.row_bytes(j) + (g.pad_left + x0) * cg + 16 * set;
        for (int64_t i = 0; i < pixels; ++i) {
          const int lane = static_cast<int>(i / 4);
          _mm512_mask_storeu_epi32(at + i * cg - 16 * lane,
                                   static_cast<__mmask16>(0xf << (4 * lane)), u[i % 4]);
        }
      }
    }
}

// x: one image's cg x H x W channels of a group -> the expanded planes (see above), input row
// by input row through the staged rows. Pixels that start no kernel window (the last kw - 1 of
// a padded row) are not written: they only reach output pixels past the row's end, never
// stored. Slack after the last plane: the tiles of the last output row read up to 32 pixels
// further.
__attribute__((target("avx512f,avx512bw"))) void split_expand(const Conv2dGeometry& g,
                                                              const uint64_t* x, int64_t cg,
                                                              NhwcPlanes& p) {
  p.hp = g.pad_top + g.in_h + g.pad_bottom;
  p.wp = g.pad_left + g.in_w + g.pad_right;
  p.c = cg;
  const int64_t steps = direct_steps(g), run = g.kernel_w * cg;
  // A row's last kernel window loads whole steps: up to 63 bytes past the row.
  p.row = (p.wp * cg + 2 * kAmxStep - 1) / kAmxStep * kAmxStep;
  if (p.rows.size() < static_cast<size_t>(8 * p.row)) p.rows.resize(static_cast<size_t>(8 * p.row));
  for (int j = 0; j < 8; ++j) {
    std::memset(p.row_bytes(j), 0, static_cast<size_t>(g.pad_left * cg));
    std::memset(p.row_bytes(j) + (g.pad_left + g.in_w) * cg, 0,
                static_cast<size_t>(p.row - (g.pad_left + g.in_w) * cg));
  }
  p.seg = steps * kAmxStep;
  p.expanded_plane = p.hp * p.wp * p.seg;
  const size_t need =
      static_cast<size_t>(8 * p.expanded_plane + 32 * g.stride_w * p.seg + 2 * p.seg);
  if (p.expanded.size() < need) p.expanded.resize(need);
  // The padding rows' windows are all zero: written once per layout (as split_planes does).
  const PaddedLayout layout(p.seg, g);
  if (p.zeroed != layout) {
    for (int j = 0; j < 8; ++j) {
      uint8_t* plane = p.expanded.data() + j * p.expanded_plane;
      std::memset(plane, 0, static_cast<size_t>(g.pad_top * p.wp * p.seg));
      std::memset(plane + (g.pad_top + g.in_h) * p.wp * p.seg, 0,
                  static_cast<size_t>(g.pad_bottom * p.wp * p.seg));
    }
    p.zeroed = layout;
  }
  const int64_t origins = p.wp - g.kernel_w + 1;
  // The last step keeps run - 64 (steps - 1) bytes. The rest would be the next pixels'
  // channels, which meet zero weights; they are zeroed anyway, so no stale byte is ever read.
  const int64_t keep = run - (steps - 1) * kAmxStep;
  const __mmask64 last = keep >= 64 ? ~__mmask64{0} : (__mmask64{1} << keep) - 1;
  // Locals: the stores below could alias p's members as far as the compiler knows.
  const uint8_t* const staged = p.rows.data();
  uint8_t* const expanded = p.expanded.data();
  const int64_t row = p.row, seg = p.seg, plane = p.expanded_plane, padded_row = p.wp * seg;
  for (int64_t y = 0; y < g.in_h; ++y) {
    split_row(g, x, cg, y, p);
    for (int j = 0; j < 8; ++j) {
      const uint8_t* from = staged + j * row;
      uint8_t* to = expanded + j * plane + (g.pad_top + y) * padded_row;
      for (int64_t xx = 0; xx < origins; ++xx, from += cg, to += seg) {
        for (int64_t t = 0; t + 1 < steps; ++t)
          _mm512_store_si512(to + t * kAmxStep, _mm512_loadu_si512(from + t * kAmxStep));
        _mm512_store_si512(
            to + (steps - 1) * kAmxStep,
            _mm512_maskz_mov_epi8(last, _mm512_loadu_si512(from + (steps - 1) * kAmxStep)));
      }
    }
  }
}

// w (OC x C x KH x KW, one group's) -> B: row ky * steps * 64 + kx * C + c, column oc, zero
// past kw x C in each kernel row's steps; then packed.
std::vector<uint64_t> direct_weights(const Conv2dGeometry& g, const uint64_t* w, int64_t ocg) {
  const int64_t cg = g.in_channels / g.groups, kh = g.kernel_h, kw = g.kernel_w;
  const int64_t seg = direct_steps(g) * kAmxStep;
  std::vector<uint64_t> b(static_cast<size_t>(kh * seg * ocg), 0);
  for (int64_t oc = 0; oc < ocg; ++oc)
    for (int64_t c = 0; c < cg; ++c)
      for (int64_t ky = 0; ky < kh; ++ky)
        for (int64_t kx = 0; kx < kw; ++kx)
          b[(ky * seg + kx * cg + c) * ocg + oc] = w[((oc * cg + c) * kh + ky) * kw + kx];
  return b;
}

// Output rows [oy_begin, oy_end) of one image and group.
__attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512dq"))) void direct_rows(
    const Conv2dGeometry& g, const NhwcPlanes& p, const uint8_t* wpack, const PassShape& ps,
    int64_t ocg, uint64_t* y, int64_t oy_begin, int64_t oy_end) {
  const int64_t ow = g.out_w(), pixels = g.out_h() * ow;
  TileKernel kernel;
  load_tile_config();
  ATiles tiles;
  tiles.plane = p.expanded_plane;
  tiles.stride = g.stride_w * p.seg;
  tiles.second = 16 * tiles.stride;
  tiles.steps = direct_steps(g);
  tiles.segments = g.kernel_h;
  tiles.segment = g.dilation_h * p.wp * p.seg;
  tiles.step = kAmxStep;
  for (int64_t oc0 = 0; oc0 < ocg; oc0 += kAmxPanel) {
    const uint8_t* bp = wpack + (oc0 / kAmxPanel) * ps.b_panel();
    const int left_cols = static_cast<int>(std::min<int64_t>(16, ocg - oc0));
    const int right_cols = static_cast<int>(std::clamp<int64_t>(ocg - oc0 - 16, 0, 16));
    for (int64_t oy = oy_begin; oy < oy_end; ++oy)
      for (int64_t ox0 = 0; ox0 < ow; ox0 += kAmxPanel) {
        const int rows = static_cast<int>(std::min<int64_t>(kAmxPanel, ow - ox0));
        tiles.base = p.expanded_bytes(0) + (oy * g.stride_h * p.wp + ox0 * g.stride_w) * p.seg;
        uint64_t* out = y + oc0 * pixels + oy * ow + ox0;
        OutTile left{out, pixels, rows, left_cols, false, true};
        OutTile right{out + 16 * pixels, pixels, rows, right_cols, false, true};
        if (rows > 16 || right_cols == 0) {
          kernel.block(tiles, bp, ps, rows > 16, left, right);
        } else {
          // 16 pixels, both column halves at once (rows <= 16 here).
          kernel.block(tiles, bp, ps, false, left, right);
        }
      }
  }
  kernel.finish();
  release_tiles();
}

}  // namespace

namespace {

void conv2d_u64_amx_direct(const Conv2dGeometry& g, const uint64_t* x, const uint64_t* w,
                           uint64_t* y, int threads) {
  const int64_t cg = g.in_channels / g.groups, ocg = g.out_channels / g.groups;
  const int64_t oh = g.out_h(), pixels = oh * g.out_w();
  const PassShape ps(g.kernel_h * direct_steps(g) * kAmxStep);
  // Kept between calls, as the GEMM's packing buffers: growing them zero-fills, and fresh ones
  // per call showed up as a tenth of the time of ResNet-20's first-stage layer.
  // (The worker threads below use this thread's buffers, through these references.)
  thread_local AlignedVector<uint8_t> wpack_buffer;
  thread_local NhwcPlanes planes_buffer;
  AlignedVector<uint8_t>& wpack = wpack_buffer;
  NhwcPlanes& planes = planes_buffer;
  const size_t wneed = static_cast<size_t>(ps.b_panel() * ((ocg + kAmxPanel - 1) / kAmxPanel));
  if (wpack.size() < wneed) wpack.resize(wneed);
  const int workers = static_cast<int>(std::clamp<int64_t>(threads, 1, oh));
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    const std::vector<uint64_t> b =
        direct_weights(g, w + grp * ocg * cg * g.kernel_h * g.kernel_w, ocg);
    pack_b_matrix(b.data(), ocg, ps.full * kAmxStep, ocg, ps, wpack.data());
    for (int64_t n = 0; n < g.batch; ++n) {
      split_expand(g, x + (n * g.in_channels + grp * cg) * g.in_h * g.in_w, cg, planes);
      uint64_t* out = y + (n * g.out_channels + grp * ocg) * pixels;
      split_across(oh, workers, [&](int64_t begin, int64_t end) {
        direct_rows(g, planes, wpack.data(), ps, ocg, out, begin, end);
      });
    }
  }
}

}  // namespace

bool conv2d_u64_amx_suits(const Conv2dGeometry& g) {
  const int64_t ocg = g.out_channels / g.groups;
  const int64_t k = (g.in_channels / g.groups + 3) / 4 * 4 * g.kernel_h * g.kernel_w;
  // The GEMM's own rule for AMX (ring_kernels.cpp), and offsets that fit the gather's int32.
  return amx_ring_gemm_usable() && ocg > 8 && g.out_h() * g.out_w() > 8 && k >= 64 &&
         (g.pad_top + g.in_h + g.pad_bottom) * (g.pad_left + g.in_w + g.pad_right) < (1 << 24);
}

void conv2d_u64_amx(const Conv2dGeometry& g, const uint64_t* x, const uint64_t* w, uint64_t* y,
                    int threads) {
  const int64_t cg = g.in_channels / g.groups, ocg = g.out_channels / g.groups;
  if (direct_suits(g)) {
    conv2d_u64_amx_direct(g, x, w, y, threads);
    return;
  }
  const int64_t c4 = (cg + 3) / 4 * 4, taps = g.kernel_h * g.kernel_w, k = c4 * taps;
  const int64_t pixels = g.out_h() * g.out_w();
  const int workers = static_cast<int>(std::clamp<int64_t>(threads, 1, (pixels + 31) / 32));
  // Kept between calls, as the GEMM's packing buffers (growing them zero-fills); the worker
  // threads below use this thread's through the reference.
  thread_local ImagePlanes planes_buffer;
  ImagePlanes& planes = planes_buffer;
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      split_planes(g, x + (n * g.in_channels + grp * cg) * g.in_h * g.in_w, cg, planes);
      const ImagePanels panels(g, planes, k);
      const WeightRows weights(w + grp * ocg * cg * taps, cg, taps, c4);
      uint64_t* out = y + (n * g.out_channels + grp * ocg) * pixels;
      split_across(pixels, workers, [&](int64_t begin, int64_t end) {
        gemm_u64_amx_packed(ocg, begin, end, k, weights, panels, out, pixels, false);
      });
    }
}

}  // namespace veil::mpc::detail
