// 3DMV back-projection: 2D feature maps lifted into sparse voxels (the visibility test is in
// project_math.h; the Python contract in sparse3d/ops/backproject.py).
//
//   forward: coords int32 [N, 4], voxel_to_world float64 [B, 4, 4], feats2d [V, C, h, w] (float32 /
//            float64), depth float32 [V, H, W], intrinsics float64 [V, 4], world_to_cam float64 [V, 4, 4],
//            view_batch int64 [V] (-1 = skipped view), thresh float64 [B], near, far, pool_max
//         -> feats [N, C], n_views int32 [N], and the pixels the backward needs:
//            max:  argmax int32 [N, C], the pixel v * h * w + fv * w + fu that gave feats[n, c], -1 where no
//                  view passed;
//            mean: rows int32 [N, M] (M = the most views of any batch item), the pixels of the passing views
//                  in view order, then -1
//     max:  feats[n, c] = max over passing views (ties: the lowest view index); mean: their average
//   backward_max:  grad2d[pixel argmax[n, c], c] += grad[n, c]                     -> [V, C, h, w]
//   backward_mean: grad2d[pixel rows[n, j], c] += grad[n, c] / n_views[n], rows >= 0 -> [V, C, h, w]
//                  (the forward's pixels: the depth test is not run again)
//   visibility:    bool [N, V], true where view v passes the test for voxel n
// feats2d is read, and its gradient written, in its own [V, C, h, w] layout: no [V * h * w, C] copy
// (on large feature maps a dense copy costs more than the whole back-projection).
// The scatters of both backward passes use atomic adds (float sums: the order, and so the last bits,
// may vary between runs with more than one thread).
#pragma once
#include <torch/extension.h>

#include <tuple>

#include "project/project_math.h"

namespace s3d {

// Inputs of the test, checked by project.cpp; order / begin are the views grouped by batch item.
struct ProjectInputs {
  at::Tensor coords, voxel_to_world, depth, intrinsics, world_to_cam, thresh, view_order, batch_begin;
  double near_, far_;
  project::Geometry geometry(int64_t h, int64_t w) const;
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_forward_cpu(const ProjectInputs& in, const at::Tensor& feats2d,
                                                                   bool pool_max, int64_t max_views);
at::Tensor project_backward_max_cpu(const at::Tensor& grad, const at::Tensor& argmax, int64_t V, int64_t h, int64_t w);
at::Tensor project_backward_mean_cpu(const at::Tensor& grad, const at::Tensor& rows, const at::Tensor& n_views,
                                     int64_t V, int64_t h, int64_t w);
at::Tensor project_visibility_cpu(const ProjectInputs& in, int64_t V);
#ifdef WITH_CUDA
std::tuple<at::Tensor, at::Tensor, at::Tensor> project_forward_cuda(const ProjectInputs& in, const at::Tensor& feats2d,
                                                                    bool pool_max, int64_t max_views);
at::Tensor project_backward_max_cuda(const at::Tensor& grad, const at::Tensor& argmax, int64_t V, int64_t h,
                                     int64_t w);
at::Tensor project_backward_mean_cuda(const at::Tensor& grad, const at::Tensor& rows, const at::Tensor& n_views,
                                      int64_t V, int64_t h, int64_t w);
at::Tensor project_visibility_cuda(const ProjectInputs& in, int64_t V);
#endif

}  // namespace s3d
