// Octree build and per-depth neighbour tables (O-CNN's full-octree convention).
//
// points_to_cells(points, origin, size, depth): float [P, 3] inside the cube [origin, origin + size]^3 ->
//   int32 [P, 3] cells floor((p - origin) * (2^depth / size)), computed in the points' dtype as O-CNN does (the
//   cube's max face belongs to the last cell; the inside check is exact, in double).
// build(cells, depth, full_depth, batch_size): int32 [P, 4] (b, x, y, z) leaf cells -> OctreeLevels: per depth
//   d = 0..depth the sorted shuffled keys (octree_key.h) of every node, where
//     d <= full_depth: all batch_size * 8^d nodes;  d > full_depth: the 8 children of every non-empty node of d-1;
//   children[d][i] = ordinal of node i among the non-empty nodes of depth d (its children are rows
//   8 * children[d][i] + c, c = 0..7, of depth d + 1), or -1 for an empty node. A node is non-empty when it
//   holds a leaf cell (d >= full_depth) or lies above the full depth (d < full_depth). leaf_of_input[p]: the
//   row at depth `depth` of cells[p].
// neighbors(nbr_parent, children_parent, parent_rows, child_pos, n_child): the 3x3x3 neighbours (offset order
//   of sparse3d/kernel.py) of the child at position child_pos[q] of parent row parent_rows[q], found through
//   the parent depth's table: int32 [Q, 27], rows of the child depth (n_child rows) or -1.
#pragma once
#include <torch/extension.h>

#include <vector>

namespace s3d {

struct OctreeLevels {
  std::vector<at::Tensor> keys;      // int64 [N_d] per depth, ascending
  std::vector<at::Tensor> children;  // int32 [N_d] per depth
  std::vector<at::Tensor> coords;    // int32 [N_d, 4] (b, x, y, z) per depth, cells of that depth
  at::Tensor leaf_of_input;          // int64 [P]
};

at::Tensor octree_points_to_cells(const at::Tensor& points, std::vector<double> origin, double size, int64_t depth);
OctreeLevels octree_build(const at::Tensor& cells, int64_t depth, int64_t full_depth, int64_t batch_size);
at::Tensor octree_neighbors(const at::Tensor& nbr_parent, const at::Tensor& children_parent,
                            const at::Tensor& parent_rows, const at::Tensor& child_pos, int64_t n_child);

// first_nonfinite / first_outside: the first row that is not finite / lies outside the cube, or -1
at::Tensor octree_points_to_cells_cpu(const at::Tensor& points, const double* origin, double size, int64_t depth,
                                      int64_t* first_nonfinite, int64_t* first_outside);
OctreeLevels octree_build_cpu(const at::Tensor& cells, int64_t depth, int64_t full_depth, int64_t batch_size);
// Argument checks in one pass over contiguous CPU tensors (octree.cpp uses ATen reductions for CUDA ones):
// the first row of an int32 [N, ...] tensor holding a value outside [lo, hi], or -1;
int64_t first_row_outside_cpu(const at::Tensor& t, int64_t lo, int64_t hi);
// the first row of cells int32 [P, 4] whose batch index is outside [0, batch_size) (*bad_b) and whose x, y or z
// is outside [0, side) (*bad_xyz), each -1 when none.
void cells_first_bad_cpu(const at::Tensor& cells, int64_t batch_size, int64_t side, int64_t* bad_b,
                         int64_t* bad_xyz);
at::Tensor octree_neighbors_cpu(const at::Tensor& nbr_parent, const at::Tensor& children_parent,
                                const at::Tensor& parent_rows, const at::Tensor& child_pos, int64_t n_child);
#ifdef WITH_CUDA
at::Tensor octree_points_to_cells_cuda(const at::Tensor& points, const double* origin, double size, int64_t depth);
OctreeLevels octree_build_cuda(const at::Tensor& cells, int64_t depth, int64_t full_depth, int64_t batch_size);
at::Tensor octree_neighbors_cuda(const at::Tensor& nbr_parent, const at::Tensor& children_parent,
                                 const at::Tensor& parent_rows, const at::Tensor& child_pos, int64_t n_child);
#endif

}  // namespace s3d
