// S3D_HD marks small helpers that nvcc compiles for host and device (plain inline functions for g++).
#pragma once

#if defined(__CUDACC__)
#define S3D_HD __host__ __device__
#else
#define S3D_HD
#endif
