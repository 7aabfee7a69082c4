// CUDA back-projection (project.h): the CPU kernels' loops with one thread per voxel (forward, visibility)
// or per (voxel, channel) element (both backward passes). The visibility test is
// project_math.h, shared with the CPU. Views are walked in index order per voxel, so the forward is
// deterministic; the backward scatters with atomicAdd (float64 atomicAdd needs sm_60+). Geometry
// holds device pointers only (the view grouping is made on the device by project.cpp).
#include <ATen/Dispatch.h>

#include "common/checks.h"
#include "common/cuda_launch.cuh"
#include "project/project.h"

namespace s3d {
namespace {

template <typename T>
__global__ void forward_kernel(project::Geometry g, const T* __restrict__ feats, int64_t N, int64_t C, bool pool_max,
                               int64_t M, T* __restrict__ out, int32_t* __restrict__ n_views,
                               int32_t* __restrict__ index) {
  S3D_GRID_STRIDE(n, N) { project::forward_voxel(g, feats, n, C, pool_max, M, out, n_views, index); }
}

template <typename T>
__global__ void backward_max_kernel(const T* __restrict__ grad, const int32_t* __restrict__ argmax, int64_t N,
                                    int64_t C, int64_t hw, T* __restrict__ out) {
  S3D_GRID_STRIDE(e, N * C) {
    const int32_t r = argmax[e];
    if (r >= 0) atomicAdd(out + project::feature_offset(r, C, hw) + (e % C) * hw, grad[e]);
  }
}

template <typename T>
__global__ void backward_mean_kernel(const T* __restrict__ grad, const int32_t* __restrict__ rows,
                                     const int32_t* __restrict__ n_views, int64_t N, int64_t C, int64_t M, int64_t hw,
                                     T* __restrict__ out) {
  S3D_GRID_STRIDE(e, N * C) {
    const int64_t n = e / C, c = e % C;
    if (n_views[n] <= 0) continue;
    const T g = grad[e] / static_cast<T>(n_views[n]);
    for (int64_t j = 0; j < M && rows[n * M + j] >= 0; ++j) {
      atomicAdd(out + project::feature_offset(rows[n * M + j], C, hw) + c * hw, g);
    }
  }
}

__global__ void visibility_kernel(project::Geometry g, int64_t N, int64_t V, bool* __restrict__ out) {
  S3D_GRID_STRIDE(n, N) {
    double X[3];
    const int32_t b = project::voxel_centre(g, n, X);
    for (int64_t j = g.batch_begin[b]; j < g.batch_begin[b + 1]; ++j) {
      const int64_t v = g.view_order[j];
      if (project::project_row(g, X, b, v) >= 0) out[n * V + v] = true;
    }
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_forward_cuda(const ProjectInputs& in, const at::Tensor& feats2d,
                                                                    bool pool_max, int64_t max_views) {
  const c10::cuda::CUDAGuard guard(in.coords.device());
  const int64_t N = in.coords.size(0), C = feats2d.size(1), h = feats2d.size(2), w = feats2d.size(3);
  at::Tensor out = at::zeros({N, C}, feats2d.options());
  at::Tensor n_views = at::zeros({N}, in.coords.options());
  at::Tensor index = at::empty({N, pool_max ? C : max_views}, in.coords.options());
  if (N == 0 || (!pool_max && max_views == 0)) return {out, n_views, index};  // no voxel, or no view at all
  const project::Geometry g = in.geometry(h, w);
  const cudaStream_t stream = cuda::current_stream();
  AT_DISPATCH_FLOATING_TYPES(feats2d.scalar_type(), "project_forward_cuda", [&] {
    forward_kernel<scalar_t><<<cuda::blocks_for(N), cuda::kThreads, 0, stream>>>(
        g, feats2d.data_ptr<scalar_t>(), N, C, pool_max, max_views, out.data_ptr<scalar_t>(),
        n_views.data_ptr<int32_t>(), index.data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {out, n_views, index};
}

at::Tensor project_backward_max_cuda(const at::Tensor& grad, const at::Tensor& argmax, int64_t V, int64_t h,
                                     int64_t w) {
  const c10::cuda::CUDAGuard guard(grad.device());
  const int64_t N = grad.size(0), C = grad.size(1);
  at::Tensor out = at::zeros({V, C, h, w}, grad.options());
  if (N == 0 || C == 0) return out;
  const cudaStream_t stream = cuda::current_stream();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "project_backward_max_cuda", [&] {
    backward_max_kernel<scalar_t><<<cuda::blocks_for(N * C), cuda::kThreads, 0, stream>>>(
        grad.data_ptr<scalar_t>(), argmax.data_ptr<int32_t>(), N, C, h * w, out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor project_backward_mean_cuda(const at::Tensor& grad, const at::Tensor& rows, const at::Tensor& n_views,
                                      int64_t V, int64_t h, int64_t w) {
  const c10::cuda::CUDAGuard guard(grad.device());
  const int64_t N = grad.size(0), C = grad.size(1), M = rows.size(1);
  at::Tensor out = at::zeros({V, C, h, w}, grad.options());
  if (N == 0 || C == 0 || M == 0) return out;
  const cudaStream_t stream = cuda::current_stream();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "project_backward_mean_cuda", [&] {
    backward_mean_kernel<scalar_t><<<cuda::blocks_for(N * C), cuda::kThreads, 0, stream>>>(
        grad.data_ptr<scalar_t>(), rows.data_ptr<int32_t>(), n_views.data_ptr<int32_t>(), N, C, M, h * w,
        out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor project_visibility_cuda(const ProjectInputs& in, int64_t V) {
  const c10::cuda::CUDAGuard guard(in.coords.device());
  const int64_t N = in.coords.size(0);
  at::Tensor out = at::zeros({N, V}, in.coords.options().dtype(at::kBool));
  if (N == 0 || V == 0) return out;
  const project::Geometry g = in.geometry(1, 1);
  visibility_kernel<<<cuda::blocks_for(N), cuda::kThreads, 0, cuda::current_stream()>>>(g, N, V,
                                                                                         out.data_ptr<bool>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace s3d
