// Argument checks shared by every op. They raise Python exceptions through TORCH_CHECK
// (c10::Error -> RuntimeError, c10::ValueError -> ValueError); nothing here aborts.
#pragma once
#include <torch/extension.h>

#define S3D_CHECK_DIM(x, d) \
  TORCH_CHECK_VALUE((x).dim() == (d), #x " must have " #d " dimensions, got shape ", (x).sizes())
#define S3D_CHECK_DTYPE(x, t) \
  TORCH_CHECK_TYPE((x).scalar_type() == (t), #x " must be ", c10::toString(t), ", got ", (x).scalar_type())
#define S3D_CHECK_SAME_DEVICE(a, b)                                                        \
  TORCH_CHECK_VALUE((a).device() == (b).device(), #a " and " #b " must be on one device, got ", \
                    (a).device(), " and ", (b).device())

#define S3D_NO_CUDA(name)                                                                     \
  TORCH_CHECK(false, name ": got CUDA tensors, but sparse3d was built without CUDA; rebuild with " \
              "FORCE_CUDA=1 pip install --no-build-isolation -e .")

// The conv kernels' feature dtypes.
inline void s3d_check_float(const at::Tensor& t, const char* name) {
  const at::ScalarType st = t.scalar_type();
  TORCH_CHECK_TYPE(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16, name,
                   " must be float64, float32, float16 or bfloat16, got ", st);
}

// Tensors the kernels read must hold data on the CPU or a CUDA device ('meta' tensors and other
// backends have no memory the kernels could read).
inline void s3d_check_device(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.device().is_cpu() || t.device().is_cuda(), name,
                    " must be a CPU or CUDA tensor, got device ", t.device());
}
#define S3D_CHECK_DEVICE(x) s3d_check_device((x), #x)

// An integer argument in [lo, hi] (sizes, counts and chunk lengths that the kernels loop over or
// allocate with).
inline void s3d_check_range(int64_t v, int64_t lo, int64_t hi, const char* name) {
  TORCH_CHECK_VALUE(v >= lo && v <= hi, name, " must be in [", lo, ", ", hi, "], got ", v);
}
