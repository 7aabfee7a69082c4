// Argument checks, CPU/CUDA dispatch and bindings of the back-projection kernels (project.h).
#include "project/project.h"

#include <limits>

#include "common/checks.h"
#include "common/no_autocast.h"

namespace s3d {

project::Geometry ProjectInputs::geometry(int64_t h, int64_t w) const {
  project::Geometry g;
  g.coords = coords.data_ptr<int32_t>();
  g.voxel_to_world = voxel_to_world.data_ptr<double>();
  g.world_to_cam = world_to_cam.data_ptr<double>();
  g.intrinsics = intrinsics.data_ptr<double>();
  g.depth = depth.data_ptr<float>();
  g.thresh = thresh.data_ptr<double>();
  g.view_order = view_order.data_ptr<int64_t>();
  g.batch_begin = batch_begin.data_ptr<int64_t>();
  g.H = depth.size(1);
  g.W = depth.size(2);
  g.h = h;
  g.w = w;
  g.near_ = near_;
  g.far_ = far_;
  return g;
}

namespace {

void check_rows(const at::Tensor& t, int64_t rows, const char* name, const char* shape) {
  TORCH_CHECK_VALUE(t.size(0) == rows, name, " must have shape ", shape, " with ", rows, " rows, got ", t.sizes());
}

// Checks the geometry arguments and groups the views by batch item (ATen ops on their device).
ProjectInputs make_inputs(const at::Tensor& coords, const at::Tensor& voxel_to_world, const at::Tensor& depth,
                          const at::Tensor& intrinsics, const at::Tensor& world_to_cam, const at::Tensor& view_batch,
                          const at::Tensor& thresh, double near_, double far_) {
  S3D_CHECK_DIM(coords, 2);
  TORCH_CHECK_VALUE(coords.size(1) == 4, "coords must have shape [N, 4] (b, x, y, z), got ", coords.sizes());
  S3D_CHECK_DTYPE(coords, at::kInt);
  S3D_CHECK_DIM(voxel_to_world, 3);
  TORCH_CHECK_VALUE(voxel_to_world.size(1) == 4 && voxel_to_world.size(2) == 4,
                    "voxel_to_world must have shape [B, 4, 4], got ", voxel_to_world.sizes());
  S3D_CHECK_DTYPE(voxel_to_world, at::kDouble);
  const int64_t B = voxel_to_world.size(0);
  S3D_CHECK_DIM(depth, 3);
  S3D_CHECK_DTYPE(depth, at::kFloat);
  const int64_t V = depth.size(0);
  S3D_CHECK_DIM(intrinsics, 2);
  S3D_CHECK_DTYPE(intrinsics, at::kDouble);
  check_rows(intrinsics, V, "intrinsics", "[V, 4] (V = depth.size(0))");
  TORCH_CHECK_VALUE(intrinsics.size(1) == 4, "intrinsics must have shape [V, 4] (fx, fy, cx, cy), got ",
                    intrinsics.sizes());
  S3D_CHECK_DIM(world_to_cam, 3);
  S3D_CHECK_DTYPE(world_to_cam, at::kDouble);
  check_rows(world_to_cam, V, "world_to_cam", "[V, 4, 4] (V = depth.size(0))");
  TORCH_CHECK_VALUE(world_to_cam.size(1) == 4 && world_to_cam.size(2) == 4,
                    "world_to_cam must have shape [V, 4, 4], got ", world_to_cam.sizes());
  S3D_CHECK_DIM(view_batch, 1);
  S3D_CHECK_DTYPE(view_batch, at::kLong);
  check_rows(view_batch, V, "view_batch", "[V] (V = depth.size(0))");
  S3D_CHECK_DIM(thresh, 1);
  S3D_CHECK_DTYPE(thresh, at::kDouble);
  check_rows(thresh, B, "thresh", "[B] (B = voxel_to_world.size(0))");
  TORCH_CHECK_VALUE(std::isfinite(near_) && std::isfinite(far_) && 0 <= near_ && near_ < far_,
                    "near and far must be finite with 0 <= near < far, got near=", near_, ", far=", far_);
  for (const at::Tensor* t : {&voxel_to_world, &depth, &intrinsics, &world_to_cam, &view_batch, &thresh}) {
    TORCH_CHECK_VALUE(t->device() == coords.device(), "every argument must be on coords' device ", coords.device(),
                      ", got one on ", t->device());
  }
  if (coords.size(0) > 0) {
    const int64_t lo = coords.select(1, 0).min().item<int32_t>(), hi = coords.select(1, 0).max().item<int32_t>();
    TORCH_CHECK_VALUE(lo >= 0 && hi < B, "coords' batch index must be in [0, B=", B, "), got values in [", lo, ", ",
                      hi, "]");
  }
  if (V > 0) {
    const int64_t lo = view_batch.min().item<int64_t>(), hi = view_batch.max().item<int64_t>();
    TORCH_CHECK_VALUE(lo >= -1 && hi < B, "view_batch must be in [0, B=", B, ") or -1 (skipped view), got values in [",
                      lo, ", ", hi, "]");
  }
  ProjectInputs in;
  in.coords = coords.contiguous();
  in.voxel_to_world = voxel_to_world.contiguous();
  in.depth = depth.contiguous();
  in.intrinsics = intrinsics.contiguous();
  in.world_to_cam = world_to_cam.contiguous();
  in.thresh = thresh.contiguous();
  in.near_ = near_;
  in.far_ = far_;
  // views sorted (stably, so by index within an item) by batch item, skipped views (key B) last
  const at::Tensor key = at::where(view_batch >= 0, view_batch, at::full_like(view_batch, B));
  const auto sorted = at::sort(key, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  in.view_order = std::get<1>(sorted).contiguous();
  in.batch_begin = at::searchsorted(std::get<0>(sorted), at::arange(B + 1, view_batch.options())).contiguous();
  return in;
}

void check_table_size(int64_t V, int64_t h, int64_t w) {
  TORCH_CHECK_VALUE(V * h * w < std::numeric_limits<int32_t>::max(), "feats2d must have V * h * w < 2^31 pixels, got ",
                    V, " * ", h, " * ", w);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_forward(
    const at::Tensor& coords, const at::Tensor& voxel_to_world, const at::Tensor& feats2d, const at::Tensor& depth,
    const at::Tensor& intrinsics, const at::Tensor& world_to_cam, const at::Tensor& view_batch,
    const at::Tensor& thresh, double near_, double far_, bool pool_max) {
  const NoAutocast no_autocast;
  S3D_CHECK_DIM(feats2d, 4);
  TORCH_CHECK_TYPE(feats2d.scalar_type() == at::kFloat || feats2d.scalar_type() == at::kDouble,
                   "feats2d must be float32 or float64, got ", feats2d.scalar_type());
  S3D_CHECK_SAME_DEVICE(feats2d, coords);
  const ProjectInputs in =
      make_inputs(coords, voxel_to_world, depth, intrinsics, world_to_cam, view_batch, thresh, near_, far_);
  TORCH_CHECK_VALUE(feats2d.size(0) == depth.size(0), "feats2d must have V=", depth.size(0),
                    " views (depth.size(0)), got shape ", feats2d.sizes());
  const int64_t h = feats2d.size(2), w = feats2d.size(3);
  check_table_size(feats2d.size(0), h, w);
  TORCH_CHECK_VALUE((h > 0 && w > 0) || coords.size(0) == 0 || feats2d.size(0) == 0,
                    "feats2d must have h, w > 0, got shape ", feats2d.sizes());
  // mean pooling keeps each voxel's passing pixels for the backward: at most the views of its batch item
  const int64_t B = in.batch_begin.size(0) - 1;
  const int64_t max_views =
      B > 0 ? (in.batch_begin.slice(0, 1) - in.batch_begin.slice(0, 0, B)).max().item<int64_t>() : 0;
  if (coords.is_cuda()) {
#ifdef WITH_CUDA
    return project_forward_cuda(in, feats2d.contiguous(), pool_max, max_views);
#else
    S3D_NO_CUDA("project.forward");
#endif
  }
  return project_forward_cpu(in, feats2d.contiguous(), pool_max, max_views);
}

at::Tensor project_backward_max(const at::Tensor& grad, const at::Tensor& argmax, int64_t V, int64_t h, int64_t w) {
  const NoAutocast no_autocast;
  S3D_CHECK_DIM(grad, 2);
  S3D_CHECK_DIM(argmax, 2);
  S3D_CHECK_DTYPE(argmax, at::kInt);
  TORCH_CHECK_TYPE(grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble,
                   "grad must be float32 or float64, got ", grad.scalar_type());
  TORCH_CHECK_VALUE(argmax.sizes() == grad.sizes(), "argmax must have grad's shape ", grad.sizes(), ", got ",
                    argmax.sizes());
  TORCH_CHECK_VALUE(V >= 0 && h >= 0 && w >= 0, "V, h, w must be >= 0, got ", V, ", ", h, ", ", w);
  check_table_size(V, h, w);
  S3D_CHECK_SAME_DEVICE(grad, argmax);
  const int64_t rows = V * h * w;
  if (argmax.numel() > 0) {
    const int64_t lo = argmax.min().item<int32_t>(), hi = argmax.max().item<int32_t>();
    TORCH_CHECK_VALUE(lo >= -1 && hi < rows, "argmax must be in [-1, V*h*w=", rows, "), got values in [", lo, ", ",
                      hi, "]");
  }
  if (grad.is_cuda()) {
#ifdef WITH_CUDA
    return project_backward_max_cuda(grad.contiguous(), argmax.contiguous(), V, h, w);
#else
    S3D_NO_CUDA("project.backward_max");
#endif
  }
  return project_backward_max_cpu(grad.contiguous(), argmax.contiguous(), V, h, w);
}

at::Tensor project_backward_mean(const at::Tensor& grad, const at::Tensor& rows, const at::Tensor& n_views, int64_t V,
                                 int64_t h, int64_t w) {
  const NoAutocast no_autocast;
  S3D_CHECK_DIM(grad, 2);
  TORCH_CHECK_TYPE(grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble,
                   "grad must be float32 or float64, got ", grad.scalar_type());
  S3D_CHECK_DIM(rows, 2);
  S3D_CHECK_DTYPE(rows, at::kInt);
  check_rows(rows, grad.size(0), "rows", "[N, M] (N = grad.size(0))");
  S3D_CHECK_DIM(n_views, 1);
  S3D_CHECK_DTYPE(n_views, at::kInt);
  check_rows(n_views, grad.size(0), "n_views", "[N] (N = grad.size(0))");
  S3D_CHECK_SAME_DEVICE(grad, rows);
  S3D_CHECK_SAME_DEVICE(grad, n_views);
  TORCH_CHECK_VALUE(V >= 0 && h >= 0 && w >= 0, "V, h, w must be >= 0, got ", V, ", ", h, ", ", w);
  check_table_size(V, h, w);
  const int64_t pixels = V * h * w;
  if (rows.numel() > 0) {
    const int64_t lo = rows.min().item<int32_t>(), hi = rows.max().item<int32_t>();
    TORCH_CHECK_VALUE(lo >= -1 && hi < pixels, "rows must be in [-1, V*h*w=", pixels, "), got values in [", lo, ", ",
                      hi, "]");
  }
  if (grad.is_cuda()) {
#ifdef WITH_CUDA
    return project_backward_mean_cuda(grad.contiguous(), rows.contiguous(), n_views.contiguous(), V, h, w);
#else
    S3D_NO_CUDA("project.backward_mean");
#endif
  }
  return project_backward_mean_cpu(grad.contiguous(), rows.contiguous(), n_views.contiguous(), V, h, w);
}

at::Tensor project_visibility(const at::Tensor& coords, const at::Tensor& voxel_to_world, const at::Tensor& depth,
                              const at::Tensor& intrinsics, const at::Tensor& world_to_cam,
                              const at::Tensor& view_batch, const at::Tensor& thresh, double near_, double far_) {
  const ProjectInputs in =
      make_inputs(coords, voxel_to_world, depth, intrinsics, world_to_cam, view_batch, thresh, near_, far_);
  if (coords.is_cuda()) {
#ifdef WITH_CUDA
    return project_visibility_cuda(in, depth.size(0));
#else
    S3D_NO_CUDA("project.visibility");
#endif
  }
  return project_visibility_cpu(in, depth.size(0));
}

}  // namespace s3d

void init_project(pybind11::module_& m) {
  namespace py = pybind11;
  m.def("forward", &s3d::project_forward, py::arg("coords"), py::arg("voxel_to_world"), py::arg("feats2d"),
        py::arg("depth"), py::arg("intrinsics"), py::arg("world_to_cam"), py::arg("view_batch"), py::arg("thresh"),
        py::arg("near"), py::arg("far"), py::arg("pool_max"),
        "-> (feats [N, C], n_views int32 [N], argmax int32 [N, C] (max) or rows int32 [N, M] (mean)); see project.h");
  m.def("backward_max", &s3d::project_backward_max, py::arg("grad"), py::arg("argmax"), py::arg("V"), py::arg("h"),
        py::arg("w"), "grad [N, C], argmax int32 [N, C] -> grad of feats2d [V, C, h, w]");
  m.def("backward_mean", &s3d::project_backward_mean, py::arg("grad"), py::arg("rows"), py::arg("n_views"),
        py::arg("V"), py::arg("h"), py::arg("w"),
        "grad [N, C], rows int32 [N, M] (the forward's), n_views int32 [N] -> grad of feats2d [V, C, h, w]");
  m.def("visibility", &s3d::project_visibility, py::arg("coords"), py::arg("voxel_to_world"), py::arg("depth"),
        py::arg("intrinsics"), py::arg("world_to_cam"), py::arg("view_batch"), py::arg("thresh"), py::arg("near"),
        py::arg("far"), "-> bool [N, V]: view v passes the depth test for voxel n");
}
