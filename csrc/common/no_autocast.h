// Kernels compute in the dtype they are given. torch.autocast is applied once, by the Python layer
// (sparse3d/ops/amp.py), and never to the ATen calls inside a kernel, where it would re-cast the
// GEMMs of a float32 accumulation back to the half type.
#pragma once
#include <c10/core/DispatchKeySet.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

namespace s3d {

struct NoAutocast {
  c10::impl::ExcludeDispatchKeyGuard guard{c10::autocast_dispatch_keyset};
};

}  // namespace s3d
