// The visibility test of 3DMV back-projection, written once for the CPU and CUDA kernels
// (plain C++, no torch headers: nvcc compiles it as __host__ __device__).
//
// Voxel n = (b, i, j, k): X = voxel_to_world[b] @ (i, j, k, 1). For view v:
//   (x, y, z) = world_to_cam[v] @ X;  u = fx x / z + cx,  v_ = fy y / z + cy
//   depth pixel (pu, pv) = (floor(u + 0.5), floor(v_ + 0.5))
//   passes when z > 0, 0 <= pu < W, 0 <= pv < H, d = depth[v, pv, pu] finite and > 0,
//   near <= d <= far, |d - z| <= thresh[b]
//   feature pixel: fu = floor((pu + 0.5) w / W) = ((2 pu + 1) w) / (2 W), likewise fv; the returned
//   "row" is (v * h + fv) * w + fu, the pixel's index among the V * h * w pixels; channel c of it in
//   feats2d [V, C, h, w] (contiguous) is at feature_offset(row, C, h * w) + c * h * w.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/host_device.h"  // S3D_HD: host and device (nvcc) versions of the helpers below

namespace s3d {
namespace project {

struct Geometry {
  const int32_t* coords;        // [N, 4]
  const double* voxel_to_world; // [B, 4, 4]
  const double* world_to_cam;   // [V, 4, 4]
  const double* intrinsics;     // [V, 4]: fx, fy, cx, cy
  const float* depth;           // [V, H, W]
  const double* thresh;         // [B]
  const int64_t* view_order;    // [V]: views sorted by batch item (skipped views last)
  const int64_t* batch_begin;   // [B + 1]: views of item b are view_order[begin[b] .. begin[b + 1])
  int64_t H, W, h, w;
  double near_, far_;
};

// World point of voxel n's centre; returns its batch item.
S3D_HD inline int32_t voxel_centre(const Geometry& g, int64_t n, double* X) {
  const int32_t* c = g.coords + 4 * n;
  const double* M = g.voxel_to_world + 16 * static_cast<int64_t>(c[0]);
  const double i = c[1], j = c[2], k = c[3];
  for (int r = 0; r < 3; ++r) X[r] = M[4 * r] * i + M[4 * r + 1] * j + M[4 * r + 2] * k + M[4 * r + 3];
  return c[0];
}

// Feature-table row of view v for the voxel at world point X of batch item b, or -1 when it fails.
S3D_HD inline int64_t project_row(const Geometry& g, const double* X, int32_t b, int64_t v) {
  const double* T = g.world_to_cam + 16 * v;
  const double x = T[0] * X[0] + T[1] * X[1] + T[2] * X[2] + T[3];
  const double y = T[4] * X[0] + T[5] * X[1] + T[6] * X[2] + T[7];
  const double z = T[8] * X[0] + T[9] * X[1] + T[10] * X[2] + T[11];
  if (!(z > 0)) return -1;
  const double* K = g.intrinsics + 4 * v;
  const double pu = floor(K[0] * x / z + K[2] + 0.5);
  const double pv = floor(K[1] * y / z + K[3] + 0.5);
  if (!(pu >= 0 && pu < static_cast<double>(g.W) && pv >= 0 && pv < static_cast<double>(g.H))) return -1;
  const int64_t iu = static_cast<int64_t>(pu), iv = static_cast<int64_t>(pv);
  const double d = static_cast<double>(g.depth[(v * g.H + iv) * g.W + iu]);
  // NaN fails every comparison; +inf fails d <= far (far is finite)
  if (!(d > 0 && d >= g.near_ && d <= g.far_ && fabs(d - z) <= g.thresh[b])) return -1;
  const int64_t fu = ((2 * iu + 1) * g.w) / (2 * g.W);
  const int64_t fv = ((2 * iv + 1) * g.h) / (2 * g.H);
  return (v * g.h + fv) * g.w + fu;
}

// Offset of channel 0 of pixel `row` (v * h * w + fv * w + fu) in a contiguous [V, C, h, w] tensor.
S3D_HD inline int64_t feature_offset(int64_t row, int64_t C, int64_t hw) {
  const int64_t v = row / hw;
  return v * C * hw + (row - v * hw);
}

// The forward of voxel n (the CPU and CUDA kernels run it per voxel): pool the features of the views that pass
// into out[n * C ..], count them into n_views[n], and keep the pixels the backward needs in index:
//   max:  index[n * C + c] = the pixel of the max (the lowest view on ties), -1 when no view passes;
//   mean: index[n * M + j] = the pixel of the j-th passing view, then -1 (M = the most views of a batch item).
template <typename T>
S3D_HD inline void forward_voxel(const Geometry& g, const T* feats, int64_t n, int64_t C, bool pool_max, int64_t M,
                                 T* out, int32_t* n_views, int32_t* index) {
  const int64_t hw = g.h * g.w;
  double X[3];
  const int32_t b = voxel_centre(g, n, X);
  T* o = out + n * C;
  int32_t* a = index + n * (pool_max ? C : M);
  int32_t count = 0;
  for (int64_t j = g.batch_begin[b]; j < g.batch_begin[b + 1]; ++j) {
    const int64_t row = project_row(g, X, b, g.view_order[j]);
    if (row < 0) continue;
    const T* f = feats + feature_offset(row, C, hw);
    if (!pool_max) {
      for (int64_t c = 0; c < C; ++c) o[c] += f[c * hw];
      a[count] = static_cast<int32_t>(row);
    } else {
      for (int64_t c = 0; c < C; ++c) {
        if (count == 0 || f[c * hw] > o[c]) {
          o[c] = f[c * hw];
          a[c] = static_cast<int32_t>(row);
        }
      }
    }
    ++count;
  }
  n_views[n] = count;
  if (!pool_max && count > 1) {
    const T cnt = static_cast<T>(count);
    for (int64_t c = 0; c < C; ++c) o[c] /= cnt;
  }
  if (pool_max && count == 0) {
    for (int64_t c = 0; c < C; ++c) a[c] = -1;
  }
  if (!pool_max) {
    for (int64_t j = count; j < M; ++j) a[j] = -1;
  }
}

}  // namespace project
}  // namespace s3d
