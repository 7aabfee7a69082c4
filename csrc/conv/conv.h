// Sparse convolution as gather-GEMM-scatter over a neighbor table.
//
//   out[o] = sum_k feats[nbr[o, k]] @ weight[k]      (terms with nbr[o, k] == -1 are skipped)
//
// feats [N_in, C_in], weight [K, C_in, C_out], nbr int32 [N_out, K] -> out [N_out, C_out].
// The input gradient is the same operation with weight^T and the input-stationary table;
// the weight gradient is
//   grad_weight[k] = sum_o feats[nbr[o, k]]^T grad_out[o]          -> [K, C_in, C_out].
//
// simd (CPU only): the widest instruction set of the direct kernels a call may use (conv_cpu_direct.h);
// "auto" everywhere, CUDA tensors take no other value.
#pragma once
#include <torch/extension.h>

#include <string>

#include "conv/conv_cpu_direct.h"

namespace s3d {

at::Tensor conv_forward(const at::Tensor& feats, const at::Tensor& weight, const at::Tensor& nbr, int64_t tile,
                        const std::string& simd);
at::Tensor conv_weight_grad(const at::Tensor& feats, const at::Tensor& grad_out, const at::Tensor& nbr,
                            int64_t tile, const std::string& simd);

at::Tensor conv_forward_cpu(const at::Tensor& feats, const at::Tensor& weight, const at::Tensor& nbr, int64_t tile,
                            Simd simd);
at::Tensor conv_weight_grad_cpu(const at::Tensor& feats, const at::Tensor& grad_out, const at::Tensor& nbr,
                                int64_t tile, Simd simd);
#ifdef WITH_CUDA
at::Tensor conv_forward_cuda(const at::Tensor& feats, const at::Tensor& weight, const at::Tensor& nbr, int64_t tile);
at::Tensor conv_weight_grad_cuda(const at::Tensor& feats, const at::Tensor& grad_out, const at::Tensor& nbr,
                                 int64_t tile);
#endif

}  // namespace s3d
