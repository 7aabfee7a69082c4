// TSDF fusion of RGB-D frames into a sparse block grid (CPU, OpenMP).
//
// Voxel (i, j, k) samples the world point (i, j, k) * voxel_size (same convention as
// Open3D's VoxelBlockGrid). Voxels live in blocks of block_res^3, allocated around the
// observed surface. TSDF values are stored normalised to [-1, 1] (sdf / sdf_trunc) and
// updated with a running weighted mean exactly as Open3D's integrate kernel:
//   u = fx x/z + cx, v = fy y/z + cy, pixel = (int(u), int(v)), sdf = depth - z,
//   skip if depth <= 0 || depth > depth_max || z <= 0 || sdf < -sdf_trunc.
#pragma once
#include <torch/extension.h>

#include <cstdint>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace sparse3d {
namespace fusion {

class TSDFVolume {
 public:
  TSDFVolume(double voxel_size, double trunc_voxels, int64_t block_res, bool with_color);

  // depth: float32 [H, W] metres (0 = invalid); color: uint8 [H, W, 3] or an empty tensor;
  // intrinsic: float64 [3, 3]; camera_to_world: float64 [4, 4]. Blocks are allocated around
  // the observed depth of every touch_stride-th pixel (Open3D uses 4). Returns the number of
  // blocks touched (and integrated) by this frame. threads: OpenMP threads (0 = OpenMP default).
  int64_t integrate(const torch::Tensor& depth, const torch::Tensor& color, const torch::Tensor& intrinsic,
                    const torch::Tensor& camera_to_world, double depth_max, int64_t touch_stride, int64_t threads);

  // Voxels with weight >= min_weight and |tsdf| <= max_abs_tsdf (normalised), sorted by (x, y, z):
  // (coords int32 [N, 3], tsdf float32 [N] in [-1, 1], weight float32 [N], color float32 [N, 3]).
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor> extract(double min_weight,
                                                                                   double max_abs_tsdf) const;

  int64_t num_blocks() const { return static_cast<int64_t>(block_coords_.size() / 3); }
  double voxel_size() const { return voxel_size_; }
  double trunc_voxels() const { return trunc_voxels_; }
  int64_t block_res() const { return block_res_; }
  bool with_color() const { return with_color_; }

 private:
  int32_t find_or_insert(int64_t bx, int64_t by, int64_t bz);

  double voxel_size_, trunc_voxels_;
  int64_t block_res_;
  bool with_color_;
  std::unordered_map<int64_t, int32_t> index_;
  std::vector<int32_t> block_coords_;  // 3 per block
  std::vector<float> tsdf_, weight_, color_;  // res^3 (x3 for color) per block
};

// For each voxel (coords int32 [N, 3] at voxel_size) and one depth frame, the visibility
// state: 0 = not seen (outside the image, invalid depth or behind the surface by more
// than trunc), 1 = seen free (in front of the surface by more than trunc), 2 = near the
// surface (|sdf| <= trunc). Returns uint8 [N].
torch::Tensor visibility(const torch::Tensor& coords, double voxel_size, const torch::Tensor& depth,
                         const torch::Tensor& intrinsic, const torch::Tensor& camera_to_world, double trunc,
                         double depth_max);

// Dense observed mask of the grid origin + [0, dims) (voxels at voxel_size): a voxel is observed
// when some frame sees it (inside the image, valid depth <= depth_max, z > 0, and not more than
// trunc metres behind the observed depth). depths: uint16 [F, H, W] (value / depth_scale =
// metres); camera_to_world: float64 [F, 4, 4]; origin: int64 [3]; dims: int64 [3].
// Returns bool [X, Y, Z]. Each voxel stops at the first frame that sees it.
torch::Tensor observed_grid(const torch::Tensor& depths, double depth_scale, const torch::Tensor& intrinsic,
                            const torch::Tensor& camera_to_world, const torch::Tensor& origin,
                            const torch::Tensor& dims, double voxel_size, double trunc, double depth_max);

}  // namespace fusion
}  // namespace sparse3d

void init_fusion(pybind11::module_& m);
