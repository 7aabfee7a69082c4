// CPU implementation of the sparse TSDF fusion (see fusion.h).
#include "fusion/fusion.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace sparse3d {
namespace fusion {

namespace {

constexpr int64_t kBits = 21;
constexpr int64_t kOffset = int64_t(1) << (kBits - 1);
constexpr int64_t kMask = (int64_t(1) << kBits) - 1;

inline int64_t pack(int64_t x, int64_t y, int64_t z) {
  return ((x + kOffset) & kMask) << (2 * kBits) | ((y + kOffset) & kMask) << kBits | ((z + kOffset) & kMask);
}

inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

struct Camera {
  double fx, fy, cx, cy;
  double R[9], t[3];  // camera_to_world
};

// 'meta' tensors (and other backends) hold no data to read
void check_has_data(const torch::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.device().is_cpu() || t.device().is_cuda(), name, ": expected a CPU or CUDA tensor, got device ",
                    t.device());
}

// tensors the CPU loops read directly ('meta' and CUDA tensors have no host data)
void check_cpu(const torch::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.device().is_cpu(), name, ": expected a CPU tensor (CUDA fusion is not compiled), got device ",
                    t.device());
}

Camera make_camera(const torch::Tensor& intrinsic, const torch::Tensor& camera_to_world) {
  check_has_data(intrinsic, "intrinsic");
  check_has_data(camera_to_world, "camera_to_world");
  TORCH_CHECK(intrinsic.dim() == 2 && intrinsic.size(0) == 3 && intrinsic.size(1) == 3,
              "intrinsic: expected shape [3, 3], got ", intrinsic.sizes());
  TORCH_CHECK(camera_to_world.dim() == 2 && camera_to_world.size(0) == 4 && camera_to_world.size(1) == 4,
              "camera_to_world: expected shape [4, 4], got ", camera_to_world.sizes());
  auto K = intrinsic.to(torch::kCPU, torch::kFloat64).contiguous();
  auto P = camera_to_world.to(torch::kCPU, torch::kFloat64).contiguous();
  const double* k = K.data_ptr<double>();
  const double* p = P.data_ptr<double>();
  for (int i = 0; i < 16; ++i) TORCH_CHECK(std::isfinite(p[i]), "camera_to_world: expected finite values");
  TORCH_CHECK(k[0] > 0 && k[4] > 0, "intrinsic: expected positive focal lengths, got fx=", k[0], " fy=", k[4]);
  Camera c;
  c.fx = k[0];
  c.fy = k[4];
  c.cx = k[2];
  c.cy = k[5];
  for (int r = 0; r < 3; ++r) {
    for (int q = 0; q < 3; ++q) c.R[3 * r + q] = p[4 * r + q];
    c.t[r] = p[4 * r + 3];
  }
  return c;
}

void check_depth(const torch::Tensor& depth) {
  TORCH_CHECK(depth.device().is_cpu(), "depth: expected a CPU tensor (CUDA fusion is not compiled)");
  TORCH_CHECK(depth.dim() == 2, "depth: expected shape [H, W], got ", depth.sizes());
  TORCH_CHECK(depth.scalar_type() == torch::kFloat32, "depth: expected float32 metres, got ", depth.scalar_type());
}

}  // namespace

TSDFVolume::TSDFVolume(double voxel_size, double trunc_voxels, int64_t block_res, bool with_color)
    : voxel_size_(voxel_size), trunc_voxels_(trunc_voxels), block_res_(block_res), with_color_(with_color) {
  TORCH_CHECK(voxel_size > 0 && std::isfinite(voxel_size), "voxel_size: expected > 0, got ", voxel_size);
  TORCH_CHECK(trunc_voxels > 0 && std::isfinite(trunc_voxels), "trunc_voxels: expected > 0, got ", trunc_voxels);
  TORCH_CHECK(block_res >= 1 && block_res <= 64, "block_res: expected in [1, 64], got ", block_res);
}

int32_t TSDFVolume::find_or_insert(int64_t bx, int64_t by, int64_t bz) {
  const int64_t key = pack(bx, by, bz);
  auto it = index_.find(key);
  if (it != index_.end()) return it->second;
  const int32_t id = static_cast<int32_t>(block_coords_.size() / 3);
  index_.emplace(key, id);
  block_coords_.push_back(static_cast<int32_t>(bx));
  block_coords_.push_back(static_cast<int32_t>(by));
  block_coords_.push_back(static_cast<int32_t>(bz));
  return id;
}

int64_t TSDFVolume::integrate(const torch::Tensor& depth_in, const torch::Tensor& color_in,
                              const torch::Tensor& intrinsic, const torch::Tensor& camera_to_world,
                              double depth_max, int64_t touch_stride, int64_t threads) {
  check_depth(depth_in);
  // an OpenMP team of at most kMaxThreads threads (threads is cast to int for OpenMP)
  constexpr int64_t kMaxThreads = 1024;
  TORCH_CHECK_VALUE(threads >= 0 && threads <= kMaxThreads, "threads: expected in [0, ", kMaxThreads,
                    "] (0 = OpenMP default), got ", threads);
  TORCH_CHECK(touch_stride >= 1, "touch_stride: expected >= 1, got ", touch_stride);
  const bool use_color = with_color_ && color_in.defined() && color_in.numel() > 0;
  if (with_color_ && use_color) {
    TORCH_CHECK(color_in.dim() == 3 && color_in.size(0) == depth_in.size(0) && color_in.size(1) == depth_in.size(1) &&
                    color_in.size(2) == 3,
                "color: expected shape [", depth_in.size(0), ", ", depth_in.size(1), ", 3] (the depth size), got ",
                color_in.sizes());
    TORCH_CHECK(color_in.scalar_type() == torch::kUInt8, "color: expected uint8, got ", color_in.scalar_type());
  }
  TORCH_CHECK(depth_max > 0, "depth_max: expected > 0, got ", depth_max);
  if (use_color) check_cpu(color_in, "color");
  const Camera cam = make_camera(intrinsic, camera_to_world);
  auto depth_t = depth_in.contiguous();
  auto color_t = use_color ? color_in.contiguous() : torch::Tensor();
  const float* depth = depth_t.data_ptr<float>();
  const uint8_t* color = use_color ? color_t.data_ptr<uint8_t>() : nullptr;
  const int64_t H = depth_in.size(0), W = depth_in.size(1);
  const double vs = voxel_size_, trunc = trunc_voxels_ * voxel_size_;
  const double block_m = vs * block_res_;

  // 1. blocks touched by the ray segment t in [d - trunc, d + trunc] (t = depth, unit-z ray) of
  //    every touch_stride-th pixel, sampled at 4 points exactly like Open3D's DepthTouch
  int nthreads = 1;
#ifdef _OPENMP
  nthreads = threads > 0 ? static_cast<int>(threads) : omp_get_max_threads();
#endif
  std::vector<std::vector<int64_t>> local(nthreads);
  const float fR[9] = {float(cam.R[0]), float(cam.R[1]), float(cam.R[2]), float(cam.R[3]), float(cam.R[4]),
                       float(cam.R[5]), float(cam.R[6]), float(cam.R[7]), float(cam.R[8])};
  const float ft[3] = {float(cam.t[0]), float(cam.t[1]), float(cam.t[2])};
  const float ftrunc = static_cast<float>(trunc), fdmax = static_cast<float>(depth_max);
  const float fblock = static_cast<float>(block_m);
#pragma omp parallel num_threads(nthreads)
  {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    auto& out = local[tid];
    int64_t recent[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    int rpos = 0;
#pragma omp for schedule(static)
    for (int64_t vs_ = 0; vs_ < H / touch_stride; ++vs_) {
      for (int64_t us_ = 0; us_ < W / touch_stride; ++us_) {
        const int64_t v = vs_ * touch_stride, u = us_ * touch_stride;
        const float d = depth[v * W + u];
        if (!(d > 0 && d < fdmax)) continue;
        const float rc[3] = {static_cast<float>((u - cam.cx) / cam.fx), static_cast<float>((v - cam.cy) / cam.fy),
                             1.f};
        float dir[3];
        for (int r = 0; r < 3; ++r) dir[r] = fR[3 * r] * rc[0] + fR[3 * r + 1] * rc[1] + fR[3 * r + 2] * rc[2];
        const float t_min = std::max(d - ftrunc, 0.f), t_max = std::min(d + ftrunc, fdmax);
        const float t_step = (t_max - t_min) / 3.f;
        float t = t_min;
        for (int step = 0; step <= 3; ++step, t += t_step) {
          const int64_t key = pack(static_cast<int64_t>(std::floor((ft[0] + t * dir[0]) / fblock)),
                                   static_cast<int64_t>(std::floor((ft[1] + t * dir[1]) / fblock)),
                                   static_cast<int64_t>(std::floor((ft[2] + t * dir[2]) / fblock)));
          bool seen = false;
          for (int q = 0; q < 8; ++q) seen |= recent[q] == key;
          if (seen) continue;
          recent[rpos] = key;
          rpos = (rpos + 1) & 7;
          out.push_back(key);
        }
      }
    }
  }
  std::vector<int32_t> frame_blocks;
  {
    std::vector<char> mark;
    for (auto& keys : local) {
      for (int64_t key : keys) {
        const int64_t bx = ((key >> (2 * kBits)) & kMask) - kOffset;
        const int64_t by = ((key >> kBits) & kMask) - kOffset;
        const int64_t bz = (key & kMask) - kOffset;
        const int32_t id = find_or_insert(bx, by, bz);
        if (static_cast<size_t>(id) >= mark.size()) mark.resize(id + 1, 0);
        if (!mark[id]) {
          mark[id] = 1;
          frame_blocks.push_back(id);
        }
      }
    }
  }
  const int64_t r3 = block_res_ * block_res_ * block_res_;
  const size_t nvox = block_coords_.size() / 3 * r3;
  if (tsdf_.size() < nvox) {
    tsdf_.resize(nvox, 0.f);
    weight_.resize(nvox, 0.f);
    if (with_color_) color_.resize(3 * nvox, 0.f);
  }

  // 2. update every voxel of the touched blocks. Camera coords: R^T (p - t), stepped incrementally
  const double* R = cam.R;
  const int64_t res = block_res_;
  const int64_t nb = static_cast<int64_t>(frame_blocks.size());
  // camera-space step of one voxel along world x, y, z (columns of R^T scaled by vs); float math
  // in the inner loop, as Open3D's kernel
  const float sx[3] = {float(R[0] * vs), float(R[1] * vs), float(R[2] * vs)};
  const float sy[3] = {float(R[3] * vs), float(R[4] * vs), float(R[5] * vs)};
  const float sz[3] = {float(R[6] * vs), float(R[7] * vs), float(R[8] * vs)};
  const float fx = float(cam.fx), fy = float(cam.fy), cx = float(cam.cx), cy = float(cam.cy);
  const float umax = float(W - 1), vmax = float(H - 1), ftr = float(trunc), inv_tr = float(1.0 / trunc);
  const float fdm = float(depth_max);
#pragma omp parallel for schedule(dynamic, 16) num_threads(nthreads)
  for (int64_t i = 0; i < nb; ++i) {
    const int32_t b = frame_blocks[i];
    const double px = block_coords_[3 * b] * res * vs - cam.t[0];
    const double py = block_coords_[3 * b + 1] * res * vs - cam.t[1];
    const double pz = block_coords_[3 * b + 2] * res * vs - cam.t[2];
    const float o[3] = {float(R[0] * px + R[3] * py + R[6] * pz), float(R[1] * px + R[4] * py + R[7] * pz),
                        float(R[2] * px + R[5] * py + R[8] * pz)};
    float* tsdf_b = tsdf_.data() + b * r3;
    float* weight_b = weight_.data() + b * r3;
    float* color_b = with_color_ ? color_.data() + 3 * b * r3 : nullptr;
    for (int64_t lz = 0; lz < res; ++lz)
      for (int64_t ly = 0; ly < res; ++ly) {
        const float c0 = o[0] + ly * sy[0] + lz * sz[0];
        const float c1 = o[1] + ly * sy[1] + lz * sz[1];
        const float c2 = o[2] + ly * sy[2] + lz * sz[2];
        const int64_t row = (lz * res + ly) * res;
        for (int64_t lx = 0; lx < res; ++lx) {
          const float zc = c2 + lx * sx[2];
          if (zc <= 0.f) continue;
          const float inv_z = 1.f / zc;
          const float u = fx * (c0 + lx * sx[0]) * inv_z + cx, v = fy * (c1 + lx * sx[1]) * inv_z + cy;
          if (!(u >= 0.f && v >= 0.f && u <= umax && v <= vmax)) continue;
          const int64_t pix = static_cast<int64_t>(v) * W + static_cast<int64_t>(u);
          const float d = depth[pix];
          const float sdf = d - zc;
          if (!(d > 0.f) || d > fdm || sdf < -ftr) continue;
          const float t = (sdf < ftr ? sdf : ftr) * inv_tr;
          const int64_t idx = row + lx;
          const float w = weight_b[idx];
          const float inv = 1.f / (w + 1.f);
          tsdf_b[idx] = (w * tsdf_b[idx] + t) * inv;
          if (color) {
            const uint8_t* cc = color + 3 * pix;
            float* cb = color_b + 3 * idx;
            cb[0] = (w * cb[0] + cc[0]) * inv;
            cb[1] = (w * cb[1] + cc[1]) * inv;
            cb[2] = (w * cb[2] + cc[2]) * inv;
          }
          weight_b[idx] = w + 1.f;
        }
      }
  }
  return nb;
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor> TSDFVolume::extract(
    double min_weight, double max_abs_tsdf) const {
  const int64_t nb = num_blocks();
  const int64_t res = block_res_, r3 = res * res * res;
  std::vector<int64_t> order(nb);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    for (int r = 0; r < 3; ++r)
      if (block_coords_[3 * a + r] != block_coords_[3 * b + r]) return block_coords_[3 * a + r] < block_coords_[3 * b + r];
    return false;
  });
  auto keep = [&](int64_t idx) {
    return weight_[idx] > 0 && weight_[idx] >= min_weight && std::fabs(tsdf_[idx]) <= max_abs_tsdf;
  };
  std::vector<int64_t> counts(nb + 1, 0);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < nb; ++i) {
    int64_t c = 0;
    for (int64_t j = 0; j < r3; ++j) c += keep(order[i] * r3 + j);
    counts[i + 1] = c;
  }
  for (int64_t i = 0; i < nb; ++i) counts[i + 1] += counts[i];
  const int64_t n = counts[nb];
  auto coords = torch::empty({n, 3}, torch::kInt32);
  auto tsdf = torch::empty({n}, torch::kFloat32);
  auto weight = torch::empty({n}, torch::kFloat32);
  auto color = torch::zeros({n, 3}, torch::kFloat32);
  int32_t* co = coords.data_ptr<int32_t>();
  float* ts = tsdf.data_ptr<float>();
  float* we = weight.data_ptr<float>();
  float* cl = color.data_ptr<float>();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < nb; ++i) {
    const int64_t b = order[i];
    int64_t o = counts[i];
    // (x, y, z)-sorted within the block: x outermost
    for (int64_t lx = 0; lx < res; ++lx)
      for (int64_t ly = 0; ly < res; ++ly)
        for (int64_t lz = 0; lz < res; ++lz) {
          const int64_t idx = b * r3 + (lz * res + ly) * res + lx;
          if (!keep(idx)) continue;
          co[3 * o] = static_cast<int32_t>(block_coords_[3 * b] * res + lx);
          co[3 * o + 1] = static_cast<int32_t>(block_coords_[3 * b + 1] * res + ly);
          co[3 * o + 2] = static_cast<int32_t>(block_coords_[3 * b + 2] * res + lz);
          ts[o] = tsdf_[idx];
          we[o] = weight_[idx];
          if (with_color_)
            for (int k = 0; k < 3; ++k) cl[3 * o + k] = color_[3 * idx + k];
          ++o;
        }
  }
  return {coords, tsdf, weight, color};
}

torch::Tensor visibility(const torch::Tensor& coords_in, double voxel_size, const torch::Tensor& depth_in,
                         const torch::Tensor& intrinsic, const torch::Tensor& camera_to_world, double trunc,
                         double depth_max) {
  TORCH_CHECK(coords_in.dim() == 2 && coords_in.size(1) == 3, "coords: expected shape [N, 3], got ", coords_in.sizes());
  TORCH_CHECK(coords_in.scalar_type() == torch::kInt32, "coords: expected int32, got ", coords_in.scalar_type());
  TORCH_CHECK(voxel_size > 0, "voxel_size: expected > 0, got ", voxel_size);
  check_cpu(coords_in, "coords");
  check_depth(depth_in);
  const Camera cam = make_camera(intrinsic, camera_to_world);
  auto coords_t = coords_in.contiguous();
  auto depth_t = depth_in.contiguous();
  const int32_t* co = coords_t.data_ptr<int32_t>();
  const float* depth = depth_t.data_ptr<float>();
  const int64_t H = depth_in.size(0), W = depth_in.size(1), n = coords_in.size(0);
  auto out = torch::zeros({n}, torch::kUInt8);
  uint8_t* o = out.data_ptr<uint8_t>();
  const double* R = cam.R;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const double px = co[3 * i] * voxel_size - cam.t[0];
    const double py = co[3 * i + 1] * voxel_size - cam.t[1];
    const double pz = co[3 * i + 2] * voxel_size - cam.t[2];
    const double xc = R[0] * px + R[3] * py + R[6] * pz;
    const double yc = R[1] * px + R[4] * py + R[7] * pz;
    const double zc = R[2] * px + R[5] * py + R[8] * pz;
    if (zc <= 0) continue;
    const double u = cam.fx * xc / zc + cam.cx, v = cam.fy * yc / zc + cam.cy;
    if (!(u >= 0 && v >= 0 && u <= W - 1 && v <= H - 1)) continue;
    const float d = depth[static_cast<int64_t>(v) * W + static_cast<int64_t>(u)];
    if (!(d > 0) || d > depth_max) continue;
    const double sdf = d - zc;
    if (sdf > trunc)
      o[i] = 1;
    else if (sdf >= -trunc)
      o[i] = 2;
  }
  return out;
}

torch::Tensor observed_grid(const torch::Tensor& depths_in, double depth_scale, const torch::Tensor& intrinsic,
                            const torch::Tensor& poses_in, const torch::Tensor& origin_in, const torch::Tensor& dims_in,
                            double voxel_size, double trunc, double depth_max) {
  TORCH_CHECK(depths_in.dim() == 3, "depths: expected shape [F, H, W], got ", depths_in.sizes());
  TORCH_CHECK(depths_in.scalar_type() == torch::kUInt16, "depths: expected uint16, got ", depths_in.scalar_type());
  TORCH_CHECK(poses_in.dim() == 3 && poses_in.size(0) == depths_in.size(0) && poses_in.size(1) == 4 &&
                  poses_in.size(2) == 4,
              "camera_to_world: expected shape [", depths_in.size(0), ", 4, 4], got ", poses_in.sizes());
  TORCH_CHECK(origin_in.numel() == 3 && dims_in.numel() == 3, "origin, dims: expected 3 values each");
  TORCH_CHECK(depth_scale > 0 && voxel_size > 0, "depth_scale, voxel_size: expected > 0");
  check_cpu(depths_in, "depths");
  check_has_data(origin_in, "origin");
  check_has_data(dims_in, "dims");
  TORCH_CHECK_TYPE(!at::isFloatingType(origin_in.scalar_type()) && !at::isFloatingType(dims_in.scalar_type()) &&
                       !at::isComplexType(origin_in.scalar_type()) && !at::isComplexType(dims_in.scalar_type()),
                   "origin, dims: expected integer tensors, got ", origin_in.scalar_type(), " and ",
                   dims_in.scalar_type());
  auto o_t = origin_in.to(torch::kCPU, torch::kInt64).contiguous();
  auto d_t = dims_in.to(torch::kCPU, torch::kInt64).contiguous();
  const int64_t* og = o_t.data_ptr<int64_t>();
  const int64_t* dm = d_t.data_ptr<int64_t>();
  // each size checked before the product, so the product cannot overflow
  constexpr int64_t kMaxVoxels = int64_t(1) << 32, kMaxOrigin = int64_t(1) << 40;
  for (int a = 0; a < 3; ++a) {
    TORCH_CHECK_VALUE(dm[a] >= 0 && dm[a] <= kMaxVoxels, "dims: expected sizes in [0, 2^32], got dims[", a,
                      "] = ", dm[a]);
    TORCH_CHECK_VALUE(og[a] >= -kMaxOrigin && og[a] <= kMaxOrigin, "origin: expected values in [-2^40, 2^40], got origin[",
                      a, "] = ", og[a]);
  }
  TORCH_CHECK_VALUE(dm[0] == 0 || dm[1] == 0 || dm[2] == 0 || dm[0] <= kMaxVoxels / dm[1] / dm[2],
                    "dims: expected at most 2^32 voxels, got ", dm[0], " x ", dm[1], " x ", dm[2]);
  const int64_t F = depths_in.size(0), H = depths_in.size(1), W = depths_in.size(2);
  auto poses_t = poses_in.to(torch::kFloat64).contiguous();
  std::vector<Camera> cams;
  for (int64_t f = 0; f < F; ++f) cams.push_back(make_camera(intrinsic, poses_t[f]));
  auto depths_t = depths_in.contiguous();
  const uint16_t* depth = reinterpret_cast<const uint16_t*>(depths_t.data_ptr());
  auto out = torch::zeros({dm[0], dm[1], dm[2]}, torch::kBool);
  bool* o = out.data_ptr<bool>();
  const double inv_scale = 1.0 / depth_scale;
  const int64_t X = dm[0], Y = dm[1], Z = dm[2];
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t x = 0; x < X; ++x) {
    int64_t f0 = 0;  // start at the frame that saw the previous voxel (coherence)
    for (int64_t y = 0; y < Y; ++y)
      for (int64_t z = 0; z < Z; ++z) {
        const double wx = (og[0] + x) * voxel_size, wy = (og[1] + y) * voxel_size, wz = (og[2] + z) * voxel_size;
        for (int64_t k = 0; k < F; ++k) {
          const int64_t f = (f0 + k) % F;
          const Camera& c = cams[f];
          const double px = wx - c.t[0], py = wy - c.t[1], pz = wz - c.t[2];
          const double zc = c.R[2] * px + c.R[5] * py + c.R[8] * pz;
          if (zc <= 0) continue;
          const double xc = c.R[0] * px + c.R[3] * py + c.R[6] * pz;
          const double yc = c.R[1] * px + c.R[4] * py + c.R[7] * pz;
          const double u = c.fx * xc / zc + c.cx, v = c.fy * yc / zc + c.cy;
          if (!(u >= 0 && v >= 0 && u <= W - 1 && v <= H - 1)) continue;
          const uint16_t raw = depth[(f * H + static_cast<int64_t>(v)) * W + static_cast<int64_t>(u)];
          const double d = raw * inv_scale;
          if (raw == 0 || d > depth_max || d - zc < -trunc) continue;
          o[(x * Y + y) * Z + z] = true;
          f0 = f;
          break;
        }
      }
  }
  return out;
}

}  // namespace fusion
}  // namespace sparse3d

namespace {
void init_fusion_impl(pybind11::module_& m) {
  using sparse3d::fusion::TSDFVolume;
  namespace py = pybind11;
  py::class_<TSDFVolume>(m, "TSDFVolume", "Sparse block-grid TSDF volume (see csrc/fusion/fusion.h)")
      .def(py::init<double, double, int64_t, bool>(), py::arg("voxel_size"), py::arg("trunc_voxels"),
           py::arg("block_res") = 8, py::arg("with_color") = true)
      .def("integrate", &TSDFVolume::integrate, py::arg("depth"), py::arg("color"), py::arg("intrinsic"),
           py::arg("camera_to_world"), py::arg("depth_max"), py::arg("touch_stride") = 4, py::arg("threads") = 0, py::call_guard<py::gil_scoped_release>())
      .def("extract", &TSDFVolume::extract, py::arg("min_weight") = 0.0, py::arg("max_abs_tsdf") = 1.0)
      .def_property_readonly("num_blocks", &TSDFVolume::num_blocks)
      .def_property_readonly("voxel_size", &TSDFVolume::voxel_size)
      .def_property_readonly("trunc_voxels", &TSDFVolume::trunc_voxels)
      .def_property_readonly("block_res", &TSDFVolume::block_res)
      .def_property_readonly("with_color", &TSDFVolume::with_color);
  m.def("visibility", &sparse3d::fusion::visibility, py::arg("coords"), py::arg("voxel_size"), py::arg("depth"),
        py::arg("intrinsic"), py::arg("camera_to_world"), py::arg("trunc"), py::arg("depth_max"),
        py::call_guard<py::gil_scoped_release>(),
        "uint8 [N] visibility of voxel coords int32 [N,3] in one depth frame: 0 unseen, 1 free, 2 near surface");
  m.def("observed_grid", &sparse3d::fusion::observed_grid, py::arg("depths"), py::arg("depth_scale"),
        py::arg("intrinsic"), py::arg("camera_to_world"), py::arg("origin"), py::arg("dims"), py::arg("voxel_size"),
        py::arg("trunc"), py::arg("depth_max"), py::call_guard<py::gil_scoped_release>(),
        "bool [X,Y,Z]: voxels of origin + [0, dims) observed by some frame (see fusion.h)");
}
}  // namespace

// bindings.cpp may pass the submodule as an lvalue, an rvalue or by value: all three link.
void init_fusion(pybind11::module_& m) { init_fusion_impl(m); }
void init_fusion(pybind11::module_&& m) { init_fusion_impl(m); }
void init_fusion(pybind11::module_ m) { init_fusion_impl(m); }
