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

}  // namespace project
}  // namespace s3d
