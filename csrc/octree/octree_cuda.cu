// CUDA octree build, same results as octree_cpu.cpp (arguments checked by octree.cpp):
//  * points_to_cells / shuffled keys / node coordinates: one thread per row;
//  * the non-empty keys per depth: at::sort + at::unique_consecutive of the leaf keys, then of the parent keys;
//  * children ordinals and each input's leaf row: one thread per row binary-searching the sorted keys;
//  * neighbors: one thread per child, through the parent depth's table (octree_key.h: child_neighbor).
#include "common/checks.h"
#include "common/cuda_launch.cuh"
#include "octree/octree.h"
#include "octree/octree_key.h"

namespace s3d {
namespace {

template <typename scalar_t>
__global__ void cells_kernel(const scalar_t* __restrict__ p, int64_t n, double ox, double oy, double oz, double scale,
                             int32_t last, int32_t* __restrict__ out) {
  S3D_GRID_STRIDE(i, n) {
    const double o[3] = {ox, oy, oz};
    for (int a = 0; a < 3; ++a) {
      const double v = floor(double((p[3 * i + a] - scalar_t(o[a])) * scalar_t(scale)));  // as octree_cpu.cpp
      const int32_t c = int32_t(v);
      out[3 * i + a] = c < 0 ? 0 : (c > last ? last : c);
    }
  }
}

__global__ void leaf_keys_kernel(const int32_t* __restrict__ c, int64_t n, int64_t* __restrict__ key) {
  S3D_GRID_STRIDE(i, n) { key[i] = octree::node_key(c[4 * i], c[4 * i + 1], c[4 * i + 2], c[4 * i + 3]); }
}

__global__ void parent_keys_kernel(const int64_t* __restrict__ k, int64_t n, int64_t* __restrict__ out) {
  S3D_GRID_STRIDE(i, n) { out[i] = octree::parent_key(k[i]); }
}

__global__ void full_keys_kernel(int64_t n, int64_t per, int64_t* __restrict__ key) {
  S3D_GRID_STRIDE(i, n) { key[i] = ((i / per) << octree::kBatchShift) | (i % per); }
}

__global__ void child_keys_kernel(const int64_t* __restrict__ par, int64_t np, int64_t* __restrict__ key) {
  S3D_GRID_STRIDE(i, 8 * np) {
    const int64_t pk = par[i / 8];
    key[i] = (pk & ~octree::kMortonMask) | ((pk & octree::kMortonMask) << 3) | (i % 8);
  }
}

__device__ int64_t find_sorted(const int64_t* __restrict__ keys, int64_t n, int64_t target) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = lo + ((hi - lo) >> 1);
    if (keys[mid] < target)
      lo = mid + 1;
    else
      hi = mid;
  }
  return (lo < n && keys[lo] == target) ? lo : -1;
}

__global__ void children_kernel(const int64_t* __restrict__ k, int64_t n, const int64_t* __restrict__ ne, int64_t m,
                                int32_t* __restrict__ ch) {
  S3D_GRID_STRIDE(i, n) { ch[i] = int32_t(find_sorted(ne, m, k[i])); }
}

__global__ void arange_kernel(int64_t n, int32_t* __restrict__ out) {
  S3D_GRID_STRIDE(i, n) { out[i] = int32_t(i); }
}

__global__ void coords_kernel(const int64_t* __restrict__ k, int64_t n, int32_t* __restrict__ xyz) {
  S3D_GRID_STRIDE(i, n) { octree::key_coords(k[i], xyz + 4 * i); }
}

__global__ void leaf_rows_kernel(const int64_t* __restrict__ key, int64_t p, const int64_t* __restrict__ nodes,
                                 int64_t n, int64_t* __restrict__ out) {
  S3D_GRID_STRIDE(i, p) { out[i] = find_sorted(nodes, n, key[i]); }
}

__global__ void neighbors_kernel(const int32_t* __restrict__ nb, const int32_t* __restrict__ chp,
                                 const int32_t* __restrict__ pr, const int32_t* __restrict__ cp, int64_t q,
                                 int32_t* __restrict__ out) {
  S3D_GRID_STRIDE(idx, q * 27) {
    const int64_t i = idx / 27;
    const int k = int(idx - i * 27);
    int pk, cc;
    octree::child_neighbor(cp[i], k, &pk, &cc);
    const int32_t np = nb[int64_t(pr[i]) * 27 + pk];
    const int32_t ch = np < 0 ? -1 : chp[np];
    out[idx] = ch < 0 ? -1 : 8 * ch + cc;
  }
}

}  // namespace

at::Tensor octree_points_to_cells_cuda(const at::Tensor& points, const double* origin, double size, int64_t depth) {
  const c10::cuda::CUDAGuard guard(points.device());
  const int64_t n = points.size(0);
  at::Tensor out = at::empty({n, 3}, points.options().dtype(at::kInt));
  if (n == 0) return out;
  const double scale = double(int64_t(1) << depth) / size;
  const int32_t last = int32_t((int64_t(1) << depth) - 1);
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "octree.points_to_cells", [&] {
    cells_kernel<scalar_t><<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(
        points.data_ptr<scalar_t>(), n, origin[0], origin[1], origin[2], scale, last, out.data_ptr<int32_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

OctreeLevels octree_build_cuda(const at::Tensor& cells, int64_t depth, int64_t full_depth, int64_t batch_size) {
  const c10::cuda::CUDAGuard guard(cells.device());
  const auto stream = cuda::current_stream();
  const auto lopt = cells.options().dtype(at::kLong);
  const auto iopt = cells.options().dtype(at::kInt);
  const int64_t p = cells.size(0);
  at::Tensor key = at::empty({p}, lopt);
  if (p > 0) {
    leaf_keys_kernel<<<cuda::blocks_for(p), cuda::kThreads, 0, stream>>>(cells.data_ptr<int32_t>(), p,
                                                                         key.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  std::vector<at::Tensor> nonempty(depth + 1);
  nonempty[depth] = std::get<0>(at::unique_consecutive(std::get<0>(at::sort(key))));
  for (int64_t d = depth - 1; d >= full_depth; --d) {
    const at::Tensor& fine = nonempty[d + 1];
    at::Tensor pk = at::empty_like(fine);
    if (fine.numel() > 0) {
      parent_keys_kernel<<<cuda::blocks_for(fine.numel()), cuda::kThreads, 0, stream>>>(
          fine.data_ptr<int64_t>(), fine.numel(), pk.data_ptr<int64_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    nonempty[d] = std::get<0>(at::unique_consecutive(pk));  // parents of sorted keys stay sorted
  }
  OctreeLevels out;
  for (int64_t d = 0; d <= depth; ++d) {
    at::Tensor kt;
    if (d <= full_depth) {
      const int64_t per = int64_t(1) << (3 * d);
      kt = at::empty({batch_size * per}, lopt);
      full_keys_kernel<<<cuda::blocks_for(kt.numel()), cuda::kThreads, 0, stream>>>(kt.numel(), per,
                                                                                     kt.data_ptr<int64_t>());
    } else {
      const at::Tensor& par = nonempty[d - 1];
      kt = at::empty({8 * par.numel()}, lopt);
      if (par.numel() > 0)
        child_keys_kernel<<<cuda::blocks_for(kt.numel()), cuda::kThreads, 0, stream>>>(
            par.data_ptr<int64_t>(), par.numel(), kt.data_ptr<int64_t>());
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const int64_t n = kt.numel();
    at::Tensor ch = at::empty({n}, iopt);
    at::Tensor xyz = at::empty({n, 4}, iopt);
    if (n > 0) {
      if (d < full_depth) {
        arange_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(n, ch.data_ptr<int32_t>());
      } else {
        children_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(
            kt.data_ptr<int64_t>(), n, nonempty[d].data_ptr<int64_t>(), nonempty[d].numel(), ch.data_ptr<int32_t>());
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      coords_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(kt.data_ptr<int64_t>(), n,
                                                                        xyz.data_ptr<int32_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    out.keys.push_back(kt);
    out.children.push_back(ch);
    out.coords.push_back(xyz);
  }
  out.leaf_of_input = at::empty({p}, lopt);
  if (p > 0) {
    const at::Tensor& leaves = out.keys[depth];
    leaf_rows_kernel<<<cuda::blocks_for(p), cuda::kThreads, 0, stream>>>(
        key.data_ptr<int64_t>(), p, leaves.data_ptr<int64_t>(), leaves.numel(), out.leaf_of_input.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return out;
}

at::Tensor octree_neighbors_cuda(const at::Tensor& nbr_parent, const at::Tensor& children_parent,
                                 const at::Tensor& parent_rows, const at::Tensor& child_pos, int64_t n_child) {
  (void)n_child;
  const c10::cuda::CUDAGuard guard(nbr_parent.device());
  const int64_t q = parent_rows.size(0);
  at::Tensor out = at::empty({q, 27}, parent_rows.options());
  if (q == 0) return out;
  neighbors_kernel<<<cuda::blocks_for(q * 27), cuda::kThreads, 0, cuda::current_stream()>>>(
      nbr_parent.data_ptr<int32_t>(), children_parent.data_ptr<int32_t>(), parent_rows.data_ptr<int32_t>(),
      child_pos.data_ptr<int32_t>(), q, out.data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace s3d
