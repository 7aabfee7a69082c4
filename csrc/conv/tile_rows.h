// The pairs of one kernel offset inside a tile of output rows, read from a neighbor table
// (conv_cpu.cpp's tiled GEMM path and conv_cpu_direct.cpp's weight gradient share it).
#pragma once
#include <cstdint>
#include <vector>

namespace s3d {

struct TileRows {
  std::vector<int32_t> dst;  // rows inside the output (absolute)
  std::vector<int32_t> src;  // matching rows of the input
  int64_t count = 0;
  bool contiguous = false;  // every output row of the tile present, sources one ascending run

  explicit TileRows(int64_t tile) : dst(tile), src(tile) {}
};

// Collects the pairs of offset k of nbr [*, k_total] in rows [r0, r1); flags an index >= n_in in *bad
// (and skips it).
inline void collect_tile_rows(const int32_t* nbr, int64_t k_total, int64_t k, int64_t r0, int64_t r1, int64_t n_in,
                              TileRows& t, bool* bad) {
  int64_t m = 0;
  bool run = true;
  int32_t first = -1;
  for (int64_t r = r0; r < r1; ++r) {
    const int32_t s = nbr[r * k_total + k];
    if (s < 0) {
      run = false;
      continue;
    }
    if (s >= n_in) {
      *bad = true;
      run = false;
      continue;
    }
    if (m == 0) first = s;
    run = run && (s == first + m);
    t.dst[m] = static_cast<int32_t>(r);
    t.src[m] = s;
    ++m;
  }
  t.count = m;
  t.contiguous = run && m == (r1 - r0);
}

}  // namespace s3d
