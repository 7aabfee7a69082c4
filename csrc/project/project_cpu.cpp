// CPU back-projection (project.h): threads (at::parallel_for, OpenMP) over voxels. Each voxel walks
// the views of its batch item in index order, so the max keeps the lowest view on ties and the result
// does not depend on the thread count. feats2d is read in place ([V, C, h, w]: channel c of a pixel
// is h * w elements from channel c - 1; consecutive voxels of a surface hit neighbouring pixels, so
// the cache lines are shared). Backward passes scatter-add into [V, C, h, w], atomically when torch runs
// more than one thread.
#include <ATen/Parallel.h>

#include <type_traits>
#include <vector>

#include "project/project.h"

namespace s3d {
namespace {

constexpr int64_t kGrain = 256;  // voxels per task

// Scatter-add of the backward passes: atomic when more than one thread may run (a float atomic add is a
// compare-and-swap loop on x86, several times a plain add), plain on one thread.
template <bool Atomic, typename T>
inline void scatter_add(T* dst, T v) {
  if constexpr (Atomic) {
#pragma omp atomic
    *dst += v;
  } else {
    *dst += v;
  }
}

// Runs body.template operator()<Atomic>() with Atomic = (torch may use more than one thread).
template <typename F>
void with_atomic(F&& body) {
  if (at::get_num_threads() > 1) {
    body(std::true_type{});
  } else {
    body(std::false_type{});
  }
}

template <typename T>
void forward_impl(const project::Geometry& g, const T* feats, int64_t N, int64_t C, bool pool_max, int64_t M,
                  T* out, int32_t* n_views, int32_t* index) {
  at::parallel_for(0, N, kGrain, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) project::forward_voxel(g, feats, n, C, pool_max, M, out, n_views, index);
  });
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_forward_cpu(const ProjectInputs& in, const at::Tensor& feats2d,
                                                                   bool pool_max, int64_t max_views) {
  const int64_t N = in.coords.size(0), C = feats2d.size(1), h = feats2d.size(2), w = feats2d.size(3);
  at::Tensor out = at::zeros({N, C}, feats2d.options());
  at::Tensor n_views = at::zeros({N}, in.coords.options());
  at::Tensor index = at::empty({N, pool_max ? C : max_views}, in.coords.options());
  if (N == 0 || (!pool_max && max_views == 0)) return {out, n_views, index};  // no voxel, or no view at all
  const project::Geometry g = in.geometry(h, w);
  AT_DISPATCH_FLOATING_TYPES(feats2d.scalar_type(), "project_forward_cpu", [&] {
    forward_impl<scalar_t>(g, feats2d.data_ptr<scalar_t>(), N, C, pool_max, max_views, out.data_ptr<scalar_t>(),
                           n_views.data_ptr<int32_t>(), index.data_ptr<int32_t>());
  });
  return {out, n_views, index};
}

at::Tensor project_backward_max_cpu(const at::Tensor& grad, const at::Tensor& argmax, int64_t V, int64_t h, int64_t w) {
  const int64_t N = grad.size(0), C = grad.size(1), hw = h * w;
  at::Tensor out = at::zeros({V, C, h, w}, grad.options());
  if (N == 0 || C == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "project_backward_max_cpu", [&] {
    const scalar_t* gr = grad.data_ptr<scalar_t>();
    const int32_t* a = argmax.data_ptr<int32_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    with_atomic([&](auto atomic) {
      constexpr bool kAtomic = decltype(atomic)::value;
      at::parallel_for(0, N, kGrain, [&](int64_t n0, int64_t n1) {
        for (int64_t n = n0; n < n1; ++n) {
          for (int64_t c = 0; c < C; ++c) {
            const int32_t r = a[n * C + c];
            if (r >= 0) scatter_add<kAtomic>(o + project::feature_offset(r, C, hw) + c * hw, gr[n * C + c]);
          }
        }
      });
    });
  });
  return out;
}

at::Tensor project_backward_mean_cpu(const at::Tensor& grad, const at::Tensor& rows, const at::Tensor& n_views,
                                     int64_t V, int64_t h, int64_t w) {
  const int64_t N = grad.size(0), C = grad.size(1), M = rows.size(1), hw = h * w;
  at::Tensor out = at::zeros({V, C, h, w}, grad.options());
  if (N == 0 || C == 0 || M == 0) return out;
  const int32_t* nv = n_views.data_ptr<int32_t>();
  const int32_t* r = rows.data_ptr<int32_t>();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "project_backward_mean_cpu", [&] {
    const scalar_t* gr = grad.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    with_atomic([&](auto atomic) {
      constexpr bool kAtomic = decltype(atomic)::value;
      at::parallel_for(0, N, kGrain, [&](int64_t n0, int64_t n1) {
        for (int64_t n = n0; n < n1; ++n) {
          if (nv[n] <= 0) continue;
          const scalar_t cnt = static_cast<scalar_t>(nv[n]);
          for (int64_t j = 0; j < M && r[n * M + j] >= 0; ++j) {
            scalar_t* dst = o + project::feature_offset(r[n * M + j], C, hw);
            for (int64_t c = 0; c < C; ++c) scatter_add<kAtomic>(dst + c * hw, gr[n * C + c] / cnt);
          }
        }
      });
    });
  });
  return out;
}

at::Tensor project_visibility_cpu(const ProjectInputs& in, int64_t V) {
  const int64_t N = in.coords.size(0);
  at::Tensor out = at::zeros({N, V}, in.coords.options().dtype(at::kBool));
  if (N == 0 || V == 0) return out;
  const project::Geometry g = in.geometry(1, 1);
  bool* o = out.data_ptr<bool>();
  at::parallel_for(0, N, kGrain, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      double X[3];
      const int32_t b = project::voxel_centre(g, n, X);
      for (int64_t j = g.batch_begin[b]; j < g.batch_begin[b + 1]; ++j) {
        const int64_t v = g.view_order[j];
        if (project::project_row(g, X, b, v) >= 0) o[n * V + v] = true;
      }
    }
  });
  return out;
}

}  // namespace s3d
